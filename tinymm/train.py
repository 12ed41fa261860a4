"""Training the dual encoder (and, after it, the decoders), and the run folder it leaves.

    python -m tinymm train                # the default run: runs/default/
    python -m tinymm train --quick        # a sub-minute demo

A run folder holds everything needed to use or continue the run:

    checkpoint.npz   weights, optimiser state and step (written atomically: a crash or
                     Ctrl-C never leaves half a file)
    config.json      the settings, so the same model can be rebuilt
    metrics.json     the evaluation numbers, per split
    train.log        what was printed
    *.png            loss curve, similarity heatmap, retrieval gallery, zero-shot confusion
                     matrix, PCA of both modalities

Training data is drawn fresh for every step from the procedural dataset, seeded by
(seed, step): no epoch ever repeats an image, and a resumed run sees exactly the batches
an uninterrupted one would have seen.
"""
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

import tinymm.functional as F
from . import backend, optim
from .autograd import no_grad
from .data import ShapesCaptions, shapes_tokenizer
from .models import BagOfWordsTextEncoder, DualEncoder, ImageEncoder, TextEncoder
from .metrics import confusion_matrix, evaluate_clip
from .serialization import load, save


@dataclass
class TrainConfig:
    """Every setting of a run. Saved to config.json; ``--resume`` and ``load_run`` read it back."""

    name: str = "default"
    seed: int = 0
    device: str = "cpu"
    stages: tuple = ("clip", "caption", "image")
    # the dual encoder
    embed_dim: int = 64
    channels: tuple = (16, 32)
    image_hidden: int = 128
    text_width: int = 128
    text_encoder: str = "default"  # "default" (positions + per-token layer) or "bow" (bag of words)
    loss: str = "clip"             # "clip" (symmetric InfoNCE) or "mse" (the naive baseline)
    # optimisation
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    one_object_fraction: float = 0.5
    # the decoders (stages "caption" and "image", tinymm/train_decoders.py) and their judge
    caption_steps: int = 1000
    caption_batch_size: int = 128
    caption_lr: float = 3e-3
    caption_hidden: int = 256
    caption_context: int = 4        # how many previous tokens the caption decoder reads
    image_steps: int = 500
    image_batch_size: int = 64
    image_lr: float = 1e-3
    image_channels: tuple = (64, 32, 16)
    image_clip_weight: float = 0.0  # > 0: also keep cos(CLIP(drawing), source embedding) high
    prior_lr: float = 2e-3
    prior_hidden: int = 256
    judge_steps: int = 700          # the second CLIP (seed + 1) that grades round trips
    judge_batch_size: int = 128
    # bookkeeping
    log_every: int = 50
    checkpoint_every: int = 250
    eval_size: int = 1000

    def to_dict(self):
        d = asdict(self)
        d["stages"], d["channels"] = list(self.stages), list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown settings {unknown} (was this run made by a newer tinymm?)")
        d = dict(d)
        for key in ("stages", "channels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# --quick: every stage shrunk to a sub-minute demo (the numbers it reaches are far below the default's)
QUICK = dict(steps=150, batch_size=64, log_every=25, checkpoint_every=75, eval_size=300, warmup_steps=20,
             caption_steps=150, caption_batch_size=64, image_steps=100, image_batch_size=32,
             judge_steps=100, judge_batch_size=64)


# ----------------------------------------------------------------------------------------------
# Building the model from a config


def build_dual_encoder(config, tokenizer):
    """The DualEncoder a config describes (seeded: the same config gives the same weights)."""
    backend.manual_seed(config.seed)
    image_encoder = ImageEncoder(embed_dim=config.embed_dim, channels=tuple(config.channels),
                                 hidden=config.image_hidden)
    text_cls = {"default": TextEncoder, "bow": BagOfWordsTextEncoder}.get(config.text_encoder)
    if text_cls is None:
        raise ValueError(f"config: text_encoder must be 'default' or 'bow', got {config.text_encoder!r}")
    text_encoder = text_cls(tokenizer.vocab_size, max_len=tokenizer.max_len, embed_dim=config.embed_dim,
                            width=config.text_width, pad_id=tokenizer.pad_id)
    return DualEncoder(image_encoder, text_encoder)


def train_batch(config, step):
    """The training scenes of one step: fresh, and the same for the same (seed, step)."""
    return ShapesCaptions("train", n=config.batch_size, seed=config.seed * 1_000_003 + step,
                          one_object_fraction=config.one_object_fraction)


def alignment_loss(model, images, tokens, captions, kind):
    """The loss of one batch. Returns (loss Tensor, loss floor as a float)."""
    image_emb, text_emb = model.encode_image(images), model.encode_text(tokens)
    if kind == "mse":
        return F.mse_loss(image_emb, text_emb), 0.0
    targets = F.clip_targets(captions)
    loss = F.clip_loss(image_emb, text_emb, model.logit_scale, targets=targets)
    return loss, float(F.clip_loss_floor(targets))


# ----------------------------------------------------------------------------------------------
# Progress


class Progress:
    """A progress bar with an ETA (tqdm), and a log file that keeps every printed line."""

    def __init__(self, total, desc, log_path=None, initial=0):
        from tqdm import tqdm
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                        mininterval=1.0)
        self.log_path = log_path

    def update(self, n=1, **postfix):
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(n)

    def write(self, line):
        self.bar.write(line)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(line + "\n")

    def close(self):
        self.bar.close()


