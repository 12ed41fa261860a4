"""The exercise checker is tested like the library: it must pass right answers and fail wrong ones.

For every exercise of the catalog: tinymm's reference plugged into the learner's slots passes;
each declared wrong version (a backward scaled by 1.01, zeroed, transposed, a missing
unbroadcast, a forward off by one, an in-place edit, a loop over the batch, ...) fails with
the words its declaration expects; the stub as shipped reports "not started" (no traceback).
Each test carries its lesson's marker, so ``pytest -m lesson04`` runs lesson 04's.
"""
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tinymm.__main__ import main as cli_main
from tinymm.exercises import EXERCISES, check_exercise, find, run_checks
from tinymm.exercises.core import count_lines

STUBS = Path(__file__).resolve().parents[1] / "lessons" / "exercises"


def _marked(values, exercise):
    return pytest.param(*values, marks=getattr(pytest.mark, exercise.lesson_marker),
                        id="-".join(str(v) for v in values[1:]) or exercise.name)


def _impl(exercise, overrides=None):
    return types.SimpleNamespace(**{**exercise.reference, **(overrides or {})})


@pytest.mark.parametrize("exercise, name", [_marked((ex, ex.name), ex) for ex in EXERCISES])
def test_reference_passes(exercise, name):
    result = run_checks(exercise, _impl(exercise))
    assert result.status == "passing", result.message
    assert result.passed and result.message == ""


WRONG = [_marked((ex, ex.name, w.name), ex) for ex in EXERCISES for w in ex.wrong]


@pytest.mark.parametrize("exercise, name, wrong_name", WRONG)
def test_wrong_version_fails_with_its_message(exercise, name, wrong_name):
    wrong = next(w for w in exercise.wrong if w.name == wrong_name)
    result = run_checks(exercise, _impl(exercise, wrong.slots))
    assert result.status == "failing"
    for words in wrong.expect:
        assert words in result.message, f"{words!r} not in: {result.message}"
    assert "Traceback" not in result.message


@pytest.mark.parametrize("exercise, name", [_marked((ex, ex.name), ex) for ex in EXERCISES])
def test_untouched_stub_is_not_started(exercise, name):
    result = check_exercise(exercise, STUBS)
    assert result.status == "not started", result.message
    assert exercise.stub in result.message


@pytest.mark.parametrize("exercise, name", [_marked((ex, ex.name), ex) for ex in EXERCISES])
def test_every_exercise_declares_the_usual_wrong_versions(exercise, name):
    # at least a wrong gradient, and every wrong version replaces a real slot
    assert len(exercise.wrong) >= 3
    for wrong in exercise.wrong:
        assert set(wrong.slots) <= set(exercise.slots), wrong.name
    stub = (STUBS / exercise.stub).read_text()
    assert "# ---- write your code here ----" in stub
    imports = [line for line in stub.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "tinymm" in line], "a stub must not import the answer"


@pytest.mark.lesson04
def test_half_written_exercise_names_the_missing_function(tmp_path):
    linear = find("linear")[0]
    text = (STUBS / "04_linear.py").read_text()
    start = text.index("def linear_forward")
    body = text[start:text.index("def linear_backward")]
    written = body.replace(body[body.index("    raise NotImplementedError"):body.index("    # ---- end")],
                           "    return x @ W.T + b\n")
    (tmp_path / "04_linear.py").write_text(text.replace(body, written))
    result = check_exercise(linear, tmp_path)
    assert result.status == "failing"
    assert "linear_backward is not written yet" in result.message


@pytest.mark.lesson04
def test_learner_exception_names_their_line(tmp_path):
    shutil.copy(STUBS / "04_relu.py", tmp_path)
    path = tmp_path / "04_relu.py"
    path.write_text(path.read_text().replace(
        '    raise NotImplementedError("relu_forward', '    return np.maximum(x, 0, axis=3)\n    raise NotImplementedError("relu_forward'))
    result = check_exercise(find("relu")[0], tmp_path)
    assert result.status == "failing"
    assert "relu_forward raised TypeError" in result.message
    assert "04_relu.py line" in result.message and "np.maximum(x, 0, axis=3)" in result.message


@pytest.mark.lesson04
def test_syntax_error_in_a_stub_is_a_message(tmp_path):
    (tmp_path / "04_linear.py").write_text("def linear_forward(x, W, b)\n    return x\n")
    result = check_exercise(find("linear")[0], tmp_path)
    assert result.status == "failing"
    assert "04_linear.py line 1: SyntaxError" in result.message


def test_line_counter_sees_a_loop_and_only_a_loop():
    def vectorised(x):
        return (x * 2).sum()

    def looped(x):
        total = 0
        for row in x:
            total += row.sum()
        return total

    assert count_lines("v", vectorised, np.ones((2, 3))) == count_lines("v", vectorised, np.ones((9, 3)))
    assert count_lines("l", looped, np.ones((2, 3))) < count_lines("l", looped, np.ones((9, 3)))


def test_find_by_name_or_lesson_number():
    assert [ex.name for ex in find("04")] == [ex.name for ex in EXERCISES if ex.lesson == "04"]
    assert find("4") == find("04")
    assert find("linear")[0].name == "linear"
    assert find("no such exercise") == []


