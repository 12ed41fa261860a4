"""Lesson 04's coded exercises: the linear layer and ReLU (forward and backward), and the
backward of broadcasting (unbroadcast, add, mul).

The references are adapters that run tinymm's own Functions (``Linear``, ``ReLU``, ``Add``,
``Mul``) and ``unbroadcast`` on the learner's arrays; the wrong versions below are the mistakes
the checker must catch.
"""
import numpy as np

from ..functional.activation import ReLU
from ..functional.basic import Add, Mul, unbroadcast
from ..functional.linear import Linear
from .core import Exercise, Finding, Wrong, call_learner, worst
from .opcheck import op_exercise

# ----------------------------------------------------------------------------------------------
# linear: out = x @ W.T + b


def _linear(x, W, b):
    fn = Linear()
    fn.needs_input_grad = (True, True, True)
    return fn, fn.forward(x, W, b)


def linear_forward(x, W, b):
    return _linear(x, W, b)[1]


def linear_backward(g, x, W, b):
    fn, _ = _linear(x, W, b)
    return fn.backward(g)


def _linear_inputs(rng, n):
    return rng.standard_normal((n, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)


def _scaled(g, x, W, b):
    return tuple(1.01 * d for d in linear_backward(g, x, W, b))


def _db_mean(g, x, W, b):
    dx, dW, db = linear_backward(g, x, W, b)
    return dx, dW, g.mean(axis=0)  # the bias was added to every row: its gradient is their sum


def _zero_dW(g, x, W, b):
    dx, dW, db = linear_backward(g, x, W, b)
    return dx, np.zeros_like(dW), db


def _transposed_dW(g, x, W, b):
    return g @ W, x.T @ g, g.sum(axis=0)


def _no_unbroadcast(g, x, W, b):
    return g @ W, g.T @ x, g  # db not summed over the rows b was copied to


def _forward_off_by_one(x, W, b):
    return np.roll(x @ W.T + b, 1, axis=1)


def _zeroes_saved_input(g, x, W, b):
    dW, db = g.T @ x, g.sum(axis=0)
    x *= 0  # "free" the saved input: but it belongs to the caller
    return g @ W, dW, db


def _loops_over_rows(g, x, W, b):
    dx = np.empty_like(x)
    for i in range(len(x)):
        dx[i] = g[i] @ W
    return dx, g.T @ x, g.sum(axis=0)


def _forgets_return(g, x, W, b):
    g @ W


def _float64_bias(g, x, W, b):
    return g @ W, g.T @ x, g.sum(axis=0) + np.zeros(b.shape)


LINEAR = op_exercise(
    name="linear", lesson="04", title="the linear layer x @ W.T + b: forward and backward",
    stub="04_linear.py",
    reread="lesson 04, sections 1-3 (the linear layer, forward and backward; broadcasting: why db is a sum)",
    forward="linear_forward", backward="linear_backward",
    inputs=("x", "W", "b"), grads=("x", "W", "b"), cases={"a batch of rows": _linear_inputs},
    reference_forward=linear_forward, reference_backward=linear_backward, answer=(Linear,),
    hints={"b": "b was copied to every row of the batch in the forward (broadcasting), so its "
                "gradient is the sum of g over those rows."},
    wrong=[
        Wrong("backward scaled by 1.01", {"linear_backward": _scaled},
              ("gradients for x, W and b are wrong", "ratio 1.01", "Every gradient (dx, dW and db) is 1.01× off",
               "lesson 04, sections 1-3")),
        Wrong("db as a mean over the batch", {"linear_backward": _db_mean},
              ("the gradient for b is wrong, x and W are right", "1/N with N = 3 the batch",
               "mean instead of sum over the batch?")),
        Wrong("dW zeroed", {"linear_backward": _zero_dW}, ("gradient for W is wrong", "all zeros")),
        Wrong("dW transposed", {"linear_backward": _transposed_dW},
              ("dW with shape (4, 5)", "W has shape (5, 4)", "looks transposed")),
        Wrong("missing unbroadcast of db", {"linear_backward": _no_unbroadcast},
              ("db with shape (3, 5)", "b has shape (5,)", "sum of g over those rows")),
        Wrong("forward off by one column", {"linear_forward": _forward_off_by_one},
              ("linear_forward differs from tinymm's", "relative error")),
        Wrong("backward zeroes its input x", {"linear_backward": _zeroes_saved_input},
              ("linear_backward changed its input x in place",)),
        Wrong("loop over the rows", {"linear_backward": _loops_over_rows},
              ("linear_backward loops over the batch", "batch of 2", "batch of 5")),
        Wrong("forgets to return", {"linear_backward": _forgets_return},
              ("linear_backward returned None", "return dx, dW, db")),
        Wrong("float64 bias gradient", {"linear_backward": _float64_bias},
              ("returned db as float64 for float32 inputs",)),
    ])

# ----------------------------------------------------------------------------------------------
# relu: out = max(0, x)


def relu_forward(x):
    return ReLU().forward(x)


def relu_backward(g, x):
    fn = ReLU()
    fn.forward(x)
    return fn.backward(g)


def _relu_inputs(rng, n):
    # kept away from the kink at 0, where the slope jumps and finite differences straddle it
    x = rng.standard_normal((n, 6))
    return (np.sign(x) * (0.1 + np.abs(x)),)


def _relu_scaled(g, x):
    return 1.01 * relu_backward(g, x)


def _relu_zero(g, x):
    return np.zeros_like(g)


def _relu_wrong_mask(g, x):
    return g * (x < 0)


def _relu_forward_off_by_one(x):
    return np.roll(np.maximum(x, 0), 1, axis=1)


def _relu_forward_in_place(x):
    x[x < 0] = 0
    return x


def _relu_backward_in_place(g, x):
    g[x <= 0] = 0
    return g


def _relu_loop(g, x):
    dx = np.zeros_like(g)
    for i in range(len(x)):
        dx[i] = g[i] * (x[i] > 0)
    return dx


RELU = op_exercise(
    name="relu", lesson="04", title="ReLU max(0, x): forward and backward",
    stub="04_relu.py", reread="lesson 04, section 4 (ReLU: the non-linearity)",
    forward="relu_forward", backward="relu_backward",
    inputs=("x",), grads=("x",), cases={"a batch of rows": _relu_inputs},
    reference_forward=relu_forward, reference_backward=relu_backward, answer=(ReLU,),
    wrong=[
        Wrong("backward scaled by 1.01", {"relu_backward": _relu_scaled},
              ("gradient for x is wrong", "ratio 1.01", "lesson 04, section 4")),
        Wrong("backward zeroed", {"relu_backward": _relu_zero}, ("gradient for x is wrong", "all zeros")),
        Wrong("mask the wrong way round", {"relu_backward": _relu_wrong_mask}, ("gradient for x is wrong",)),
        Wrong("forward off by one", {"relu_forward": _relu_forward_off_by_one},
              ("relu_forward differs from tinymm's",)),
        Wrong("forward edits x in place", {"relu_forward": _relu_forward_in_place},
              ("relu_forward changed its input x in place",)),
        Wrong("backward edits g in place", {"relu_backward": _relu_backward_in_place},
              ("relu_backward changed its input g in place",)),
        Wrong("loop over the rows", {"relu_backward": _relu_loop}, ("relu_backward loops over the batch",)),
    ])

# ----------------------------------------------------------------------------------------------
# broadcasting: unbroadcast, then the backward of add and mul

BROADCAST_REREAD = "lesson 04, section 3 (broadcasting, and why the bias gradient is a sum)"
UNBROADCAST_SHAPES = [((4, 3), (3,)), ((4, 3), (4, 1)), ((4, 3), (1, 3)), ((2, 4, 3), (4, 1)),
                      ((2, 4, 3), (3,)), ((2, 4, 3), (1, 1, 3)), ((4, 3), (4, 3)), ((4, 3), ())]


def _binary(cls, a, b):
    fn = cls()
    fn.needs_input_grad = (True, True)
    return fn, fn.forward(a, b)


def add_forward(a, b):
    return _binary(Add, a, b)[1]


def add_backward(g, a, b):
    return _binary(Add, a, b)[0].backward(g)


def mul_forward(a, b):
    return _binary(Mul, a, b)[1]


def mul_backward(g, a, b):
    return _binary(Mul, a, b)[0].backward(g)


def _row_plus_matrix(rng, n):
    return rng.standard_normal((n, 3)), rng.standard_normal(3)


def _column_and_row(rng, n):
    return rng.standard_normal((n, 1)), rng.standard_normal((1, 3))


def _three_axes(rng, n):
    return rng.standard_normal((n, 2, 3)), rng.standard_normal((2, 1))


_CASES = {"a (N, 3) with b (3,)": _row_plus_matrix,
          "a column (N, 1) with a row (1, 3)": _column_and_row,
          "a (N, 2, 3) with b (2, 1)": _three_axes}
_HINT = ("It was broadcast in the forward: finish with unbroadcast(..., {0}.shape), which sums over "
         "the copies.")


def _op(name, forward, backward, cls):
    return op_exercise(name=name, lesson="04", title="", stub="04_broadcasting.py", reread=BROADCAST_REREAD,
                       backward=name + "_backward", inputs=("a", "b"), grads=("a", "b"), cases=_CASES,
                       reference_forward=forward, reference_backward=backward, answer=(cls,),
                       hints={"a": _HINT.format("a"), "b": _HINT.format("b")})


_ADD, _MUL = _op("add", add_forward, add_backward, Add), _op("mul", mul_forward, mul_backward, Mul)


def _check_unbroadcast(impl):
    rng = np.random.default_rng(3)
    for big, shape in UNBROADCAST_SHAPES:
        for dtype in (np.float64, np.float32):
            grad = rng.standard_normal(big).astype(dtype)
            given = grad.copy()
            out = call_learner("unbroadcast", impl.unbroadcast, given, shape)
            call = f"unbroadcast(grad of shape {big}, {shape})"
            if out is None:
                raise Finding(f"{call} returned None: did you forget `return grad`? Reread {BROADCAST_REREAD}.")
            out = np.asarray(out)
            if not np.array_equal(given, grad):
                raise Finding(f"{call} changed grad in place: sum into a new array. Reread {BROADCAST_REREAD}.")
            want = unbroadcast(grad, shape)
            if out.shape != tuple(shape):
                kept = " Keep the axes where shape has size 1 (keepdims=True)." \
                    if len(out.shape) < len(shape) or 1 in shape else ""
                raise Finding(f"{call} returned shape {out.shape}, not {tuple(shape)}.{kept} "
                              f"Reread {BROADCAST_REREAD}.")
            if out.dtype != grad.dtype:
                raise Finding(f"{call} turned {grad.dtype} into {out.dtype}: keep grad's dtype.")
            if not np.allclose(out, want, rtol=1e-5):
                error, index, mine, ref = worst(out, want)
                raise Finding(f"{call} differs from tinymm's: relative error {error:.1e} at index {index} "
                              f"(yours {mine:.6g}, tinymm {ref:.6g}). Each copy's gradient counts once: "
                              f"a sum, not a mean. Reread {BROADCAST_REREAD}.")
    return f"unbroadcast gives tinymm's result for {len(UNBROADCAST_SHAPES)} pairs of shapes"


def _check_broadcasting(impl):
    passed = [_check_unbroadcast(impl)]
    for op in (_ADD, _MUL):
        try:
            passed += [f"{op.name}: {line}" for line in op.check(impl)]
        except Finding as finding:
            finding.passed = passed + [f"{op.name}: {line}" for line in finding.passed]
            raise
    return passed


def _no_keepdims(grad, shape):
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched) if stretched else grad


