"""The decoder stages of a run: image -> caption and caption -> image, on a frozen CLIP.

    python -m tinymm train                                    clip, then caption, then image
    python -m tinymm train --run-dir DIR --stages caption,image --resume    only the decoders

Both decoders read the dual encoder of the run and never change it (its embeddings are
computed under ``no_grad``). What they add to the run folder:

    judge/          a second CLIP, trained from another seed with fewer steps (``judge.py``). It
                    grades the round trips, so a decoder is never graded by the model it was
                    trained on (a decoder can learn to please one CLIP without being right).
    caption.npz     the caption decoder: weights, optimiser, step, loss history
    image.npz       the image decoder with its prior
    captions.png    test images with the caption the decoder wrote beside them
    generated.png   all 48 one-object captions drawn by the image decoder
    decoders_loss.png, modality_gap.png

Training data is drawn fresh for every step, like the CLIP stage, from seed streams of their
own: the same (seed, step) always gives the same batch, so a resumed stage sees the batches
an uninterrupted one would have seen.

**Where is the object?** A caption never says where its object lies, and a deterministic
decoder trained with a pixel loss to reproduce the exact scene learns the *average* over
every possible place: a faint smudge. Shifting each scene so that the box around its objects
sits in the middle of the picture (``centre_scenes``) removes most of it, but not all: the
sub-pixel position, the size jitter, the brightness, the noise and the gap between two objects
still differ from scene to scene, and their average is a soft blob in which a small cross and a
small circle look alike. So by default (``image_target="canonical"``) the targets are the
scenes **redrawn in one fixed layout per caption** (``canonical_scenes``): the same objects, at
their nominal size and a fixed brightness, in the middle, a fixed gap apart, without noise.
Every caption then asks for one picture, and the mean of one picture is that picture.

**Which loss?** The decoder ends in a sigmoid. Through it, the mean squared error's gradient is
scaled by the sigmoid's slope p (1 − p), nearly 0 for a pixel that is dark but should be lit;
binary cross-entropy on the logits (``image_loss="bce"``) pushes every wrong pixel with p − t.
"""
import contextlib
from pathlib import Path

import numpy as np

import tinymm.functional as F
from .. import backend, optim
from ..autograd import no_grad
from ..data import COLOURS, SHAPES, ShapesCaptions, all_captions, one_object_captions, parse_caption, shapes_tokenizer
from ..data.shapes import MIN_GAP, RADIUS, RGB, paint_objects
from ..metrics import caption_metrics, image_attribute_metrics, pixel_attributes, pixel_shape, psnr, top1_hits
from ..models.build import build_caption_decoder, build_image_decoder, encoders_of
from .bookkeeping import StageBook


# Offsets that give each decoder stage its own stream of training scenes (the CLIP stage uses
# seed·1_000_003 + step, far below these).
CAPTION_STREAM, IMAGE_STREAM = 1_000_000_000, 2_000_000_000


def decoder_batch(config, stream, step, batch_size):
    """Fresh training scenes for one step of a decoder stage (seeded by stream and step)."""
    return ShapesCaptions("train", n=batch_size, seed=stream + config.seed * 1_000_003 + step,
                          one_object_fraction=config.one_object_fraction)


def centre_scenes(images, scenes):
    """Shift each image so the box around all its objects sits in the middle of the picture.

    images (N, 3, H, W); scenes the ``ShapesCaptions.scenes`` dict (radius, centre_x,
    centre_y per object). The shift is a whole number of pixels and wraps around; the box fit
    in the picture before, so only background wraps. Returns a new (N, 3, H, W) array.
    """
    r, cx, cy = scenes["radius"], scenes["centre_x"], scenes["centre_y"]
    size = images.shape[-1]
    box_x = (np.nanmin(cx - r, axis=1) + np.nanmax(cx + r, axis=1)) / 2
    box_y = (np.nanmin(cy - r, axis=1) + np.nanmax(cy + r, axis=1)) / 2
    dx = np.round(size / 2 - box_x).astype(np.int64)
    dy = np.round(size / 2 - box_y).astype(np.int64)
    pixels = np.arange(size)
    rows = (pixels[None, :] - dy[:, None]) % size  # (N, H): which source row lands on each row
    cols = (pixels[None, :] - dx[:, None]) % size
    n = np.arange(len(images))[:, None, None]
    return np.ascontiguousarray(
        images.transpose(0, 2, 3, 1)[n, rows[:, :, None], cols[:, None, :]].transpose(0, 3, 1, 2))


