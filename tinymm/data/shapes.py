"""ShapesCaptions: small pictures of coloured shapes, each with the caption that describes it.

Real image-text datasets are large and noisy; this one is drawn on the fly, so it costs nothing to
download, every caption is exactly true, and we know every attribute of every scene. That lets
the course measure precisely what a model has learned (is the colour right? the relation?).

A scene is drawn in four steps, each one vectorised over all scenes at once:

1. sample captions uniformly from the split's allowed set (``_sample_caption_rows``),
2. place the objects so that the caption is true: sizes, jittered positions, "left of" or "above"
   with a clear gap (``_place_objects``),
3. paint each object with a *signed distance*: a number per pixel that is negative inside the
   shape and positive outside; ``clip(0.5 - distance, 0, 1)`` turns it into a soft-edged mask
   (``paint_objects``),
4. add a dark, slightly tinted background and a little Gaussian pixel noise, so no two images are
   the same even when their captions are.

Training can ask for more variety (``augment``, see ``tinymm.data.augment``): wider sizes, other
proportions, softer or sharper edges, shifted colours, other backgrounds and noise. It changes
how each scene is drawn, never which scenes are drawn.

The only Python loops are over the two object slots and the four kinds of shape; never over
pixels or images. That is why thousands of images are drawn per second on one core.
"""

import functools

import numpy as np

from .grammar import (
    COLOURS,
    HELD_OUT_PAIRS,
    MAX_WORDS,
    RELATIONS,
    SHAPES,
    SIZES,
    VOCABULARY,
    all_captions,
    one_object_captions,
    parse_caption,
)
from . import augment as aug
from .augment import Augment
from .tokenizer import Tokenizer

SPLITS = ("train", "val", "test", "compositional")
IMAGE_SIZE = 32

# Geometry, in pixels. Every shape fits in a box of half-width `radius` around its centre.
RADIUS = np.array([3.5, 6.0], dtype=np.float32)  # indexed like SIZES: small, large
RADIUS_JITTER = 0.2  # each object's radius varies by up to this much
MARGIN = 0.5  # keep the soft edge (half a pixel) inside the image
MIN_GAP = 2.0  # at least this many pixels between the boxes of two objects
ACROSS_WOBBLE = 1.5  # "left of" objects sit on roughly one row: each may move this far off it
SQUARE_HALF_SIDE = 0.886  # times radius: a square with the same area as the circle of that radius
CROSS_HALF_WIDTH = 0.33  # times radius: how thick the two bars of a cross are

# Colours as RGB in [0, 1], indexed like COLOURS. Blue is lightened a little: pure blue is hard to
# see on a dark background.
RGB = np.array(
    [
        [0.95, 0.10, 0.10],  # red
        [0.10, 0.85, 0.10],  # green
        [0.20, 0.30, 1.00],  # blue
        [0.95, 0.90, 0.10],  # yellow
        [0.90, 0.10, 0.90],  # magenta
        [0.10, 0.90, 0.90],  # cyan
    ],
    dtype=np.float32,
)
BRIGHTNESS = (0.8, 1.0)  # each object's colour is scaled by a factor drawn from this range
BACKGROUND_MAX = 0.08  # each background channel is drawn from [0, BACKGROUND_MAX]: dark, tinted
NOISE_STD = (0.02, 0.04)  # each image gets Gaussian pixel noise with a std drawn from this range
CHUNK = 2048  # images painted at once: bounds the memory of the (chunk, 32, 32) temporaries


def shapes_tokenizer() -> Tokenizer:
    """The tokenizer of the shapes grammar: 4 special tokens + 16 words, rows of 12 ids.

    It is the same for every split and seed, so a model trained on one split reads any other.
    """
    return Tokenizer(VOCABULARY, max_len=MAX_WORDS + 2)


