"""load_run is honest about what it loads (issue 15).

Before: a half-trained clip.npz (step 75 of 150) was used without a word; a damaged
metrics.json (a JSONDecodeError traceback) or a damaged caption.npz (a CheckpointError) stopped
`retrieve`, which needs neither; the decoders' checkpoints were read without checking their
structure. Now an unfinished dual encoder loads with a one-line warning naming the file, and a
damaged optional part is left out with a warning, its reason kept for the command that needs it.
"""
import json
import warnings

import numpy as np
import pytest

import tinymm as tm
from tinymm.__main__ import main
from tinymm.config import TrainConfig
from tinymm.data import shapes_tokenizer
from tinymm.errors import CheckpointError, UserError
from tinymm.models.build import build_caption_decoder, build_dual_encoder, build_image_decoder
from tinymm.run import load_run

SMALL = dict(embed_dim=8, channels=(4, 8), image_hidden=16, text_width=16, caption_hidden=16,
             image_channels=(8, 4, 4), prior_hidden=16, steps=20, caption_steps=10, image_steps=10,
             warmup_steps=1, eval_size=20)


def make_run(run_dir, clip_step=20, caption_step=10, image_step=10):
    """A run folder as training leaves it (untrained weights: loading is what is tested)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(**SMALL)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    tokenizer = shapes_tokenizer()
    tm.save({"model": build_dual_encoder(config, tokenizer).state_dict(), "step": clip_step}, run_dir / "clip.npz")
    tm.save({"model": build_caption_decoder(config, tokenizer).state_dict(), "step": caption_step},
            run_dir / "caption.npz")
    tm.save({"model": build_image_decoder(config).state_dict(), "step": image_step}, run_dir / "image.npz")
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"t2i_r1": 0.5}}))
    return run_dir


def load_quietly(run_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(run_dir, device=tm.get_default_device())
    return run, [str(w.message) for w in caught]


def test_a_complete_run_loads_without_a_warning(tmp_path):
    run, said = load_quietly(make_run(tmp_path / "run"))
    assert said == [] and run.problems == {}
    assert run.caption_decoder is not None and run.image_decoder is not None
    assert run.metrics == {"test": {"t2i_r1": 0.5}}


def test_a_dual_encoder_that_stopped_early_loads_with_a_warning_naming_the_file(tmp_path):
    run_dir = make_run(tmp_path / "run", clip_step=7)
    run, said = load_quietly(run_dir)
    assert said == [f"load_run: the dual encoder in {run_dir / 'clip.npz'} stopped at step 7 of 20; finish it "
                    f"with python -m tinymm train --run-dir {run_dir} --resume"]
    assert len(run.retrieve("a small red circle", k=3)) == 3   # still usable


@pytest.mark.parametrize("damage, words", [
    ("{not json", "is damaged (Expecting property name"),
    ("[1, 2]", "is damaged (it holds a JSON list, not an object)"),
    (b"\xff\xfe", "is damaged ("),
])
def test_a_damaged_metrics_json_is_skipped_with_a_warning(tmp_path, damage, words):
    run_dir = make_run(tmp_path / "run")
    path = run_dir / "metrics.json"
    path.write_bytes(damage if isinstance(damage, bytes) else damage.encode())
    run, said = load_quietly(run_dir)
    assert len(said) == 1 and said[0].startswith(f"load_run: {path} {words}")
    assert run.metrics == {}
    assert len(run.retrieve("a small red circle", k=2)) == 2


def test_a_damaged_caption_decoder_leaves_retrieve_working_and_caption_says_why(tmp_path):
    run_dir = make_run(tmp_path / "run")
    (run_dir / "caption.npz").write_bytes(b"this is not a checkpoint")
    run, said = load_quietly(run_dir)
    assert len(said) == 1 and said[0].startswith("load_run: left out the caption decoder: ")
    assert str(run_dir / "caption.npz") in said[0]
    assert run.caption_decoder is None and run.image_decoder is not None
    assert len(run.retrieve("a small red circle", k=2)) == 2
    images = np.full((1, 3, 32, 32), 0.5, dtype=np.float32)
    with pytest.raises(UserError, match=f"^caption: the caption decoder of {run_dir} could not be loaded: "):
        run.caption(images)
    assert run.generate(["a small red circle"]).shape == (1, 3, 32, 32)


def test_a_decoder_checkpoint_without_its_weights_is_refused_by_structure(tmp_path):
    run_dir = make_run(tmp_path / "run")
    tm.save({"step": 10}, run_dir / "image.npz")   # no "model": the required structure is checked
    run, said = load_quietly(run_dir)
    assert run.image_decoder is None and "'model'" in run.problems["image"]
    with pytest.raises(UserError, match="^generate: the image decoder of .* could not be loaded: "):
        run.generate(["a small red circle"])


def test_an_unfinished_decoder_is_left_out_with_the_command_that_finishes_it(tmp_path):
    run_dir = make_run(tmp_path / "run", caption_step=4)
    run, said = load_quietly(run_dir)
    assert said == [f"load_run: left out the caption decoder: the caption decoder in {run_dir / 'caption.npz'} "
                    f"stopped at step 4 of 10; finish it with python -m tinymm train --run-dir {run_dir} "
                    f"--stages caption --resume"]


def test_a_clip_checkpoint_that_does_not_fit_config_json_names_both_files(tmp_path):
    run_dir = make_run(tmp_path / "run")
    saved = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**saved, "embed_dim": 12}))
    with pytest.raises(CheckpointError, match=f"^load_run: {run_dir / 'clip.npz'} does not hold the model "
                                              f"{run_dir / 'config.json'} describes"):
        load_run(run_dir)


def test_cli_retrieve_works_with_broken_optional_parts_and_warns_in_one_line(tmp_path, capsys, monkeypatch):
    run_dir = make_run(tmp_path / "run")
    (run_dir / "caption.npz").write_bytes(b"damaged")
    (run_dir / "metrics.json").write_text("{")
    monkeypatch.chdir(tmp_path)
    assert main(["retrieve", "a small red circle", "--run", str(run_dir), "-k", "2"]) == 0
    out, err = capsys.readouterr()
    lines = err.strip().split("\n")
    assert [line.split(":")[0] for line in lines] == ["warning", "warning"]
    assert "metrics.json is damaged" in err and "left out the caption decoder" in err
    assert "saved retrieval.png" in out
    assert main(["caption", str(tmp_path / "retrieval.png"), "--run", str(run_dir)]) == 2
    assert "error: caption: the caption decoder of" in capsys.readouterr().err
