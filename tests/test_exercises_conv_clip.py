"""The exercises of lessons 06, 11 and 12, end to end: a learner's answer written into a copy of
the stub passes, and the checks built for these exercises say what is wrong in the learner's
own file (a conv2d written before im2col, a col2im that assigns, an edited forward, a whole
step half done). The answers below are what a learner would write, in plain NumPy.

The generic checks (reference passes, every declared wrong version fails with its words, the
shipped stub is "not started") run for these exercises in tests/test_exercises.py.
"""
import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm.__main__ import main as cli_main
from tinymm.exercises import check_exercise, find
from tinymm.exercises.lesson12 import PARAMETERS, autograd_step, make_inputs

STUBS = Path(__file__).resolve().parents[1] / "lessons" / "exercises"

ANSWERS = {
    "im2col": """
        n, c, h, w = x.shape
        ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
        padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        cols = np.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                view = padded[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                cols[:, i, j] = view.transpose(1, 0, 2, 3)
        return cols.reshape(c * kh * kw, n * ho * wo)
    """,
    "col2im": """
        n, c, h, w = x_shape
        ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
        blocks = cols.reshape(c, kh, kw, n, ho, wo)
        padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                view = padded[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                view += blocks[:, i, j].transpose(1, 0, 2, 3)
        return padded[:, :, padding:padding + h, padding:padding + w]
    """,
    "conv2d_forward": """
        c_out, _, kh, kw = W.shape
        n, _, h, w = x.shape
        ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
        out = W.reshape(c_out, -1) @ im2col(x, kh, kw, stride, padding) + b[:, None]
        return out.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)
    """,
    "conv2d_backward": """
        c_out, _, kh, kw = W.shape
        cols = im2col(x, kh, kw, stride, padding)
        g_mat = g.transpose(1, 0, 2, 3).reshape(c_out, -1)
        dW = (g_mat @ cols.T).reshape(W.shape)
        db = g_mat.sum(axis=1)
        dx = col2im(W.reshape(c_out, -1).T @ g_mat, x.shape, kh, kw, stride, padding)
        return dx, dW, db
    """,
    "max_pool2d_forward": """
        ho, wo = (x.shape[2] - kernel) // stride + 1, (x.shape[3] - kernel) // stride + 1
        views = [x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                 for i in range(kernel) for j in range(kernel)]
        return np.max(views, axis=0)
    """,
    "max_pool2d_backward": """
        ho, wo = g.shape[2], g.shape[3]
        offsets = [(i, j) for i in range(kernel) for j in range(kernel)]
        views = np.stack([x[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                          for i, j in offsets])
        winner = views.argmax(axis=0)  # the first maximum, as tinymm
        dx = np.zeros_like(x)
        for k, (i, j) in enumerate(offsets):
            dx[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] += g * (winner == k)
        return dx
    """,
    "clip_loss_forward": """
        Z = np.exp(s) * I @ T.T
        rows = Z - Z.max(axis=1, keepdims=True)
        rows = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
        cols = Z - Z.max(axis=0, keepdims=True)
        cols = cols - np.log(np.exp(cols).sum(axis=0, keepdims=True))
        return -0.5 * ((Y * rows).sum() + (Y * cols).sum()) / len(I)
    """,
    "clip_loss_backward": """
        Z = np.exp(s) * I @ T.T
        P_rows = np.exp(Z - Z.max(axis=1, keepdims=True))
        P_rows = P_rows / P_rows.sum(axis=1, keepdims=True)
        P_cols = np.exp(Z - Z.max(axis=0, keepdims=True))
        P_cols = P_cols / P_cols.sum(axis=0, keepdims=True)
        G = g * (P_rows + P_cols - 2 * Y) / (2 * len(I))
        return np.exp(s) * G @ T, np.exp(s) * G.T @ I, (G * Z).sum()
    """,
    "clip_step_backward": """
        Z, Y, scale = v["Z"], v["Y"], v["scale"]
        dZ = (np.exp(log_softmax(Z, 1)) + np.exp(log_softmax(Z, 0)) - 2 * Y) / (2 * len(Z))
        dscale = (dZ * (v["I"] @ v["T"].T)).sum()
        ds = dscale * scale
        dI = scale * dZ @ v["T"]
        dT = scale * dZ.T @ v["I"]

        def through_l2_normalize(dy, f, y):
            return (dy - y * (y * dy).sum(axis=1, keepdims=True)) / np.sqrt((f * f).sum(axis=1, keepdims=True))

        df_img = through_l2_normalize(dI, v["f_img"], v["I"])
        dW2, db2, da1 = df_img.T @ v["a1"], df_img.sum(axis=0), df_img @ v["W2"]
        dh1 = da1 * (v["h1"] > 0)
        dW1, db1 = dh1.T @ v["x"], dh1.sum(axis=0)
        df_txt = through_l2_normalize(dT, v["f_txt"], v["T"])
        dW3, db3, dpooled = df_txt.T @ v["pooled"], df_txt.sum(axis=0), df_txt @ v["W3"]
        share = v["mask"] / v["mask"].sum(axis=1, keepdims=True)
        de = share[:, :, None] * dpooled[:, None, :]
        dE = np.zeros_like(v["E"])
        np.add.at(dE, v["ids"], de)
        return dict(dZ=dZ, dscale=dscale, ds=ds, dI=dI, dT=dT, df_img=df_img, dW2=dW2, db2=db2, da1=da1,
                    dh1=dh1, dW1=dW1, db1=db1, df_txt=df_txt, dW3=dW3, db3=db3, dpooled=dpooled, de=de, dE=dE)
    """,
}
STUB_OF = {"im2col": "06_conv2d.py", "col2im": "06_conv2d.py", "conv2d_forward": "06_conv2d.py",
           "conv2d_backward": "06_conv2d.py", "max_pool2d_forward": "06_max_pool2d.py",
           "max_pool2d_backward": "06_max_pool2d.py", "clip_loss_forward": "11_clip_loss.py",
           "clip_loss_backward": "11_clip_loss.py", "clip_step_backward": "12_clip_step.py"}


