"""embedding and masked_mean (tinymm/functional/embedding.py).

The embedding backward must add up the gradients of repeated ids (a scatter-add); masked
mean pooling must ignore padding, also in its backward, and never divide 0 by 0.
"""
import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson08

TOL = 1e-7


def leaf(array, device=None):
    return tm.tensor(np.asarray(array), requires_grad=True, device=device)


def host(array):
    return tm.tensor(array).numpy()


# ----------------------------------------------------------------------------------------------
# embedding


def test_embedding_looks_up_rows(device):
    weight = np.arange(12.0).reshape(4, 3)
    ids = tm.tensor(np.array([[3, 0], [1, 1]]), device=device)
    out = F.embedding(ids, leaf(weight, device))
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), weight[[[3, 0], [1, 1]]])


def test_embedding_backward_adds_up_repeated_ids(device):
    weight = leaf(np.zeros((5, 2)), device)
    ids = tm.tensor(np.array([1, 3, 1, 1, 0]), device=device)
    g = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0]])
    F.embedding(ids, weight).backward(tm.tensor(g, device=device))
    # id 1 appears at positions 0, 2, 3: its row gets g[0] + g[2] + g[3]; id 2 and 4 never appear
    expected = np.array([[5.0, 50.0], [8.0, 80.0], [0.0, 0.0], [2.0, 20.0], [0.0, 0.0]])
    np.testing.assert_array_equal(host(weight.grad), expected)


def test_embedding_gradcheck_repeated_ids(device):
    ids = tm.tensor(np.array([[0, 2, 0], [3, 0, 2]]), device=device)
    weight = leaf(np.random.default_rng(0).standard_normal((4, 3)), device)
    report = gradcheck(lambda w: F.embedding(ids, w), [weight], tol=TOL)
    assert report.max_rel_error < TOL


def test_embedding_padding_row_gets_no_gradient(device):
    ids = tm.tensor(np.array([[2, 0, 0], [1, 2, 0]]), device=device)
    weight = leaf(np.random.default_rng(1).standard_normal((3, 4)), device)
    out = F.embedding(ids, weight, padding_idx=0)
    np.testing.assert_array_equal(out.numpy(), weight.numpy()[[[2, 0, 0], [1, 2, 0]]])  # values unchanged
    out.backward(tm.tensor(np.ones((2, 3, 4)), device=device))
    np.testing.assert_array_equal(host(weight.grad), [[0.0] * 4, [1.0] * 4, [2.0] * 4])
    # a negative padding_idx counts from the end, as in Python indexing
    weight.grad = None
    F.embedding(ids, weight, padding_idx=-1).backward(tm.tensor(np.ones((2, 3, 4)), device=device))
    np.testing.assert_array_equal(host(weight.grad), [[3.0] * 4, [1.0] * 4, [0.0] * 4])


def test_embedding_padding_gradcheck_when_padding_is_masked_out(device):
    """As nn.Embedding uses it: padded positions are zeroed, so the padding row truly has no
    influence and its zero gradient is the exact one."""
    ids_np = np.array([[1, 2, 0], [3, 1, 0]])
    ids = tm.tensor(ids_np, device=device)
    keep = tm.tensor((ids_np != 0)[..., None].astype(np.float64), device=device)  # (2, 3, 1)
    weight = leaf(np.random.default_rng(3).standard_normal((4, 3)), device)
    report = gradcheck(lambda w: F.embedding(ids, w, padding_idx=0) * keep, [weight], tol=TOL)
    assert report.max_rel_error < TOL


def test_embedding_keeps_float32_and_accepts_a_list_of_ids():
    weight = tm.tensor(np.ones((6, 2), dtype=np.float32), requires_grad=True)
    out = F.embedding([5, 0, 5], weight)
    assert out.dtype == np.float32 and out.shape == (3, 2)
    out.sum().backward()
    assert weight.grad.dtype == np.float32 and weight.grad[5, 0] == 2.0


