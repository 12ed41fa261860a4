"""Training runs end to end: the loss falls, checkpoints resume exactly, runs load, the CLI works."""
import json

import numpy as np
import pytest

import tinymm as tm
from tinymm.train import clip as clip_stage, pipeline
from tinymm.__main__ import main
from tinymm.train import TrainConfig, TrainingDiverged, run_training, train_clip

pytestmark = pytest.mark.lesson12

TINY = dict(stages=("clip",), steps=40, batch_size=32, embed_dim=16, channels=(4, 8), image_hidden=32,
            text_width=32, log_every=10, checkpoint_every=20, eval_size=60, warmup_steps=5, lr=3e-3)


def tiny_config(**changes):
    # on the device under test (TrainConfig's own default is "cpu")
    return TrainConfig(**{"device": tm.get_default_device(), **TINY, **changes})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    # the plain recipe: in 40 steps of a tiny model, augmented pictures and the split encoder
    # (the defaults) lower the loss less than this test asks (test_held_out trains them)
    metrics = run_training(tiny_config(augment="", image_encoder="plain"), run_dir)
    return run_dir, metrics


def test_short_training_lowers_the_loss_and_beats_chance(tiny_run):
    run_dir, metrics = tiny_run
    history = tm.load(run_dir / "clip.npz")["history"]
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    test = metrics["test"]
    chance = 1.0 / test["n_captions"]
    assert test["t2i_r10"] > 5 * chance
    assert test["t2i_median_rank"] < test["n_captions"] / 3   # chance: about half of them


def test_run_folder_has_everything(tiny_run):
    run_dir, _ = tiny_run
    for name in ("clip.npz", "config.json", "metrics.json", "train.log", "loss.png", "similarity.png",
                 "retrieval.png", "zero_shot_confusion.png", "embeddings_pca.png"):
        assert (run_dir / name).exists(), name
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["steps"] == 40 and saved["embed_dim"] == 16
    assert "t2i_r1" in json.loads((run_dir / "metrics.json").read_text())["test"]


def test_same_seed_gives_bitwise_identical_losses(tmp_path):
    config = tiny_config(steps=6, log_every=2)
    _, first = train_clip(config, tmp_path / "a")
    _, second = train_clip(config, tmp_path / "b")
    assert first["loss"] == second["loss"]


def test_resume_continues_exactly(tmp_path):
    """Stopping after 10 steps and resuming gives the same weights as 20 steps in one go."""
    config = tiny_config(steps=20, log_every=5, checkpoint_every=10)
    straight, _ = train_clip(config, tmp_path / "straight")

    class Stop(Exception):
        pass

    real_batch = clip_stage.train_batch

    def batch_then_stop(cfg, step):
        if step == 10:
            raise Stop
        return real_batch(cfg, step)

    clip_stage.train_batch = batch_then_stop
    try:
        with pytest.raises(Stop):
            train_clip(config, tmp_path / "resumed")
    finally:
        clip_stage.train_batch = real_batch
    resumed, _ = train_clip(config, tmp_path / "resumed", resume=True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=name)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(steps=30, log_every=10, checkpoint_every=10)
    real_loss = clip_stage.alignment_loss

    def loss_goes_nan(model, images, tokens, captions, kind, _calls=[0]):
        _calls[0] += 1
        loss, floor = real_loss(model, images, tokens, captions, kind)
        return (loss * float("nan") if _calls[0] > 15 else loss), floor

    monkeypatch.setattr(clip_stage, "alignment_loss", loss_goes_nan)
    with pytest.raises(TrainingDiverged, match="last good checkpoint \\(step 10\\)"):
        train_clip(config, tmp_path)
    assert tm.load(tmp_path / "clip.npz")["step"] == 10


def test_training_twice_into_one_folder_needs_resume(tiny_run):
    run_dir, _ = tiny_run
    with pytest.raises(ValueError, match="--resume"):
        run_training(tiny_config(), run_dir)
    with pytest.raises(ValueError, match="different embed_dim"):
        run_training(tiny_config(embed_dim=8), run_dir, resume=True)


