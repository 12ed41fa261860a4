"""Exercise: the embedding lookup and its backward with repeated ids (lesson 08, section 2).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check embedding

ids: an integer array (N, L), token ids in [0, V). W: the table (V, D), row v = the vector of
token v. Forward: out = W[ids], shape (N, L, D).
Backward receives g = dL/d(out), shape (N, L, D), and returns dW, shape (V, D). Position p
copied row ids[p], so row v of dW is the SUM of g over every position whose id is v; a row no
id uses gets 0. Ids repeat (a caption says "a" twice), and NumPy's fancy indexing keeps only
one write per repeated index, so `dW[ids] += g` silently drops gradient: look for a
scatter-add in NumPy. The ids get no gradient. No Python loop over the batch or the tokens.
"""
import numpy as np


def embedding_forward(ids, W):
    """ids int (N, L), W (V, D) -> (N, L, D)."""
    # ---- write your code here ----
    raise NotImplementedError("embedding_forward: write it, then run: python -m tinymm check embedding")
    # ---- end of your code ----


def embedding_backward(g, ids, W):
    """g (N, L, D) -> dW (V, D)."""
    # ---- write your code here ----
    raise NotImplementedError("embedding_backward: write it, then run: python -m tinymm check embedding")
    # ---- end of your code ----
