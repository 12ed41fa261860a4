"""Every op's forward and backward against PyTorch in float64 (skipped when torch is absent).

Each case builds the same computation twice — with tinymm and with torch — on the same float64
inputs, projects the output onto the same random upstream gradient, and compares the outputs
and every input's gradient to 1e-10. Install torch CPU to run it: pip install torch==2.13.0
"""
import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.lesson03


def normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    return lambda rng: (rng.permutation(int(np.prod(shape))) * 0.05).reshape(shape).astype(np.float64)


def ids(high, *shape):
    return lambda rng: rng.integers(0, high, shape)


def soft_targets(n, c):
    def draw(rng):
        p = rng.uniform(0.1, 1.0, (n, c))
        return p / p.sum(axis=1, keepdims=True)
    return draw


def torch_clip_loss(i, t, s):
    logits = s.exp() * i @ t.T
    labels = torch.arange(len(i))
    return (TF.cross_entropy(logits, labels) + TF.cross_entropy(logits.T, labels)) / 2


CASES = [
    ("add broadcast", lambda a, b: a + b, lambda a, b: a + b, [normal(3, 4), normal(4)]),
    ("mul broadcast", lambda a, b: a * b, lambda a, b: a * b, [normal(2, 3, 1), normal(3, 4)]),
    ("div", lambda a, b: a / b, lambda a, b: a / b, [normal(3, 4), positive(3, 4)]),
    ("pow, exp, log", lambda a: (a ** 1.5).exp().log(), lambda a: (a ** 1.5).exp().log(), [positive(5)]),
    ("sum axis keepdims", lambda a: a.sum(axis=1, keepdims=True), lambda a: a.sum(dim=1, keepdim=True),
     [normal(2, 3, 4)]),
    ("mean", lambda a: a.mean(axis=(0, 2)), lambda a: a.mean(dim=(0, 2)), [normal(2, 3, 4)]),
    ("max axis", lambda a: a.max(axis=1), lambda a: a.max(dim=1).values, [distinct(3, 5)]),
    ("getitem repeated", lambda a: a[np.array([0, 2, 0])], lambda a: a[[0, 2, 0]], [normal(3, 4)]),
    ("matmul batched", lambda a, b: a @ b, lambda a, b: a @ b, [normal(2, 3, 4), normal(4, 5)]),
    ("concatenate", lambda a, b: F.concatenate([a, b], axis=1), lambda a, b: torch.cat([a, b], dim=1),
     [normal(2, 3), normal(2, 2)]),
    ("linear", F.linear, TF.linear, [normal(4, 3), normal(5, 3), normal(5)]),
    ("relu", F.relu, torch.relu, [lambda rng: rng.choice([-1, 1], (4, 5)) * rng.uniform(0.1, 1, (4, 5))]),
    ("sigmoid", F.sigmoid, torch.sigmoid, [normal(4, 5)]),
    ("tanh", F.tanh, torch.tanh, [normal(4, 5)]),
    ("softmax", lambda x: F.softmax(x, axis=-1), lambda x: torch.softmax(x, dim=-1), [normal(3, 6)]),
    ("log_softmax", lambda x: F.log_softmax(x, axis=0), lambda x: torch.log_softmax(x, dim=0), [normal(3, 6)]),
    ("conv2d stride 2 pad 1", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
     lambda x, w, b: TF.conv2d(x, w, b, stride=2, padding=1), [normal(2, 3, 7, 6), normal(4, 3, 3, 3), normal(4)]),
    ("conv2d 3x3 pad 1", lambda x, w, b: F.conv2d(x, w, b, padding=1),
     lambda x, w, b: TF.conv2d(x, w, b, padding=1), [normal(2, 3, 8, 8), normal(5, 3, 3, 3), normal(5)]),
    ("max_pool2d 2x2", lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), [distinct(2, 3, 6, 7)]),
    ("max_pool2d 3x3 stride 2", lambda x: F.max_pool2d(x, 3, stride=2), lambda x: TF.max_pool2d(x, 3, stride=2),
     [distinct(2, 2, 7, 7)]),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2), [normal(2, 3, 6, 7)]),
    ("upsample_nearest2d", lambda x: F.upsample_nearest2d(x, 2),
     lambda x: TF.interpolate(x, scale_factor=2, mode="nearest"), [normal(2, 3, 3, 4)]),
    ("embedding repeated ids", lambda i, w: F.embedding(i, w), lambda i, w: TF.embedding(i, w),
     [ids(6, 3, 4), normal(6, 5)]),
    ("embedding padding_idx", lambda i, w: F.embedding(i, w, padding_idx=0),
     lambda i, w: TF.embedding(i, w, padding_idx=0), [ids(6, 3, 4), normal(6, 5)]),
    ("l2_normalize", lambda x: F.l2_normalize(x, axis=-1), lambda x: TF.normalize(x, dim=-1), [normal(4, 5)]),
    ("cross-entropy class ids", lambda z, y: F.softmax_cross_entropy(z, y),
     lambda z, y: TF.cross_entropy(z, y), [normal(5, 4), ids(4, 5)]),
    ("cross-entropy sum, ignore_index", lambda z, y: F.softmax_cross_entropy(z, y, reduction="sum", ignore_index=0),
     lambda z, y: TF.cross_entropy(z, y, reduction="sum", ignore_index=0), [normal(6, 4), ids(4, 6)]),
    ("cross-entropy probabilities", lambda z, p: F.softmax_cross_entropy(z, p),
     lambda z, p: TF.cross_entropy(z, p), [normal(5, 4), soft_targets(5, 4)]),
    ("mse_loss", F.mse_loss, TF.mse_loss, [normal(3, 4), normal(3, 4)]),
    ("clip_loss", lambda i, t, s: F.clip_loss(i, t, s), torch_clip_loss,
     [lambda rng: _unit(rng, 5, 4), lambda rng: _unit(rng, 5, 4), lambda rng: np.array(2.0)]),
]


def _unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("name, ours, theirs, samplers", CASES, ids=[c[0] for c in CASES])
def test_forward_and_backward_match_pytorch(name, ours, theirs, samplers):
    rng = np.random.default_rng(0)
    arrays = [np.asarray(draw(rng)) for draw in samplers]
    # the soft-target sampler gives probabilities: compare them as non-differentiable inputs
    grads_wanted = [a.dtype == np.float64 and not (i > 0 and "probabilities" in name) for i, a in enumerate(arrays)]
    ours_in = [tm.tensor(a, requires_grad=g) for a, g in zip(arrays, grads_wanted)]
    theirs_in = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads_wanted)]
    out, ref = ours(*ours_in), theirs(*theirs_in)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    upstream = np.random.default_rng(1).standard_normal(ref.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    for i, (a, b) in enumerate(zip(ours_in, theirs_in)):
        if grads_wanted[i]:
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name}: gradient of input {i}")


def test_autograd_semantics_match_pytorch():
    """Re-use, accumulation across backward calls, broadcasting reductions and retain_graph."""
    x0, w0 = np.linspace(-1, 1, 6).reshape(2, 3), np.arange(3.0) / 3
    x, w = tm.tensor(x0, requires_grad=True), tm.tensor(w0, requires_grad=True)
    tx, tw = torch.tensor(x0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    for a, b in ((x, w), (tx, tw)):
        y = (a * b + a * a).sum() * (a + b).mean()   # a is used four times, b broadcast over rows
        y.backward(retain_graph=True)
        y.backward()                                   # second pass through the kept graph
        (a * 2.0).sum().backward()                     # a third contribution accumulates
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=1e-12)
