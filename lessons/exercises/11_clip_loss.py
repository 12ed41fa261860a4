"""Exercise: the CLIP loss and its gradient by hand (lesson 11, sections 1, 2, 4 and 6).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check clip_loss

I (N, D) and T (N, D) are already L2-normalised image and caption embeddings; pair i is
(I_i, T_i). s is the log of the logit scale, a 0-d array. Y (N, N) holds the targets: the
identity when every caption is different, soft targets when a caption repeats (row i spreads 1
evenly over every caption equal to caption i). Y is symmetric, so the column targets are Y too.

Forward:  Z = e^s · I Tᵀ (N, N).  P_rows = softmax of Z along each row, P_cols = softmax along
each column.  loss = ½ (CE_rows + CE_cols), with CE_rows = −(1/N) Σ_ij Y_ij log P_rows_ij and
CE_cols = −(1/N) Σ_ij Y_ij log P_cols_ij.  Returns a 0-d array. Subtract the maximum of a row
(or column) before exponentiating, as lesson 05 did.

Backward receives g = dL/d(loss), a 0-d array, and returns (dI, dT, ds) with the shapes of
I, T and s. Start from lesson 11's  G = dloss/dZ = (P_rows + P_cols − 2Y) / 2N,  then go back
through Z = e^s · I Tᵀ: a matrix product (lesson 04) and e^s (whose derivative is e^s).
Remember g. No Python loop over the batch: matrix products and sums along an axis.
"""
import numpy as np


def clip_loss_forward(I, T, s, Y):
    """I (N, D), T (N, D), s a 0-d array, Y (N, N) -> the loss, a 0-d array."""
    # ---- write your code here ----
    raise NotImplementedError("clip_loss_forward: write it, then run: python -m tinymm check clip_loss")
    # ---- end of your code ----


def clip_loss_backward(g, I, T, s, Y):
    """g a 0-d array -> (dI, dT, ds) with the shapes of I (N, D), T (N, D) and s ()."""
    # ---- write your code here ----
    raise NotImplementedError("clip_loss_backward: write it, then run: python -m tinymm check clip_loss")
    # ---- end of your code ----
