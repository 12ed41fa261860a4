"""Losses: log-softmax, softmax cross-entropy, mean squared error, and the CLIP loss.

A classifier outputs one score (logit) per class. Softmax turns scores into probabilities,
p_c = e^(z_c) / Σ_k e^(z_k), and the cross-entropy with a target distribution t is
L = −Σ_c t_c log p_c. For a hard label y, t is one-hot and L = −log p_y.

Two facts make this one op rather than three:
- log p_c = z_c − log Σ_k e^(z_k). The log-sum-exp is computed as m + log Σ_k e^(z_k − m)
  with m = max_k z_k, so no e^(...) exceeds 1: logits of ±1e4 give a finite loss. A naive
  softmax-then-log overflows to inf/NaN there (lesson 05 shows it).
- The gradient is beautifully simple: dL/dz = p − t (softmax minus target).

``clip_loss`` is deliberately *not* a Function: it is composed from the ops above so that
lesson 11 can derive its gradient by hand and compare with what autograd finds.

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, as_tensor
from .activation import sigmoid_and_exp
from .basic import check_axis

REDUCTIONS = ("mean", "sum", "none")


def _log_softmax(x, axis):
    """log softmax(x) along ``axis`` on arrays: (x − m) − log Σ e^(x − m), m the maximum."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """y = log softmax(x) = x − logsumexp(x) along ``axis``.

    dy_i/dx_k = δ_ik − p_k with p = softmax(x) = e^y, so
        dx = g − p · Σ_i g_i          (the sum along ``axis``, kept for broadcasting)
    """

    def forward(self, x, axis=-1):
        check_axis("log_softmax", x.shape, axis)
        self.axis = axis
        self.y = _log_softmax(x, axis)
        return self.y

    def backward(self, g):
        xp = backend.get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log of the softmax along ``axis``, computed stably (log-sum-exp with the max subtracted)."""
    return LogSoftmax.apply(x, axis=axis)


# ----------------------------------------------------------------------------------------------
# Softmax cross-entropy


class SoftmaxCrossEntropy(Function):
    """Cross-entropy between softmax(logits) and the targets, over the last axis (classes).

    logits (N, C) [or (N, L, C)]; targets either integer class ids (N,) [(N, L)] or
    probabilities (N, C) [(N, L, C)] whose rows sum to 1. Per row: ℓ = −Σ_c t_c log p_c,
    p = softmax(logits), t the target distribution (one-hot for a class id).
    Rows whose id is ``ignore_index`` give ℓ = 0 and do not count in the mean.
    out: the mean of ℓ over counted rows ("mean"), their sum ("sum"), or ℓ itself ("none").

    d logits = (p − t) · w,  d targets = −log p · w   (soft targets only)
    where w is each row's weight in the output: g/count (mean), g (sum), g per row (none),
    and 0 for an ignored row. (p − t) uses Σ_c t_c = 1.
    """

    def forward(self, logits, targets, reduction="mean", ignore_index=None):
        xp = backend.get_array_module(logits)
        # shapes, dtypes and settings were checked once, by softmax_cross_entropy
        self.soft = bool(np.issubdtype(targets.dtype, np.floating))
        self.reduction = reduction
        self.log_p = _log_softmax(logits, -1)
        if self.soft:
            self.target = targets.astype(logits.dtype, copy=False)
            self.valid = None
            per_row = -(self.target * self.log_p).sum(axis=-1)
        else:
            self.valid = None if ignore_index is None else targets != ignore_index
            # an ignored row looks up class 0 and is then multiplied by 0
            self.ids = targets if self.valid is None else xp.where(self.valid, targets, 0)
            per_row = -xp.take_along_axis(self.log_p, self.ids[..., None], axis=-1)[..., 0]
            if self.valid is not None:
                per_row = per_row * self.valid
        self.rows_shape = per_row.shape
        # the number of counted rows (at least 1). With ignore_index it stays a 0-d array:
        # turning it into a Python int would make a GPU wait (a host–device synchronisation)
        self.count = max(per_row.size, 1) if self.valid is None else \
            xp.maximum(self.valid.sum(), 1).astype(logits.dtype)
        if reduction == "none":
            return per_row
        total = per_row.sum()
        return total if reduction == "sum" else total / self.count

    def backward(self, g):
        xp = backend.get_array_module(g)
        if self.reduction == "mean":
            g = g / self.count
        w = xp.broadcast_to(g, self.rows_shape)
        if self.valid is not None:
            w = w * self.valid
        w = w[..., None]  # one weight per row, broadcast over the classes
        p = xp.exp(self.log_p)
        if self.soft:
            grad_targets = -self.log_p * w if self.needs_input_grad[1] else None
            return (p - self.target) * w, grad_targets
        one_hot = xp.arange(p.shape[-1]) == self.ids[..., None]
        return (p - one_hot) * w, None


