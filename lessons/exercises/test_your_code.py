"""Your exercises under pytest: the same checks as `python -m tinymm check NAME`.

    pytest lessons/exercises                  every exercise (fails until you write them)
    pytest lessons/exercises -m ex_linear     one exercise
    pytest lessons/exercises -m lesson04      the exercises of one lesson
"""
from pathlib import Path

import pytest

from tinymm.exercises import EXERCISES, check_exercise

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("exercise", [
    pytest.param(ex, id=ex.name, marks=[getattr(pytest.mark, f"ex_{ex.name}"),
                                        getattr(pytest.mark, ex.lesson_marker)])
    for ex in EXERCISES])
def test_exercise(exercise):
    result = check_exercise(exercise, HERE)
    if not result.ok:
        pytest.fail(f"{exercise.name} is {result.status}: {result.message}", pytrace=False)
