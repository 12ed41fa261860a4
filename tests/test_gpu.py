"""The GPU path (lesson 17): the same code on CuPy gives the CPU's numbers to float32 tolerance.

Every test here needs CuPy and a GPU; without them each one is skipped (conftest.py skips
tests marked ``gpu``), so the file is safe to collect anywhere. Inputs are drawn once on the
CPU, copied to the GPU, and the op runs on both; outputs and gradients must agree to what
float32 rounding allows (different summation orders on the two devices).
"""
import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm import backend, nn, optim

pytestmark = [pytest.mark.gpu, pytest.mark.lesson17]

RTOL, ATOL = 1e-4, 1e-5  # float32: about 7 digits, less after long sums


def on_both(fn, *arrays, needs=None):
    """Run fn on CPU and on GPU tensors made from the same arrays; return both (out, grads)."""
    needs = needs or [np.issubdtype(a.dtype, np.floating) for a in arrays]
    results = []
    for device in ("cpu", "cuda"):
        tensors = [tm.tensor(a, requires_grad=n, device=device) for a, n in zip(arrays, needs)]
        out = fn(*tensors)
        g = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
        out.backward(tm.tensor(g, device=device) if out.ndim else None)
        results.append((out.numpy(), [t.grad for t in tensors if t.requires_grad]))
    return results


def assert_agree(results):
    (out_cpu, grads_cpu), (out_gpu, grads_gpu) = results
    np.testing.assert_allclose(out_gpu, out_cpu, rtol=RTOL, atol=ATOL)
    assert len(grads_cpu) == len(grads_gpu) > 0
    for g_cpu, g_gpu in zip(grads_cpu, grads_gpu):
        assert backend.device_of(g_gpu) == "cuda"  # gradients stay where the tensor lives
        np.testing.assert_allclose(backend.to_numpy(g_gpu), g_cpu, rtol=RTOL, atol=ATOL)


def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_conv2d_agrees_on_cpu_and_gpu():
    rng = np.random.default_rng(0)
    x, w, b = f32(rng, 4, 3, 9, 9), f32(rng, 5, 3, 3, 3, scale=0.3), f32(rng, 5)
    assert_agree(on_both(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), x, w, b))


def test_relu_and_max_pool_agree_on_cpu_and_gpu():
    rng = np.random.default_rng(0)
    x = rng.permutation(2 * 3 * 8 * 8).reshape(2, 3, 8, 8).astype(np.float32) - 60  # no ties
    assert_agree(on_both(lambda x: F.max_pool2d(F.relu(x), 2), x))


def test_embedding_scatter_add_agrees_on_cpu_and_gpu():
    rng = np.random.default_rng(0)
    ids = np.array([[1, 2, 1, 1], [0, 2, 3, 1]])  # repeated ids: their gradients must all add up
    table = f32(rng, 5, 6)
    assert_agree(on_both(lambda i, w: F.embedding(i, w), ids, table, needs=[False, True]))


def test_linear_l2_norm_and_clip_loss_agree_on_cpu_and_gpu():
    rng = np.random.default_rng(0)
    x, w, b, t = f32(rng, 6, 8), f32(rng, 4, 8, scale=0.3), f32(rng, 4), f32(rng, 6, 4)
    s = np.array(np.log(1 / 0.07), dtype=np.float32)

    def loss(x, w, b, t, s):
        return F.clip_loss(F.l2_normalize(F.linear(x, w, b)), F.l2_normalize(t), s)

    assert_agree(on_both(loss, x, w, b, t, s))


def test_soft_target_cross_entropy_agrees_on_cpu_and_gpu():
    rng = np.random.default_rng(0)
    logits = f32(rng, 5, 5, scale=3.0)
    targets = F.clip_targets(["a", "b", "a", "c", "b"]).astype(np.float32)
    assert_agree(on_both(lambda z, t: F.softmax_cross_entropy(z, t), logits, targets, needs=[True, False]))


class TinyDualEncoder(nn.Module):
    """A small version of the course's dual encoder: conv, ReLU, pool, linear; embedding, mean."""

    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Flatten(), nn.Linear(4 * 4 * 4, 8))
        self.token_embedding = nn.Embedding(10, 8)
        self.text_proj = nn.Linear(8, 8)
        self.logit_scale = nn.Parameter(np.array(np.log(1 / 0.07), dtype=np.float32))

    def forward(self, images, tokens):
        image_emb = F.l2_normalize(self.image(images))
        text_emb = F.l2_normalize(self.text_proj(self.token_embedding(tokens).mean(axis=1)))
        return F.clip_loss(image_emb, text_emb, self.logit_scale)


def test_a_training_step_agrees_on_cpu_and_gpu():
    rng = np.random.default_rng(0)
    images = rng.random((6, 3, 8, 8), dtype=np.float32)
    tokens = rng.integers(0, 10, size=(6, 5))
    losses, params = [], []
    for device in ("cpu", "cuda"):
        tm.manual_seed(0)  # weights are drawn on the CPU, then moved: the same on both devices
        model = TinyDualEncoder().to(device)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        x, ids = tm.tensor(images, device=device), tm.tensor(tokens, device=device)
        for _ in range(3):
            loss = model(x, ids)
            assert backend.device_of(loss.data) == device  # the loss stays on its device
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
        params.append({k: v for k, v in model.state_dict().items()})
    assert losses[1] == pytest.approx(losses[0], rel=RTOL, abs=ATOL)
    for name, value in params[0].items():
        np.testing.assert_allclose(params[1][name], value, rtol=1e-3, atol=1e-4, err_msg=name)


def test_ignore_index_count_stays_on_the_gpu():
    # the number of counted rows is kept as a device array: no read-back in the loss
    logits = tm.tensor(np.zeros((3, 4), dtype=np.float32), requires_grad=True, device="cuda")
    targets = tm.tensor(np.array([1, -100, 2]), device="cuda")
    loss = F.softmax_cross_entropy(logits, targets, ignore_index=-100)
    loss.backward()
    assert loss.item() == pytest.approx(np.log(4), rel=1e-6)
    assert backend.device_of(logits.grad) == "cuda"
    np.testing.assert_allclose(backend.to_numpy(logits.grad)[1], 0.0)
