"""Every lesson runs top to bottom in fast mode, leaves a figure, and is a valid notebook.

Each lesson `lessons/NN_topic.py` is run as a learner would run it, `python lessons/NN_topic.py`,
in a fresh process with TINYMM_FAST=1 (small loops), its figures sent to a temporary folder
(TINYMM_OUT) so the committed ones are never rewritten. The lessons `assert` the claims their
text makes, so a passing run proves them. Each case carries its lesson's marker:
`pytest -m lesson03` runs lesson 03 and the tests of the code it teaches.

TINYMM_DEVICE is passed through, so `TINYMM_DEVICE=cuda pytest tests/test_lessons.py` runs the
lessons on the GPU.

The last tests check where figures go (tinymm/plots.py): a run without TINYMM_OUT, as a learner
makes it, leaves the committed figures in lessons/figures/ byte for byte as they were; fast mode
refuses TINYMM_OUT=lessons/figures; a plain script needs no display.
"""
import hashlib
import os
import re
import subprocess
import sys
import time
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


FAST_NOTICE = "fast mode (TINYMM_FAST=1): loops and data are shrunk"


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
    # its numbers are not the lesson's in fast mode, and the output says so, once
    assert result.stdout.count(FAST_NOTICE) == 1, \
        f"{lesson.name}: the fast-mode notice appears {result.stdout.count(FAST_NOTICE)} times, not once"


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


# ----------------------------------------------------------------------------------------------
# Where figures go


COMMITTED = ROOT / "lessons" / "figures"
CHEAP_LESSON = ROOT / "lessons" / "05_softmax_cross_entropy.py"  # about a second in fast mode


def file_hashes(folder):
    """{file name: sha256} for every file in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def run_as_learner(script, **env_changes):
    """Run ``script`` from the repository root with no TINYMM_OUT, no MPLBACKEND and no display."""
    env = {k: v for k, v in os.environ.items() if k not in ("TINYMM_OUT", "MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(env_changes)
    args = [sys.executable, str(script.relative_to(ROOT))] if isinstance(script, Path) else [sys.executable, "-c", script]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.lesson05
def test_a_fast_run_without_tinymm_out_leaves_the_committed_figures_unchanged():
    before = file_hashes(COMMITTED)
    started = time.time()
    result = run_as_learner(CHEAP_LESSON, TINYMM_FAST="1")
    after = file_hashes(COMMITTED)
    assert result.returncode == 0, tail(result.stderr)
    changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    assert not changed, (f"a fast run without TINYMM_OUT changed the committed figures {changed} "
                         "(or another process rewrote them during the test: then run it again)")
    saved = ROOT / "lessons" / "my_figures" / "05_naive_vs_stable.png"
    assert "saved lessons/my_figures/05_naive_vs_stable.png" in result.stdout, tail(result.stdout)
    assert saved.stat().st_mtime >= started - 1, f"{saved} was not written by this run"
    assert "which git ignores" in result.stdout  # the one-time note that says where figures go


@pytest.mark.lesson05
def test_fast_mode_refuses_to_write_the_committed_figures():
    before = file_hashes(COMMITTED)
    result = run_as_learner(CHEAP_LESSON, TINYMM_FAST="1", TINYMM_OUT="lessons/figures")
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("TINYMM_OUT=lessons/figures is the folder of the committed full-run figures"), \
        tail(result.stderr)
    assert "Traceback" not in result.stderr  # a user's mistake: one line, no traceback
    assert file_hashes(COMMITTED) == before


def test_figures_go_where_tinymm_out_says_and_scripts_need_no_display(tmp_path):
    code = ("import matplotlib, tinymm.plots as p\n"
            "print(matplotlib.get_backend(), p.in_notebook())\n"
            "fig = p.plt.figure(); fig.gca().plot([0, 1])\n"
            "p.save_figure(fig, 'xx_test.png')\n")
    result = run_as_learner(code, TINYMM_OUT=str(tmp_path / "out"))
    assert result.returncode == 0, tail(result.stderr)
    assert result.stdout.splitlines()[0].lower() == "agg false"  # no display needed, no window opened
    assert (tmp_path / "out" / "xx_test.png").stat().st_size > 1000
    assert f"saved {tmp_path / 'out' / 'xx_test.png'}" in result.stdout
    assert "which git ignores" not in result.stdout  # the note is for the default folder only
    # a full run may write the committed folder when asked by name (how they are regenerated)
    check = ("import os, tinymm.plots as p\n"
             "print(p.figures_dir().resolve() == p.COMMITTED_FIGURES)\n")
    result = run_as_learner(check, TINYMM_OUT="lessons/figures")
    assert result.returncode == 0 and result.stdout.strip() == "True", tail(result.stderr)
