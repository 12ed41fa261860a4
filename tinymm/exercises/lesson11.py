"""Lesson 11's coded exercise: the CLIP loss, forward and backward (dI, dT and ds), with
identity and soft targets.

``clip_loss`` is not a Function in tinymm (lesson 11 composes it on purpose), so the reference
runs ``tinymm.functional.clip_loss`` on the learner's arrays and asks autograd for the
gradients: the library is the answer, nothing is copied. The wrong versions below are the
mistakes the checker must catch.
"""
import math

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..functional.loss import clip_loss, clip_targets
from ..models.clip import LOGIT_SCALE_MAX
from .core import Finding, Wrong, call_learner
from .opcheck import op_exercise

REREAD = "lesson 11, sections 1 (the loss, written out) and 4 (the gradient, derived by hand)"
NAMES = ("I", "T", "s")


def _leaves(I, T, s):
    return [Tensor(np.array(a, copy=True), requires_grad=True) for a in (I, T, s)]


def clip_loss_forward(I, T, s, Y):
    return clip_loss(Tensor(I), Tensor(T), Tensor(s), targets=Y).data


def clip_loss_backward(g, I, T, s, Y):
    leaves = _leaves(I, T, s)
    clip_loss(*leaves, targets=Y).backward(np.asarray(g))
    return tuple(t.grad for t in leaves)


def _unit_rows(rng, n, d=4):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _distinct_captions(rng, n):
    return _unit_rows(rng, n), _unit_rows(rng, n), np.array(1.3), np.eye(n)


def _duplicate_captions(rng, n):
    # captions 0, 1, 2, 0, 1 for a batch of 5: two captions repeat
    ids = np.arange(n) % max(n - 2, 1)
    return _unit_rows(rng, n), _unit_rows(rng, n), np.array(1.3), clip_targets(ids)


# ---- what a wrong gradient looks like ------------------------------------------------------


def _rows_only_gradient(I, T, s, Y):
    """The gradient of CE over the rows alone (image -> caption), at g = 1, by autograd."""
    leaves = _leaves(I, T, s)
    F.softmax_cross_entropy(leaves[2].exp() * (leaves[0] @ leaves[1].T), Y).backward()
    return tuple(t.grad for t in leaves)


def _proportional(mine, other):
    """mine = c · other for some number c (other not all zero)?"""
    other = np.asarray(other, dtype=np.float64).reshape(-1)
    mine = np.asarray(mine, dtype=np.float64).reshape(-1)
    if not other.any() or mine.shape != other.shape:
        return False
    c = (mine @ other) / (other @ other)
    return c != 0 and np.allclose(mine, c * other, rtol=1e-6, atol=1e-12 * np.abs(other).max())


def _diagnose(name, mine, reference, arrays, mine_all, ref_all):
    I, T, s, Y = arrays
    k = NAMES.index(name)
    at_one = clip_loss_backward(np.array(1.0), I, T, s, Y)[k]
    if name != "s" and np.allclose(mine, reference * math.exp(-float(s)), rtol=1e-6, atol=0):
        return "It is e^s times too small: Z = e^s · I Tᵀ, so the factor e^s multiplies dI and dT."
    if not np.allclose(Y, np.eye(len(Y))):
        hard = clip_loss_backward(np.array(1.0), I, T, s, np.eye(len(Y)))[k]
        if _proportional(mine, hard) and not _proportional(mine, at_one):
            return ("It is the gradient for identity targets: with a caption that repeats in the batch, "
                    "use Y (soft targets, lesson 11, section 6) in G = (P_rows + P_cols − 2Y) / 2N, "
                    "not the identity.")
    # a scalar is proportional to any scalar: judge "row softmax only" on dI and dT alone
    rows_only = _rows_only_gradient(I, T, s, Y)
    if any(_proportional(mine_all[n], rows_only[NAMES.index(n)]) and not np.allclose(mine_all[n], ref_all[n])
           for n in ("I", "T")):
        return ("It has the row softmax only (image -> caption): the loss is the mean of both directions, "
                "so G = (P_rows + P_cols − 2Y) / 2N has the column softmax too.")
    if name == "s":
        return _diagnose_ds(float(mine), float(reference), float(s))
    return None


def _diagnose_ds(mine, reference, s):
    """ds is one number: say how far off it is, and what the usual slips give."""
    formula = ("ds = g · Σ_ij G_ij Z_ij: Z = e^s · I Tᵀ, so dZ/ds = e^s · I Tᵀ = Z itself, and Σ G∘Z "
               "already contains the factor e^s (multiply by g and nothing else).")
    if reference == 0 or mine == 0:
        return formula
    ratio = mine / reference
    if abs(mine) <= 1e-9 * abs(reference):
        return (f"Your ds is about 0 ({mine:.2g}, tinymm's {reference:.6g}): Σ_ij G_ij alone is always 0 "
                f"(P_rows, P_cols and Y each sum to N), so Z_ij must be inside the sum. {formula}")
    for factor, words in ((math.exp(s), "e^s times too big"), (math.exp(-s), "e^s times too small"),
                          (2.0, "2 times too big"), (0.5, "half of it")):
        if math.isclose(ratio, factor, rel_tol=1e-6):
            why = (" G = (P_rows + P_cols − 2Y) / 2N already holds the ½ of the two directions' mean."
                   if factor in (2.0, 0.5) else "")
            return f"Your ds is {ratio:.4g}× tinymm's, {words}.{why} {formula}"
    return f"Your ds is {ratio:.4g}× tinymm's. {formula}"


