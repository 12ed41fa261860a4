"""Load your own images and captions, so a model can be trained on something other than shapes.

The folder holds the images and a ``captions.tsv`` file with one image per line::

    # file name <TAB> caption      (blank lines and lines starting with # are ignored)
    cat.png	a cat sleeping on a sofa
    photos/dog.jpg	a brown dog in the snow

Each image is converted to RGB, cut to a centred square and shrunk to ``size`` x ``size`` pixels,
so the result has the same attributes as ``ShapesCaptions``: ``images``, ``captions``, ``tokens``,
``tokenizer``. Lines that cannot be used (no tab, a missing or unreadable image) are skipped and
named together in one warning, so one bad file does not stop the whole load.
"""

import os
import warnings

import numpy as np

from .tokenizer import Tokenizer

CAPTIONS_FILE = "captions.tsv"


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

    entries, problems = _read_captions_file(captions_path)
    images, captions, file_names = [], [], []
    for file_name, caption in entries:
        try:
            images.append(_load_image(Image, os.path.join(path, file_name), size))
        except (OSError, ValueError) as error:  # missing, unreadable or not an image
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


def _read_captions_file(captions_path):
    """(file name, caption) pairs of the usable lines, and a description of each malformed one."""
    entries, problems = [], []
    with open(captions_path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            file_name, tab, caption = line.partition("\t")
            file_name, caption = file_name.strip(), caption.strip()
            if not tab or not file_name or not caption:
                problems.append(f"line {number} {line[:60]!r} (expected 'file_name<TAB>caption')")
                continue
            entries.append((file_name, caption))
    return entries, problems


def _load_image(Image, file_path, size):
    """One image as a (3, size, size) float32 array in [0, 1].

    Cutting the centred square first keeps shapes from being squashed; resizing with a bilinear
    filter averages the pixels it shrinks, which avoids jagged, aliased thumbnails.
    """
    with Image.open(file_path) as image:
        image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0


def load_image(path, size=32):
    """One image file (PNG/JPEG) as a (3, size, size) float32 array in [0, 1].

    Raises FileNotFoundError for a missing file and ValueError for one PIL cannot read.
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_image: no such file: {path}")
    try:
        return _load_image(Image, path, size)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"load_image: cannot read {path} as an image ({err})") from None

