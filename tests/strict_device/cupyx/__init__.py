"""cupyx in miniature: the unbuffered scatter operations of CuPy 13.6, on the stand-in's arrays.

``cupyx.scatter_add(a, slices, value)`` adds every ``value`` into ``a[slices]`` even where the
indices repeat (plain ``a[idx] += v`` keeps only one of the repeated writes). As in CuPy,
integer index arrays that are out of range wrap around instead of raising.
"""
import contextlib

import numpy as np

import cupy


def _check(a):
    if not isinstance(a, cupy.ndarray):
        raise TypeError(f"Unsupported type {type(a)}")


def scatter_add(a, slices, value):
    _check(a)
    a.scatter_add(slices, value)


def scatter_max(a, slices, value):
    _check(a)
    a.scatter_max(slices, value)


def scatter_min(a, slices, value):
    _check(a)
    a.scatter_min(slices, value)


def empty_pinned(shape, dtype=float, order="C"):
    """Pinned host memory is plain host memory: a NumPy array."""
    return np.empty(shape, dtype=dtype, order=order)


def zeros_pinned(shape, dtype=float, order="C"):
    return np.zeros(shape, dtype=dtype, order=order)


@contextlib.contextmanager
def errstate(**kwargs):
    with np.errstate(**kwargs):
        yield