def write(folder, function, body):
    """Replace the body of ``function`` in the stub copy in ``folder``, as a learner would."""
    path = folder / STUB_OF[function]
    if not path.exists():
        shutil.copy(STUBS / path.name, path)
    text = path.read_text()
    pattern = re.compile(rf"(def {function}\(.*?# ---- write your code here ----\n)(.*?)(    # ---- end of your code ----)",
                         re.S)
    assert pattern.search(text), function
    new_body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    path.write_text(pattern.sub(lambda m: m.group(1) + new_body + m.group(3), text, count=1))


def answer(folder, *functions):
    for function in functions:
        write(folder, function, ANSWERS[function])


EXERCISE_ANSWERS = [
    pytest.param("im2col", ("im2col", "col2im"), marks=pytest.mark.lesson06),
    pytest.param("conv2d", ("im2col", "col2im", "conv2d_forward", "conv2d_backward"), marks=pytest.mark.lesson06),
    pytest.param("max_pool2d", ("max_pool2d_forward", "max_pool2d_backward"), marks=pytest.mark.lesson06),
    pytest.param("clip_loss", ("clip_loss_forward", "clip_loss_backward"), marks=pytest.mark.lesson11),
    pytest.param("clip_step", ("clip_step_backward",), marks=pytest.mark.lesson12),
]


@pytest.mark.parametrize("name, functions", EXERCISE_ANSWERS)
def test_a_learners_answer_in_the_stub_passes(tmp_path, name, functions):
    answer(tmp_path, *functions)
    result = check_exercise(find(name)[0], tmp_path)
    assert result.status == "passing", result.message
    assert any("finite differences" in line for line in result.passed)
    assert any("no Python loop over the batch" in line for line in result.passed)


