"""Initial values for parameters, as PyTorch's layers choose them by default.

Why it matters: if the weights start too large, activations grow layer after layer and
the gradients explode; too small, and they shrink to nothing. Scaling by the number of
inputs a unit sums over (its *fan-in*) keeps the size of activations roughly steady.

PyTorch's default for Linear and Conv2d is "kaiming uniform with a = √5":

    gain  = √(2 / (1 + a²)) = √(1/3)
    bound = √3 · gain / √fan_in = 1 / √fan_in       weight ~ U(−bound, bound)

and the bias is drawn from U(−1/√fan_in, 1/√fan_in) too. Embeddings start N(0, 1).

Every draw comes from tinymm's one generator (``backend.get_rng()``, seeded by
``tm.manual_seed``) in float32 on the CPU, and is then copied to the parameter's device
and dtype. So the same seed gives the same weights on CPU and GPU, in the same order as
the layers were built.

The functions ending in ``_`` fill an existing Parameter in place and return it.
"""
import math

import numpy as np

from .. import backend


def empty(shape, dtype=None, device=None):
    """Uninitialised storage for a new parameter on ``device`` (default: the default device)."""
    xp = backend.xp_for(backend.check_device(device))
    return xp.empty(tuple(shape), dtype=dtype or backend.DEFAULT_FLOAT)


def fan_in_and_fan_out(shape):
    """(fan_in, fan_out) of a weight: Linear (out, in) -> (in, out); Conv2d (out, in, kh, kw) ->
    (in·kh·kw, out·kh·kw). Each output unit sums over fan_in inputs."""
    if len(shape) < 2:
        raise ValueError(f"fan_in_and_fan_out: a weight needs at least 2 dimensions, got shape {tuple(shape)}")
    receptive_field = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive_field, shape[0] * receptive_field


def _fill(param, values):
    """Copy float32 CPU values into the parameter's own array (its device, its dtype)."""
    param.data[...] = backend.to_device(values.astype(np.float32), param.device).astype(param.dtype, copy=False)
    return param


def uniform_(param, low, high):
    """Fill with values drawn uniformly from [low, high)."""
    return _fill(param, backend.get_rng().uniform(low, high, param.shape))


def normal_(param, mean=0.0, std=1.0):
    """Fill with values drawn from a normal distribution N(mean, std²)."""
    return _fill(param, backend.get_rng().normal(mean, std, param.shape))


def zeros_(param):
    param.data[...] = 0
    return param


def kaiming_uniform_(param, a=math.sqrt(5)):
    """U(−bound, bound) with bound = √3 · √(2/(1+a²)) / √fan_in; for a = √5 that is 1/√fan_in."""
    fan_in, _ = fan_in_and_fan_out(param.shape)
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = math.sqrt(3.0) * gain / math.sqrt(fan_in)
    return uniform_(param, -bound, bound)


def bias_uniform_(param, fan_in):
    """The default bias of Linear and Conv2d: U(−1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(param, -bound, bound)