# The canonical drawing: every object at this brightness (the middle of the scenes' 0.8 to 1.0),
# on a grey background at the middle of theirs (0 to 0.08), without noise.
CANONICAL_BRIGHTNESS, CANONICAL_BACKGROUND = 0.9, 0.04


def canonical_scenes(scenes, size=32):
    """Each scene redrawn in the one layout its caption gets: (N, 3, size, size) float32.

    ``scenes`` the ``ShapesCaptions.scenes`` dict; only what the caption says is read from it
    (shapes, colours, sizes, relation). Every object gets its size's nominal radius. One object
    sits in the middle. Two objects sit on the middle line, in the caption's order along it,
    the gap between their boxes the mean of the dataset's (``MIN_GAP`` plus a third of the
    spare room), their box centred. Brightness and background are fixed; there is no noise.
    So two scenes with the same caption get the same target, pixel for pixel.
    """
    n = len(scenes["n_objects"])
    radius = np.where(scenes["size"] >= 0, RADIUS[np.maximum(scenes["size"], 0)], np.nan).astype(np.float32)
    centre_x = np.full((n, 2), np.nan, dtype=np.float32)
    centre_y = np.full((n, 2), np.nan, dtype=np.float32)
    middle = size / 2
    one = scenes["n_objects"] == 1
    centre_x[one, 0] = centre_y[one, 0] = middle
    two = scenes["n_objects"] == 2
    r_a, r_b = radius[two, 0], radius[two, 1]
    gap = MIN_GAP + ((size - 1) - 2 * r_a - 2 * r_b - MIN_GAP) / 3
    along_a = middle - (2 * r_a + gap + 2 * r_b) / 2 + r_a
    along_b = along_a + r_a + gap + r_b
    left_of = scenes["relation"][two] == 0            # RELATIONS: "left of", "above"
    centre_x[two, 0] = np.where(left_of, along_a, middle)
    centre_x[two, 1] = np.where(left_of, along_b, middle)
    centre_y[two, 0] = np.where(left_of, middle, along_a)
    centre_y[two, 1] = np.where(left_of, middle, along_b)
    layout = {"shape": scenes["shape"], "radius": radius, "centre_x": centre_x, "centre_y": centre_y}
    images = np.full((n, 3, size, size), CANONICAL_BACKGROUND, dtype=np.float32)
    paint_objects(images, layout, RGB[np.maximum(scenes["colour"], 0)] * CANONICAL_BRIGHTNESS)
    return images


def image_targets(config, images, scenes):
    """What the image decoder learns to draw for these scenes (``config.image_target``)."""
    if config.image_target == "canonical":
        return canonical_scenes(scenes, size=images.shape[-1])
    return centre_scenes(images, scenes)


