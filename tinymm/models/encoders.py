"""The two towers of the dual encoder: images -> vectors and captions -> vectors.

Both end in a plain Linear projection (no ReLU right before the L2 norm: a ReLU would
keep every embedding in the positive orthant, where no two vectors can point apart).
"""
import numpy as np

import tinymm.functional as F
from .. import backend, nn
from ..autograd import Tensor


def model_input(model, data, dtype=None, what="input", ids_below=None):
    """Turn raw data (a NumPy/CuPy array or list) into a Tensor on the model's device.

    Datasets hand out NumPy arrays; moving them to where the weights live is the one
    conversion a model does for its caller. A Tensor is passed through unchanged, so a
    tensor on the wrong device still fails loudly in the first op.
    ``ids_below``: host token ids are checked to lie in [0, ids_below) here, on the host,
    before the copy, so the embedding on the GPU needs no read-back (see ``F.check_ids``).
    """
    if isinstance(data, Tensor):
        return data
    from .. import tensor
    if ids_below is not None and (isinstance(data, (list, tuple, np.ndarray))):
        from ..functional.embedding import check_ids
        check_ids(data, ids_below, what)
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else backend.get_default_device()
    return tensor(np.asarray(data) if isinstance(data, list) else data, dtype=dtype, device=device)


def image_input(model, images, who):
    """(N, 3, S, S) float32 images as a Tensor on ``model``'s device, S = ``model.image_size``."""
    images = model_input(model, images, dtype=np.float32)
    expected = (3, model.image_size, model.image_size)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(f"{who}: expected images of shape (N, {', '.join(map(str, expected))}), got {images.shape}")
    return images


class ImageEncoder(nn.Module):
    """(N, 3, 32, 32) images -> (N, embed_dim) features.

    Two blocks of [3x3 conv, ReLU, 2x2 max-pool] (32 -> 16 -> 8 pixels), then two fully
    connected layers. Small enough to train on a laptop CPU in minutes.
    """

    def __init__(self, embed_dim=64, channels=(16, 32), hidden=128, image_size=32):
        super().__init__()
        c1, c2 = channels
        self.image_size = image_size
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            nn.Linear(c2 * (image_size // 4) ** 2, hidden), nn.ReLU(),
            nn.Linear(hidden, embed_dim),
        )

    def forward(self, images):
        images = image_input(self, images, "ImageEncoder")
        return self.head(self.features(images))


class SplitImageEncoder(nn.Module):
    """(N, 3, 32, 32) images -> (N, embed_dim) features, with shape and colour read apart.

    The plain ``ImageEncoder`` sees shape and colour through the same filters. If red squares
    never occur in training, nothing stops it from learning "square" as "a square in one of the
    colours squares come in", and a red square is then called a circle. This encoder makes that
    shortcut harder by building it out:

    - the **shape path** sees only each pixel's brightest channel (max over R, G, B): a grey
      picture, the same for a red square as for a green one. It is the plain encoder's two
      blocks of [3x3 conv, ReLU, 2x2 max-pool], so it can tell shapes but not colours;
    - the **colour path** first averages each 2x2 block of pixels (colour needs no fine
      detail, and a 16x16 picture costs a quarter of a 32x32 one), then looks at each block
      alone (two 1x1 convolutions with ReLU: a small per-pixel network) and keeps the strongest
      response in every 2x2 patch of blocks: it knows which colour is where, not the shape;
    - both give an 8x8 map; the fully connected head reads the two maps side by side, so it can
      still tie a colour to the shape at the same place (two-object scenes need that).

    Same arguments as ``ImageEncoder`` plus ``colour_channels`` for the colour path.
    """

    def __init__(self, embed_dim=64, channels=(16, 32), hidden=128, image_size=32, colour_channels=16):
        super().__init__()
        c1, c2 = channels
        self.image_size = image_size
        self.shape_path = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.colour_path = nn.Sequential(
            nn.AvgPool2d(2),
            nn.Conv2d(3, colour_channels, 1), nn.ReLU(),
            nn.Conv2d(colour_channels, colour_channels, 1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear((c2 + colour_channels) * (image_size // 4) ** 2, hidden), nn.ReLU(),
            nn.Linear(hidden, embed_dim),
        )

    def forward(self, images):
        images = image_input(self, images, "SplitImageEncoder")
        # the brightest channel of each pixel, as an op: a gradient asked of the pixels (lesson 16
        # draws through a frozen CLIP) reaches the channel that was brightest
        grey = images.max(axis=1, keepdims=True)
        maps = F.concatenate([self.shape_path(grey), self.colour_path(images)], axis=1)
        return self.head(maps)


class TextEncoder(nn.Module):
    """(N, L) token ids -> (N, embed_dim) features, aware of word order.

    A plain mean of word vectors is a bag of words: "red circle left of blue square" and
    "blue circle left of red square" contain the same words and would get the same vector.
    So each token's vector gets its position's vector added, goes through a small
    per-token layer (Linear + ReLU: the non-linearity is what ties a word to its place),
    and only then are the tokens averaged (padding excluded).
    """

    def __init__(self, vocab_size, max_len=12, embed_dim=64, width=128, pad_id=0):
        super().__init__()
        self.max_len, self.pad_id = max_len, pad_id
        self.token_embedding = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.position_embedding = nn.Embedding(max_len, width)
        self.token_layer = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, embed_dim))

    def forward(self, tokens):
        tokens = model_input(self, tokens, what="TextEncoder", ids_below=self.token_embedding.num_embeddings)
        _check_tokens("TextEncoder", tokens, self.max_len)
        xp = backend.get_array_module(tokens.data)
        positions = xp.arange(tokens.shape[1])
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        x = self.token_layer(x)
        pooled = F.masked_mean(x, tokens.data != self.pad_id, axis=1)
        return self.head(pooled)


class BagOfWordsTextEncoder(nn.Module):
    """The naive baseline: mean of word embeddings, then one Linear. Blind to word order."""

    def __init__(self, vocab_size, max_len=12, embed_dim=64, width=128, pad_id=0):
        super().__init__()
        self.max_len, self.pad_id = max_len, pad_id
        self.token_embedding = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.head = nn.Linear(width, embed_dim)

    def forward(self, tokens):
        tokens = model_input(self, tokens, what="BagOfWordsTextEncoder",
                             ids_below=self.token_embedding.num_embeddings)
        _check_tokens("BagOfWordsTextEncoder", tokens, self.max_len)
        pooled = F.masked_mean(self.token_embedding(tokens), tokens.data != self.pad_id, axis=1)
        return self.head(pooled)


def _check_tokens(who, tokens, max_len):
    if tokens.ndim != 2 or tokens.shape[1] > max_len:
        raise ValueError(f"{who}: expected token ids of shape (N, L) with L <= {max_len}, got {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(f"{who}: token ids must be integers, got dtype {tokens.dtype}")
