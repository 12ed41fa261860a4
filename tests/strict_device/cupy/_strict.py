"""The stand-in's own bookkeeping: every device->host read and host->device copy, with its line.

Not part of CuPy's interface (a leading underscore): tests reach it as ``cupy._strict`` after
checking that it exists, so the same tests skip these checks on a real GPU.

Reads are what make a GPU program wait: the CPU stops until every queued kernel has run, so the
value can be copied back. Copies host->device are cheaper but still cost a transfer each.
"""
import contextlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_STANDIN = os.path.dirname(_HERE)  # tests/strict_device: frames inside it are not "callers"


class Transfer:
    """One event: kind is 'read' (device->host) or 'copy' (host->device)."""

    __slots__ = ("kind", "what", "shape", "where")

    def __init__(self, kind, what, shape, where):
        self.kind, self.what, self.shape, self.where = kind, what, shape, where

    def __repr__(self):
        return f"{self.kind} {self.what} {self.shape} at {self.where}"


class Log:
    """The transfers recorded while a ``recording()`` block was open."""

    def __init__(self):
        self.events = []

    @property
    def reads(self):
        return [e for e in self.events if e.kind == "read"]

    @property
    def copies(self):
        return [e for e in self.events if e.kind == "copy"]

    def __repr__(self):
        return f"Log({len(self.reads)} reads, {len(self.copies)} copies)"


_logs = []          # the open recordings (nested blocks each see every event)
totals = {"read": 0, "copy": 0}  # since the process started


def _inside_standin(filename):
    """Frames of the stand-in, and of tinymm/backend.py: the door every transfer of tinymm goes
    through, so the line reported is the one that asked for the transfer."""
    if filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    return path.startswith(_STANDIN + os.sep) or path.endswith(os.path.join("tinymm", "backend.py"))


def _caller():
    """'file.py:line in function' of the first frame outside the stand-in (and tinymm/backend.py)."""
    frame = sys._getframe(2)
    while frame is not None and _inside_standin(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.relpath(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"


def note(kind, what, shape=()):
    totals[kind] += 1
    if _logs:
        event = Transfer(kind, what, tuple(shape), _caller())
        for log in _logs:
            log.events.append(event)


@contextlib.contextmanager
def recording():
    """``with cupy._strict.recording() as log:`` collects every transfer made inside the block."""
    log = Log()
    _logs.append(log)
    try:
        yield log
    finally:
        _logs.remove(log)


def device_count():
    """How many GPUs the stand-in pretends to have: TINYMM_STRICT_DEVICE_COUNT, default 1."""
    return int(os.environ.get("TINYMM_STRICT_DEVICE_COUNT", "1"))


__all__ = ["recording", "note", "totals", "device_count", "Log", "Transfer"]
