"""The decoder stages of a run: image -> caption and caption -> image, on a frozen CLIP.

    python -m tinymm train                                    clip, then caption, then image
    python -m tinymm train --run-dir DIR --stages caption,image --resume    only the decoders

Both decoders read the dual encoder of the run and never change it (its embeddings are
computed under ``no_grad``). What they add to the run folder:

    judge/          a second CLIP, trained from another seed with fewer steps. It grades the
                    round trips, so a decoder is never graded by the model it was trained on
                    (a decoder can learn to please one CLIP without being right).
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
every possible place: a faint smudge. So the image decoder's targets are the training scenes
shifted so that the box around their objects sits in the middle of the picture
(``centre_scenes``): it learns to draw what the embedding says, in the middle. The relation
between two objects ("left of", "above") survives the shift.
"""
import contextlib
import dataclasses
import math
import time
import warnings
from pathlib import Path

import numpy as np

import tinymm.functional as F
from . import backend, optim
from .autograd import no_grad
from .data import (COLOURS, RELATIONS, ShapesCaptions, all_captions, one_object_captions, parse_caption,
                   shapes_tokenizer)
from .data.shapes import RGB
from .metrics import caption_metrics, psnr
from .models.decoders import CaptionDecoder, ImageDecoder
from .serialization import load, save
from .train import Progress, TrainingDiverged, build_dual_encoder, encoders_of, evaluation_sets, train_clip

# Offsets that give each decoder stage its own stream of training scenes (the CLIP stage uses
# seed·1_000_003 + step, far below these).
CAPTION_STREAM, IMAGE_STREAM = 1_000_000_000, 2_000_000_000


# ----------------------------------------------------------------------------------------------
# Building the decoders from a config


def build_caption_decoder(config, tokenizer):
    backend.manual_seed(config.seed + 15)
    return CaptionDecoder(tokenizer.vocab_size, embed_dim=config.embed_dim, max_len=tokenizer.max_len,
                          context=config.caption_context, hidden=config.caption_hidden,
                          pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                          unk_id=tokenizer.unk_id)


def build_image_decoder(config):
    backend.manual_seed(config.seed + 16)
    return ImageDecoder(embed_dim=config.embed_dim, channels=tuple(config.image_channels),
                        prior_hidden=config.prior_hidden)


