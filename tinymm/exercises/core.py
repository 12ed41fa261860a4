"""What an exercise is, how the learner's code is called, and what a check reports.

An ``Exercise`` names the functions a learner writes (its *slots*), the stub file that holds
them, the lesson section to reread, tinymm's reference for each slot, and a ``check``: a
function of the learner's code that either returns the list of checks passed or raises
``Finding`` with a message for the learner.

The learner's code is called through ``call_learner``, which turns their mistakes into
plain messages: an untouched slot (it still raises ``NotImplementedError``) becomes
``NotStarted``; any other exception becomes a ``Finding`` that quotes the line of their file
where it happened. Exceptions raised by tinymm itself are not caught here: a bug in the
checker keeps its traceback.
"""
import inspect
import itertools
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..linecount import python_lines


class Finding(Exception):
    """A check failed; ``str(finding)`` is the message shown to the learner.

    ``passed`` may carry the checks that passed before this one, to show them too.
    """

    def __init__(self, message, passed=()):
        super().__init__(message)
        self.passed = list(passed)


class NotStarted(Exception):
    """The learner has not written this slot yet (it still raises NotImplementedError)."""

    def __init__(self, slot):
        super().__init__(slot)
        self.slot = slot


@dataclass
class Wrong:
    """A deliberately wrong version of some slots, and words its failure message must contain.

    Used by the tests of the checker (tests/test_exercises.py): plugging ``slots`` in place of
    the reference must fail, with every string of ``expect`` in the message.
    """

    name: str
    slots: dict
    expect: tuple


@dataclass
class Exercise:
    """One coded exercise. See the package docstring for how to add one."""

    name: str          # what the learner types: python -m tinymm check linear
    lesson: str        # "04": python -m tinymm check 04 runs every exercise of lesson 04
    title: str         # one line for the list
    stub: str          # the file in lessons/exercises/ that the learner edits
    slots: tuple       # the functions the learner writes, in the order they should write them
    reread: str        # the lesson section to reread when a check fails
    check: object      # check(impl) -> list of passed checks (str); raises Finding / NotStarted
    reference: dict    # slot -> tinymm's answer, an adapter that calls the library
    answer: tuple      # library objects whose source ``--answer`` shows (inspect.getsource)
    wrong: list = field(default_factory=list)  # Wrong versions that must fail (for the tests)

    @property
    def lesson_marker(self):
        return f"lesson{self.lesson}"


@dataclass
class Result:
    """The outcome of checking one exercise."""

    exercise: Exercise
    status: str                                   # "passing", "failing" or "not started"
    passed: list = field(default_factory=list)    # the checks that passed, in words
    message: str = ""                             # why it is failing or not started

    @property
    def ok(self):
        return self.status == "passing"


def run_checks(exercise, impl):
    """Check ``impl`` (the learner's module, or any object with the slot functions)."""
    missing = [s for s in exercise.slots if not callable(getattr(impl, s, None))]
    if missing:
        return Result(exercise, "failing", message=(
            f"{exercise.stub} has no function {missing[0]}: keep the stub's function names "
            f"({', '.join(exercise.slots)}) and fill in their bodies."))
    try:
        passed = exercise.check(impl)
    except NotStarted as err:
        written = [s for s in exercise.slots if s != err.slot and not _untouched(impl, s)]
        if not written:
            return Result(exercise, "not started", message=(
                f"write {' and '.join(exercise.slots)} in lessons/exercises/{exercise.stub} "
                f"(each still raises NotImplementedError)"))
        return Result(exercise, "failing", message=(
            f"{err.slot} is not written yet (it still raises NotImplementedError): "
            f"fill it in in lessons/exercises/{exercise.stub}"))
    except Finding as finding:
        return Result(exercise, "failing", passed=finding.passed, message=str(finding))
    return Result(exercise, "passing", passed=list(passed))


def _untouched(impl, slot):
    """True when the slot's body still raises NotImplementedError (read from its source)."""
    fn = getattr(impl, slot)
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    try:
        return "raise NotImplementedError" in inspect.getsource(fn)
    except (OSError, TypeError):
        return False


