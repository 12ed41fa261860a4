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

from .data import ShapesCaptions, shapes_tokenizer
from .data.augment import INGREDIENTS, Augment
from .data.other_renderer import OtherRendererScenes
from .errors import UserError


# What TrainConfig checks (see __post_init__), and which settings have a command-line option.
_COUNTS = ("steps", "caption_steps", "image_steps", "judge_steps", "log_every", "checkpoint_every")
_WIDTHS = ("embed_dim", "image_hidden", "text_width", "caption_hidden", "prior_hidden")
_BATCHES = ("batch_size", "caption_batch_size", "image_batch_size", "judge_batch_size")
_RATES = ("lr", "weight_decay", "caption_lr", "image_lr", "prior_lr", "image_clip_weight")
_CLI_OPTIONS = ("seed", "stages", "steps", "batch_size", "lr", "weight_decay", "embed_dim", "text_encoder", "loss",
                "eval_size", "augment", "image_encoder")
STAGES = ("clip", "caption", "image")
DEVICES = ("cpu", "cuda")

# Upper limits that protect the machine: past them a run dies of MemoryError (or swaps for
# minutes first). Measured on the default model, float32, one process.
MAX_BATCH = 8192       # one CLIP step on 8192 scenes already holds about 8 GB (on the CPU)
MAX_EVAL_SIZE = 10000  # the evaluation compares every test scene with every caption: about 1 GB at 10000
MAX_WIDTH = 4096       # a layer's width (embed_dim, hidden sizes): weights grow with its square
MAX_CHANNELS = 512     # a conv layer's channels: its im2col columns grow with them (with the batch)


class SettingError(UserError):
    """One setting of a TrainConfig is wrong: ``name``, its ``value``, and ``what`` it must be."""

    def __init__(self, name, value, what):
        option = f" (--{name.replace('_', '-')})" if name in _CLI_OPTIONS else ""
        super().__init__(f"config: {name}{option} must be {what}, got {value!r}")
        self.name, self.value, self.what = name, value, what


def _is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_kind(name, value, kind):
    """The kind each field's annotation promises: a whole number, a number, a text, a list."""
    if kind is int and not _is_whole(value):
        raise SettingError(name, value, "a whole number")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                          or value != value or value in (float("inf"), float("-inf"))):
        raise SettingError(name, value, "a finite number")
    if kind is str and not isinstance(value, str):
        raise SettingError(name, value, "a text (in quotes in config.json)")
    if kind is tuple and not isinstance(value, (tuple, list)):
        raise SettingError(name, value, "a list (in [brackets] in config.json)")


