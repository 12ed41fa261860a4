"""``python -m tinymm check``: the learner's view of the exercises.

    python -m tinymm check              every exercise with its status
    python -m tinymm check linear       run one exercise's checks (or a lesson: check 04)
    python -m tinymm check linear --answer   then show tinymm's own code for it

Exit status: 0 when what was checked passes (the list: always 0), 1 when something is failing
or not started, 2 for a usage mistake (no such exercise, no stubs folder).

``--answer`` on an exercise not started yet prints the answer after a one-line note rather than
refusing: the learner typed --answer, which is asking, and a refusal (or a second --answer) would
only add a step between them and what they chose to read. The note makes the choice visible.
"""
import inspect
import os
import sys
import textwrap
from pathlib import Path

from ..errors import UserError
from .catalog import EXERCISES, find, next_after
from .core import Finding, Result, run_checks
from .loader import find_dir, load_stub

WIDTH = 100


def check_exercise(exercise, folder):
    """Load the learner's stub for ``exercise`` from ``folder`` and run its checks."""
    try:
        module = load_stub(Path(folder) / exercise.stub)
    except Finding as finding:
        return Result(exercise, "failing", message=str(finding))
    return run_checks(exercise, module)


def main(name=None, answer=False, folder=None, out=print):
    """Run the command; return the exit status. A usage mistake raises UserError.

    Output piped into a program that stops reading (``| head -3``) ends the command quietly."""
    try:
        return _main(name, answer, folder, out)
    except BrokenPipeError:
        if out is print:  # stdout is gone: point it at devnull so that Python's exit flush is silent
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(name, answer, folder, out):
    folder = find_dir(folder)
    if name is None:
        return _list(folder, out)
    chosen = find(name)
    if not chosen:
        names = ", ".join(ex.name for ex in EXERCISES)
        if name.strip().isdigit():
            lessons = ", ".join(sorted({ex.lesson for ex in EXERCISES}))
            raise UserError(f"check: lesson {name} has no coded exercise; lessons with exercises: {lessons}")
        raise UserError(f"check: no exercise called {name!r}; choose one of {names} (or a lesson number)")
    status, results = 0, []
    for k, exercise in enumerate(chosen):
        if k:
            out("")
        result = check_exercise(exercise, folder)
        if answer and result.status == "not started":
            out(f"Note: you have not tried {exercise.name} yet; the answer follows.")
        shown_next = chosen[k + 1] if k + 1 < len(chosen) else None
        _report(result, folder, out, answer, shown_next)
        if answer:
            _answer(exercise, out)
        results.append(result)
        status = status or (0 if result.ok else 1)
    if len(chosen) > 1:
        counts = [sum(r.status == s for r in results) for s in ("passing", "failing", "not started")]
        out(f"\nlesson {chosen[0].lesson}: {counts[0]} passing, {counts[1]} failing, {counts[2]} not started "
            f"(of {len(chosen)} exercises).")
    return status


def _list(folder, out):
    results = [check_exercise(ex, folder) for ex in EXERCISES]
    out(f"tinymm exercises: stubs in {_shown(folder)}/\n")
    width = max(len(ex.name) for ex in EXERCISES)
    out(f"{'lesson':<7} {'exercise':<{width}}  {'status':<12} file")
    for r in results:
        ex = r.exercise
        out(f"{ex.lesson:<7} {ex.name:<{width}}  {r.status:<12} {ex.stub}")
    counts = {s: sum(r.status == s for r in results) for s in ("passing", "failing", "not started")}
    out(f"\n{counts['passing']} passing, {counts['failing']} failing, {counts['not started']} not started.")
    out("Check one and see what is wrong: python -m tinymm check NAME   (or a lesson: python -m tinymm check 04)")
    return 0


def _report(result, folder, out, answer=False, shown_next=None):
    """One exercise's checks; ``shown_next`` is the exercise printed right below, if any."""
    ex = result.exercise
    out(f"{ex.name} (lesson {ex.lesson}): {ex.title}")
    out(f"  your file: {_shown(Path(folder) / ex.stub)}")
    for line in result.passed:
        out(f"  ok   {line}")
    if result.ok:
        out("PASSING: every check agrees with tinymm.")
        if not answer:
            out(f"  Compare with tinymm's own code: python -m tinymm check {ex.name} --answer")
        following = next_after(ex)
        if following is None:
            out("  That was the last exercise: well done.")
        elif following is not shown_next:  # else its checks are printed right below
            out(f"  Next: {following.name} (lesson {following.lesson}), {following.title}.")
            out(f"        Edit {_shown(Path(folder) / following.stub)}, then: "
                f"python -m tinymm check {following.name}")
        return
    label = "NOT STARTED" if result.status == "not started" else "FAILING"
    if "\n" in result.message:  # a message laid out in lines (e.g. quoting the learner's code)
        out(f"{label}: {result.message}")
    else:
        out(textwrap.fill(result.message, WIDTH, initial_indent=f"{label}: ", subsequent_indent="  ",
                          break_long_words=False))


def _answer(exercise, out):
    out(f"\ntinymm's answer for {exercise.name} (the library's own code):")
    for obj in exercise.answer:
        lines, start = inspect.getsourcelines(obj)
        out(f"\n--- {_shown(Path(inspect.getsourcefile(obj)))}, line {start} ---")
        out("".join(lines).rstrip())


def _shown(path):
    """A path relative to the current folder when it is inside it (shorter to read)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
