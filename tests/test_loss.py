"""Losses (tinymm/functional/loss.py): log_softmax, softmax_cross_entropy, mse_loss, clip_loss.

The cross-entropy is checked against NumPy, its gradient against softmax − target (the
formula lesson 05 derives) and against finite differences, with hard and soft targets,
ignored rows and logits of ±1e4. The CLIP loss is checked against a NumPy reference, its
gradient against (P_rows + P_cols − 2Y)/2N (lesson 11), and its targets and floor on a
hand-made batch with repeated captions.
"""
import math

import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson05

TOL = 1e-7


def leaf(array, device=None):
    return tm.tensor(np.asarray(array, dtype=np.float64), requires_grad=True, device=device)


def const(array, device=None):
    return tm.tensor(np.asarray(array), device=device)


def host(array):
    return tm.tensor(array).numpy()


def log_softmax_ref(z, axis=-1):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def unit_rows(rng, n, d):
    a = rng.standard_normal((n, d))
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# log_softmax


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_matches_numpy_and_gradchecks(axis, device):
    z = np.random.default_rng(0).uniform(-3, 3, (3, 5))
    out = F.log_softmax(leaf(z, device), axis=axis).numpy()
    np.testing.assert_allclose(out, log_softmax_ref(z, axis), rtol=1e-13)
    np.testing.assert_allclose(np.exp(out).sum(axis=axis), 1.0, rtol=1e-14)
    report = gradcheck(lambda t: F.log_softmax(t, axis=axis), [leaf(z, device)], tol=TOL)
    assert report.max_rel_error < TOL


def test_log_softmax_backward_formula_and_stability():
    z, g = np.array([[1e4, -1e4, 0.0]]), np.array([[1.0, 2.0, -0.5]])
    zt = leaf(z)
    out = F.log_softmax(zt)
    np.testing.assert_array_equal(out.numpy(), [[0.0, -2e4, -1e4]])  # finite, exact
    out.backward(g)
    np.testing.assert_allclose(host(zt.grad), g - np.array([[1.0, 0.0, 0.0]]) * g.sum(), atol=1e-300)


# ----------------------------------------------------------------------------------------------
# softmax_cross_entropy: values


def test_cross_entropy_class_ids_all_reductions(device):
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])
    per_row = -log_softmax_ref(z)[np.arange(4), y]
    for reduction, expected in [("mean", per_row.mean()), ("sum", per_row.sum()), ("none", per_row)]:
        out = F.softmax_cross_entropy(leaf(z, device), const(y, device), reduction=reduction)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13)
    # a plain list of class ids works too
    np.testing.assert_allclose(F.softmax_cross_entropy(leaf(z), [0, 4, 2, 2]).item(), per_row.mean(), rtol=1e-13)


def test_uniform_logits_give_log_c():
    out = F.softmax_cross_entropy(leaf(np.zeros((3, 10))), const([1, 5, 9]))
    assert abs(out.item() - math.log(10)) < 1e-15


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(device):
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((4, 3)), np.array([2, 0, 1, 2])
    zt = leaf(z, device)
    F.softmax_cross_entropy(zt, const(y, device)).backward()
    expected = (np.exp(log_softmax_ref(z)) - np.eye(3)[y]) / 4
    np.testing.assert_allclose(host(zt.grad), expected, rtol=1e-12, atol=1e-16)