def _check_range(name, value, low, high=None, why_low="", why_high=""):
    """A whole number from low to high (no upper limit when high is None); ``why_low`` and
    ``why_high`` say, in the message, why a number is too small or too large."""
    if value < low or (high is not None and value > high):
        what = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"
        raise SettingError(name, value, what + (why_low if value < low else why_high))


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
    image_lr: float = 5e-3
    image_channels: tuple = (64, 64, 32, 16)   # the first map, the 8×8 and 16×16 maps; a 4th: a hidden 32×32 layer
    image_embed_hidden: int = 256   # a hidden layer between the embedding and the first map; 0: none
    image_start_size: int = 8       # the first map's side: 8 (8×8) or 4 (runs saved before it)
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
        """Reject a setting no run can use, naming it (and its command-line option, if it has one).

        First each setting's kind (the annotation above: a whole number, a number, a text, a
        list), then its range. A config.json read back by ``read_config`` goes through the same
        checks, and its errors name the file too.
        """
        def bad(name, value, what):
            raise SettingError(name, value, what)

        for f in fields(self):
            _check_kind(f.name, getattr(self, f.name), f.type)
        for name in _COUNTS:
            _check_range(name, getattr(self, name), 1)
        for name in _WIDTHS:
            _check_range(name, getattr(self, name), 1, MAX_WIDTH)
        for name, counts, more in (("channels", (2,), ""),
                                   ("image_channels", (3, 4), " (or 4: a hidden 32×32 layer too)")):
            value = getattr(self, name)
            if len(value) not in counts or not all(_is_whole(c) and 1 <= c <= MAX_CHANNELS for c in value):
                bad(name, list(value), f"a list of {counts[0]} whole numbers from 1 to {MAX_CHANNELS}{more}")
        too_big = f" (one CLIP step on {MAX_BATCH} scenes already needs about 8 GB of memory)"
        for name in _BATCHES:
            # the CLIP loss tells each image's caption apart from the other captions of its batch
            low = 2 if self.loss == "clip" and name in ("batch_size", "judge_batch_size") else 1
            _check_range(name, getattr(self, name), low, MAX_BATCH, why_high=too_big,
                         why_low=" (the CLIP loss tells each image's caption from the other captions of its "
                                 "batch: a batch of 1 has none, trains at loss 0 and learns nothing)")
        _check_range("eval_size", self.eval_size, 1, MAX_EVAL_SIZE,
                     why_high=f" (the evaluation compares every test scene with every caption: about 1 GB "
                              f"of memory at {MAX_EVAL_SIZE})")
        _check_range("seed", self.seed, 0)
        _check_range("image_embed_hidden", self.image_embed_hidden, 0, MAX_WIDTH, why_low=" (0: no hidden layer)")
        _check_range("warmup_steps", self.warmup_steps, 0, self.steps, why_high=" (at most steps)")
        max_len = shapes_tokenizer().max_len
        _check_range("caption_context", self.caption_context, 1, max_len,
                     why_high=f" (a caption is at most {max_len} tokens long)")
        for name in _RATES:
            if getattr(self, name) < 0:
                bad(name, getattr(self, name), "a number >= 0")
        if not 0 <= self.one_object_fraction <= 1:
            bad("one_object_fraction", self.one_object_fraction, "a number from 0 to 1")
        if self.device not in DEVICES:
            bad("device", self.device, "'cpu' or 'cuda'")
        if self.loss not in ("clip", "mse"):
            bad("loss", self.loss, "'clip' or 'mse'")
        if self.image_target not in ("canonical", "centred"):
            bad("image_target", self.image_target, "'canonical' or 'centred'")
        if self.image_start_size not in (4, 8):
            bad("image_start_size", self.image_start_size, "4 or 8")
        if self.image_loss not in ("bce", "mse"):
            bad("image_loss", self.image_loss, "'bce' or 'mse'")
        if self.text_encoder not in ("default", "bow"):
            bad("text_encoder", self.text_encoder, "'default' or 'bow'")
        if self.image_encoder not in ("plain", "split"):
            bad("image_encoder", self.image_encoder, "'plain' or 'split'")
        try:
            Augment.parse(self.augment)
        except ValueError:
            bad("augment", self.augment, f"'all', 'none' or a comma-separated list of {', '.join(INGREDIENTS)}")
        if not self.stages or any(s not in STAGES for s in self.stages) or len(set(self.stages)) < len(self.stages):
            bad("stages", list(self.stages), "some of clip, caption, image, each once")

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
        for key in ("stages", "channels", "image_channels"):
            if isinstance(d.get(key), list):   # JSON has lists; a config holds tuples
                d[key] = tuple(d[key])
        return cls(**d)


# --quick: every stage shrunk to a sub-minute demo (the numbers it reaches are far below the default's)
QUICK = dict(steps=150, batch_size=64, log_every=25, checkpoint_every=75, eval_size=300, warmup_steps=20,
             caption_steps=150, caption_batch_size=64, image_steps=100, image_batch_size=32,
             judge_steps=100, judge_batch_size=64)


# Settings that change the dual encoder's shape: a run cannot be resumed with different ones.
STRUCTURAL = ("embed_dim", "channels", "image_hidden", "text_width", "text_encoder", "image_encoder")

# What a config.json written before a setting existed meant by leaving it out.
LEGACY = {"augment": "", "image_encoder": "plain", "image_embed_hidden": 0,
          "image_start_size": 4}


def default_run_dir(name):
    return Path("runs") / name


_JSON_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def read_config(config_path, op):
    """The TrainConfig saved in ``config_path``, every field checked as TrainConfig checks it.

    A file that cannot be used is a one-line UserError naming ``op``, the file and, for a bad
    field, the field, what it must be and its default: config.json is a file people edit.
    """
    if Path(config_path).exists() and not Path(config_path).is_file():   # a pipe would hang the read
        raise UserError(f"{op}: {config_path} is not a regular file; restore config.json or train the run again")
    try:
        saved = json.loads(Path(config_path).read_text(encoding="utf-8-sig"))   # an editor's BOM is fine
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{op}: cannot read {config_path}: {err}") from None
    if not isinstance(saved, dict):
        raise UserError(f"{op}: {config_path} must hold one JSON object of settings ({{\"seed\": 0, ...}}), "
                        f"got {_JSON_KINDS.get(type(saved), 'something else')}; restore the file or train the "
                        f"run again")
    try:
        return TrainConfig.from_dict({**LEGACY, **saved})   # a file from before a setting existed
    except SettingError as err:
        default = {f.name: f.default for f in fields(TrainConfig)}[err.name]
        default = list(default) if isinstance(default, tuple) else default
        raise UserError(f"{op}: {config_path}: the field {err.name!r} must be {err.what}, got {err.value!r}; "
                        f"correct it in the file (the default is {json.dumps(default)})") from None
    except UserError as err:
        raise UserError(f"{op}: {config_path}: {str(err).removeprefix('config: ')}") from None


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
