"""The CLIP stage: train the dual encoder, top to bottom in ``train_clip``.

Training data is drawn fresh for every step from the procedural dataset, seeded by
(seed, step): no epoch ever repeats an image, and a resumed run sees exactly the batches
an uninterrupted one would have seen.
"""
from pathlib import Path

import numpy as np

import tinymm.functional as F
from .. import backend, optim
from ..config import evaluation_sets
from ..data import ShapesCaptions, shapes_tokenizer
from ..metrics import evaluate_clip
from ..models.build import build_dual_encoder, encoders_of
from .bookkeeping import StageBook


def train_batch(config, step):
    """The training scenes of one step: fresh, and the same for the same (seed, step).

    ``config.augment`` widens how the scenes look (``tinymm.data.augment``), never which captions
    they have: the held-out colour-shape pairs stay out whatever it says.
    """
    return ShapesCaptions("train", n=config.batch_size, seed=config.seed * 1_000_003 + step,
                          one_object_fraction=config.one_object_fraction, augment=config.augment)


def alignment_loss(model, images, tokens, captions, kind):
    """The loss of one batch. Returns (loss Tensor, loss floor as a float)."""
    image_emb, text_emb = model.encode_image(images), model.encode_text(tokens)
    if kind == "mse":
        return F.mse_loss(image_emb, text_emb), 0.0
    targets = F.clip_targets(captions)
    loss = F.clip_loss(image_emb, text_emb, model.logit_scale, targets=targets)
    return loss, float(F.clip_loss_floor(targets))


def train_clip(config, run_dir, resume=False, label="clip"):
    """Train the dual encoder of ``config`` into ``run_dir``; returns (model, history).

    ``label`` names the progress bar (the judge CLIP of the decoder stages is trained here too).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = build_dual_encoder(config, shapes_tokenizer()).to(config.device)
    optimizer = optim.AdamW(model.parameter_groups(config.weight_decay), lr=config.lr)
    schedule = optim.CosineSchedule(optimizer, total_steps=config.steps, warmup_steps=config.warmup_steps)
    book = StageBook(run_dir / "clip.npz", label, config.steps, model, optimizer, schedule,
                     {"step": [], "loss": [], "floor": [], "logit_scale": []}, resume=resume,
                     log_every=config.log_every, checkpoint_every=config.checkpoint_every, lr_option="--lr")
    if book.start:
        book.write(f"resuming the {label} stage at step {book.start}")
    model.train()
    for step in range(book.start, config.steps):
        batch = train_batch(config, step)
        loss, floor = alignment_loss(model, batch.images, batch.tokens, batch.captions, config.loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        model.clamp_logit_scale()
        if book.log_due(step):
            value = loss.item()  # the only host sync: once per log interval
            scale = float(np.exp(backend.to_numpy(model.logit_scale.data)))
            book.log(step, f"step {step + 1:5d}  loss {value:.4f}  (floor {floor:.3f})  scale {scale:5.1f}  "
                           f"lr {schedule.get_last_lr()[0]:.2e}",
                     check=value, loss=value, floor=floor, logit_scale=scale)
        # the loss Tensor holds this step's whole graph: drop it before the next forward
        del loss
        book.step_done(step)
    history = book.finish()
    model.eval()
    return model, history


def evaluate_dual_encoder(model, config):
    """{split: {metric: value}} for the i.i.d. test, compositional and other-renderer splits.

    A metric a split cannot have is left out rather than NaN: the other renderer draws one
    object per scene, so it has no relation or argument-order hard negatives.
    """
    encode_image, encode_text = encoders_of(model)
    scale = float(np.exp(backend.to_numpy(model.logit_scale.data)))
    out = {}
    for split, ds in evaluation_sets(config).items():
        values = evaluate_clip(encode_image, encode_text, ds, logit_scale=scale)
        out[split] = {k: v for k, v in values.items() if not (isinstance(v, float) and np.isnan(v))}
    return out