def _check_cross_entropy(logits, targets, reduction, ignore_index):
    """Raise a clear error for bad shapes, dtypes or settings; return True for soft (probability)
    targets. Values are checked separately, by ``_check_target_values``."""
    op = "softmax_cross_entropy"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not np.issubdtype(logits.dtype, np.floating):
        raise TypeError(f"{op}: logits must be floating point, got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"{op}: logits must be (N, C) or (N, L, C), got shape {tuple(logits.shape)}")
    seen = f"targets {targets.dtype} {tuple(targets.shape)} for logits {tuple(logits.shape)}"
    if np.issubdtype(targets.dtype, np.integer):
        if tuple(targets.shape) != tuple(logits.shape[:-1]):
            raise ValueError(f"{op}: class-id targets must have shape {tuple(logits.shape[:-1])}, got {seen}")
        if ignore_index is not None and (isinstance(ignore_index, bool)
                                         or not isinstance(ignore_index, numbers.Integral)):
            raise TypeError(f"{op}: ignore_index must be an int or None, got {ignore_index!r}")
        return False
    if np.issubdtype(targets.dtype, np.floating):
        if tuple(targets.shape) != tuple(logits.shape):
            raise ValueError(f"{op}: probability targets must have the logits' shape {tuple(logits.shape)}, "
                             f"got {seen} (class ids must be an integer array)")
        if ignore_index is not None:
            raise ValueError(f"{op}: ignore_index applies to class-id targets only, not to probabilities")
        return True
    raise TypeError(f"{op}: targets must be integer class ids or float probabilities, got {seen}")


def _check_target_values(logits, targets, ignore_index):
    """Class ids must lie in [0, C); probability rows must be non-negative and sum to 1.

    Reading values on a GPU waits for all queued work to finish (a host–device
    synchronisation). So ``softmax_cross_entropy`` runs it on the host, for targets that come
    from a user as host data (lists, NumPy arrays, CPU tensors), before they are copied to the
    device; targets already on the GPU and ``clip_loss``'s targets, right by construction, are
    not read back.
    """
    op = "softmax_cross_entropy"
    n_classes = logits.shape[-1]
    seen = f"targets {targets.dtype} {tuple(targets.shape)} for logits {tuple(logits.shape)}"
    if np.issubdtype(targets.dtype, np.integer):
        counted = targets if ignore_index is None else targets[targets != ignore_index]
        if counted.size:
            low, high = int(counted.min()), int(counted.max())
            if low < 0 or high >= n_classes:
                raise ValueError(f"{op}: class ids must be in [0, {n_classes}) for {n_classes} classes, "
                                 f"got min {low} and max {high} ({seen})")
    elif targets.size:
        xp = backend.get_array_module(targets)
        sums = targets.sum(axis=-1).reshape(-1)
        worst_sum = float(sums[int(xp.abs(sums - 1).argmax())])
        smallest = float(targets.min())
        # a small tolerance: float32 rows, and gradient checks that nudge a target by 1e-6
        if not (abs(worst_sum - 1) <= 1e-3 and smallest >= -1e-3):
            raise ValueError(f"{op}: probability targets must be non-negative with rows summing to 1; "
                             f"got a row summing to {worst_sum:.6g} and a smallest entry {smallest:.6g} "
                             f"({seen})")


def _targets_on_device(targets, like):
    """Labels given as a list or array are host-side constants: put them on the logits' device.
    A Tensor is taken as it is (the op then insists it is on the same device)."""
    if isinstance(targets, Tensor):
        return targets
    array = targets if backend.is_array(targets) else np.asarray(targets)
    return Tensor(backend.to_device(array, like.device))


def softmax_cross_entropy(logits, targets, reduction="mean", ignore_index=None):
    """Cross-entropy of softmax(logits) against class ids or probabilities (see SoftmaxCrossEntropy).

    logits (N, C) or (N, L, C); targets int (N,) / (N, L), or float probabilities of the
    logits' shape. reduction: "mean" (over rows not ignored), "sum" or "none".
    """
    logits = as_tensor(logits)
    raw = targets.data if isinstance(targets, Tensor) else targets
    on_host = not backend.on_gpu(raw)
    targets = _targets_on_device(targets, logits)
    _check_cross_entropy(logits.data, targets.data, reduction, ignore_index)
    if on_host:  # values checked on the host, before the copy: no wait for the GPU
        _check_target_values(logits.data, np.asarray(raw), ignore_index)
    return SoftmaxCrossEntropy.apply(logits, targets, reduction=reduction, ignore_index=ignore_index)


# ----------------------------------------------------------------------------------------------
# Mean squared error


class MSELoss(Function):
    """out = mean (or sum, or none) of (pred − target)², elementwise, same shapes.

    d pred = 2 (pred − target) · w,   d target = −d pred,
    where w = g/n for "mean" over n elements, g for "sum", and g elementwise for "none".
    """

    def forward(self, pred, target, reduction="mean"):
        _check_elementwise("mse_loss", "pred", pred, target, reduction)
        self.diff, self.reduction = pred - target, reduction
        return _reduce(self.diff * self.diff, reduction)

    def backward(self, g):
        if self.reduction == "mean":
            g = g / max(self.diff.size, 1)
        grad = 2 * self.diff * g
        return grad, (-grad if self.needs_input_grad[1] else None)


def mse_loss(pred, target, reduction="mean"):
    """Mean squared error between two tensors of the same shape."""
    return MSELoss.apply(pred, target, reduction=reduction)


def _check_elementwise(op, name, pred, target, reduction):
    """The checks every elementwise loss makes: a known reduction, and no broadcasting."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{op}: {name} {tuple(pred.shape)} and target {tuple(target.shape)} must have "
                         f"the same shape (no silent broadcasting in a loss)")


def _reduce(values, reduction):
    """values as they are ("none"), their sum, or their mean."""
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.sum() / max(values.size, 1)


# ----------------------------------------------------------------------------------------------
# Binary cross-entropy on logits (the image decoder's pixel loss, lesson 16)
#
# An image decoder ends in a sigmoid, p = σ(x), so every pixel is in (0, 1). The mean squared
# error (p − t)² then has the gradient 2 (p − t) · σ'(x), and σ'(x) = p (1 − p) is nearly 0
# where the sigmoid is flat: a pixel that is dark (p ≈ 0.05) but should be lit barely moves.
# Binary cross-entropy, read as "t is the probability that the pixel is on",
#
#     loss = −[t log p + (1 − t) log(1 − p)],     p = σ(x),
#
# has the gradient p − t with respect to the logit x: the flat part of the sigmoid cancels out,
# and a wrong pixel gets a full-sized push however saturated it is (lesson 16).


class BinaryCrossEntropyWithLogits(Function):
    """out = mean (or sum, or none) of  max(x, 0) − x t + log(1 + e^(−|x|)),  elementwise.

    That is −[t log σ(x) + (1 − t) log(1 − σ(x))] written so that nothing overflows:
    e^(−|x|) ≤ 1 for every x. x: logits, t: targets in [0, 1], the same shape.

        d x = (σ(x) − t) · w,      d t = −x · w,
    where w = g/n for "mean" over n elements, g for "sum", and g elementwise for "none".
    """

    def forward(self, x, t, reduction="mean"):
        _check_elementwise("binary_cross_entropy_with_logits", "logits", x, t, reduction)
        xp = backend.get_array_module(x)
        self.p, z = sigmoid_and_exp(x)                             # σ(x) and e^(−|x|), as Sigmoid does
        self.x, self.t, self.reduction = x, t, reduction
        return _reduce(xp.maximum(x, 0) - x * t + xp.log1p(z), reduction)

    def backward(self, g):
        if self.reduction == "mean":
            g = g / max(self.x.size, 1)
        dx = (self.p - self.t) * g
        dt = -self.x * g if self.needs_input_grad[1] else None
        return dx, dt


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy of σ(logits) against targets in [0, 1], from the logits (no sigmoid first)."""
    return BinaryCrossEntropyWithLogits.apply(logits, target, reduction=reduction)


# ----------------------------------------------------------------------------------------------
# The CLIP loss (a composition, on purpose)


def clip_loss(image_emb, text_emb, logit_scale, targets=None, return_floor=False):
    """The symmetric contrastive (InfoNCE) loss of CLIP.

    image_emb I (N, D) and text_emb T (N, D) must ALREADY be L2-normalised (this function
    does not normalise); pair i is (I_i, T_i). logit_scale s is a 0-d Tensor, the log of the
    inverse temperature. With logits Z = exp(s) · I Tᵀ (N, N):
        loss = ½ [ CE over the rows of Z (image -> text) + CE over its columns (text -> image) ]
    targets: None (pair i matches caption i only: the identity) or an (N, N) matrix of soft
    targets, e.g. from ``clip_targets``; row i is image i's target over captions, and the
    column targets are its columns rescaled to sum to 1.
    return_floor: also return ``clip_loss_floor(targets)``, the lowest reachable loss.

    Not a Function: built from exp, matmul, transpose and softmax_cross_entropy, so autograd
    finds the gradient. Lesson 11 derives it by hand: dloss/dZ = (P_rows + P_cols − 2 Y) / 2N,
    P_rows the row-wise and P_cols the column-wise softmax of Z, Y the targets (I for None;
    for targets that are not symmetric, Y's second copy is the column-rescaled one).
    """
    image_emb, text_emb = as_tensor(image_emb), as_tensor(text_emb)
    if image_emb.ndim != 2 or text_emb.shape != image_emb.shape or image_emb.shape[0] == 0:
        raise ValueError(f"clip_loss: image_emb and text_emb must both be (N, D) with N >= 1, got "
                         f"{image_emb.shape} and {text_emb.shape}")
    logit_scale = as_tensor(logit_scale, like=image_emb)
    if logit_scale.size != 1:
        raise ValueError(f"clip_loss: logit_scale must be a 0-d tensor (the log-scale s), got shape "
                         f"{logit_scale.shape}")
    if logit_scale.ndim != 0:  # a one-element tensor of shape (1,) is accepted too
        logit_scale = logit_scale.reshape(())
    n = image_emb.shape[0]
    logits = logit_scale.exp() * (image_emb @ text_emb.T)
    if targets is None:
        xp = backend.get_array_module(image_emb.data)
        row_targets = col_targets = Tensor(xp.arange(n))  # pair i is the only match of i
    else:
        row_targets, col_targets = _clip_target_tensors(targets, image_emb)
    # the Function itself, not softmax_cross_entropy: these targets are valid by construction
    # (or were checked on the host below), so no values are read back from a GPU in a step
    loss_image_to_text = SoftmaxCrossEntropy.apply(logits, row_targets)
    loss_text_to_image = SoftmaxCrossEntropy.apply(logits.T, col_targets)
    loss = (loss_image_to_text + loss_text_to_image) * 0.5
    if return_floor:
        return loss, clip_loss_floor(targets)
    return loss


def _clip_target_tensors(targets, like):
    """(N, N) soft targets -> (row targets, column targets as rows), constants in like's dtype.

    A NumPy matrix (what ``clip_targets`` returns) is checked on the host, before it moves;
    targets already on the GPU are not read back (that would make every training step wait
    for the device), so check them before moving them yourself.
    """
    n = like.shape[0]
    if isinstance(targets, Tensor):
        if targets.device != like.device:
            raise ValueError(f"clip_loss: targets are on {targets.device} but the embeddings on "
                             f"{like.device}; move them with .to('{like.device}')")
        array = targets.data
    else:
        array = targets if backend.is_array(targets) else np.asarray(targets)
    if tuple(array.shape) != (n, n) or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"clip_loss: targets must be an (N, N) = ({n}, {n}) matrix of probabilities, got "
                         f"shape {tuple(array.shape)} dtype {array.dtype}")
    rows = array.astype(like.dtype)
    col_sums = rows.sum(axis=0)
    if backend.device_of(rows) == "cpu":  # values are read on the host only
        if not bool((col_sums > 0).all()):
            raise ValueError("clip_loss: every column of targets needs a positive sum "
                             "(each caption must be the match of some image)")
        _check_target_values(rows, rows, None)  # the (N, N) logits have the targets' shape
    cols = (rows / col_sums).T  # each column rescaled to sum to 1, as a row
    return Tensor(backend.to_device(rows, like.device)), Tensor(backend.to_device(cols, like.device))