def judge_config(config):
    """The judge: the same kind of CLIP from another seed (other weights, other batches), shorter."""
    return dataclasses.replace(config, name=config.name + "-judge", seed=config.seed + 1, stages=("clip",),
                               steps=config.judge_steps, batch_size=config.judge_batch_size,
                               warmup_steps=min(config.warmup_steps, max(1, config.judge_steps // 10)),
                               checkpoint_every=max(1, config.judge_steps))


def decoder_batch(config, stream, step, batch_size):
    """Fresh training scenes for one step of a decoder stage (seeded by stream and step)."""
    return ShapesCaptions("train", n=batch_size, seed=stream + config.seed * 1_000_003 + step,
                          one_object_fraction=config.one_object_fraction)


# ----------------------------------------------------------------------------------------------
# Centring scenes, and reading attributes off pixels


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


LIT = 0.4          # a pixel is part of an object when its brightest channel exceeds this
LARGE_AREA = 55    # lit pixels: small objects cover 18-49 of them, large ones 60-133
_HUES = RGB / RGB.max(axis=1, keepdims=True)  # the six colours at full brightness


def pixel_attributes(images):
    """Read colour and size off the pixels, without any model: a simple, independent check.

    images (N, 3, H, W) in [0, 1]. A pixel is *lit* when its brightest channel exceeds LIT;
    each lit pixel votes for the grammar colour nearest to its hue (the pixel divided by its
    brightest channel). Returns a dict of NumPy arrays:

        area     (N,)  lit pixels
        votes    (N, 6) lit pixels per colour (COLOURS order)
        colour   (N,)  the colour with most votes (-1 for an image with no lit pixel)
        large    (N,)  area >= LARGE_AREA
        centroid (N, 6, 2)  mean (x, y) of each colour's lit pixels (NaN where it has none)

    On real test scenes this reads colour and size right for every one-object scene.
    """
    images = np.asarray(images, dtype=np.float32)
    bright = images.max(axis=1)                                      # (N, H, W)
    lit = bright > LIT
    hue = images / np.maximum(bright, 1e-6)[:, None]                 # (N, 3, H, W)
    distance = ((hue[:, None] - _HUES[None, :, :, None, None]) ** 2).sum(axis=2)   # (N, 6, H, W)
    nearest = distance.argmin(axis=1)                                # (N, H, W)
    member = (nearest[:, None] == np.arange(len(COLOURS))[None, :, None, None]) & lit[:, None]
    votes = member.sum(axis=(2, 3))
    area = lit.sum(axis=(1, 2))
    ys, xs = np.mgrid[0:images.shape[2], 0:images.shape[3]]
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.stack([(member * xs).sum(axis=(2, 3)) / votes, (member * ys).sum(axis=(2, 3)) / votes],
                            axis=-1)
    return {"area": area, "votes": votes, "colour": np.where(area > 0, votes.argmax(axis=1), -1),
            "large": area >= LARGE_AREA, "centroid": centroid}


def image_attribute_metrics(images, scenes):
    """Per-attribute correctness of (generated) images, judged by ``pixel_attributes``.

    One-object scenes: ``image_colour_one`` (dominant colour right), ``image_size_one`` (lit
    area on the right side of LARGE_AREA). Two-object scenes with two different colours:
    ``image_colours_two`` (both colours among the two most voted), ``image_relation_two`` (the
    two colours' centroids in the caption's order: first left of / above the second).
    """
    stats = pixel_attributes(images)
    out = {}
    one = scenes["n_objects"] == 1
    if one.any():
        out["image_colour_one"] = float(np.mean(stats["colour"][one] == scenes["colour"][one, 0]))
        out["image_size_one"] = float(np.mean(stats["large"][one] == (scenes["size"][one, 0] == 1)))
    two = (scenes["n_objects"] == 2) & (scenes["colour"][:, 0] != scenes["colour"][:, 1])
    if two.any():
        first, second = scenes["colour"][two, 0], scenes["colour"][two, 1]
        top2 = np.argsort(-stats["votes"][two], axis=1, kind="stable")[:, :2]
        both = ((top2 == first[:, None]).any(axis=1) & (top2 == second[:, None]).any(axis=1))
        rows = np.flatnonzero(two)
        c1, c2 = stats["centroid"][rows, first], stats["centroid"][rows, second]
        axis = np.where(scenes["relation"][two] == RELATIONS.index("left of"), 0, 1)
        order = np.take_along_axis(c1, axis[:, None], 1)[:, 0] < np.take_along_axis(c2, axis[:, None], 1)[:, 0]
        out["image_colours_two"] = float(np.mean(both))
        out["image_relation_two"] = float(np.mean(both & order))
    return out


# ----------------------------------------------------------------------------------------------
# The caption stage


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


def _restore(path, resume, modules_and_optimizers):
    """Load a stage checkpoint into (decoder, optimizer, schedule) when resuming; -> (step, history)."""
    if not (resume and path.exists()):
        return 0, None
    state = load(path)
    decoder, optimizer, schedule = modules_and_optimizers
    decoder.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    return int(state["step"]), state["history"]


def _check_finite(value, stage, step, path, last_good, progress):
    if not math.isfinite(value):
        progress.close()
        raise TrainingDiverged(f"train: the {stage} loss became {value} at step {step}; the last good "
                               f"checkpoint (step {last_good}) in {path} is untouched. Try a smaller lr.")


def train_caption_decoder(model, config, run_dir, resume=False):
    """Train the caption decoder on the frozen dual encoder ``model``; -> (decoder, history).

    Teacher forcing: each batch of fresh scenes is encoded by the frozen image tower, and
    the decoder learns to predict every next token of the true caption from the true tokens
    before it (cross-entropy, padding ignored).
    """
    run_dir = Path(run_dir)
    tokenizer = shapes_tokenizer()
    decoder = build_caption_decoder(config, tokenizer).to(config.device)
    optimizer = optim.AdamW(decoder.parameters(), lr=config.caption_lr, weight_decay=0.0)
    schedule = optim.CosineSchedule(optimizer, total_steps=config.caption_steps,
                                    warmup_steps=min(config.warmup_steps, config.caption_steps // 10))
    path = run_dir / "caption.npz"
    start, history = _restore(path, resume, (decoder, optimizer, schedule))
    history = history or {"step": [], "loss": []}
    progress = Progress(config.caption_steps, "caption", run_dir / "train.log", initial=start)
    progress.write(f"caption decoder: {config.caption_steps} steps of {config.caption_batch_size} fresh scenes"
                   + (f" (resuming at step {start})" if start else ""))
    decoder.train()
    t0, last_good = time.perf_counter(), start
    for step in range(start, config.caption_steps):
        batch = decoder_batch(config, CAPTION_STREAM, step, config.caption_batch_size)
        with no_grad():
            image_emb = model.encode_image(batch.images)
        loss = decoder.loss(image_emb, batch.tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        done = step + 1
        if done % config.log_every == 0 or done == config.caption_steps:
            value = loss.item()
            _check_finite(value, "caption", done, path, last_good, progress)
            history["step"].append(done)
            history["loss"].append(value)
            progress.bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            progress.write(f"caption step {done:5d}  loss {value:.4f}  lr {schedule.get_last_lr()[0]:.2e}")
        progress.update(1)
        if done % config.checkpoint_every == 0 or done == config.caption_steps:
            save({"model": decoder.state_dict(), "optimizer": optimizer.state_dict(),
                  "schedule": schedule.state_dict(), "history": history, "step": done}, path)
            last_good = done
    progress.close()
    history["seconds"] = history.get("seconds", 0.0) + time.perf_counter() - t0
    if start < config.caption_steps:  # keep the time in the checkpoint for a later resume
        save({**load(path), "history": history}, path)
    decoder.eval()
    return decoder, history


# ----------------------------------------------------------------------------------------------
# The image stage


def train_image_decoder(model, config, run_dir, resume=False):
    """Train the image decoder and its prior on the frozen dual encoder; -> (decoder, history).

    Per step, on fresh scenes: the pixel decoder learns image embedding -> the centred scene
    (mean squared error over pixels); the prior learns text embedding -> image embedding
    (squared distance between unit vectors, i.e. 2 − 2·cosine). Their parameters do not
    overlap, so one backward pass of the summed loss trains both; each has its own lr.
    """
    run_dir = Path(run_dir)
    decoder = build_image_decoder(config).to(config.device)
    groups = [{"params": decoder.pixel_parameters(), "lr": config.image_lr},
              {"params": list(decoder.prior.parameters()), "lr": config.prior_lr}]
    optimizer = optim.Adam(groups, lr=config.image_lr)
    schedule = optim.CosineSchedule(optimizer, total_steps=config.image_steps,
                                    warmup_steps=min(config.warmup_steps, config.image_steps // 10))
    path = run_dir / "image.npz"
    start, history = _restore(path, resume, (decoder, optimizer, schedule))
    history = history or {"step": [], "loss": [], "prior_loss": []}
    progress = Progress(config.image_steps, "image", run_dir / "train.log", initial=start)
    progress.write(f"image decoder and prior: {config.image_steps} steps of {config.image_batch_size} fresh scenes"
                   + (f" (resuming at step {start})" if start else ""))
    decoder.train()
    t0, last_good = time.perf_counter(), start
    for step in range(start, config.image_steps):
        batch = decoder_batch(config, IMAGE_STREAM, step, config.image_batch_size)
        with no_grad():
            image_emb = model.encode_image(batch.images)
            text_emb = model.encode_text(batch.tokens)
        target = centre_scenes(batch.images, batch.scenes)
        generated = decoder(image_emb)
        pixel_loss = F.mse_loss(generated, backend.to_device(target, config.device))
        prior_loss = F.mse_loss(decoder.prior(text_emb), image_emb)
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
        done = step + 1
        if done % config.log_every == 0 or done == config.image_steps:
            value, prior_value = pixel_loss.item(), prior_loss.item()
            _check_finite(value + prior_value, "image", done, path, last_good, progress)
            history["step"].append(done)
            history["loss"].append(value)
            history["prior_loss"].append(prior_value)
            progress.bar.set_postfix(mse=f"{value:.4f}", refresh=False)
            progress.write(f"image step {done:5d}  pixel mse {value:.5f}  prior cos "
                           f"{1 - prior_value * config.embed_dim / 2:.4f}  lr {schedule.get_last_lr()[0]:.2e}")
        progress.update(1)
        if done % config.checkpoint_every == 0 or done == config.image_steps:
            save({"model": decoder.state_dict(), "optimizer": optimizer.state_dict(),
                  "schedule": schedule.state_dict(), "history": history, "step": done}, path)
            last_good = done
    progress.close()
    history["seconds"] = history.get("seconds", 0.0) + time.perf_counter() - t0
    if start < config.image_steps:
        save({**load(path), "history": history}, path)
    decoder.eval()
    return decoder, history


# ----------------------------------------------------------------------------------------------
# The judge


def train_judge(config, run_dir, resume=False):
    """The independent CLIP that grades round trips (run_dir/judge); trained once, then reused."""
    judge_dir = Path(run_dir) / "judge"
    cfg = judge_config(config)
    path = judge_dir / "clip.npz"
    if path.exists() and int(load(path)["step"]) >= cfg.steps:
        judge = build_dual_encoder(cfg, shapes_tokenizer()).to(config.device)
        judge.load_state_dict(load(path)["model"])
        judge.eval()
        return judge, 0.0
    line = (f"judge: a second CLIP (seed {cfg.seed}, {cfg.steps} steps) that only grades the decoders' "
            f"round trips")
    print(line)
    with open(Path(run_dir) / "train.log", "a") as f:
        f.write(line + "\n")
    judge, history = train_clip(cfg, judge_dir, resume=True, label="judge")
    return judge, history.get("seconds", 0.0)


# ----------------------------------------------------------------------------------------------
# Evaluation


def _top1_hits(query_emb, gallery_emb, right):
    """For each query, is the best-scoring gallery item a right one? right(q_index, g_index) -> bool array."""
    best = (query_emb @ gallery_emb.T).argmax(axis=1)
    return right(np.arange(len(query_emb)), best)


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
    hits = _top1_hits(judge_text(predicted), gallery, lambda q, g: truth[q] == truth[g])
    ceiling = _top1_hits(judge_text(dataset.captions), gallery, lambda q, g: truth[q] == truth[g])
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
    hits = _top1_hits(judge_image(generated), caption_emb, lambda q, g: source[q] == g)
    real = _top1_hits(judge_image(target), caption_emb, lambda q, g: source[q] == g)
    one = dataset.scenes["n_objects"] == 1
    for key, rows in (("_one", one), ("_two", ~one)):
        out["image_roundtrip" + key] = float(hits[rows].mean()) if rows.any() else float("nan")
        out["image_roundtrip_ceiling" + key] = float(real[rows].mean()) if rows.any() else float("nan")
    out["gap_cos_text"] = float(np.mean(np.sum(image_emb * text_emb, axis=1)))
    out["gap_cos_prior"] = float(np.mean(np.sum(image_emb * prior_emb, axis=1)))
    return out, generated


def one_object_generation(decoder, model, judge):
    """Draw all 48 one-object captions of the grammar; -> (metrics, images).

    ``gen48_colour`` / ``gen48_size``: the pixel check reads the caption's colour / size;
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
    large = np.array([o.size == "large" for o in objects])
    hits = _top1_hits(judge_image(images), judge_text(captions), lambda q, g: q == g)
    return {"gen48_colour": float(np.mean(stats["colour"] == colour)),
            "gen48_size": float(np.mean(stats["large"] == large)),
            "gen48_area_large": float(stats["area"][large].mean()),
            "gen48_area_small": float(stats["area"][~large].mean()),
            "gen48_roundtrip": float(hits.mean())}, images


# ----------------------------------------------------------------------------------------------
# Figures


def _montage(images, n_cols, pad=4):
    """Images (N, 3, H, W) tiled into one (rows·(H+pad), n_cols·(W+pad), 3) picture on white."""
    n, _, h, w = images.shape
    n_rows = -(-n // n_cols)
    canvas = np.ones((n_rows * (h + pad), n_cols * (w + pad), 3), dtype=np.float32)
    for i in range(n):  # a loop over tiles of a figure, not inside an op
        r, c = divmod(i, n_cols)
        canvas[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = \
            np.clip(images[i].transpose(1, 2, 0), 0, 1)
    return canvas


def image_grid_figure(images, titles, n_cols=8, title=None, scale=1.25, row_labels=None):
    """Images (N, 3, H, W) in a grid, each with its (wrapped) title under it ("" for none),
    and optionally a label left of each row.

    Drawn as one picture in one axes: far faster to save than one axes per image.
    """
    from . import plots
    images = np.asarray(images, dtype=np.float32)
    titles = list(titles) + [""] * (len(images) - len(titles))
    n_cols = max(1, min(n_cols, len(images)))
    n_rows = -(-len(images) // n_cols)
    h, w, pad = images.shape[2], images.shape[3], 4
    canvas = _montage(images, n_cols, pad)
    # room under a row for its titles, where it has any
    room = [14 if any(titles[r * n_cols:(r + 1) * n_cols]) else 0 for r in range(n_rows)]
    tops = np.concatenate([[0], np.cumsum([h + pad + extra for extra in room])])
    rows = [np.concatenate([canvas[r * (h + pad):(r + 1) * (h + pad)],
                            np.ones((room[r], canvas.shape[1], 3), dtype=np.float32)]) for r in range(n_rows)]
    canvas = np.concatenate(rows)
    fig, ax = plots.plt.subplots(figsize=(n_cols * scale, scale * canvas.shape[0] / (h + pad)))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for i, text in enumerate(titles):
        r, c = divmod(i, n_cols)
        ax.text(c * (w + pad) + w / 2, tops[r] + h + 1, _wrap(text), ha="center", va="top", fontsize=6)
    for r, text in enumerate(row_labels or []):
        ax.text(-3, tops[r] + h / 2, text, ha="right", va="center", fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def _wrap(caption):
    return caption.replace(" left of", "\nleft of").replace(" above", "\nabove")


def caption_table_figure(images, predicted, truth, title="image → caption (green: exact, red: wrong)"):
    """Images in a column, the decoder's caption beside each; the true caption under a wrong one."""
    from . import plots
    images = np.asarray(images, dtype=np.float32)
    n, h = len(images), images.shape[2]
    canvas = _montage(images, 1, pad=6)
    fig, ax = plots.plt.subplots(figsize=(6.5, 0.62 * n + 0.4))
    ax.imshow(canvas, interpolation="nearest", extent=(0, canvas.shape[1], canvas.shape[0], 0))
    for i in range(n):
        right = predicted[i] == truth[i]
        text = predicted[i] if right else f"{predicted[i]}\n(true: {truth[i]})"
        ax.text(canvas.shape[1] + 4, i * (h + 6) + h / 2, text, va="center", fontsize=8,
                color="green" if right else "red")
    ax.set_xlim(0, canvas.shape[1] * 9)
    ax.set_ylim(canvas.shape[0], 0)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return fig


def decoder_figures(run_dir, test, predicted, gen48, caption_history, image_history, gap):
    """captions.png, generated.png, decoders_loss.png, modality_gap.png -> run_dir."""
    from . import plots
    run_dir = Path(run_dir)

    def save_fig(fig, name):
        fig.savefig(run_dir / name, dpi=110, bbox_inches="tight")
        plots.plt.close(fig)

    if predicted is not None:
        one = np.flatnonzero(test.scenes["n_objects"] == 1)[:4]
        two = np.flatnonzero(test.scenes["n_objects"] == 2)[:8]
        pick = np.concatenate([one, two])
        save_fig(caption_table_figure(test.images[pick], [predicted[i] for i in pick],
                                      [test.captions[i] for i in pick]), "captions.png")
    if gen48 is not None:
        save_fig(image_grid_figure(gen48, [c[2:] for c in one_object_captions()], n_cols=8, scale=1.4,
                                   title="caption → image: the 48 one-object captions"), "generated.png")
    histories = [(name, h) for name, h in (("caption (cross-entropy)", caption_history),
                                           ("image (pixel MSE)", image_history)) if h and h.get("step")]
    if histories:
        fig, axes = plots.plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.2), squeeze=False)
        for ax, (name, h) in zip(axes[0], histories):
            ax.plot(h["step"], h["loss"])
            ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_title(name)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        save_fig(fig, "decoders_loss.png")
    if gap is not None:
        fig, ax = plots.plt.subplots(figsize=(5.5, 3.2))
        bins = np.linspace(min(gap["text"].min(), gap["prior"].min()), 1, 40)
        ax.hist(gap["text"], bins=bins, alpha=0.6, label="cos(image, caption)")
        ax.hist(gap["prior"], bins=bins, alpha=0.6, label="cos(image, prior(caption))")
        ax.set_xlabel("cosine similarity of a test image and its caption")
        ax.set_title("the modality gap, and the prior closing it")
        ax.legend(fontsize=8)
        save_fig(fig, "modality_gap.png")


# ----------------------------------------------------------------------------------------------
# The whole decoder part of a run (called by tinymm.train.run_training)


def train_decoder_stages(model, config, run_dir, resume, metrics):
    """Train the decoder stages named in config.stages; add their numbers to ``metrics``.

    model     the trained dual encoder (frozen here)
    metrics   {"test": {...}, "compositional": {...}, "train": {...}}, updated in place
    """
    run_dir = Path(run_dir)
    stages = [s for s in ("caption", "image") if s in config.stages]
    train_stats = metrics.setdefault("train", {})
    judge, seconds = train_judge(config, run_dir, resume=resume)
    if seconds:
        train_stats["judge_seconds"] = round(seconds, 1)
    caption_decoder, image_decoder = load_decoders(config, run_dir, quiet=True)
    caption_history = image_history = None
    if "caption" in stages:
        caption_decoder, caption_history = train_caption_decoder(model, config, run_dir, resume=resume)
        train_stats["caption_seconds"] = round(caption_history.get("seconds", 0.0), 1)
        train_stats["caption_final_loss"] = caption_history["loss"][-1] if caption_history["loss"] else None
    if "image" in stages:
        image_decoder, image_history = train_image_decoder(model, config, run_dir, resume=resume)
        train_stats["image_seconds"] = round(image_history.get("seconds", 0.0), 1)
        train_stats["image_final_mse"] = image_history["loss"][-1] if image_history["loss"] else None

    t0 = time.perf_counter()
    sets = evaluation_sets(config)
    predicted = gen48 = gap = None
    for split, dataset in sets.items():
        values = metrics.setdefault(split, {})
        if caption_decoder is not None:
            numbers, caps = evaluate_caption_decoder(caption_decoder, model, judge, dataset)
            values.update(numbers)
            if split == "test":
                predicted = caps
        if image_decoder is not None:
            numbers, _ = evaluate_image_decoder(image_decoder, model, judge, dataset)
            values.update(numbers)
    if image_decoder is not None:
        numbers, gen48 = one_object_generation(image_decoder, model, judge)
        metrics["test"].update(numbers)
        encode_image, encode_text = encoders_of(model)
        test = sets["test"]
        image_emb, text_emb = encode_image(test.images), encode_text(test.captions)
        with no_grad():
            prior_emb = backend.to_numpy(image_decoder.prior(text_emb).data)
        gap = {"text": np.sum(image_emb * text_emb, axis=1), "prior": np.sum(image_emb * prior_emb, axis=1)}
    decoder_figures(run_dir, sets["test"], predicted, gen48, caption_history, image_history, gap)
    train_stats["decoder_eval_seconds"] = round(time.perf_counter() - t0, 1)
    return caption_decoder, image_decoder


# ----------------------------------------------------------------------------------------------
# Loading (for tinymm.run.load_run)


def _load_stage(path, decoder, stage, steps, run_dir, quiet):
    """Weights from a finished stage checkpoint into ``decoder``, or None (with a warning if unfinished)."""
    if not path.exists():
        return None
    state = load(path)
    if int(state["step"]) < steps:
        if not quiet:
            warnings.warn(f"load_run: the {stage} decoder in {path} stopped at step {state['step']} of {steps}; "
                          f"finish it with python -m tinymm train --run-dir {run_dir} --stages {stage} --resume",
                          stacklevel=3)
        return None
    decoder.load_state_dict(state["model"])
    decoder.eval()
    return decoder


def load_decoders(config, run_dir, quiet=False):
    """(caption_decoder or None, image_decoder or None): the finished decoders saved in run_dir."""
    run_dir = Path(run_dir)
    caption = _load_stage(run_dir / "caption.npz", build_caption_decoder(config, shapes_tokenizer()).to(config.device),
                          "caption", config.caption_steps, run_dir, quiet)
    image = _load_stage(run_dir / "image.npz", build_image_decoder(config).to(config.device),
                        "image", config.image_steps, run_dir, quiet)
    return caption, image
