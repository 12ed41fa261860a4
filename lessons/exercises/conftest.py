"""pytest for the exercises: `pytest lessons/exercises` checks your stubs.

Each exercise gets a marker ex_NAME (and its lesson's marker), so
`pytest lessons/exercises -m ex_linear` checks one exercise and `-m lesson04` a lesson.
The project's own tests (tests/) never collect this folder.
"""
from tinymm.exercises import EXERCISES


def pytest_configure(config):
    for exercise in EXERCISES:
        config.addinivalue_line("markers", f"ex_{exercise.name}: the {exercise.name} exercise "
                                           f"(lesson {exercise.lesson})")
