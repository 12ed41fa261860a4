"""Every differentiable op in tinymm, as plain functions: ``import tinymm.functional as F``.

Each op is a ``Function`` (forward and backward side by side) in one of the files below;
these names are the way lessons, layers and models call them.
"""
from .basic import (add, sub, mul, div, neg, pow, exp, log, sum, mean, max, reshape, transpose,
                    getitem, concatenate, stack, matmul, unbroadcast)
