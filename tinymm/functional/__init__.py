"""Every differentiable op in tinymm, as plain functions: ``import tinymm.functional as F``.

Each op is a ``Function`` (forward and backward side by side) in one of the files below;
these names are the way lessons, layers and models call them.
"""
from .basic import (add, sub, mul, div, neg, pow, exp, log, sum, mean, max, reshape, transpose,
                    getitem, concatenate, stack, matmul, unbroadcast)
from .conv import conv2d, max_pool2d, avg_pool2d, global_avg_pool2d, upsample_nearest2d, im2col, col2im
from .linear import linear
from .activation import relu, sigmoid, tanh, softmax, dropout
from .embedding import embedding, masked_mean
from .normalize import l2_normalize
from .loss import (log_softmax, softmax_cross_entropy, mse_loss, binary_cross_entropy_with_logits, clip_loss,
                   clip_targets, clip_loss_floor)
