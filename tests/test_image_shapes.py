"""Caption -> image draws shapes (issue 17): the pixel shape check reads real scenes right, the
canonical targets give one picture per caption, and binary cross-entropy on the logits keeps
pushing pixels that a sigmoid has flattened."""
import numpy as np
import pytest

import tinymm as tm
import tinymm.functional as F
from tinymm.backend import to_numpy
from tinymm.config import TrainConfig
from tinymm.data import SHAPES, ShapesCaptions, shapes_tokenizer
from tinymm.errors import UserError
from tinymm.metrics import pixel_attributes, pixel_shape
from tinymm.models.build import build_dual_encoder
from tinymm.train.decoders import IMAGE_STREAM, canonical_scenes, decoder_batch, train_image_decoder

pytestmark = pytest.mark.lesson16


def _blurred(images, sigma):
    """A Gaussian blur of sigma pixels, one axis at a time (edges repeated)."""
    k = np.arange(-3, 4)
    g = np.exp(-k ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    for axis in (2, 3):
        padded = np.pad(images, [(0, 0), (0, 0)] + [(3, 3) if a == axis else (0, 0) for a in (2, 3)], mode="edge")
        images = sum(g[i] * np.take(padded, np.arange(i, i + images.shape[axis]), axis=axis) for i in range(7))
    return images.astype(np.float32)


def _dimmed_towards_the_edge(images, scenes, dim):
    """Each object fades linearly from full brightness at its centre to (1 - dim) at its farthest pixel."""
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    d = np.hypot(xs - scenes["centre_x"][:, 0, None, None], ys - scenes["centre_y"][:, 0, None, None])
    inside = images.max(axis=1) > 0.1
    farthest = np.where(inside, d, 0).max(axis=(1, 2))[:, None, None]
    fade = np.clip(1 - dim * d / farthest, 1 - dim, 1)[:, None]
    background = 0.04
    return (background + (images - background) * fade).astype(np.float32)


@pytest.mark.parametrize("split", ["test", "compositional"])
def test_pixel_shape_names_the_shape_of_real_one_object_scenes(split):
    scenes = ShapesCaptions(split, n=600, seed=21, one_object_fraction=1.0)
    shape, score = pixel_shape(scenes.images)
    truth = scenes.scenes["shape"][:, 0]
    for kind in range(len(SHAPES)):   # every shape, both sizes, is in the sample
        for size in (0, 1):
            assert np.any((truth == kind) & (scenes.scenes["size"][:, 0] == size))
    assert np.mean(shape == truth) >= 0.98
    # the right shape fits well, the best wrong one worse
    right = score[np.arange(len(truth)), truth]
    wrong = np.where(np.arange(4)[None, :] == truth[:, None], -1, score).max(axis=1)
    assert np.median(right) > 0.98 and np.median(right - wrong) > 0.03


@pytest.mark.parametrize("sigma", [0.6, 0.8])
def test_pixel_shape_reads_slightly_blurred_scenes_as_a_person_would(sigma):
    # a blur dims the arm tips of a small cross below any fixed threshold; a person still sees a cross
    scenes = ShapesCaptions("test", n=600, seed=22, one_object_fraction=1.0)
    truth = scenes.scenes["shape"][:, 0]
    blurred = _blurred(scenes.images, sigma)
    for kind in range(len(SHAPES)):
        small = (truth == kind) & (scenes.scenes["size"][:, 0] == 0)
        assert np.mean(pixel_shape(blurred[small])[0] == kind) >= 0.95, SHAPES[kind]
    assert np.mean(pixel_shape(blurred)[0] == truth) >= 0.98
    faded = _dimmed_towards_the_edge(_blurred(scenes.images, 0.7), scenes.scenes, 0.3)
    assert np.mean(pixel_shape(faded)[0] == truth) >= 0.98


def test_pixel_shape_of_a_blob_is_a_circle_and_of_black_is_none():
    # a soft round blob (what a blurred decoder draws for every small shape) is a circle, whatever
    # its width: the check cannot be passed by a drawing that has no corners or arms
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    images = []
    for width in (1.0, 1.5, 2.5, 3.5, 5.0):
        blob = np.exp(-((xs - 16) ** 2 + (ys - 16) ** 2) / (2 * width ** 2)).astype(np.float32)
        images.append(np.stack([blob, 0 * blob, 0 * blob]))
    images.append(np.zeros((3, 32, 32), np.float32))
    shape, score = pixel_shape(np.stack(images))
    assert shape.tolist() == [SHAPES.index("circle")] * 5 + [-1]
    assert np.all(score[-1] == -1)


def test_canonical_targets_are_one_picture_per_caption_with_the_caption_true():
    scenes = ShapesCaptions("train", n=1500, seed=4)
    target = canonical_scenes(scenes.scenes)
    assert target.shape == scenes.images.shape and target.dtype == np.float32
    assert 0.0 <= target.min() and target.max() <= 1.0
    captions = np.array(scenes.captions)
    repeated = [c for c in set(scenes.captions) if np.sum(captions == c) >= 2][:20]
    assert len(repeated) >= 5
    for caption in repeated:
        rows = np.flatnonzero(captions == caption)
        assert np.array_equal(target[rows[0]], target[rows[1]]), caption  # same caption, same pixels
    # what the caption says stays true: colour, size and shape of one object, the relation of two
    one = scenes.scenes["n_objects"] == 1
    stats = pixel_attributes(target)
    assert np.all(stats["colour"][one] == scenes.scenes["colour"][one, 0])
    assert np.all(stats["large"][one] == (scenes.scenes["size"][one, 0] == 1))
    assert np.all(pixel_shape(target[one])[0] == scenes.scenes["shape"][one, 0])
    two = np.flatnonzero(~one & (scenes.scenes["colour"][:, 0] != scenes.scenes["colour"][:, 1]))
    first = stats["centroid"][two, scenes.scenes["colour"][two, 0]]
    second = stats["centroid"][two, scenes.scenes["colour"][two, 1]]
    axis = scenes.scenes["relation"][two]          # 0 "left of": x; 1 "above": y
    assert np.all(first[np.arange(len(two)), axis] < second[np.arange(len(two)), axis])
    # and the one object sits in the middle: x = 16 is the edge between pixels 15 and 16, and
    # pixel_attributes counts pixels by index (a triangle's centroid sits lower, so only x)
    assert np.allclose(stats["centroid"][one, scenes.scenes["colour"][one, 0]][:, 0], 15.5, atol=0.01)


def test_bce_on_logits_pushes_a_saturated_pixel_where_mse_through_the_sigmoid_barely_does():
    # a pixel at logit -4 (sigmoid 0.018) that should be 1
    x = tm.tensor(np.array([-4.0]), requires_grad=True)
    F.binary_cross_entropy_with_logits(x, tm.tensor(np.array([1.0]))).backward()
    bce_grad = float(to_numpy(x.grad)[0])
    x.grad = None
    F.mse_loss(F.sigmoid(x), tm.tensor(np.array([1.0]))).backward()
    mse_grad = float(to_numpy(x.grad)[0])
    p = 1 / (1 + np.exp(4.0))
    assert bce_grad == pytest.approx(p - 1)                        # p − t
    assert mse_grad == pytest.approx(2 * (p - 1) * p * (1 - p))    # 2 (p − t) σ'(x)
    assert abs(bce_grad) > 25 * abs(mse_grad)


def test_bce_with_logits_equals_the_textbook_formula_and_stays_finite():
    rng = np.random.default_rng(0)
    x, t = rng.normal(0, 3, (4, 5)), rng.uniform(0, 1, (4, 5))
    p = 1 / (1 + np.exp(-x))
    textbook = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    out = F.binary_cross_entropy_with_logits(tm.tensor(x), tm.tensor(t), reduction="none").numpy()
    assert np.allclose(out, textbook, rtol=1e-12)
    assert F.binary_cross_entropy_with_logits(tm.tensor(x), tm.tensor(t)).item() == pytest.approx(textbook.mean())
    big = F.binary_cross_entropy_with_logits(tm.tensor(np.array([1e4, -1e4])), tm.tensor(np.array([0.0, 1.0])),
                                             reduction="none").numpy()
    assert np.allclose(big, [1e4, 1e4])
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: logits .* must have the same shape"):
        F.binary_cross_entropy_with_logits(tm.tensor(np.zeros((2, 3))), tm.tensor(np.zeros(3)))



@pytest.mark.parametrize("image_loss", ["bce", "mse"])
def test_the_image_stage_learns_the_canonical_targets_with_the_configured_loss(image_loss, tmp_path, monkeypatch):
    """train_image_decoder hands BCE the canonical targets of each step's scenes (and never calls
    it for image_loss="mse"): taking the canonical targets or the BCE out of the loop fails here.
    On the default CLIP (seed 0), taking them out costs the one-object round trip 0.98 -> 0.81."""
    config = TrainConfig(device=tm.get_default_device(), embed_dim=16, channels=(4, 8), image_hidden=32,
                         text_width=32, image_steps=3, image_batch_size=8, image_channels=(8, 4, 4),
                         prior_hidden=16, warmup_steps=0, log_every=1, checkpoint_every=100, image_loss=image_loss)
    model = build_dual_encoder(config, shapes_tokenizer()).to(config.device)
    targets = []
    bce = F.binary_cross_entropy_with_logits

    def spy(logits, target, **options):
        targets.append(to_numpy(target.data if isinstance(target, tm.Tensor) else target))
        return bce(logits, target, **options)

    monkeypatch.setattr(F, "binary_cross_entropy_with_logits", spy)
    _, history = train_image_decoder(model, config, tmp_path)
    assert np.isfinite(history["loss"]).all()
    if image_loss == "mse":
        assert targets == []
        return
    assert len(targets) == config.image_steps
    for step, target in enumerate(targets):
        batch = decoder_batch(config, IMAGE_STREAM, step, config.image_batch_size)
        assert np.array_equal(target, canonical_scenes(batch.scenes))


def test_image_channels_take_three_widths_or_four_and_the_default_has_the_32x32_layer():
    assert len(TrainConfig().image_channels) == 4
    assert TrainConfig(image_channels=(8, 4, 4)).image_channels == (8, 4, 4)   # runs saved before it
    with pytest.raises(UserError, match=r"a list of 3 whole numbers from 1 to 512 \(or 4: a hidden 32×32 layer"):
        TrainConfig(image_channels=(8, 4, 4, 4, 4))