# ----------------------------------------------------------------------------------------------
# The CLIP stage


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train_clip(config, run_dir, resume=False, label="clip"):
    """Train the dual encoder of ``config`` into ``run_dir``; returns (model, history).

    ``label`` names the progress bar (the judge CLIP of the decoder stages is trained here too).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = shapes_tokenizer()
    model = build_dual_encoder(config, tokenizer).to(config.device)
    optimizer = optim.AdamW(model.parameter_groups(config.weight_decay), lr=config.lr)
    schedule = optim.CosineSchedule(optimizer, total_steps=config.steps, warmup_steps=config.warmup_steps)
    history = {"step": [], "loss": [], "floor": [], "logit_scale": []}
    start = 0
    ckpt_path = run_dir / "clip.npz"
    if resume and ckpt_path.exists():
        state = load(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history = state["history"]
        start = int(state["step"])
    log_path = run_dir / "train.log"
    progress = Progress(config.steps, label, log_path, initial=start)
    if start:
        progress.write(f"resuming the clip stage at step {start}")
    model.train()
    t0, last_good = time.perf_counter(), start
    for step in range(start, config.steps):
        batch = train_batch(config, step)
        loss, floor = alignment_loss(model, batch.images, batch.tokens, batch.captions, config.loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        model.clamp_logit_scale()
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            value = loss.item()  # the only host sync: once per log interval
            if not math.isfinite(value):
                progress.close()
                raise TrainingDiverged(f"train: the loss became {value} at step {step + 1}; the last good "
                                       f"checkpoint (step {last_good}) in {ckpt_path} is untouched. Try a "
                                       f"smaller --lr.")
            scale = float(np.exp(backend.to_numpy(model.logit_scale.data)))
            history["step"].append(step + 1)
            history["loss"].append(value)
            history["floor"].append(floor)
            history["logit_scale"].append(scale)
            progress.bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            progress.write(f"step {step + 1:5d}  loss {value:.4f}  (floor {floor:.3f})  "
                           f"scale {scale:5.1f}  lr {schedule.get_last_lr()[0]:.2e}")
        # the loss Tensor holds this step's whole graph: drop it before the next forward
        del loss
        progress.update(1)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                  "schedule": schedule.state_dict(), "history": history, "step": step + 1}, ckpt_path)
            last_good = step + 1
    progress.close()
    elapsed = time.perf_counter() - t0
    history["seconds"] = history.get("seconds", 0.0) + elapsed
    model.eval()
    return model, history


# ----------------------------------------------------------------------------------------------
# Evaluation and figures


def encoders_of(model, batch_size=500):
    """NumPy-in, NumPy-out encode functions of a dual encoder (no graph, batched)."""
    tokenizer = shapes_tokenizer()

    def encode_image(images):
        with no_grad():
            return np.concatenate([model.encode_image(images[i:i + batch_size]).numpy()
                                   for i in range(0, len(images), batch_size)])

    def encode_text(captions):
        tokens = tokenizer.encode(list(captions))
        with no_grad():
            return np.concatenate([model.encode_text(tokens[i:i + batch_size]).numpy()
                                   for i in range(0, len(tokens), batch_size)])

    return encode_image, encode_text


def evaluation_sets(config):
    """Fresh i.i.d. test scenes and compositional scenes (unseen colour-shape pairs)."""
    return {split: ShapesCaptions(split, n=config.eval_size, seed=config.seed + 777)
            for split in ("test", "compositional")}


def evaluate_dual_encoder(model, config):
    """{split: {metric: value}} for the i.i.d. test and compositional splits."""
    encode_image, encode_text = encoders_of(model)
    scale = float(np.exp(backend.to_numpy(model.logit_scale.data)))
    return {split: evaluate_clip(encode_image, encode_text, ds, logit_scale=scale)
            for split, ds in evaluation_sets(config).items()}


def clip_figures(model, config, history, out_dir):
    """Loss curve, similarity heatmap, retrieval gallery, zero-shot confusion, PCA -> out_dir."""
    from . import plots
    from .data import COLOURS, one_object_captions
    out_dir = Path(out_dir)
    encode_image, encode_text = encoders_of(model)
    test = evaluation_sets(config)["test"]
    saved = []

    def save_fig(fig, name):
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plots.plt.close(fig)
        saved.append(out_dir / name)

    if history.get("step"):
        save_fig(plots.loss_curve(history), "loss.png")
    image_emb, text_emb = encode_image(test.images), encode_text(test.captions)
    pick = np.arange(min(12, len(test)))
    save_fig(plots.similarity_heatmap(image_emb[pick] @ text_emb[pick].T,
                                      [test.captions[i] for i in pick], test.images[pick]), "similarity.png")
    one_object = np.flatnonzero(test.scenes["n_objects"] == 1)
    two_objects = np.flatnonzero(test.scenes["n_objects"] == 2)
    queries = [test.captions[i] for i in list(one_object[:2]) + list(two_objects[:3])]
    sims = encode_text(queries) @ image_emb.T
    top = np.argsort(-sims, axis=1)[:, :5]
    save_fig(plots.retrieval_gallery(queries, [test.images[t] for t in top],
                                     [sims[r, t] for r, t in enumerate(top)],
                                     [[test.captions[j] == q for j in t] for q, t in zip(queries, top)]),
             "retrieval.png")
    labels = one_object_captions()
    truth = [labels.index(test.captions[i]) for i in one_object]
    pred = (image_emb[one_object] @ encode_text(labels).T).argmax(axis=1)
    save_fig(plots.confusion_matrix_figure(confusion_matrix(np.array(truth), pred, len(labels)), labels),
             "zero_shot_confusion.png")
    colour_of = test.scenes["colour"][:, 0]
    save_fig(plots.pca_scatter(image_emb[:300], text_emb[:300], colour_of[:300], COLOURS), "embeddings_pca.png")
    return saved


# ----------------------------------------------------------------------------------------------
# The whole run


STRUCTURAL = ("embed_dim", "channels", "image_hidden", "text_width", "text_encoder")


def write_json(path, obj):
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def default_run_dir(name):
    return Path("runs") / name


def read_config(config_path, op):
    """The TrainConfig saved in ``config_path``; a clear ValueError naming ``op`` if unreadable."""
    try:
        return TrainConfig.from_dict(json.loads(Path(config_path).read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{op}: cannot read {config_path}: {err}") from None


def continued_config(run_dir, settings):
    """The config for more work on the run in ``run_dir``: its saved settings, with
    ``settings`` (what the command line gave explicitly) on top.

    This is what ``train --resume`` and ``train --stages caption`` (on a trained folder) use:
    a run trained with ``--steps 3000`` and resumed without repeating it still stops at
    3000, and training only a decoder does not overwrite the record of how the dual
    encoder was trained with the defaults. Without a saved config, ``settings`` on top of
    the defaults.
    """
    config_path = Path(run_dir) / "config.json"
    saved = read_config(config_path, "train").to_dict() if config_path.exists() else {}
    saved.pop("stages", None)  # the stages to run now are the command line's (or all)
    if "device" not in settings:  # the run keeps its device
        if saved.get("device") == "cuda" and not backend.cuda_available():
            raise RuntimeError(f"train: the run in {run_dir} was trained on cuda, but CuPy or a GPU is "
                               f"missing here; continue it on the CPU with --device cpu")
    return TrainConfig.from_dict({**saved, **settings})


def prepare_run_dir(config, run_dir, resume):
    """Create the folder and config.json; on --resume check the saved config is compatible.

    config.json records every stage the folder holds: training only some stages adds them
    to the saved list instead of replacing it.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    record = config.to_dict()
    if config_path.exists():
        saved = read_config(config_path, "train")
        if "clip" not in config.stages:
            record["stages"] = [s for s in ("clip", "caption", "image")
                                if s in saved.stages or s in config.stages]
        if resume:
            changed = [k for k in STRUCTURAL if getattr(saved, k) != getattr(config, k)]
            if changed:
                raise ValueError(f"train --resume: {run_dir} holds a model with different "
                                 f"{', '.join(changed)}; use another --name or the same settings")
        elif "clip" in config.stages and (run_dir / "clip.npz").exists():
            raise ValueError(f"train: {run_dir} already holds a trained run; pass --resume to continue "
                             f"it, or --name to start another")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(config_path, record)
    return run_dir


