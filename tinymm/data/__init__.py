"""Data for tinymm: captioned shapes scenes, a tokenizer, mini-batches and a folder loader.

Everything here returns plain NumPy arrays and needs nothing else from tinymm, so it can be read
(and used) before the autograd engine exists::

    from tinymm.data import ShapesCaptions, batches
    ds = ShapesCaptions(split="train", n=1000, seed=0)
    ds.images.shape, ds.tokens.shape      # (1000, 3, 32, 32), (1000, 12)
    for images, tokens in batches(ds.images, ds.tokens, batch_size=64):
        ...
"""

from .augment import Augment
from .batching import batches
from .folder import ImageFolder, load_image, load_image_folder
from .grammar import (
    COLOURS,
    EDIT_KINDS,
    HELD_OUT_PAIRS,
    RELATIONS,
    SHAPES,
    SIZES,
    VOCABULARY,
    Obj,
    Scene,
    all_captions,
    caption_of,
    contains_held_out,
    is_held_out,
    is_valid_caption,
    one_edit_variants,
    one_object_captions,
    parse_caption,
    two_object_captions,
)
from .other_renderer import OtherRendererScenes
from .shapes import SPLITS, ShapesCaptions, shapes_tokenizer
from .tokenizer import Tokenizer

__all__ = [
    "ShapesCaptions",
    "OtherRendererScenes",
    "Augment",
    "Tokenizer",
    "batches",
    "load_image_folder",
    "load_image",
    "ImageFolder",
    "shapes_tokenizer",
    "SPLITS",
    "SHAPES",
    "COLOURS",
    "SIZES",
    "RELATIONS",
    "HELD_OUT_PAIRS",
    "EDIT_KINDS",
    "VOCABULARY",
    "Obj",
    "Scene",
    "caption_of",
    "parse_caption",
    "is_valid_caption",
    "is_held_out",
    "contains_held_out",
    "one_edit_variants",
    "one_object_captions",
    "two_object_captions",
    "all_captions",
]
