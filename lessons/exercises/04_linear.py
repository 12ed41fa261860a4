"""Exercise: the linear layer, forward and backward (lesson 04, sections 1-3).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check linear

Shapes: x (N, in), W (out, in), b (out,)  ->  out (N, out).      Forward:  out = x Wᵀ + b
Backward receives g = dL/d(out), shape (N, out), and returns (dx, dW, db), each with the
shape of its input. Start from one element: out[i, j] = Σ_k x[i, k] W[j, k] + b[j], and ask
which outputs each x[i, k], W[j, k] and b[j] touches. b is added to every row (broadcasting),
so its gradient adds up over the rows. No Python loop over the batch: matrix products and sums.
"""
import numpy as np


def linear_forward(x, W, b):
    """out = x Wᵀ + b.   x (N, in), W (out, in), b (out,) -> (N, out)."""
    # ---- write your code here ----
    raise NotImplementedError("linear_forward: write it, then run: python -m tinymm check linear")
    # ---- end of your code ----


def linear_backward(g, x, W, b):
    """g (N, out) -> (dx, dW, db) with the shapes of x, W and b."""
    # ---- write your code here ----
    raise NotImplementedError("linear_backward: write it, then run: python -m tinymm check linear")
    # ---- end of your code ----
