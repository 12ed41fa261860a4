"""The basic differentiable ops: arithmetic, reductions, shapes, indexing, matmul.

Each op is a ``Function`` with its forward and backward next to each other. Shapes use
NumPy's broadcasting; every elementwise backward hands its gradient to ``unbroadcast``,
the single place where broadcasting is undone.

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
import builtins
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, _is_float


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    When an input of shape (3,) is added to a (4, 3) array, it is silently copied to
    every one of the 4 rows; each copy contributes to the loss, so its gradient is the sum
    over those rows. In general: sum over the leading axes broadcasting added, then over
    every axis where the input had size 1, keeping that axis.
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _operands(op, a, b):
    """Check two operands of an elementwise op; return them with matching float dtypes.

    They must broadcast. Two float operands must share a dtype: NumPy would quietly promote
    float32 + float64 to float64, so a float64 array could leak into a float32 model and make
    it twice as slow unnoticed; here that is an error. An integer or boolean operand (a mask,
    a count) is converted to the other operand's float dtype, as a Python number would be.
    """
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None
    _check_same_float(op, a, b)
    if _is_float(a.dtype) and not _is_float(b.dtype):
        b = b.astype(a.dtype)
    elif _is_float(b.dtype) and not _is_float(a.dtype):
        a = a.astype(b.dtype)
    return a, b


def _check_same_float(op, a, b):
    if _is_float(a.dtype) and _is_float(b.dtype) and a.dtype != b.dtype:
        raise TypeError(f"{op}: mixed float dtypes {a.dtype} and {b.dtype} (shapes {tuple(a.shape)} and "
                        f"{tuple(b.shape)}); convert one with .to(dtype=...) first")


# ----------------------------------------------------------------------------------------------
# Elementwise arithmetic


class Add(Function):
    """out = a + b (broadcasting).   da = g,  db = g  (each summed back to its shape)."""

    def forward(self, a, b):
        a, b = _operands("add", a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(Function):
    """out = a - b (broadcasting).   da = g,  db = -g."""

    def forward(self, a, b):
        a, b = _operands("sub", a, b)
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(-g, self.b_shape)


class Mul(Function):
    """out = a * b (broadcasting).   da = g * b,  db = g * a."""

    def forward(self, a, b):
        a, b = _operands("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        grad_a = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    """out = a / b (broadcasting).   da = g / b,  db = -g * a / b² = -g * out / b."""

    def forward(self, a, b):
        a, b = _operands("div", a, b)
        self.a_shape, self.b = a.shape, b
        self.out = a / b
        return self.out

    def backward(self, g):
        grad_a = unbroadcast(g / self.b, self.a_shape) if self.needs_input_grad[0] else None
        grad_b = unbroadcast(-g * self.out / self.b, self.b.shape) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    """out = -x.   dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    """out = x ** p for a constant number p.   dx = g * p * x**(p-1)."""

    def forward(self, x, exponent):
        self.x, self.p = x, exponent
        return x ** exponent

    def backward(self, g):
        return g * self.p * self.x ** (self.p - 1)


class Exp(Function):
    """out = eˣ.   dx = g * eˣ = g * out (the output is saved, not recomputed)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.out = xp.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    """out = ln x.   dx = g / x."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.x = x
        return xp.log(x)

    def backward(self, g):
        return g / self.x


def add(a, b):
    return Add.apply(a, b)


def sub(a, b):
    return Sub.apply(a, b)


def mul(a, b):
    return Mul.apply(a, b)


def div(a, b):
    return Div.apply(a, b)


def neg(x):
    return Neg.apply(x)


def pow(x, exponent):
    if isinstance(exponent, Tensor) or backend.is_array(exponent):
        raise TypeError("pow: the exponent must be a Python number (x ** 2, x ** 0.5); "
                        "for a tensor exponent write exp(b * log(x))")
    return Pow.apply(x, exponent=exponent)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


# ----------------------------------------------------------------------------------------------
# Reductions


# The one place an ``axis`` argument is checked: every op that takes one calls these two.


def normalize_axes(axis, shape, op):
    """axis (None, int or tuple, negatives allowed) of an input of ``shape`` -> a sorted tuple of
    non-negative axes (a 0-d input accepts axis 0 and -1, as NumPy's reductions do)."""
    ndim = len(shape)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a!r} is out of range for an input of shape {tuple(shape)}")
    return tuple(sorted(int(a) % builtins.max(ndim, 1) for a in axes))


