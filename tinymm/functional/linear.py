"""The linear (fully connected) layer: y = x Wᵀ + b.

The weight is stored as (out_features, in_features), as in PyTorch, so row j of W holds the
weights of output j. The input may carry any number of leading axes (a batch, or a batch
of token sequences): (..., in) -> (..., out), the same W applied to every row.

Notation in docstrings: ``g`` is the upstream gradient d(loss)/d(out), same shape as out.
"""
from ..autograd import Function


class Linear(Function):
    """out = x @ Wᵀ + b.   x (..., in), W (out, in), b (out,) or absent -> out (..., out).

    With the leading axes of x and g flattened into rows, x2 (M, in) and g2 (M, out):
        dx = g2 @ W      (M, out)(out, in) -> (M, in), reshaped to (..., in)
        dW = g2ᵀ @ x2    (out, M)(M, in)   -> (out, in)
        db = g2 summed over the rows: b was broadcast to every row, so its copies' gradients add up.
    The products run on those flattened 2-D rows: for x (N, L, in), ``x @ Wᵀ`` would be N
    small products, one per sequence, slower than one product over all N·L rows (the
    measurement is in benchmarks/README.md).
    """

    def forward(self, x, weight, bias=None):
        _check_linear(x, weight, bias)
        self.x, self.weight = x, weight
        out = x.reshape(-1, x.shape[-1]) @ weight.T
        if bias is not None:
            out = out + bias
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        in_features, out_features = self.weight.shape[1], self.weight.shape[0]
        g2 = g.reshape(-1, out_features)
        grad_x = (g2 @ self.weight).reshape(self.x.shape) if self.needs_input_grad[0] else None
        grad_w = g2.T @ self.x.reshape(-1, in_features) if self.needs_input_grad[1] else None
        grad_b = g2.sum(axis=0) if self.needs_input_grad[2] else None  # False when bias is None
        return grad_x, grad_w, grad_b


def _check_linear(x, weight, bias):
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim == 0:
        raise ValueError("linear: input must have at least one dimension (..., in_features), got a scalar")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features but weight expects {weight.shape[1]} "
                         f"(input {tuple(x.shape)}, weight {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) to match weight "
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")


def linear(x, weight, bias=None):
    """x @ weight.T + bias: x (..., in), weight (out, in), bias (out,) or None -> (..., out)."""
    return Linear.apply(x, weight, bias)
