"""Lessons 01, 06 and 17 pass while other programs keep every core of the machine busy.

These three lessons talk about speed. What they assert is work, not wall-clock time: lines
of Python the interpreter runs, multiply-adds, calls of Functions. A busy machine makes them
slower but must never make them fail, so each one is run here in fast mode, as a learner
would run it (`python lessons/NN_topic.py`, like tests/test_lessons.py does), while one
busy-loop process per core (`python -c "while True: pass"`) competes for every core. The
busy processes are started by the test and killed when it ends, pass or fail.

`pytest -m lesson06` runs lesson 06's case here too.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = [
    pytest.param("01_tensors_and_backends.py", id="01_under_load", marks=pytest.mark.lesson01),
    pytest.param("06_convolution_and_pooling.py", id="06_under_load", marks=pytest.mark.lesson06),
    pytest.param("17_gpu_with_cupy.py", id="17_under_load", marks=pytest.mark.lesson17),
]


def cores():
    """The number of cores this process may run on (at least 2, so that a busy-loop always competes)."""
    try:
        return max(2, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return max(2, os.cpu_count() or 2)


@pytest.fixture
def busy_machine():
    """One busy-loop process per core while the test runs; killed afterwards, whatever happens."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores())]
    try:
        time.sleep(0.3)  # let them start spinning before the lesson does
        assert all(h.poll() is None for h in hogs), "a busy-loop process exited at once"
        yield hogs
    finally:
        for h in hogs:
            h.kill()
        for h in hogs:
            h.wait()


def tail(text, n_chars=3000):
    return text if len(text) <= n_chars else "..." + text[-n_chars:]


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_passes_while_every_core_is_busy(lesson, busy_machine, tmp_path):
    env = dict(os.environ, TINYMM_FAST="1", TINYMM_OUT=str(tmp_path), MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, f"lessons/{lesson}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    still_busy = [h.poll() is None for h in busy_machine]
    assert result.returncode == 0, (f"{lesson} failed while {len(busy_machine)} busy-loop processes ran\n"
                                    f"--- stdout (end) ---\n{tail(result.stdout, 1500)}\n"
                                    f"--- stderr (end) ---\n{tail(result.stderr)}")
    # the load was there from start to end of the lesson
    assert all(still_busy), f"{still_busy.count(False)} of the busy-loop processes stopped during the lesson"
    assert list(tmp_path.glob(f"{lesson[:2]}_*.png")), f"{lesson} saved no figure"
