"""Lesson 09's coded exercise: L2 normalisation, including rows of length 1e-3 and a zero row
(the clamp at eps). The reference runs tinymm's ``L2Normalize`` Function.
"""
import numpy as np

from ..functional.normalize import L2Normalize
from .core import Wrong
from .opcheck import op_exercise


def _l2(x, eps):
    fn = L2Normalize()
    fn.needs_input_grad = (True, False)
    return fn, fn.forward(x, axis=-1, eps=float(eps))


def l2_normalize_forward(x, eps):
    return _l2(x, eps)[1]


def l2_normalize_backward(g, x, eps):
    return _l2(x, eps)[0].backward(g)


def _ordinary(rng, n):
    return 2.5 * rng.standard_normal((n, 5)), np.array(1e-12)


def _short(rng, n):
    return 1e-3 * rng.standard_normal((n, 5)), np.array(1e-12)


def _zero_row(rng, n):
    x = rng.standard_normal((n, 5))
    x[0] = 0
    return x, np.array(1e-3)


def _no_projection(g, x, eps):
    return g / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def _scaled(g, x, eps):
    return 1.01 * l2_normalize_backward(g, x, eps)


def _zeroed(g, x, eps):
    return np.zeros_like(x)


def _transposed(g, x, eps):
    return l2_normalize_backward(g, x, eps).T


def _norm_without_clamp(x, eps):
    with np.errstate(all="ignore"):
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def _backward_without_clamp(g, x, eps):
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        y = x / norm
        return (g - y * (y * g).sum(axis=1, keepdims=True)) / norm


def _forward_in_place(x, eps):
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)
    return x


def _loop(g, x, eps):
    return np.stack([l2_normalize_backward(g[i:i + 1], x[i:i + 1], eps)[0] for i in range(len(x))])


L2_NORMALIZE = op_exercise(
    name="l2_normalize", lesson="09", title="L2 normalisation x / max(‖x‖, eps): forward and backward",
    stub="09_l2_normalize.py",
    reread="lesson 09, sections 2 (the backward pass, derived) and 4 (checking near zero)",
    forward="l2_normalize_forward", backward="l2_normalize_backward",
    inputs=("x", "eps"), grads=("x",),
    # rows of length 1e-3 need a finite-difference step small compared with them (lesson 09, section 4)
    cases={"rows of ordinary length": _ordinary, "rows of length about 1e-3": (_short, {"eps": 1e-9}),
           "a zero row (eps = 1e-3)": _zero_row},
    reference_forward=l2_normalize_forward, reference_backward=l2_normalize_backward, answer=(L2Normalize,),
    wrong=[
        Wrong("no projection onto the tangent plane", {"l2_normalize_backward": _no_projection},
              ("gradient for x is wrong", "lesson 09")),
        Wrong("backward scaled by 1.01", {"l2_normalize_backward": _scaled}, ("ratio 1.01",)),
        Wrong("backward zeroed", {"l2_normalize_backward": _zeroed}, ("all zeros",)),
        Wrong("dx transposed", {"l2_normalize_backward": _transposed}, ("looks transposed",)),
        Wrong("forward divides by the norm, not max(norm, eps)", {"l2_normalize_forward": _norm_without_clamp},
              ("l2_normalize_forward differs from tinymm's (case: a zero row", "yours nan")),
        Wrong("backward divides by the norm, not max(norm, eps)", {"l2_normalize_backward": _backward_without_clamp},
              ("gradient for x is wrong (case: a zero row", "inf or NaN")),
        Wrong("forward normalises x in place", {"l2_normalize_forward": _forward_in_place},
              ("l2_normalize_forward changed its input x in place",)),
        Wrong("loop over the rows", {"l2_normalize_backward": _loop}, ("l2_normalize_backward loops over the batch",)),
    ])
