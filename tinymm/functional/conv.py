"""Convolution and pooling: im2col/col2im, conv2d, max and average pooling, nearest upsampling.

Images are (N, C, H, W): batch, channels, height, width, as in PyTorch.

A 2-D convolution slides a small kernel over the image and takes a dot product at every
position. Written as loops that is N·C_out·H_out·W_out dot products, far too slow in Python.
The trick used here (and by most libraries on a CPU) is **im2col**: copy every patch the
kernel sees into one column of a matrix, so that the whole convolution becomes a single
matrix product, which the BLAS library does fast:

    cols   = im2col(x)                                  (C·KH·KW, N·H_out·W_out)
    out    = weight.reshape(C_out, C·KH·KW) @ cols      (C_out,   N·H_out·W_out)

im2col is built by a loop over the KH·KW kernel offsets (i, j), not over pixels: for one
offset, the pixel each output position sees is ``x_padded[:, :, i::stride, j::stride]``,
one strided slice, copied in one go. **col2im** is its adjoint (its transpose as a linear
map): the same loop, but adding each row block back into the image. Where patches overlap
a pixel was copied into several columns, so its gradient is the sum over those columns.

Pooling uses the same offset loop directly on the image: a 2×2 max-pool is the
elementwise maximum of the four strided views x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], ...

Output size of a window of size K, stride S and padding P over a side of length H:
    H_out = (H + 2P − K) // S + 1
The floor drops the last rows/columns when the windows do not fit exactly (as PyTorch does).

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
import numpy as np

from .. import backend
from ..autograd import Function


# ----------------------------------------------------------------------------------------------
# Checking arguments


def as_pair(value, what, op, minimum):
    """An int or an (h, w) pair -> a pair of Python ints, each at least ``minimum``."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)):
        raise TypeError(f"{op}: {what} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in pair):
        raise ValueError(f"{op}: {what} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_image(x, op):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected an input of shape (N, C, H, W), got shape {tuple(x.shape)}")


def _output_size(x_shape, kernel, stride, padding, op):
    """(H_out, W_out) of windows ``kernel`` sliding with ``stride`` over the padded image."""
    (h, w), (kh, kw), (sh, sw), (ph, pw) = x_shape[2:], kernel, stride, padding
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{op}: kernel {kh}x{kw} is larger than the padded input {h + 2 * ph}x{w + 2 * pw} "
                         f"(input {tuple(x_shape)}, padding {ph}x{pw})")
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _offset_view(a, i, j, out_hw, stride):
    """The pixels that kernel offset (i, j) sees at every output position: one strided slice.

    For output position (y, x) the window's top-left corner is (y·S, x·S) in ``a``, so the
    pixel at offset (i, j) inside the window is a[..., i + y·S, j + x·S].
    """
    (ho, wo), (sh, sw) = out_hw, stride
    return a[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]


# ----------------------------------------------------------------------------------------------
# im2col and col2im on arrays (the two halves every conv needs)
#
# The padded image is kept as (C, N, H_pad, W_pad), channels first: then the block of rows
# that one offset fills, cols[c, i, j, :], is already in (N, H_out, W_out) order, and the
# columns come out in the (C·KH·KW, N·H_out·W_out) layout without a further transpose.


def _im2col_array(x, kernel, stride, padding):
    """x (N, C, H, W) -> cols (C·KH·KW, N·H_out·W_out).

    Row c·KH·KW + i·KW + j holds channel c at kernel offset (i, j) (the order of
    W.reshape(C_out, -1)); column n·H_out·W_out + y·W_out + x is output position (y, x) of image n.
    """
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (ph, pw) = kernel, padding
    ho, wo = _output_size(x.shape, kernel, stride, padding, "im2col")
    padded = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = _offset_view(padded, i, j, (ho, wo), stride)
    return cols.reshape(c * kh * kw, n * ho * wo)


def _col2im_array(cols, x_shape, kernel, stride, padding):
    """cols (C·KH·KW, N·H_out·W_out) -> (N, C, H, W): every column entry added back to its pixel."""
    xp = backend.get_array_module(cols)
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    ho, wo = _output_size(x_shape, kernel, stride, padding, "col2im")
    expected = (c * kh * kw, n * ho * wo)
    if tuple(cols.shape) != expected:
        raise ValueError(f"col2im: columns have shape {tuple(cols.shape)} but an image of shape {tuple(x_shape)} "
                         f"with kernel {kh}x{kw}, stride {stride}, padding {padding} needs {expected}")
    cols = cols.reshape(c, kh, kw, n, ho, wo)
    padded = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            # within one offset no two output positions hit the same pixel, so += is exact
            _offset_view(padded, i, j, (ho, wo), stride)[...] += cols[:, i, j]
    return padded[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)


