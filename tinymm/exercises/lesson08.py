"""Lesson 08's coded exercise: the embedding lookup, whose backward is a scatter-add that must
count every repeated id. The reference runs tinymm's ``Embedding`` Function.
"""
import numpy as np

from ..functional.embedding import Embedding
from .core import Wrong
from .opcheck import op_exercise

VOCAB, DIM = 7, 3


def _embedding(ids, W):
    fn = Embedding()
    fn.needs_input_grad = (False, True)
    return fn, fn.forward(ids, W)


def embedding_forward(ids, W):
    return _embedding(ids, W)[1]


def embedding_backward(g, ids, W):
    return _embedding(ids, W)[0].backward(g)[1]


def _ids_with_repeats(rng, n):
    # 4 tokens per row from 7 ids: with two rows or more, some id always repeats
    return rng.integers(0, VOCAB, (n, 4)), rng.standard_normal((VOCAB, DIM))


def _diagnose(name, mine, reference, arrays, mine_all=None, ref_all=None):
    ids = arrays[0]
    wrong_rows = np.flatnonzero(~np.isclose(mine, reference, rtol=1e-7, atol=1e-12).all(axis=1))
    counts = np.bincount(ids.ravel(), minlength=VOCAB)
    if wrong_rows.size and (counts[wrong_rows] > 1).all():
        return (f"Only rows of repeated ids are wrong (ids {wrong_rows.tolist()} occur "
                f"{counts[wrong_rows].tolist()} times): with repeated ids, `dW[ids] += g` and `dW[ids] = g` "
                f"keep one write per row. Add every occurrence with a scatter-add, np.add.at.")
    return None


def _fancy_add(g, ids, W):
    dW = np.zeros_like(W)
    dW[ids] += g  # each repeated row is written once: only one of its gradients survives
    return dW


def _fancy_assign(g, ids, W):
    dW = np.zeros_like(W)
    dW[ids] = g
    return dW


def _scaled(g, ids, W):
    return 1.01 * embedding_backward(g, ids, W)


def _zeroed(g, ids, W):
    return np.zeros_like(W)


def _transposed(g, ids, W):
    return embedding_backward(g, ids, W).T


def _forward_off_by_one(ids, W):
    return W[(ids + 1) % len(W)]


def _reuses_W(g, ids, W):
    W[...] = 0  # reuses the table as the gradient's buffer: the caller's weights are gone
    np.add.at(W, ids.reshape(-1), g.reshape(-1, W.shape[1]))
    return W


def _loop(g, ids, W):
    dW = np.zeros_like(W)
    flat_g = g.reshape(-1, W.shape[1])
    for p, v in enumerate(ids.reshape(-1)):
        dW[v] += flat_g[p]
    return dW


EMBEDDING = op_exercise(
    name="embedding", lesson="08", title="embedding lookup W[ids] and its scatter-add backward (repeated ids)",
    stub="08_embedding.py", reread="lesson 08, section 2 (embeddings: one learned vector per word)",
    forward="embedding_forward", backward="embedding_backward",
    inputs=("ids", "W"), grads=("W",), cases={"ids (N, 4) with repeats": _ids_with_repeats},
    reference_forward=embedding_forward, reference_backward=embedding_backward, answer=(Embedding,),
    diagnose=_diagnose,
    wrong=[
        Wrong("fancy-index += drops repeats", {"embedding_backward": _fancy_add},
              ("gradient for W is wrong", "repeated ids", "np.add.at")),
        Wrong("fancy-index = drops repeats", {"embedding_backward": _fancy_assign}, ("repeated ids",)),
        Wrong("backward scaled by 1.01", {"embedding_backward": _scaled}, ("gradient for W is wrong", "ratio 1.01")),
        Wrong("backward zeroed", {"embedding_backward": _zeroed}, ("all zeros",)),
        Wrong("dW transposed", {"embedding_backward": _transposed}, ("looks transposed",)),
        Wrong("forward looks up the next row (off by one)", {"embedding_forward": _forward_off_by_one},
              ("embedding_forward differs from tinymm's",)),
        Wrong("backward reuses W as its buffer", {"embedding_backward": _reuses_W},
              ("embedding_backward changed its input W in place",)),
        Wrong("loop over the positions", {"embedding_backward": _loop}, ("embedding_backward loops over the batch",)),
    ])
