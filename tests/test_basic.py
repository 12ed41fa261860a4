"""The basic ops: forward values against NumPy, broadcasting gradients, and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson03

rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4))
B = rng.uniform(0.5, 2.0, (3, 4))


@pytest.mark.parametrize("op, reference", [
    (lambda a, b: a + b, lambda a, b: a + b),
    (lambda a, b: a - b, lambda a, b: a - b),
    (lambda a, b: a * b, lambda a, b: a * b),
    (lambda a, b: a / b, lambda a, b: a / b),
    (lambda a, b: -a, lambda a, b: -a),
    (lambda a, b: b ** 1.5, lambda a, b: b ** 1.5),
    (lambda a, b: a.exp(), np.exp),
    (lambda a, b: b.log(), lambda a, b: np.log(b)),
    (lambda a, b: a.sum(axis=0), lambda a, b: a.sum(axis=0)),
    (lambda a, b: a.mean(axis=(0, 1), keepdims=True), lambda a, b: a.mean(axis=(0, 1), keepdims=True)),
    (lambda a, b: a.max(axis=1), lambda a, b: a.max(axis=1)),
    (lambda a, b: a.reshape(2, 6), lambda a, b: a.reshape(2, 6)),
    (lambda a, b: a.T, lambda a, b: a.T),
    (lambda a, b: a[1:, [0, 3]], lambda a, b: a[1:, [0, 3]]),
    (lambda a, b: F.concatenate([a, b], axis=0), lambda a, b: np.concatenate([a, b], axis=0)),
    (lambda a, b: F.stack([a, b], axis=2), lambda a, b: np.stack([a, b], axis=2)),
    (lambda a, b: a @ b.T, lambda a, b: a @ b.T),
], ids=["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sum", "mean", "max", "reshape",
        "T", "getitem", "concatenate", "stack", "matmul"])
def test_forward_matches_numpy(op, reference):
    out = op(tm.tensor(A), tm.tensor(B))
    np.testing.assert_allclose(out.numpy(), reference(A, B), rtol=1e-12, atol=1e-12)


def _broadcastable_pair():
    """Two shapes that broadcast: drop leading axes and set random axes to 1 in each."""
    def build(draw):
        shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
        def variant():
            keep = draw(st.integers(0, len(shape) - 1))
            return [1 if draw(st.booleans()) else n for n in shape[keep:]]
        return tuple(variant()), tuple(variant())
    return st.composite(lambda draw: build(draw))()


@settings(max_examples=25, deadline=None)
@given(shapes=_broadcastable_pair(), op=st.sampled_from(["add", "sub", "mul", "div"]))
def test_broadcasting_gradients(shapes, op):
    """Whatever the broadcast, each input's gradient has its own shape and is correct."""
    sa, sb = shapes
    gen = np.random.default_rng(1)
    a = tm.tensor(gen.standard_normal(sa), requires_grad=True)
    b = tm.tensor(gen.uniform(0.5, 2.0, sb), requires_grad=True)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
          "mul": lambda x, y: x * y, "div": lambda x, y: x / y}[op]
    report = gradcheck(fn, [a, b], tol=1e-7)
    assert [c.shape for c in report.checks] == [sa, sb]


def test_unbroadcast_sums_the_copies():
    g = np.ones((2, 3, 4))
    assert F.unbroadcast(g, (4,)).tolist() == [6.0] * 4
    assert F.unbroadcast(g, (3, 1)).shape == (3, 1) and F.unbroadcast(g, (3, 1))[0, 0] == 8.0
    assert F.unbroadcast(g, (2, 3, 4)) is g


def test_max_ties_send_the_gradient_to_the_first():
    x = tm.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [[0, 1, 0], [1, 0, 0]])


def test_repeated_indices_add_up():
    x = tm.tensor(np.arange(3.0), requires_grad=True)
    x[np.array([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [3.0, 0.0, 1.0])


def test_index_with_a_tensor_and_a_list():
    x = tm.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x[tm.tensor([1, 1]), [0, 2]]
    np.testing.assert_array_equal(y.numpy(), [3.0, 5.0])


@pytest.mark.parametrize("build, message", [
    (lambda: tm.tensor(np.ones((2, 3))) + tm.tensor(np.ones((4,))), r"add: shapes \(2, 3\) and \(4,\) do not broadcast"),
    (lambda: tm.tensor(np.ones((2, 3))) * tm.tensor(np.ones((3, 2))), r"mul: shapes \(2, 3\) and \(3, 2\)"),
    (lambda: tm.tensor(np.ones((2, 3))) @ tm.tensor(np.ones((4, 5))), r"matmul: inner dimensions differ: \(2, 3\) @ \(4, 5\)"),
    (lambda: tm.tensor(np.ones(3)).reshape(2, 2), r"reshape: cannot reshape a tensor of shape \(3,\)"),
    (lambda: tm.tensor(np.ones((2, 3))).sum(axis=2), r"sum: axis 2 is out of range"),
    (lambda: F.stack([tm.tensor(np.ones(2)), tm.tensor(np.ones(3))]), r"stack: all inputs need the same shape"),
    (lambda: F.concatenate([tm.tensor(np.ones((2, 2))), tm.tensor(np.ones((3, 3)))], axis=1), r"concatenate: cannot join shapes"),
    (lambda: tm.tensor(np.ones(2)).transpose(0, 0), r"transpose: axes"),
])
def test_bad_shapes_name_the_op(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_pow_needs_a_number_exponent():
    with pytest.raises(TypeError, match="exponent"):
        tm.tensor([1.0]) ** tm.tensor([2.0])
