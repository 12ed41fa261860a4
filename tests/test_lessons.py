"""Every lesson runs top to bottom in fast mode, leaves a figure, and is a valid notebook.

Each lesson `lessons/NN_topic.py` is run as a learner would run it, `python lessons/NN_topic.py`,
in a fresh process with TINYMM_FAST=1 (small loops), its figures sent to a temporary folder
(TINYMM_OUT) so the committed ones are never rewritten. The lessons `assert` the claims their
text makes, so a passing run proves them. Each case carries its lesson's marker:
`pytest -m lesson03` runs lesson 03 and the tests of the code it teaches.

TINYMM_DEVICE is passed through, so `TINYMM_DEVICE=cuda pytest tests/test_lessons.py` runs the
lessons on the GPU.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]*.py"))


def lesson_number(path):
    """'05' for lessons/05_softmax_cross_entropy.py (and for a split lesson 05b_...)."""
    return re.match(r"\d\d", path.name).group(0)


def with_marker(paths):
    """One pytest.param per lesson, marked lessonNN and named after the file."""
    return [pytest.param(p, id=p.stem, marks=getattr(pytest.mark, f"lesson{lesson_number(p)}")) for p in paths]


def tail(text, n_chars=4000):
    return text if len(text) <= n_chars else "..." + text[-n_chars:]


@pytest.mark.parametrize("lesson", with_marker(LESSONS))
def test_lesson_runs_fast_and_saves_a_figure(lesson, tmp_path):
    env = dict(os.environ, TINYMM_FAST="1", TINYMM_OUT=str(tmp_path), MPLBACKEND="Agg")
    # the lessons import tinymm as an installed package; this makes the checkout importable
    # even where it is not installed
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(lesson.relative_to(ROOT))], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{lesson.name} exited with code {result.returncode}\n"
                    f"--- stdout (end) ---\n{tail(result.stdout, 1500)}\n"
                    f"--- stderr (end) ---\n{tail(result.stderr)}", pytrace=False)
    number = lesson_number(lesson)
    figures = [p.name for p in tmp_path.glob("*.png") if re.match(rf"{number}[a-z]?_", p.name)]
    assert figures, (f"{lesson.name} saved no {number}_*.png figure in TINYMM_OUT "
                     f"(found: {sorted(p.name for p in tmp_path.iterdir())})")


def markdown_headings(cell_source):
    return [line.lstrip("#").strip() for line in cell_source.splitlines() if re.match(r"#+\s", line)]


@pytest.mark.parametrize("lesson", with_marker(LESSONS))
def test_lesson_is_a_percent_format_notebook(lesson):
    jupytext = pytest.importorskip("jupytext")
    text = lesson.read_text(encoding="utf-8")
    assert text.startswith("# %% [markdown]"), f"{lesson.name} must open with a markdown cell"
    notebook = jupytext.reads(text, fmt="py:percent")
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown", f"{lesson.name}: the first cell is {kinds[0]}, not markdown"
    assert "code" in kinds and kinds.count("markdown") >= 2, f"{lesson.name}: cells {kinds}"
    headings = [h for cell in notebook.cells if cell.cell_type == "markdown"
                for h in markdown_headings(cell.source)]
    for required in ("Recap", "Exercises"):
        assert any(h.startswith(required) for h in headings), \
            f"{lesson.name} has no '{required}' heading (headings: {headings})"
