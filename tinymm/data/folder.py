"""Load your own images and captions, so a model can be trained on something other than shapes.

The folder holds the images and a ``captions.tsv`` file with one image per line::

    # file name <TAB> caption      (blank lines and lines starting with # are ignored)
    cat.png	a cat sleeping on a sofa
    photos/dog.jpg	a brown dog in the snow

Each image is converted to RGB, cut to a centred square and shrunk to ``size`` x ``size`` pixels,
so the result has the same attributes as ``ShapesCaptions``: ``images``, ``captions``, ``tokens``,
``tokenizer``. Lines that cannot be used (no tab, a missing, unreadable or far too large image) are
skipped and named together in one warning, so one bad file does not stop the whole load.

Some problems are not one bad file but a wrong captions.tsv, and stop the load with an error
naming the line: text that is not UTF-8 (guessing another encoding could silently misread
every accent, so you re-save the file as UTF-8 instead), a second tab (a caption cannot
contain one, so the columns are ambiguous), and a file name that leads outside the folder
(``../``, an absolute path, or a symbolic link to somewhere else: a shared folder must not
make you read other files on your machine). A UTF-8 byte-order mark at the start is allowed.

Every image format Pillow reads is converted to RGB values in [0, 1]: 16-bit images are
scaled by 65535 (not clipped at 255, which would turn them white), and transparent pixels are
laid on black, like the dark backgrounds of the shapes scenes. A photo that a phone stored
sideways is turned upright first, as its EXIF orientation tag asks (as every image viewer does).
``load_image(path, return_notes=True)`` also says, in words, which of these steps one file needed.
"""

import os
import warnings

import numpy as np

from ..errors import UserError
from .tokenizer import Tokenizer

CAPTIONS_FILE = "captions.tsv"

# The largest image (in pixels) that is decoded. Every image is shrunk to a few dozen pixels
# anyway; a file that declares more is refused before decoding it, because a small compressed
# file can claim 20000 x 20000 pixels and unpack into gigabytes (a "decompression bomb").
MAX_PIXELS = 8000 * 8000


class ImageFolder:
    """Images and captions read from a folder; made by ``load_image_folder``.

    Attributes: ``images`` (N, 3, size, size) float32 in [0, 1], ``captions`` (list of N str),
    ``tokens`` (N, max_len) int64, ``tokenizer``, and ``file_names`` (list of N str).
    """

    def __init__(self, images, captions, file_names, tokenizer):
        self.images = images
        self.captions = captions
        self.file_names = file_names
        self.tokenizer = tokenizer
        self.tokens = tokenizer.encode(captions)
        self.scenes = None  # real photos come without attribute labels

    def __len__(self):
        return len(self.captions)

    def __getitem__(self, i):
        """Image ``i`` as (image (3, size, size) float32, caption str)."""
        return self.images[i], self.captions[i]

    def __repr__(self):
        return f"ImageFolder(n={len(self)}, size={self.images.shape[-1]})"


def load_image_folder(path, size=32, tokenizer=None, max_len=12):
    """Read ``path/captions.tsv`` and its images into an ``ImageFolder``.

    Without a ``tokenizer`` a new one is built from these captions, with rows of ``max_len`` ids;
    pass the tokenizer of a trained model instead to read the captions with its vocabulary.
    Raises FileNotFoundError if the folder or captions.tsv is missing, and ValueError if not a
    single line gave a usable image.
    """
    from PIL import Image  # imported here so that the rest of tinymm.data needs only NumPy

    if not os.path.isdir(path):
        raise FileNotFoundError(f"load_image_folder: no folder at {path!r}")
    captions_path = os.path.join(path, CAPTIONS_FILE)
    if not os.path.isfile(captions_path):
        raise FileNotFoundError(f"load_image_folder: {path!r} has no {CAPTIONS_FILE} (lines 'file_name<TAB>caption')")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"load_image_folder: size must be a positive int, got {size!r}")

    entries, problems = _read_captions_file(captions_path, path)
    images, captions, file_names = [], [], []
    for file_name, caption in entries:
        try:
            images.append(_load_image(Image, os.path.join(path, file_name), size))
        except (OSError, ValueError, Image.DecompressionBombError) as error:  # missing, unreadable, too big
            problems.append(f"{file_name} ({type(error).__name__}: {error})")
            continue
        captions.append(caption)
        file_names.append(file_name)

    if problems:
        warnings.warn(f"load_image_folder: skipped {len(problems)} unusable line(s) of {captions_path}: "
                      + "; ".join(problems), stacklevel=2)
    if not images:
        raise ValueError(f"load_image_folder: no usable image in {path!r} (see {CAPTIONS_FILE})")
    if tokenizer is None:
        tokenizer = Tokenizer.from_captions(captions, max_len=max_len)
    return ImageFolder(np.stack(images), captions, file_names, tokenizer)


