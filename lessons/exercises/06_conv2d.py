"""Exercises: im2col and col2im, then conv2d forward and backward (lesson 06, sections 2 and 3).

Two exercises share this file. Write them in this order, on plain NumPy arrays:

    python -m tinymm check im2col      # im2col and col2im
    python -m tinymm check conv2d      # conv2d_forward and conv2d_backward (they use your im2col and col2im)

Shapes: an image batch x (N, C, H, W); a kernel KH x KW; stride S and padding P are ints.
Zero padding of P pixels on every side, then windows at (y·S, x·S):
    H_out = (H + 2P − KH) // S + 1,   W_out = (W + 2P − KW) // S + 1.

im2col(x, kh, kw, stride, padding) -> cols (C·KH·KW, N·H_out·W_out). Every patch the kernel sees
becomes one column. Use tinymm's layout (the checker compares with it):
    row    c·KH·KW + i·KW + j    = channel c at kernel offset (i, j)
    column n·H_out·W_out + y·W_out + x = output position (y, x) of image n
so cols[c·KH·KW + i·KW + j, n·H_out·W_out + y·W_out + x] = x_padded[n, c, y·S + i, x·S + j].
Loop over the KH·KW offsets only: for one offset (i, j), the pixels it sees at every output
position are ONE strided slice, x_padded[:, :, i : i + S·(H_out−1) + 1 : S, j : ...].

col2im(cols, x_shape, kh, kw, stride, padding) -> (N, C, H, W): the adjoint of im2col. Every
entry of cols is added back to the pixel it was copied from. Where patches overlap, a pixel was
copied into several columns, so it gets the SUM of their entries. Add into a zero padded image
(+=), then cut the padding off.

conv2d_forward(x, W, b, stride, padding) -> out (N, C_out, H_out, W_out), with W (C_out, C, KH, KW)
and b (C_out,):   out_mat = W.reshape(C_out, C·KH·KW) @ cols + b per row,   (C_out, N·H_out·W_out),
then reshape and reorder the axes to (N, C_out, H_out, W_out).

conv2d_backward(g, x, W, b, stride, padding) -> (dx, dW, db). g = dL/d(out) (N, C_out, H_out, W_out).
tinymm's forward saves cols = im2col(x, ...); recompute them here with your im2col.
g_mat is g laid out like out_mat, (C_out, N·H_out·W_out): the forward's last step in reverse. The
forward reshaped out_mat to (C_out, N, H_out, W_out), then moved C_out behind N; so move C_out back
in front of N first, then flatten:  g_mat = g.transpose(1, 0, 2, 3).reshape(C_out, N·H_out·W_out).
(Reshaping g straight to (C_out, ...) without the transpose keeps every number but puts them in
the wrong places.) Then  dW_mat = g_mat colsᵀ,  dcols = W_matᵀ g_mat,  db = g summed over N, y, x,
and dx = col2im(dcols, ...). No Python loop over the batch or the pixels anywhere.
"""
import numpy as np


def im2col(x, kh, kw, stride, padding):
    """x (N, C, H, W) -> cols (C·KH·KW, N·H_out·W_out)."""
    # ---- write your code here ----
    raise NotImplementedError("im2col: write it, then run: python -m tinymm check im2col")
    # ---- end of your code ----


def col2im(cols, x_shape, kh, kw, stride, padding):
    """cols (C·KH·KW, N·H_out·W_out), x_shape = (N, C, H, W) -> an array of shape x_shape."""
    # ---- write your code here ----
    raise NotImplementedError("col2im: write it, then run: python -m tinymm check im2col")
    # ---- end of your code ----


def conv2d_forward(x, W, b, stride, padding):
    """x (N, C, H, W), W (C_out, C, KH, KW), b (C_out,) -> (N, C_out, H_out, W_out)."""
    # ---- write your code here ----
    raise NotImplementedError("conv2d_forward: write it, then run: python -m tinymm check conv2d")
    # ---- end of your code ----


def conv2d_backward(g, x, W, b, stride, padding):
    """g (N, C_out, H_out, W_out) -> (dx, dW, db) with the shapes of x, W and b."""
    # ---- write your code here ----
    raise NotImplementedError("conv2d_backward: write it, then run: python -m tinymm check conv2d")
    # ---- end of your code ----