@pytest.mark.lesson06
def test_conv2d_written_before_im2col_says_so(tmp_path):
    answer(tmp_path, "conv2d_forward", "conv2d_backward")
    result = check_exercise(find("conv2d")[0], tmp_path)
    assert result.status == "failing"
    assert "use your im2col, which is not written yet" in result.message
    assert "python -m tinymm check im2col" in result.message


@pytest.mark.lesson06
def test_conv2d_on_a_wrong_im2col_points_to_im2col(tmp_path):
    answer(tmp_path, "col2im", "conv2d_forward", "conv2d_backward")
    write(tmp_path, "im2col", ANSWERS["im2col"].replace("view.transpose(1, 0, 2, 3)", "view.transpose(1, 0, 3, 2)"))
    result = check_exercise(find("conv2d")[0], tmp_path)
    assert result.status == "failing"
    assert "use your im2col and col2im, which do not pass their own exercise yet" in result.message
    assert "It says: im2col" in result.message


@pytest.mark.lesson06
def test_a_col2im_that_assigns_is_named(tmp_path):
    answer(tmp_path, "im2col")
    write(tmp_path, "col2im", ANSWERS["col2im"].replace("view += ", "view[...] = "))
    result = check_exercise(find("im2col")[0], tmp_path)
    assert result.status == "failing"
    assert "col2im must add overlapping contributions" in result.message
    # the first case, a 3x3 kernel at stride 1, puts an inner pixel in 9 patches
    assert "tinymm's col2im gives up to 9" in result.message and "yours gives at most 1" in result.message


@pytest.mark.lesson06
def test_a_max_pool_without_the_tie_rule_passes_the_gradients_but_not_the_ties(tmp_path):
    answer(tmp_path, "max_pool2d_forward")
    write(tmp_path, "max_pool2d_backward", ANSWERS["max_pool2d_backward"].replace(
        "winner = views.argmax(axis=0)  # the first maximum, as tinymm", "winner = views.shape[0] - 1 - views[::-1].argmax(axis=0)"))
    result = check_exercise(find("max_pool2d")[0], tmp_path)
    assert result.status == "failing"
    assert any("gradients match finite differences" in line for line in result.passed)
    assert "breaks ties differently from tinymm" in result.message


@pytest.mark.lesson11
def test_clip_loss_with_a_mistake_points_at_it(tmp_path):
    answer(tmp_path, "clip_loss_forward")
    write(tmp_path, "clip_loss_backward", ANSWERS["clip_loss_backward"].replace("P_rows + P_cols - 2 * Y", "P_rows - Y"))
    result = check_exercise(find("clip_loss")[0], tmp_path)
    assert result.status == "failing"
    assert "the gradients for I, T and s are wrong" in result.message and "row softmax only" in result.message


@pytest.mark.lesson12
def test_clip_step_half_written_lists_what_is_right_and_what_is_next(tmp_path):
    first_lines = ANSWERS["clip_step_backward"].split("        df_img = ")[0]
    write(tmp_path, "clip_step_backward", first_lines + "        return dict(dZ=dZ, dscale=dscale, ds=ds, dI=dI, dT=dT)\n")
    result = check_exercise(find("clip_step")[0], tmp_path)
    assert result.status == "failing"
    assert "right so far: dZ, dscale, ds, dI, dT (5 of 18)" in result.message
    assert "Next: df_img (see lesson 09, section 2" in result.message


@pytest.mark.lesson12
def test_clip_step_names_the_first_wrong_gradient_in_a_learners_file(tmp_path):
    write(tmp_path, "clip_step_backward", ANSWERS["clip_step_backward"].replace("dh1 = da1 * (v[\"h1\"] > 0)",
                                                                                "dh1 = da1 * (v[\"a1\"] >= 0)"))
    result = check_exercise(find("clip_step")[0], tmp_path)
    assert result.status == "failing"
    assert "the first wrong gradient, going back from the loss, is dh1" in result.message
    assert "right: dZ, dscale, ds, dI, dT, df_img, dW2, db2, da1, df_txt" in result.message
    assert "also wrong (perhaps only because they come after dh1): dW1, db1" in result.message


