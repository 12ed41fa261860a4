"""cupy.cuda.runtime in miniature."""
from .. import _strict


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    """The number of GPUs the stand-in pretends to have (TINYMM_STRICT_DEVICE_COUNT, default 1)."""
    return _strict.device_count()


def getDevice():
    return 0


def deviceSynchronize():
    _strict.note("read", "deviceSynchronize")


is_hip = False
