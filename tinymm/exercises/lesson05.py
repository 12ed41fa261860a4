"""Lesson 05's coded exercise: softmax cross-entropy (mean over the batch), forward and backward,
with integer class ids and with soft (probability) targets, stable at logits of ±1e4.

The reference runs tinymm's ``SoftmaxCrossEntropy`` Function on the learner's arrays.
"""
import numpy as np

from ..functional.loss import SoftmaxCrossEntropy
from .core import Finding, Wrong, call_learner
from .opcheck import op_exercise

N_CLASSES = 4


def _ce(logits, targets):
    fn = SoftmaxCrossEntropy()
    fn.needs_input_grad = (True, False)
    return fn, fn.forward(logits, targets)


def softmax_cross_entropy_forward(logits, targets):
    return _ce(logits, targets)[1]


def softmax_cross_entropy_backward(g, logits, targets):
    fn, _ = _ce(logits, targets)
    return fn.backward(g)[0]


def _class_ids(rng, n):
    return 3 * rng.standard_normal((n, N_CLASSES)), rng.integers(0, N_CLASSES, n)


def _soft_targets(rng, n):
    weights = rng.random((n, N_CLASSES)) + 0.1
    return 3 * rng.standard_normal((n, N_CLASSES)), weights / weights.sum(axis=1, keepdims=True)


def _check_large_logits(impl):
    """Logits of ±1e4 (lesson 05, section 5): a finite loss and gradient, equal to tinymm's."""
    rng = np.random.default_rng(2)
    logits = 1e4 * np.sign(rng.standard_normal((3, N_CLASSES)))
    targets = np.array([0, 1, 2])
    reread = "lesson 05, section 5 (large logits: naive versus stable)"
    ref_loss = softmax_cross_entropy_forward(logits, targets)
    with np.errstate(all="ignore"):
        loss = call_learner("softmax_cross_entropy_forward", impl.softmax_cross_entropy_forward,
                            logits.copy(), targets.copy())
        grad = call_learner("softmax_cross_entropy_backward", impl.softmax_cross_entropy_backward,
                            np.array(1.0), logits.copy(), targets.copy())
    loss, grad = np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)
    if not np.isfinite(loss).all() or not np.isclose(loss, ref_loss, rtol=1e-9):
        raise Finding(f"softmax_cross_entropy_forward gives {float(loss):.6g} for logits of ±1e4, tinymm "
                      f"gives {float(ref_loss):.6g}: e^(1e4) overflows. Subtract each row's maximum before "
                      f"exponentiating (log-sum-exp). Reread {reread}.")
    ref_grad = softmax_cross_entropy_backward(np.array(1.0), logits, targets)
    if grad.shape != ref_grad.shape or not np.isfinite(grad).all() or not np.allclose(grad, ref_grad, atol=1e-12):
        raise Finding(f"softmax_cross_entropy_backward is not finite or not right for logits of ±1e4 "
                      f"(yours has {int((~np.isfinite(grad)).sum())} inf/NaN entries): compute the softmax "
                      f"with each row's maximum subtracted. Reread {reread}.")
    return "stable at logits of ±1e4 (finite loss and gradient)"


# ---- wrong versions ------------------------------------------------------------------------


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _as_distribution(logits, targets):
    if targets.dtype.kind == "f":
        return targets
    return (np.arange(logits.shape[1]) == targets[:, None]).astype(logits.dtype)


def _scaled(g, logits, targets):
    return 1.01 * softmax_cross_entropy_backward(g, logits, targets)


def _zeroed(g, logits, targets):
    return np.zeros_like(logits)


def _no_mean(g, logits, targets):
    return g * (_softmax(logits) - _as_distribution(logits, targets))  # forgets the 1/N of the mean


def _soft_as_argmax(g, logits, targets):
    hard = targets.argmax(axis=1) if targets.dtype.kind == "f" else targets
    return softmax_cross_entropy_backward(g, logits, hard)


def _forward_off_by_one(logits, targets):
    if targets.dtype.kind == "f":
        return softmax_cross_entropy_forward(logits, targets)
    return softmax_cross_entropy_forward(logits, (targets + 1) % logits.shape[1])


def _forward_in_place(logits, targets):
    logits -= logits.max(axis=1, keepdims=True)  # stable, but edits the caller's logits
    return softmax_cross_entropy_forward(logits, targets)


def _naive_forward(logits, targets):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return -(_as_distribution(logits, targets) * np.log(p)).sum(axis=1).mean()


def _loop_forward(logits, targets):
    t = _as_distribution(logits, targets)
    total = np.zeros((), logits.dtype)
    for i in range(len(logits)):
        z = logits[i] - logits[i].max()
        total = total - (t[i] * (z - np.log(np.exp(z).sum()))).sum()
    return total / len(logits)


SOFTMAX_CROSS_ENTROPY = op_exercise(
    name="softmax_cross_entropy", lesson="05",
    title="softmax cross-entropy, mean over the batch: class ids and soft targets",
    stub="05_softmax_cross_entropy.py",
    reread="lesson 05, sections 2-4 (log-sum-exp; softmax minus one-hot; soft targets)",
    forward="softmax_cross_entropy_forward", backward="softmax_cross_entropy_backward",
    inputs=("logits", "targets"), grads=("logits",),
    cases={"class ids": _class_ids, "soft targets": _soft_targets},
    reference_forward=softmax_cross_entropy_forward, reference_backward=softmax_cross_entropy_backward,
    answer=(SoftmaxCrossEntropy,), extra_checks=(_check_large_logits,),
    wrong=[
        Wrong("backward scaled by 1.01", {"softmax_cross_entropy_backward": _scaled},
              ("gradient for logits is wrong", "ratio 1.01", "lesson 05")),
        Wrong("backward zeroed", {"softmax_cross_entropy_backward": _zeroed},
              ("gradient for logits is wrong", "all zeros")),
        Wrong("forgets the 1/N of the mean", {"softmax_cross_entropy_backward": _no_mean},
              ("gradient for logits is wrong", "ratio 3")),
        Wrong("soft targets taken as their argmax", {"softmax_cross_entropy_backward": _soft_as_argmax},
              ("gradient for logits is wrong (case: soft targets)",)),
        Wrong("forward picks the next class (off by one)", {"softmax_cross_entropy_forward": _forward_off_by_one},
              ("softmax_cross_entropy_forward differs from tinymm's (case: class ids)",)),
        Wrong("forward subtracts the max in place", {"softmax_cross_entropy_forward": _forward_in_place},
              ("softmax_cross_entropy_forward changed its input logits in place",)),
        Wrong("naive softmax overflows", {"softmax_cross_entropy_forward": _naive_forward},
              ("logits of ±1e4", "log-sum-exp")),
        Wrong("loop over the rows", {"softmax_cross_entropy_forward": _loop_forward},
              ("softmax_cross_entropy_forward loops over the batch",)),
    ])
