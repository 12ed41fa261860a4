"""The claims of lesson 11 about the CLIP loss, as tests.

- the hand-derived gradient equals autograd's: with logits Z = e^s I Tᵀ,
  dL/dZ = G = (P_rows − Y + P_cols − Y′) / 2N (P_rows the softmax along each row, P_cols
  along each column, Y the targets, Y′ = Y with each column rescaled to sum to 1; Y′ = Y for
  the identity and for ``clip_targets``), dL/dI = e^s G T, dL/dT = e^s Gᵀ I, dL/ds = Σ G ⊙ Z;
- the loss at initialisation (random unit vectors, small scale) is about ln B;
- the loss floor (the entropy of soft targets) is what perfect embeddings reach;
- with identical embeddings for duplicate captions, hard and soft targets give the same
  loss and the same gradient for the model.
"""
import math

import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm import backend

pytestmark = pytest.mark.lesson11


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def gradient_by_hand(i, t, s, y):
    """(G, dL/dI, dL/dT, dL/ds) from the formulas of lesson 11, in NumPy float64."""
    n = len(i)
    y = np.eye(n) if y is None else y
    z = math.exp(s) * i @ t.T
    g = (softmax(z, 1) - y + softmax(z, 0) - y / y.sum(axis=0, keepdims=True)) / (2 * n)
    return g, math.exp(s) * g @ t, math.exp(s) * g.T @ i, float((g * z).sum())


def gradient_by_autograd(i, t, s, y, device):
    it = tm.tensor(i, requires_grad=True, device=device)
    tt = tm.tensor(t, requires_grad=True, device=device)
    st = tm.tensor(np.array(s), requires_grad=True, device=device)
    loss = F.clip_loss(it, tt, st, targets=y)
    loss.backward()
    return loss.item(), backend.to_numpy(it.grad), backend.to_numpy(tt.grad), float(backend.to_numpy(st.grad))


def loss_of(i, t, s, y=None, device=None):
    return F.clip_loss(tm.tensor(i, device=device), tm.tensor(t, device=device),
                       tm.tensor(np.array(float(s)), device=device), targets=y).item()


def max_rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


NON_SYMMETRIC = np.array([[0.7, 0.3, 0.0, 0.0, 0.0],
                          [0.0, 0.5, 0.5, 0.0, 0.0],
                          [0.0, 0.0, 1.0, 0.0, 0.0],
                          [0.2, 0.0, 0.0, 0.8, 0.0],
                          [0.0, 0.0, 0.1, 0.0, 0.9]])


@pytest.mark.parametrize("targets", ["identity", "duplicates", "non-symmetric"])
@pytest.mark.parametrize("s", [0.0, math.log(1 / 0.07), math.log(100.0)])
def test_the_hand_derived_clip_gradient_equals_autograd(targets, s, device):
    rng = np.random.default_rng(11)
    y = {"identity": None, "duplicates": F.clip_targets(["a", "b", "a", "c", "b"]),
         "non-symmetric": NON_SYMMETRIC}[targets]
    i, t = unit_rows(rng, 5, 4), unit_rows(rng, 5, 4)
    _, di, dt, ds = gradient_by_hand(i, t, s, y)
    _, di_auto, dt_auto, ds_auto = gradient_by_autograd(i, t, s, y, device)
    assert max_rel(di, di_auto) < 1e-10
    assert max_rel(dt, dt_auto) < 1e-10
    assert abs(ds - ds_auto) <= 1e-10 * abs(ds_auto)
    # non-trivial: every gradient is there and not tiny
    assert np.abs(di_auto).max() > 1e-3 and np.abs(dt_auto).max() > 1e-3 and abs(ds_auto) > 1e-4