def _mean_not_sum(grad, shape):
    summed = unbroadcast(grad, shape)
    return summed * (np.prod(shape, dtype=int) / grad.size) if grad.size else summed


def _add_no_unbroadcast(g, a, b):
    return g, g


def _mul_swapped(g, a, b):
    return unbroadcast(g * a, a.shape), unbroadcast(g * b, b.shape)


def _mul_scaled(g, a, b):
    return tuple(1.01 * d for d in mul_backward(g, a, b))


def _mul_zero_db(g, a, b):
    return unbroadcast(g * b, a.shape), np.zeros_like(b)


def _mul_in_place(g, a, b):
    db = unbroadcast(g * a, b.shape)
    g *= b
    return unbroadcast(g, a.shape), db


def _add_loop(g, a, b):
    rows = np.stack([g[i] for i in range(len(g))])
    return unbroadcast(rows, a.shape), unbroadcast(g, b.shape)


BROADCASTING = Exercise(
    name="broadcasting", lesson="04", title="unbroadcast, and the backward of add and mul with broadcasting",
    stub="04_broadcasting.py", slots=("unbroadcast", "add_backward", "mul_backward"),
    reread=BROADCAST_REREAD, check=_check_broadcasting,
    reference={"unbroadcast": unbroadcast, "add_backward": add_backward, "mul_backward": mul_backward},
    answer=(unbroadcast, Add, Mul),
    wrong=[
        Wrong("unbroadcast drops the size-1 axes", {"unbroadcast": _no_keepdims},
              ("returned shape (4,), not (4, 1)", "keepdims=True")),
        Wrong("unbroadcast takes a mean", {"unbroadcast": _mean_not_sum}, ("differs from tinymm's", "not a mean")),
        Wrong("add without unbroadcast", {"add_backward": _add_no_unbroadcast},
              ("add_backward returned db with shape (3, 3), but b has shape (3,)", "unbroadcast(..., b.shape)")),
        Wrong("mul gradients swapped", {"mul_backward": _mul_swapped}, ("gradients for a and b are wrong",)),
        Wrong("mul backward scaled by 1.01", {"mul_backward": _mul_scaled}, ("gradients for a and b are wrong", "ratio 1.01", "Every gradient (da and db) is 1.01× off")),
        Wrong("mul db zeroed", {"mul_backward": _mul_zero_db}, ("the gradient for b is wrong, a is right", "all zeros")),
        Wrong("mul edits g in place", {"mul_backward": _mul_in_place}, ("mul_backward changed its input g",)),
        Wrong("add loops over the rows", {"add_backward": _add_loop}, ("add_backward loops over the batch",)),
    ])
