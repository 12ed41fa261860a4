"""The run folder itself: where it may be, who may write into it, what a killed write left.

Three rules keep a run folder honest:

- its name stays inside ``runs/``: ``--name`` is one plain folder name, never a path;
- it has one writer at a time: ``train`` holds ``.lock`` (its PID and host) while it works, so
  two trainings never mix their weights, config and metrics in one folder;
- temporary files of an interrupted atomic write (``*.tmp``) are swept away when a training
  starts, since nobody else can be writing them while we hold the lock.
"""
import contextlib
import os
import socket
from pathlib import Path

from ..errors import UserError

LOCK_NAME = ".lock"


def check_run_name(name):
    """Refuse a run name that is not one plain folder name (it would leave ``runs/``)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or os.sep in name \
            or (os.altsep and os.altsep in name):
        raise UserError(f"train: the run name (--name) must be one plain folder name inside runs/, "
                        f"got {name!r}; to train elsewhere, give --run-dir")
    return name


def check_run_dir(run_dir):
    """A run folder is a folder: refuse a path that is an existing file."""
    if Path(run_dir).exists() and not Path(run_dir).is_dir():
        raise UserError(f"train: {run_dir} is a file, not a folder; give --run-dir a folder "
                        f"(it is created when missing)")


def check_resumable(run_dir):
    """``--resume`` needs a run to continue: a folder with its config.json."""
    if not (Path(run_dir) / "config.json").is_file():
        raise UserError(f"train --resume: {run_dir} holds no run to continue (no config.json); "
                        f"check the folder name, or leave out --resume to start a new run")


def _holder(lock_path):
    """(pid, host) written in a lock file; (None, None) when it cannot be read."""
    try:
        pid, host = lock_path.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None, None


def _alive(pid):
    """Is a process with this PID running on this machine?"""
    try:
        os.kill(pid, 0)   # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, but belongs to someone else
        return True
    return True


def _try_create(lock_path, me):
    """Create the lock file only if none exists (atomic); -> True when it is ours now."""
    try:
        fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(me)
    return True


@contextlib.contextmanager
def run_lock(run_dir):
    """Hold ``run_dir/.lock`` for the duration of the ``with`` block: one writer per run folder.

    A lock whose process is still alive stops us with a UserError naming its PID. A lock left
    by a process that died (killed, power cut) on this host is taken over with a note. The
    lock is removed when the block ends, also on an error or Ctrl-C.
    """
    run_dir = Path(run_dir)
    lock_path = run_dir / LOCK_NAME
    host = socket.gethostname()
    me = f"{os.getpid()} {host}\n"
    if not _try_create(lock_path, me):
        pid, their_host = _holder(lock_path)
        if pid is None or their_host != host or _alive(pid):
            who = "an unknown process" if pid is None else f"process {pid} on {their_host}"
            raise UserError(f"train: {run_dir} is in use by {who} (its {LOCK_NAME}); wait for that "
                            f"training to end or use another --name; if none is running, delete "
                            f"{lock_path}")
        # the holder died without cleaning up: its lock means nothing any more
        print(f"note: taking over {lock_path}, left by process {pid}, which is no longer running")
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock_path)
        if not _try_create(lock_path, me):   # another training took it over first
            raise UserError(f"train: {run_dir} was just taken by another training; wait for it "
                            f"to end or use another --name")
    try:
        yield lock_path
    finally:
        if _holder(lock_path) == (os.getpid(), host):   # never remove someone else's lock
            os.remove(lock_path)


def remove_stale_temporaries(run_dir):
    """Delete ``*.tmp`` files (killed atomic writes) in the run folder; -> how many.

    Call it only while holding the run's lock: then no other process is writing them.
    """
    stale = [p for p in Path(run_dir).rglob("*.tmp") if p.is_file() and not p.is_symlink()]
    for path in stale:
        os.remove(path)
    if stale:
        print(f"note: removed {len(stale)} temporary file(s) left in {run_dir} by an interrupted write")
    return len(stale)