def test_dl_dz_is_p_rows_plus_p_cols_minus_2y_over_2n(device):
    # with T = the identity and s = 0, Z = I, so autograd's dL/dI is dL/dZ itself
    rng = np.random.default_rng(3)
    n = 6
    z = 4.0 * rng.standard_normal((n, n))
    for y in (np.eye(n), F.clip_targets([0, 1, 0, 2, 2, 2])):
        zt = tm.tensor(z, requires_grad=True, device=device)
        F.clip_loss(zt, tm.tensor(np.eye(n), device=device), tm.tensor(np.array(0.0), device=device),
                    targets=y).backward()
        expected = (softmax(z, 1) + softmax(z, 0) - 2 * y) / (2 * n)
        np.testing.assert_allclose(backend.to_numpy(zt.grad), expected, rtol=1e-12, atol=1e-15)


def test_clip_loss_at_init_is_about_ln_b(device):
    rng = np.random.default_rng(0)
    b, d = 64, 64
    one = loss_of(unit_rows(rng, b, d), unit_rows(rng, b, d), 0.0, device=device)
    assert abs(one - math.log(b)) < 0.1
    # all logits equal -> every softmax is uniform -> exactly ln B, for any targets
    same = np.tile(unit_rows(rng, 1, d), (b, 1))
    assert abs(loss_of(same, same, math.log(1 / 0.07), device=device) - math.log(b)) < 1e-12
    y = F.clip_targets(rng.integers(0, 20, b))
    assert abs(loss_of(same, same, 2.0, y, device=device) - math.log(b)) < 1e-12
    # on average, ln B + e^(2s) / 2D (a second-order expansion of the log-sum-exp)
    s = 1.0
    mean = np.mean([loss_of(unit_rows(rng, b, d), unit_rows(rng, b, d), s, device=device) for _ in range(10)])
    assert abs(mean - (math.log(b) + math.exp(2 * s) / (2 * d))) < 0.03


def test_perfect_embeddings_reach_the_loss_floor_with_soft_targets(device):
    ids = ["red", "blue", "red", "green", "blue", "red", "cyan", "pink"]
    y = F.clip_targets(ids)
    floor = F.clip_loss_floor(y)
    # a caption repeated k times contributes ln k for each of its k rows (both directions)
    assert abs(floor - (3 * math.log(3) + 2 * math.log(2)) / 8) < 1e-12
    distinct = list(dict.fromkeys(ids))
    merged = np.eye(len(distinct))[[distinct.index(c) for c in ids]]  # I = T up to duplicates
    losses = [loss_of(merged, merged, s, y, device) for s in (1.0, 3.0, math.log(100.0))]
    assert losses[0] > losses[1] > losses[2] >= floor - 1e-12     # approaches the floor from above
    assert abs(losses[2] - floor) < 1e-9
    # hard targets would prefer twins told apart: loss below the floor there
    apart = np.eye(len(ids))
    assert loss_of(apart, apart, math.log(100.0), None, device) < 1e-9
    assert loss_of(apart, apart, math.log(100.0), y, device) > floor + 1


def test_identical_twin_embeddings_make_hard_and_soft_targets_agree(device):
    rng = np.random.default_rng(5)
    ids = [0, 1, 0, 2, 1, 0]
    y = F.clip_targets(ids)
    i = unit_rows(rng, 6, 4)
    t = unit_rows(rng, 3, 4)[ids]               # a caption's embedding depends only on its words
    soft = gradient_by_autograd(i, t, 2.0, y, device)
    hard = gradient_by_autograd(i, t, 2.0, None, device)
    assert abs(soft[0] - hard[0]) < 1e-12
    np.testing.assert_allclose(soft[1], hard[1], atol=1e-14)
    group = np.eye(3)[ids].T                     # what reaches the text encoder: the sum per caption
    np.testing.assert_allclose(group @ soft[2], group @ hard[2], atol=1e-14)
    assert abs(soft[3] - hard[3]) < 1e-12
    # per twin the gradients do differ (the soft targets change what each entry asks for)
    assert np.abs(soft[2] - hard[2]).max() > 1e-3
