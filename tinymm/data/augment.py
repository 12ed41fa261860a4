"""Augmentation that keeps the caption true: wider variety in how each word can look.

The plain renderer draws "small" as a radius of 3.3 to 3.7 pixels, "red" as one RGB value
times a brightness, and every edge with the same one-pixel ramp. A model trained only on that
can learn those exact numbers instead of the words: it then fails on a picture drawn by anyone
else (``tinymm.data.other_renderer`` measures this). Augmentation widens each word's range
while keeping every caption true of its picture:

- ``size``: "small" anywhere from 2.8 to 4.6 pixels of radius, "large" from 5.6 to 8.2 (the two
  classes never meet, so the size word stays right),
- ``shape``: proportions a person could still call by the same name: squares a little smaller
  or larger for their size, thinner or thicker crosses, lower or taller triangles,
- ``edge``: soft or sharp edges (the ramp from inside to outside is 0.5 to 1.8 pixels wide),
- ``colour``: each colour's hue moves by up to 12 degrees (the six colours are at least 48
  degrees apart, so a red stays red), its saturation and brightness vary,
- ``light``: darker or brighter, grey or tinted backgrounds, and from no noise to more noise.

Nothing here changes *what* is drawn, only how: which scenes exist (and so which colour-shape
pairs) is decided before, by the caption sampler, and the held-out pairs are never among them.

``Augment.parse("size,colour")`` turns the config's comma-separated list into the flags that
``ShapesCaptions(..., augment=...)`` uses.
"""

from dataclasses import dataclass

import numpy as np

INGREDIENTS = ("size", "shape", "edge", "colour", "light")

# "size": radius ranges in pixels, indexed like SIZES (small, large)
RADIUS_RANGE = np.array([[2.8, 4.6], [5.6, 8.2]], dtype=np.float32)
TWO_OBJECT_MAX_RADIUS = 7.0  # two objects side by side must still fit with a gap
# "shape": factors of the radius (the plain renderer's values: 0.886, 0.33 and 1.0)
SQUARE_HALF_SIDE_RANGE = (0.78, 1.0)
CROSS_HALF_WIDTH_RANGE = (0.22, 0.45)
TRIANGLE_HEIGHT_RANGE = (0.8, 1.05)
# "edge": width in pixels of the soft ramp across an edge (the plain renderer's is 1.0)
EDGE_RANGE = (0.5, 1.8)
# "colour"
HUE_SHIFT = 12.0  # degrees either way
SATURATION_RANGE = (0.75, 1.0)  # factor on the colour's saturation
BRIGHTNESS_RANGE = (0.65, 1.0)  # replaces the plain renderer's (0.8, 1.0)
# "light"
BACKGROUND_MAX_RANGE = (0.0, 0.14)  # each picture's background channels lie in [0, this]
GREY_BACKGROUND_P = 0.5  # share of pictures whose background is grey (untinted)
NOISE_STD_RANGE = (0.0, 0.06)


@dataclass(frozen=True)
class Augment:
    """Which ingredients are on. ``Augment()`` (all off) draws exactly like the plain renderer."""

    size: bool = False
    shape: bool = False
    edge: bool = False
    colour: bool = False
    light: bool = False

    @classmethod
    def parse(cls, text):
        """'size,colour' -> Augment(size=True, colour=True); '' or 'none' -> all off; 'all' -> all on."""
        if isinstance(text, Augment):
            return text
        if not isinstance(text, str):
            raise ValueError(f"augment: expected a comma-separated string of {INGREDIENTS}, got {text!r}")
        names = [t.strip() for t in text.split(",") if t.strip()]
        if names in (["none"], []):
            return cls()
        if names == ["all"]:
            return cls(**{n: True for n in INGREDIENTS})
        unknown = [n for n in names if n not in INGREDIENTS]
        if unknown:
            raise ValueError(f"augment: unknown ingredients {unknown}; choose from {', '.join(INGREDIENTS)} "
                             f"(comma-separated), 'all' or 'none'")
        return cls(**{n: True for n in names})

    def __bool__(self):
        return any(getattr(self, n) for n in INGREDIENTS)


def hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB: h in degrees (any real), s and v in [0, 1]; returns (..., 3)."""
    h = np.mod(h, 360.0) / 60.0
    c = v * s
    x = c * (1 - np.abs(np.mod(h, 2.0) - 1))
    zero = np.zeros_like(c)
    sector = np.floor(h).astype(np.int64) % 6
    table = [(c, x, zero), (x, c, zero), (zero, c, x), (zero, x, c), (x, zero, c), (c, zero, x)]
    rgb = np.zeros(h.shape + (3,), dtype=np.float32)
    for k, (r, g, b) in enumerate(table):
        here = sector == k
        rgb[here] = np.stack([r[here], g[here], b[here]], axis=-1)
    return rgb + (v - c)[..., None]


def rgb_to_hsv(rgb):
    """Vectorised RGB (..., 3) in [0, 1] -> (hue degrees in [0, 360), saturation, value)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    c = v - rgb.min(axis=-1)
    safe = np.where(c > 0, c, 1.0)
    h = np.where(v == r, np.mod((g - b) / safe, 6.0),
                 np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(c > 0, 60.0 * h, 0.0)
    s = np.where(v > 0, c / np.where(v > 0, v, 1.0), 0.0)
    return h, s, v


def jitter_colours(rng, base_rgb, n):
    """(n, 2, 3) colours: each object's named colour with its hue, saturation and brightness moved.

    ``base_rgb`` (n, 2, 3) holds the plain palette's colour of each object slot.
    """
    h, s, v = rgb_to_hsv(base_rgb)
    h = h + rng.uniform(-HUE_SHIFT, HUE_SHIFT, size=(n, 2))
    s = s * rng.uniform(*SATURATION_RANGE, size=(n, 2))
    v = v * rng.uniform(*BRIGHTNESS_RANGE, size=(n, 2))
    return hsv_to_rgb(h, s, v).astype(np.float32)
