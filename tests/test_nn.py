"""Modules and layers: registration and names, state_dict, initialisation, modes, repr, gradients."""
import math

import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm import backend, nn
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson04


class Tower(nn.Module):
    """A small model with named children, a nested Sequential and a bare Parameter."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh()))
        self.head = nn.Linear(8, 2, bias=False)
        # a NumPy array stays where it is: put it on the default device as the layers do
        self.scale = nn.Parameter(backend.to_device(np.array(1.5, dtype=np.float32), tm.get_default_device()))
        self.note = "not a parameter"

    def forward(self, x):
        return self.head(self.encoder(x)) * self.scale


# -- registration and names --------------------------------------------------------------------


def test_parameters_are_registered_in_order_with_pytorch_names():
    model = Tower()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "encoder.0.weight", "encoder.0.bias", "encoder.2.0.weight",
                     "encoder.2.0.bias", "head.weight"]
    assert list(model.parameters())[1] is model.encoder[0].weight
    assert [name for name, _ in model.named_modules()] == ["", "encoder", "encoder.0", "encoder.1", "encoder.2",
                                                           "encoder.2.0", "encoder.2.1", "head"]
    assert [type(m).__name__ for m in model.children()] == ["Sequential", "Linear"]
    assert model.num_parameters() == 1 + (4 * 8 + 8) + (8 * 8 + 8) + 8 * 2
    assert model.head.bias is None and model.note == "not a parameter"


def test_sequential_indexing_and_length():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2]
    assert list(seq) == layers
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and [n for n, _ in tail.named_parameters()] == ["1.weight", "1.bias"]
    with pytest.raises(IndexError, match="out of range for 3 layers"):
        seq[3]
    with pytest.raises(TypeError, match="must be a Module.*position 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_shared_parameter_is_listed_once():
    a = nn.Linear(3, 3)
    b = nn.Linear(3, 3)
    b.weight = a.weight  # tied weights
    model = nn.Sequential(a, b)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_assignment_rules():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="wrap it as nn.Parameter"):
        layer.weight = tm.tensor(np.ones((2, 2), dtype=np.float32))
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    layer.extra = nn.Parameter(np.zeros(3, dtype=np.float32))
    assert "extra" in dict(layer.named_parameters())
    del layer.extra
    assert "extra" not in dict(layer.named_parameters())

    class Forgot(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Forgot()
    with pytest.raises(TypeError, match="floating point"):
        nn.Parameter(np.arange(3))


def test_parameter_wraps_without_copy_and_requires_grad():
    array = np.ones(3, dtype=np.float64)
    p = nn.Parameter(array)
    assert p.data is array and p.requires_grad and p.dtype == np.float64
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32
    assert "Parameter containing" in repr(p)


# -- state_dict --------------------------------------------------------------------------------


def test_state_dict_is_a_snapshot_of_numpy_copies():
    model = Tower()
    state = model.state_dict()
    assert list(state) == [n for n, _ in model.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    before = state["head.weight"].copy()
    model.head.weight.data += 1.0
    assert np.array_equal(state["head.weight"], before)


def test_state_dict_round_trip_into_a_fresh_model():
    tm.manual_seed(0)
    source = Tower()
    tm.manual_seed(1)
    target = Tower()
    arrays = {n: p.data for n, p in target.named_parameters()}
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, p in target.named_parameters():
        assert p.data is arrays[name]  # copied into the existing arrays (optimisers keep working)
        assert np.array_equal(p.numpy(), dict(source.named_parameters())[name].numpy())


def test_load_state_dict_casts_to_the_models_dtype_and_accepts_tensors():
    layer = nn.Linear(2, 3)
    state = {"weight": np.full((3, 2), 0.1, dtype=np.float64), "bias": tm.tensor([1.0, 2.0, 3.0])}
    layer.load_state_dict(state)
    assert layer.weight.dtype == np.float32 and np.allclose(layer.weight.numpy(), 0.1)
    assert layer.bias.tolist() == [1.0, 2.0, 3.0]


def test_load_state_dict_reports_every_problem_at_once_and_changes_nothing():
    model = Tower()
    before = {n: v.copy() for n, v in model.state_dict().items()}
    bad = {n: np.zeros_like(v) for n, v in before.items()}
    del bad["encoder.0.bias"]                       # missing
    bad["decoder.weight"] = np.zeros(3)             # unexpected
    bad["head.weight"] = np.zeros((3, 8))           # wrong shape
    bad["scale"] = "1.5"                            # not an array
    with pytest.raises(ValueError) as err:
        model.load_state_dict(bad)
    message = str(err.value)
    assert "nothing was changed" in message
    assert "missing keys" in message and "'encoder.0.bias'" in message
    assert "unexpected keys" in message and "'decoder.weight'" in message
    assert "'head.weight': checkpoint has shape (3, 8), model has (2, 8)" in message
    assert "'scale': expected an array, got str" in message
    for name, value in model.state_dict().items():  # the valid keys were not written either
        assert np.array_equal(value, before[name]), name


def test_load_state_dict_non_strict_allows_missing_and_unexpected_but_not_wrong_shapes():
    layer = nn.Linear(2, 3)
    result = layer.load_state_dict({"weight": np.ones((3, 2)), "other": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    assert np.array_equal(layer.weight.numpy(), np.ones((3, 2)))
    with pytest.raises(ValueError, match="'weight': checkpoint has shape \\(2, 3\\)"):
        layer.load_state_dict({"weight": np.ones((2, 3))}, strict=False)


# -- initialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Linear(400, 300), 400),
                                          (lambda: nn.Conv2d(8, 64, 3), 8 * 3 * 3)])
def test_default_init_is_kaiming_uniform_with_bound_one_over_sqrt_fan_in(make, fan_in):
    tm.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    limit = bound * (1 + 1e-6)  # a draw just below the bound may round up to it in float32
    w, b = backend.to_numpy(layer.weight.data), backend.to_numpy(layer.bias.data)
    assert w.dtype == np.float32 and layer.weight.device == backend.get_default_device()
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # the std of U(−a, a) is a/√3
    assert np.abs(b).max() <= limit


def test_embedding_init_is_standard_normal_with_zero_padding_row():
    tm.manual_seed(0)
    emb = nn.Embedding(1000, 64, padding_idx=0)
    w = backend.to_numpy(emb.weight.data)
    assert np.all(w[0] == 0)
    assert abs(w[1:].mean()) < 0.01 and w[1:].std() == pytest.approx(1.0, rel=0.01)


def test_same_seed_gives_the_same_weights():
    tm.manual_seed(7)
    a = Tower()
    tm.manual_seed(7)
    b = Tower()
    tm.manual_seed(8)
    c = Tower()
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert np.array_equal(pa.numpy(), pb.numpy()), name
        if name != "scale":
            assert not np.array_equal(pa.numpy(), pc.numpy()), name


# -- modes, devices, dtypes ------------------------------------------------------------------------


def test_train_and_eval_reach_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.ReLU()))
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_dropout_in_eval_is_identity():
    drop = nn.Dropout(0.9).eval()
    x = tm.randn(4, 5)
    assert drop(x) is x


def test_dropout_in_training_zeroes_about_p_and_rescales_the_rest():
    tm.manual_seed(0)
    drop = nn.Dropout(0.25)
    y = backend.to_numpy(drop(tm.ones(200, 100)).data)
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.01)
    assert np.allclose(y[y != 0], 1 / 0.75)


def test_to_dtype_and_zero_grad_work_in_place():
    model = Tower()
    params = list(model.parameters())
    model.double()
    assert [p for p in model.parameters()] == params and all(p.dtype == np.float64 for p in params)
    for p in params:
        p.grad = np.ones(p.shape)
    model.zero_grad()
    assert all(p.grad is None for p in params)
    assert model.to("cpu") is model


@pytest.mark.gpu
def test_same_seed_same_weights_on_cpu_and_gpu():
    if not backend.cuda_available():
        pytest.skip("needs CuPy and a GPU")
    previous = backend.get_default_device()
    try:
        tm.manual_seed(3)
        backend.set_default_device("cpu")
        cpu = Tower()
        tm.manual_seed(3)
        backend.set_default_device("cuda")
        gpu = Tower()
    finally:
        backend.set_default_device(previous)
    for (name, a), b in zip(cpu.named_parameters(), gpu.parameters()):
        assert b.device == "cuda" and np.array_equal(a.numpy(), b.numpy()), name
    moved = cpu.to("cuda")
    assert all(p.device == "cuda" for p in moved.parameters())


# -- repr ----------------------------------------------------------------------------------------


def test_repr_is_nested_like_pytorch():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Sequential(nn.Linear(2048, 128), nn.Dropout(0.1)),
                          nn.Embedding(10, 4, padding_idx=0), nn.Upsample(2), nn.Conv2d(4, 4, 1, bias=False))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "  (1): ReLU()\n"
        "  (2): MaxPool2d(kernel_size=2, stride=2)\n"
        "  (3): Flatten()\n"
        "  (4): Sequential(\n"
        "    (0): Linear(in_features=2048, out_features=128, bias=True)\n"
        "    (1): Dropout(p=0.1)\n"
        "  )\n"
        "  (5): Embedding(10, 4, padding_idx=0)\n"
        "  (6): Upsample(scale_factor=2, mode='nearest')\n"
        "  (7): Conv2d(4, 4, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), bias=False)\n"
        ")")


# -- layers compute what their ops compute ----------------------------------------------------------


def test_linear_forward_is_x_times_weight_transposed_plus_bias():
    layer = nn.Linear(3, 2)
    x = tm.randn(5, 3)
    expected = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    assert np.allclose(layer(x).numpy(), expected, atol=1e-6)
    assert nn.Linear(3, 2, bias=False)(x).shape == (5, 2)


def test_conv_pool_flatten_upsample_shapes():
    x = tm.randn(2, 3, 8, 8)
    conv = nn.Conv2d(3, 4, 3, stride=1, padding=1)
    y = conv(x)
    assert np.allclose(y.numpy(), F.conv2d(x, conv.weight, conv.bias, padding=1).numpy())
    assert nn.MaxPool2d(2)(y).shape == (2, 4, 4, 4)
    assert nn.AvgPool2d(2, stride=1)(y).shape == (2, 4, 7, 7)
    assert nn.Flatten()(y).shape == (2, 4 * 8 * 8)
    assert nn.Upsample(2)(y).shape == (2, 4, 16, 16)


def test_embedding_padding_row_outputs_zero_and_gets_no_gradient():
    emb = nn.Embedding(5, 3, padding_idx=0)
    ids = tm.tensor(np.array([[1, 0, 2], [0, 0, 4]]))
    out = emb(ids)
    assert out.shape == (2, 3, 3)
    assert np.all(out.numpy()[ids.numpy() == 0] == 0)
    assert np.allclose(out.numpy()[0, 0], emb.weight.numpy()[1])
    out.backward(np.ones(out.shape, dtype=np.float32))
    grad = backend.to_numpy(emb.weight.grad)
    assert np.all(grad[0] == 0)                       # the padding row never learns
    assert np.all(grad[1] == 1) and np.all(grad[3] == 0)


def test_activations_and_their_layers_agree():
    x = tm.tensor([[-2.0, -0.5, 0.5, 2.0]])
    assert nn.ReLU()(x).numpy().tolist() == [[0.0, 0.0, 0.5, 2.0]]
    assert np.allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())))
    assert np.allclose(nn.Tanh()(x).numpy(), np.tanh(x.numpy()))


def test_mlp_gradcheck_wrt_input_and_every_parameter():
    tm.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    x = tm.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    hidden = F.linear(x, mlp[0].weight, mlp[0].bias).numpy()
    assert np.abs(hidden).min() > 1e-3  # no pre-activation sits on ReLU's kink
    report = gradcheck(lambda x, *params: mlp(x), [x, *mlp.parameters()], tol=1e-7, name="MLP")
    assert len(report.checks) == 5 and report.max_rel_error < 1e-7


def test_sgd_training_reduces_a_small_regression_loss():
    tm.manual_seed(0)
    from tinymm import optim
    model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
    x = np.linspace(-2, 2, 64, dtype=np.float32)[:, None]
    y = tm.tensor(np.sin(x))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(200):
        loss = ((model(tm.tensor(x)) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
