"""Tests of the second renderer (tinymm/data/other_renderer.py), an evaluation set only.

The pictures are checked through their pixels: the colour a caption names is the colour drawn,
"large" is bigger than "small" for the same shape, each shape fills its box like that shape does.
And training never draws from it.
"""

import numpy as np
import pytest

from tinymm.config import TrainConfig, evaluation_sets
from tinymm.data import COLOURS, SHAPES, SIZES, ShapesCaptions, one_object_captions
from tinymm.data import other_renderer
from tinymm.data.augment import rgb_to_hsv
from tinymm.data.other_renderer import OtherRendererScenes

pytestmark = [pytest.mark.lesson12]

LIT = 0.35
HUE_CENTRE = {"red": 0, "yellow": 56, "green": 120, "cyan": 183, "blue": 228, "magenta": 302}


@pytest.fixture(scope="module")
def scenes():
    return OtherRendererScenes(n=600, seed=3)


def hue_name(pixels):
    """The colour name whose hue centre is nearest to the mean hue of (K, 3) pixels."""
    h, _, _ = rgb_to_hsv(pixels)
    angle = np.deg2rad(h)
    mean = np.rad2deg(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())) % 360
    gap = {name: min(abs(mean - c), 360 - abs(mean - c)) for name, c in HUE_CENTRE.items()}
    return min(gap, key=gap.get)


def test_shapes_range_and_captions(scenes):
    assert scenes.images.shape == (600, 3, 32, 32) and scenes.images.dtype == np.float32
    assert 0.0 <= scenes.images.min() and scenes.images.max() <= 1.0
    assert scenes.tokens.shape == (600, 12)
    assert set(scenes.captions) == set(one_object_captions())  # all 48, held-out pairs included
    assert len(scenes) == 600


def test_same_seed_same_pictures_other_seed_others():
    a, b = OtherRendererScenes(n=50, seed=1), OtherRendererScenes(n=50, seed=1)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert not np.array_equal(a.images, OtherRendererScenes(n=50, seed=2).images)


def test_given_captions_are_drawn_in_order():
    captions = ["a small red square", "a large cyan circle"]
    drawn = OtherRendererScenes(seed=0, captions=captions)
    assert drawn.captions == captions and drawn.images.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="one-object captions only"):
        OtherRendererScenes(captions=["a small red square left of a large cyan circle"])
    with pytest.raises(ValueError, match="n must be a positive int"):
        OtherRendererScenes(n=0)


def test_colour_drawn_is_the_colour_named(scenes):
    lit = scenes.images.max(axis=1) > LIT
    for i in range(len(scenes)):
        pixels = scenes.images[i].transpose(1, 2, 0)[lit[i]]
        assert len(pixels) > 10, scenes.captions[i]
        assert hue_name(pixels) == COLOURS[scenes.scenes["colour"][i]], scenes.captions[i]


def test_background_is_near_black_and_clean(scenes):
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    away = np.maximum(np.abs(xs - scenes.scenes["centre_x"][:, None, None]),
                      np.abs(ys - scenes.scenes["centre_y"][:, None, None]))
    far = away > scenes.scenes["width"][:, None, None] / 2 + 2  # two pixels clear of the object's box
    background = scenes.images.transpose(0, 2, 3, 1)[far]
    assert background.max() < 0.07
    # grey: the three channels of a background pixel agree up to the faint noise
    assert np.abs(background - background.mean(axis=1, keepdims=True)).max() < 0.03


def test_large_is_larger_than_small_for_every_shape(scenes):
    area = (scenes.images.max(axis=1) > LIT).sum(axis=(1, 2))
    for k, shape in enumerate(SHAPES):
        of_shape = scenes.scenes["shape"] == k
        small = area[of_shape & (scenes.scenes["size"] == SIZES.index("small"))]
        large = area[of_shape & (scenes.scenes["size"] == SIZES.index("large"))]
        assert small.max() < large.min(), shape


def test_each_shape_fills_its_box_like_that_shape(scenes):
    """Lit area over the lit bounding box: square ~1, circle ~pi/4, triangle ~1/2, cross below a circle."""
    lit = scenes.images.max(axis=1) > 0.5
    big = scenes.scenes["size"] == SIZES.index("large")
    fill = {}
    for k, shape in enumerate(SHAPES):
        ratios = []
        for i in np.flatnonzero(big & (scenes.scenes["shape"] == k)):
            ys, xs = np.nonzero(lit[i])
            ratios.append(len(ys) / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
        fill[shape] = float(np.mean(ratios))
    assert fill["square"] > 0.9
    assert 0.7 < fill["circle"] < 0.85
    assert 0.4 < fill["triangle"] < 0.6
    assert fill["cross"] < fill["circle"] - 0.1


def test_not_the_training_renderer():
    """Same captions, other pictures: the two renderers do not draw the same numbers."""
    theirs = ShapesCaptions("test", n=300, seed=0, one_object_fraction=1.0)
    ours = OtherRendererScenes(seed=0, captions=theirs.captions)
    assert np.abs(ours.images - theirs.images).mean() > 0.02
    lit = ours.images.max(axis=1) > LIT
    # the background of the other renderer has no tint and almost no noise; the training one has both
    assert ours.images.transpose(0, 2, 3, 1)[~lit].std(axis=0).max() < theirs.images.transpose(0, 2, 3, 1)[
        ~(theirs.images.max(axis=1) > LIT)].std(axis=0).max()


def test_evaluation_sets_include_it():
    sets = evaluation_sets(TrainConfig(eval_size=40))
    assert list(sets) == ["test", "compositional", "other_renderer"]
    assert isinstance(sets["other_renderer"], OtherRendererScenes) and len(sets["other_renderer"]) == 40


def test_training_never_draws_from_it(monkeypatch, tmp_path):
    """Break the second renderer, then train a few steps: training must not notice."""
    from tinymm.train import train_batch, train_clip

    def refuse(*args, **kwargs):
        raise AssertionError("training drew a picture with the other renderer")

    monkeypatch.setattr(other_renderer, "_draw", refuse)
    monkeypatch.setattr(other_renderer.OtherRendererScenes, "__init__", refuse)
    for augment in ("", "all"):
        config = TrainConfig(steps=2, batch_size=8, warmup_steps=1, log_every=1, checkpoint_every=10**9,
                             augment=augment, image_encoder="split")
        for step in range(3):
            assert train_batch(config, step).images.shape == (8, 3, 32, 32)
        _, history = train_clip(config, tmp_path / f"run{augment or 'plain'}")
        assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
