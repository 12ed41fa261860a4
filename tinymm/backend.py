"""The one place that chooses between NumPy (CPU) and CuPy (GPU).

Every other file in tinymm asks this module for its array module with
``xp = get_array_module(array)`` and then writes ``xp.exp``, ``xp.zeros``... so the
same line of code runs on both devices. CuPy is imported lazily: importing tinymm
never needs it, and asking for ``"cuda"`` without it is a clear error.

Devices are named like PyTorch's: ``"cpu"`` (NumPy arrays) and ``"cuda"`` (CuPy arrays).
The default device comes from ``set_default_device`` or, at import time, from the
environment variable ``TINYMM_DEVICE``.
"""
import ctypes
import os
import platform
import sys

import numpy as np

from .errors import DeviceError, UserError

DEVICES = ("cpu", "cuda")
DEFAULT_FLOAT = np.float32

_cupy = None  # the cupy module once it has been imported successfully
_default_device = None


def _import_cupy():
    """Import CuPy on first use, with an error that says how to get it."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
            n_gpus = cupy.cuda.runtime.getDeviceCount()  # fails when there is no usable GPU
        except Exception as err:  # ImportError, or a CUDA runtime error without a GPU
            raise DeviceError(
                "device 'cuda' needs CuPy and an NVIDIA GPU. Install the wheel that matches "
                "your CUDA driver, e.g. pip install -e \".[gpu]\" (cupy-cuda12x) or "
                f"pip install cupy-cuda13x. The import failed with: {err!r}"
            ) from err
        if n_gpus < 1:
            raise DeviceError("device 'cuda' needs an NVIDIA GPU, but CuPy sees none "
                              "(check nvidia-smi and CUDA_VISIBLE_DEVICES), or use device 'cpu'")
        _cupy = cupy
    return _cupy


def _loaded_cupy():
    """The cupy module if anyone has imported it (tinymm or the user), else None.

    An array can only be a CuPy array if CuPy is loaded, so this never imports it: a user who
    made a CuPy array before tinymm first needed CuPy still gets it recognised.
    """
    return _cupy if _cupy is not None else sys.modules.get("cupy")


def _is_cupy_array(obj):
    cupy = _loaded_cupy()
    return cupy is not None and isinstance(obj, cupy.ndarray)


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    try:
        _import_cupy()
        return True
    except RuntimeError:
        return False


def check_device(device, op="device"):
    """Return a valid device name or raise a UserError (a ValueError) naming the choices."""
    if device is None:
        return get_default_device()
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        raise UserError(f"{op}: unknown device {device!r}; use 'cpu' or 'cuda'")
    return device.split(":")[0]


def set_default_device(device):
    """Choose where new tensors and parameters live: 'cpu' or 'cuda'."""
    global _default_device
    device = check_device(device, "set_default_device")
    if device == "cuda":
        _import_cupy()
    _default_device = device


def get_default_device():
    global _default_device
    if _default_device is None:
        _default_device = check_device(os.environ.get("TINYMM_DEVICE", "cpu"), "TINYMM_DEVICE")
        if _default_device == "cuda":
            _import_cupy()
    return _default_device


def device_of(array):
    """'cpu' for a NumPy array (or a Python number), 'cuda' for a CuPy array."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return "cpu"
    if _is_cupy_array(array):
        return "cuda"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")


def on_gpu(obj):
    """True for a CuPy array (data on the GPU); False for NumPy arrays, lists and numbers (host data)."""
    return _is_cupy_array(obj)


def is_array(obj):
    """True for a NumPy or CuPy ndarray."""
    return isinstance(obj, np.ndarray) or _is_cupy_array(obj)


def get_array_module(*arrays):
    """The module (numpy or cupy) that owns these arrays. Plain Python values count as NumPy."""
    for a in arrays:
        if _is_cupy_array(a):
            return _loaded_cupy()
    return np


def xp_for(device):
    """The array module for a device name."""
    return _import_cupy() if check_device(device) == "cuda" else np


def to_device(array, device):
    """Move an array to a device (a no-op when it is already there)."""
    device = check_device(device)
    if device == "cuda":
        return _import_cupy().asarray(array)
    if _is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def to_numpy(array):
    """A NumPy array with the same values (copied off the GPU if needed)."""
    return to_device(array, "cpu")


def scatter_add(target, indices, values):
    """``target[indices] += values`` where repeated indices all add up (unbuffered).

    Plain ``target[idx] += v`` keeps only one of the repeated writes; embedding and
    indexing backward passes need every one of them to count.
    """
    if isinstance(target, np.ndarray):
        np.add.at(target, indices, values)
    else:
        import cupyx
        cupyx.scatter_add(target, indices, values)
    return target


def synchronize(device=None):
    """Wait for queued GPU work to finish (for honest timings); a no-op on CPU."""
    if check_device(device) == "cuda":
        _import_cupy().cuda.Device().synchronize()


# ----------------------------------------------------------------------------------------------
# Random numbers for initialisation and data. They are drawn from one NumPy generator and then
# moved, so a seed gives the same weights on CPU and GPU.

_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seed tinymm's generator (weights, randn, dropout masks) for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)


def get_rng():
    """The NumPy generator behind every random draw in tinymm."""
    return _rng


# ----------------------------------------------------------------------------------------------
# One allocator setting, for speed on Linux. Switch it off with TINYMM_MALLOC_TUNING=0.

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameter numbers from glibc's <malloc.h>


def tune_malloc():
    """Let the C allocator keep freed memory for the next training step. Linux (glibc) only.

    Every training step allocates and frees the same large arrays (im2col columns,
    activations, gradients). By default glibc's malloc takes each large block fresh from the
    operating system and hands it back on free, so the next step pays a page fault for every
    4 KiB page of it again (benchmarks/README.md has the measured cost). Two
    settings stop that: M_MMAP_MAX = 0 (take large blocks from the heap like small ones) and
    M_TRIM_THRESHOLD = 1 GiB (do not shrink the heap after a free). The price: a process
    keeps memory it freed for reuse (peak memory itself did not grow in our measurements).

    Called once when tinymm is imported, unless the environment variable
    TINYMM_MALLOC_TUNING is 0. Returns True when the settings were applied.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


MALLOC_TUNED = os.environ.get("TINYMM_MALLOC_TUNING", "1") != "0" and tune_malloc()
