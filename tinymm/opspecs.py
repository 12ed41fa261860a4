"""The shared table of op specifications behind every gradient check.

One row per differentiable op: how to call it, how to draw its inputs, the tolerance.
The same table drives ``pytest tests/test_gradcheck_table.py`` and ``python -m tinymm
gradcheck``, so adding an op here checks it everywhere.

Inputs are drawn away from the places where an op is not differentiable: a ReLU input
at 0, two values tied for a maximum, a log of a non-positive number. At such kinks the
finite difference straddles two slopes and neither gradient is "right".
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import backend
from . import functional as F
from .autograd import Tensor
from .functional.basic import cast, to_device


def _there_and_back(x):
    """x moved to the other device (cpu <-> cuda; cpu -> cpu without a GPU) and back: ToDevice twice."""
    other = "cpu" if x.device == "cuda" else ("cuda" if backend.cuda_available() else "cpu")
    return to_device(to_device(x, other), x.device)


# ----------------------------------------------------------------------------------------------
# Samplers: each takes a NumPy generator and returns a float64 (or integer) array.


def normal(*shape):
    """Standard normal values."""
    return lambda rng: rng.standard_normal(shape)


def positive(*shape, low=0.5, high=2.0):
    """Values in [low, high]: safe for log, division and fractional powers."""
    return lambda rng: rng.uniform(low, high, shape)


def away_from_zero(*shape, gap=0.1):
    """Values with |x| ≥ gap: keeps ReLU-like kinks at 0 out of the finite differences."""
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(gap, 1.0, shape)


def distinct(*shape, spacing=0.05):
    """All values at least ``spacing`` apart (no ties for a maximum, even after a ±eps nudge)."""
    def draw(rng):
        n = int(np.prod(shape))
        return (rng.permutation(n) * spacing - n * spacing / 2).reshape(shape).astype(np.float64)
    return draw


def integers(low, high, *shape):
    """Integer ids in [low, high): token ids, class labels. Not differentiated."""
    return lambda rng: rng.integers(low, high, shape)


def constant(array):
    """A fixed array (not drawn)."""
    return lambda rng: np.asarray(array)


# ----------------------------------------------------------------------------------------------


@dataclass
class OpSpec:
    """One row of the table.

    name      what the CLI prints, e.g. "conv2d stride 2 pad 1"
    fn        a function of the input tensors returning a Tensor
    samplers  one sampler per input; float64 inputs get requires_grad=True and are checked
    tol       the largest relative error that passes
    eps       the finite-difference step; ops that are linear in each input (conv, pooling)
              have no truncation error, so a larger step only shrinks the rounding error
    lesson    the lesson that teaches the op (its pytest marker)
    """

    name: str
    fn: Callable
    samplers: list
    tol: float = 1e-7
    eps: float = 1e-6
    lesson: str = "lesson03"

    def make_inputs(self, seed=0, device="cpu"):
        rng = np.random.default_rng(seed)
        inputs = []
        for sample in self.samplers:
            array = np.asarray(sample(rng))
            differentiable = np.issubdtype(array.dtype, np.floating)
            if differentiable:
                array = array.astype(np.float64)
            inputs.append(Tensor(backend.to_device(array, device), requires_grad=differentiable))
        return inputs

    def shapes(self):
        rng = np.random.default_rng(0)
        return [tuple(np.shape(sample(rng))) for sample in self.samplers]


OP_SPECS = [
    # -- basic.py: elementwise, with broadcasting ---------------------------------------------
    OpSpec("add", lambda a, b: a + b, [normal(3, 4), normal(3, 4)]),
    OpSpec("add broadcast (3,4)+(4,)", lambda a, b: a + b, [normal(3, 4), normal(4)]),
    OpSpec("sub broadcast (2,1,4)-(3,1)", lambda a, b: a - b, [normal(2, 1, 4), normal(3, 1)]),
    OpSpec("mul broadcast (3,4)*(3,1)", lambda a, b: a * b, [normal(3, 4), normal(3, 1)]),
    OpSpec("mul by itself", lambda a: a * a, [normal(3, 4)]),
    OpSpec("div broadcast (3,4)/(4,)", lambda a, b: a / b, [normal(3, 4), positive(4)]),
    OpSpec("neg", lambda a: -a, [normal(5)]),
    OpSpec("pow 3", lambda a: a ** 3, [normal(2, 3)]),
    OpSpec("pow 0.5", lambda a: a ** 0.5, [positive(2, 3)]),
    OpSpec("exp", lambda a: a.exp(), [normal(2, 3)]),
    OpSpec("log", lambda a: a.log(), [positive(2, 3)]),
    # -- basic.py: reductions -------------------------------------------------------------------
    OpSpec("sum all", lambda a: a.sum(), [normal(3, 4)]),
    OpSpec("sum axis 1", lambda a: a.sum(axis=1), [normal(2, 3, 4)]),
    OpSpec("sum axes (0,2) keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [normal(2, 3, 4)]),
    OpSpec("mean axis -1", lambda a: a.mean(axis=-1), [normal(3, 5)]),
    OpSpec("mean all", lambda a: a.mean(), [normal(3, 5)]),
    OpSpec("max all", lambda a: a.max(), [distinct(3, 4)]),
    OpSpec("max axis 1", lambda a: a.max(axis=1), [distinct(2, 5, 3)]),
    OpSpec("max axes (0,2) keepdims", lambda a: a.max(axis=(0, 2), keepdims=True), [distinct(2, 3, 4)]),
    # -- basic.py: shapes, indexing, joining -----------------------------------------------------
    OpSpec("reshape", lambda a: a.reshape(4, 6), [normal(2, 3, 4)]),
    OpSpec("transpose", lambda a: a.transpose(2, 0, 1), [normal(2, 3, 4)]),
    OpSpec(".T", lambda a: a.T, [normal(3, 4)]),
    OpSpec("getitem slice", lambda a: a[1:, ::2], [normal(3, 5)]),
    OpSpec("getitem repeated ids", lambda a: a[np.array([0, 2, 0, 0])], [normal(3, 4)]),
    OpSpec("getitem rows and columns", lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])], [normal(2, 3)]),
    OpSpec("concatenate axis 1", lambda a, b: F.concatenate([a, b], axis=1), [normal(2, 3), normal(2, 2)]),
    OpSpec("stack axis 1", lambda a, b, c: F.stack([a, b, c], axis=1), [normal(2, 3), normal(2, 3), normal(2, 3)]),
    # -- basic.py: matrix products ----------------------------------------------------------------
    OpSpec("matmul (3,4)@(4,5)", lambda a, b: a @ b, [normal(3, 4), normal(4, 5)]),
    OpSpec("matmul batched broadcast (2,3,4)@(4,2)", lambda a, b: a @ b, [normal(2, 3, 4), normal(4, 2)]),
    OpSpec("matmul batch broadcast (2,1,3,4)@(3,4,2)", lambda a, b: a @ b, [normal(2, 1, 3, 4), normal(3, 4, 2)]),
    OpSpec("matmul vector (4,)@(4,3)", lambda a, b: a @ b, [normal(4), normal(4, 3)]),
    OpSpec("matmul vector (3,4)@(4,)", lambda a, b: a @ b, [normal(3, 4), normal(4)]),
    # -- basic.py: moves between devices and dtypes -----------------------------------------------
    # Identities, but their backward must send the gradient back unchanged. The inputs are
    # multiples of 1/64 and so is eps: x ± eps is exact in float32, so the float32 round trip
    # adds no rounding to the finite differences. On the CPU the move is cpu -> cpu; run with
    # TINYMM_DEVICE=cuda it goes to the other device and back.
    OpSpec("to the other device and back, times w", lambda x, w: _there_and_back(x) * w,
           [normal(3, 4), normal(3, 4)]),
    OpSpec("cast float64 -> float32 -> float64, times w",
           lambda x, w: cast(cast(x, np.float32), np.float64) * w,
           [lambda rng: rng.integers(-128, 128, (3, 4)) / 64.0, normal(3, 4)], eps=1 / 64),
    # -- a small composite: every op above working together ---------------------------------------
    OpSpec("composite: log-sum-exp by hand",
           lambda a: (a - a.max(axis=1, keepdims=True)).exp().sum(axis=1).log(), [distinct(3, 4)]),
    # -- linear.py, activation.py (rows go here) -------------------------------------------------
    OpSpec("linear (4,3) -> (4,5)", lambda x, w, b: F.linear(x, w, b), [normal(4, 3), normal(5, 3), normal(5)],
           lesson="lesson04"),
    OpSpec("linear batched (2,3,4) -> (2,3,5), no bias", lambda x, w: F.linear(x, w),
           [normal(2, 3, 4), normal(5, 4)], lesson="lesson04"),
    OpSpec("relu", lambda x: F.relu(x), [away_from_zero(3, 4)], lesson="lesson04"),
    OpSpec("sigmoid", lambda x: F.sigmoid(x), [normal(3, 4)], lesson="lesson04"),
    OpSpec("tanh", lambda x: F.tanh(x), [normal(3, 4)], lesson="lesson04"),
    OpSpec("softmax axis -1", lambda x: F.softmax(x), [normal(3, 4)], lesson="lesson05"),
    OpSpec("softmax axis 0", lambda x: F.softmax(x, axis=0), [normal(3, 4)], lesson="lesson05"),
    OpSpec("dropout p=0.25, fixed mask", lambda x, keep: F.activation.Dropout.apply(x, keep, p=0.25),
           [normal(3, 4), integers(0, 2, 3, 4)], lesson="lesson04"),
    # -- conv.py (rows go here) -------------------------------------------------------------------
    OpSpec("conv2d 3x3 stride 1 pad 1", lambda x, w, b: F.conv2d(x, w, b, padding=1),
           [normal(1, 2, 4, 4), normal(2, 2, 3, 3), normal(2)], lesson="lesson06"),
    OpSpec("conv2d 3x2 stride 2 pad 1, non-square", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
           [normal(1, 3, 5, 4), normal(2, 3, 3, 2), normal(2)], lesson="lesson06"),
    OpSpec("conv2d no bias, stride (2,1) pad (0,1)", lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(0, 1)),
           [normal(1, 2, 5, 3), normal(2, 2, 2, 3)], lesson="lesson06"),
    OpSpec("im2col 3x2 stride 2 pad 1", lambda x: F.im2col(x, 3, 2, stride=2, padding=1),
           [normal(1, 2, 5, 4)], lesson="lesson06"),
    OpSpec("col2im 3x2 stride 2 pad 1", lambda c: F.col2im(c, (1, 2, 5, 4), 3, 2, stride=2, padding=1),
           [normal(12, 9)], lesson="lesson06"),
    OpSpec("max_pool2d 2x2, odd size", lambda x: F.max_pool2d(x, 2), [distinct(2, 2, 5, 7)], lesson="lesson06"),
    OpSpec("max_pool2d 3x3 stride 2 (overlapping)", lambda x: F.max_pool2d(x, 3, stride=2),
           [distinct(2, 2, 7, 6)], lesson="lesson06"),
    OpSpec("avg_pool2d 2x2, odd size", lambda x: F.avg_pool2d(x, 2), [normal(2, 2, 5, 7)], lesson="lesson06"),
    OpSpec("avg_pool2d 3x3 stride 2 (overlapping)", lambda x: F.avg_pool2d(x, 3, stride=2),
           [normal(1, 2, 5, 6)], lesson="lesson06"),
    OpSpec("global_avg_pool2d", lambda x: F.global_avg_pool2d(x), [normal(2, 3, 3, 4)], lesson="lesson06"),
    OpSpec("upsample_nearest2d x2", lambda x: F.upsample_nearest2d(x, 2), [normal(2, 3, 3, 4)], lesson="lesson06"),
    OpSpec("upsample_nearest2d x3", lambda x: F.upsample_nearest2d(x, 3), [normal(1, 2, 2, 3)], lesson="lesson06"),
    # -- embedding.py (rows go here) --------------------------------------------------------------
    OpSpec("embedding repeated ids", lambda ids, w: F.embedding(ids, w),
           [constant([[0, 2, 0], [3, 0, 2]]), normal(4, 3)], lesson="lesson08"),
    OpSpec("embedding padding_idx 0 (padding masked out)",
           lambda ids, w: F.embedding(ids, w, padding_idx=0) * (ids.data != 0)[..., None].astype(float),
           [constant([[1, 2, 0], [3, 1, 0]]), normal(4, 3)], lesson="lesson08"),
    OpSpec("masked_mean (3,4,2), one row all padding", lambda x, m: F.masked_mean(x, m),
           [normal(3, 4, 2), constant(np.array([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]], dtype=bool))],
           lesson="lesson08"),
    # -- normalize.py (rows go here) --------------------------------------------------------------
    # not normal(3, 4): gradcheck draws its upstream gradient with the same seed, so it would equal x,
    # which points along y (radially), where the true gradient is 0 and a zero backward would pass
    OpSpec("l2_normalize rows", lambda x: F.l2_normalize(x), [away_from_zero(3, 4)], lesson="lesson09"),
    OpSpec("l2_normalize axis 0", lambda x: F.l2_normalize(x, axis=0), [away_from_zero(3, 4)], lesson="lesson09"),
    OpSpec("l2_normalize norms 1, 1e-2 and 0 (eps=1e-3)", lambda x: F.l2_normalize(x, eps=1e-3),
           [lambda rng: rng.uniform(-1, 1, (4, 3)) * np.array([[1.0], [1e-2], [0.0], [1.0]])], lesson="lesson09"),
    # -- loss.py (rows go here) -------------------------------------------------------------------
    OpSpec("log_softmax axis -1", lambda x: F.log_softmax(x), [distinct(3, 4)], lesson="lesson05"),
    OpSpec("log_softmax axis 0", lambda x: F.log_softmax(x, axis=0), [normal(3, 4)], lesson="lesson05"),
    OpSpec("softmax_cross_entropy class ids", lambda z, y: F.softmax_cross_entropy(z, y),
           [normal(4, 5), integers(0, 5, 4)], lesson="lesson05"),
    OpSpec("softmax_cross_entropy sum", lambda z, y: F.softmax_cross_entropy(z, y, reduction="sum"),
           [normal(4, 5), integers(0, 5, 4)], lesson="lesson05"),
    OpSpec("softmax_cross_entropy none", lambda z, y: F.softmax_cross_entropy(z, y, reduction="none"),
           [normal(4, 5), integers(0, 5, 4)], lesson="lesson05"),
    OpSpec("softmax_cross_entropy soft targets", lambda z, t: F.softmax_cross_entropy(z, t),
           [normal(4, 5), lambda rng: rng.dirichlet(np.ones(5), size=4)], lesson="lesson05"),
    OpSpec("softmax_cross_entropy (N,L,C) ignore_index",
           lambda z, y: F.softmax_cross_entropy(z, y, ignore_index=-100),
           [normal(2, 3, 4), constant([[1, -100, 3], [0, 2, -100]])], lesson="lesson05"),
    OpSpec("mse_loss mean", lambda a, b: F.mse_loss(a, b), [normal(3, 4), normal(3, 4)], lesson="lesson05"),
    OpSpec("mse_loss none", lambda a, b: F.mse_loss(a, b, reduction="none"), [normal(3, 4), normal(3, 4)],
           lesson="lesson05"),
    OpSpec("binary_cross_entropy_with_logits mean, w.r.t. logits and targets",
           lambda x, t: F.binary_cross_entropy_with_logits(x, t),
           [lambda rng: 3 * rng.standard_normal((2, 3, 4)), positive(2, 3, 4, low=0.0, high=1.0)],
           # some d logits = (σ(x) − t)/n are tiny; a larger step keeps rounding well below them
           eps=1e-5, lesson="lesson16"),
    OpSpec("binary_cross_entropy_with_logits none",
           lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
           [normal(3, 4), positive(3, 4, low=0.0, high=1.0)], lesson="lesson16"),
    OpSpec("clip_loss (composition), w.r.t. I, T and s", lambda i, t, s: F.clip_loss(i, t, s),
           [normal(4, 3), normal(4, 3), normal()], lesson="lesson11"),
    OpSpec("clip_loss of L2-normalised rows, duplicate captions",
           lambda i, t, s: F.clip_loss(F.l2_normalize(i), F.l2_normalize(t), s,
                                       targets=F.clip_targets(["a", "b", "a", "c", "b"])),
           [normal(5, 3), normal(5, 3), normal()], lesson="lesson11"),
    # -- nn layers and models (rows go here) ------------------------------------------------------
]
