"""The held-out colour-shape pairs never reach training, whatever the augmentation.

Three checks, from the bookkeeping to the pixels:

1. every scene of many training batches (plain and augmented, several seeds) is built from
   allowed pairs only, and no caption names a held-out pair;
2. the pixels agree: each object's pixels have the hue of the colour its caption names, so no
   augmentation turned, say, an orange-ish red circle into a picture of something else;
3. ``train_clip`` draws its data from ``train_batch`` and from the "train" split only.

And the default image encoder cannot learn the shortcut "red things are never squares" in its
shape features: they never see colour.
"""

import numpy as np
import pytest

import tinymm as tm
from tinymm import backend
from tinymm.config import TrainConfig
from tinymm.data import COLOURS, HELD_OUT_PAIRS, SHAPES, ShapesCaptions, contains_held_out, shapes_tokenizer
from tinymm.models import SplitImageEncoder
from tinymm.models.build import build_dual_encoder
from tinymm.data.augment import rgb_to_hsv
from tinymm.data.shapes import RGB
from tinymm.train import clip as clip_stage
from tinymm.train import train_batch, train_clip

pytestmark = [pytest.mark.lesson12]

HELD = {(COLOURS.index(c), SHAPES.index(s)) for c, s in HELD_OUT_PAIRS}
CENTRES, _, _ = rgb_to_hsv(RGB)


def colour_under(image, x, y, r):
    """The colour name nearest to the mean hue of the bright pixels within r of (x, y)."""
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    near = (np.abs(xs - x) <= r) & (np.abs(ys - y) <= r) & (image.max(axis=0) > 0.3)
    h, _, _ = rgb_to_hsv(image.transpose(1, 2, 0)[near])
    mean = np.rad2deg(np.arctan2(np.sin(np.deg2rad(h)).mean(), np.cos(np.deg2rad(h)).mean())) % 360
    gap = np.minimum(np.abs(mean - CENTRES), 360 - np.abs(mean - CENTRES))
    return int(gap.argmin())


@pytest.mark.parametrize("augment", ["", "all"])
def test_no_training_batch_holds_a_held_out_pair(augment):
    checked = 0
    for seed in (0, 1, 2):
        config = TrainConfig(seed=seed, batch_size=128, augment=augment)
        for step in (0, 1, 7, 500, 1499):
            batch = train_batch(config, step)
            sc = batch.scenes
            assert not any(contains_held_out(c) for c in batch.captions)
            present = sc["shape"] >= 0
            pairs = {(int(c), int(s)) for c, s in zip(sc["colour"][present], sc["shape"][present])}
            assert not pairs & HELD
            assert not sc["held_out"].any()
            # the pixels of every object show the colour its caption names
            for i in range(len(batch.captions)):
                for slot in range(int(sc["n_objects"][i])):
                    x, y = sc["centre_x"][i, slot], sc["centre_y"][i, slot]
                    r = 0.6 * sc["radius"][i, slot]  # the middle of the object, clear of its neighbour
                    assert colour_under(batch.images[i], x, y, r) == sc["colour"][i, slot], batch.captions[i]
                    checked += 1
    assert checked > 2000


def test_train_clip_draws_only_train_batches(monkeypatch, tmp_path):
    asked = []
    original = clip_stage.ShapesCaptions

    def recording(split, *args, **kwargs):
        asked.append(split)
        return original(split, *args, **kwargs)

    monkeypatch.setattr(clip_stage, "ShapesCaptions", recording)
    config = TrainConfig(steps=3, batch_size=8, warmup_steps=1, log_every=1, checkpoint_every=10**9, augment="all")
    train_clip(config, tmp_path)
    assert asked == ["train"] * 3


def test_split_encoder_reads_shape_without_colour():
    """The shape path sees the brightest channel only: recolouring a picture (a red square made
    green, any permutation of R, G, B) leaves its shape features exactly as they were, while the
    colour path, and so the embedding, changes."""
    tm.manual_seed(0)
    encoder = SplitImageEncoder(embed_dim=8, channels=(4, 6), hidden=16, colour_channels=5)
    images = ShapesCaptions("test", n=6, seed=0).images
    recoloured = images[:, [1, 2, 0]]   # red -> blue, green -> red, blue -> green, per pixel
    with tm.no_grad():
        grey = tm.tensor(images.max(axis=1, keepdims=True))
        grey_recoloured = tm.tensor(recoloured.max(axis=1, keepdims=True))
        assert np.array_equal(encoder.shape_path(grey).numpy(), encoder.shape_path(grey_recoloured).numpy())
        assert not np.allclose(encoder.colour_path(tm.tensor(images)).numpy(),
                               encoder.colour_path(tm.tensor(recoloured)).numpy())
        assert encoder(images).shape == (6, 8)
    # the default config builds it; a plain one builds the plain encoder
    assert type(build_dual_encoder(TrainConfig(), shapes_tokenizer()).image_encoder).__name__ == "SplitImageEncoder"
    assert type(build_dual_encoder(TrainConfig(image_encoder="plain"),
                                   shapes_tokenizer()).image_encoder).__name__ == "ImageEncoder"


def test_split_encoder_passes_gradients_to_the_pixels():
    """Lesson 16 draws through a frozen CLIP: d(embedding)/d(pixels) must reach every channel that
    is some pixel's brightest (shape path) and every channel (colour path). Checked against central
    differences in float64 on pixels whose brightest channel wins by a clear margin."""
    tm.manual_seed(0)
    encoder = SplitImageEncoder(embed_dim=4, channels=(3, 4), hidden=8, colour_channels=3).to(dtype=np.float64)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 3, 32, 32))
    weights = rng.standard_normal((2, 4))

    def objective(x):
        return float((encoder(tm.tensor(x, dtype=np.float64)).numpy() * weights).sum())

    x = tm.tensor(images, dtype=np.float64, requires_grad=True)
    (encoder(x) * tm.tensor(weights)).sum().backward()
    grad = backend.to_numpy(x.grad.data if isinstance(x.grad, tm.Tensor) else x.grad)
    order = np.sort(images, axis=1)
    clear = np.argwhere(order[:, -1] - order[:, -2] > 0.1)[:12]   # (n, y, x) with a clear brightest channel
    eps = 1e-6
    for n, i, j in clear:
        for c in range(3):
            up, down = images.copy(), images.copy()
            up[n, c, i, j] += eps
            down[n, c, i, j] -= eps
            numeric = (objective(up) - objective(down)) / (2 * eps)
            assert abs(numeric - grad[n, c, i, j]) <= 1e-6 + 1e-4 * abs(numeric), (n, c, i, j, numeric, grad[n, c, i, j])
    assert np.abs(grad).max() > 0
