"""Gradient checking: prove a hand-written backward against finite differences.

For a function f of some tensors, backprop gives the analytic gradient. The numerical
gradient comes from nudging one input element at a time by ±eps (central differences):

    dL/dx[i] ≈ (L(x + eps·e_i) − L(x − eps·e_i)) / (2·eps)        error O(eps²)

L is not f itself but f projected onto a fixed random upstream gradient G:
L = sum(f(x) * G). Summing f directly would be a trap: the rows of a softmax and the
norms of L2-normalised vectors sum to constants, so d(sum)/dx = 0 and a backward that
returns zeros would pass. With a random G every part of the Jacobian is exercised.

The two gradients are compared with cs231n's relative error, in float64:

    rel = max_i |a_i − n_i| / max(1e-8, |a_i| + |n_i|)

Typical values for a correct backward are 1e-12 to 1e-9; a wrong one gives 1e-2 or more.
"""
from dataclasses import dataclass, field

import numpy as np

from . import backend
from .autograd import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""

    def __init__(self, report):
        super().__init__(str(report))
        self.report = report


@dataclass
class InputCheck:
    """How one input's gradient compared."""

    index: int
    shape: tuple
    max_rel_error: float
    worst_index: tuple
    analytic: float  # the analytic gradient at the worst index
    numeric: float   # the numerical gradient there


@dataclass
class GradcheckReport:
    """The outcome of ``gradcheck``: one ``InputCheck`` per input that requires grad."""

    name: str
    checks: list = field(default_factory=list)
    tol: float = 1e-6

    @property
    def max_rel_error(self):
        return max((c.max_rel_error for c in self.checks), default=0.0)

    @property
    def passed(self):
        return self.max_rel_error <= self.tol

    def __str__(self):
        lines = [f"gradcheck {self.name}: {'passed' if self.passed else 'FAILED'} "
                 f"(max relative error {self.max_rel_error:.2e}, tolerance {self.tol:.0e})"]
        for c in self.checks:
            lines.append(f"  input {c.index} {c.shape}: rel error {c.max_rel_error:.2e} at {c.worst_index} "
                         f"(analytic {c.analytic:.6g}, numeric {c.numeric:.6g})")
        return "\n".join(lines)


def relative_error(analytic, numeric):
    """Elementwise |a − n| / max(1e-8, |a| + |n|) (the floor avoids 0/0 where both are 0)."""
    return np.abs(analytic - numeric) / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))


def _projected_loss(fn, inputs, upstream):
    out = fn(*inputs)
    return float((backend.to_numpy(out.data).astype(np.float64) * upstream).sum())


def numerical_gradient(fn, inputs, wrt, upstream, eps=1e-6):
    """d sum(fn(*inputs) * upstream) / d inputs[wrt].data, by central differences.

    Each element of that input is nudged in place to x + eps and x − eps, the function is
    evaluated twice, and the value put back exactly as it was.
    """
    x = inputs[wrt].data
    grad = np.zeros(x.shape, dtype=np.float64)
    flat_x = x.reshape(-1)  # a view: writing to it nudges x itself
    for i in range(flat_x.size):
        original = flat_x[i].item()
        flat_x[i] = original + eps
        plus = _projected_loss(fn, inputs, upstream)
        flat_x[i] = original - eps
        minus = _projected_loss(fn, inputs, upstream)
        flat_x[i] = original
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, inputs, eps=1e-6, tol=1e-6, seed=0, name=None, raise_on_failure=True):
    """Compare backprop with central differences for every input that requires grad.

    fn      a function of the tensors in ``inputs`` returning a Tensor of any shape
    inputs  Tensors (float64 for the ones that require grad); integer tensors (token ids,
            labels) and tensors without requires_grad are passed through unchecked
    Returns a ``GradcheckReport``; raises ``GradcheckError`` if any relative error > tol.
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; check in float64 "
                            f"(float32 rounding alone gives relative errors around 1e-3)")
    for i in checked:
        inputs[i].data = inputs[i].data.copy()  # C-contiguous, so nudging a flat view nudges it
        inputs[i].grad = None

    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    # its own stream: drawn from the inputs' seed, G could equal an input and hide a zero gradient
    upstream = np.random.default_rng([seed, 7919]).standard_normal(out.shape)
    xp = backend.get_array_module(out.data)
    out.backward(xp.asarray(upstream, dtype=out.dtype))

    report = GradcheckReport(name or getattr(fn, "__name__", "fn"), tol=tol)
    for i in checked:
        analytic = np.zeros(inputs[i].shape) if inputs[i].grad is None else backend.to_numpy(inputs[i].grad)
        numeric = numerical_gradient(fn, inputs, i, upstream, eps)
        errors = relative_error(analytic, numeric)
        worst = np.unravel_index(int(errors.argmax()), errors.shape) if errors.size else ()
        report.checks.append(InputCheck(i, inputs[i].shape, float(errors.max(initial=0.0)),
                                        tuple(int(w) for w in worst),
                                        float(analytic[worst]) if errors.size else 0.0,
                                        float(numeric[worst]) if errors.size else 0.0))
    if raise_on_failure and not report.passed:
        raise GradcheckError(report)
    return report