class Im2Col(Function):
    """cols = im2col(x): every kernel-sized patch of x as one column.

    x (N, C, H, W) -> cols (C·KH·KW, N·H_out·W_out).
    Each entry of cols is a copy of one pixel (or of a zero from the padding), so
    dx = col2im(g): every column entry's gradient is added back to the pixel it came from.
    """

    def forward(self, x, kernel, stride, padding):
        _check_image(x, "im2col")
        self.x_shape, self.params = x.shape, (kernel, stride, padding)
        return _im2col_array(x, kernel, stride, padding)

    def backward(self, g):
        return _col2im_array(g, self.x_shape, *self.params)


class Col2Im(Function):
    """x = col2im(cols): add every column entry back to the pixel it was copied from.

    cols (C·KH·KW, N·H_out·W_out) -> (N, C, H, W); padding is cropped away.
    col2im is the adjoint of im2col (⟨col2im(c), x⟩ = ⟨c, im2col(x)⟩), so dcols = im2col(g).
    """

    def forward(self, cols, x_shape, kernel, stride, padding):
        self.params = (kernel, stride, padding)
        return _col2im_array(cols, x_shape, kernel, stride, padding)

    def backward(self, g):
        return _im2col_array(g, *self.params)


def im2col(x, kh, kw, stride=1, padding=0):
    """Every KH×KW patch of x (N, C, H, W) as a column: (C·KH·KW, N·H_out·W_out)."""
    kernel = as_pair((kh, kw), "kernel size", "im2col", 1)
    return Im2Col.apply(x, kernel=kernel, stride=as_pair(stride, "stride", "im2col", 1),
                        padding=as_pair(padding, "padding", "im2col", 0))


def col2im(cols, x_shape, kh, kw, stride=1, padding=0):
    """The adjoint of ``im2col``: columns (C·KH·KW, N·H_out·W_out) summed back into (N, C, H, W)."""
    x_shape = tuple(int(s) for s in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be (N, C, H, W), got {x_shape}")
    kernel = as_pair((kh, kw), "kernel size", "col2im", 1)
    return Col2Im.apply(cols, x_shape=x_shape, kernel=kernel, stride=as_pair(stride, "stride", "col2im", 1),
                        padding=as_pair(padding, "padding", "col2im", 0))


# ----------------------------------------------------------------------------------------------
# Convolution


def _check_conv_inputs(x, weight, bias):
    if x.ndim != 4:
        raise ValueError(f"conv2d: expected an input of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected a weight of shape (C_out, C_in, KH, KW), got shape {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels but weight expects {weight.shape[1]} "
                         f"(input {tuple(x.shape)}, weight {tuple(weight.shape)})")
    if not np.issubdtype(x.dtype, np.floating) or x.dtype != weight.dtype:
        raise TypeError(f"conv2d: input and weight need the same floating-point dtype, got input {x.dtype} "
                        f"and weight {weight.dtype} (convert one with .to(dtype=...))")
    if bias is not None:
        if tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), one value per output channel, "
                             f"got {tuple(bias.shape)} (weight {tuple(weight.shape)})")
        if bias.dtype != weight.dtype:
            raise TypeError(f"conv2d: bias is {bias.dtype} but weight is {weight.dtype}")


