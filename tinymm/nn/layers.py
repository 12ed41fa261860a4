"""The layers: small Modules that hold parameters and call one op from ``tinymm.functional``.

A layer does no calculus of its own. ``Linear.forward`` is ``F.linear(x, weight, bias)``;
the gradient comes from the backward pass written next to that op in
``tinymm/functional/linear.py``. What a layer adds is ownership: it creates its weights
with the right shapes and initial values, and registers them so an optimiser finds them.

Shapes and parameter names follow PyTorch (``Linear.weight`` is (out_features,
in_features), ``Conv2d.weight`` is (out_channels, in_channels, KH, KW)), so weights load
from a PyTorch ``state_dict`` by name.
"""
import numpy as np

from .. import functional as F
from ..functional.conv import as_pair
from . import init
from .module import Module, Parameter


def _positive_int(value, what, layer):
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{layer}: {what} must be a positive int, got {value!r}")
    return int(value)


class Linear(Module):
    """y = x Wᵀ + b.   x (..., in_features) -> y (..., out_features).

    weight (out_features, in_features) and bias (out_features,) start uniform in
    ±1/√in_features (PyTorch's default; see ``nn/init.py``).
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        self.weight = Parameter(init.empty((self.out_features, self.in_features)))
        self.bias = Parameter(init.empty((self.out_features,))) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight)
        if self.bias is not None:
            init.bias_uniform_(self.bias, self.in_features)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution.   x (N, in_channels, H, W) -> (N, out_channels, H_out, W_out).

    weight (out_channels, in_channels, KH, KW), bias (out_channels,); both start uniform in
    ±1/√fan_in with fan_in = in_channels·KH·KW. The op is ``F.conv2d`` (im2col + one
    matrix product, in ``tinymm/functional/conv.py``).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = _positive_int(out_channels, "out_channels", "Conv2d")
        self.kernel_size = as_pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = as_pair(stride, "stride", "Conv2d", 1)
        self.padding = as_pair(padding, "padding", "Conv2d", 0)
        self.weight = Parameter(init.empty((self.out_channels, self.in_channels) + self.kernel_size))
        self.bias = Parameter(init.empty((self.out_channels,))) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight)
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight.shape)
            init.bias_uniform_(self.bias, fan_in)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
        return text + (", bias=False" if self.bias is None else "")


class _Pool2d(Module):
    """What both pooling layers share: a window size and a stride (defaulting to the window)."""

    pool = None  # the functional op, set by each subclass

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride

    def forward(self, x):
        return self.pool(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_Pool2d):
    """The maximum over each kernel_size window; stride defaults to kernel_size (no overlap)."""

    pool = staticmethod(F.max_pool2d)


class AvgPool2d(_Pool2d):
    """The mean over each kernel_size window; stride defaults to kernel_size."""

    pool = staticmethod(F.avg_pool2d)


class Upsample(Module):
    """Nearest-neighbour upsampling: each pixel becomes a scale_factor × scale_factor block."""

    def __init__(self, scale_factor=2):
        super().__init__()
        self.scale_factor = scale_factor

    def forward(self, x):
        return F.upsample_nearest2d(x, self.scale_factor)

    def extra_repr(self):
        return f"scale_factor={self.scale_factor}, mode='nearest'"


class Embedding(Module):
    """A lookup table: integer ids (...,) -> rows of ``weight`` (..., embedding_dim).

    weight (num_embeddings, embedding_dim) starts N(0, 1). With ``padding_idx`` that row
    starts at zero and receives no gradient, so it stays zero (as in PyTorch). The op is
    ``F.embedding`` (``tinymm/functional/embedding.py``).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is outside the table of "
                                 f"{self.num_embeddings} rows")
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.weight = Parameter(init.empty((self.num_embeddings, self.embedding_dim)))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids):
        return F.embedding(ids, self.weight, padding_idx=self.padding_idx)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class ReLU(Module):
    """max(0, x), elementwise."""

    def forward(self, x):
        return F.relu(x)


class Sigmoid(Module):
    """1 / (1 + e^(−x)), elementwise."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x), elementwise."""

    def forward(self, x):
        return F.tanh(x)


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1·d2·...): keeps the batch axis, joins the rest."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1−p);
    in evaluation (``model.eval()``), pass x through unchanged."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class ModuleList(Module):
    """A list of Modules whose parameters are registered ("0.weight", "1.weight", ...).

    A plain Python list would hide its layers from ``parameters()``; use this instead when a
    model holds a variable number of layers and calls them in its own ``forward``.
    """

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: every layer must be a Module, got "
                            f"{type(module).__name__} at position {len(self)}")
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return layers[index]
        if not -len(layers) <= index < len(layers):
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for {len(layers)} layers")
        return layers[index]


class Sequential(ModuleList):
    """Layers applied one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    The layers are registered as children "0", "1", "2", ..., so their parameters are named
    "0.weight", "2.bias", ... as in PyTorch. Index it like a list: ``seq[0]``, ``seq[-1]``,
    ``seq[1:]`` (a new Sequential sharing the same layers), ``len(seq)``.
    """

    def __init__(self, *layers):
        super().__init__(layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*super().__getitem__(index))
        return super().__getitem__(index)

    def forward(self, x):
        for layer in self:
            x = layer(x)
        return x
