"""Turn captions into fixed-length arrays of integer ids, and back.

A neural network cannot read words, only numbers. The tokenizer gives every word of a vocabulary
an integer id, and writes each caption as a row of ids of the same length so that a batch of
captions is one rectangular array::

    "a small red circle"  ->  [1, 4, 5, 7, 11, 2, 0, 0, 0, 0, 0, 0]
                               <bos> a small red circle <eos> <pad> ...

Four ids are reserved:

- ``<pad>`` = 0 fills the row after the caption; encoders ignore it with a mask,
- ``<bos>`` = 1 ("beginning of sequence") is the first token; a caption decoder starts from it,
- ``<eos>`` = 2 ("end of sequence") marks the end; a decoder learns to emit it to stop,
- ``<unk>`` = 3 stands for any word that is not in the vocabulary.

Words are lower-cased and split on whitespace; there is nothing cleverer here (no sub-words),
because the shapes grammar has only 16 words.
"""

import warnings

import numpy as np

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)


class Tokenizer:
    """A word-level tokenizer with a fixed vocabulary and a fixed row length ``max_len``.

    ``words`` are the ordinary words; they get ids 4, 5, 6, ... in the order given, after the four
    special tokens. Each encoded row is ``<bos> w1 ... wk <eos> <pad> ...`` of length ``max_len``,
    so a caption may have at most ``max_len - 2`` words.
    """

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, words, max_len=12):
        words = list(words)
        for word in words:
            if not isinstance(word, str) or not word or word != word.lower() or len(word.split()) != 1:
                raise ValueError(f"Tokenizer: each word must be one lower-case word without spaces, got {word!r}")
            if word in SPECIAL_TOKENS:
                raise ValueError(f"Tokenizer: {word!r} is a special token and is added automatically")
        if len(set(words)) != len(words):
            repeated = sorted({w for w in words if words.count(w) > 1})
            raise ValueError(f"Tokenizer: words appear more than once: {repeated}")
        if not isinstance(max_len, (int, np.integer)) or max_len < 3:
            raise ValueError(f"Tokenizer: max_len must be an int >= 3 (<bos>, a word, <eos>), got {max_len!r}")
        self.max_len = int(max_len)
        self.id_to_word = list(SPECIAL_TOKENS) + words
        self.word_to_id = {word: i for i, word in enumerate(self.id_to_word)}

    @classmethod
    def from_captions(cls, captions, max_len=None):
        """Build a tokenizer whose vocabulary is every word of ``captions`` (sorted).

        With ``max_len=None`` the rows are just long enough for the longest caption.
        """
        word_lists = _split_captions(captions, "Tokenizer.from_captions")
        if not word_lists:
            raise ValueError("Tokenizer.from_captions: got no captions to build a vocabulary from")
        vocabulary = sorted({word for words in word_lists for word in words})
        if max_len is None:
            max_len = max(len(words) for words in word_lists) + 2
        return cls(vocabulary, max_len=max_len)

    @property
    def vocab_size(self) -> int:
        """How many ids there are, special tokens included (the rows of an embedding table)."""
        return len(self.id_to_word)

    def encode(self, captions) -> np.ndarray:
        """Captions (a list of N strings) -> an (N, max_len) int64 array of ids.

        Unknown words become ``<unk>`` and captions that are too long are cut to ``max_len - 2``
        words; each of these problems is reported in one warning, so a typo is not silently lost.
        """
        word_lists = _split_captions(captions, "Tokenizer.encode")
        ids = np.full((len(word_lists), self.max_len), self.pad_id, dtype=np.int64)
        unknown = set()
        too_long = []
        room = self.max_len - 2
        for row, words in enumerate(word_lists):
            if len(words) > room:
                too_long.append(" ".join(words))
                words = words[:room]
            unknown.update(w for w in words if w not in self.word_to_id)
            ids[row, 0] = self.bos_id
            ids[row, 1 : len(words) + 1] = [self.word_to_id.get(w, self.unk_id) for w in words]
            ids[row, len(words) + 1] = self.eos_id
        if unknown:
            warnings.warn(f"Tokenizer.encode: words not in the vocabulary became <unk>: {_few(sorted(unknown))}",
                          stacklevel=2)
        if too_long:
            warnings.warn(
                f"Tokenizer.encode: {len(too_long)} caption(s) longer than max_len - 2 = {room} words "
                f"were truncated: {_few([repr(c) for c in too_long])}",
                stacklevel=2,
            )
        return ids

    def decode(self, ids) -> list:
        """Ids -> a list of caption strings (one per row).

        Accepts an (N, L) or a single (L,) array or nested list. Reading a row stops at the first
        ``<eos>``; the special tokens themselves are dropped from the text.
        """
        ids = _to_numpy(ids)
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"Tokenizer.decode: expected an (N, L) or (L,) array of int ids, "
                             f"got shape {ids.shape} and dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"Tokenizer.decode: ids must lie in [0, {self.vocab_size}), "
                             f"got values from {ids.min()} to {ids.max()}")
        captions = []
        for row in ids.tolist():
            words = []
            for i in row:
                if i == self.eos_id:
                    break
                if i >= len(SPECIAL_TOKENS):
                    words.append(self.id_to_word[i])
            captions.append(" ".join(words))
        return captions

    def to_dict(self) -> dict:
        """A JSON-safe description; ``Tokenizer.from_dict`` rebuilds the same tokenizer from it."""
        return {"words": self.id_to_word[len(SPECIAL_TOKENS):], "max_len": self.max_len}

    @classmethod
    def from_dict(cls, d):
        """Rebuild a tokenizer saved with ``to_dict``."""
        if not isinstance(d, dict) or "words" not in d or "max_len" not in d:
            raise ValueError(f"Tokenizer.from_dict: expected a dict with keys 'words' and 'max_len', got {d!r:.200}")
        return cls(d["words"], max_len=d["max_len"])

    def __eq__(self, other):
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"Tokenizer(vocab_size={self.vocab_size}, max_len={self.max_len})"


def _split_captions(captions, who: str) -> list:
    """Lower-case and split each caption into words, naming the first bad caption by its index."""
    if isinstance(captions, str):
        raise TypeError(f"{who}: expected a list of captions, got a single str; wrap it in a list: [{captions!r}]")
    word_lists = []
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"{who}: caption {i} is a {type(caption).__name__}, not a str: {caption!r:.80}")
        words = caption.lower().split()
        if not words:
            raise ValueError(f"{who}: caption {i} is empty")
        word_lists.append(words)
    return word_lists


def _to_numpy(ids) -> np.ndarray:
    """Bring ids to a NumPy array: lists, CuPy arrays (``.get()``) and tinymm Tensors (``.numpy()``)."""
    if isinstance(ids, np.ndarray):
        return ids
    if hasattr(ids, "numpy"):
        return np.asarray(ids.numpy())
    if hasattr(ids, "get") and hasattr(ids, "shape"):
        return np.asarray(ids.get())
    return np.asarray(ids)


def _few(items, limit=10) -> str:
    """Show at most ``limit`` items of a list, and how many more there are."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"
