"""Resuming keeps the run folder's records straight, and survives a kill in the middle of a save
(issue 15).

Before: a resumed stage wrote the log lines after its last checkpoint a second time; the time
spent before the interruption was lost (metrics.json said clip_seconds 0.0 after a resume,
and total_seconds counted only the last session); every resume evaluated the finished CLIP
again and redrew its figures; "the last checkpoint is intact" was printed when none existed;
load_or_train wrote into a folder without its lock.
"""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import tinymm as tm
from tinymm import plots
from tinymm.__main__ import main
from tinymm.errors import UserError
from tinymm.train import TrainConfig, TrainingDiverged, clip as clip_stage, load_or_train, pipeline, run_training
from tinymm.train.clip import train_clip


def tiny_config(**changes):
    return TrainConfig(**{"device": tm.get_default_device(), "stages": ("clip",), "steps": 10, "batch_size": 8,
                          "embed_dim": 8, "channels": (4, 8), "image_hidden": 16, "text_width": 16,
                          "log_every": 1, "checkpoint_every": 4, "eval_size": 20, "warmup_steps": 1, **changes})


def interrupt_at(monkeypatch, call, sleep=0.0):
    """Make the CLIP loss raise KeyboardInterrupt on its ``call``-th use (sleeping before each)."""
    real = clip_stage.alignment_loss
    calls = [0]

    def loss(*args):
        calls[0] += 1
        time.sleep(sleep)
        if calls[0] == call:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(clip_stage, "alignment_loss", loss)
    return lambda: monkeypatch.setattr(clip_stage, "alignment_loss", real)


def step_lines(log_path):
    return [line for line in log_path.read_text().splitlines() if line.startswith("step")]


# ------------------------------------------------------------------ train.log
def test_a_resumed_stage_does_not_write_its_log_lines_twice(tmp_path, monkeypatch):
    config = tiny_config()
    train_clip(config, tmp_path / "whole")
    restore = interrupt_at(monkeypatch, call=7)   # checkpoint at step 4, steps 5 and 6 logged after it
    with pytest.raises(KeyboardInterrupt):
        train_clip(config, tmp_path / "cut")
    restore()
    assert len(step_lines(tmp_path / "cut" / "train.log")) == 6
    train_clip(config, tmp_path / "cut", resume=True)
    lines = step_lines(tmp_path / "cut" / "train.log")
    assert lines == step_lines(tmp_path / "whole" / "train.log")   # each step once, in order
    assert max(Counter(lines).values()) == 1


def test_a_stage_interrupted_before_its_first_checkpoint_logs_once_too(tmp_path, monkeypatch):
    config = tiny_config()
    restore = interrupt_at(monkeypatch, call=3)
    with pytest.raises(KeyboardInterrupt):
        train_clip(config, tmp_path)
    restore()
    assert not (tmp_path / "clip.npz").exists()
    train_clip(config, tmp_path, resume=True)
    assert [line.split()[1] for line in step_lines(tmp_path / "train.log")] == [str(s) for s in range(1, 11)]


# ------------------------------------------------------------------ seconds
def test_seconds_are_carried_across_a_resume_and_total_is_the_sum_of_the_pieces(tmp_path, monkeypatch):
    config = tiny_config(steps=8)
    restore = interrupt_at(monkeypatch, call=7, sleep=0.25)   # six steps of at least 0.25 s, then cut
    with pytest.raises(KeyboardInterrupt):
        run_training(config, tmp_path)
    restore()
    assert tm.load(tmp_path / "clip.npz")["history"]["seconds"] >= 4 * 0.25   # saved with the checkpoint
    metrics = run_training(config, tmp_path, resume=True)["train"]
    assert metrics["clip_seconds"] >= 4 * 0.25   # the four steps before the checkpoint are counted
    pieces = [v for k, v in metrics.items() if k.endswith("_seconds") and k != "total_seconds"]
    assert sorted(k for k in metrics if k.endswith("_seconds")) == ["clip_eval_seconds", "clip_seconds",
                                                                     "total_seconds"]
    assert metrics["total_seconds"] == round(sum(pieces), 1)


# ------------------------------------------------------------------ evaluation not repeated
def test_a_finished_clip_stage_is_not_evaluated_again_on_resume(tmp_path, monkeypatch):
    config = tiny_config()
    first = run_training(config, tmp_path)
    figure_time = (tmp_path / "loss.png").stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("the finished CLIP was evaluated again")

    monkeypatch.setattr(pipeline, "evaluate_dual_encoder", must_not_run)
    monkeypatch.setattr(plots, "clip_figures", must_not_run)
    again = run_training(config, tmp_path, resume=True)
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)   # (NaN equals itself there)
    assert (tmp_path / "loss.png").stat().st_mtime_ns == figure_time
    assert "clip: finished earlier; its evaluation and figures are kept" in (tmp_path / "train.log").read_text()
    assert (tmp_path / "train.log").read_text().count("n_scenes") == 1   # the table is not logged twice


def test_a_resume_with_another_eval_size_evaluates_again(tmp_path):
    run_training(tiny_config(), tmp_path)
    metrics = run_training(tiny_config(eval_size=24), tmp_path, resume=True)
    assert metrics["test"]["n_scenes"] == 24


