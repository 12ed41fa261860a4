"""Decoders: from a frozen CLIP embedding back to the other side.

The dual encoder maps an image and its caption to nearby unit vectors. A decoder goes the
other way, from a vector to data:

    CaptionDecoder   image embedding (N, D) -> a caption, one word at a time
    ImageDecoder     image embedding (N, D) -> a (N, 3, 32, 32) picture
    EmbeddingPrior   text embedding (N, D)  -> the image embedding it most likely came with

Text -> image is prior, then image decoder. The prior is needed because of the *modality
gap*: even after CLIP training, an image's embedding and its caption's embedding are close
but not equal (their mean cosine is well below 1), and a decoder trained on image embeddings
has never seen a text embedding. The prior learns to map one cloud onto the other.

Every layer here is an ordinary tinymm layer (Linear, Embedding, Conv2d, Upsample, ReLU,
sigmoid, concatenation), so every gradient comes from the hand-written backward passes in
``tinymm/functional``; the decoders add no op of their own (the image decoder's training loss,
``binary_cross_entropy_with_logits``, lives in ``tinymm/functional/loss.py``).
"""
import numpy as np

import tinymm.functional as F
from .. import backend, nn
from ..autograd import Tensor, no_grad
from ..batches import map_batches
from . import encoders

# Tokens a caption decoder may never emit: they mean "nothing here", "start" and "unknown word".
_FORBIDDEN = ("pad_id", "bos_id", "unk_id")


