"""Shared test setup.

The whole suite runs on the device named by TINYMM_DEVICE (cpu by default), so
`TINYMM_DEVICE=cuda pytest` runs the same tests on CuPy. Tests marked `gpu` need CuPy and a
GPU and skip cleanly without them.

Without a GPU, `TINYMM_STRICT_DEVICE=1 TINYMM_DEVICE=cuda pytest` runs the same suite on the
strict stand-in for CuPy in tests/strict_device: it is put first on the import path here, before
tinymm is imported, and on PYTHONPATH so that the lessons and commands the tests start use it too.
Without TINYMM_STRICT_DEVICE the real CuPy (if any) is used, unchanged.
"""
import os
import sys
from pathlib import Path

STRICT_DEVICE = os.environ.get("TINYMM_STRICT_DEVICE", "0") == "1"
if STRICT_DEVICE:
    _standin = str(Path(__file__).resolve().parent / "strict_device")
    if "cupy" in sys.modules and not sys.modules["cupy"].__file__.startswith(_standin):
        raise RuntimeError("TINYMM_STRICT_DEVICE=1, but the real CuPy was imported before the stand-in")
    sys.path.insert(0, _standin)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_standin, os.environ.get("PYTHONPATH")]))

import pytest  # noqa: E402

import tinymm as tm  # noqa: E402
from tinymm import backend  # noqa: E402


def pytest_report_header(config):
    where = "the strict CuPy stand-in (tests/strict_device)" if STRICT_DEVICE else "the real array libraries"
    return f"tinymm device: {tm.get_default_device()} on {where}"


def pytest_terminal_summary(terminalreporter):
    """On the stand-in: how much crossed between host and device in this process (a sign that
    the suite really ran on the 'GPU')."""
    standin = getattr(sys.modules.get("cupy"), "_strict", None) if STRICT_DEVICE else None
    if standin is not None:
        terminalreporter.write_line(f"strict CuPy stand-in: {standin.totals['copy']} host->device copies, "
                                    f"{standin.totals['read']} device->host reads in the test process")


@pytest.fixture(autouse=True)
def _seed():
    tm.manual_seed(0)
    yield


@pytest.fixture
def device():
    """The device under test ('cpu' unless TINYMM_DEVICE=cuda)."""
    return tm.get_default_device()


@pytest.fixture
def xp():
    """numpy or cupy, matching the device under test."""
    return backend.xp_for(tm.get_default_device())


def pytest_collection_modifyitems(config, items):
    if backend.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
