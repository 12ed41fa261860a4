"""Building the models a config describes, and loading them from a run folder.

Used by training (``tinymm.train``) and by inference (``tinymm.run``) alike; nothing here
trains. Each builder seeds the generator first, so the same config gives the same weights.
"""
from pathlib import Path
import warnings

from .. import backend
from ..batches import map_batches
from ..data import shapes_tokenizer
from ..errors import CheckpointError, UserError
from ..serialization import load
from .clip import DualEncoder
from .decoders import CaptionDecoder, ImageDecoder
from .encoders import BagOfWordsTextEncoder, ImageEncoder, SplitImageEncoder, TextEncoder


def build_dual_encoder(config, tokenizer):
    """The DualEncoder a config describes (seeded: the same config gives the same weights)."""
    backend.manual_seed(config.seed)
    image_cls = SplitImageEncoder if getattr(config, "image_encoder", "plain") == "split" else ImageEncoder
    image_encoder = image_cls(embed_dim=config.embed_dim, channels=tuple(config.channels),
                              hidden=config.image_hidden)
    text_cls = {"default": TextEncoder, "bow": BagOfWordsTextEncoder}.get(config.text_encoder)
    if text_cls is None:
        raise UserError(f"config: text_encoder must be 'default' or 'bow', got {config.text_encoder!r}")
    text_encoder = text_cls(tokenizer.vocab_size, max_len=tokenizer.max_len, embed_dim=config.embed_dim,
                            width=config.text_width, pad_id=tokenizer.pad_id)
    return DualEncoder(image_encoder, text_encoder)


def build_caption_decoder(config, tokenizer):
    backend.manual_seed(config.seed + 15)
    return CaptionDecoder(tokenizer.vocab_size, embed_dim=config.embed_dim, max_len=tokenizer.max_len,
                          context=config.caption_context, hidden=config.caption_hidden,
                          pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                          unk_id=tokenizer.unk_id)


def build_image_decoder(config):
    backend.manual_seed(config.seed + 16)
    return ImageDecoder(embed_dim=config.embed_dim, channels=tuple(config.image_channels),
                        prior_hidden=config.prior_hidden, embed_hidden=config.image_embed_hidden,
                        start_size=config.image_start_size)


def encoders_of(model, batch_size=500):
    """NumPy-in, NumPy-out encode functions of a dual encoder (no graph, batched)."""
    tokenizer = shapes_tokenizer()

    def encode_image(images):
        return map_batches(model.encode_image, images, batch_size)

    def encode_text(captions):
        return map_batches(model.encode_text, tokenizer.encode(list(captions)), batch_size)

    return encode_image, encode_text


def load_dual_encoder(config, run_dir):
    """The dual encoder saved in run_dir/clip.npz (for stages that build on a trained CLIP)."""
    path = Path(run_dir) / "clip.npz"
    if not path.exists():
        raise UserError(f"train: {run_dir} has no trained dual encoder ({path.name} is missing); "
                        f"train the clip stage first (--stages clip)")
    model = build_dual_encoder(config, shapes_tokenizer()).to(config.device)
    model.load_state_dict(load(path, required={"model": dict, "step": int})["model"])
    model.eval()
    return model


def _load_stage(path, decoder, stage, steps, run_dir, quiet, problems):
    """Weights from a finished stage checkpoint into ``decoder``, or None.

    A decoder is optional: one that stopped early or whose file is damaged is left out with a
    warning (and its reason in ``problems[stage]``) instead of stopping what does not need it.
    """
    if not path.exists():
        return None
    try:
        state = load(path, required={"model": dict, "step": int})
        if state["step"] < steps:
            raise CheckpointError(f"the {stage} decoder in {path} stopped at step {state['step']} of {steps}; "
                                  f"finish it with python -m tinymm train --run-dir {run_dir} --stages {stage} "
                                  f"--resume")
        decoder.load_state_dict(state["model"])
    except ValueError as err:   # CheckpointError, or load_state_dict: names or shapes that differ
        problems[stage] = " ".join(str(err).split())   # one line
        if not quiet:
            warnings.warn(f"load_run: left out the {stage} decoder: {err}", stacklevel=3)
        return None
    decoder.eval()
    return decoder


def load_decoders(config, run_dir, quiet=False, problems=None):
    """(caption_decoder or None, image_decoder or None): the finished decoders saved in run_dir.

    problems   a dict that receives, per decoder left out, why (stopped early, damaged file)
    """
    run_dir = Path(run_dir)
    problems = {} if problems is None else problems
    caption = _load_stage(run_dir / "caption.npz", build_caption_decoder(config, shapes_tokenizer()).to(config.device),
                          "caption", config.caption_steps, run_dir, quiet, problems)
    image = _load_stage(run_dir / "image.npz", build_image_decoder(config).to(config.device),
                        "image", config.image_steps, run_dir, quiet, problems)
    return caption, image
