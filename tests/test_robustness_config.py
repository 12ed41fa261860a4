"""config.json and the training options are checked at the door, field by field (issue 15).

Before these checks: config.json holding `[]` loaded as the defaults; a field of the wrong type
failed deep inside (`'int' object is not iterable`, a string of stages split into letters) or
not at all (channels [16, -1], device "tpu", lr inf, one_object_fraction 2); `eval_size` 10^9
ran out of memory after the whole CLIP stage; `--batch-size 1` trained at loss 0 and learned
nothing, `--batch-size 100000` ran out of memory; `--steps 50` died in the schedule with a
traceback (its warm-up of 100 steps was longer than the run); a pipe as config.json hung.
"""
import json
import os

import pytest

from tinymm.__main__ import main
from tinymm.config import MAX_BATCH, MAX_EVAL_SIZE, TrainConfig, read_config
from tinymm.errors import UserError


def write_config(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    return path


# ------------------------------------------------------------------ not a JSON object
@pytest.mark.parametrize("content, kind", [([], "a list"), (3, "a number"), ("x", "a string"), (None, "null")])
def test_a_config_that_is_not_an_object_names_the_file(tmp_path, content, kind):
    path = write_config(tmp_path, content)
    with pytest.raises(UserError) as err:
        read_config(path, "load_run")
    assert str(err.value) == (f"load_run: {path} must hold one JSON object of settings ({{\"seed\": 0, ...}}), "
                              f"got {kind}; restore the file or train the run again")


def test_a_pipe_as_config_json_is_refused_instead_of_hanging(tmp_path):
    path = tmp_path / "config.json"
    os.mkfifo(path)
    with pytest.raises(UserError, match="is not a regular file"):
        read_config(path, "load_run")


# ------------------------------------------------------------------ each field: kind and range
FIELDS = [
    # (field, bad value, what the message says it must be)
    ("steps", "10", "a whole number"),
    ("steps", 10.0, "a whole number"),
    ("steps", True, "a whole number"),
    ("steps", 0, "a whole number >= 1"),
    ("lr", "fast", "a finite number"),
    ("lr", float("inf"), "a finite number"),
    ("lr", -1, "a number >= 0"),
    ("name", ["a"], "a text"),
    ("device", "tpu", "'cpu' or 'cuda'"),
    ("device", 1, "a text"),
    ("loss", 1, "a text"),
    ("text_encoder", ["bow"], "a text"),
    ("channels", 5, "a list"),
    ("channels", "16,32", "a list"),
    ("channels", [16, -1], "a list of 2 whole numbers from 1 to 512"),
    ("channels", [], "a list of 2 whole numbers from 1 to 512"),
    ("image_channels", [0], "a list of 3 whole numbers from 1 to 512"),
    ("image_embed_hidden", -1, "a whole number from 0 to 4096 (0: no hidden layer)"),
    ("image_embed_hidden", 10**6, "a whole number from 0 to 4096"),
    ("image_embed_hidden", 2.5, "a whole number"),
    ("image_start_size", 16, "4 or 8"),
    ("stages", "clip", "a list"),
    ("stages", 3, "a list"),
    ("stages", ["clip", "foo"], "some of clip, caption, image, each once"),
    ("stages", ["clip", "clip"], "some of clip, caption, image, each once"),
    ("stages", [], "some of clip, caption, image, each once"),
    ("seed", -1, "a whole number >= 0"),
    ("eval_size", 10**9, f"a whole number from 1 to {MAX_EVAL_SIZE} (the evaluation compares every"),
    ("batch_size", 100000, f"a whole number from 2 to {MAX_BATCH} (one CLIP step on"),
    ("batch_size", 1, f"a whole number from 2 to {MAX_BATCH} (the CLIP loss tells each image's caption"),
    ("embed_dim", 10**9, "a whole number from 1 to 4096"),
    ("caption_context", 1000, "a whole number from 1 to 12 (a caption is at most 12 tokens long)"),
    ("warmup_steps", 2000, "a whole number from 0 to 1500 (at most steps)"),
    ("one_object_fraction", 2.0, "a number from 0 to 1"),
]


@pytest.mark.parametrize("field, value, what", FIELDS)
def test_each_bad_field_of_config_json_is_one_line_naming_file_field_and_default(tmp_path, field, value, what):
    path = write_config(tmp_path, {field: value})
    with pytest.raises(UserError) as err:
        read_config(path, "load_run")
    message = str(err.value)
    assert message.startswith(f"load_run: {path}: the field {field!r} must be {what}")
    assert f"got {value!r}; correct it in the file (the default is " in message
    assert "\n" not in message


def test_nan_in_config_json_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"lr": NaN}')   # Python's json writes and reads NaN
    with pytest.raises(UserError, match="the field 'lr' must be a finite number, got nan"):
        read_config(path, "load_run")


def test_unknown_settings_name_the_file(tmp_path):
    path = write_config(tmp_path, {"foo": 1})
    with pytest.raises(UserError, match=f"^load_run: {path}: unknown settings \\['foo'\\]"):
        read_config(path, "load_run")


def test_a_good_config_json_still_loads(tmp_path):
    config = TrainConfig(seed=3, steps=20, warmup_steps=2, stages=("clip", "image"), channels=(4, 8))
    path = write_config(tmp_path, config.to_dict())
    assert read_config(path, "load_run") == config


def test_a_config_json_saved_with_a_byte_order_mark_loads(tmp_path):
    """Some editors start UTF-8 files with a byte-order mark; json.loads alone refuses it."""
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(TrainConfig(seed=5).to_dict()).encode())
    assert read_config(path, "load_run").seed == 5


def test_mse_alignment_may_use_a_batch_of_one():
    """Only the CLIP loss needs other captions in the batch; the MSE baseline does not."""
    assert TrainConfig(loss="mse", batch_size=1).batch_size == 1
    with pytest.raises(UserError, match="batch_size \\(--batch-size\\) must be a whole number from 2"):
        TrainConfig(loss="clip", batch_size=1)


# ------------------------------------------------------------------ the command line, before any work
@pytest.mark.parametrize("option, value, words", [
    ("--batch-size", "1", "batch_size (--batch-size) must be a whole number from 2 to 8192 (the CLIP loss"),
    ("--batch-size", "100000", "batch_size (--batch-size) must be a whole number from 2 to 8192 (one CLIP step"),
    ("--eval-size", "0", "eval_size (--eval-size) must be a whole number from 1 to 10000"),
    ("--eval-size", "1000000000", "eval_size (--eval-size) must be a whole number from 1 to 10000 (the evaluation"),
    ("--seed", "-1", "seed (--seed) must be a whole number >= 0, got -1"),
])
def test_cli_options_are_refused_before_any_work(tmp_path, capsys, option, value, words):
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--stages", "clip", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config: ") and words in err and err.count("\n") == 1
    assert not run_dir.exists()   # refused at the door: nothing was trained or written


def test_steps_shorter_than_the_default_warm_up_train(tmp_path, capsys):
    """--steps 5 with the default warm-up of 100 steps: the warm-up shrinks to a tenth of the run."""
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--stages", "clip", "--steps", "5", "--batch-size", "8",
                 "--embed-dim", "8", "--eval-size", "20"]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["steps"], saved["warmup_steps"]) == (5, 0)