def check_axis(op, shape, axis):
    """One int ``axis`` of an input of ``shape`` (negatives allowed) -> that axis, non-negative."""
    if not isinstance(axis, numbers.Integral) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"{op}: axis {axis!r} is out of range for an input of shape {tuple(shape)}")
    return int(axis) % len(shape)


def _expand_reduced(g, in_shape, axes, keepdims):
    """Give a reduced gradient back its reduced axes (size 1) so it broadcasts to the input."""
    if not keepdims:
        g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(in_shape)))
    return g


class Sum(Function):
    """out = x summed over ``axis``.   dx = g copied back along the summed axes."""

    def forward(self, x, axis=None, keepdims=False):
        self.in_shape = x.shape
        self.axes = normalize_axes(axis, x.shape, "sum")
        self.keepdims = keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.broadcast_to(_expand_reduced(g, self.in_shape, self.axes, self.keepdims), self.in_shape)


class Mean(Function):
    """out = mean of x over ``axis`` (n elements each).   dx = g / n copied back along those axes."""

    def forward(self, x, axis=None, keepdims=False):
        self.in_shape = x.shape
        self.axes = normalize_axes(axis, x.shape, "mean")
        self.keepdims = keepdims
        self.count = int(np.prod([x.shape[a] for a in self.axes]))
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = backend.get_array_module(g)
        g = _expand_reduced(g, self.in_shape, self.axes, self.keepdims) / self.count
        return xp.broadcast_to(g, self.in_shape)