# ------------------------------------------------------------------ what an interruption says
def test_interrupted_before_any_checkpoint_does_not_claim_one(tmp_path, monkeypatch, capsys):
    interrupt_at(monkeypatch, call=2)
    run_dir = tmp_path / "run"
    args = ["train", "--run-dir", str(run_dir), "--stages", "clip", "--steps", "10", "--batch-size", "8",
            "--embed-dim", "8", "--eval-size", "20"]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "intact" not in err
    assert f"interrupted before the first checkpoint: {run_dir} holds nothing to continue from" in err


def test_interrupted_after_a_checkpoint_names_it_and_the_resume_command(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    interrupt_at(monkeypatch, call=6)   # after the checkpoint at step 4
    assert main(["train", "--run-dir", str(run_dir), "--resume"]) == 130
    assert (f"interrupted: the checkpoints in {run_dir} (clip.npz) are intact; continue with python -m tinymm "
            f"train --run-dir {run_dir} --resume") in capsys.readouterr().err


def test_a_loss_that_diverges_before_any_checkpoint_does_not_claim_one(tmp_path, monkeypatch):
    real = clip_stage.alignment_loss
    monkeypatch.setattr(clip_stage, "alignment_loss",
                        lambda *args: (real(*args)[0] * float("nan"), 0.0))
    with pytest.raises(TrainingDiverged, match="at step 1; no checkpoint was saved before it. Try a smaller --lr"):
        train_clip(tiny_config(), tmp_path)


# ------------------------------------------------------------------ load_or_train and the lock
def test_load_or_train_takes_the_run_folder_lock(tmp_path):
    run_dir = tmp_path / "lesson"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket
        (run_dir / ".lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        with pytest.raises(UserError, match=f"is in use by process {holder.pid}"):
            load_or_train(tiny_config(steps=2), run_dir)
        assert not (run_dir / "clip.npz").exists()
    finally:
        holder.kill()
        holder.wait()
    run = load_or_train(tiny_config(steps=2), run_dir)   # the dead holder's lock is taken over
    assert (run_dir / "clip.npz").exists() and not (run_dir / ".lock").exists()
    assert run.config.steps == 2


def test_load_or_train_does_not_reuse_a_run_that_stopped_early(tmp_path, capsys):
    run_dir = tmp_path / "lesson"
    config = tiny_config(steps=6)
    load_or_train(config, run_dir)
    state = tm.load(run_dir / "clip.npz")
    tm.save({**state, "step": 3}, run_dir / "clip.npz")   # as if it had stopped at step 3 of 6
    capsys.readouterr()
    run = load_or_train(config, run_dir)
    assert f"cannot reuse {run_dir}: {run_dir / 'clip.npz'} stopped at step 3 of 6" in capsys.readouterr().out
    assert tm.load(run_dir / "clip.npz")["step"] == 6 and run.problems == {}


# ------------------------------------------------------------------ a kill -9 during a save
KILL_CONFIG = dict(stages=("clip",), steps=40, batch_size=8, log_every=5, checkpoint_every=1, eval_size=20,
                   warmup_steps=2)


def start_resume(run_dir):
    """`train --resume` on a folder whose config.json asks for a checkpoint after every step;
    its output goes to run_dir/../NAME.out (a pipe nobody reads could fill up and stall it)."""
    with open(run_dir.parent / f"{run_dir.name}.out", "a") as out:
        return subprocess.Popen([sys.executable, "-m", "tinymm", "train", "--run-dir", str(run_dir), "--resume",
                                 "--stages", "clip"], stdout=out, stderr=subprocess.STDOUT)


def kill_during_a_save(run_dir, timeout=60):
    """Start a training and SIGKILL it the moment a checkpoint's temporary file appears while
    an earlier checkpoint exists (so it overwrites one); -> True when the kill landed inside the
    write (the temporary file was left behind)."""
    proc = start_resume(run_dir)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            names = os.listdir(run_dir)
            if "clip.npz" in names and any(name.endswith(".tmp") for name in names):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return any(name.endswith(".tmp") for name in os.listdir(run_dir))


def test_a_kill_during_a_checkpoint_write_resumes_to_the_uninterrupted_result(tmp_path):
    config = TrainConfig(**{"device": tm.get_default_device(), **KILL_CONFIG})
    reference = run_training(config, tmp_path / "whole")

    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    landed = [kill_during_a_save(run_dir) for _ in range(3)]
    assert any(landed), "no kill landed inside a checkpoint write in three tries"
    assert tm.load(run_dir / "clip.npz")["step"] < config.steps   # the run really was cut short

    proc = start_resume(run_dir)
    assert proc.wait(timeout=300) == 0
    out = (tmp_path / "killed.out").read_text()
    assert "note: removed" in out and "temporary file(s) left in" in out
    assert not [p for p in run_dir.rglob("*.tmp")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in reference:
        if split != "train":   # (compared as JSON, where NaN equals itself)
            assert json.dumps(metrics[split], sort_keys=True) == json.dumps(reference[split], sort_keys=True)
    assert metrics["train"]["clip_final_loss"] == reference["train"]["clip_final_loss"]
    whole, killed = tm.load(tmp_path / "whole" / "clip.npz"), tm.load(run_dir / "clip.npz")
    for name, value in whole["model"].items():
        np.testing.assert_array_equal(killed["model"][name], value, err_msg=name)