class Conv2d(Function):
    """out[n, o, y, x] = b[o] + Σ_{c,i,j} W[o, c, i, j] · x_pad[n, c, y·S + i, x·S + j].

    x (N, C, H, W), W (C_out, C, KH, KW), b (C_out,) -> out (N, C_out, H_out, W_out).
    Forward: out_mat = W_mat @ cols with W_mat = W.reshape(C_out, C·KH·KW), cols = im2col(x).
    Backward, with g_mat = g laid out as (C_out, N·H_out·W_out):
        dW = g_mat @ colsᵀ,   db = g summed over N, H_out, W_out,   dx = col2im(W_matᵀ @ g_mat).
    """

    def forward(self, x, weight, bias=None, stride=(1, 1), padding=(0, 0)):
        _check_conv_inputs(x, weight, bias)
        c_out, _, kh, kw = weight.shape
        n = x.shape[0]
        ho, wo = _output_size(x.shape, (kh, kw), stride, padding, "conv2d")
        self.cols = _im2col_array(x, (kh, kw), stride, padding)
        self.weight, self.x_shape, self.params = weight, x.shape, ((kh, kw), stride, padding)
        out = weight.reshape(c_out, -1) @ self.cols                  # (C_out, N·H_out·W_out)
        if bias is not None:
            out += bias[:, None]
        # (N, C_out, H_out, W_out) as a transposed VIEW of that memory, not a copy: elementwise
        # ops and pooling keep this channel-major order, and backward's g_mat below is then a
        # free reshape (copying here and back again cost time: see benchmarks/README.md)
        return out.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)

    def backward(self, g):
        c_out = g.shape[1]
        # (C_out, N·H_out·W_out); copies only if g is not in channel-major memory already
        g_mat = g.transpose(1, 0, 2, 3).reshape(c_out, -1)
        w_mat = self.weight.reshape(c_out, -1)                       # (C_out, C·KH·KW)
        grad_x = grad_w = grad_b = None
        if self.needs_input_grad[1]:
            # dWᵀ = cols @ g_matᵀ: the same product, in the operand order NumPy's BLAS ran
            # faster for these long, thin matrices (measured: benchmarks/README.md)
            grad_w = (self.cols @ g_mat.T).T.reshape(self.weight.shape)
        if self.needs_input_grad[2]:  # False when bias is None
            grad_b = g_mat.sum(axis=1)
        # dW was the last use of the columns. Dropping them before dx is computed means the
        # columns and their gradient (each C·KH·KW·N·H_out·W_out numbers, the largest arrays
        # of the step) are never in memory at the same time.
        if not self.retain_graph:
            del self.cols
        if self.needs_input_grad[0]:
            grad_x = _col2im_array(w_mat.T @ g_mat, self.x_shape, *self.params)
        return grad_x, grad_w, grad_b


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    x (N, C, H, W); weight (C_out, C, KH, KW); bias (C_out,) or None; stride and padding an
    int or an (h, w) pair; zero padding. Returns (N, C_out, H_out, W_out) with
    H_out = (H + 2·padding − KH) // stride + 1.
    """
    params = dict(stride=as_pair(stride, "stride", "conv2d", 1), padding=as_pair(padding, "padding", "conv2d", 0))
    return Conv2d.apply(x, weight, bias, **params)


# ----------------------------------------------------------------------------------------------
# Pooling


def _pool_args(x, kernel_size, stride, op):
    _check_image(x, op)
    kernel = as_pair(kernel_size, "kernel_size", op, 1)
    stride = kernel if stride is None else as_pair(stride, "stride", op, 1)
    out_hw = _output_size(x.shape, kernel, stride, (0, 0), op)
    return kernel, stride, out_hw


def _offsets(kernel):
    """The kernel offsets (i, j) in row-major order: (0, 0), (0, 1), ..., (KH−1, KW−1)."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _window_sum(x, kernel, stride, out_hw):
    """The sum of every KH×KW window of x: (N, C, H, W) -> (N, C, H_out, W_out).

    One strided view per kernel offset, added up (NumPy's .sum over two short axes of a
    reshaped array was measured slower: benchmarks/README.md)."""
    offsets = _offsets(kernel)
    total = _offset_view(x, *offsets[0], out_hw, stride).copy()
    for i, j in offsets[1:]:
        total += _offset_view(x, i, j, out_hw, stride)
    return total


class MaxPool2d(Function):
    """out[n, c, y, x] = max of the KH×KW window of x at (y·S, x·S).

    x (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H − KH) // S + 1 (leftover rows dropped).
    Forward: the elementwise maximum of the KH·KW strided views, one per kernel offset.
    dx = g routed to the position of each window's maximum, 0 elsewhere; where windows
    overlap, a pixel that is the maximum of several windows gets the sum of their gradients.
    Ties: when several entries of a window share the maximum, the FIRST of them in row-major
    order inside the window gets the whole gradient (deterministic, and a valid subgradient).
    Forward also records, per window, the number k of that first maximal offset (``winner``,
    one byte per window). That is all backward needs, so x itself is not kept (it is the
    largest array here): backward writes g into offset k's view wherever winner == k.
    """

    def forward(self, x, kernel, stride, out_hw):
        xp = backend.get_array_module(x)
        views = [_offset_view(x, i, j, out_hw, stride) for i, j in _offsets(kernel)]
        # maximum(first, last) rather than first.copy(): a ufunc's result keeps x's memory
        # order (conv2d hands over a channel-major view), where .copy() would reorder it
        out = xp.maximum(views[0], views[-1])
        for view in views[1:-1]:
            xp.maximum(out, view, out=out)
        self.x_shape, self.params = x.shape, (kernel, stride, out_hw)
        if not self.will_backward:  # evaluation: the winners are for backward only
            return out
        # winner = the number of offsets before the first one that holds the maximum:
        # not_found says "no offset so far held it"; adding it up counts those offsets
        not_found = views[0] != out
        winner = not_found.astype(np.min_scalar_type(len(views) - 1))
        for view in views[1:-1]:
            not_found &= view != out
            winner += not_found
        self.winner = winner
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        kernel, stride, out_hw = self.params
        overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]
        # zeros in x's memory order (winner was computed from x's views, so it has that order)
        grad = xp.zeros_like(self.winner, dtype=g.dtype, shape=self.x_shape)
        for k, (i, j) in enumerate(_offsets(kernel)):
            target = _offset_view(grad, i, j, out_hw, stride)
            if overlapping:
                target += g * (self.winner == k)  # a pixel may win several windows: add up
            else:
                xp.multiply(g, self.winner == k, out=target)  # each pixel is in one window: write once
        return grad


