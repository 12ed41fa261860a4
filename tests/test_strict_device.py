"""The strict CuPy stand-in (tests/strict_device) refuses what CuPy 13.6 refuses and counts transfers.

Without a GPU, `TINYMM_STRICT_DEVICE=1 TINYMM_DEVICE=cuda pytest` runs the whole suite on this
stand-in, so it is only worth something if it fails where CuPy fails. These tests prove that,
and they run in every mode: the stand-in is imported here under its package name, next to
whatever `cupy` the run uses. Two tests start a fresh Python with the stand-in as `cupy`.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import strict_device.cupy as cp
from strict_device.cupy import _strict
from strict_device.cupy._names import CUPY_VERSION, NAMES

STANDIN = Path(__file__).resolve().parent / "strict_device"
ROOT = Path(__file__).resolve().parent.parent


def test_implicit_conversion_to_numpy_is_refused_as_in_cupy():
    a = cp.arange(3.0)
    for convert in (np.asarray, np.array, lambda x: np.float64(1.0) * np.ones(3) + np.asarray(x)):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            convert(a)
    np.testing.assert_array_equal(a.get(), [0.0, 1.0, 2.0])  # the explicit way out
    np.testing.assert_array_equal(cp.asnumpy(a), [0.0, 1.0, 2.0])


@pytest.mark.parametrize("mix", [
    lambda d, h: d + h, lambda d, h: h + d, lambda d, h: d * h, lambda d, h: h @ d,
    lambda d, h: np.add(d, h), lambda d, h: np.maximum(h, d), lambda d, h: cp.exp(h),
    lambda d, h: np.concatenate([d, h]), lambda d, h: cp.where(d > 0, h, d),
    lambda d, h: d + np.asarray(1.0),  # even a 0-d NumPy array is host memory
], ids=["d+h", "h+d", "d*h", "h@d", "np.add", "np.maximum", "cupy.exp(h)", "concatenate", "where", "0-d"])
def test_host_and_device_arrays_do_not_mix(mix):
    with pytest.raises(TypeError, match="Unsupported type|Implicit conversion"):
        mix(cp.ones(3), np.ones(3))


def test_python_and_numpy_scalars_mix_with_device_arrays():
    a = cp.arange(3, dtype=np.float32)
    for b in (a + 2.0, 2 * a, a / np.float32(2), 1 - a, a ** 2):
        assert isinstance(b, cp.ndarray) and b.dtype == np.float32
    assert (a < np.asarray(1.5)).get().tolist() == [True, True, False]  # CuPy's comparison workaround


def test_only_cupys_names_exist_and_numpy_functions_dispatch_to_them():
    assert CUPY_VERSION == "13.6.0" and len(NAMES) > 400
    for name in ("errstate", "nanpercentile", "add_docstring", "lib", "ma"):  # NumPy has them, CuPy 13.6 not
        assert name not in NAMES and not hasattr(cp, name)
    a = cp.arange(6.0).reshape(2, 3)
    for result in (np.exp(a), np.sum(a, axis=0), np.concatenate([a, a]), np.linalg.norm(a, axis=1),
                   np.moveaxis(a, 0, 1), np.take_along_axis(a, cp.zeros((2, 1), dtype=np.int64), 1)):
        assert isinstance(result, cp.ndarray)
    with pytest.raises(TypeError, match="no implementation found for 'numpy.nanpercentile'"):
        np.nanpercentile(a, 50)


def test_reductions_return_0d_device_arrays_not_numbers():
    a = cp.arange(4.0)
    for r in (a.sum(), a.max(), np.mean(a), cp.argmax(a), (a > 1).any(), cp.allclose(a, a)):
        assert isinstance(r, cp.ndarray) and r.ndim == 0


def test_out_of_range_index_arrays_wrap_instead_of_raising():
    a = cp.arange(10.0, 13.0)
    assert a[cp.asarray([3, -4, 5])].get().tolist() == [10.0, 12.0, 12.0]
    assert cp.take(a, cp.asarray([4])).get().tolist() == [11.0]
    b = cp.zeros(3)
    b.scatter_add(cp.asarray([0, 3, 3]), 1.0)  # what cupyx.scatter_add calls; repeats add up
    assert b.get().tolist() == [3.0, 0.0, 0.0]
    with pytest.raises(IndexError):  # a plain integer is checked on the host, as in CuPy
        a[3]


def test_every_read_back_and_copy_is_counted_with_its_line():
    a = cp.arange(5.0)
    with _strict.recording() as quiet:
        b = cp.exp(a) * 2 + a.sum()
        b[cp.asarray(1) if False else 1:3] = 0.0
        del b
    assert quiet.events == []  # device work alone makes no transfer
    with _strict.recording() as log:
        a.get(); a.item(1) if False else a[1].item(); float(a.sum()); bool(a[0] > 0); int(a.argmax())
        repr(a); f"{a[0]}"; a[a > 1]; a.nonzero(); cp.unique(a); cp.cuda.Device().synchronize()
        cp.asarray(np.ones(2)); cp.array([1, 2]); a[[0, 1]]
    reads = [e.what for e in log.reads]
    assert reads == ["get", "item", "float", "bool", "int", "repr", "format", "getitem boolean mask",
                     "nonzero", "unique", "Device.synchronize"]
    assert [e.what for e in log.copies] == ["asarray", "asarray", "getitem index"]
    here = Path(__file__).name
    assert all(e.where.split(":")[0].endswith(here) for e in log.events), log.events


def test_a_device_array_is_not_a_numpy_array_for_isinstance_or_pickling_shortcuts():
    a = cp.ones((2, 2))
    assert not isinstance(a, np.ndarray) and a.shape == (2, 2) and a.T.shape == (2, 2)
    assert cp.get_array_module(a) is cp and cp.get_array_module(np.ones(1)) is np


def _standin_python(code, **env):
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(STANDIN), str(ROOT)]), **env)
    full_env.pop("TINYMM_DEVICE", None)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                          timeout=120)


def test_tinymm_sees_zero_gpus_as_no_cuda():
    out = _standin_python("import tinymm as tm; print(tm.cuda_available())\n"
                          "try:\n    tm.tensor([1.0], device='cuda')\nexcept RuntimeError as e:\n    print(e)",
                          TINYMM_STRICT_DEVICE_COUNT="0")
    assert out.returncode == 0, out.stderr
    available, message = out.stdout.splitlines()
    assert available == "False" and "CuPy sees none" in message


def test_tinymm_recognises_cupy_arrays_made_before_it_imported_cupy():
    out = _standin_python(
        "import cupy, numpy as np\n"
        "a = cupy.arange(3.0)\n"                     # made before tinymm ever imported CuPy
        "import tinymm as tm\nfrom tinymm import backend, metrics\n"
        "t = tm.tensor(a)\n"
        "print(backend.get_array_module(a) is cupy, backend.device_of(a), t.device,\n"
        "      backend.to_numpy(a).tolist(), (tm.tensor([1.0, 2.0, 3.0], device='cuda') * np.ones(3, np.float32)).device)\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "cuda", "cuda", "[0.0,", "1.0,", "2.0]", "cuda"]
