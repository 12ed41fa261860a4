"""Exercise: ReLU, forward and backward (lesson 04, section 4).

Write both functions on plain NumPy arrays, then run

    python -m tinymm check relu

Forward: out = max(0, x), elementwise, any shape. Backward receives g = dL/d(out) (x's shape)
and returns dx. The slope of max(0, x) is 1 where x > 0 and 0 elsewhere (take 0 at x = 0).
Leave x and g unchanged: build a new array rather than editing them in place.
No Python loop: a comparison gives a mask for the whole array at once.
"""
import numpy as np


def relu_forward(x):
    """out = max(0, x), same shape as x."""
    # ---- write your code here ----
    raise NotImplementedError("relu_forward: write it, then run: python -m tinymm check relu")
    # ---- end of your code ----


def relu_backward(g, x):
    """g has x's shape -> dx, same shape."""
    # ---- write your code here ----
    raise NotImplementedError("relu_backward: write it, then run: python -m tinymm check relu")
    # ---- end of your code ----