def call_learner(slot, fn, *args):
    """Call the learner's ``fn``; their NotImplementedError means "not started", and any
    other exception of theirs becomes a one-paragraph Finding naming the line it came from."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotStarted(slot) from None
    except (Finding, NotStarted):
        raise
    except RecursionError as err:
        raise Finding(f"{slot} raised RecursionError: it went deeper than Python's limit of about "
                      f"{sys.getrecursionlimit():,} nested calls. A recursive function cannot walk a deep "
                      f"graph: use an explicit stack (a list) instead{_where(err, fn)}") from None
    except Exception as err:  # the learner's bug: say where, without a wall of traceback
        raise Finding(f"{slot} raised {type(err).__name__}: {err}{_where(err, fn)}") from None


def _where(err, fn):
    """' (at 04_linear.py line 37: dx = g @ W.T)' for the deepest frame in the learner's file."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", None)
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f"\n    at {Path(frame.filename).name} line {frame.lineno}: {(frame.line or '').strip()}"


def count_lines(slot, fn, *args):
    """How many lines of the learner's file run during fn(*args) (their helpers included).

    A function without a Python loop runs the same lines whatever the batch size; one that
    loops over the batch runs more lines for a bigger batch. Counting lines executed
    (``tinymm.linecount``) measures that directly, with no timing involved.
    """
    lines, _ = python_lines(call_learner, slot, fn, *args, only_file=fn.__code__.co_filename)
    return lines


def axis_order(mine, reference, axes=None):
    """The order of the reference's axes in which the learner's values come, or None.

    ``axes`` is the reference's shape, or a finer split of it such as (C, KH, KW, N, H_out, W_out)
    for cols. Every order is tried (at most 7 axes): if one, flattened, gives the learner's
    values, the learner reshaped without reordering the axes first (or reordered them wrongly)."""
    mine = np.asarray(mine, dtype=np.float64).reshape(-1)
    reference = np.asarray(reference, dtype=np.float64)
    axes = tuple(reference.shape if axes is None else axes)
    if mine.size != reference.size or len(axes) > 7:
        return None
    for order in itertools.permutations(range(len(axes))):
        if order != tuple(range(len(axes))) and np.allclose(
                mine, reference.reshape(axes).transpose(order).reshape(-1), rtol=1e-7, atol=1e-10):
            return order
    return None


def wrong_layout(mine, reference, axes=None, names=None):
    """Words for a result that holds the reference's values in other places, else ''
    (the sorted values agree); ``names`` name the axes of ``axes`` in the message."""
    flat = np.asarray(reference, dtype=np.float64).reshape(-1)
    mine_flat = np.asarray(mine, dtype=np.float64).reshape(-1)
    close = dict(rtol=1e-7, atol=1e-10)
    if mine_flat.size != flat.size or mine_flat.size < 2 or np.allclose(mine_flat, flat, **close):
        return ""
    if not np.allclose(np.sort(mine_flat), np.sort(flat), **close):
        return ""
    order = axis_order(mine, reference, axes)
    if order is None:
        return (" Every value of yours is one of tinymm's, in another place: check which pixel or row "
                "each index picks (a shift by one, or axes mixed up).")
    names = tuple(names or (f"axis {k}" for k in range(len(order))))
    return (f" Right numbers, wrong layout: yours holds tinymm's values with the axes in the order "
            f"({', '.join(names[k] for k in order)}), tinymm's are ({', '.join(names)}). Reorder the axes "
            f"(transpose before reshape): a reshape only regroups the values in the order they already have.")


def relative_error(mine, reference):
    """cs231n's elementwise |a − b| / max(1e-8, |a| + |b|), in float64 (as in gradcheck)."""
    from ..gradcheck import relative_error as rel
    return rel(np.asarray(mine, dtype=np.float64), np.asarray(reference, dtype=np.float64))


def worst(mine, reference):
    """(max relative error, worst index as a tuple, mine there, reference there)."""
    errors = relative_error(mine, reference)
    if errors.size == 0:
        return 0.0, (), 0.0, 0.0
    errors = np.where(np.isnan(errors), np.inf, errors)  # a NaN is the worst of all
    index = tuple(int(i) for i in np.unravel_index(int(errors.argmax()), errors.shape))
    value = float(errors[index])
    return value, index, float(np.asarray(mine)[index]), float(np.asarray(reference)[index])
