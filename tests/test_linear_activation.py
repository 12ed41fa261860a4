"""linear, relu, sigmoid, tanh, softmax and dropout (tinymm/functional/linear.py, activation.py).

Forward passes are compared with NumPy written out plainly; backward passes with the
formulas of the docstrings and with finite differences in float64.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson04

TOL = 1e-7
# linear is linear in each input, so central differences have no truncation error and a
# larger step only shrinks the rounding error (which matters where a gradient is nearly 0)
LINEAR_EPS = 1e-4


def leaf(array, device=None):
    return tm.tensor(np.asarray(array), requires_grad=True, device=device)


# ----------------------------------------------------------------------------------------------
# linear


def test_linear_forward_and_hand_derived_backward(device):
    rng = np.random.default_rng(1)
    x, w, b, g = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal(5), \
        rng.standard_normal((4, 5))
    xt, wt, bt = leaf(x, device), leaf(w, device), leaf(b, device)
    y = F.linear(xt, wt, bt)
    assert y.shape == (4, 5)
    np.testing.assert_allclose(y.numpy(), x @ w.T + b, rtol=1e-12)
    y.backward(tm.tensor(g, device=device))
    np.testing.assert_allclose(tm.tensor(xt.grad).numpy(), g @ w, rtol=1e-12)
    np.testing.assert_allclose(tm.tensor(wt.grad).numpy(), g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(tm.tensor(bt.grad).numpy(), g.sum(axis=0), rtol=1e-12)


def test_linear_gradcheck_with_and_without_bias(device):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    report = gradcheck(F.linear, [leaf(x, device), leaf(w, device), leaf(b, device)], eps=LINEAR_EPS, tol=TOL)
    assert len(report.checks) == 3 and report.max_rel_error < TOL
    report = gradcheck(F.linear, [leaf(x, device), leaf(w, device)], eps=LINEAR_EPS, tol=TOL)
    assert len(report.checks) == 2 and report.max_rel_error < TOL


@settings(max_examples=25, deadline=None)
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), n_in=st.integers(1, 4),
       n_out=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_any_leading_shape(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((*lead, n_in)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    inputs = [leaf(x), leaf(w)] + ([leaf(b)] if bias else [])
    out = F.linear(*inputs)
    assert out.shape == (*lead, n_out)
    np.testing.assert_allclose(out.numpy(), x @ w.T + (b if bias else 0), rtol=1e-10, atol=1e-12)
    assert gradcheck(F.linear, inputs, eps=LINEAR_EPS, tol=TOL).max_rel_error < TOL


def test_linear_keeps_float32_and_skips_unneeded_gradients():
    x = tm.tensor(np.ones((2, 3), dtype=np.float32))
    w = tm.tensor(np.full((4, 3), 0.5, dtype=np.float32), requires_grad=True)
    y = F.linear(x, w)
    assert y.dtype == np.float32 and y.shape == (2, 4)
    np.testing.assert_allclose(y.numpy(), np.full((2, 4), 1.5))
    y.sum().backward()
    assert w.grad.dtype == np.float32 and x.grad is None
    np.testing.assert_allclose(backend.to_numpy(w.grad), np.full((4, 3), 2.0))


def test_linear_errors_name_the_shapes():
    x, w = tm.tensor(np.ones((8, 4))), tm.tensor(np.ones((16, 3)))
    with pytest.raises(ValueError, match=r"linear: input has 4 features but weight expects 3 "
                                         r"\(input \(8, 4\), weight \(16, 3\)\)"):
        F.linear(x, w)
    with pytest.raises(ValueError, match=r"linear: bias must have shape \(16,\).*got \(3,\)"):
        F.linear(tm.tensor(np.ones((8, 3))), w, tm.tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"linear: weight must be 2-D"):
        F.linear(x, tm.tensor(np.ones(4)))


# ----------------------------------------------------------------------------------------------
# relu, sigmoid, tanh


def test_relu_forward_and_mask_backward(device):
    x = leaf([[-2.0, -0.0, 0.0, 0.5, 3.0]], device)
    y = F.relu(x)
    np.testing.assert_array_equal(y.numpy(), [[0.0, 0.0, 0.0, 0.5, 3.0]])
    y.backward(tm.tensor(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), device=device))
    # the slope is 0 at exactly 0 (PyTorch's choice), 1 where the unit is on
    np.testing.assert_array_equal(tm.tensor(x.grad).numpy(), [[0.0, 0.0, 0.0, 4.0, 5.0]])


def test_elementwise_activations_gradcheck_away_from_kinks(device):
    rng = np.random.default_rng(3)
    away = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.1, 2.0, (3, 4))
    for fn in (F.relu, F.sigmoid, F.tanh):
        assert gradcheck(fn, [leaf(away, device)], tol=TOL).max_rel_error < TOL


def test_sigmoid_and_tanh_match_numpy_and_their_output_formulas():
    x = np.linspace(-6, 6, 25)
    xt = leaf(x)
    s = F.sigmoid(xt)
    np.testing.assert_allclose(s.numpy(), 1 / (1 + np.exp(-x)), rtol=1e-14)
    s.backward(np.ones_like(x))
    np.testing.assert_allclose(backend.to_numpy(xt.grad), s.numpy() * (1 - s.numpy()), rtol=1e-12)
    xt = leaf(x)
    t = F.tanh(xt)
    np.testing.assert_allclose(t.numpy(), np.tanh(x), rtol=1e-14)
    t.backward(np.ones_like(x))
    np.testing.assert_allclose(backend.to_numpy(xt.grad), 1 - np.tanh(x) ** 2, rtol=1e-12)


def test_sigmoid_is_stable_at_huge_inputs_in_float32():
    x = tm.tensor(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from exp
        y = F.sigmoid(x)
        y.sum().backward()
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [0.0, np.float32(1 / (1 + np.exp(100.0))), 0.5, 1.0, 1.0])
    assert np.all(np.isfinite(x.grad)) and x.grad[2] == 0.25


# ----------------------------------------------------------------------------------------------
# softmax


def softmax_reference(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_matches_numpy_and_gradchecks(axis, device):
    x = np.random.default_rng(4).standard_normal((2, 3, 4))
    y = F.softmax(leaf(x, device), axis=axis)
    np.testing.assert_allclose(y.numpy(), softmax_reference(x, axis), rtol=1e-13)
    np.testing.assert_allclose(y.numpy().sum(axis=axis), 1.0, rtol=1e-14)
    report = gradcheck(lambda t: F.softmax(t, axis=axis), [leaf(x, device)], eps=1e-5, tol=TOL)
    assert report.max_rel_error < TOL


def test_softmax_backward_is_y_times_g_minus_its_weighted_mean():
    x, g = np.array([[1.0, 2.0, 3.0]]), np.array([[0.5, -1.0, 2.0]])
    xt = leaf(x)
    y = F.softmax(xt)
    y.backward(g)
    p = softmax_reference(x, -1)
    np.testing.assert_allclose(backend.to_numpy(xt.grad), p * (g - (g * p).sum()), rtol=1e-13)
    # the trap of lesson 03: the gradient of sum(softmax) is exactly zero
    xt = leaf(x)
    F.softmax(xt).sum().backward()
    assert np.abs(backend.to_numpy(xt.grad)).max() < 1e-15


def test_softmax_is_stable_at_logits_1e4():
    x = leaf([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]])
    y = F.softmax(x)
    np.testing.assert_allclose(y.numpy(), [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-300)
    y.backward(np.ones((2, 3)))
    assert np.all(np.isfinite(x.grad))


def test_softmax_bad_axis():
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range for an input of shape \(2, 3\)"):
        F.softmax(tm.tensor(np.ones((2, 3))), axis=2)


# ----------------------------------------------------------------------------------------------
# dropout


def test_dropout_keeps_about_1_minus_p_and_scales_the_kept(device):
    tm.manual_seed(0)
    x = tm.tensor(np.full((200, 500), 2.0, dtype=np.float32), requires_grad=True, device=device)
    y = F.dropout(x, p=0.3)
    values = y.numpy()
    assert y.dtype == np.float32
    kept = values != 0
    assert abs(kept.mean() - 0.7) < 0.005  # 100,000 draws: the standard error is 0.0014
    np.testing.assert_allclose(values[kept], 2.0 / 0.7, rtol=1e-6)
    assert abs(values.mean() - 2.0) < 0.02  # inverted dropout keeps the expected value
    y.backward(tm.tensor(np.ones((200, 500), dtype=np.float32), device=device))
    grad = tm.tensor(x.grad).numpy()
    np.testing.assert_allclose(grad, kept / 0.7, rtol=1e-6)  # the same mask, the same scale


def test_dropout_is_reproducible_with_a_seed_and_identity_in_eval():
    x = tm.tensor(np.arange(1.0, 21.0).reshape(4, 5))
    tm.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    tm.manual_seed(7)
    b = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_gradcheck_with_a_fixed_mask(device):
    from tinymm.functional.activation import Dropout
    rng = np.random.default_rng(5)
    keep = tm.tensor(rng.integers(0, 2, (3, 4)), device=device)
    report = gradcheck(lambda t: Dropout.apply(t, keep, p=0.25), [leaf(rng.standard_normal((3, 4)), device)],
                       tol=TOL)
    assert report.max_rel_error < TOL


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", True])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match="dropout: p must be a number in"):
        F.dropout(tm.tensor(np.ones(3)), p)
