"""l2_normalize (tinymm/functional/normalize.py): unit vectors and a tangent-plane backward.

The backward removes the part of the gradient along y and divides by the norm. Checked
against that formula, against finite differences (also for tiny and zero vectors, where
the clamp at eps takes over), and for the geometric facts it implies.
"""
import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson09

TOL = 1e-7


def leaf(array, device=None):
    return tm.tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def host(array):
    return tm.tensor(array).numpy()


def test_rows_become_unit_vectors(device):
    x = np.random.default_rng(0).standard_normal((5, 3))
    y = F.l2_normalize(leaf(x, device)).numpy()
    np.testing.assert_allclose(y, x / np.linalg.norm(x, axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-14)
    y0 = F.l2_normalize(leaf(x, device), axis=0).numpy()
    np.testing.assert_allclose(np.linalg.norm(y0, axis=0), 1.0, rtol=1e-14)


def test_backward_is_the_tangent_projection_over_the_norm(device):
    rng = np.random.default_rng(1)
    x, g = 3.0 * rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    xt = leaf(x, device)
    y = F.l2_normalize(xt)
    y.backward(tm.tensor(g, device=device))
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    yn = x / norm
    expected = (g - yn * (yn * g).sum(axis=1, keepdims=True)) / norm
    grad = host(xt.grad)
    np.testing.assert_allclose(grad, expected, rtol=1e-12)
    # the gradient is perpendicular to y: stretching x does not change y
    np.testing.assert_allclose((grad * yn).sum(axis=1), 0.0, atol=1e-14)


def test_a_longer_vector_gets_a_smaller_gradient():
    x, g = np.array([[3.0, 4.0]]), np.array([[1.0, -1.0]])
    short, long = leaf(x), leaf(10 * x)
    F.l2_normalize(short).backward(g)
    F.l2_normalize(long).backward(g)
    np.testing.assert_allclose(host(long.grad), host(short.grad) / 10, rtol=1e-14)
    # by hand: y = (0.6, 0.8), y·g = -0.2, g - y(y·g) = (1.12, -0.84), divided by |x| = 5
    np.testing.assert_allclose(host(short.grad), [[0.224, -0.168]], rtol=1e-12)


def test_gradient_of_the_sum_of_norms_is_zero_the_trap():
    """|y| = 1 whatever x is: summing norms hides the gradient, a random projection does not."""
    xt = leaf(np.random.default_rng(2).standard_normal((3, 4)))
    y = F.l2_normalize(xt)
    (y * y).sum().backward()
    assert np.abs(host(xt.grad)).max() < 1e-14


@pytest.mark.parametrize("axis, shape", [(-1, (3, 4)), (0, (3, 4)), (1, (2, 3, 2))])
def test_gradcheck(axis, shape, device):
    x = np.random.default_rng(3).uniform(0.2, 1.0, shape) * np.random.default_rng(4).choice([-1, 1], shape)
    report = gradcheck(lambda t: F.l2_normalize(t, axis=axis), [leaf(x, device)], tol=TOL)
    assert report.max_rel_error < TOL


def test_gradcheck_near_zero_norm_1e_3(device):
    """A tiny vector is still normalised (norm 1e-3 >> eps); its gradient is ~1000x larger.

    The finite-difference step must be small against the norm (1e-9 here), or the truncation
    error (step/norm)² shows up."""
    x = 1e-3 * np.array([[0.6, -0.8, 0.0], [0.3, 0.4, -0.5]])  # norms 1e-3 and 7e-4
    xt = leaf(x, device)
    report = gradcheck(lambda t: F.l2_normalize(t), [xt], eps=1e-9, tol=TOL)
    assert report.max_rel_error < TOL
    assert 100 < np.abs(host(xt.grad)).max() < 5000


def test_zero_vector_gives_zero_and_finite_gradients(device):
    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    xt = leaf(x, device)
    with tm.detect_anomaly():  # raises on any NaN or inf, forward or backward
        y = F.l2_normalize(xt)
        y.backward(tm.tensor(np.ones((2, 3)), device=device))
    np.testing.assert_array_equal(y.numpy()[0], [0.0, 0.0, 0.0])
    grad = host(xt.grad)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[0], 1e12)  # the clamp: x / eps, so dx = g / eps
    # with a clamp larger than the finite-difference step, the zero vector passes gradcheck too
    report = gradcheck(lambda t: F.l2_normalize(t, eps=1e-3), [leaf(x, device)], tol=TOL)
    assert report.max_rel_error < TOL


def test_float32_stays_float32():
    x = tm.tensor(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32), requires_grad=True)
    y = F.l2_normalize(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    y.backward(np.ones((2, 2), dtype=np.float32))
    assert x.grad.dtype == np.float32 and np.all(np.isfinite(x.grad))


def test_cosine_similarity_matrix_of_unit_vectors():
    a, b = np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    sim = (F.l2_normalize(leaf(a)) @ F.l2_normalize(leaf(b)).T).numpy()
    r = np.sqrt(0.5)
    np.testing.assert_allclose(sim, [[0.0, r, -1.0], [r, 1.0, -r]], atol=1e-15)


def test_bad_arguments():
    x = tm.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"l2_normalize: axis 2 is out of range for an input of shape \(2, 3\)"):
        F.l2_normalize(x, axis=2)
    with pytest.raises(ValueError, match=r"l2_normalize: eps must be a positive number, got 0"):
        F.l2_normalize(x, eps=0)