@pytest.mark.lesson12
def test_clip_step_notices_an_edited_forward(tmp_path):
    answer(tmp_path, "clip_step_backward")
    path = tmp_path / "12_clip_step.py"
    path.write_text(path.read_text().replace("a1 = np.maximum(h1, 0)", "a1 = np.maximum(h1, 0.1)"))
    result = check_exercise(find("clip_step")[0], tmp_path)
    assert result.status == "failing"
    assert "forward in 12_clip_step.py no longer computes a1 as tinymm does" in result.message


@pytest.mark.lesson12
def test_staged_gradients_are_autograds_gradients_of_the_whole_graph():
    """Cutting the forward into stages (one leaf per value) gives the same weight gradients as
    one graph through the whole step, so each stage's leaf gradient is d loss / d value."""
    inputs = make_inputs(np.random.default_rng(0), 4)
    values, staged = autograd_step(inputs)
    # on the CPU whatever TINYMM_DEVICE says: the exercises are NumPy code, and so is their truth
    p = {name: tm.tensor(inputs[name], requires_grad=True, device="cpu") for name in PARAMETERS}
    x, ids = tm.tensor(inputs["x"], device="cpu"), tm.tensor(inputs["ids"], device="cpu")
    I = F.l2_normalize(F.linear(F.relu(F.linear(x, p["W1"], p["b1"])), p["W2"], p["b2"]))
    T = F.l2_normalize(F.linear(F.masked_mean(F.embedding(ids, p["E"]), inputs["ids"] != 0), p["W3"], p["b3"]))
    loss = F.clip_loss(I, T, p["s"], targets=inputs["Y"])
    loss.backward()
    assert abs(loss.item() - float(values["loss"])) < 1e-12
    for name in PARAMETERS:
        assert np.allclose(staged[name], p[name].grad, rtol=1e-10, atol=1e-14), name
    assert (inputs["ids"][0] == inputs["ids"][2]).all() and inputs["Y"][0, 2] == 0.5  # a repeated caption
    assert len(np.unique(inputs["ids"])) < inputs["ids"].size  # repeated ids for the embedding