def _embeddings_input(model, emb, dim, who):
    """A float (N, dim) Tensor on the model's device, or a clear error."""
    if isinstance(emb, Tensor):
        shape, dtype = emb.shape, emb.dtype
    else:
        emb = emb if backend.is_array(emb) else np.asarray(emb)
        shape, dtype = tuple(emb.shape), emb.dtype
    if len(shape) != 2 or shape[1] != dim:
        raise ValueError(f"{who}: expected embeddings of shape (N, {dim}), got {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError(f"{who}: got no embeddings (shape {tuple(shape)}); give at least one")
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{who}: embeddings must be floating point, got dtype {dtype}")
    if isinstance(emb, Tensor):
        return emb
    first = next(iter(model.parameters()))
    return encoders.model_input(model, emb.astype(first.dtype, copy=False))


# ----------------------------------------------------------------------------------------------
# Image -> caption


def context_windows(ids, k, pad_id):
    """For every position t, the last k token ids up to and including t.

    ids (N, T) int -> (N, T, k) with windows[n, t] = ids[n, t-k+1 : t+1], the positions before
    the start filled with ``pad_id``. A loop over the k offsets of the window, not over tokens.
    """
    xp = backend.get_array_module(ids)
    n, t = ids.shape
    padded = xp.concatenate([xp.full((n, k - 1), pad_id, dtype=ids.dtype), ids], axis=1)
    return xp.stack([padded[:, j:j + t] for j in range(k)], axis=-1)


class CaptionDecoder(nn.Module):
    """Image embedding (N, D) -> caption, autoregressive: each word from the words before it.

    The next token after position t is predicted from three things:

        e                       the image embedding: which caption to tell,
        w[t-k+1], ..., w[t]     the last k tokens so far (a fixed window; <pad> before <bos>),
        t                       the position in the caption.

        h1     = relu(W_e e + W_w [emb(w[t-k+1]); ...; emb(w[t]); pos(t)] + b1)
        h2     = relu(W_2 h1 + b2)
        logits = W_3 h2 + b3                           (vocab_size scores for token t+1)

    W_e e + W_w [...] is one Linear layer applied to the concatenation [e; window; position],
    split in two so the image's part is computed once per caption, not once per position.
    The image embedding is the decoder's "prefix": it is added to every position.

    Training uses **teacher forcing**: the window always holds the *true* previous tokens, so
    all positions of all captions are predicted in parallel by one forward pass, and the loss
    is the cross-entropy of every next token (padding ignored). Generation is **free
    running**: the model reads its own previous outputs, one position at a time.

    Why a window and not a recurrent cell: in this grammar the next word depends on the
    image, the position and the last few words ("left" is always followed by "of"), and a
    window lets one forward pass handle every position, where a recurrence must step through
    the 11 positions one after another (and needs a hand-written backward through time).
    """

    def __init__(self, vocab_size, embed_dim=64, max_len=12, context=4, token_dim=32,
                 position_dim=16, hidden=256, pad_id=0, bos_id=1, eos_id=2, unk_id=3):
        super().__init__()
        self.vocab_size, self.embed_dim, self.max_len, self.context = vocab_size, embed_dim, max_len, context
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id
        # no padding_idx: <pad> fills the window before <bos>, and its vector is learned like
        # any other ("nothing written yet"); pad *targets* are what the loss ignores.
        self.token_embedding = nn.Embedding(vocab_size, token_dim)
        self.position_embedding = nn.Embedding(max_len - 1, position_dim)
        self.image_in = nn.Linear(embed_dim, hidden)
        self.context_in = nn.Linear(context * token_dim + position_dim, hidden, bias=False)
        self.hidden = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, image_emb, ids):
        """Teacher-forced logits: image_emb (N, D), ids (N, T) the tokens so far -> (N, T, vocab).

        Row t of the output scores the token that follows ids[:, :t+1].
        """
        e = _embeddings_input(self, image_emb, self.embed_dim, "CaptionDecoder")
        ids = encoders.model_input(self, ids, what="CaptionDecoder", ids_below=self.vocab_size)
        if ids.ndim != 2 or ids.shape[0] != e.shape[0] or not 1 <= ids.shape[1] <= self.max_len - 1:
            raise ValueError(f"CaptionDecoder: expected token ids (N, T) with N = {e.shape[0]} and "
                             f"1 <= T <= {self.max_len - 1}, got {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"CaptionDecoder: token ids must be integers, got dtype {ids.dtype}")
        return self._logits(e, context_windows(ids.data, self.context, self.pad_id), start=0)

    def _logits(self, e, windows, start):
        """Logits for the positions start, start+1, ... whose windows (N, T, k) are given."""
        # Every position of every caption is one row (N·T rows), until the image's part is
        # added per caption.
        xp = backend.get_array_module(windows)
        n, t, k = windows.shape
        positions = xp.tile(xp.arange(start, start + t), n)                   # (N·T,)
        words = self.token_embedding(windows.reshape(n * t, k)).reshape(n * t, -1)  # (N·T, k·token_dim)
        features = F.concatenate([words, self.position_embedding(positions)], axis=-1)
        h = self.context_in(features).reshape(n, t, -1) + self.image_in(e).reshape(n, 1, -1)
        h = F.relu(h).reshape(n * t, -1)
        return self.out(F.relu(self.hidden(h))).reshape(n, t, self.vocab_size)

    def loss(self, image_emb, tokens):
        """Teacher-forcing loss: mean cross-entropy of every next token, padding ignored.

        tokens (N, L) rows ``<bos> w1 ... wk <eos> <pad> ...``: inputs are tokens[:, :-1],
        targets tokens[:, 1:] (each position predicts the token after it).
        """
        tokens = backend.to_numpy(tokens.data) if isinstance(tokens, Tensor) else np.asarray(tokens)
        logits = self(image_emb, tokens[:, :-1])
        return F.softmax_cross_entropy(logits, tokens[:, 1:], ignore_index=self.pad_id)

    def generate_ids(self, image_emb, top_k=None, temperature=1.0, rng=None, max_len=None):
        """Free-running decoding: image_emb (N, D) -> (N, max_len) int64 NumPy ids.

        Starts every row from <bos>, adds one token per step and stops a row at <eos> (the
        rest of the row is <pad>), or at ``max_len``. ``top_k=None``: greedy, the most likely
        token each time. ``top_k=k``: sample among the k most likely tokens, with
        probabilities softmax(logits / temperature) renormalised over those k; ``rng`` a
        NumPy Generator or a seed (default: tinymm's generator, ``tm.manual_seed``).
        <pad>, <bos> and <unk> are never emitted.
        """
        max_len = self.max_len if max_len is None else int(max_len)
        if not 2 <= max_len <= self.max_len:
            raise ValueError(f"CaptionDecoder.generate: max_len must be in [2, {self.max_len}], got {max_len}")
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"CaptionDecoder.generate: top_k must be a positive int or None, got {top_k!r}")
        if not temperature > 0:
            raise ValueError(f"CaptionDecoder.generate: temperature must be > 0, got {temperature!r}")
        if rng is None:
            rng = backend.get_rng()
        elif not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        forbidden = [getattr(self, name) for name in _FORBIDDEN]
        with no_grad():
            e = _embeddings_input(self, image_emb, self.embed_dim, "CaptionDecoder.generate")
            n = e.shape[0]
            xp = backend.get_array_module(e.data)
            ids = np.full((n, max_len), self.pad_id, dtype=np.int64)
            ids[:, 0] = self.bos_id
            done = np.zeros(n, dtype=bool)
            for t in range(max_len - 1):
                window = context_windows(xp.asarray(ids[:, :t + 1]), self.context, self.pad_id)[:, t:]
                logits = backend.to_numpy(self._logits(e, window, start=t).data)[:, 0].astype(np.float64)
                logits[:, forbidden] = -np.inf
                if top_k is None:
                    nxt = logits.argmax(axis=1)
                else:
                    nxt = _sample_top_k(logits / temperature, top_k, rng)
                ids[:, t + 1] = np.where(done, self.pad_id, nxt)
                done |= nxt == self.eos_id
                if done.all():
                    break
        return ids

    def generate_captions(self, image_emb, tokenizer, **kwargs):
        """Image embeddings (N, D) -> N caption strings (see ``generate_ids`` for the options)."""
        if tokenizer.vocab_size != self.vocab_size:
            raise ValueError(f"CaptionDecoder: the tokenizer has {tokenizer.vocab_size} tokens but the "
                             f"decoder was built for {self.vocab_size}")
        return tokenizer.decode(self.generate_ids(image_emb, **kwargs))


