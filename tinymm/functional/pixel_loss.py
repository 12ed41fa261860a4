"""A loss for pictures whose pixels lie in [0, 1]: binary cross-entropy on the logits.

An image decoder ends in a sigmoid, p = σ(x), so every pixel is in (0, 1). The mean squared
error (p − t)² then has the gradient 2 (p − t) · σ'(x), and σ'(x) = p (1 − p) is nearly 0
where the sigmoid is flat: a pixel that is dark (p ≈ 0.05) but should be lit barely moves.
Binary cross-entropy, read as "t is the probability that the pixel is on",

    loss = −[t log p + (1 − t) log(1 − p)],     p = σ(x),

has the gradient p − t with respect to the logit x: the flat part of the sigmoid cancels out,
and a wrong pixel gets a full-sized push however saturated it is (lesson 16).
"""
from .. import backend
from ..autograd import Function
from .loss import REDUCTIONS


class BinaryCrossEntropyWithLogits(Function):
    """out = mean (or sum, or none) of  max(x, 0) − x t + log(1 + e^(−|x|)),  elementwise.

    That is −[t log σ(x) + (1 − t) log(1 − σ(x))] written so that nothing overflows:
    e^(−|x|) ≤ 1 for every x. x: logits, t: targets in [0, 1], the same shape.

        d x = (σ(x) − t) · w,      d t = −x · w,
    where w = g/n for "mean" over n elements, g for "sum", and g elementwise for "none".
    """

    def forward(self, x, t, reduction="mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"binary_cross_entropy_with_logits: reduction must be one of {REDUCTIONS}, "
                             f"got {reduction!r}")
        if tuple(x.shape) != tuple(t.shape):
            raise ValueError(f"binary_cross_entropy_with_logits: logits {tuple(x.shape)} and target "
                             f"{tuple(t.shape)} must have the same shape (no silent broadcasting in a loss)")
        xp = backend.get_array_module(x)
        z = xp.exp(-xp.abs(x))                                     # in (0, 1]
        self.x, self.t, self.reduction = x, t, reduction
        self.p = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))        # σ(x), as Sigmoid computes it
        loss = xp.maximum(x, 0) - x * t + xp.log1p(z)
        if reduction == "none":
            return loss
        return loss.sum() if reduction == "sum" else loss.sum() / max(loss.size, 1)

    def backward(self, g):
        if self.reduction == "mean":
            g = g / max(self.x.size, 1)
        dx = (self.p - self.t) * g
        dt = -self.x * g if self.needs_input_grad[1] else None
        return dx, dt


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy of σ(logits) against targets in [0, 1], from the logits (no sigmoid first)."""
    return BinaryCrossEntropyWithLogits.apply(logits, target, reduction=reduction)
