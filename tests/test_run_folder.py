"""A run folder has one writer, stays inside runs/, and is swept of killed writes' temp files."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import tinymm as tm
from tinymm.__main__ import main
from tinymm.train import TrainConfig, pipeline, run_training

# a tiny CLIP-only run: seconds, not minutes (used when an old tinymm would really train)
TINY_CLI = ["--quick", "--stages", "clip", "--steps", "30", "--eval-size", "20", "--batch-size", "8",
            "--embed-dim", "8"]


def tiny_config(**changes):
    return TrainConfig(**{"device": tm.get_default_device(), "stages": ("clip",), "steps": 4,
                          "batch_size": 8, "embed_dim": 8, "channels": (4, 8), "image_hidden": 16,
                          "text_width": 16, "log_every": 2, "checkpoint_every": 2, "eval_size": 20,
                          "warmup_steps": 1, **changes})


def start_training(run_dir, log_path, *more):
    """A real `python -m tinymm train` into run_dir that runs far longer than the test."""
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "tinymm", "train", "--run-dir", str(run_dir), *TINY_CLI,
                             "--steps", "1000000", *more], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def wait_for_lock(run_dir, pid, timeout=90):
    lock = run_dir / ".lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().split()[:1] == [str(pid)]:
            return lock.read_text()
        time.sleep(0.1)
    raise AssertionError(f"process {pid} never locked {run_dir}")


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()   # reaped: a zombie would still look alive to os.kill(pid, 0)


def test_a_second_training_into_a_locked_folder_stops_and_a_dead_holders_lock_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    first = start_training(run_dir, tmp_path / "first.log")
    second = third = None
    try:
        assert wait_for_lock(run_dir, first.pid) == f"{first.pid} {socket.gethostname()}\n"
        second = subprocess.run([sys.executable, "-m", "tinymm", "train", "--run-dir", str(run_dir), *TINY_CLI,
                                 "--seed", "1"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr == (f"error: train: {run_dir} is in use by process {first.pid} on "
                                 f"{socket.gethostname()} (its .lock); wait for that training to end or "
                                 f"use another --name; if none is running, delete {run_dir / '.lock'}\n")
        assert "seed" not in second.stdout
        assert first.poll() is None   # the first training goes on, untouched

        first.send_signal(signal.SIGKILL)   # no chance to clean up: its lock stays behind
        first.wait()
        assert (run_dir / ".lock").read_text().split()[0] == str(first.pid)
        # --resume: the first may have saved a checkpoint before it was killed (a fresh run would be refused)
        third = start_training(run_dir, tmp_path / "third.log", "--resume")
        wait_for_lock(run_dir, third.pid)
        note = f"note: taking over {run_dir / '.lock'}, left by process {first.pid}, which is no longer running"
        deadline = time.monotonic() + 30
        while note not in (tmp_path / "third.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert note in (tmp_path / "third.log").read_text()
    finally:
        for proc in (first, third):
            if proc is not None:
                stop(proc)


def test_the_lock_is_held_while_training_and_removed_after_an_interruption(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    seen = []

    def interrupted(config, folder, resume=False):
        seen.append((folder / ".lock").read_text() if (folder / ".lock").exists() else None)
        raise KeyboardInterrupt   # as Ctrl-C would, in the middle of the CLIP stage

    monkeypatch.setattr(pipeline, "train_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny_config(), run_dir)
    assert seen == [f"{os.getpid()} {socket.gethostname()}\n"]
    assert not (run_dir / ".lock").exists()


def test_a_live_lock_is_refused_in_one_line_and_left_alone(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = f"{os.getpid()} {socket.gethostname()}\n"   # this very process: certainly alive
    (run_dir / ".lock").write_text(holder)
    assert main(["train", "--run-dir", str(run_dir), *TINY_CLI]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"in use by process {os.getpid()}" in err
    assert (run_dir / ".lock").read_text() == holder
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]   # nothing written


def test_resume_without_a_run_is_an_error_not_a_fresh_run(tmp_path, capsys):
    typo = tmp_path / "typo"
    assert main(["train", "--resume", "--run-dir", str(typo), *TINY_CLI]) == 2
    assert capsys.readouterr().err == (f"error: train --resume: {typo} holds no run to continue (no "
                                       f"config.json); check the folder name, or leave out --resume to "
                                       f"start a new run\n")
    assert not typo.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(tm.errors.UserError, match="holds no run to continue"):
        run_training(tiny_config(), empty, resume=True)
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "ABS", "", "..", "a/b"])
def test_run_names_stay_inside_runs(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    if name == "ABS":
        name = str(tmp_path / "abs")
    assert main(["train", "--name", name, *TINY_CLI]) == 2
    assert capsys.readouterr().err == (f"error: train: the run name (--name) must be one plain folder name "
                                       f"inside runs/, got {name!r}; to train elsewhere, give --run-dir\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["runs"]   # nothing written anywhere
    with pytest.raises(tm.errors.UserError, match="one plain folder name"):
        run_training(tiny_config(name=name))


def test_stale_temporary_files_are_removed_at_start_and_at_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "judge").mkdir(parents=True)
    stale = [run_dir / f".clip.npz.{os.getpid()}.0123abcd.tmp", run_dir / "metrics.json.tmp",
             run_dir / "judge" / ".clip.npz.4242.89abcdef.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    (run_dir / "keep.txt").write_text("not ours to remove")
    run_training(tiny_config(), run_dir)
    assert not any(path.exists() for path in stale)
    assert (run_dir / "keep.txt").exists()
    note = f"note: removed 3 temporary file(s) left in {run_dir} by an interrupted write"
    assert note in capsys.readouterr().out

    (run_dir / ".caption.npz.77.deadbeef.tmp").write_bytes(b"")
    run_training(tiny_config(), run_dir, resume=True)
    assert not (run_dir / ".caption.npz.77.deadbeef.tmp").exists()
    assert f"note: removed 1 temporary file(s) left in {run_dir}" in capsys.readouterr().out
    assert tm.load(run_dir / "clip.npz")["step"] == 4
