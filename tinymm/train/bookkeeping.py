"""What every training stage does besides learning: the bookkeeping of one loop.

A stage's loop (``clip.py``, ``decoders.py``) writes out its own step, where a reader sees it:

    for step in range(book.start, total):
        loss = ...forward...
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if book.log_due(step):        # every log_every steps, and at the last one
            value = loss.item()
            book.log(step, f"step {step + 1}  loss {value:.4f}", check=value, loss=value)
        book.step_done(step)          # the progress bar; a checkpoint when one is due
    book.finish()

``StageBook`` does the rest, the same way for every stage:

- resume: on ``--resume`` it loads the stage checkpoint (weights, optimiser, schedule, step,
  history) and the loop starts where it stopped;
- at each log interval: checks the loss is finite (else ``TrainingDiverged``, with the last
  good checkpoint untouched), appends to the history, prints a line and keeps it in
  ``train.log``;
- at each checkpoint interval and at the end: saves the checkpoint (atomically), with the
  seconds spent so far and how long train.log was;
- at the end: adds the stage's seconds to the history and saves them with it, so a resumed
  run counts its time in full (only the work lost after the last checkpoint is not counted).

A resumed stage redoes the steps after its last checkpoint (all of them when it had none
yet), so it would write their log lines a second time: a line the interrupted run already
wrote into train.log after that checkpoint is printed but not written again.
"""
import json
import math
import time
from collections import Counter
from pathlib import Path

from ..serialization import load, save, write_atomically


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Progress:
    """A progress bar with an ETA (tqdm), and a log file that keeps every printed line."""

    def __init__(self, total, desc, log_path=None, initial=0):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                        mininterval=1.0)
        self.log_path = log_path

    def update(self, n=1, **postfix):
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(n)

    def write(self, line, keep=True):
        """Print ``line`` above the bar; also append it to the log file when ``keep``."""
        self.bar.write(line)
        if keep and self.log_path is not None:
            log_line(self.log_path, line, echo=False)

    def close(self):
        self.bar.close()


def log_line(log_path, line, echo=True):
    """Print ``line`` (when ``echo``) and append it to the run's log file."""
    if echo:
        print(line)
    with open(log_path, "a") as f:
        f.write(line + "\n")


def write_json(path, obj):
    """Write JSON all or nothing (``write_atomically``): readers never see half a file."""
    text = json.dumps(obj, indent=2, sort_keys=True)
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def checkpoint_step(path):
    """The step a stage checkpoint reached; 0 when there is none yet."""
    path = Path(path)
    return int(load(path, required={"step": int})["step"]) if path.exists() else 0


class StageBook:
    """The bookkeeping of one stage's loop (see the module docstring).

    path        the stage checkpoint (e.g. run_dir/clip.npz); train.log sits beside it
    label       the name on the progress bar and in messages ("clip", "caption", ...)
    total       the stage's number of steps
    model, optimizer, schedule   what the checkpoint saves and a resume restores
    history     the empty history ({"step": [], "loss": [], ...}) of a fresh start
    log_every, checkpoint_every  the intervals, in steps
    lr_option   what to lower if the loss diverges (named in the message)
    """

    def __init__(self, path, label, total, model, optimizer, schedule, history, *, resume,
                 log_every, checkpoint_every, lr_option, log_path=None):
        self.path, self.label, self.total = Path(path), label, total
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.log_every, self.checkpoint_every, self.lr_option = log_every, checkpoint_every, lr_option
        self.history, self.start = history, 0
        self.log_path = Path(log_path or self.path.parent / "train.log")
        self.written_before = Counter()   # lines the interrupted run wrote after the checkpoint
        log_bytes = 0   # where the lines this session may write again begin in train.log
        if resume and self.path.exists():
            state = load(self.path, required={"model": dict, "optimizer": dict, "schedule": dict,
                                              "history": dict, "step": int})
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            self.history, self.start = state["history"], int(state["step"])
            log_bytes = state.get("log_bytes") if isinstance(state.get("log_bytes"), int) else None
        if resume and self.start < total and log_bytes is not None and self.log_path.is_file():
            with open(self.log_path, "rb") as f:
                f.seek(log_bytes)
                self.written_before = Counter(f.read().decode("utf-8", "replace").splitlines())
        self.seconds_before = self.history.get("seconds", 0.0)   # earlier sessions of this stage
        self.last_good = self.start if resume and self.path.exists() else None   # None: no checkpoint yet
        self.progress = Progress(total, label, self.log_path, initial=self.start)
        self.t0 = time.perf_counter()

    def write(self, line):
        """Print a line above the progress bar and keep it in train.log (once: see the module docstring)."""
        keep = self.written_before[line] == 0
        if not keep:
            self.written_before[line] -= 1
        self.progress.write(line, keep=keep)

    def log_due(self, step):
        """Is the end of ``step`` (counted from 0) a log point?"""
        return (step + 1) % self.log_every == 0 or step + 1 == self.total

    def log(self, step, line, check, **values):
        """At a log point: stop if ``check`` is not finite; record ``values``; write ``line``."""
        if not math.isfinite(check):
            self.progress.close()
            kept = ("no checkpoint was saved before it" if self.last_good is None else
                    f"the last good checkpoint (step {self.last_good}) in {self.path} is untouched")
            raise TrainingDiverged(f"train: the {self.label} loss became {check} at step {step + 1}; {kept}. "
                                   f"Try a smaller {self.lr_option}.")
        self.history["step"].append(step + 1)
        for key, value in values.items():
            self.history[key].append(value)
        self.progress.update(0, loss=f"{values['loss']:.4g}")
        self.write(line)

    def step_done(self, step):
        """After every step: move the bar; save the checkpoint when one is due."""
        self.progress.update(1)
        done = step + 1
        if done % self.checkpoint_every == 0 or done == self.total:
            self._save(done)
            self.last_good = done

    def _seconds(self):
        """Seconds this stage has taken so far, earlier sessions included."""
        return self.seconds_before + time.perf_counter() - self.t0

    def _save(self, step):
        self.history["seconds"] = self._seconds()
        log_bytes = self.log_path.stat().st_size if self.log_path.is_file() else 0
        save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
              "schedule": self.schedule.state_dict(), "history": self.history, "step": step,
              "log_bytes": log_bytes}, self.path)

    def finish(self):
        """Close the bar; add this session's seconds to the history, and to the checkpoint."""
        self.progress.close()
        self.history["seconds"] = self._seconds()
        if self.start < self.total:  # keep the time in the checkpoint for a later resume
            save({**load(self.path), "history": self.history}, self.path)
        return self.history