def test_load_run_retrieve_and_classify(tiny_run):
    run_dir, _ = tiny_run
    run = tm.load_run(run_dir)
    assert run.config.embed_dim == 16
    hits = run.retrieve("a small red circle", k=3)
    assert len(hits) == 3 and hits[0][1] >= hits[1][1] >= hits[2][1]
    captions = run.retrieve(run.gallery.images[0], k=4)
    assert len(captions) == 4 and all(isinstance(c, str) for c, _ in captions)
    probs = run.classify(run.gallery.images[:5], ["red circle", "blue square", "green cross"])
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_retrieve_embeds_the_default_gallery_and_captions_once(tiny_run, monkeypatch):
    run = tm.load_run(tiny_run[0])
    calls = {"images": 0, "texts": 0}
    encode_images, encode_texts = run.encode_images, run.encode_texts

    def counted(kind, encode):
        def wrapper(x, *args, **kwargs):
            calls[kind] += len(x)
            return encode(x, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(run, "encode_images", counted("images", encode_images))
    monkeypatch.setattr(run, "encode_texts", counted("texts", encode_texts))
    first = run.retrieve("a small red circle", k=5)
    again = run.retrieve("a large blue square", k=5)
    gallery_size = len(run.gallery.images)
    assert calls == {"images": gallery_size, "texts": 2}          # the gallery once, each query once
    assert first == run.retrieve("a small red circle", k=5, images=run.gallery.images)
    assert again != first
    image = run.gallery.images[3]
    hits = run.retrieve(image, k=3)
    run.retrieve(image, k=3)
    assert calls["texts"] == 3 + len(tm.data.ShapesCaptions.all_captions())  # 3 text queries so far
    assert hits == run.retrieve(image, k=3, captions=tm.data.ShapesCaptions.all_captions())


def test_load_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run folder"):
        tm.load_run(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    with pytest.raises(ValueError, match="incomplete"):
        tm.load_run(tmp_path / "half")


def test_bad_inputs_to_a_run(tiny_run):
    run = tm.load_run(tiny_run[0])
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        run.encode_images(np.zeros((2, 1, 32, 32)))
    with pytest.raises(ValueError, match="empty"):
        run.classify(run.gallery.images[:1], [])
    with pytest.raises(ValueError, match="item 1 is empty"):
        run.encode_texts(["a red circle", "  "])
    with pytest.raises(ValueError, match="no caption decoder.*--stages caption"):
        run.caption(run.gallery.images[:1])


def test_continuing_a_run_keeps_its_saved_settings(tmp_path):
    run_dir = tmp_path / "run"
    run_training(tiny_config(steps=6, log_every=2, warmup_steps=1, checkpoint_every=3), run_dir)
    config = pipeline.continued_config(run_dir, {"caption_steps": 7})
    assert (config.steps, config.embed_dim, config.channels, config.caption_steps) == (6, 16, (4, 8), 7)
    assert config.stages == ("clip", "caption", "image")   # the stages are the command line's
    assert pipeline.continued_config(tmp_path / "none", {"steps": 900}) == TrainConfig(steps=900)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read.*config.json"):
        pipeline.continued_config(tmp_path / "bad", {})


def test_cli_resume_without_repeating_the_settings_finishes_the_saved_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(tiny_config(steps=6, log_every=2, warmup_steps=1, checkpoint_every=3), run_dir)
    before = json.loads((run_dir / "config.json").read_text())
    # resumed with none of its settings on the command line: the model is rebuilt from
    # config.json (embed_dim 16, 6 steps), not from the defaults (64, 1500 steps)
    assert main(["train", "--run-dir", str(run_dir), "--resume", "--stages", "clip"]) == 0
    after = json.loads((run_dir / "config.json").read_text())
    assert after == before and after["steps"] == 6 and after["embed_dim"] == 16
    checkpoint = tm.load(run_dir / "clip.npz")
    assert checkpoint["step"] == 6 and checkpoint["schedule"]["total_steps"] == 6


def test_cli_retrieve_and_classify(tiny_run, tmp_path, capsys):
    from PIL import Image
    run_dir, _ = tiny_run
    out = tmp_path / "gallery.png"
    assert main(["retrieve", "--run", str(run_dir), "a", "small", "red", "circle", "-k", "3",
                 "--out", str(out)]) == 0
    assert out.exists()
    image = (tm.load_run(run_dir).gallery.images[0].transpose(1, 2, 0) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "scene.png")
    assert main(["retrieve", "--run", str(run_dir), "--image", str(tmp_path / "scene.png"), "-k", "2"]) == 0
    assert main(["classify", str(tmp_path / "scene.png"), "--run", str(run_dir),
                 "--labels", "red circle", "blue square"]) == 0
    printed = capsys.readouterr().out
    assert "red circle" in printed and "blue square" in printed
    assert main(["classify", str(tmp_path / "nope.png"), "--run", str(run_dir), "--labels", "x"]) == 2
    assert main(["retrieve", "--run", str(tmp_path / "nowhere"), "x"]) == 2


def test_load_or_train_reuses_a_compatible_run(tmp_path, capsys):
    from tinymm.train import load_or_train
    config = tiny_config(steps=4, log_every=2, warmup_steps=1)
    first = load_or_train(config, tmp_path / "shared")
    second = load_or_train(config, tmp_path / "shared")
    assert "reusing the dual encoder" in capsys.readouterr().out
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    longer = load_or_train(tiny_config(steps=6, log_every=2, warmup_steps=1), tmp_path / "other", also_try=[tmp_path / "shared"])
    assert longer.config.steps == 6   # a run trained for fewer steps is not reused


def test_cli_shows_a_bug_with_its_traceback_and_a_mistake_in_one_line(tmp_path, monkeypatch, capsys):
    import tinymm.__main__ as cli

    def buggy(args):
        raise TypeError("a bug inside tinymm")

    monkeypatch.setattr(cli, "cmd_gradcheck", buggy)
    with pytest.raises(TypeError, match="a bug inside tinymm"):   # not swallowed into one line
        cli.main(["gradcheck"])
    assert cli.main(["train", "--steps", "0", "--run-dir", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "error: config: steps (--steps) must be a whole number >= 1, got 0\n"
    assert not (tmp_path / "run").exists()
    with pytest.raises(tm.errors.UserError, match=r"config: caption_lr must be a number >= 0, got -0.1"):
        TrainConfig(caption_lr=-0.1)