def _read_captions_file(captions_path, folder):
    """(file name, caption) pairs of the usable lines, and a description of each malformed one."""
    entries, problems = [], []
    with open(captions_path, "rb") as f:
        raw_lines = f.read().split(b"\n")
    if raw_lines and raw_lines[0].startswith(b"\xef\xbb\xbf"):  # the UTF-8 byte-order mark
        raw_lines[0] = raw_lines[0][3:]
    for number, raw in enumerate(raw_lines, start=1):
        where = f"load_image_folder: {captions_path} line {number}"
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            raise UserError(f"{where} is not UTF-8 text (byte {raw[err.start:err.start + 1]!r}); "
                            f"save the file as UTF-8") from None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        file_name, tab, caption = line.partition("\t")
        file_name, caption = file_name.strip(), caption.strip()
        if not tab or not file_name or not caption:
            problems.append(f"line {number} {line[:60]!r} (expected 'file_name<TAB>caption')")
            continue
        if "\t" in caption:
            raise UserError(f"{where} has more than two tab-separated columns ({line[:60]!r}); "
                            f"write 'file_name<TAB>caption', one tab per line")
        if not _inside(folder, file_name):
            raise UserError(f"{where}: {file_name!r} leads outside the folder {folder}; "
                            f"give paths relative to the folder, with no '..' or links leading out")
        entries.append((file_name, caption))
    return entries, problems


def _inside(folder, file_name):
    """Whether ``folder/file_name`` stays inside ``folder`` once '..' and links are resolved."""
    if os.path.isabs(file_name):
        return False
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(folder, file_name))
    return os.path.commonpath([root, target]) == root


def _load_image(Image, file_path, size, notes=None):
    """One image as a (3, size, size) float32 array in [0, 1].

    Cutting the centred square first keeps shapes from being squashed; resizing with a bilinear
    filter averages the pixels it shrinks, which avoids jagged, aliased thumbnails. Each change
    made to the picture on the way is described in plain words in ``notes`` (a list), if given.
    """
    notes = [] if notes is None else notes
    with Image.open(file_path) as image:
        width, height = image.size
        if width * height > MAX_PIXELS:  # checked on the header, before any pixel is decoded
            raise ValueError(f"{file_path} is {width} x {height} pixels, more than "
                             f"tinymm.data.folder.MAX_PIXELS = {MAX_PIXELS}; shrink it first")
        frames = getattr(image, "n_frames", 1)
        if frames > 1:  # an animated GIF or PNG, a multi-page TIFF: Pillow opens the first frame
            notes.append(f"first of its {frames} frames used")
        image, width, height = _upright(image, notes)
        pixels = _to_rgb(image, notes)
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = pixels[top:top + side, left:left + side]
    notes.extend(_resize_note(width, height, side, size))
    channels = [Image.fromarray(np.ascontiguousarray(square[:, :, c])).resize((size, size), Image.BILINEAR)
                for c in range(3)]
    resized = np.stack([np.asarray(c, dtype=np.float32) for c in channels])
    outside = int(((resized < 0) | (resized > 1)).sum())
    if outside:
        notes.append(f"{outside} of its {resized.size} values fell outside [0, 1] and were clipped")
    return np.clip(resized, 0.0, 1.0)


# What the EXIF orientation tag (a number from 1 to 8 written by cameras and phones) asks for
# before the picture is upright; 1 means it already is.
_ORIENTATIONS = {2: "mirrored left to right", 3: "turned 180 degrees", 4: "mirrored top to bottom",
                 5: "mirrored along its main diagonal", 6: "turned 90 degrees clockwise",
                 7: "mirrored along its other diagonal", 8: "turned 90 degrees anticlockwise"}


