"""L2 normalisation: put every vector on the unit sphere.

CLIP compares an image and a caption by the cosine of the angle between their embeddings.
Once both are scaled to length 1, that cosine is a plain dot product, and a whole batch of
them is one matrix product I Tᵀ.

The backward has a geometric meaning worth seeing once (lesson 09): y = x / ‖x‖ does not
change when x is stretched, so the part of the gradient along y is useless and is removed.
What is left is the gradient projected onto the plane tangent to the sphere at y, divided
by ‖x‖ (a long vector turns more slowly than a short one).

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
import numbers

from .. import backend
from ..autograd import Function
from .basic import check_axis


class L2Normalize(Function):
    """y = x / max(‖x‖, eps), the norm taken along ``axis``.   x (..., D) -> y (..., D).

    Where ‖x‖ > eps:   dx = (g − y (y·g)) / ‖x‖
        (g minus its component along y, i.e. projected onto the tangent plane, over the norm).
    Where ‖x‖ ≤ eps the function is the linear map x / eps, so dx = g / eps: large but
    finite, even for a zero vector (whose output is the zero vector).
    """

    def forward(self, x, axis=-1, eps=1e-12):
        xp = backend.get_array_module(x)
        norm = xp.sqrt((x * x).sum(axis=axis, keepdims=True))
        self.denom = xp.maximum(norm, eps)
        self.clamped = norm <= eps  # these vectors were divided by eps, not by their norm
        self.axis = axis
        self.y = x / self.denom
        return self.y

    def backward(self, g):
        xp = backend.get_array_module(g)
        along_y = self.y * (self.y * g).sum(axis=self.axis, keepdims=True)
        return (g - xp.where(self.clamped, 0, along_y)) / self.denom


def l2_normalize(x, axis=-1, eps=1e-12):
    """x / max(‖x‖, eps) along ``axis``: unit vectors (the zero vector stays zero)."""
    check_axis("l2_normalize", getattr(x, "shape", ()), axis)
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise ValueError(f"l2_normalize: eps must be a positive number, got {eps!r}")
    return L2Normalize.apply(x, axis=int(axis), eps=float(eps))
