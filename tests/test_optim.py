"""Optimisers against updates computed by hand, step by step, in plain NumPy."""
import math

import numpy as np
import pytest

import tinymm as tm
from tinymm import backend, nn, optim
from tinymm.serialization import load, save

pytestmark = pytest.mark.lesson04

# three steps of made-up gradients for a parameter of two numbers
GRADS = [np.array([0.5, -1.0]), np.array([0.25, 2.0]), np.array([-1.0, 0.5])]
P0 = np.array([1.0, -2.0])


def on_device(array):
    """A host array moved to the device under test (where the layers put their parameters)."""
    return backend.to_device(array, tm.get_default_device())


def _run(make_opt, grads=GRADS, p0=P0, dtype=np.float64):
    """Apply the optimiser to a fresh parameter on the device under test with the given
    gradients; return its values per step (on the host)."""
    p = nn.Parameter(on_device(p0.astype(dtype)))
    opt = make_opt([p])
    history = []
    for g in grads:
        p.grad = on_device(g.astype(dtype))
        opt.step()
        history.append(backend.to_numpy(p.data).copy())
    return history, p, opt


def test_sgd_plain_first_step_by_hand():
    history, _, _ = _run(lambda ps: optim.SGD(ps, lr=0.1))
    # p - lr * g = [1 - 0.05, -2 + 0.1]
    assert np.allclose(history[0], [0.95, -1.9], rtol=0, atol=1e-15)
    assert np.allclose(history[2], P0 - 0.1 * sum(GRADS), rtol=0, atol=1e-15)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_weight_decay_nesterov_three_steps(nesterov):
    lr, mu, wd = 0.1, 0.9, 0.01
    history, _, opt = _run(lambda ps: optim.SGD(ps, lr=lr, momentum=mu, weight_decay=wd, nesterov=nesterov))
    p, buf = P0.copy(), None
    for g, got in zip(GRADS, history):
        d = g + wd * p                      # L2 term
        buf = d.copy() if buf is None else mu * buf + d
        step = d + mu * buf if nesterov else buf
        p = p - lr * step
        assert np.allclose(got, p, rtol=1e-14, atol=1e-15)
    # the first step by hand, as plain numbers: d = [0.5 + 0.01, -1.0 - 0.02]
    d0 = np.array([0.51, -1.02])
    first = P0 - lr * (d0 + mu * d0 if nesterov else d0)
    assert np.allclose(history[0], first, rtol=1e-14)


def test_adam_three_steps_with_l2_weight_decay():
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    history, p_final, opt = _run(lambda ps: optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd))
    p, m, v = P0.copy(), np.zeros(2), np.zeros(2)
    for t, (g, got) in enumerate(zip(GRADS, history), start=1):
        g = g + wd * p                       # Adam: weight decay goes into the gradient
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        assert np.allclose(got, p, rtol=1e-12, atol=1e-14)
    state = opt.state[p_final]
    assert state["step"] == 3 and np.allclose(backend.to_numpy(state["exp_avg"]), m)
    assert np.allclose(backend.to_numpy(state["exp_avg_sq"]), v)


def test_adam_first_step_moves_each_weight_by_about_lr():
    # after bias correction, m_hat = g and v_hat = g², so the first step is lr * sign(g)
    history, _, _ = _run(lambda ps: optim.Adam(ps, lr=0.01))
    assert np.allclose(history[0], P0 - 0.01 * np.sign(GRADS[0]), atol=1e-9)


def test_adamw_three_steps_with_decoupled_weight_decay():
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.99, 1e-6, 0.5
    history, _, _ = _run(lambda ps: optim.AdamW(ps, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd))
    p, m, v = P0.copy(), np.zeros(2), np.zeros(2)
    for t, (g, got) in enumerate(zip(GRADS, history), start=1):
        p = p * (1 - lr * wd)                # AdamW: shrink the weights, the gradient stays as it is
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        assert np.allclose(got, p, rtol=1e-12, atol=1e-14)


def test_adamw_default_weight_decay_is_0_01():
    p = nn.Parameter(np.ones(1))
    assert optim.AdamW([p]).param_groups[0]["weight_decay"] == 0.01
    assert optim.Adam([p]).param_groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1), lambda ps: optim.AdamW(ps, lr=0.1)])
def test_float32_stays_float32_and_updates_in_place(make):
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    array = p.data
    opt = make([p])
    p.grad = np.full(3, 0.5, dtype=np.float32)
    opt.step()
    assert p.data is array and p.data.dtype == np.float32 and p.data[0] < 1
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


def test_parameters_without_grad_are_skipped():
    used, unused = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    for opt in (optim.SGD([used, unused], lr=0.1, momentum=0.9, weight_decay=0.1),
                optim.AdamW([used, unused], lr=0.1)):
        used.grad, unused.grad = np.ones(2), None
        opt.step()
        assert np.array_equal(unused.data, [1.0, 1.0]) and unused not in opt.state


def test_zero_grad_clears_every_gradient():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))
    a.grad, b.grad = np.ones(2), np.ones(3)
    optim.SGD([a, b], lr=1.0).zero_grad()
    assert a.grad is None and b.grad is None