def _upright(image, notes):
    """The image as a viewer shows it: a phone stores a portrait photo sideways and writes in its
    EXIF data how to turn it, so it is turned here too. -> (image, width, height)."""
    from PIL import ImageOps

    orientation = image.getexif().get(0x0112)  # 0x0112: the EXIF orientation tag
    if orientation not in _ORIENTATIONS:
        return image, image.width, image.height
    image = ImageOps.exif_transpose(image)
    notes.append(f"{_ORIENTATIONS[orientation]}, as its EXIF orientation tag ({orientation}) asks")
    return image, image.width, image.height


def _resize_note(width, height, side, size):
    """What cutting the centred side x side square and resizing it to size x size does, in words."""
    if width == height:
        if side == size:
            return []
        grown = " (enlarged: expect a blurred picture)" if side < size else ""
        return [f"resized from {width}x{height} to {size}x{size}{grown}"]
    cut = f"{width - side} columns cut off at the sides" if width > height else \
          f"{height - side} rows cut off at the top and bottom"
    square = f"its centre {side}x{side} square, so the aspect ratio is kept: {cut}"
    if side == size:
        return [f"cut from {width}x{height} to {square}"]
    grown = "; enlarged: expect a blurred picture" if side < size else ""
    return [f"resized from {width}x{height} to {size}x{size} ({square}{grown})"]


def _to_rgb(image, notes=None):
    """Any Pillow image as an (H, W, 3) float32 array in [0, 1], transparency laid on black.

    Pillow's own ``convert("RGB")`` clips 16-bit values at 255 (a 16-bit image turns almost
    white) and drops transparency without looking at it, so the modes are handled here. Each
    conversion is described in ``notes`` (a list), if given.
    """
    notes = [] if notes is None else notes
    if image.mode == "P":  # a palette: look the colours up (with their transparency)
        notes.append("palette colours converted to RGB")
        image = image.convert("RGBA")
        if image.getextrema()[3][0] == 255:  # every pixel opaque: no alpha worth a note
            image = image.convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit grey (PNG)
        notes.append("16-bit grey scaled to [0, 1] (divided by 65535) and copied to R, G and B")
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":  # 32-bit float grey: taken as given, already in [0, 1]
        notes.append("32-bit float grey taken as values in [0, 1] and copied to R, G and B")
        grey = np.asarray(image, dtype=np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        if image.mode in ("LA", "La"):
            notes.append("grey copied to R, G and B")
        elif image.mode == "PA":
            notes.append("palette colours converted to RGB")
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        notes.append(_alpha_note(rgba[:, :, 3]))
        return rgba[:, :, :3] * rgba[:, :, 3:]  # lay on black: colour times opacity
    if image.mode in ("L", "1"):
        notes.append("black and white copied to R, G and B" if image.mode == "1" else "grey copied to R, G and B")
    elif image.mode != "RGB":
        notes.append(f"{image.mode} colours converted to RGB")
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _alpha_note(alpha):
    """How much of the picture the dropped alpha channel (opacity, 0 to 1) had made see-through."""
    see_through = int((alpha < 1).sum())
    if see_through == 0:
        return "alpha dropped (every pixel was opaque)"
    share = f"{see_through / alpha.size:.0%}" if see_through >= alpha.size / 100 else f"{see_through} of {alpha.size}"
    return f"alpha dropped: {share} of the pixels were (partly) transparent and are laid on black"


def load_image(path, size=32, return_notes=False):
    """One image file (PNG/JPEG/...) as a (3, size, size) float32 array in [0, 1].

    The picture is turned upright (EXIF orientation), converted to RGB (grey, palette, 16-bit,
    transparency laid on black), cut to its centred square and resized to ``size`` x ``size``.
    With ``return_notes=True`` (like NumPy's ``return_counts``) the result is ``(image, notes)``:
    ``notes`` lists in plain words what was done to the file, e.g. ``["resized from 640x480 to
    32x32 (its centre 480x480 square, ...)", "alpha dropped: 12% of the pixels ..."]``, and is
    empty for a file used as it is (an opaque RGB picture of exactly size x size pixels).

    Raises FileNotFoundError for a missing file and ValueError for one PIL cannot read.
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_image: no such file: {path}")
    notes = []
    try:
        image = _load_image(Image, path, size, notes)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise UserError(f"load_image: cannot read {path} as an image ({err})") from None
    except ValueError as err:  # too many pixels
        raise UserError(f"load_image: {err}") from None
    return (image, notes) if return_notes else image
