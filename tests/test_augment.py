"""Tests of the training augmentation (tinymm/data/augment.py and its use in tinymm/data/shapes.py).

Augmentation may change how a scene looks, never what its caption says: sizes stay in their
class, colours keep their name, objects stay inside the picture and apart. Its settings live in
the run's config, which must still read the config.json of runs made before they existed.
"""

import json

import numpy as np
import pytest

from tinymm.config import TrainConfig, read_config
from tinymm.data import COLOURS, SIZES, ShapesCaptions
from tinymm.data import augment as aug
from tinymm.data.augment import INGREDIENTS, Augment, hsv_to_rgb, rgb_to_hsv
from tinymm.data.shapes import IMAGE_SIZE, MARGIN, MIN_GAP, RGB
from tinymm.errors import UserError

pytestmark = [pytest.mark.lesson12]


def test_parse():
    assert Augment.parse("") == Augment() and Augment.parse("none") == Augment()
    assert not Augment.parse("")
    assert Augment.parse("size, colour") == Augment(size=True, colour=True)
    assert Augment.parse("all") == Augment(**{n: True for n in INGREDIENTS})
    with pytest.raises(ValueError, match="unknown ingredients \\['blur'\\]"):
        Augment.parse("size,blur")


def test_config_checks_round_trips_and_reads_old_runs(tmp_path):
    config = TrainConfig(augment="size,edge", image_encoder="split")
    loaded = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert (loaded.augment, loaded.image_encoder) == ("size,edge", "split")
    assert json.dumps(loaded.to_dict()) == json.dumps(config.to_dict())
    with pytest.raises(UserError, match=r"config: augment \(--augment\) must be .all., .none. or a comma-separated list"):
        TrainConfig(augment="rotate")
    with pytest.raises(UserError, match=r"config: image_encoder \(--image-encoder\) must be 'plain' or 'split'"):
        TrainConfig(image_encoder="resnet")
    # a config.json written before these settings existed: it trained plainly
    old = TrainConfig().to_dict()
    del old["augment"], old["image_encoder"], old["image_embed_hidden"], old["image_start_size"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = read_config(tmp_path / "config.json", "test")
    assert loaded.augment == "" and loaded.image_encoder == "plain"
    # and its image decoder went from the embedding to a 4×4 map in one Linear layer
    assert (loaded.image_embed_hidden, loaded.image_start_size) == (0, 4)
    # while a new config left without them gets today's defaults
    assert TrainConfig.from_dict({"seed": 3}).augment == TrainConfig().augment == "all"


def test_hsv_round_trip():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, size=(500, 3)).astype(np.float32)
    h, s, v = rgb_to_hsv(rgb)
    assert np.allclose(hsv_to_rgb(h, s, v), rgb, atol=1e-5)
    h, s, v = rgb_to_hsv(RGB)
    assert np.allclose(h[:2], [0.0, 120.0], atol=1e-4)  # red, green


def test_same_captions_other_pictures():
    plain = ShapesCaptions("train", n=200, seed=4)
    assert np.array_equal(ShapesCaptions("train", n=200, seed=4, augment="").images, plain.images)
    for name in INGREDIENTS:
        changed = ShapesCaptions("train", n=200, seed=4, augment=name)
        assert changed.captions == plain.captions, name
        assert not np.array_equal(changed.images, plain.images), name
        again = ShapesCaptions("train", n=200, seed=4, augment=name)
        assert np.array_equal(again.images, changed.images), name  # seeded


def test_sizes_stay_in_their_class_and_objects_fit():
    ds = ShapesCaptions("train", n=3000, seed=1, augment="all")
    sc = ds.scenes
    present = sc["size"] >= 0
    r = sc["radius"]
    for k, size in enumerate(SIZES):
        low, high = aug.RADIUS_RANGE[k]
        these = r[present & (sc["size"] == k)]
        assert these.min() >= low - 1e-5 and these.max() <= high + 1e-5, size
    assert r[sc["size"] == 0].max() < r[sc["size"] == 1].min()  # the classes never meet
    inside = (sc["centre_x"] - r >= MARGIN - 1e-4) & (sc["centre_x"] + r <= IMAGE_SIZE - MARGIN + 1e-4)
    inside &= (sc["centre_y"] - r >= MARGIN - 1e-4) & (sc["centre_y"] + r <= IMAGE_SIZE - MARGIN + 1e-4)
    assert np.all(inside | ~present)
    two = sc["n_objects"] == 2
    gap_x = np.abs(sc["centre_x"][two, 0] - sc["centre_x"][two, 1]) - r[two].sum(axis=1)
    gap_y = np.abs(sc["centre_y"][two, 0] - sc["centre_y"][two, 1]) - r[two].sum(axis=1)
    assert np.all(np.maximum(gap_x, gap_y) >= MIN_GAP - 1e-4)


def test_jittered_colours_keep_their_name():
    rng = np.random.default_rng(2)
    n = 4000
    base = np.broadcast_to(RGB[np.arange(n * 2) % 6].reshape(n, 2, 3), (n, 2, 3))
    jittered = aug.jitter_colours(rng, base, n)
    h, _, _ = rgb_to_hsv(jittered)
    centres, _, _ = rgb_to_hsv(RGB)
    gap = np.abs(h[..., None] - centres)
    gap = np.minimum(gap, 360 - gap)
    assert np.array_equal(gap.argmin(axis=-1), np.arange(n * 2).reshape(n, 2) % 6)
    assert jittered.min() >= 0 and jittered.max() <= 1
    assert gap.min(axis=-1).max() <= aug.HUE_SHIFT + 1e-3


def test_augmented_pixels_show_the_captions_colour():
    """One-object scenes: the lit pixels' mean hue is nearest to the caption's colour."""
    ds = ShapesCaptions("train", n=600, seed=7, one_object_fraction=1.0, augment="all")
    centres, _, _ = rgb_to_hsv(RGB)
    lit = ds.images.max(axis=1) > 0.3
    for i in range(len(ds)):
        pixels = ds.images[i].transpose(1, 2, 0)[lit[i]]
        assert len(pixels) >= 5, ds.captions[i]
        h, _, _ = rgb_to_hsv(pixels)
        mean = np.rad2deg(np.arctan2(np.sin(np.deg2rad(h)).mean(), np.cos(np.deg2rad(h)).mean())) % 360
        gap = np.minimum(np.abs(mean - centres), 360 - np.abs(mean - centres))
        assert COLOURS[int(gap.argmin())] == COLOURS[ds.scenes["colour"][i, 0]], ds.captions[i]
