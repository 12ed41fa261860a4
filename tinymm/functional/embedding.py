"""Embedding lookup and masked mean pooling: how token ids become one vector per caption.

An embedding table is a weight matrix W of shape (num_embeddings, dim): row v is the vector
of token v. Looking up ids is just indexing, W[ids]. Its backward is the interesting part:
a token that appears several times in a batch must collect the gradient of *every*
appearance, which is a scatter-add, not an assignment.

Masked mean pooling then averages the token vectors of each caption, skipping the padding
tokens that make all captions the same length.

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from .basic import check_axis


class Embedding(Function):
    """out = W[ids]: ids int (...,), W (num_embeddings, dim) -> out (..., dim).

    dW = zeros (num_embeddings, dim), then g[p] is *added* to row ids[p] for every position p
    (a scatter-add). An id that occurs k times gets the sum of its k gradients; a plain
    ``dW[ids] = g`` would keep only one of them. The row ``padding_idx`` (if given) gets no
    gradient. The ids are integers: they get no gradient at all.
    """

    def forward(self, ids, weight, padding_idx=None):
        _check_embedding(ids, weight)
        self.ids, self.weight_shape, self.padding_idx = ids, weight.shape, padding_idx
        return weight[ids]

    def backward(self, g):
        xp = backend.get_array_module(g)
        grad = xp.zeros(self.weight_shape, dtype=g.dtype)
        backend.scatter_add(grad, self.ids.reshape(-1), g.reshape(-1, self.weight_shape[1]))
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return None, grad


def _check_embedding(ids, weight):
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {tuple(weight.shape)}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype} (shape {tuple(ids.shape)})")
    if isinstance(ids, np.ndarray):
        check_ids(ids, weight.shape[0])


def check_ids(ids, num_embeddings, op="embedding"):
    """Raise a clear error if a host array of ids has one outside [0, num_embeddings).

    Only host (NumPy) ids are checked. Reading ids that already live on a GPU would make the
    CPU wait for every queued kernel (a host–device synchronisation) in every step, so ids
    are checked on the host before they are copied (``embedding`` and the models' inputs do
    it), and ids the code made itself on the device (positions from ``xp.arange``) need none.
    On a GPU an unchecked id out of range reads another row (CuPy wraps it) without an error.
    """
    ids = np.asarray(ids)
    if ids.size and np.issubdtype(ids.dtype, np.integer):
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= num_embeddings:
            raise ValueError(f"{op}: ids must be in [0, {num_embeddings}) for a table of num_embeddings="
                             f"{num_embeddings} rows, got min {low} and max {high} (ids {tuple(ids.shape)})")


def embedding(ids, weight, padding_idx=None):
    """Look up rows of ``weight``: ids int (...,), weight (num_embeddings, dim) -> (..., dim).

    ``padding_idx``: a row that receives no gradient (the output still holds its values).
    Host ids (a list, a NumPy array) are checked on the host, then follow the weight to its
    device; ids already on the GPU are not read back (see ``check_ids``).
    """
    raw, table = (x.data if isinstance(x, Tensor) else x for x in (ids, weight))
    if backend.on_gpu(table) and not backend.on_gpu(raw):
        check_ids(raw, weight.shape[0])  # before the copy (on the CPU, forward checks them)
    if padding_idx is not None:
        rows = weight.shape[0]
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral) \
                or not -rows <= padding_idx < rows:
            raise ValueError(f"embedding: padding_idx {padding_idx!r} is not a row of a table with {rows} rows")
        padding_idx = int(padding_idx) % rows
    return Embedding.apply(ids, weight, padding_idx=padding_idx)


class MaskedMean(Function):
    """out = Σ_l m_l x_l / max(c, 1) along ``axis``, c = Σ_l m_l the number of real tokens.

    x (N, L, D), mask m (N, L) with 1 (or True) for a real token, 0 for padding -> out (N, D).
    dx_l = g · m_l / max(c, 1): each real token gets an equal share of g, padding gets 0.
    A row without real tokens gives 0 (not 0/0 = NaN) and passes no gradient.
    In general the mask's shape is x's shape up to and including ``axis``.
    """

    def forward(self, x, mask, axis=1):
        xp = backend.get_array_module(x)
        axis = _check_masked_mean(x, mask, axis)
        # the mask gets size-1 axes on the right so it broadcasts over the feature axes
        m = mask.astype(x.dtype).reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
        count = m.sum(axis=axis, keepdims=True)
        self.share = m / xp.maximum(count, 1)  # the weight of each token in its row's mean
        self.axis = axis
        return (x * self.share).sum(axis=axis)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return xp.expand_dims(g, self.axis) * self.share, None


def _check_masked_mean(x, mask, axis):
    axis = check_axis("masked_mean", x.shape, axis)
    if mask.ndim <= axis or tuple(mask.shape) != tuple(x.shape[:mask.ndim]):
        raise ValueError(f"masked_mean: mask of shape {tuple(mask.shape)} does not match input "
                         f"{tuple(x.shape)} along axes 0..{axis} (e.g. x (N, L, D) needs mask (N, L))")
    if mask.dtype != bool and isinstance(mask, np.ndarray):
        _check_mask_values(mask)
    return axis


def _check_mask_values(mask):
    """A host mask must hold only 0/1 (checked on the host: a mask already on the GPU is not read
    back, as for ids and targets)."""
    mask = np.asarray(mask)
    if mask.dtype != bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"masked_mean: mask must hold only 0/1 or True/False, got values "
                         f"{np.unique(mask)[:5].tolist()} (dtype {mask.dtype})")


def masked_mean(x, mask, axis=1):
    """Mean of x over ``axis`` counting only positions where ``mask`` is true.

    x (N, L, D) token vectors, mask (N, L) bool or 0/1 (True = real token) -> (N, D).
    A host mask (list, NumPy array) is checked on the host, then follows x to its device.
    """
    raw, values = (t.data if isinstance(t, Tensor) else t for t in (mask, x))
    if backend.on_gpu(values) and not backend.on_gpu(raw):
        _check_mask_values(raw)  # before the copy (on the CPU, forward checks it)
    return MaskedMean.apply(x, mask, axis=axis)
