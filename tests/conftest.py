"""Shared test setup.

The whole suite runs on the device named by TINYMM_DEVICE (cpu by default), so
`TINYMM_DEVICE=cuda pytest` runs the same tests on CuPy. Tests marked `gpu` need CuPy and a
GPU and skip cleanly without them.
"""
import pytest

import tinymm as tm
from tinymm import backend


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
