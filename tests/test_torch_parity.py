"""Optional cross-checks against PyTorch (skipped when torch is not installed).

PyTorch is never a dependency of tinymm. Where it is installed, these tests show that a
PyTorch state_dict loads by name into the same tinymm layers and gives the same outputs,
and that tinymm's optimisers make the same updates as torch.optim from the same gradients.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tinymm as tm  # noqa: E402
from tinymm import nn, optim  # noqa: E402

pytestmark = pytest.mark.lesson04


def _numpy_state(module):
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def test_linear_loads_a_torch_state_dict_and_matches_its_output():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    ours = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    assert list(_numpy_state(ref)) == list(ours.state_dict())
    ours.load_state_dict(_numpy_state(ref))
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    expected = ref(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(ours(tm.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_conv2d_loads_a_torch_state_dict_and_matches_its_output():
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    ours = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    ours.load_state_dict(_numpy_state(ref))
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    expected = ref(torch.from_numpy(x)).detach().numpy()
    assert np.allclose(ours(tm.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_initial_weight_bounds_match_torch_defaults():
    # the random numbers differ (different generators), the distributions must not
    torch.manual_seed(0)
    tm.manual_seed(0)
    for ref, ours in ((torch.nn.Linear(300, 200), nn.Linear(300, 200)),
                      (torch.nn.Conv2d(16, 32, 3), nn.Conv2d(16, 32, 3))):
        fan_in = ref.weight[0].numel()
        bound = 1 / np.sqrt(fan_in)
        for name, ref_value in _numpy_state(ref).items():
            mine = dict(ours.named_parameters())[name].numpy()
            assert mine.shape == ref_value.shape and mine.dtype == ref_value.dtype
            limit = bound * (1 + 1e-6)  # float32 rounding at the edge
            assert np.abs(ref_value).max() <= limit and np.abs(mine).max() <= limit
            assert np.abs(mine).max() > 0.8 * bound and np.abs(ref_value).max() > 0.8 * bound
            if name == "weight":  # thousands of samples: the spreads agree closely
                assert mine.std() == pytest.approx(ref_value.std(), rel=0.05)


OPTIMISERS = [
    ("SGD", dict(lr=0.1), dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01),
     dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
     dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    ("Adam", dict(lr=0.01), dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01), dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.5),
     dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.5)),
]


@pytest.mark.parametrize("name, ours_kwargs, torch_kwargs", OPTIMISERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimiser_steps_match_torch(name, ours_kwargs, torch_kwargs, dtype):
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (4,)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(6)]

    ours = [nn.Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in start]
    opt = getattr(optim, name)(ours, **ours_kwargs)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **torch_kwargs)
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for gs in grads:
        for p, q, g in zip(ours, theirs, gs):
            p.grad = g.copy()
            q.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
        for p, q in zip(ours, theirs):
            assert np.allclose(p.data, q.detach().numpy(), **tol)


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal((5, 3)), rng.standard_normal(7)]
    ours = [nn.Parameter(np.zeros(g.shape)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = g.copy(), torch.from_numpy(g.copy())
    total = optim.clip_grad_norm_(ours, 1.5)
    ref_total = torch.nn.utils.clip_grad_norm_(theirs, 1.5)
    assert total == pytest.approx(float(ref_total), rel=1e-12)
    for p, q in zip(ours, theirs):
        assert np.allclose(p.grad, q.grad.numpy(), rtol=1e-12)


def test_cosine_schedule_without_warmup_matches_torch_cosine_annealing():
    p = nn.Parameter(np.zeros(1))
    q = torch.nn.Parameter(torch.zeros(1))
    opt = optim.SGD([p], lr=0.3)
    ref = torch.optim.SGD([q], lr=0.3)
    sched = optim.CosineSchedule(opt, total_steps=20, min_lr=0.01)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=20, eta_min=0.01)
    for _ in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
        p.grad, q.grad = np.zeros(1), torch.zeros(1)
        opt.step()
        ref.step()
        sched.step()
        ref_sched.step()