class ShapesCaptions:
    """A seeded, procedurally drawn dataset of captioned 32x32 scenes.

    Splits:

    - "train", "val", "test": independent draws of the same distribution (i.i.d.); no scene ever
      contains a held-out colour-shape pair (see ``HELD_OUT_PAIRS``),
    - "compositional": every scene contains at least one held-out pair; its one-object scenes are
      exactly the 12 held-out objects (6 pairs x 2 sizes).

    Captions are drawn uniformly from the split's allowed one-object captions for a fraction
    ``one_object_fraction`` of the scenes, and uniformly from its two-object captions for the rest.

    Attributes:

    - ``images``: (N, 3, 32, 32) float32 in [0, 1],
    - ``captions``: list of N str,
    - ``tokens``: (N, 12) int64 ids from ``tokenizer``,
    - ``tokenizer``: the grammar's ``Tokenizer`` (``shapes_tokenizer()``),
    - ``scenes``: a dict of per-scene arrays for checking predictions attribute by attribute.
      Integer codes index the grammar's tuples (``SHAPES[scenes["shape"][i, 0]]``) and are -1
      where there is no second object / no relation:

      ``n_objects`` (N,), ``size``/``colour``/``shape`` (N, 2), ``relation`` (N,),
      ``held_out`` (N,) bool, ``caption_index`` (N,) position in ``all_captions()``,
      ``radius``/``centre_x``/``centre_y`` (N, 2) float32 pixels (NaN where absent; row 0 is the
      top of the image, so "above" means a smaller ``centre_y``).

    The same (split, n, seed, one_object_fraction, augment) always gives identical arrays; different
    splits draw from different random streams, so they never share images.

    ``augment``: an ``Augment`` or a comma-separated string of its ingredients ("size,colour",
    "all"); None or "" draws plainly. It changes how scenes look, never which captions are drawn:
    the same seed gives the same captions with or without it.
    """

    def __init__(self, split="train", n=1000, seed=0, one_object_fraction=0.5, augment=None):
        if split not in SPLITS:
            raise ValueError(f"ShapesCaptions: split must be one of {SPLITS}, got {split!r}")
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"ShapesCaptions: n must be a positive int, got {n!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"ShapesCaptions: seed must be a non-negative int, got {seed!r}")
        if not 0.0 <= one_object_fraction <= 1.0:
            raise ValueError(f"ShapesCaptions: one_object_fraction must lie in [0, 1], got {one_object_fraction!r}")
        augment = Augment.parse(augment or "")
        self.split, self.seed, self.augment = split, int(seed), augment
        # One random stream per (seed, split): the same seed never repeats images across splits.
        rng = np.random.default_rng([int(seed), SPLITS.index(split)])
        # augmentation draws from a stream of its own, so the plain draws stay what they were
        aug_rng = np.random.default_rng([int(seed), SPLITS.index(split), 1])

        rows = _sample_caption_rows(rng, split, int(n), one_object_fraction)
        captions, table, tokens = _caption_table()
        self.scenes = {key: column[rows] for key, column in table.items()}
        self.scenes["caption_index"] = rows
        self.scenes.update(_place_objects(rng, self.scenes, augment, aug_rng))
        self.images = _draw_images(rng, self.scenes, augment, aug_rng)
        self.captions = [captions[i] for i in rows]
        self.tokenizer = shapes_tokenizer()
        self.tokens = tokens[rows]

    @classmethod
    def one_object_captions(cls) -> list:
        """The 48 one-object captions of the grammar (the labels of zero-shot classification)."""
        return one_object_captions()

    @classmethod
    def all_captions(cls) -> list:
        """All 4,560 captions of the grammar: 48 with one object, then 4,512 with two."""
        return all_captions()

    def __len__(self):
        return len(self.captions)

    def __getitem__(self, i):
        """Scene ``i`` as (image (3, 32, 32) float32, caption str)."""
        return self.images[i], self.captions[i]

    def __repr__(self):
        return f"ShapesCaptions(split={self.split!r}, n={len(self)}, seed={self.seed})"


