"""classify and retrieve --image say what they did to a user's file, and when not to trust the answer.

A softmax always sums to 1, so zero-shot classification gives confident-looking probabilities
for a picture of anything. ``Run.scene_check`` compares two numbers per picture with what fresh
true test scenes give (``Run.scene_limits``, measured from the model when first needed): the
best cosine with any caption of the grammar, and the length of the image features before the
L2 norm. The API warns (``UnlikeTrainingWarning``); the command line prints one line per file.

Most tests use the 40-step run of test_train.py (16-d embeddings). Its captions crowd a 16-d
sphere, so every picture has a caption close by and its best-cosine limit catches little there;
the feature length already tells bright, busy or noisy pictures from the dark scenes. The slow
test at the end checks lesson 12's model (64-d, 1,000 steps), where a blank black picture is
caught by its best caption cosine.
"""
import re
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

import tinymm as tm
from tinymm.__main__ import main
from tinymm.data import ShapesCaptions
from tinymm.run import SCENE_CHECK_SCENES, SceneLimits, UnlikeTrainingWarning

from test_train import tiny_run  # noqa: F401  (tiny_run: the 40-step run fixture)

pytestmark = pytest.mark.lesson13

LABELS = ["red circle", "blue square"]


def _chw(image):
    return (np.asarray(image.convert("RGB"), dtype=np.float32) / 255).transpose(2, 0, 1)


def _text(background, ink):
    image = Image.new("RGB", (32, 32), background)
    draw = ImageDraw.Draw(image)
    draw.text((1, 8), "Hello", fill=ink)
    draw.text((1, 18), "world", fill=ink)
    return _chw(image)


def _photo_like(seed=0):
    """A smooth random colour field: blotches of colour everywhere, as in a photo."""
    coarse = np.random.default_rng(seed).uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    return _chw(Image.fromarray(coarse).resize((32, 32), Image.BICUBIC))


def _junk():
    """Pictures nothing like the dark scenes of a few shapes the model was trained on."""
    scene = ShapesCaptions("test", n=1, seed=5).images[0]
    return {
        "uniform noise": np.random.default_rng(0).uniform(0, 1, (3, 32, 32)).astype(np.float32),
        "photo-like": _photo_like(),
        "blank white": np.ones((3, 32, 32), np.float32),
        "blank grey": np.full((3, 32, 32), 0.5, np.float32),
        "text, black on white": _text("white", "black"),
        "a scene on a bright background": np.clip(scene + 0.5, 0, 1),
    }


@pytest.fixture(scope="module")
def run(tiny_run):  # noqa: F811
    return tm.load_run(tiny_run[0])


def test_scene_limits_are_quantiles_over_fresh_test_scenes(run, tiny_run):  # noqa: F811
    before = sorted(p.name for p in tiny_run[0].iterdir())
    limits = run.scene_limits
    assert isinstance(limits, SceneLimits) and limits.n_scenes == SCENE_CHECK_SCENES == 1000
    assert run.scene_limits is limits                                   # measured once, then cached
    # the 40-step run measures about 0.65 and 0.77: true scenes sit near a caption, features short
    assert 0.5 < limits.min_cosine < 0.8
    assert 0.4 < limits.max_length < 1.2
    # what the limits mean: all but 1 in 200 of those scenes are inside each of them
    scenes = ShapesCaptions("test", n=1000, seed=run.config.seed + 54321)
    check = run.scene_check(scenes.images)
    assert (check.best_cosine < limits.min_cosine).sum() == 5
    assert (check.length > limits.max_length).sum() == 5
    assert np.median(check.best_cosine) > limits.min_cosine + 0.03
    assert np.median(check.length) < 0.6 * limits.max_length
    # nothing was written into the run folder: an old run folder works as it is
    assert sorted(p.name for p in tiny_run[0].iterdir()) == before
    assert tm.load_run(tiny_run[0]).scene_limits == limits              # and the same numbers again


def test_few_fresh_true_scenes_are_called_unlike_the_training_scenes(run):
    check = run.scene_check(ShapesCaptions("test", n=1000, seed=99).images)
    assert check.unlike.shape == (1000,) and check.best_cosine.shape == check.length.shape == (1000,)
    assert check.unlike.mean() <= 0.03          # about 1 in 100 by construction (1.4% measured)
    assert all((reason == "") == (not unlike) for reason, unlike in zip(check.reasons, check.unlike))


def test_bright_busy_or_noisy_pictures_are_called_unlike_with_their_numbers(run):
    junk = _junk()
    check = run.scene_check(np.stack(list(junk.values())))
    limits = run.scene_limits
    for name, length, reason in zip(junk, check.length, check.reasons):
        # their features are at least 1.5 times longer than 199 in 200 true scenes' (1.6 to 4 measured)
        assert length > 1.5 * limits.max_length, name
        assert f"its image features are {length:.3f} long before normalising, while 199 in 200 true " \
               f"scenes give <= {limits.max_length:.3f}" in reason, name
    assert check.unlike.all()


def test_scenes_drawn_by_another_program_are_not_called_unlike_for_that_alone(run):
    """Dark scenes of a few shapes drawn with Pillow (tinymm.data.other_renderer): the 40-step model
    flags 2.8% of them, about as many as true scenes. (Lesson 12's model flags 36% by their best
    caption cosine: it has learned its own renderer's accidents, the weakness issue 16 is about.)"""
    from tinymm.data.other_renderer import OtherRendererScenes
    check = run.scene_check(OtherRendererScenes(n=1000, seed=3).images)
    assert check.unlike.mean() <= 0.06


