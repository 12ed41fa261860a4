"""Exercise: softmax cross-entropy, forward and backward (lesson 05, sections 2-5).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check softmax_cross_entropy

logits (N, C). targets are either class ids, an integer array (N,), or soft targets, a float
array (N, C) whose rows are probabilities (non-negative, summing to 1). Check which with
`targets.dtype.kind == "f"`.

Forward: the mean over the N rows of  ℓ = −Σ_c t_c log p_c,  p = softmax(logits) per row,
t the target distribution (one-hot for a class id). Returns a 0-d array (a scalar).
Compute log p as z − log Σ e^z with each row's maximum subtracted from z first (log-sum-exp),
so logits of ±1e4 do not overflow.

Backward receives g, the upstream gradient of that scalar (a 0-d array), and returns
d logits, shape (N, C). Start from lesson 05's result for one row, dℓ/dz = p − t, then
account for the mean over the batch and for g. No Python loop over the rows.
"""
import numpy as np


def softmax_cross_entropy_forward(logits, targets):
    """logits (N, C); targets int (N,) or float (N, C) -> the mean loss, a 0-d array."""
    # ---- write your code here ----
    raise NotImplementedError("softmax_cross_entropy_forward: write it, then run: "
                              "python -m tinymm check softmax_cross_entropy")
    # ---- end of your code ----


def softmax_cross_entropy_backward(g, logits, targets):
    """g a 0-d array -> d logits (N, C)."""
    # ---- write your code here ----
    raise NotImplementedError("softmax_cross_entropy_backward: write it, then run: "
                              "python -m tinymm check softmax_cross_entropy")
    # ---- end of your code ----