def max_pool2d(x, kernel_size, stride=None):
    """Max over K×K windows; stride defaults to kernel_size. (N, C, H, W) -> (N, C, H_out, W_out)."""
    kernel, stride, out_hw = _pool_args(x, kernel_size, stride, "max_pool2d")
    return MaxPool2d.apply(x, kernel=kernel, stride=stride, out_hw=out_hw)


class AvgPool2d(Function):
    """out[n, c, y, x] = mean of the K×K window of x at (y·S, x·S).

    x (N, C, H, W) -> (N, C, H_out, W_out), H_out = (H − KH) // S + 1.
    Every pixel of a window contributes 1/(KH·KW) to its mean, so dx gets g / (KH·KW) at
    every pixel of the window (summed where windows overlap; 0 for dropped rows/columns).
    """

    def forward(self, x, kernel, stride, out_hw):
        self.x_shape, self.x_dtype, self.params = x.shape, x.dtype, (kernel, stride, out_hw)
        out = _window_sum(x, kernel, stride, out_hw)
        out /= kernel[0] * kernel[1]
        return out

    def backward(self, g):
        xp = backend.get_array_module(g)
        kernel, stride, out_hw = self.params
        offsets = _offsets(kernel)
        share = g / len(offsets)
        grad = xp.zeros(self.x_shape, dtype=self.x_dtype)
        for i, j in offsets:
            _offset_view(grad, i, j, out_hw, stride)[...] += share
        return grad


def avg_pool2d(x, kernel_size, stride=None):
    """Mean over K×K windows; stride defaults to kernel_size. (N, C, H, W) -> (N, C, H_out, W_out)."""
    kernel, stride, out_hw = _pool_args(x, kernel_size, stride, "avg_pool2d")
    return AvgPool2d.apply(x, kernel=kernel, stride=stride, out_hw=out_hw)


class GlobalAvgPool2d(Function):
    """out[n, c] = mean of x[n, c] over all H·W pixels.   x (N, C, H, W) -> (N, C).

    dx[n, c, y, x] = g[n, c] / (H·W) at every pixel.
    """

    def forward(self, x):
        _check_image(x, "global_avg_pool2d")
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, g):
        xp = backend.get_array_module(g)
        n, c, h, w = self.x_shape
        return xp.broadcast_to((g / (h * w))[:, :, None, None], self.x_shape)


def global_avg_pool2d(x):
    """The mean of every channel over the whole image: (N, C, H, W) -> (N, C)."""
    return GlobalAvgPool2d.apply(x)


class UpsampleNearest2d(Function):
    """out[n, c, y, x] = x[n, c, y // s, x // s]: every pixel becomes an s×s block.

    x (N, C, H, W) -> (N, C, H·s, W·s). Each input pixel is copied to s·s output pixels,
    so dx[n, c, y, x] = the sum of g over that pixel's s×s block.
    """

    def forward(self, x, scale):
        xp = backend.get_array_module(x)
        n, c, h, w = x.shape
        self.scale = scale
        out = xp.empty((n, c, h * scale, w * scale), dtype=x.dtype)
        # pixel (y, x) of offset (i, j)'s strided view is output pixel (y·s + i, x·s + j):
        # copying x into each of the s·s views fills every block (backward adds them up)
        for i, j in _offsets((scale, scale)):
            _offset_view(out, i, j, (h, w), (scale, scale))[...] = x
        return out

    def backward(self, g):
        s = self.scale  # the block sums are the windows of an s×s sum-pool with stride s
        return _window_sum(g, (s, s), (s, s), (g.shape[2] // s, g.shape[3] // s))


def upsample_nearest2d(x, scale_factor=2):
    """Nearest-neighbour upsampling by an integer factor: (N, C, H, W) -> (N, C, H·s, W·s)."""
    _check_image(x, "upsample_nearest2d")
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, (int, np.integer)) or scale_factor < 1:
        raise ValueError(f"upsample_nearest2d: scale_factor must be a positive integer, got {scale_factor!r}")
    return UpsampleNearest2d.apply(x, scale=int(scale_factor))