def test_cli_lists_checks_and_shows_answers(capsys):
    assert cli_main(["check", "--dir", str(STUBS)]) == 0
    listing = capsys.readouterr().out
    for ex in EXERCISES:
        assert ex.name in listing and ex.stub in listing
    assert f"0 passing, 0 failing, {len(EXERCISES)} not started" in listing

    assert cli_main(["check", "linear", "--dir", str(STUBS)]) == 1
    assert "NOT STARTED" in capsys.readouterr().out

    assert cli_main(["check", "linear", "--answer", "--dir", str(STUBS)]) == 1
    answer = capsys.readouterr().out
    linear_class = find("linear")[0].answer[0].__name__
    assert f"class {linear_class}(Function)" in answer and "def backward" in answer
    # asked for before trying: a one-line note first, then the answer
    assert answer.splitlines()[0] == "Note: you have not tried linear yet; the answer follows."

    assert cli_main(["check", "nonsense", "--dir", str(STUBS)]) == 2
    assert "no exercise called 'nonsense'" in capsys.readouterr().err


def test_cli_passes_a_written_exercise_and_names_the_next(tmp_path, capsys):
    shutil.copy(STUBS / "04_relu.py", tmp_path)
    path = tmp_path / "04_relu.py"
    text = path.read_text()
    text = text.replace('    raise NotImplementedError("relu_forward: write it, then run: python -m tinymm check relu")',
                        "    return np.maximum(x, 0)")
    text = text.replace('    raise NotImplementedError("relu_backward: write it, then run: python -m tinymm check relu")',
                        "    return g * (x > 0)")
    path.write_text(text)
    assert cli_main(["check", "relu", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASSING" in out and "no Python loop over the batch" in out
    following = EXERCISES[EXERCISES.index(find("relu")[0]) + 1]
    assert f"Next: {following.name}" in out
    assert "class ReLU" not in out  # the answer only when asked


def _linear_stub(folder, forward="return x @ W.T + b", backward="return g @ W, g.T @ x, g.sum(axis=0)"):
    """A copy of 04_linear.py in ``folder`` with both bodies written, as a learner would."""
    text = (STUBS / "04_linear.py").read_text()
    text = text.replace('raise NotImplementedError("linear_forward: write it, then run: python -m tinymm check linear")',
                        forward)
    text = text.replace('raise NotImplementedError("linear_backward: write it, then run: python -m tinymm check linear")',
                        backward)
    (folder / "04_linear.py").write_text(text)


@pytest.mark.lesson04
def test_the_right_linear_in_a_stub_passes(tmp_path):
    _linear_stub(tmp_path)
    result = check_exercise(find("linear")[0], tmp_path)
    assert result.status == "passing", result.message


@pytest.mark.lesson04
def test_a_bias_gradient_taken_as_a_mean_is_named_with_the_right_ones(tmp_path):
    _linear_stub(tmp_path, backward="return g @ W, g.T @ x, g.mean(axis=0)")
    result = check_exercise(find("linear")[0], tmp_path)
    assert result.status == "failing"
    # every wrong gradient on one line, and the right ones too
    assert result.message.startswith("the gradient for b is wrong, x and W are right.")
    assert "Your db is 0.3333× tinymm's, 1/N with N = 3 the batch: mean instead of sum over the batch?" \
        in result.message


@pytest.mark.lesson04
def test_every_wrong_gradient_is_listed_with_their_common_factor(tmp_path):
    _linear_stub(tmp_path, backward="return 2 * (g @ W), 2 * (g.T @ x), 2 * g.sum(axis=0)")
    result = check_exercise(find("linear")[0], tmp_path)
    assert result.message.startswith("the gradients for x, W and b are wrong. dx: relative error")
    assert "ratio 2;" in result.message and "Every gradient (dx, dW and db) is 2× off." in result.message
    assert "did you multiply by g?" not in result.message  # 2 is not what a forgotten g gives


@pytest.mark.lesson04
def test_a_forward_with_the_right_values_in_other_places_says_so(tmp_path):
    _linear_stub(tmp_path, forward="return (x @ W.T + b).T.reshape(len(x), -1)")
    result = check_exercise(find("linear")[0], tmp_path)
    assert "linear_forward differs from tinymm's" in result.message and "reference" not in result.message
    assert "Right numbers, wrong layout" in result.message and "(axis 1, axis 0)" in result.message
    assert "transpose before reshape" in result.message


@pytest.mark.lesson04
def test_a_forward_shifted_by_one_is_not_called_a_layout_mistake(tmp_path):
    _linear_stub(tmp_path, forward="return np.roll(x @ W.T + b, 1, axis=1)")
    result = check_exercise(find("linear")[0], tmp_path)
    assert "in another place" in result.message
    assert "transpose before reshape" not in result.message


def test_check_piped_into_head_ends_quietly():
    # a learner's `python -m tinymm check linear | head -3`: head stops reading, no traceback
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(f"{sys.executable} -m tinymm check linear --answer | head -3", shell=True, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    # a reader that is gone before the first line is written (`true` reads nothing): always a broken pipe
    done = subprocess.run(f"{sys.executable} -m tinymm check linear --answer | true", shell=True, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.stderr == "", done.stderr
