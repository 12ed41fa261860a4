"""The command line's one error boundary for what the machine refuses, and --out / --run-dir
that mean what they say (issue 15).

Before: a full disk ended in a raw `OSError: [Errno 28] No space left on device` traceback
naming no file; MemoryError was a traceback; `--run-dir FILE` said `[Errno 17] File exists`;
`generate --out DIR` wrote DIR.png and `--out noext` wrote noext.png, each printing another
path; `--out x.txt` was a matplotlib traceback after all the work was done.
"""
import errno

import pytest

from test_robustness_loading import make_run
from tinymm import serialization
from tinymm.__main__ import _os_error_line, main
from tinymm.train import clip as clip_stage

TINY = ["--stages", "clip", "--steps", "4", "--batch-size", "8", "--embed-dim", "8", "--eval-size", "20"]


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:") or "Traceback" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ the disk and the memory
def test_a_full_disk_during_a_checkpoint_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    def disk_full(file, arrays):
        raise OSError(errno.ENOSPC, "No space left on device")   # as a full disk says it: no file name

    monkeypatch.setattr(serialization, "_write_archive", disk_full)
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), *TINY]) == 2
    assert one_error_line(capsys) == (f"error: train: no space left on the disk: {run_dir / 'clip.npz'}; free "
                                      f"some space or write elsewhere; the training continues from its last "
                                      f"checkpoint with --resume")
    assert [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")] == []   # nothing half-written left


def test_running_out_of_memory_names_the_options_to_lower(tmp_path, monkeypatch, capsys):
    def too_much(config, step):
        raise MemoryError("Unable to allocate 1.2 TiB for an array with shape (100000, 3, 32, 32)")

    monkeypatch.setattr(clip_stage, "train_batch", too_much)
    assert main(["train", "--run-dir", str(tmp_path / "run"), *TINY]) == 2
    assert one_error_line(capsys) == ("error: train: out of memory (Unable to allocate 1.2 TiB for an array with "
                                      "shape (100000, 3, 32, 32)); ask for less: a smaller --batch-size or "
                                      "--eval-size (or --embed-dim)")


@pytest.mark.parametrize("code, filename, words", [
    (errno.ENOSPC, None, "generate: no space left on the disk: out.png; free some space or write elsewhere"),
    (errno.EROFS, "runs/x", "generate: the file system is read-only: runs/x; write to another folder"),
    (errno.EACCES, "runs/x", "generate: permission denied: runs/x; write to a folder that is yours"),
    (errno.EDQUOT, None, "generate: disk quota exceeded: out.png; free some space or write elsewhere"),
])
def test_what_the_machine_refuses_becomes_one_line_naming_the_path(code, filename, words):
    line = _os_error_line(OSError(code, "refused", filename), "generate", "out.png")
    assert line.startswith(words)


def test_an_os_error_that_is_not_the_users_keeps_its_traceback():
    assert _os_error_line(OSError(errno.EIO, "Input/output error"), "train", "runs/x") is None
    assert _os_error_line(OSError(errno.ENOSPC, "No space left on device"), "train", None) is None


def test_a_read_only_run_folder_is_one_line(tmp_path, monkeypatch, capsys):
    from pathlib import Path
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.is_relative_to(tmp_path):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), *TINY]) == 2
    assert one_error_line(capsys) == f"error: train: the file system is read-only: {run_dir}; write to another folder"


# ------------------------------------------------------------------ --run-dir and --out
def test_a_run_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "afile"
    path.write_text("not a folder")
    assert main(["train", "--run-dir", str(path), *TINY]) == 2
    assert one_error_line(capsys) == (f"error: train: {path} is a file, not a folder; give --run-dir a folder "
                                      f"(it is created when missing)")
    assert path.read_text() == "not a folder"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "run")


def test_generate_out_a_folder_writes_the_default_name_inside_and_says_so(run_dir, tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    assert main(["generate", "a small red circle", "--run", str(run_dir), "--out", str(folder)]) == 0
    assert f"saved 1 generated image(s) to {folder / 'generated.png'}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["pictures"] and (folder / "generated.png").stat().st_size > 0


def test_generate_out_without_an_extension_adds_png_and_prints_that_name(run_dir, tmp_path, capsys):
    assert main(["generate", "a small red circle", "--run", str(run_dir), "--out", str(tmp_path / "noext")]) == 0
    assert f"saved 1 generated image(s) to {tmp_path / 'noext.png'}\n" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["noext.png"]


def test_retrieve_out_a_folder_writes_the_default_name_inside(run_dir, tmp_path, capsys):
    assert main(["retrieve", "a small red circle", "--run", str(run_dir), "-k", "2", "--out", str(tmp_path)]) == 0
    assert f"saved {tmp_path / 'retrieval.png'}" in capsys.readouterr().out
    assert (tmp_path / "retrieval.png").exists()


def test_a_figure_the_disk_refused_leaves_no_truncated_file(run_dir, tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    def full_disk(self, path, **kwargs):
        open(path, "wb").close()   # what a full disk leaves: the file created, nothing in it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    out = tmp_path / "grid.png"
    assert main(["generate", "a small red circle", "--run", str(run_dir), "--out", str(out)]) == 2
    assert one_error_line(capsys) == (f"error: generate: no space left on the disk: {out}; free some space or "
                                      f"write elsewhere")
    assert not out.exists()


@pytest.mark.parametrize("out, words", [
    ("figure.txt", "error: --out: cannot write a figure as '.txt'"),
    ("missing/figure.png", "error: --out: the folder"),
])
def test_an_out_that_cannot_be_written_is_refused_before_any_work(run_dir, tmp_path, capsys, monkeypatch, out,
                                                                  words):
    monkeypatch.setattr("tinymm.run.load_run", lambda *a, **k: pytest.fail("the run was loaded first"))
    assert main(["generate", "a small red circle", "--run", str(run_dir), "--out", str(tmp_path / out)]) == 2
    assert one_error_line(capsys).startswith(words)
