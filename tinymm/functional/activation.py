"""Activation functions: relu, sigmoid, tanh, softmax, and dropout.

All but softmax act on each element separately, so their Jacobian is diagonal and the
backward is the upstream gradient times the local slope, elementwise. Each backward uses
the saved *output* y where the slope can be written with it (sigmoid: y(1 − y), tanh:
1 − y²), so nothing is recomputed.

Softmax mixes the elements of a row, so its backward is a small matrix-free formula,
derived in its docstring. Dropout is random in training and the identity in evaluation.

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
import numbers

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from .basic import check_axis


class ReLU(Function):
    """y = max(0, x).   dx = g * (y > 0): the gradient passes where the unit was on.

    At exactly x = 0 the slope is taken to be 0 (as in PyTorch).
    Backward reads the mask off the saved output y. Whether that costs memory depends on
    the next op: a Linear keeps its input for its own backward, so there y is shared and
    free; a max-pool keeps only its winners' positions and a convolution its im2col columns,
    so there ReLU is y's only holder (4 bytes per float32 element; a boolean mask would take 1).
    """

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.maximum(x, 0)
        return self.y

    def backward(self, g):
        return g * (self.y > 0)


def sigmoid_and_exp(x):
    """(σ(x), e^(−|x|)) of a raw array, with no overflow: e^(−|x|) is in (0, 1] for every x.

    σ(x) = 1/(1 + e^(−|x|)) where x ≥ 0 and e^(−|x|)/(1 + e^(−|x|)) where x < 0. The binary
    cross-entropy (loss.py) needs e^(−|x|) too, for its log(1 + e^(−|x|)).
    """
    xp = backend.get_array_module(x)
    z = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + z), z / (1 + z)), z


class Sigmoid(Function):
    """y = 1 / (1 + e^(−x)).   dx = g * y * (1 − y).

    Computed as 1/(1 + e^(−|x|)) or e^(−|x|)/(1 + e^(−|x|)) by the sign of x, so e^(...)
    never overflows, even for x = −1e4.
    """

    def forward(self, x):
        self.y, _ = sigmoid_and_exp(x)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Tanh(Function):
    """y = tanh(x).   dx = g * (1 − y²)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.y = xp.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class Softmax(Function):
    """y = softmax(x) along ``axis``: y_i = e^(x_i − m) / Σ_j e^(x_j − m), m = max_j x_j.

    Subtracting the row maximum m changes nothing (it cancels) but keeps e^(...) ≤ 1.
    Jacobian of one row: dy_i/dx_k = y_i (δ_ik − y_k), so
        dx = y ⊙ (g − Σ_k g_k y_k)        (the sum along ``axis``, kept for broadcasting)
    """

    def forward(self, x, axis=-1):
        xp = backend.get_array_module(x)
        check_axis("softmax", x.shape, axis)
        self.axis = axis
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        self.y = e / e.sum(axis=axis, keepdims=True)
        return self.y

    def backward(self, g):
        y = self.y
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class Dropout(Function):
    """out = x * keep / (1 − p), where ``keep`` is a 0/1 array of x's shape.

    dx = g * keep / (1 − p): a dropped unit gets no gradient, a kept one is scaled like its
    value. ``keep`` is an input (not differentiated) so that the random draw stays outside
    the op: ``dropout`` draws it, and a gradient check can pass a fixed one.
    """

    def forward(self, x, keep, p):
        self.scale = keep.astype(x.dtype) / (1 - p)  # a Python float keeps x's dtype
        return x * self.scale

    def backward(self, g):
        return g * self.scale, None


def relu(x):
    """max(0, x), elementwise."""
    return ReLU.apply(x)


def sigmoid(x):
    """1 / (1 + e^(−x)), elementwise, overflow-free."""
    return Sigmoid.apply(x)


def tanh(x):
    """tanh(x), elementwise."""
    return Tanh.apply(x)


def softmax(x, axis=-1):
    """Probabilities along ``axis``: non-negative, summing to 1."""
    return Softmax.apply(x, axis=axis)


def dropout(x, p=0.5, training=True):
    """Inverted dropout: in training zero each element with probability p and scale the rest
    by 1/(1 − p), so the expected value is unchanged and evaluation needs no rescaling.

    Identity when ``training`` is False or p == 0. The mask is drawn from tinymm's seeded
    generator (``tm.manual_seed``) on the CPU and then moved, so a seed gives the same mask
    on every device.
    """
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"dropout: p must be a number in [0, 1), got {p!r}")
    x = as_tensor(x)
    if not training or p == 0:
        return x
    keep = backend.get_rng().random(x.shape) >= p
    return Dropout.apply(x, Tensor(backend.to_device(keep, x.device)), p=float(p))