@pytest.mark.lesson06
def test_the_cli_on_a_written_conv2d(tmp_path, capsys):
    answer(tmp_path, "im2col", "col2im", "conv2d_forward", "conv2d_backward")
    assert cli_main(["check", "conv2d", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASSING" in out and "Next: max_pool2d (lesson 06)" in out
    write(tmp_path, "conv2d_backward", ANSWERS["conv2d_backward"].replace("db = g_mat.sum(axis=1)", "db = g.sum(axis=(2, 3))"))
    assert cli_main(["check", "conv2d", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILING" in out and "db with shape (2, 3)" in out


# a learner's tries at ds = g · Σ G∘Z (G already holds g in the answer above), and what each must hear
DS_TRIES = [
    ("np.exp(s) * G.sum()", ("Your ds is about 0", "Σ_ij G_ij alone is always 0", "Z_ij must be inside the sum")),
    ("2 * (G * Z).sum()", ("ratio 2;", "Your ds is 2× tinymm's, 2 times too big", "already holds the ½")),
    ("(G * Z).sum() / np.exp(s)", ("ratio 0.2725", "e^s times too small")),
    ("0.5 * (G * Z).sum()", ("ratio 0.5;", "Your ds is 0.5× tinymm's, half of it")),
]


@pytest.mark.lesson11
@pytest.mark.parametrize("ds, words", DS_TRIES, ids=[t[0] for t in DS_TRIES])
def test_clip_loss_with_only_ds_wrong_says_so(tmp_path, ds, words):
    answer(tmp_path, "clip_loss_forward")
    write(tmp_path, "clip_loss_backward", ANSWERS["clip_loss_backward"].replace("(G * Z).sum()", ds))
    result = check_exercise(find("clip_loss")[0], tmp_path)
    assert result.status == "failing"
    assert result.message.startswith("the gradient for s is wrong, I and T are right (case: every caption")
    assert "row softmax only" not in result.message  # dI and dT are right: the column softmax is there
    assert "Σ G∘Z already contains the factor e^s" in result.message
    for w in words:
        assert w in result.message, (w, result.message)


@pytest.mark.lesson11
def test_clip_loss_without_g_asks_for_it(tmp_path):
    answer(tmp_path, "clip_loss_forward")
    write(tmp_path, "clip_loss_backward", ANSWERS["clip_loss_backward"].replace("G = g * (", "G = ("))
    result = check_exercise(find("clip_loss")[0], tmp_path)
    assert result.message.startswith("the gradients for I, T and s are wrong")
    assert re.search(r"Every gradient \(dI, dT and ds\) is [-0-9.]+× off: did you multiply by g\?", result.message)


@pytest.mark.lesson11
def test_clip_loss_ds_as_a_python_float_is_named(tmp_path):
    answer(tmp_path, "clip_loss_forward")
    write(tmp_path, "clip_loss_backward", ANSWERS["clip_loss_backward"].replace("(G * Z).sum()", "float((G * Z).sum())"))
    result = check_exercise(find("clip_loss")[0], tmp_path)
    assert "returned ds as a Python float" in result.message and "not an array" in result.message
    assert "np.asarray(..., dtype=s.dtype)" in result.message
    assert "np.zeros" not in result.message


@pytest.mark.lesson06
def test_conv2d_forward_reshaped_without_transpose_is_a_layout_mistake(tmp_path):
    answer(tmp_path, "im2col", "col2im", "conv2d_backward")
    write(tmp_path, "conv2d_forward", ANSWERS["conv2d_forward"].replace(
        "out.reshape(c_out, n, ho, wo).transpose(1, 0, 2, 3)", "out.reshape(n, c_out, ho, wo)"))
    result = check_exercise(find("conv2d")[0], tmp_path)
    assert "conv2d_forward differs from tinymm's" in result.message
    assert "Right numbers, wrong layout" in result.message and "(C_out, N, H_out, W_out)" in result.message
    assert "transpose before reshape" in result.message


@pytest.mark.lesson06
def test_im2col_with_n_and_c_swapped_is_a_layout_mistake(tmp_path):
    answer(tmp_path, "col2im")
    write(tmp_path, "im2col", ANSWERS["im2col"].replace("np.empty((c, kh, kw, n, ho, wo)", "np.empty((n, kh, kw, c, ho, wo)")
          .replace("view.transpose(1, 0, 2, 3)", "view"))
    result = check_exercise(find("im2col")[0], tmp_path)
    assert "Right numbers, wrong layout" in result.message and "(N, KH, KW, C, H_out, W_out)" in result.message
    assert "move C in front of N" in result.message


@pytest.mark.lesson06
def test_a_failing_col2im_shows_the_im2col_checks_that_passed(tmp_path):
    answer(tmp_path, "im2col")
    write(tmp_path, "col2im", ANSWERS["col2im"].replace("view += ", "view[...] = "))
    result = check_exercise(find("im2col")[0], tmp_path)
    assert result.status == "failing" and "col2im must add" in result.message
    assert result.passed == ["im2col equals tinymm's and leaves x unchanged (3 cases: overlapping 3x3 patches "
                             "with padding; a non-square 3x2 kernel at stride 2; 2x2 patches that do not overlap)"]


@pytest.mark.lesson06
def test_check_a_whole_lesson_ends_with_a_summary(tmp_path, capsys):
    answer(tmp_path, "im2col", "col2im")
    shutil.copy(STUBS / "06_max_pool2d.py", tmp_path)
    shutil.copy(STUBS / "04_linear.py", tmp_path)
    assert cli_main(["check", "06", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    # im2col passes; conv2d, printed right below it, is not announced as "Next"
    assert "PASSING" in out and "Next:" not in out
    assert out.rstrip().splitlines()[-1] == "lesson 06: 1 passing, 0 failing, 2 not started (of 3 exercises)."
