"""The settings of a run, and where they are kept.

``TrainConfig`` holds every setting; a run folder keeps it in ``config.json`` so that the
same models can be rebuilt (``tinymm.models.build``), a run can be continued
(``tinymm.train.pipeline``) and used (``tinymm.run``). This module imports no model and no
training code: everything else depends on it, it depends on nothing of theirs.
"""
import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .data import ShapesCaptions
from .data.augment import INGREDIENTS, Augment
from .data.other_renderer import OtherRendererScenes
from .errors import UserError


# What TrainConfig checks (see __post_init__), and which settings have a command-line option.
_COUNTS = ("embed_dim", "image_hidden", "text_width", "steps", "batch_size", "caption_steps", "caption_batch_size",
           "caption_hidden", "caption_context", "image_steps", "image_batch_size", "prior_hidden", "judge_steps",
           "judge_batch_size", "log_every", "checkpoint_every", "eval_size")
_RATES = ("lr", "weight_decay", "caption_lr", "image_lr", "prior_lr", "image_clip_weight")
_CLI_OPTIONS = ("seed", "stages", "steps", "batch_size", "lr", "weight_decay", "embed_dim", "text_encoder", "loss",
                "eval_size")


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
    # the decoders (stages "caption" and "image", tinymm/train/decoders.py) and their judge
    caption_steps: int = 1000
    caption_batch_size: int = 128
    caption_lr: float = 3e-3
    caption_hidden: int = 256
    caption_context: int = 4        # how many previous tokens the caption decoder reads
    image_steps: int = 1500
    image_batch_size: int = 64
    image_lr: float = 3e-3
    image_channels: tuple = (64, 64, 32)
    image_clip_weight: float = 0.0  # > 0: also keep cos(CLIP(drawing), source embedding) high
    image_target: str = "canonical"  # "canonical" (one redrawn layout per caption) or "centred" (the scene, shifted)
    image_loss: str = "bce"         # "bce" (cross-entropy on the pixel logits) or "mse" (squared error of pixels)
    prior_lr: float = 2e-3
    prior_hidden: int = 256
    judge_steps: int = 700          # the second CLIP (seed + 1) that grades round trips
    judge_batch_size: int = 128
    # bookkeeping
    log_every: int = 50
    checkpoint_every: int = 250
    eval_size: int = 1000
    # generalisation (issue 16): how training pictures vary, and the image encoder's kind
    augment: str = "all"            # comma-separated: size, shape, edge, colour, light; "all"; "" for none
    image_encoder: str = "split"    # "split" (colour-blind shape path + colour path) or "plain" (RGB convolutions)

    def __post_init__(self):
        """Reject a setting no run can use, naming it (and its command-line option, if it has one)."""
        def bad(name, value, what):
            option = f" (--{name.replace('_', '-')})" if name in _CLI_OPTIONS else ""
            raise UserError(f"config: {name}{option} must be {what}, got {value!r}")

        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad(name, value, "a whole number >= 1")
        for name in ("seed", "warmup_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                bad(name, value, "a whole number >= 0")
        for name in _RATES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                bad(name, value, "a number >= 0")
        if self.loss not in ("clip", "mse"):
            bad("loss", self.loss, "'clip' or 'mse'")
        if self.image_target not in ("canonical", "centred"):
            bad("image_target", self.image_target, "'canonical' or 'centred'")
        if self.image_loss not in ("bce", "mse"):
            bad("image_loss", self.image_loss, "'bce' or 'mse'")
        if self.text_encoder not in ("default", "bow"):
            bad("text_encoder", self.text_encoder, "'default' or 'bow'")
        if self.image_encoder not in ("plain", "split"):
            bad("image_encoder", self.image_encoder, "'plain' or 'split'")
        try:
            Augment.parse(self.augment)
        except ValueError:
            bad("augment", self.augment, f"a comma-separated list of {', '.join(INGREDIENTS)}, or 'all', or ''")
        unknown = [s for s in self.stages if s not in ("clip", "caption", "image")]
        if unknown or not self.stages:
            bad("stages", ",".join(self.stages), "some of clip, caption, image (comma-separated)")

    def to_dict(self):
        d = asdict(self)
        d["stages"], d["channels"] = list(self.stages), list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"config: unknown settings {unknown} (was this run made by a newer tinymm?)")
        d = dict(d)
        for key in ("stages", "channels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


# --quick: every stage shrunk to a sub-minute demo (the numbers it reaches are far below the default's)
QUICK = dict(steps=150, batch_size=64, log_every=25, checkpoint_every=75, eval_size=300, warmup_steps=20,
             caption_steps=150, caption_batch_size=64, image_steps=100, image_batch_size=32,
             judge_steps=100, judge_batch_size=64)


# Settings that change the dual encoder's shape: a run cannot be resumed with different ones.
STRUCTURAL = ("embed_dim", "channels", "image_hidden", "text_width", "text_encoder", "image_encoder")

# What a config.json written before a setting existed meant by leaving it out.
LEGACY = {"augment": "", "image_encoder": "plain"}


def default_run_dir(name):
    return Path("runs") / name


def read_config(config_path, op):
    """The TrainConfig saved in ``config_path``; a one-line UserError naming ``op`` if unreadable."""
    try:
        # a file from before a setting existed: LEGACY says what leaving it out meant
        return TrainConfig.from_dict({**LEGACY, **json.loads(Path(config_path).read_text())})
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise UserError(f"{op}: cannot read {config_path}: {err}") from None


def judge_config(config):
    """The judge: the same kind of CLIP from another seed (other weights, other batches), shorter."""
    return dataclasses.replace(config, name=config.name + "-judge", seed=config.seed + 1, stages=("clip",),
                               steps=config.judge_steps, batch_size=config.judge_batch_size,
                               warmup_steps=min(config.warmup_steps, max(1, config.judge_steps // 10)),
                               checkpoint_every=max(1, config.judge_steps))


def evaluation_sets(config):
    """Fresh i.i.d. test scenes, compositional scenes (unseen colour-shape pairs), and one-object
    scenes drawn by another renderer that training never uses (``tinymm.data.other_renderer``)."""
    sets = {split: ShapesCaptions(split, n=config.eval_size, seed=config.seed + 777)
            for split in ("test", "compositional")}
    sets["other_renderer"] = OtherRendererScenes(n=config.eval_size, seed=config.seed + 777)
    return sets
