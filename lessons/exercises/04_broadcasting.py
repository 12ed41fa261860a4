"""Exercise: the backward of broadcasting, for add and mul (lesson 04, section 3).

Write the three functions on plain NumPy arrays, then run

    python -m tinymm check broadcasting

NumPy broadcasts: a + b with a (4, 3) and b (3,) acts as if b were copied into every row.
Each copy feeds the loss, so the gradient of the one real b is the *sum* over its copies.

1. `unbroadcast(grad, shape)`: sum `grad` down to `shape`. First sum over the leading axes
   broadcasting added (grad has more axes than shape), then over every axis where `shape`
   has size 1 but grad does not, keeping that axis (keepdims=True). Examples:
   (4, 3) -> (3,) is a sum over axis 0;  (4, 3) -> (4, 1) is a sum over axis 1, kept;
   (2, 4, 3) -> (4, 1) sums axis 0, then axis 2 (kept). Return a new array, same dtype.
2. `add_backward(g, a, b)` for out = a + b: the local derivative is 1 for both.
3. `mul_backward(g, a, b)` for out = a * b: d out / d a = b, d out / d b = a.
Both receive g with the broadcast output's shape and return (da, db) with the shapes of a
and b: finish each with your unbroadcast. No Python loop over the batch.
"""
import numpy as np


def unbroadcast(grad, shape):
    """Sum grad down to shape (the backward of broadcasting)."""
    # ---- write your code here ----
    raise NotImplementedError("unbroadcast: write it, then run: python -m tinymm check broadcasting")
    # ---- end of your code ----


def add_backward(g, a, b):
    """out = a + b (broadcasting). g has out's shape -> (da, db) with the shapes of a and b."""
    # ---- write your code here ----
    raise NotImplementedError("add_backward: write it, then run: python -m tinymm check broadcasting")
    # ---- end of your code ----


def mul_backward(g, a, b):
    """out = a * b (broadcasting). g has out's shape -> (da, db) with the shapes of a and b."""
    # ---- write your code here ----
    raise NotImplementedError("mul_backward: write it, then run: python -m tinymm check broadcasting")
    # ---- end of your code ----