def _sample_top_k(logits, k, rng):
    """One draw per row among the k largest logits, with softmax probabilities over those k."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]                  # (N, k) token ids
    scores = np.take_along_axis(logits, top, axis=1)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.uniform(size=(len(p), 1))
    choice = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), k - 1)       # inverse-CDF draw
    return top[np.arange(len(top)), choice]


# ----------------------------------------------------------------------------------------------
# Text embedding -> image embedding


class EmbeddingPrior(nn.Module):
    """Text embedding (N, D) -> predicted image embedding (N, D), unit length.

        out = normalise(t + MLP(t))

    The residual form starts near the identity (a prior that does nothing), so training only
    has to learn the *difference* between the two clouds: the modality gap. Trained with the
    squared distance to the true image embedding, ||out − i||² = 2 − 2·cos(out, i) for unit
    vectors, i.e. it maximises the cosine.
    """

    def __init__(self, embed_dim=64, hidden=256):
        super().__init__()
        self.embed_dim = embed_dim
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, embed_dim))

    def forward(self, text_emb):
        t = _embeddings_input(self, text_emb, self.embed_dim, "EmbeddingPrior")
        return F.l2_normalize(t + self.mlp(t), axis=-1)


# ----------------------------------------------------------------------------------------------
# Image embedding -> image


class ImageDecoder(nn.Module):
    """Image embedding (N, D) -> images (N, 3, 32, 32) in [0, 1].

        e -> Linear -> ReLU -> Linear -> ReLU -> a (c0, 8, 8) feature map
          -> 3×3 conv to c1 channels, ReLU                           8×8
          -> nearest upsample ×2, 3×3 conv to c2 channels, ReLU      16×16
          -> nearest upsample ×2, 3×3 conv to c3 channels, ReLU      32×32
          -> 3×3 conv to 3 channels, sigmoid                         32×32, values in (0, 1)

    **The first map.** The two Linear layers decide what goes where; the convolutions after
    them only refine what is already placed (a 3×3 filter sees a small neighbourhood and
    cannot move a shape far). Two things make that first map better:

    - ``embed_hidden`` (256): a hidden layer between e and the map. Both objects of a
      two-object caption are mixed into all D numbers of e, and what to draw at one place
      needs two facts at once ("the small object is red" and "the small object is a cross"),
      neither of which is one number of e. With one Linear layer, each number of the map must
      pull the facts out of the mix and combine them in one weighted sum and one ReLU; a
      layer of ReLUs in between gives it a step to pull them out first.
    - ``start_size`` (8): the map is 8×8, not 4×4. A small object is about 7 pixels across,
      less than one cell of a 4×4 map over a 32×32 picture, so at 4×4 its shape must be
      invented by the convolutions from one cell; at 8×8 the Linear layer can already sketch it.

    ``embed_hidden=0, start_size=4`` is the decoder runs saved before these two existed:
    e -> Linear -> ReLU -> a (c0, 4, 4) map, then an upsample ×2 before the 8×8 conv.

    With three widths, channels=(c0, c1, c2), there is no hidden layer at 32×32: the 16×16 map
    is upsampled and one 3×3 conv draws the 3 channels. Then nothing non-linear happens at
    32×32, and each pixel is a plain weighted mix of a few 16×16 cells, too coarse for the
    2-pixel arms of a small cross; the hidden layer (conv, ReLU, conv) lets each pixel of the
    32×32 picture be drawn from its own neighbourhood.

    Nearest upsampling followed by a convolution, rather than a transposed convolution:
    a stride-2 transposed convolution with a 3×3 kernel covers some output pixels with one
    kernel tap, others with two or four, which prints a checkerboard into every image until
    training cancels it (lesson 16 draws it). Upsample + conv treats all pixels alike.

    The decoder holds its ``prior`` (an ``EmbeddingPrior``) too, so that one object turns a
    caption's text embedding into a picture: ``generate_images(text_emb)``. The prior and the
    pixel decoder are trained separately (``pixel_parameters()`` are the decoder's own).
    """

    def __init__(self, embed_dim=64, channels=(64, 64, 32, 16), prior_hidden=256, image_size=32,
                 embed_hidden=256, start_size=8):
        super().__init__()
        if len(channels) not in (3, 4):
            raise ValueError(f"ImageDecoder: channels must give 3 widths (the first map, the 8×8 and 16×16 maps) "
                             f"or 4 (and a hidden 32×32 layer), got {channels!r}")
        if image_size != 32:
            raise ValueError(f"ImageDecoder: the decoder draws 32×32 images, got image_size {image_size}")
        if not (isinstance(embed_hidden, (int, np.integer)) and embed_hidden >= 0):
            raise ValueError(f"ImageDecoder: embed_hidden must be a whole number >= 0 (0: no hidden layer), "
                             f"got {embed_hidden!r}")
        if start_size not in (4, 8):
            raise ValueError(f"ImageDecoder: start_size (the first map's side) must be 4 or 8, got {start_size!r}")
        c0, c1, c2 = channels[:3]
        self.embed_dim, self.channels = embed_dim, tuple(channels)
        self.embed_hidden, self.start_size = int(embed_hidden), int(start_size)
        if embed_hidden:
            self.fc_hidden = nn.Linear(embed_dim, embed_hidden)
        self.fc = nn.Linear(embed_hidden or embed_dim, c0 * start_size * start_size)
        last = [nn.Conv2d(c2, 3, 3, padding=1)] if len(channels) == 3 else \
            [nn.Conv2d(c2, channels[3], 3, padding=1), nn.ReLU(), nn.Conv2d(channels[3], 3, 3, padding=1)]
        self.blocks = nn.Sequential(
            *([nn.Upsample(2)] if start_size == 4 else []), nn.Conv2d(c0, c1, 3, padding=1), nn.ReLU(),
            nn.Upsample(2), nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
            nn.Upsample(2), *last,
        )
        # Start from a dark picture (sigmoid(−3) ≈ 0.05), like the scenes' backgrounds: from a
        # mid-grey start the first steps only learn to darken everything.
        self.blocks[-1].bias.data[...] = -3.0
        self.prior = EmbeddingPrior(embed_dim, prior_hidden)

    def logits(self, image_emb):
        """(N, D) image embeddings -> (N, 3, 32, 32) Tensor of logits: the pixels before the sigmoid.

        Training reads these: ``F.binary_cross_entropy_with_logits`` takes them directly.
        """
        e = _embeddings_input(self, image_emb, self.embed_dim, "ImageDecoder")
        h = F.relu(self.fc_hidden(e)) if self.embed_hidden else e
        x = F.relu(self.fc(h)).reshape(e.shape[0], self.channels[0], self.start_size, self.start_size)
        return self.blocks(x)

    def forward(self, image_emb):
        """(N, D) image embeddings -> (N, 3, 32, 32) Tensor of pixel values in (0, 1)."""
        return F.sigmoid(self.logits(image_emb))

    def pixel_parameters(self):
        """The decoder's own parameters (everything but the prior's)."""
        return [p for name, p in self.named_parameters() if not name.startswith("prior.")]

    def decode(self, image_emb, batch_size=500):
        """(N, D) image embeddings -> (N, 3, 32, 32) float32 NumPy images, no graph."""
        e = _embeddings_input(self, image_emb, self.embed_dim, "ImageDecoder.decode")
        return map_batches(self, e, batch_size)

    def generate_images(self, text_emb, use_prior=True, batch_size=500):
        """Caption embeddings (N, D) -> (N, 3, 32, 32) float32 NumPy images in [0, 1].

        With ``use_prior=False`` the text embedding goes straight into the decoder, which was
        trained on image embeddings only (lesson 16 shows what the modality gap does then).
        """
        t = _embeddings_input(self, text_emb, self.embed_dim, "ImageDecoder.generate_images")
        if use_prior:
            with no_grad():
                t = self.prior(t)
        return self.decode(t, batch_size=batch_size)
