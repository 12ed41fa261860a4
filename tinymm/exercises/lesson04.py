"""Lesson 04's coded exercises: the linear layer and ReLU, forward and backward.

The references are adapters that run tinymm's own Functions (``Linear``, ``ReLU``) on the
learner's arrays; the wrong versions below are the mistakes the checker must catch.
"""
import numpy as np

from ..functional.activation import ReLU
from ..functional.linear import Linear
from .core import Wrong
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
              ("gradient for x is wrong", "ratio 1.01", "lesson 04, sections 1-3")),
        Wrong("dW zeroed", {"linear_backward": _zero_dW}, ("gradient for W is wrong", "all zeros")),
        Wrong("dW transposed", {"linear_backward": _transposed_dW},
              ("dW with shape (4, 5)", "W has shape (5, 4)", "looks transposed")),
        Wrong("missing unbroadcast of db", {"linear_backward": _no_unbroadcast},
              ("db with shape (3, 5)", "b has shape (5,)", "sum of g over those rows")),
        Wrong("forward off by one column", {"linear_forward": _forward_off_by_one},
              ("linear_forward differs from the reference", "relative error")),
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
              ("relu_forward differs from the reference",)),
        Wrong("forward edits x in place", {"relu_forward": _relu_forward_in_place},
              ("relu_forward changed its input x in place",)),
        Wrong("backward edits g in place", {"relu_backward": _relu_backward_in_place},
              ("relu_backward changed its input g in place",)),
        Wrong("loop over the rows", {"relu_backward": _relu_loop}, ("relu_backward loops over the batch",)),
    ])
