"""cupy.cuda in miniature: devices, streams, events and memory pools that do nothing but count.

``synchronize`` is counted as a read: on a GPU it makes the CPU wait for every queued kernel.
The number of GPUs comes from TINYMM_STRICT_DEVICE_COUNT (default 1), so tests can try zero.
"""
import time

from .. import _strict
from .._namespace import _MemoryPool, get_default_memory_pool, get_default_pinned_memory_pool
from . import runtime

MemoryPool = PinnedMemoryPool = _MemoryPool


def is_available():
    return _strict.device_count() > 0


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if not 0 <= self.id < max(_strict.device_count(), 1):
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    compute_capability = property(lambda self: "80")

    def synchronize(self):
        _strict.note("read", "Device.synchronize")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id}>"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0

    def synchronize(self):
        _strict.note("read", "Stream.synchronize")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream.null


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        _strict.note("read", "Event.synchronize")

    @property
    def done(self):
        return True


def get_elapsed_time(start_event, end_event):
    """Milliseconds between two recorded events."""
    _strict.note("read", "get_elapsed_time")
    return 1000.0 * (end_event.time - start_event.time)


__all__ = ["Device", "Stream", "Event", "runtime", "get_current_stream", "get_elapsed_time", "is_available",
           "MemoryPool", "PinnedMemoryPool", "get_default_memory_pool", "get_default_pinned_memory_pool"]
