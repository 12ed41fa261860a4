"""A second renderer: the same captions drawn by another program, for testing only.

A model that scores 1.00 on pictures from its own renderer may have learned that renderer's
accidents (its exact sizes, its edge ramp, its noise) instead of what the captions say. The
honest test is a picture someone else drew. This module is that someone else: it reads a
caption and draws it with Pillow's ``ImageDraw`` (polygons and ellipses), with its own idea of
each word:

- **colours**: each name is a range of hues, saturations and brightnesses that a person would
  call by that name (any red from orange-ish to pink-ish red, ...), not the training palette;
- **sizes**: "small" is an object 6 to 9 pixels across, "large" one 12 to 16 pixels across,
  in a 32x32 picture;
- **shapes**: a circle, an axis-aligned square as wide as the size says, an upward
  equilateral triangle, and a plus sign whose bars are anywhere from thin to thick;
- **edges**: the scene is drawn at 4 times the size with hard edges and shrunk with a Lanczos
  filter, so edges are anti-aliased another way than the training renderer's one-pixel ramp;
- **background**: plain black or near-black grey, no tint, almost no noise.

Nothing in training ever calls this module (a test checks it): it is only an evaluation set.
Pillow draws one picture at a time, so this is a loop over scenes; 1,000 scenes take about a
second.
"""

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from .grammar import COLOURS, SHAPES, SIZES, one_object_captions, parse_caption
from .shapes import shapes_tokenizer

IMAGE_SIZE = 32
SUPERSAMPLE = 4  # draw at 128x128, then shrink

# Each colour name as ranges of hue (degrees), saturation and value (HSV).
HUES = {"red": (-12, 10), "green": (100, 140), "blue": (215, 240), "yellow": (50, 62),
        "magenta": (290, 315), "cyan": (175, 192)}
SATURATION = (0.7, 1.0)
VALUE = (0.8, 1.0)
# Blue at full saturation is almost invisible on black; a person drawing "blue" on black picks
# a lighter one.
BLUE_SATURATION = (0.65, 0.85)

# How wide the object is, in pixels of the 32x32 picture.
WIDTH = {"small": (6.0, 9.0), "large": (12.0, 16.0)}
CROSS_BAR = (0.22, 0.40)  # the thickness of a plus sign's bars, as a fraction of its width
BACKGROUND = (0.0, 0.04)  # one grey level per picture
NOISE_STD = 0.004


class OtherRendererScenes:
    """``n`` one-object scenes drawn by the second renderer, captions uniform over all 48.

    The held-out colour-shape pairs are included (they are test pictures), so this set asks both
    questions at once: another renderer, and every combination of the grammar.

    Attributes like ``ShapesCaptions``: ``images`` (N, 3, 32, 32) float32 in [0, 1], ``captions``
    (N str), ``tokens`` (N, 12), ``tokenizer``, and ``scenes`` with ``size``, ``colour``,
    ``shape`` (N,) integer codes into the grammar's tuples, ``width``, ``centre_x``, ``centre_y``
    (N,) float32 pixels and ``rgb`` (N, 3) the colour drawn. The same (n, seed) gives the same
    arrays.
    """

    def __init__(self, n=1000, seed=0, captions=None):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"OtherRendererScenes: n must be a positive int, got {n!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"OtherRendererScenes: seed must be a non-negative int, got {seed!r}")
        # a stream of its own: the number 99 keeps it apart from ShapesCaptions' (seed, split) streams
        rng = np.random.default_rng([int(seed), 99])
        labels = one_object_captions()
        if captions is None:
            captions = [labels[i] for i in rng.integers(0, len(labels), size=int(n))]
        else:
            captions = list(captions)
            n = len(captions)
        objects = [parse_caption(c).objects for c in captions]
        if any(len(objs) != 1 for objs in objects):
            raise ValueError("OtherRendererScenes: draws one-object captions only")
        objects = [objs[0] for objs in objects]
        self.captions = captions
        self.scenes = {
            "size": np.array([SIZES.index(o.size) for o in objects], dtype=np.int64),
            "colour": np.array([COLOURS.index(o.colour) for o in objects], dtype=np.int64),
            "shape": np.array([SHAPES.index(o.shape) for o in objects], dtype=np.int64),
        }
        width = np.array([rng.uniform(*WIDTH[o.size]) for o in objects], dtype=np.float32)
        # anywhere the whole object fits
        centre_x = rng.uniform(width / 2, IMAGE_SIZE - width / 2).astype(np.float32)
        centre_y = rng.uniform(width / 2, IMAGE_SIZE - width / 2).astype(np.float32)
        rgb = np.array([_colour(rng, o.colour) for o in objects], dtype=np.float32)
        bar = rng.uniform(*CROSS_BAR, size=n)
        background = rng.uniform(*BACKGROUND, size=n)
        self.scenes.update(width=width, centre_x=centre_x, centre_y=centre_y, rgb=rgb)
        images = np.stack([_draw(o.shape, width[i], centre_x[i], centre_y[i], rgb[i], bar[i], background[i])
                           for i, o in enumerate(objects)])
        images += NOISE_STD * rng.standard_normal(images.shape).astype(np.float32)
        self.images = np.clip(images, 0.0, 1.0)
        self.tokenizer = shapes_tokenizer()
        self.tokens = self.tokenizer.encode(self.captions)

    def __len__(self):
        return len(self.captions)

    def __repr__(self):
        return f"OtherRendererScenes(n={len(self)})"


def _colour(rng, name):
    """One RGB colour in [0, 1] that a person would call ``name``."""
    low, high = HUES[name]
    hue = (rng.uniform(low, high) % 360) / 360
    saturation = rng.uniform(*(BLUE_SATURATION if name == "blue" else SATURATION))
    return colorsys.hsv_to_rgb(hue, saturation, rng.uniform(*VALUE))


def _draw(shape, width, cx, cy, rgb, bar, background):
    """One (3, 32, 32) float32 picture: the shape drawn at 4x with hard edges, shrunk with Lanczos."""
    s = SUPERSAMPLE
    grey = int(round(255 * background))
    picture = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), (grey, grey, grey))
    draw = ImageDraw.Draw(picture)
    fill = tuple(int(round(255 * c)) for c in rgb)
    half = width * s / 2
    x, y = cx * s, cy * s
    if shape == "circle":
        draw.ellipse([x - half, y - half, x + half, y + half], fill=fill)
    elif shape == "square":
        draw.rectangle([x - half, y - half, x + half, y + half], fill=fill)
    elif shape == "triangle":
        # equilateral, base at the bottom: its height is sqrt(3)/2 of its width, centred vertically
        h = half * np.sqrt(3.0)
        draw.polygon([(x, y - h / 2), (x + half, y + h / 2), (x - half, y + h / 2)], fill=fill)
    elif shape == "cross":
        t = bar * half
        draw.rectangle([x - half, y - t, x + half, y + t], fill=fill)
        draw.rectangle([x - t, y - half, x + t, y + half], fill=fill)
    else:
        raise ValueError(f"other renderer: unknown shape {shape!r}")
    small = picture.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return (np.asarray(small, dtype=np.float32) / 255.0).transpose(2, 0, 1)
