"""Coded exercises: the learner writes a backward, tinymm's own gradient checks grade it.

For learners: the stubs are in ``lessons/exercises/`` (see its README.md); run
``python -m tinymm check`` for the list and ``python -m tinymm check NAME`` for one exercise.

For maintainers, how it fits together (one job per file):

    core.py      Exercise, Wrong, Result; Finding (a failed check, with the learner's message)
                 and NotStarted; call_learner (their exceptions -> messages naming their line);
                 count_lines (tinymm.linecount: lines of their file run, for the batch-loop check);
                 wrong_layout / axis_order (the right values in other places: a missing transpose)
    opcheck.py   op_exercise(...): the standard checks of an op written on NumPy arrays
                 (forward vs reference, backward shapes/None/count, inputs not mutated,
                 tinymm.gradcheck per input, vs tinymm's backward, float32 kept, no batch loop)
    loader.py    find the stubs folder; load a stub as a fresh module
    catalog.py   EXERCISES (sorted by lesson) and find(name or lesson number)
    cli.py       the ``check`` command (list, one exercise or a lesson, --answer)
    lessonNN.py  the exercises of lesson NN: reference adapters, inputs, wrong versions

Adding an exercise
------------------
1. The stub ``lessons/exercises/NN_name.py``: a docstring (what to write, shapes, the formula's
   starting point, the lesson section), ``import numpy as np`` and nothing that gives the
   answer away, and for each function the learner writes a body between
   ``# ---- write your code here ----`` and ``# ---- end of your code ----`` that is exactly
   ``raise NotImplementedError(...)`` until the learner replaces it (that is "not started").
2. The exercise in ``tinymm/exercises/lessonNN.py``. For an op, ``op_exercise(...)`` (see its
   docstring): the slot names, input names, which inputs get gradients, a ``make(rng, n)``
   per input case (float64, n the batch), and the references: adapters that run the
   library's Function (``fn = Conv2d(); fn.needs_input_grad = (...); fn.forward(...);
   fn.backward(g)``), never a copy of its code. ``answer`` names the library objects whose
   source ``--answer`` prints. An exercise of another shape (the engine's backward walk)
   builds ``Exercise(...)`` with its own ``check(impl)``: return a list of passed checks in
   words, raise ``Finding(message)`` at the first failure, and call the learner's code only
   through ``call_learner(slot, fn, *args)``.
3. Wrong versions, ``Wrong(name, {slot: function}, expect=(words, ...))``: each replaces some
   slots of the reference and must fail with every word of ``expect`` in the message. The
   usual set: backward scaled by 1.01, zeroed, transposed, a missing unbroadcast, a forward
   off by one, an in-place edit of an input, a loop over the batch, a forgotten return.
4. List it in ``catalog.py``. ``tests/test_exercises.py`` then checks, with no more code, that
   the reference passes, every wrong version fails as declared, and the untouched stub is
   "not started"; the tests carry the lesson's marker (``pytest -m lesson06``).

Messages: one paragraph, in the learner's words. Name the function and every wrong input
on one line ("the gradients for x and W are wrong, b is right"), give the numbers of the
first (relative error, worst index, yours vs tinymm's, the ratio), say what is recognisable
(all zeros, "looks transposed", one factor common to every wrong gradient: a forgotten g, a
mean for a sum; right values in the wrong layout; a Python float for an array), and end with
"Reread lesson NN, section K (title)". Call the library "tinymm's", never "the reference".
An exercise's ``diagnose`` sees every gradient (``mine_all``), so a diagnosis of one input can
rest on the others (clip_loss: "row softmax only" only when dI or dT shows it). Exceptions from tinymm itself are not caught:
a bug in the checker keeps its traceback.
"""
from .catalog import EXERCISES, find
from .cli import check_exercise, main
from .core import Exercise, Finding, NotStarted, Result, Wrong, run_checks

__all__ = ["EXERCISES", "Exercise", "Finding", "NotStarted", "Result", "Wrong", "check_exercise",
           "find", "main", "run_checks"]