def test_classify_warns_about_the_unlike_images_and_still_returns_probabilities(run):
    scenes = ShapesCaptions("test", n=1000, seed=99)
    inside = np.flatnonzero(~run.scene_check(scenes.images).unlike)[:3]
    images = np.stack([scenes.images[inside[0]], _photo_like(), np.ones((3, 32, 32), np.float32)])
    with pytest.warns(UnlikeTrainingWarning) as record:
        probs = run.classify(images, LABELS)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    message = str(record[0].message)
    assert message.startswith("classify: 2 of 3 image(s) look unlike the training scenes, so their "
                              "probabilities are not to be trusted (image 1: its ")
    assert "; image 2: its " in message and "image 0" not in message
    assert message.endswith("run.scene_check(images) gives the numbers")
    assert issubclass(UnlikeTrainingWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnlikeTrainingWarning)   # true scenes: no warning at all
        assert run.classify(scenes.images[inside], LABELS).shape == (3, 2)
        run.retrieve(scenes.images[inside[1]], k=2)


def test_retrieve_by_image_warns_too(run):
    with pytest.warns(UnlikeTrainingWarning, match=r"^retrieve: 1 of 1 image\(s\) look unlike the training "
                                                   r"scenes, so their captions are not to be trusted"):
        hits = run.retrieve(_text("white", "black"), k=3)
    assert len(hits) == 3


def test_the_cli_says_what_it_did_to_each_file_and_warns_before_the_results(run, tiny_run, tmp_path,  # noqa: F811
                                                                             capsys):
    scenes = ShapesCaptions("test", n=1000, seed=99)
    inside = int(np.flatnonzero(~run.scene_check(scenes.images).unlike)[0])
    scene = tmp_path / "scene.png"
    Image.fromarray(np.round(scenes.images[inside].transpose(1, 2, 0) * 255).astype(np.uint8)).save(scene)
    photo = tmp_path / "photo.png"                    # 640x480 with a transparent top quarter
    pixels = np.asarray(Image.fromarray((_photo_like() * 255).astype(np.uint8).transpose(1, 2, 0))
                        .resize((640, 480), Image.BICUBIC).convert("RGBA")).copy()
    pixels[:120, :, 3] = 0
    Image.fromarray(pixels).save(photo)
    assert not run.scene_check(tm.data.load_image(str(scene))).unlike[0]   # the PNG's rounding changes nothing
    capsys.readouterr()

    assert main(["classify", str(scene), str(photo), "--run", str(tiny_run[0]), "--labels", *LABELS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{scene}: used as it is (32x32 RGB)"
    assert lines[1] == (f"{photo}: alpha dropped: 25% of the pixels were (partly) transparent and are laid on "
                        f"black, resized from 640x480 to 32x32 (its centre 480x480 square, so the aspect ratio "
                        f"is kept: 160 columns cut off at the sides)")
    limits = run.scene_limits
    warning = re.fullmatch(rf"warning: {re.escape(str(photo))} looks unlike the training scenes: .*its image "
                           rf"features are (\d+\.\d{{3}}) long before normalising, while 199 in 200 true scenes "
                           rf"give <= (\d\.\d{{3}}); the probabilities below are not to be trusted", lines[2])
    assert warning and float(warning[2]) == round(limits.max_length, 3) and float(warning[1]) > limits.max_length
    assert lines[3] == str(scene) and lines[6] == str(photo)            # then the results, as before
    assert not any(str(scene) in line and "warning" in line for line in lines)

    assert main(["retrieve", "--run", str(tiny_run[0]), "--image", str(photo), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"{photo}: alpha dropped: 25% of the pixels were (partly) transparent and are laid on "
                        f"black, resized from 640x480 to 32x32 (its centre 480x480 square, so the aspect ratio "
                        f"is kept: 160 columns cut off at the sides)")
    assert lines[1].startswith(f"warning: {photo} looks unlike the training scenes: ")
    assert lines[1].endswith("; the captions below are not to be trusted")
    assert lines[2] == f"captions closest to {photo}:" and len(lines) == 5


@pytest.mark.slow
def test_lesson_12s_model_also_catches_a_blank_black_picture_by_its_best_caption_cosine(tmp_path):
    from tinymm.train import TrainConfig, run_training
    config = TrainConfig(stages=("clip",), steps=1000, batch_size=128, warmup_steps=100, log_every=100,
                         checkpoint_every=10**9, device=tm.get_default_device())  # lesson 12's dual encoder
    run_training(config, tmp_path / "lesson12")
    run = tm.load_run(tmp_path / "lesson12")
    limits = run.scene_limits
    # 0.84 and 0.93 measured; a blank black picture: 0.61
    assert 0.7 < limits.min_cosine < 0.95 and 0.4 < limits.max_length < 2.0
    black = np.zeros((1, 3, 32, 32), np.float32)
    check = run.scene_check(black)
    assert check.best_cosine[0] < limits.min_cosine - 0.1 and check.length[0] < limits.max_length
    assert check.reasons[0].startswith(f"its best caption cosine is {check.best_cosine[0]:.3f}, while 199 in 200")
    junk = _junk()
    assert run.scene_check(np.stack([*junk.values(), _text("black", "white")])).unlike.all()
    assert run.scene_check(ShapesCaptions("test", n=1000, seed=99).images).unlike.mean() <= 0.03