def _check_largest_scale(impl):
    """float32 at s = ln 100 (the clamp's upper end), matching pairs: logits of 100, and
    e^100 overflows float32 unless each row's (and column's) maximum is subtracted first."""
    rng = np.random.default_rng(4)
    I = _unit_rows(rng, 4).astype(np.float32)
    Y = np.eye(4, dtype=np.float32)
    s = np.array(LOGIT_SCALE_MAX, dtype=np.float32)
    with np.errstate(all="ignore"):
        loss = call_learner("clip_loss_forward", impl.clip_loss_forward, I.copy(), I.copy(), s.copy(), Y.copy())
        grads = call_learner("clip_loss_backward", impl.clip_loss_backward, np.array(1.0, np.float32),
                             I.copy(), I.copy(), s.copy(), Y.copy())
    ref_loss = float(clip_loss_forward(I, I, s, Y))
    loss = np.asarray(loss, dtype=np.float64)
    reread = "lesson 05, section 5 (large logits) and lesson 11, section 2 (the clamp at ln 100)"
    if not np.isfinite(loss).all() or not np.isclose(float(loss), ref_loss, rtol=1e-3, atol=1e-5):
        raise Finding(f"clip_loss_forward gives {float(loss):.6g} in float32 at s = ln 100 with matching pairs "
                      f"(logits up to 100), tinymm gives {ref_loss:.6g}: e^100 overflows float32. Subtract the "
                      f"maximum of each row (and of each column) before exponentiating. Reread {reread}.")
    if any(not np.isfinite(np.asarray(d, dtype=np.float64)).all() for d in grads):
        raise Finding(f"clip_loss_backward has inf or NaN in float32 at s = ln 100 (logits up to 100): compute "
                      f"both softmaxes with the maximum subtracted. Reread {reread}.")
    return "stable in float32 at the largest scale, s = ln 100"


# ---- wrong versions ------------------------------------------------------------------------


def _softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _G(I, T, s, Y):
    Z = np.exp(s) * I @ T.T
    return (_softmax(Z, 1) + _softmax(Z, 0) - 2 * Y) / (2 * len(I)), Z


def _scaled(g, I, T, s, Y):
    return tuple(1.01 * d for d in clip_loss_backward(g, I, T, s, Y))


def _ds_zeroed(g, I, T, s, Y):
    dI, dT, ds = clip_loss_backward(g, I, T, s, Y)
    return dI, dT, np.zeros_like(ds)


def _G_transposed(g, I, T, s, Y):
    G, Z = _G(I, T, s, Y)
    return g * np.exp(s) * G.T @ T, g * np.exp(s) * G @ I, g * (G * Z).sum()


def _dT_transposed(g, I, T, s, Y):
    dI, dT, ds = clip_loss_backward(g, I, T, s, Y)
    return dI, dT.T, ds


def _rows_only(g, I, T, s, Y):
    Z = np.exp(s) * I @ T.T
    G = (_softmax(Z, 1) - Y) / (2 * len(I))
    return g * np.exp(s) * G @ T, g * np.exp(s) * G.T @ I, g * (G * Z).sum()


def _no_scale_factor(g, I, T, s, Y):
    G, Z = _G(I, T, s, Y)
    return g * G @ T, g * G.T @ I, g * (G * Z).sum()


def _identity_targets(g, I, T, s, Y):
    return clip_loss_backward(g, I, T, s, np.eye(len(I)))


def _forgets_g(g, I, T, s, Y):
    return clip_loss_backward(np.ones_like(g), I, T, s, Y)


def _with_ds(ds_of):
    """The right dI and dT, and a ds computed by ``ds_of(g, G, Z, s)`` (a learner's try)."""
    def backward(g, I, T, s, Y):
        dI, dT, _ = clip_loss_backward(g, I, T, s, Y)
        G, Z = _G(I, T, s, Y)
        return dI, dT, np.asarray(ds_of(g, G, Z, s), dtype=I.dtype)
    return backward


_ds_sum_of_G = _with_ds(lambda g, G, Z, s: g * np.exp(s) * G.sum())  # Σ G is 0: Z belongs inside the sum
_ds_twice = _with_ds(lambda g, G, Z, s: g * 2 * (G * Z).sum())
_ds_over_scale = _with_ds(lambda g, G, Z, s: g * (G * Z).sum() / np.exp(s))
_ds_half = _with_ds(lambda g, G, Z, s: g * 0.5 * (G * Z).sum())


def _ds_as_float(g, I, T, s, Y):
    dI, dT, ds = clip_loss_backward(g, I, T, s, Y)
    return dI, dT, float(ds)  # a Python float is float64, whatever I's dtype


