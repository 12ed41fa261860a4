"""Exercise: L2 normalisation, forward and backward (lesson 09, sections 2 and 4).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check l2_normalize

x (N, D): N vectors, one per row. eps: a small positive number (1e-12 in tinymm; the checker
passes it as a 0-d array or a float). Forward: y = x / max(‖x‖, eps) row by row (‖x‖ the
Euclidean length of the row), so every row has length 1, and a zero row stays zero.
Backward receives g (N, D) and returns dx (N, D). Start from y_i = x_i / r with r = ‖x‖ and
∂r/∂x_k = y_k; the quotient rule gives the Jacobian (I − y yᵀ) / r. Where ‖x‖ ≤ eps the
function is just x / eps. The checker also tries rows of length 1e-3 and a zero row.
No Python loop over the rows: sums along axis 1 with keepdims=True.
"""
import numpy as np


def l2_normalize_forward(x, eps):
    """x (N, D) -> y (N, D), each row divided by max(its length, eps)."""
    # ---- write your code here ----
    raise NotImplementedError("l2_normalize_forward: write it, then run: python -m tinymm check l2_normalize")
    # ---- end of your code ----


def l2_normalize_backward(g, x, eps):
    """g (N, D) -> dx (N, D)."""
    # ---- write your code here ----
    raise NotImplementedError("l2_normalize_backward: write it, then run: python -m tinymm check l2_normalize")
    # ---- end of your code ----