def clip_targets(ids):
    """Soft CLIP targets from one caption id (int or string) per sample: a float64 (N, N) array.

    Row i spreads 1 evenly over every j with ids[j] == ids[i], so a caption that appears
    twice in a batch is never counted as a negative for its twin. With all ids distinct the
    result is the identity. Example: ids ["a", "b", "a"] ->
        [[.5, 0, .5], [0, 1, 0], [.5, 0, .5]]
    It is a plain NumPy array (host-side labels); ``clip_loss`` moves it to the embeddings'
    device and dtype.
    """
    if isinstance(ids, Tensor):
        ids = ids.numpy()
    keys = backend.to_numpy(ids) if backend.is_array(ids) else np.asarray(list(ids))
    if keys.ndim != 1 or keys.size == 0:
        raise ValueError(f"clip_targets: expected a non-empty 1-D sequence of ids, got shape {keys.shape}")
    _, group = np.unique(keys, return_inverse=True)
    group = group.reshape(-1)
    same = group[:, None] == group[None, :]
    return same / same.sum(axis=1, keepdims=True)


def clip_loss_floor(targets):
    """The lowest value clip_loss can approach with these targets: their mean entropy.

    Cross-entropy −Σ t log p is smallest, and equals the entropy −Σ t log t, when p = t.
    Averaged over rows (and over the columns, rescaled to sum to 1) as clip_loss averages.
    For the identity (targets None, or all ids distinct) the floor is 0; a caption repeated
    k times adds ln k to each of its k rows. Returns a Python float.
    """
    if targets is None:
        return 0.0
    t = backend.to_numpy(targets.data if isinstance(targets, Tensor) else targets).astype(np.float64)

    def mean_entropy(rows):
        logs = np.log(np.where(rows > 0, rows, 1.0))  # 0 · log 0 counts as 0
        return float(-(rows * logs).sum(axis=1).mean()) + 0.0  # + 0.0 turns -0.0 into 0.0

    return 0.5 * (mean_entropy(t) + mean_entropy((t / t.sum(axis=0)).T))