def test_soft_targets_value_and_gradient(device):
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((4, 5)), rng.dirichlet(np.ones(5), size=4)
    zt, tt = leaf(z, device), leaf(t, device)
    loss = F.softmax_cross_entropy(zt, tt)
    np.testing.assert_allclose(loss.item(), -(t * log_softmax_ref(z)).sum(axis=1).mean(), rtol=1e-13)
    loss.backward()
    np.testing.assert_allclose(host(zt.grad), (np.exp(log_softmax_ref(z)) - t) / 4, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(host(tt.grad), -log_softmax_ref(z) / 4, rtol=1e-12)


def test_one_hot_probabilities_equal_class_ids():
    z, y = np.random.default_rng(4).standard_normal((5, 3)), np.array([0, 2, 1, 1, 0])
    a = F.softmax_cross_entropy(leaf(z), const(y), reduction="none").numpy()
    b = F.softmax_cross_entropy(leaf(z), const(np.eye(3)[y]), reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_ignore_index_rows_count_for_nothing(device):
    rng = np.random.default_rng(5)
    z, y = rng.standard_normal((5, 4)), np.array([1, -100, 3, -100, 0])
    zt = leaf(z, device)
    loss = F.softmax_cross_entropy(zt, const(y, device), ignore_index=-100)
    kept = [0, 2, 4]
    per_row = -log_softmax_ref(z)[kept, y[kept]]
    np.testing.assert_allclose(loss.item(), per_row.mean(), rtol=1e-13)  # mean over 3 rows, not 5
    loss.backward()
    grad = host(zt.grad)
    assert np.all(grad[[1, 3]] == 0)
    np.testing.assert_allclose(grad[kept], (np.exp(log_softmax_ref(z[kept])) - np.eye(4)[y[kept]]) / 3,
                               rtol=1e-12, atol=1e-16)
    none = F.softmax_cross_entropy(leaf(z), const(y), ignore_index=-100, reduction="none").numpy()
    np.testing.assert_allclose(none, [per_row[0], 0.0, per_row[1], 0.0, per_row[2]], rtol=1e-13)


def test_all_rows_ignored_gives_zero_not_nan():
    zt = leaf(np.ones((2, 3)))
    with tm.detect_anomaly():
        loss = F.softmax_cross_entropy(zt, const([-1, -1]), ignore_index=-1)
        loss.backward()
    assert loss.item() == 0.0 and np.all(host(zt.grad) == 0)


def test_sequence_logits_n_l_c_equal_the_flattened_batch():
    rng = np.random.default_rng(6)
    z, y = rng.standard_normal((2, 3, 4)), np.array([[1, 0, -100], [3, -100, 2]])
    a = F.softmax_cross_entropy(leaf(z), const(y), ignore_index=-100)
    b = F.softmax_cross_entropy(leaf(z.reshape(6, 4)), const(y.reshape(6)), ignore_index=-100)
    assert abs(a.item() - b.item()) < 1e-15
    assert F.softmax_cross_entropy(leaf(z), const(y), ignore_index=-100, reduction="none").shape == (2, 3)


# ----------------------------------------------------------------------------------------------
# softmax_cross_entropy: gradchecks and stability


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradcheck_class_ids(reduction, device):
    z, y = np.random.default_rng(7).standard_normal((4, 5)), const([3, 0, 4, 3], device)
    report = gradcheck(lambda t: F.softmax_cross_entropy(t, y, reduction=reduction), [leaf(z, device)], tol=TOL)
    assert report.max_rel_error < TOL


def test_cross_entropy_gradcheck_soft_targets_both_inputs(device):
    rng = np.random.default_rng(8)
    z, t = rng.standard_normal((3, 4)), rng.dirichlet(np.ones(4), size=3)
    report = gradcheck(F.softmax_cross_entropy, [leaf(z, device), leaf(t, device)], tol=TOL)
    assert len(report.checks) == 2 and report.max_rel_error < TOL


def test_cross_entropy_gradcheck_ignore_index_sequences(device):
    z = np.random.default_rng(9).standard_normal((2, 3, 4))
    y = const([[1, -100, 3], [0, 2, -100]], device)
    report = gradcheck(lambda t: F.softmax_cross_entropy(t, y, ignore_index=-100), [leaf(z, device)], tol=TOL)
    assert report.max_rel_error < TOL


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_at_logits_1e4(dtype):
    z = tm.tensor(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4]], dtype=dtype), requires_grad=True)
    with tm.detect_anomaly():  # would name the op that made an inf or NaN
        loss = F.softmax_cross_entropy(z, const([0, 0, 2], z.device), reduction="none")
        loss.backward(np.ones(3, dtype=dtype))
    assert loss.dtype == dtype and z.grad.dtype == dtype
    # right with a margin of 1e4: 0; wrong by 2e4 against a two-way tie: 2e4 + ln 2; three-way tie: ln 3
    np.testing.assert_allclose(loss.numpy(), [0.0, 2e4 + math.log(2), math.log(3)], rtol=1e-6)
    np.testing.assert_allclose(host(z.grad), [[0, 0, 0], [-1, 0.5, 0.5], [1 / 3, 1 / 3, -2 / 3]], atol=1e-6)