class Max(Function):
    """out = max of x over ``axis``.   dx = g at the position of the maximum, 0 elsewhere.

    When several entries tie for the maximum, the whole gradient goes to the first of them
    (in row-major order over the reduced axes), as argmax picks it: deterministic, and the
    result is a valid subgradient.
    """

    def forward(self, x, axis=None, keepdims=False):
        xp = backend.get_array_module(x)
        if x.size == 0:
            raise ValueError(f"max: cannot take the maximum of an empty tensor of shape {tuple(x.shape)}")
        self.in_shape = x.shape
        self.axes = normalize_axes(axis, x.shape, "max")
        self.keepdims = keepdims
        # move the reduced axes to the end and flatten them, so one argmax finds each maximum
        kept = [a for a in range(x.ndim) if a not in self.axes]
        self.perm = kept + list(self.axes)
        moved = x.transpose(self.perm)
        flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
        self.moved_shape = moved.shape
        self.argmax = flat.argmax(axis=-1)
        self.n_reduced = flat.shape[-1]
        return x.max(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        xp = backend.get_array_module(g)
        first_max = xp.arange(self.n_reduced) == self.argmax[..., None]  # one-hot, (kept..., K)
        g_kept = g.reshape(self.argmax.shape + (1,))
        grad_moved = (first_max * g_kept).reshape(self.moved_shape)
        return grad_moved.transpose(np.argsort(self.perm))


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    return Max.apply(x, axis=axis, keepdims=keepdims)


# ----------------------------------------------------------------------------------------------
# Shapes and indexing


class Reshape(Function):
    """out = x with a new shape (same elements, same order).   dx = g reshaped back."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} "
                             f"({x.size} elements) into {tuple(shape)}") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    """out = x with its axes permuted.   dx = g with the inverse permutation applied."""

    def forward(self, x, axes=None):
        axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(a % builtins.max(x.ndim, 1) for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                             f"of a tensor of shape {tuple(x.shape)}")
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        return g.transpose(np.argsort(self.axes))


def reshape(x, shape):
    return Reshape.apply(x, shape=tuple(shape))


def transpose(x, axes=None):
    return Transpose.apply(x, axes=axes)


def _is_basic_index(index):
    """Integers, slices, None and ... only: every element is picked at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


def _index_on_device(index, xp):
    """Tensors, lists and arrays inside an index become arrays of the data's module (one place).

    Host values (lists, NumPy arrays) follow the data to its device; an index array already
    on the data's device is used as it is (no round trip through the host); an index on the
    other device is an error, as for any two tensors on different devices.
    """
    device = "cpu" if xp is np else "cuda"

    def convert(part):
        if isinstance(part, Tensor):
            part = part.data
        if isinstance(part, list):
            part = np.asarray(part)
        if backend.is_array(part) and backend.device_of(part) != device:
            if backend.device_of(part) != "cpu":
                raise ValueError(f"getitem: the index is on {backend.device_of(part)} but the tensor on "
                                 f"{device}; move the index with .to('{device}') first")
            part = backend.to_device(part, device)
        return part
    if isinstance(index, tuple):
        return tuple(convert(p) for p in index)
    return convert(index)


class GetItem(Function):
    """out = x[index] (basic slicing or integer/boolean array indexing).

    dx = zeros of x's shape with g added at the indexed positions. With integer arrays a
    position may be picked twice (x[[0, 0]]); each pick adds its gradient (a scatter-add).
    """

    def forward(self, x, index):
        xp = backend.get_array_module(x)
        self.index = _index_on_device(index, xp)
        self.in_shape, self.dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as err:
            raise IndexError(f"getitem: {err} (tensor of shape {tuple(x.shape)})") from None

    def backward(self, g):
        xp = backend.get_array_module(g)
        grad = xp.zeros(self.in_shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = g
        else:
            backend.scatter_add(grad, self.index, g)
        return grad


def getitem(x, index):
    return GetItem.apply(x, index=index)


class Concatenate(Function):
    """out = the inputs joined along ``axis``.   d(input i) = the slice of g it came from."""

    def forward(self, *arrays, axis=0):
        xp = backend.get_array_module(*arrays)
        try:
            out = xp.concatenate(arrays, axis=axis)
        except ValueError:  # numpy's AxisError is a ValueError too
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            raise ValueError(f"concatenate: cannot join shapes {shapes} along axis {axis}") from None
        self.axis = axis
        self.split_at = np.cumsum([a.shape[axis] for a in arrays])[:-1].tolist()
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        return tuple(xp.split(g, self.split_at, axis=self.axis))


class Stack(Function):
    """out = the inputs stacked along a new ``axis``.   d(input i) = g indexed at i on that axis."""

    def forward(self, *arrays, axis=0):
        xp = backend.get_array_module(*arrays)
        shapes = {tuple(a.shape) for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"stack: all inputs need the same shape, got {sorted(shapes)}")
        self.axis = axis
        return xp.stack(arrays, axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return tuple(xp.moveaxis(g, self.axis, 0))


def concatenate(tensors, axis=0):
    if len(tensors) == 0:
        raise ValueError("concatenate: needs at least one tensor")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    if len(tensors) == 0:
        raise ValueError("stack: needs at least one tensor")
    return Stack.apply(*tensors, axis=axis)


# ----------------------------------------------------------------------------------------------
# Matrix product


class MatMul(Function):
    """out = a @ b, with NumPy's rules: batched over leading axes, which broadcast.

    For matrices (n, k) @ (k, m):   da = g @ bᵀ  (n, m)(m, k),   db = aᵀ @ g  (k, n)(n, m).
    Batched: the same per matrix, then ``unbroadcast`` sums over batch axes an input was
    broadcast along. A 1-D input is treated as a row (a) or column (b) vector.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: inputs must have at least one dimension, got shapes "
                             f"{tuple(a.shape)} and {tuple(b.shape)} (use * for scalars)")
        k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(f"matmul: inner dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)} "
                             f"({k_a} != {k_b})")
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: batch dimensions of {tuple(a.shape)} and {tuple(b.shape)} "
                             f"do not broadcast") from None
        _check_same_float("matmul", a, b)
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a          # (…, n, k)
        b2 = b[:, None] if b.ndim == 1 else b          # (…, k, m)
        if a.ndim == 1:
            g = g[..., None, :]
        if b.ndim == 1:
            g = g[..., None]
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = unbroadcast(g @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            grad_b = unbroadcast(a2.swapaxes(-1, -2) @ g, b2.shape).reshape(b.shape)
        return grad_a, grad_b


def matmul(a, b):
    return MatMul.apply(a, b)


# ----------------------------------------------------------------------------------------------
# Moving between devices and dtypes


class ToDevice(Function):
    """out = x copied to another device.   dx = g copied back to x's device."""

    def forward(self, x, device):
        self.source = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, g):
        return backend.to_device(g, self.source)


class Cast(Function):
    """out = x converted to another float dtype.   dx = g converted back."""

    def forward(self, x, dtype):
        self.source = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.source)


def to_device(x, device):
    return ToDevice.apply(x, device=device)


def cast(x, dtype):
    return Cast.apply(x, dtype=np.dtype(dtype))
