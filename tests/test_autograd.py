"""The engine: graph recording, the backward walk, accumulation, modes, dtypes, devices, errors."""
import os

import numpy as np
import pytest

import tinymm as tm
from tinymm import backend

pytestmark = pytest.mark.lesson02


def test_hand_computed_gradients():
    # f(a, b) = (a*b + a)^2 ; df/da = 2(ab + a)(b + 1), df/db = 2(ab + a) a
    a = tm.tensor(3.0, requires_grad=True)
    b = tm.tensor(-2.0, requires_grad=True)
    f = (a * b + a) ** 2
    f.backward()
    assert f.item() == pytest.approx(9.0)
    assert backend.to_numpy(a.grad) == pytest.approx(2 * (-3.0) * (-1.0))
    assert backend.to_numpy(b.grad) == pytest.approx(2 * (-3.0) * 3.0)


def test_reused_node_accumulates():
    x = tm.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x + x          # x is used three times
    y.sum().backward()
    np.testing.assert_allclose(tm.tensor(x.grad).numpy(), [3.0, 5.0, 7.0])


def test_diamond_graph():
    x = tm.tensor(2.0, requires_grad=True)
    a = x * 3.0
    b = a * a            # a reaches the output through two paths
    c = a + b
    c.backward()
    # c = 3x + 9x², dc/dx = 3 + 18x = 39
    assert float(x.grad) == pytest.approx(39.0)


def test_leaf_grads_accumulate_across_backward_calls():
    x = tm.tensor([1.0, -1.0], requires_grad=True)
    (x * 2.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(tm.tensor(x.grad).numpy(), [5.0, 5.0])
    x.zero_grad()
    assert x.grad is None


def test_retain_graph_allows_a_second_backward():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = tm.tensor(x.grad).numpy().copy()
    y.backward()
    np.testing.assert_allclose(tm.tensor(x.grad).numpy(), 2 * first, rtol=1e-6)


def test_second_backward_without_retain_graph_is_a_clear_error():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(ValueError, match="already freed.*retain_graph"):
        y.backward()


def test_graph_links_functions_and_leaves_not_intermediate_tensors():
    w = tm.tensor([1.0, 2.0], requires_grad=True)
    x = tm.tensor([3.0, 4.0])                    # a constant: no gradient wanted
    h = w * x
    y = h + w
    assert h.grad_fn.parents == (w, None)        # a leaf is its own node; the constant is not linked
    assert y.grad_fn.parents == (h.grad_fn, w)   # an intermediate is reached through its Function
    assert y.grad_fn.input_meta == (((2,), np.float32), ((2,), np.float32))
    order = tm.autograd.topological_order(y)
    assert order.index(w) < order.index(h.grad_fn) < order.index(y.grad_fn) == len(order) - 1


def test_an_intermediate_array_no_backward_needs_is_freed_before_backward():
    import gc
    import weakref

    x = tm.tensor(np.ones(1000), requires_grad=True, device="cpu")
    h = x + 1.0              # Add saves nothing for backward
    y = (h * 3.0).sum()      # Mul saves h ...
    z = h.sum()              # ... and Sum only a shape
    probe = weakref.ref(h.data)
    del h
    gc.collect()
    assert probe() is not None        # still needed: Mul's backward multiplies by it
    del y                             # drop the graph that needed it
    gc.collect()
    assert probe() is None            # z's graph (Add, Sum) never held it
    z.backward()
    np.testing.assert_allclose(x.grad, np.ones(1000))


def test_forward_knows_whether_a_backward_will_follow():
    from tinymm.autograd import Function

    class Probe(Function):
        def forward(self, x):
            Probe.seen = (self.needs_input_grad, self.will_backward)
            return x * 1

        def backward(self, g):
            return g

    w, c = tm.tensor([1.0], requires_grad=True), tm.tensor([1.0])
    Probe.apply(w)
    assert Probe.seen == ((True,), True)
    Probe.apply(c)
    assert Probe.seen == ((False,), False)
    with tm.no_grad():
        Probe.apply(w)
    assert Probe.seen == ((False,), False)
    Probe().forward(np.ones(1))                 # called directly: assume a backward may follow
    assert Probe.seen == ((), True)


def test_max_pool_skips_its_backward_bookkeeping_in_evaluation():
    from tinymm.functional.conv import MaxPool2d

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    train, evaluate = MaxPool2d(), MaxPool2d()
    train.needs_input_grad, evaluate.needs_input_grad = (True,), (False,)
    args = dict(kernel=(2, 2), stride=(2, 2), out_hw=(2, 2))
    np.testing.assert_array_equal(train.forward(x, **args), evaluate.forward(x, **args))
    assert hasattr(train, "winner") and not hasattr(evaluate, "winner")


def test_fresh_graphs_give_identical_gradients():
    x = tm.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    grads = []
    for _ in range(2):
        x.zero_grad()
        ((x * x).exp() - x).mean().backward()
        grads.append(tm.tensor(x.grad).numpy().copy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_deep_graph_has_no_recursion_limit():
    x = tm.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    assert float(x.grad) == pytest.approx(1.0001 ** 10_000, rel=1e-3)


def test_no_grad_records_nothing():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    with tm.no_grad():
        y = x * 2.0
    assert y.grad_fn is None and not y.requires_grad
    with tm.no_grad():
        with tm.enable_grad():
            z = x * 2.0
    assert z.requires_grad


def test_detach_cuts_the_graph():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0).detach()
    assert y.grad_fn is None and not y.requires_grad
    np.testing.assert_allclose(y.numpy(), [2.0, 4.0])


def test_non_scalar_backward_needs_a_gradient():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"non-scalar output of shape \(2,\)"):
        y.backward()
    y.backward(np.array([1.0, 10.0], dtype=np.float32))
    np.testing.assert_allclose(tm.tensor(x.grad).numpy(), [2.0, 20.0])