@contextlib.contextmanager
def frozen(model):
    """Gradients may flow *through* ``model`` but never into its parameters."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad = False
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad = flag


def train_caption_decoder(model, config, run_dir, resume=False):
    """Train the caption decoder on the frozen dual encoder ``model``; -> (decoder, history).

    Teacher forcing: each batch of fresh scenes is encoded by the frozen image tower, and
    the decoder learns to predict every next token of the true caption from the true tokens
    before it (cross-entropy, padding ignored).
    """
    run_dir = Path(run_dir)
    decoder = build_caption_decoder(config, shapes_tokenizer()).to(config.device)
    optimizer = optim.AdamW(decoder.parameters(), lr=config.caption_lr, weight_decay=0.0)
    schedule = optim.CosineSchedule(optimizer, total_steps=config.caption_steps,
                                    warmup_steps=min(config.warmup_steps, config.caption_steps // 10))
    book = StageBook(run_dir / "caption.npz", "caption", config.caption_steps, decoder, optimizer, schedule,
                     {"step": [], "loss": []}, resume=resume, log_every=config.log_every,
                     checkpoint_every=config.checkpoint_every, lr_option="caption_lr")
    book.write(f"caption decoder: {config.caption_steps} steps of {config.caption_batch_size} fresh scenes"
               + (f" (resuming at step {book.start})" if book.start else ""))
    decoder.train()
    for step in range(book.start, config.caption_steps):
        batch = decoder_batch(config, CAPTION_STREAM, step, config.caption_batch_size)
        with no_grad():
            image_emb = model.encode_image(batch.images)
        loss = decoder.loss(image_emb, batch.tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if book.log_due(step):
            value = loss.item()
            book.log(step, f"caption step {step + 1:5d}  loss {value:.4f}  lr {schedule.get_last_lr()[0]:.2e}",
                     check=value, loss=value)
        book.step_done(step)
    history = book.finish()
    decoder.eval()
    return decoder, history


def train_image_decoder(model, config, run_dir, resume=False):
    """Train the image decoder and its prior on the frozen dual encoder; -> (decoder, history).

    Per step, on fresh scenes: the pixel decoder learns image embedding -> the scene's target
    (``image_targets``: canonical or centred), with binary cross-entropy on its logits or the
    mean squared error of its pixels (``config.image_loss``); the prior learns text embedding
    -> image embedding (squared distance between unit vectors, i.e. 2 − 2·cosine). Their
    parameters do not overlap, so one backward pass of the summed loss trains both; each has
    its own lr. The logged "pixel mse" is the squared error of the pixels whatever the loss.
    """
    run_dir = Path(run_dir)
    decoder = build_image_decoder(config).to(config.device)
    groups = [{"params": decoder.pixel_parameters(), "lr": config.image_lr},
              {"params": list(decoder.prior.parameters()), "lr": config.prior_lr}]
    optimizer = optim.Adam(groups, lr=config.image_lr)
    schedule = optim.CosineSchedule(optimizer, total_steps=config.image_steps,
                                    warmup_steps=min(config.warmup_steps, config.image_steps // 10))
    book = StageBook(run_dir / "image.npz", "image", config.image_steps, decoder, optimizer, schedule,
                     {"step": [], "loss": [], "prior_loss": []}, resume=resume, log_every=config.log_every,
                     checkpoint_every=config.checkpoint_every, lr_option="image_lr or prior_lr")
    book.write(f"image decoder and prior: {config.image_steps} steps of {config.image_batch_size} fresh scenes"
               + (f" (resuming at step {book.start})" if book.start else ""))
    decoder.train()
    for step in range(book.start, config.image_steps):
        batch = decoder_batch(config, IMAGE_STREAM, step, config.image_batch_size)
        with no_grad():
            image_emb = model.encode_image(batch.images)
            text_emb = model.encode_text(batch.tokens)
        target = backend.to_device(image_targets(config, batch.images, batch.scenes), config.device)
        logits = decoder.logits(image_emb)
        generated = F.sigmoid(logits)
        pixel_loss = F.mse_loss(generated, target)
        prior_loss = F.mse_loss(decoder.prior(text_emb), image_emb)
        if config.image_loss == "bce":
            loss = F.binary_cross_entropy_with_logits(logits, target) + prior_loss
        else:
            loss = pixel_loss + prior_loss
        if config.image_clip_weight:
            # the frozen CLIP should see the drawing as what it was drawn from: 1 − cos
            with frozen(model):
                cosine = (model.encode_image(generated) * image_emb).sum(axis=1).mean()
            loss = loss + config.image_clip_weight * (1.0 - cosine)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if book.log_due(step):
            value, prior_value = pixel_loss.item(), prior_loss.item()
            book.log(step, f"image step {step + 1:5d}  pixel mse {value:.5f}  prior cos "
                           f"{1 - prior_value * config.embed_dim / 2:.4f}  lr {schedule.get_last_lr()[0]:.2e}",
                     check=value + prior_value, loss=value, prior_loss=prior_value)
        book.step_done(step)
    history = book.finish()
    decoder.eval()
    return decoder, history


def evaluate_caption_decoder(decoder, model, judge, dataset):
    """Caption metrics and the judged round trip on one split (a ``ShapesCaptions``).

    Round trip: the judge encodes each generated caption and searches the split's images;
    a hit when the best image carries the source image's caption (images with the same caption
    cannot be told apart by any caption). ``caption_roundtrip_ceiling`` is that search with the
    *true* captions: the best a perfect caption decoder could score.
    """
    tokenizer = shapes_tokenizer()
    encode_image, _ = encoders_of(model)
    judge_image, judge_text = encoders_of(judge)
    predicted = decoder.generate_captions(encode_image(dataset.images), tokenizer)
    out = caption_metrics(predicted, dataset.captions)
    gallery = judge_image(dataset.images)
    truth = np.array(dataset.captions, dtype=object)
    hits = top1_hits(judge_text(predicted), gallery, lambda q, g: truth[q] == truth[g])
    ceiling = top1_hits(judge_text(dataset.captions), gallery, lambda q, g: truth[q] == truth[g])
    one = dataset.scenes["n_objects"] == 1
    out["caption_roundtrip"] = float(hits.mean())
    for key, rows in (("_one", one), ("_two", ~one)):
        if rows.any():
            out["caption_roundtrip" + key] = float(hits[rows].mean())
    out["caption_roundtrip_ceiling"] = float(ceiling.mean())
    return out, predicted


def evaluate_image_decoder(decoder, model, judge, dataset):
    """Generated-image metrics on one split: pixels, attributes, modality gap, judged round trip.

    Each caption of the split is drawn (text embedding -> prior -> decoder) and compared with
    its own scene, centred (``image_mse``, ``image_psnr``); ``image_recon_psnr`` decodes the
    *image* embedding instead (no prior, no gap). Round trip: the judge encodes the generated
    image and picks the best of all 4,560 captions of the grammar; a hit when it is the source
    caption; ``image_roundtrip_ceiling_*`` is the judge on the real (centred) scenes, the best
    a perfect drawing could score. ``gap_cos_text`` / ``gap_cos_prior``: mean cosine between an
    image's embedding and its caption's embedding, before and after the prior.
    """
    encode_image, encode_text = encoders_of(model)
    judge_image, judge_text = encoders_of(judge)
    target = centre_scenes(dataset.images, dataset.scenes)
    image_emb, text_emb = encode_image(dataset.images), encode_text(dataset.captions)
    with no_grad():
        prior_emb = backend.to_numpy(decoder.prior(text_emb).data)
    generated = decoder.decode(prior_emb)
    mse = np.mean((generated - target) ** 2, axis=(1, 2, 3))
    out = {"image_mse": float(mse.mean()), "image_psnr": psnr(generated, target)[1],
           "image_recon_psnr": psnr(decoder.decode(image_emb), target)[1]}
    out.update(image_attribute_metrics(generated, dataset.scenes))
    captions = all_captions()
    index = {c: i for i, c in enumerate(captions)}
    source = np.array([index[c] for c in dataset.captions])
    caption_emb = judge_text(captions)
    hits = top1_hits(judge_image(generated), caption_emb, lambda q, g: source[q] == g)
    real = top1_hits(judge_image(target), caption_emb, lambda q, g: source[q] == g)
    one = dataset.scenes["n_objects"] == 1
    for key, rows in (("_one", one), ("_two", ~one)):
        out["image_roundtrip" + key] = float(hits[rows].mean()) if rows.any() else float("nan")
        out["image_roundtrip_ceiling" + key] = float(real[rows].mean()) if rows.any() else float("nan")
    out["gap_cos_text"] = float(np.mean(np.sum(image_emb * text_emb, axis=1)))
    out["gap_cos_prior"] = float(np.mean(np.sum(image_emb * prior_emb, axis=1)))
    return out, generated


def one_object_generation(decoder, model, judge):
    """Draw all 48 one-object captions of the grammar; -> (metrics, images).

    ``gen48_colour`` / ``gen48_size`` / ``gen48_shape``: the pixel checks (``pixel_attributes``,
    ``pixel_shape``) read the caption's colour / size / shape;
    ``gen48_area_large`` / ``gen48_area_small``: mean lit pixels of "large" and "small" captions;
    ``gen48_roundtrip``: the judge picks the right caption among the 48.
    """
    encode_image, encode_text = encoders_of(model)
    judge_image, judge_text = encoders_of(judge)
    captions = one_object_captions()
    images = decoder.generate_images(encode_text(captions))
    stats = pixel_attributes(images)
    objects = [parse_caption(c).objects[0] for c in captions]
    colour = np.array([COLOURS.index(o.colour) for o in objects])
    shape = np.array([SHAPES.index(o.shape) for o in objects])
    large = np.array([o.size == "large" for o in objects])
    hits = top1_hits(judge_image(images), judge_text(captions), lambda q, g: q == g)
    return {"gen48_colour": float(np.mean(stats["colour"] == colour)),
            "gen48_size": float(np.mean(stats["large"] == large)),
            "gen48_shape": float(np.mean(pixel_shape(images)[0] == shape)),
            "gen48_area_large": float(stats["area"][large].mean()),
            "gen48_area_small": float(stats["area"][~large].mean()),
            "gen48_roundtrip": float(hits.mean())}, images
