"""Lessons run as real notebooks, the way a learner runs them in JupyterLab.

Each lesson file is read by jupytext into a notebook (in memory: nothing is written next to the
lessons) and executed cell by cell by a real Jupyter kernel (ipykernel, started with this Python)
through nbclient, in fast mode, in the lessons folder (JupyterLab starts a notebook's kernel
there). A cell that raises fails the test. Then the test checks what a learner should see:

- every cell that saves a figure shows it inline (an image/png output), and the picture shown is
  the file that was saved, in lessons/my_figures/;
- the kernel kept its own (inline) matplotlib backend: tinymm.plots did not force Agg on it;
- the output says that fast-mode numbers are not the lesson's;
- the committed figures in lessons/figures/ are byte for byte what they were.

The kernel and the executor come with the `dev` extra. Without them these tests skip, unless
TINYMM_REQUIRE_NOTEBOOKS=1 is set (`.ci/run` sets it): then a missing executor is a failure, so CI
never passes without running a notebook.
"""
import base64
import hashlib
import importlib
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "lessons"
COMMITTED = LESSONS_DIR / "figures"

# cheap lessons from across the course: autograd, a loss, the L2 norm, the CLIP loss
NOTEBOOK_LESSONS = ["02_autograd.py", "05_softmax_cross_entropy.py", "09_l2_norm_and_cosine.py",
                    "11_clip_loss.py"]


def needed(module):
    """Import ``module``, or skip (fail under TINYMM_REQUIRE_NOTEBOOKS=1) when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed: pip install -e \".[dev]\" to run lessons as notebooks"
        if os.environ.get("TINYMM_REQUIRE_NOTEBOOKS", "") not in ("", "0"):
            pytest.fail(f"TINYMM_REQUIRE_NOTEBOOKS=1 but {message}", pytrace=False)
        pytest.skip(message)


def file_hashes(folder):
    """{file name: sha256} for every file in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def changed_files(before, after):
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def kernel_manager(tmp_path):
    """A kernel manager whose kernel is this very Python (not whatever 'python3' points to)."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    spec_dir = tmp_path / "kernels" / "tinymm-test"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "tinymm tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name="tinymm-test", kernel_spec_manager=specs)


def stream_text(cell):
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream")


def inline_pngs(cell):
    return [base64.b64decode(out.data["image/png"]) for out in cell.get("outputs", [])
            if out.output_type in ("display_data", "execute_result") and "image/png" in out.get("data", {})]


def code_lines(source):
    """The lines of a code cell that are not comments."""
    return [line for line in source.splitlines() if not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", [pytest.param(n, id=n[:-3], marks=getattr(pytest.mark, f"lesson{n[:2]}"))
                                  for n in NOTEBOOK_LESSONS])
def test_lesson_runs_as_a_notebook_with_inline_figures(name, tmp_path, monkeypatch):
    jupytext = needed("jupytext")
    needed("ipykernel")
    nbclient = needed("nbclient")
    nbformat = needed("nbformat")

    # the kernel inherits this environment: fast mode, figures at their default place (no
    # TINYMM_OUT), and no MPLBACKEND, so the kernel picks its inline backend as it does for a learner
    monkeypatch.setenv("TINYMM_FAST", "1")
    monkeypatch.delenv("TINYMM_OUT", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    notebook = jupytext.read(LESSONS_DIR / name)
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import matplotlib\nprint('matplotlib backend:', matplotlib.get_backend())"))
    before = file_hashes(COMMITTED)
    started = time.time()
    client = nbclient.NotebookClient(notebook, km=kernel_manager(tmp_path), timeout=300,
                                     resources={"metadata": {"path": str(LESSONS_DIR)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{name}: a cell failed when run as a notebook:\n{str(err)[-3000:]}", pytrace=False)
    after = file_hashes(COMMITTED)

    changed = changed_files(before, after)
    assert not changed, (f"running {name} as a notebook changed the committed figures {changed} "
                         "(or another process rewrote them during the test: then run it again)")

    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    output = "".join(stream_text(c) for c in code_cells)
    assert output.count("fast mode (TINYMM_FAST=1)") == 1, \
        f"{name}: the fast-mode notice should be printed once, output was:\n{output[:2000]}"
    assert "inline" in stream_text(code_cells[-1]), \
        f"{name}: the kernel's matplotlib backend is not inline: {stream_text(code_cells[-1])!r}"

    figure_cells = [c for c in code_cells if any("save_figure(" in line for line in code_lines(c.source))]
    assert figure_cells, f"{name} has no cell that calls save_figure (pick another lesson for this test)"
    for cell in figure_cells:
        shown = inline_pngs(cell)
        saved = re.findall(r"^saved (\S+\.png)$", stream_text(cell), flags=re.M)
        calls = sum(line.count("save_figure(") for line in code_lines(cell.source))
        assert len(saved) >= calls and len(shown) >= calls, \
            f"{name}: a cell calls save_figure {calls}x but saved {saved} and showed {len(shown)} image(s) inline"
        results = [out for out in cell.outputs if out.output_type == "execute_result"]
        assert not results, f"{name}: a figure cell also shows Out[]: {results[0].data.get('text/plain')!r}"
        for shown_path in saved:
            path = LESSONS_DIR / shown_path  # printed relative to the kernel's folder, lessons/
            assert path.parent == LESSONS_DIR / "my_figures", f"{name}: figure saved to {path}, not my_figures/"
            assert path.stat().st_mtime >= started - 1, f"{name}: {path} was not written by this run"
            assert path.read_bytes() in shown, f"{name}: the inline image is not the saved file {path.name}"