def test_embedding_rejects_bad_ids():
    weight = tm.tensor(np.ones((10, 4)))
    with pytest.raises(TypeError, match=r"embedding: ids must be integers, got dtype float64"):
        F.embedding(tm.tensor(np.array([1.0, 2.0])), weight)
    with pytest.raises(TypeError, match=r"embedding: ids must be integers, got dtype bool"):
        F.embedding(tm.tensor(np.array([True, False])), weight)
    # host ids are checked on the host, before they follow the weight to its device (ids already
    # on a GPU are not read back: see F.check_ids)
    with pytest.raises(ValueError, match=r"num_embeddings=10 rows, got min 3 and max 12"):
        F.embedding(np.array([3, 12, 5]), weight)
    with pytest.raises(ValueError, match=r"got min -1 and max 5"):
        F.embedding(np.array([-1, 5]), weight)
    with pytest.raises(ValueError, match=r"got min 0 and max 10"):
        F.embedding([0, 10], weight)
    with pytest.raises(ValueError, match=r"padding_idx 10 is not a row of a table with 10 rows"):
        F.embedding(tm.tensor(np.array([1])), weight, padding_idx=10)
    with pytest.raises(ValueError, match=r"weight must be 2-D"):
        F.embedding(tm.tensor(np.array([1])), tm.tensor(np.ones(10)))


# ----------------------------------------------------------------------------------------------
# masked_mean


def test_masked_mean_averages_real_tokens_only(device):
    x = np.arange(24.0).reshape(2, 4, 3)
    mask = np.array([[True, True, False, False], [True, False, True, True]])
    out = F.masked_mean(leaf(x, device), tm.tensor(mask, device=device).data)
    expected = np.stack([x[0, :2].mean(axis=0), x[1, [0, 2, 3]].mean(axis=0)])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-14)
    # a 0/1 integer mask means the same
    out01 = F.masked_mean(leaf(x, device), tm.tensor(mask.astype(np.int64), device=device))
    np.testing.assert_array_equal(out01.numpy(), out.numpy())


def test_masked_mean_backward_spreads_g_over_real_tokens(device):
    xt = leaf(np.ones((2, 3, 2)), device)
    mask = tm.tensor(np.array([[1, 1, 0], [1, 1, 1]]), device=device)
    F.masked_mean(xt, mask).backward(tm.tensor(np.array([[6.0, 12.0], [3.0, 9.0]]), device=device))
    expected = np.array([[[3.0, 6.0], [3.0, 6.0], [0.0, 0.0]],
                         [[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]]])
    np.testing.assert_array_equal(host(xt.grad), expected)


def test_masked_mean_gradcheck_incl_an_all_padding_row(device):
    x = np.random.default_rng(2).standard_normal((3, 4, 2))
    mask = tm.tensor(np.array([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]], dtype=bool), device=device)
    report = gradcheck(lambda t: F.masked_mean(t, mask), [leaf(x, device)], tol=TOL)
    assert report.max_rel_error < TOL


def test_masked_mean_row_without_tokens_is_zero_not_nan():
    xt = leaf(np.ones((2, 3, 4)))
    with tm.detect_anomaly():  # would raise on a NaN in forward or backward
        out = F.masked_mean(xt, np.array([[0, 0, 0], [1, 0, 0]]))
        out.sum().backward()
    np.testing.assert_array_equal(out.numpy(), [[0.0] * 4, [1.0] * 4])
    assert np.all(xt.grad[0] == 0) and np.all(np.isfinite(xt.grad))


def test_masked_mean_other_axes_and_float32():
    x = tm.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    out = F.masked_mean(x, np.array([[1, 0, 1], [0, 1, 0]]), axis=1)  # mask with x's own shape
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [1.0, 4.0])
    x = tm.tensor(np.arange(8.0).reshape(4, 2))
    np.testing.assert_array_equal(F.masked_mean(x, np.array([1, 0, 0, 1]), axis=0).numpy(), [3.0, 4.0])


def test_masked_mean_rejects_bad_masks():
    x = tm.tensor(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"masked_mean: mask of shape \(3, 2\) does not match input \(2, 3, 4\)"):
        F.masked_mean(x, np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"mask must hold only 0/1"):
        F.masked_mean(x, np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=r"axis 3 is out of range"):
        F.masked_mean(x, np.ones((2, 3), dtype=bool), axis=3)
