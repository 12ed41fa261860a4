"""One loop for "embed (or decode) a big array a slice at a time, without a graph".

Encoding 4,560 captions or a gallery of 1,000 images in one call would hold every layer's
activations for all of them at once; a slice at a time keeps memory small, and ``no_grad``
keeps the graph from being built at all (nothing here is ever trained). The results come
back as one NumPy array, whatever device the model is on.
"""
import numpy as np

from . import backend
from .autograd import Tensor, no_grad


def map_batches(fn, items, batch_size, check=None):
    """``fn`` applied to ``items[i:i + batch_size]`` for each slice, under ``no_grad``; the
    results (Tensors or arrays) joined along the first axis into one NumPy array.

    ``check(result, chunk)``, when given, sees every slice's NumPy result first (e.g. to reject
    an encoder that returns the wrong shape) and returns what to keep.
    """
    parts = []
    with no_grad():
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            out = fn(chunk)
            if isinstance(out, Tensor):
                out = out.data
            out = backend.to_numpy(out) if backend.is_array(out) else np.asarray(out)
            parts.append(out if check is None else check(out, chunk))
    return np.concatenate(parts)
