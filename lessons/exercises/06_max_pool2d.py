"""Exercise: max pooling, forward and backward (lesson 06, section 4).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check max_pool2d

x (N, C, H, W); square windows of K x K pixels at (y·S, x·S), no padding; kernel K and stride S
are ints. H_out = (H − K) // S + 1 (rows and columns that do not fill a window are dropped).

Forward: out[n, c, y, x] = the largest entry of the window at (y·S, x·S). As in lesson 06, take
the elementwise maximum of the K·K strided views x[:, :, i : i + S·(H_out−1) + 1 : S, j : ...],
one per offset (i, j) in the window.

Backward receives g (N, C, H_out, W_out) and returns dx (N, C, H, W). The output is one of the
window's entries, so only that entry (the window's "winner") gets the window's gradient; every
other pixel gets 0. Where windows overlap (K > S), a pixel can win several windows: it gets the
sum of their gradients. Ties: when several entries share the maximum, tinymm gives the whole
gradient to the FIRST of them in row-major order inside the window (what argmax picks).
No Python loop over the batch or the pixels: loop over the K·K offsets only.
"""
import numpy as np


def max_pool2d_forward(x, kernel, stride):
    """x (N, C, H, W) -> out (N, C, H_out, W_out)."""
    # ---- write your code here ----
    raise NotImplementedError("max_pool2d_forward: write it, then run: python -m tinymm check max_pool2d")
    # ---- end of your code ----


def max_pool2d_backward(g, x, kernel, stride):
    """g (N, C, H_out, W_out) -> dx (N, C, H, W)."""
    # ---- write your code here ----
    raise NotImplementedError("max_pool2d_backward: write it, then run: python -m tinymm check max_pool2d")
    # ---- end of your code ----