def load_dual_encoder(config, run_dir):
    """The dual encoder saved in run_dir/clip.npz (for stages that build on a trained CLIP)."""
    path = Path(run_dir) / "clip.npz"
    if not path.exists():
        raise ValueError(f"train: {run_dir} has no trained dual encoder ({path.name} is missing); "
                         f"train the clip stage first (--stages clip)")
    model = build_dual_encoder(config, shapes_tokenizer()).to(config.device)
    model.load_state_dict(load(path)["model"])
    model.eval()
    return model


def run_training(config, run_dir=None, resume=False):
    """Train every stage of ``config`` into run_dir, evaluate, draw the figures; returns the metrics.

    Stages run in order: "clip" (the dual encoder), then "caption" and "image" (the decoders,
    which read the frozen dual encoder). A stage left out keeps what the folder already has.
    """
    from .metrics import format_metrics_table
    run_dir = prepare_run_dir(config, run_dir or default_run_dir(config.name), resume)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics.setdefault("train", {})
    t0 = time.perf_counter()
    unknown = set(config.stages) - {"clip", "caption", "image"}
    if unknown:
        raise ValueError(f"train: unknown stages {sorted(unknown)}; choose from clip, caption, image")
    if "clip" in config.stages:
        model, history = train_clip(config, run_dir, resume=resume)
        for split, values in evaluate_dual_encoder(model, config).items():
            metrics.setdefault(split, {}).update(values)
        metrics["train"].update({"clip_seconds": round(history.get("seconds", 0.0), 1),
                                 "clip_final_loss": history["loss"][-1] if history["loss"] else None,
                                 "logit_scale": history["logit_scale"][-1] if history["logit_scale"] else None})
        clip_figures(model, config, history, run_dir)
    else:
        model = load_dual_encoder(config, run_dir)
    if {"caption", "image"} & set(config.stages):
        from .train_decoders import train_decoder_stages
        train_decoder_stages(model, config, run_dir, resume, metrics)
    metrics["train"]["total_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(metrics_path, metrics)
    table = format_metrics_table({k: v for k, v in metrics.items() if k != "train"})
    print(table)
    with open(run_dir / "train.log", "a") as f:
        f.write(table + "\n")
    print(f"\nrun saved in {run_dir}  ({metrics['train']['total_seconds']:.0f} s)")
    return metrics