@functools.lru_cache(maxsize=1)
def _caption_table():
    """Every caption of the grammar, once, as integer columns and as token ids.

    Row i describes ``all_captions()[i]``. Sampling a dataset is then just picking rows, and its
    token ids are looked up instead of re-tokenizing thousands of strings.
    """
    captions = all_captions()
    n = len(captions)
    table = {
        "n_objects": np.zeros(n, dtype=np.int64),
        "size": np.full((n, 2), -1, dtype=np.int64),
        "colour": np.full((n, 2), -1, dtype=np.int64),
        "shape": np.full((n, 2), -1, dtype=np.int64),
        "relation": np.full(n, -1, dtype=np.int64),
        "held_out": np.zeros(n, dtype=bool),
    }
    for i, caption in enumerate(captions):
        scene = parse_caption(caption)
        table["n_objects"][i] = len(scene.objects)
        for slot, obj in enumerate(scene.objects):
            table["size"][i, slot] = SIZES.index(obj.size)
            table["colour"][i, slot] = COLOURS.index(obj.colour)
            table["shape"][i, slot] = SHAPES.index(obj.shape)
            table["held_out"][i] |= (obj.colour, obj.shape) in HELD_OUT_PAIRS
        if scene.relation is not None:
            table["relation"][i] = RELATIONS.index(scene.relation)
    for column in table.values():
        column.setflags(write=False)  # shared by every dataset: nobody may change it by accident
    tokens = shapes_tokenizer().encode(captions)
    tokens.setflags(write=False)
    return captions, table, tokens


def _sample_caption_rows(rng, split, n, one_object_fraction):
    """Pick n rows of the caption table: uniform over the split's one- and two-object captions."""
    _, table, _ = _caption_table()
    allowed = table["held_out"] == (split == "compositional")
    one_rows = np.flatnonzero(allowed & (table["n_objects"] == 1))
    two_rows = np.flatnonzero(allowed & (table["n_objects"] == 2))
    n_one = int(round(n * one_object_fraction))
    rows = np.concatenate([rng.choice(one_rows, n_one), rng.choice(two_rows, n - n_one)])
    return rng.permutation(rows)


def _place_objects(rng, scenes, augment=Augment(), aug_rng=None):
    """Choose each object's radius and centre so that the caption is true of the picture.

    One object goes anywhere it fits. For two objects, call the relation's direction "along"
    (x for "left of", y for "above") and the other one "across". Along, the first object comes
    before the second with at least ``MIN_GAP`` pixels between their boxes, and the spare room is
    split at random into the space before, between and after them. Across, both sit near one
    shared line, at most ``ACROSS_WOBBLE`` pixels off it, so "left of" never looks like "above".
    Boxes that are apart along one axis cannot overlap, and every box stays inside the image.
    With ``augment.size`` each radius is drawn from its size class's wider range instead.
    """
    n = len(scenes["n_objects"])
    present = scenes["size"] >= 0
    size = np.maximum(scenes["size"], 0)
    jitter = rng.uniform(-RADIUS_JITTER, RADIUS_JITTER, size=(n, 2))
    radius = RADIUS[size] + jitter
    if augment.size:
        low, high = aug.RADIUS_RANGE[size, 0], aug.RADIUS_RANGE[size, 1]
        high = np.where((scenes["n_objects"] == 2)[:, None], np.minimum(high, aug.TWO_OBJECT_MAX_RADIUS), high)
        radius = aug_rng.uniform(low, high)
    radius = np.where(present, radius, np.nan).astype(np.float32)
    centre_x = np.full((n, 2), np.nan, dtype=np.float32)
    centre_y = np.full((n, 2), np.nan, dtype=np.float32)

    one = scenes["n_objects"] == 1
    r = radius[one, 0]
    centre_x[one, 0] = rng.uniform(MARGIN + r, IMAGE_SIZE - MARGIN - r)
    centre_y[one, 0] = rng.uniform(MARGIN + r, IMAGE_SIZE - MARGIN - r)

    two = scenes["n_objects"] == 2
    r_a, r_b = radius[two, 0], radius[two, 1]
    spare = (IMAGE_SIZE - 2 * MARGIN) - 2 * r_a - 2 * r_b - MIN_GAP
    cuts = np.sort(rng.uniform(0.0, 1.0, size=(len(r_a), 2)), axis=1) * spare[:, None]
    along_a = MARGIN + cuts[:, 0] + r_a
    along_b = along_a + r_a + MIN_GAP + (cuts[:, 1] - cuts[:, 0]) + r_b

    r_big = np.maximum(r_a, r_b)
    line = rng.uniform(MARGIN + r_big, IMAGE_SIZE - MARGIN - r_big)
    wobble = rng.uniform(-ACROSS_WOBBLE, ACROSS_WOBBLE, size=(len(r_a), 2))
    across_a = np.clip(line + wobble[:, 0], MARGIN + r_a, IMAGE_SIZE - MARGIN - r_a)
    across_b = np.clip(line + wobble[:, 1], MARGIN + r_b, IMAGE_SIZE - MARGIN - r_b)

    left_of = scenes["relation"][two] == RELATIONS.index("left of")
    centre_x[two, 0] = np.where(left_of, along_a, across_a)
    centre_x[two, 1] = np.where(left_of, along_b, across_b)
    centre_y[two, 0] = np.where(left_of, across_a, along_a)
    centre_y[two, 1] = np.where(left_of, across_b, along_b)
    return {"radius": radius, "centre_x": centre_x, "centre_y": centre_y}