def test_backward_on_a_tensor_without_graph_is_an_error():
    with pytest.raises(ValueError, match="does not require grad"):
        tm.tensor(1.0).backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="int64"):
        tm.tensor([1, 2, 3], requires_grad=True)


def test_default_dtypes():
    assert tm.tensor([1.0, 2.0]).dtype == np.float32
    assert tm.tensor(np.zeros(2)).dtype == np.float64          # float64 kept when given
    assert tm.tensor([1, 2]).dtype == np.int64
    assert tm.zeros(2, 3).dtype == np.float32 and tm.zeros((2, 3)).shape == (2, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_through_forward_and_backward(dtype):
    x = tm.tensor(np.linspace(0.5, 2, 6, dtype=dtype).reshape(2, 3), requires_grad=True)
    w = tm.tensor(np.ones((3, 4), dtype=dtype), requires_grad=True)
    y = ((x @ w) * 2.5 + 1).log().mean(axis=0) / 3 - x.sum() ** 2
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype and w.grad.dtype == dtype


def test_python_numbers_do_not_upcast_float32():
    x = tm.tensor([1.0, 2.0])
    for y in (x + 1, 2.5 * x, x / 3.0, 1 - x, 2.0 / x, x ** 2):
        assert y.dtype == np.float32


def test_numpy_arrays_mix_with_tensors():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, tm.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(tm.tensor(x.grad).numpy(), [3.0, 4.0])


def test_detect_anomaly_names_the_op():
    x = tm.tensor([-1.0, 1.0], requires_grad=True)
    with tm.detect_anomaly():
        with pytest.raises(ValueError, match="forward of Log produced nan"):
            x.log()
    y = tm.tensor([0.0, 1.0], requires_grad=True)
    z = (y ** 0.5).sum()   # the forward is finite, the gradient 0.5 / sqrt(0) is inf
    with tm.detect_anomaly():
        with pytest.raises(ValueError, match="backward of Pow produced inf"):
            z.backward()


def test_item_and_numpy():
    x = tm.tensor([[2.5]])
    assert x.item() == 2.5 and isinstance(x.numpy(), np.ndarray)
    with pytest.raises(ValueError, match="one-element"):
        tm.tensor([1.0, 2.0]).item()


def test_repr_shows_grad_fn():
    x = tm.tensor([1.0], requires_grad=True)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<Mul>" in repr(x * 2)


def test_cast_is_differentiable():
    x = tm.tensor(np.array([1.0, 2.0]), requires_grad=True)     # float64
    y = x.to(dtype=np.float32) * 3.0
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(tm.tensor(x.grad).numpy(), [3.0, 3.0])


def test_manual_seed_reproduces_randn():
    tm.manual_seed(5)
    a = tm.randn(3, 2).numpy()
    tm.manual_seed(5)
    b = tm.randn(3, 2).numpy()
    np.testing.assert_array_equal(a, b)


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tm.tensor([1.0], device="tpu")


def test_cuda_without_cupy_says_how_to_install():
    # in a fresh Python where CuPy cannot be imported, whether or not this machine has it
    import subprocess
    import sys
    code = ("import sys; sys.modules['cupy'] = None\nimport tinymm as tm\n"
            "try:\n    tm.tensor([1.0], device='cpu').to('cuda')\nexcept RuntimeError as err:\n    print(err)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "TINYMM_DEVICE"})
    assert out.returncode == 0 and "pip install" in out.stdout, out.stderr


@pytest.mark.gpu
def test_mixing_devices_is_an_error():
    a = tm.tensor([1.0, 2.0], device="cpu")
    b = tm.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(ValueError, match="different devices"):
        a + b


@pytest.mark.gpu
def test_to_device_is_differentiable():
    x = tm.tensor([1.0, 2.0], requires_grad=True, device="cpu")
    y = (x.to("cuda") * 2.0).sum()
    y.backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_mixed_float_dtypes_are_an_error():
    a = tm.tensor(np.ones(2, dtype=np.float32))
    b = tm.tensor(np.ones(2, dtype=np.float64))
    with pytest.raises(TypeError, match="add: mixed float dtypes float32 and float64"):
        a + b
    with pytest.raises(TypeError, match="matmul: mixed float dtypes"):
        a @ b
    # integers and booleans mix with floats as in NumPy (masks, counts)
    assert (a * tm.tensor(np.array([1, 0]))).dtype == np.float32