def test_parameter_groups_have_their_own_settings():
    a, b = nn.Parameter(np.array([1.0])), nn.Parameter(np.array([1.0]))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 1.0}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[0]["weight_decay"] == 0.0
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    opt.step()
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(1.0 - 0.5 * (1.0 + 1.0))


def test_optimizer_input_errors():
    p = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="unknown settings.*momentun"):
        optim.SGD([{"params": [p], "momentun": 0.9}], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([], lr=0.1)
    with pytest.raises(TypeError, match="require grad"):
        optim.SGD([tm.tensor([1.0])], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))


def test_clip_grad_norm_scales_all_gradients_together():
    a, b = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 4.0]), np.array([12.0])   # joint norm √(9 + 16 + 144) = 13
    total = optim.clip_grad_norm_([a, b], max_norm=6.5)
    assert total == pytest.approx(13.0)
    scale = 6.5 / (13.0 + 1e-6)
    assert np.allclose(a.grad, [3 * scale, 4 * scale]) and np.allclose(b.grad, [12 * scale])
    # below the limit nothing changes
    total = optim.clip_grad_norm_([a, b], max_norm=100.0)
    assert total == pytest.approx(6.5, rel=1e-6) and np.allclose(b.grad, [12 * scale])


def test_cosine_schedule_warmup_then_decay_to_min_lr():
    p = nn.Parameter(np.ones(1))
    opt = optim.SGD([{"params": [p]}, {"params": [nn.Parameter(np.ones(1))], "lr": 2.0}], lr=1.0)
    sched = optim.CosineSchedule(opt, total_steps=10, warmup_steps=2, min_lr=0.1)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(12):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.5)          # warm-up: 1.0 · 1/2
    assert lrs[1] == pytest.approx(1.0)          # warm-up: 1.0 · 2/2
    assert lrs[2] == pytest.approx(1.0)          # cosine starts at the top
    assert lrs[6] == pytest.approx(0.55)         # half-way: 0.1 + 0.9 · ½(1 + cos(π/2))
    assert lrs[4] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 2 / 8)))
    assert lrs[10] == pytest.approx(0.1) and lrs[12] == pytest.approx(0.1)
    assert sched.get_last_lr()[1] == pytest.approx(0.1)  # the second group ends at min_lr too
    # a new schedule resumes from a state_dict
    sched2 = optim.CosineSchedule(opt, total_steps=10, warmup_steps=2, min_lr=0.1)
    sched2.load_state_dict({**sched.state_dict(), "last_step": 6})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.55)


def test_optimizer_state_dict_round_trip_resumes_identically(tmp_path):
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal((2, 3)), rng.standard_normal(3)] for _ in range(5)]

    def make():
        ps = [nn.Parameter(np.ones((2, 3))), nn.Parameter(np.zeros(3))]
        return ps, optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "weight_decay": 0.0}], lr=0.05)

    ps, opt = make()
    for gs in grads[:3]:
        for p, g in zip(ps, gs):
            p.grad = g
        opt.step()
    save({"params": [p.data for p in ps], "optimizer": opt.state_dict()}, tmp_path / "opt.npz")
    saved = opt.state_dict()
    assert sorted(saved["state"]) == [0, 1] and saved["param_groups"][1]["params"] == [1]

    ckpt = load(tmp_path / "opt.npz")
    ps2, opt2 = make()
    for p, array in zip(ps2, ckpt["params"]):
        p.data[...] = array
    opt2.load_state_dict(ckpt["optimizer"])
    assert opt2.param_groups[1]["weight_decay"] == 0.0
    for gs in grads[3:]:
        for o, params in ((opt, ps), (opt2, ps2)):
            for p, g in zip(params, gs):
                p.grad = g
            o.step()
    for p, p2 in zip(ps, ps2):
        assert np.array_equal(p.data, p2.data)


def test_optimizer_load_state_dict_rejects_a_different_layout():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))
    opt = optim.Adam([a, b])
    a.grad, b.grad = np.ones(2), np.ones(3)
    opt.step()
    with pytest.raises(ValueError, match="groups of sizes \\[2\\], this one \\[1\\]"):
        optim.Adam([a]).load_state_dict(opt.state_dict())
    swapped = optim.Adam([b, a])
    with pytest.raises(ValueError, match="has shape \\(2,\\), the parameter has \\(3,\\)"):
        swapped.load_state_dict(opt.state_dict())


def test_resumed_adam_keeps_updating_a_0d_parameter(tmp_path):
    """A 0-d parameter (like CLIP's logit scale) keeps its moments as arrays after a round trip."""
    import tinymm as tm
    from tinymm import nn, optim

    def run(resume_after):
        s = nn.Parameter(np.array(1.0))
        opt = optim.Adam([s], lr=0.1)
        for step in range(4):
            if step == resume_after:
                state = opt.state_dict()
                opt = optim.Adam([s], lr=0.1)
                tm.save({"optimizer": state}, tmp_path / "opt.npz")
                opt.load_state_dict(tm.load(tmp_path / "opt.npz")["optimizer"])
            s.grad = np.array(2.0 * float(s.data))
            opt.step()
        return float(s.data)

    assert run(resume_after=2) == run(resume_after=None)