# ----------------------------------------------------------------------------------------------
# softmax_cross_entropy: bad input


def test_nan_logits_are_caught_by_detect_anomaly_naming_the_op():
    z = leaf([[0.0, np.nan, 1.0]])
    with tm.detect_anomaly(), pytest.raises(ValueError, match="forward of SoftmaxCrossEntropy produced nan"):
        F.softmax_cross_entropy(z, const([0]))
    # a NaN made upstream is named where it is made
    x = leaf([[-1.0, 2.0]])
    with tm.detect_anomaly(), np.errstate(invalid="ignore"), \
            pytest.raises(ValueError, match="forward of Log produced nan"):
        F.softmax_cross_entropy(x.log(), const([0]))


def test_bad_targets_are_named():
    z = leaf(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"class-id targets must have shape \(4,\), got targets int64 \(3,\) "
                                         r"for logits \(4, 3\)"):
        F.softmax_cross_entropy(z, const([0, 1, 2]))
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\) for 3 classes, got min 0 and max 3"):
        F.softmax_cross_entropy(z, [0, 1, 2, 3])  # host ids: checked before the copy
    with pytest.raises(ValueError, match=r"got min -1 and max 2"):
        F.softmax_cross_entropy(z, np.array([0, -1, 2, 2]))
    with pytest.raises(ValueError, match=r"probability targets must have the logits' shape \(4, 3\)"):
        F.softmax_cross_entropy(z, const([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"rows summing to 1"):
        F.softmax_cross_entropy(z, np.full((4, 3), 0.5))
    with pytest.raises(ValueError, match=r"non-negative"):
        F.softmax_cross_entropy(z, np.tile([1.5, -0.5, 0.0], (4, 1)))
    with pytest.raises(TypeError, match=r"targets must be integer class ids or float probabilities, got targets bool"):
        F.softmax_cross_entropy(z, const([True, False, True, True]))
    with pytest.raises(ValueError, match=r"ignore_index applies to class-id targets only"):
        F.softmax_cross_entropy(z, const(np.eye(3)[[0, 1, 2, 0]]), ignore_index=0)
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        F.softmax_cross_entropy(z, const([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(TypeError, match=r"logits must be floating point"):
        F.softmax_cross_entropy(const(np.zeros((4, 3), dtype=np.int64)), const([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"logits must be \(N, C\) or \(N, L, C\), got shape \(3,\)"):
        F.softmax_cross_entropy(leaf(np.zeros(3)), const(1))


# ----------------------------------------------------------------------------------------------
# mse_loss


def test_mse_loss_values_and_gradcheck(device):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for reduction, expected in [("mean", ((a - b) ** 2).mean()), ("sum", ((a - b) ** 2).sum()),
                                ("none", (a - b) ** 2)]:
        out = F.mse_loss(leaf(a, device), leaf(b, device), reduction=reduction)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13)
        report = gradcheck(lambda p, q: F.mse_loss(p, q, reduction=reduction), [leaf(a, device), leaf(b, device)],
                           tol=TOL)
        assert report.max_rel_error < TOL
    at = leaf(a)
    F.mse_loss(at, const(b)).backward()
    np.testing.assert_allclose(host(at.grad), 2 * (a - b) / 12, rtol=1e-13)


def test_mse_loss_refuses_to_broadcast():
    with pytest.raises(ValueError, match=r"mse_loss: pred \(3, 4\) and target \(4,\) must have the same shape"):
        F.mse_loss(leaf(np.zeros((3, 4))), leaf(np.zeros(4)))


# ----------------------------------------------------------------------------------------------
# clip_loss


def clip_loss_ref(i, t, s, targets=None):
    z = np.exp(s) * i @ t.T
    y = np.eye(len(i)) if targets is None else targets
    rows = -(y * log_softmax_ref(z, 1)).sum(axis=1).mean()
    yc = y / y.sum(axis=0)
    cols = -(yc * log_softmax_ref(z, 0)).sum(axis=0).mean()
    return 0.5 * (rows + cols)


@pytest.mark.lesson11
def test_clip_loss_matches_numpy(device):
    rng = np.random.default_rng(11)
    i, t, s = unit_rows(rng, 6, 4), unit_rows(rng, 6, 4), 2.0
    out = F.clip_loss(leaf(i, device), leaf(t, device), leaf(s, device))
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), clip_loss_ref(i, t, s), rtol=1e-13)
    soft = F.clip_targets([0, 1, 0, 2, 1, 3])
    out = F.clip_loss(leaf(i, device), leaf(t, device), leaf(s, device), targets=soft)
    np.testing.assert_allclose(out.item(), clip_loss_ref(i, t, s, soft), rtol=1e-13)


@pytest.mark.lesson11
@pytest.mark.parametrize("targets", [None, "duplicates"])
def test_clip_loss_gradcheck_both_embeddings_and_logit_scale(targets, device):
    rng = np.random.default_rng(12)
    soft = None if targets is None else F.clip_targets(["a", "b", "a", "c", "b"])
    i, t = unit_rows(rng, 5, 3), unit_rows(rng, 5, 3)
    report = gradcheck(lambda a, b, s: F.clip_loss(a, b, s, targets=soft),
                       [leaf(i, device), leaf(t, device), leaf(1.3, device)], tol=TOL)
    assert len(report.checks) == 3 and report.max_rel_error < TOL


@pytest.mark.lesson11
@pytest.mark.parametrize("ids", [[0, 1, 2, 3], [0, 1, 0, 2]])
def test_clip_gradient_is_p_rows_plus_p_cols_minus_2y_over_2n(ids):
    """Through Z = exp(s) I Tᵀ: dI = exp(s) dZ T,  dT = exp(s) dZᵀ I,  ds = Σ dZ ⊙ Z."""
    rng = np.random.default_rng(13)
    n, s = len(ids), 0.7
    i, t, y = unit_rows(rng, n, 3), unit_rows(rng, n, 3), F.clip_targets(ids)
    it, tt, st = leaf(i), leaf(t), leaf(s)
    F.clip_loss(it, tt, st, targets=y).backward()
    z = np.exp(s) * i @ t.T
    p_rows, p_cols = np.exp(log_softmax_ref(z, 1)), np.exp(log_softmax_ref(z, 0))
    dz = (p_rows + p_cols - 2 * y) / (2 * n)  # y is symmetric here, so its columns need no rescaling
    np.testing.assert_allclose(host(it.grad), np.exp(s) * dz @ t, rtol=1e-11)
    np.testing.assert_allclose(host(tt.grad), np.exp(s) * dz.T @ i, rtol=1e-11)
    np.testing.assert_allclose(backend.to_numpy(st.grad), (dz * z).sum(), rtol=1e-11)


@pytest.mark.lesson11
def test_clip_loss_at_init_is_about_ln_b():
    rng = np.random.default_rng(14)
    # all logits equal: exactly ln B
    e0, e1 = np.tile([1.0, 0.0], (16, 1)), np.tile([0.0, 1.0], (16, 1))
    assert abs(F.clip_loss(leaf(e0), leaf(e1), leaf(0.0)).item() - math.log(16)) < 1e-14
    # random unit vectors, scale exp(0) = 1: cosines ~ ±1/sqrt(D) barely move the loss
    b, d = 128, 128
    loss = F.clip_loss(leaf(unit_rows(rng, b, d)), leaf(unit_rows(rng, b, d)), leaf(0.0)).item()
    assert abs(loss - math.log(b)) < 0.02


@pytest.mark.lesson11
def test_clip_targets_and_floor_on_a_batch_with_duplicates():
    ids = ["red circle", "blue square", "red circle", "green cross", "blue square", "red circle"]
    y = F.clip_targets(ids)
    a, b = 1 / 3, 1 / 2
    expected = np.array([[a, 0, a, 0, 0, a],
                         [0, b, 0, 0, b, 0],
                         [a, 0, a, 0, 0, a],
                         [0, 0, 0, 1, 0, 0],
                         [0, b, 0, 0, b, 0],
                         [a, 0, a, 0, 0, a]])
    np.testing.assert_allclose(y, expected, rtol=1e-15)
    assert y.dtype == np.float64
    # three rows of entropy ln 3, two of ln 2, one of 0: (3 ln 3 + 2 ln 2) / 6 = 0.7804
    floor = F.clip_loss_floor(y)
    assert isinstance(floor, float)
    assert abs(floor - (3 * math.log(3) + 2 * math.log(2)) / 6) < 1e-15
    assert abs(floor - 0.780355) < 1e-6
    # integer ids group the same way; distinct ids give the identity and a floor of 0
    np.testing.assert_array_equal(F.clip_targets([7, 3, 7, 1, 3, 7]), y)
    np.testing.assert_array_equal(F.clip_targets(np.array([4, 2, 9])), np.eye(3))
    assert F.clip_loss_floor(np.eye(3)) == 0.0 and F.clip_loss_floor(None) == 0.0


@pytest.mark.lesson11
def test_soft_targets_reach_the_floor_where_hard_targets_punish_duplicates(device):
    ids = [0, 1, 0, 2, 1, 0]
    y = F.clip_targets(ids)
    s = leaf(math.log(200.0), device)  # logits 200 for a matching pair, 0 otherwise
    same = np.eye(3)[ids]  # (a) the same unit vector for the same caption, orthogonal otherwise
    apart = np.eye(6)      # (b) every sample on its own axis, twins pulled apart

    def loss(emb, targets):
        return F.clip_loss(leaf(emb, device), leaf(emb, device), s, targets=targets).item()

    soft_same, floor = F.clip_loss(leaf(same, device), leaf(same, device), s, targets=y, return_floor=True)
    assert abs(floor - 0.780355) < 1e-6
    assert abs(soft_same.item() - floor) < 1e-12   # soft targets: (a) reaches the floor
    assert abs(loss(apart, y) - 100.0) < 1e-9      # and (b) costs (2/3·200·3 + 1/2·200·2) / 6 = 100
    assert abs(loss(same, None) - floor) < 1e-12   # hard targets: (a) is stuck at ln k per row...
    assert loss(apart, None) < 1e-12               # ...and prefer (b): twins pushed apart as negatives


@pytest.mark.lesson11
def test_clip_loss_with_identity_targets_equals_none_and_keeps_float32(device):
    rng = np.random.default_rng(15)
    i, t = unit_rows(rng, 4, 3).astype(np.float32), unit_rows(rng, 4, 3).astype(np.float32)
    s = tm.tensor(np.array(2.0, dtype=np.float32), requires_grad=True, device=device)
    a = F.clip_loss(tm.tensor(i, device=device), tm.tensor(t, device=device), s)
    b = F.clip_loss(tm.tensor(i, device=device), tm.tensor(t, device=device), s, targets=np.eye(4))
    assert a.dtype == np.float32 and b.dtype == np.float32
    assert abs(a.item() - b.item()) < 1e-6
    a.backward()
    assert s.grad.dtype == np.float32


@pytest.mark.lesson11
def test_clip_loss_bad_input():
    i, t, s = leaf(np.eye(3)), leaf(np.eye(3)), leaf(1.0)
    with pytest.raises(ValueError, match=r"clip_loss: image_emb and text_emb must both be \(N, D\).*"
                                         r"\(3, 3\) and \(2, 3\)"):
        F.clip_loss(i, leaf(np.eye(3)[:2]), s)
    with pytest.raises(ValueError, match=r"logit_scale must be a 0-d tensor.*\(2,\)"):
        F.clip_loss(i, t, leaf([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"targets must be an \(N, N\) = \(3, 3\) matrix.*shape \(3, 4\)"):
        F.clip_loss(i, t, s, targets=np.ones((3, 4)) / 4)
    with pytest.raises(ValueError, match=r"every column of targets needs a positive sum"):
        F.clip_loss(i, t, s, targets=np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match=r"rows summing to 1"):
        F.clip_loss(i, t, s, targets=np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match=r"clip_targets: expected a non-empty 1-D sequence"):
        F.clip_targets([])
