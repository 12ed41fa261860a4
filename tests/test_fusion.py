"""The fusion head of lesson 14: shapes, errors, a gradient check, and a tiny training run.

FusionHead (tinymm/models/fusion.py) scores an (image, caption) pair from the two embeddings:
an MLP on [image, text, image * text]. Here it must give one logit per pair, refuse
mismatched inputs, pass a float64 gradcheck for its inputs and every parameter, and learn a
simple rule from synthetic embeddings.
"""
import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm import optim
from tinymm.gradcheck import gradcheck
from tinymm.models import FusionHead

pytestmark = pytest.mark.lesson14


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def binary_cross_entropy(logits, labels):
    """Log loss of sigmoid(z) as a softmax over the two logits [0, z] (class 1 = a match)."""
    zeros = tm.zeros(logits.shape[0], dtype=logits.dtype, device=logits.device)
    return F.softmax_cross_entropy(F.stack([zeros, logits], axis=1), labels)


def test_one_logit_per_pair_and_float32_stays_float32():
    head = FusionHead(embed_dim=8, hidden=16)
    rng = np.random.default_rng(0)
    image = tm.tensor(unit_rows(rng, 5, 8).astype(np.float32))
    text = tm.tensor(unit_rows(rng, 5, 8).astype(np.float32))
    out = head(image, text)
    assert out.shape == (5,)
    assert out.dtype == np.float32
    # 3D inputs -> hidden -> 1: (3·8·16 + 16) + (16 + 1) parameters
    assert sum(p.size for p in head.parameters()) == 3 * 8 * 16 + 16 + 16 + 1


def test_each_pair_is_scored_on_its_own():
    """Row i of the output depends on row i of the inputs only (no mixing across the batch)."""
    head = FusionHead(embed_dim=4, hidden=8)
    rng = np.random.default_rng(1)
    image, text = unit_rows(rng, 6, 4).astype(np.float32), unit_rows(rng, 6, 4).astype(np.float32)
    full = head(tm.tensor(image), tm.tensor(text)).numpy()
    alone = np.array([head(tm.tensor(image[i:i + 1]), tm.tensor(text[i:i + 1])).numpy()[0] for i in range(6)])
    np.testing.assert_allclose(full, alone, rtol=1e-6, atol=1e-6)


def test_order_of_the_two_inputs_matters():
    """The head is not symmetric: image and caption sit in different slots of its input."""
    head = FusionHead(embed_dim=4, hidden=8)
    rng = np.random.default_rng(2)
    a, b = tm.tensor(unit_rows(rng, 3, 4)), tm.tensor(unit_rows(rng, 3, 4))
    head.double()
    assert not np.allclose(head(a, b).numpy(), head(b, a).numpy())


@pytest.mark.parametrize("image_shape, text_shape", [((4, 8), (5, 8)), ((4, 8), (4, 7)), ((4, 6), (4, 6))])
def test_mismatched_inputs_raise_a_clear_error(image_shape, text_shape):
    head = FusionHead(embed_dim=8, hidden=16)
    image, text = tm.zeros(*image_shape), tm.zeros(*text_shape)
    with pytest.raises(ValueError, match=r"FusionHead: expected two \(N, 8\) embeddings") as err:
        head(image, text)
    assert str(image_shape) in str(err.value) and str(text_shape) in str(err.value)


def test_gradcheck_wrt_both_inputs_and_every_parameter():
    head = FusionHead(embed_dim=3, hidden=4).double()
    rng = np.random.default_rng(3)
    image = tm.tensor(unit_rows(rng, 5, 3), requires_grad=True)
    text = tm.tensor(unit_rows(rng, 5, 3), requires_grad=True)
    params = list(head.parameters())
    assert len(params) == 4 and all(p.dtype == np.float64 for p in params)
    report = gradcheck(lambda i, t, *ps: head(i, t), [image, text, *params], tol=1e-7, name="FusionHead")
    assert len(report.checks) == 2 + len(params)
    assert report.max_rel_error < 1e-7


def test_two_class_cross_entropy_is_the_sigmoid_log_loss():
    z = np.array([-3.0, -0.5, 0.0, 2.0, 7.0])
    y = np.array([0, 1, 1, 0, 1])
    loss = binary_cross_entropy(tm.tensor(z), tm.tensor(y)).item()
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert abs(loss - expected) < 1e-12


def test_learns_a_separable_rule_on_synthetic_embeddings():
    """Label 1 when the two unit vectors point the same way (positive dot product).

    The product features image * text sum to that dot product, so one linear layer could
    read the rule off; the head has to find it from 2048 labelled pairs.
    """
    tm.manual_seed(0)
    rng = np.random.default_rng(4)
    d = 6

    def pairs(n):
        image, text = unit_rows(rng, n, d), unit_rows(rng, n, d)
        labels = ((image * text).sum(axis=1) > 0).astype(np.int64)
        return tm.tensor(image.astype(np.float32)), tm.tensor(text.astype(np.float32)), tm.tensor(labels)

    train_image, train_text, train_labels = pairs(2048)
    test_image, test_text, test_labels = pairs(512)
    head = FusionHead(embed_dim=d, hidden=32)
    opt = optim.Adam(head.parameters(), lr=1e-2)
    with tm.no_grad():
        before = binary_cross_entropy(head(train_image, train_text), train_labels).item()
    for _ in range(150):
        loss = binary_cross_entropy(head(train_image, train_text), train_labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with tm.no_grad():
        after = binary_cross_entropy(head(train_image, train_text), train_labels).item()
        predicted = head(test_image, test_text).numpy() > 0
    accuracy = float(np.mean(predicted == (test_labels.numpy() == 1)))
    assert before > 0.6 and after < 0.2, (before, after)
    assert accuracy > 0.97, accuracy
