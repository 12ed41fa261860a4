"""The strict CuPy stand-in (tests/strict_device) refuses what CuPy 13.6 refuses and counts transfers.

Without a GPU, `TINYMM_STRICT_DEVICE=1 TINYMM_DEVICE=cuda pytest` runs the whole suite on this
stand-in, so it is only worth something if it fails where CuPy fails. These tests prove that,
and they run in every mode: the stand-in is imported here under its package name, next to
whatever `cupy` the run uses. Two tests start a fresh Python with the stand-in as `cupy`.
"""
import json
import os
import shutil
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


def test_only_numbers_and_booleans_go_to_the_device():
    with pytest.raises(ValueError, match="Unsupported dtype"):
        cp.asarray(["a small red circle"])
    assert cp.asarray([True, False]).dtype == np.bool_


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
        repr(a); f"{a[0]}"; a[a > 1]; a.nonzero(); cp.unique(a); cp.where(a > 2); cp.cuda.Device().synchronize()
        cp.asarray(np.ones(2)); cp.array([1, 2]); a[[0, 1]]
    reads = [e.what for e in log.reads]
    assert reads == ["get", "item", "float", "bool", "int", "repr", "format", "getitem boolean mask",
                     "nonzero", "unique", "nonzero", "Device.synchronize"]
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
        "e = cupy.asarray(np.eye(3, dtype=np.float32))\n"
        "import tinymm as tm\nfrom tinymm import backend, metrics\n"
        "t = tm.tensor(a)\n"
        "print(backend.get_array_module(a) is cupy, backend.device_of(a), t.device,\n"
        "      backend.to_numpy(a).tolist(), (tm.tensor([1.0, 2.0, 3.0], device='cuda') * np.ones(3, np.float32)).device,\n"
        "      metrics.retrieval_metrics(e, e, ['a', 'b', 'c'])['i2t_r1'])\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "cuda", "cuda", "[0.0,", "1.0,", "2.0]", "cuda", "1.0"]


# ----------------------------------------------------------------------------------------------
# The command line on the stand-in's "cuda": the same numbers as on the CPU, and the device rules


def _python(args, standin=True, no_cupy=False, **env):
    """Run ``python ARGS`` in a fresh process: with the stand-in as ``cupy``, or with no CuPy at all."""
    path = [str(STANDIN), str(ROOT)] if standin else [str(ROOT)]
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), MPLBACKEND="Agg", **env)
    full_env.pop("TINYMM_DEVICE", None)
    if no_cupy:  # as on a laptop without CuPy, even where CuPy is installed
        args = ["-c", "import runpy, sys; sys.modules['cupy'] = None; sys.argv = sys.argv[1:]; "
                      "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)", *args]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """The same tiny run trained and used through the CLI on "cpu" and on the stand-in's "cuda"."""
    results = {}
    for device in ("cpu", "cuda"):
        work = tmp_path_factory.mktemp(device)
        out = _python([str(STANDIN / "cli_outputs.py"), device, str(work)])
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout)
        for o in result["outputs"].values():
            o["out"] = o["out"].replace(str(work), "WORK")
        results[device] = (result, np.load(work / "generated.npy"), work)
    return results


def _same_text_and_numbers(cpu, gpu, what):
    """The same words, and numbers equal to the printed precision (float32 rounding can move the
    last printed digit by one)."""
    a, b = cpu.split(), gpu.split()
    assert len(a) == len(b), f"{what}:\n{cpu}\n---\n{gpu}"
    for x, y in zip(a, b):
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            assert x == y, f"{what}: {x!r} != {y!r}\n{cpu}\n---\n{gpu}"
            continue
        assert fy == pytest.approx(fx, rel=1e-4, abs=1.01e-3), f"{what}: {x} != {y}"


def test_every_command_gives_the_cpus_numbers_on_cuda(cli_runs):
    (cpu, cpu_images, _), (gpu, gpu_images, _) = cli_runs["cpu"], cli_runs["cuda"]
    assert (cpu["device_saved"], gpu["device_saved"]) == ("cpu", "cuda")
    for name, c in cpu["outputs"].items():
        g = gpu["outputs"][name]
        assert c["code"] == g["code"] == 0, (name, c["err"], g["err"])
        if name == "gradcheck":  # relative errors near 1e-10 are rounding noise: compare the verdicts
            assert c["out"].splitlines()[-1] == g["out"].splitlines()[-1]
            assert c["out"].splitlines()[-1].endswith(" 0 failed")
            assert [line.split()[-1] for line in c["out"].splitlines()[1:-2]] == \
                   [line.split()[-1] for line in g["out"].splitlines()[1:-2]]
        else:
            _same_text_and_numbers(c["out"], g["out"], name)
    np.testing.assert_allclose(gpu_images, cpu_images, rtol=1e-4, atol=1e-5)
    assert cpu_images.shape == (2, 3, 32, 32)
    for split, values in cpu["metrics"].items():
        for key, value in values.items():
            if isinstance(value, float) and "seconds" not in key:
                assert gpu["metrics"][split][key] == pytest.approx(value, rel=1e-4, abs=1e-5), (split, key)


def test_a_run_trained_on_cuda_opens_on_a_machine_without_cupy(cli_runs):
    (cpu, _, _), (_, _, gpu_work) = cli_runs["cpu"], cli_runs["cuda"]
    run_dir = gpu_work / "run"
    out = _python(["tinymm", "caption", str(gpu_work / "scene0.png"), str(gpu_work / "scene1.png"),
                   "--run", str(run_dir)], standin=False, no_cupy=True)
    assert out.returncode == 0, out.stderr
    note, *captions = out.stdout.splitlines()
    assert note == (f"load_run: {run_dir} was trained on cuda; opened on cpu, the default device "
                    f"(pass device='cuda' or --device cuda to change it)")
    assert "\n".join(captions).replace(str(gpu_work), "WORK") == cpu["outputs"]["caption"]["out"].strip()


def test_a_resumed_run_keeps_its_device_unless_asked(cli_runs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(cli_runs["cuda"][2] / "run", run_dir)
    out = _python(["-m", "tinymm", "train", "--run-dir", str(run_dir), "--resume", "--stages", "clip"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0] == "continuing on cuda (the run's device; --device changes it)"
    assert json.loads((run_dir / "config.json").read_text())["device"] == "cuda"
    # without CuPy the same command says what to do, in one line, and changes nothing
    out = _python(["tinymm", "train", "--run-dir", str(run_dir), "--resume", "--stages", "clip"],
                  standin=False, no_cupy=True)
    assert out.returncode == 2 and out.stderr == (
        f"error: train: the run in {run_dir} was trained on cuda, but CuPy or a GPU is missing here; "
        f"continue it on the CPU with --device cpu\n")
    assert json.loads((run_dir / "config.json").read_text())["device"] == "cuda"


@pytest.mark.parametrize("how", ["no CuPy", "zero GPUs"])
def test_device_cuda_without_a_gpu_is_one_line_of_error(cli_runs, how):
    run_dir = cli_runs["cpu"][2] / "run"
    args = ["-m", "tinymm", "generate", "a large blue square", "--run", str(run_dir), "--device", "cuda"]
    if how == "no CuPy":
        out = _python(args[1:], standin=False, no_cupy=True)
        expected = "needs CuPy and an NVIDIA GPU"
    else:
        out = _python(args, TINYMM_STRICT_DEVICE_COUNT="0")
        expected = "CuPy sees none"
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: ") and expected in out.stderr
