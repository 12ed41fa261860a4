"""Cut a dataset into mini-batches.

Training looks at a few examples at a time (a mini-batch), not the whole dataset: each step is
cheap, and the noise of a small sample helps the optimiser. Shuffling the order every epoch keeps
the batches from being the same every time, which would bias the gradient steps.
"""

import numpy as np


def batches(*arrays, batch_size, shuffle=True, seed=0, drop_last=False):
    """Yield tuples of matching slices, one element of the tuple per array given.

    ``batches(images, tokens, batch_size=64)`` yields ``(images[idx], tokens[idx])`` for
    consecutive chunks ``idx`` of a (shuffled) order of 0 .. N-1, so the i-th image stays with the
    i-th caption. Every index appears exactly once per pass; with ``drop_last=True`` the last,
    smaller batch is skipped (useful when a loss needs full batches).

    NumPy (or CuPy) arrays are indexed as arrays; lists (e.g. captions) come back as lists.
    ``seed`` fixes the shuffled order: pass a different seed each epoch (for instance the epoch
    number) to get a new order that is still reproducible.
    """
    n = _common_length(arrays)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be an int >= 1, got {batch_size!r}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    # The checks above run now, not at the first `next()`: that is why the loop is a separate generator.
    return _generate(arrays, order, int(batch_size), drop_last)


def _generate(arrays, order, batch_size, drop_last):
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if drop_last and len(idx) < batch_size:
            return
        yield tuple(_take(array, idx) for array in arrays)


def _common_length(arrays) -> int:
    """The length every array shares, or a ValueError that lists them all."""
    if not arrays:
        raise ValueError("batches: give at least one array to cut into batches")
    lengths = [len(array) for array in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"batches: all arrays must have the same length (first axis), got lengths {lengths}")
    return lengths[0]


def _take(array, idx):
    """The elements at positions ``idx``: fancy indexing for arrays, a new list for lists."""
    if isinstance(array, (list, tuple)):
        return [array[i] for i in idx]
    return array[idx]