def _draw_images(rng, scenes, augment=Augment(), aug_rng=None):
    """Paint all scenes: tinted dark background, the objects, then pixel noise, clipped to [0, 1].

    With ``augment``, the ingredients it names are drawn from ``aug_rng`` instead: colours
    (``colour``), background and noise (``light``), each shape's proportion (``shape``) and the
    width of its edge ramp (``edge``). The plain draws from ``rng`` happen either way, so the
    rest of the scene stays what it would have been.
    """
    n = len(scenes["n_objects"])
    background = rng.uniform(0.0, BACKGROUND_MAX, size=(n, 3)).astype(np.float32)
    brightness = rng.uniform(*BRIGHTNESS, size=(n, 2, 1)).astype(np.float32)
    colour_rgb = RGB[np.maximum(scenes["colour"], 0)] * brightness  # (n, 2, 3)
    noise_std = rng.uniform(*NOISE_STD, size=(n, 1, 1, 1)).astype(np.float32)
    form = {}  # per-object drawing parameters that augmentation changes (absent: the plain ones)
    if augment.colour:
        colour_rgb = aug.jitter_colours(aug_rng, RGB[np.maximum(scenes["colour"], 0)], n)
    if augment.light:
        top = aug_rng.uniform(*aug.BACKGROUND_MAX_RANGE, size=(n, 1))
        background = (aug_rng.uniform(0.0, 1.0, size=(n, 3)) * top).astype(np.float32)
        grey = aug_rng.random(n) < aug.GREY_BACKGROUND_P
        background[grey] = background[grey, :1]
        noise_std = aug_rng.uniform(*aug.NOISE_STD_RANGE, size=(n, 1, 1, 1)).astype(np.float32)
    if augment.shape:
        # one factor per object: a square's half side, a triangle's height, a cross's half width
        ranges = np.array([(1.0, 1.0), aug.SQUARE_HALF_SIDE_RANGE, aug.TRIANGLE_HEIGHT_RANGE,
                           aug.CROSS_HALF_WIDTH_RANGE], dtype=np.float32)[np.maximum(scenes["shape"], 0)]
        drawn = aug_rng.uniform(ranges[..., 0], ranges[..., 1])
        form["factor"] = (drawn / DEFAULT_FACTOR[np.maximum(scenes["shape"], 0)]).astype(np.float32)
    if augment.edge:
        form["edge"] = aug_rng.uniform(*aug.EDGE_RANGE, size=(n, 2)).astype(np.float32)

    images = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        chunk = {key: value[part] for key, value in scenes.items()}
        chunk.update({key: value[part] for key, value in form.items()})
        image = np.broadcast_to(background[part, :, None, None], images[part].shape).copy()
        paint_objects(image, chunk, colour_rgb[part])
        image += noise_std[part] * rng.standard_normal(image.shape, dtype=np.float32)
        images[part] = np.clip(image, 0.0, 1.0)
    return images