def _forward_scales_I_in_place(I, T, s, Y):
    I *= np.exp(s)  # the logits' scale folded into the caller's embeddings
    Z = I @ T.T
    return 0.5 * (-(Y * np.log(_softmax(Z, 1))).sum() - (Y * np.log(_softmax(Z, 0))).sum()) / len(I)


def _forward_off_by_one(I, T, s, Y):
    return clip_loss_forward(I, np.roll(T, 1, axis=0), s, Y)  # caption i paired with image i + 1


def _forward_loops(I, T, s, Y):
    Z = np.exp(s) * I @ T.T
    total = np.zeros((), I.dtype)
    for i in range(len(I)):
        row, col = Z[i] - Z[i].max(), Z[:, i] - Z[:, i].max()
        total = total - Y[i] @ (row - np.log(np.exp(row).sum())) - Y[:, i] @ (col - np.log(np.exp(col).sum()))
    return total / (2 * len(I))


def _naive_forward(I, T, s, Y):
    Z = np.exp(s) * I @ T.T
    p_rows = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    p_cols = np.exp(Z) / np.exp(Z).sum(axis=0, keepdims=True)
    return -0.5 * ((Y * np.log(p_rows)).sum() + (Y * np.log(p_cols)).sum()) / len(I)


CLIP_LOSS = op_exercise(
    name="clip_loss", lesson="11", title="the CLIP loss and its gradient for I, T and the logit scale s",
    stub="11_clip_loss.py", reread=REREAD, forward="clip_loss_forward", backward="clip_loss_backward",
    inputs=("I", "T", "s", "Y"), grads=NAMES,
    cases={"every caption different (Y = identity)": _distinct_captions,
           "duplicate captions (soft targets)": _duplicate_captions},
    reference_forward=clip_loss_forward, reference_backward=clip_loss_backward, answer=(clip_loss,),
    batch=5, diagnose=_diagnose, extra_checks=(_check_largest_scale,),
    hints={"s": "s is one number, so ds is a 0-d array: dloss/ds = Σ_ij G_ij Z_ij, times g."},
    wrong=[
        Wrong("backward scaled by 1.01", {"clip_loss_backward": _scaled},
              ("gradients for I, T and s are wrong", "ratio 1.01", "Every gradient (dI, dT and ds) is 1.01× off",
               "lesson 11, sections 1")),
        Wrong("ds zeroed", {"clip_loss_backward": _ds_zeroed}, ("the gradient for s is wrong, I and T are right", "all zeros")),
        Wrong("G transposed", {"clip_loss_backward": _G_transposed}, ("gradients for I and T are wrong, s is right",)),
        Wrong("dT transposed", {"clip_loss_backward": _dT_transposed},
              ("returned dT with shape (4, 5)", "T has shape (5, 4)", "looks transposed")),
        Wrong("row softmax only", {"clip_loss_backward": _rows_only},
              ("gradients for I, T and s are wrong", "row softmax only")),
        Wrong("forgets the factor e^s", {"clip_loss_backward": _no_scale_factor},
              ("gradients for I and T are wrong, s is right", "e^s times too small")),
        Wrong("identity targets with duplicate captions", {"clip_loss_backward": _identity_targets},
              ("gradients for I, T and s are wrong (case: duplicate captions", "identity targets")),
        Wrong("forgets the upstream g", {"clip_loss_backward": _forgets_g},
              ("gradients for I, T and s are wrong", "Every gradient (dI, dT and ds) is", "× off: did you multiply by g?")),
        Wrong("ds = scale · Σ G", {"clip_loss_backward": _ds_sum_of_G},
              ("the gradient for s is wrong, I and T are right", "about 0", "Z_ij must be inside the sum",
               "already contains the factor e^s")),
        Wrong("ds = 2 Σ G∘Z", {"clip_loss_backward": _ds_twice},
              ("the gradient for s is wrong, I and T are right", "ratio 2", "2 times too big", "already holds the ½")),
        Wrong("ds = Σ G∘Z / e^s", {"clip_loss_backward": _ds_over_scale},
              ("the gradient for s is wrong, I and T are right", "e^s times too small",
               "already contains the factor e^s")),
        Wrong("ds = ½ Σ G∘Z", {"clip_loss_backward": _ds_half},
              ("the gradient for s is wrong, I and T are right", "ratio 0.5", "half of it")),
        Wrong("ds as a Python float", {"clip_loss_backward": _ds_as_float},
              ("returned ds as a Python float", "not an array", "np.asarray(..., dtype=s.dtype)")),
        Wrong("forward scales I in place", {"clip_loss_forward": _forward_scales_I_in_place},
              ("clip_loss_forward changed its input I in place",)),
        Wrong("forward pairs image i with caption i + 1", {"clip_loss_forward": _forward_off_by_one},
              ("clip_loss_forward differs from tinymm's",)),
        Wrong("forward loops over the batch", {"clip_loss_forward": _forward_loops},
              ("clip_loss_forward loops over the batch",)),
        Wrong("softmax without the maximum subtracted", {"clip_loss_forward": _naive_forward},
              ("overflows float32", "Subtract the maximum")),
    ])