def paint_objects(images, scenes, colour_rgb):
    """Blend every object into ``images`` (n, 3, H, W) in place, through its soft-edged mask.

    The mask is ``clip(0.5 - signed_distance, 0, 1)``: 1 well inside the shape, 0 well outside,
    and a one-pixel ramp across the edge, which keeps small shapes from looking jagged.
    ``scenes`` may carry per-object ``factor`` (the shape's proportion, times its plain value)
    and ``edge`` (the ramp's width in pixels); both are 1 for the plain renderer.
    The image decoder's targets (``canonical_scenes`` in ``tinymm/train/decoders.py``) are
    painted with it too, so a target is drawn exactly as a training scene would be.
    """
    # Pixel centres sit at 0.5, 1.5, ...: a pixel is "inside" if its centre is.
    ys, xs = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + 0.5
    for slot in range(2):
        for kind, signed_distance in enumerate(SIGNED_DISTANCES):
            idx = np.flatnonzero(scenes["shape"][:, slot] == kind)
            if len(idx) == 0:
                continue
            dx = xs - scenes["centre_x"][idx, slot, None, None]  # (k, H, W)
            dy = ys - scenes["centre_y"][idx, slot, None, None]
            r = scenes["radius"][idx, slot, None, None]
            distance = signed_distance(dx, dy, r, *([scenes["factor"][idx, slot, None, None]]
                                                    if "factor" in scenes else []))
            if "edge" in scenes:
                distance = distance / scenes["edge"][idx, slot, None, None]
            mask = np.clip(0.5 - distance, 0.0, 1.0)[:, None]  # (k, 1, H, W)
            colour = colour_rgb[idx, slot, :, None, None]  # (k, 3, 1, 1)
            images[idx] = images[idx] * (1.0 - mask) + colour * mask


# Signed distances in pixels (negative inside, positive outside) from each pixel to a shape of
# "radius" r centred at offset (0, 0). dx grows to the right, dy grows downwards.


# ``factor`` scales the shape's own proportion (1: the plain renderer's): a square's half side,
# a triangle's height, a cross's bar width. A circle has none.


def _circle_distance(dx, dy, r, factor=1.0):
    """Distance from the centre, minus the radius."""
    return np.sqrt(dx * dx + dy * dy) - r


def _square_distance(dx, dy, r, factor=1.0):
    """The larger of |dx| and |dy| (the max-norm), minus the half side."""
    return np.maximum(np.abs(dx), np.abs(dy)) - SQUARE_HALF_SIDE * factor * r


def _triangle_distance(dx, dy, r, factor=1.0):
    """An upward triangle: apex at (0, -r), base corners at (-r, r) and (r, r).

    It is the intersection of three half-planes: below the two slanted sides and above the base.
    The slanted sides have direction (1, 2), so their outward normal is (2, -1) / sqrt(5); using
    |dx| handles the left and right side with one formula. The largest distance wins.
    A ``factor`` other than 1 squashes or stretches it vertically (height 2 r factor); the
    distance is then measured in the stretched frame, close enough for a soft edge.
    """
    dy = dy / factor
    slanted = (2.0 * np.abs(dx) - (dy + r)) / np.sqrt(np.float32(5.0))
    base = dy - r
    return np.maximum(slanted, base)


def _cross_distance(dx, dy, r, factor=1.0):
    """A plus sign: the union of a horizontal and a vertical bar, so the smallest distance wins."""
    ax, ay, half_width = np.abs(dx), np.abs(dy), CROSS_HALF_WIDTH * factor * r
    horizontal = np.maximum(ax - r, ay - half_width)
    vertical = np.maximum(ax - half_width, ay - r)
    return np.minimum(horizontal, vertical)


# Indexed like SHAPES.
SIGNED_DISTANCES = (_circle_distance, _square_distance, _triangle_distance, _cross_distance)
# Each shape's plain proportion, indexed like SHAPES (what augment.shape's ranges are divided by).
DEFAULT_FACTOR = np.array([1.0, SQUARE_HALF_SIDE, 1.0, CROSS_HALF_WIDTH], dtype=np.float32)
