"""The autograd engine: Tensor, Function and the backward walk.

A ``Tensor`` wraps an array (NumPy or CuPy). When an operation is applied to tensors
that require gradients, the ``Function`` that computed it is remembered on the result as
``grad_fn``. Each Function links to its ``parents``: for every input, the Function that
produced it, or the input itself if it is a leaf (a weight, say). That chain of Functions
and leaves is the computational graph.

The graph links Functions, not the intermediate tensors, on purpose: a Function keeps only
what its backward needs, so an intermediate array that no backward needs is freed as soon as
your code lets go of its tensor, long before the backward pass. (A graph of tensors, like the
naive one in lesson 02, would keep every intermediate array alive until the graph is gone.)

``loss.backward()`` walks the graph from the loss back to the leaves, in reverse
topological order, calling each Function's ``backward`` with the gradient of the loss
with respect to that Function's output (the chain rule, one op at a time). Gradients are
plain arrays, not Tensors: every backward pass is ordinary array code you can read.
"""
import contextlib

import numpy as np

from . import backend

# ----------------------------------------------------------------------------------------------
# Global switches: grad mode and anomaly detection.

_grad_enabled = True
_detect_anomaly = False


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded: evaluation, optimiser updates, metrics."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Turn graph recording back on inside a ``no_grad`` block."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def detect_anomaly():
    """Check every forward output and every backward gradient for NaN or inf.

    The first op that produces one raises a ValueError that names it, so a NaN loss
    can be traced to the operation that made it. It costs one check per op: leave it
    off for speed.
    """
    global _detect_anomaly
    previous, _detect_anomaly = _detect_anomaly, True
    try:
        yield
    finally:
        _detect_anomaly = previous


def _check_finite(array, what):
    xp = backend.get_array_module(array)
    if _is_float(array.dtype) and not bool(xp.isfinite(array).all()):
        kind = "nan" if bool(xp.isnan(array).any()) else "inf"
        raise ValueError(f"detect_anomaly: {what} produced {kind} (shape {tuple(array.shape)})")


# ----------------------------------------------------------------------------------------------
# Tensor


def _is_float(dtype):
    return np.issubdtype(dtype, np.floating)


class Tensor:
    """An array with an optional gradient and a link to the op that made it.

    data           the values: a NumPy (cpu) or CuPy (cuda) array
    grad           d(loss)/d(data) after backward, same shape and dtype; None until then
    requires_grad  whether gradients should flow to this tensor
    grad_fn        the Function that produced it, or None for a leaf (inputs, parameters)
    """

    __array_priority__ = 1000  # so that ndarray + Tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        if not backend.is_array(data):
            data = np.asarray(data)
        self._version = [0]  # a box shared with detach(): how often data was assigned (see below)
        self.data = data
        self.grad = None
        self.grad_fn = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    # -- the attributes a learner looks at ------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, array):
        # Each assignment counts as a change, x.data -= lr * g included (Python assigns the
        # result of -= back). An op records the count of each input; if it has moved by the
        # time backward runs, backward would use the new values, so it refuses (as PyTorch
        # does with its version counter). Writing into the array itself (x.data[0] = 1)
        # bypasses this: the array is plain NumPy and cannot tell anyone.
        self._data = array
        self._version[0] += 1

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and not _is_float(self.data.dtype):
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, got "
                f"dtype {self.data.dtype} (integer tensors such as token ids are inputs only)"
            )
        self._requires_grad = bool(flag)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return int(self.data.size)

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), precision=4, separator=", ",
                               prefix="tensor(")
        extra = f", device='{self.device}'" if self.device != "cpu" else ""
        if self.dtype != backend.DEFAULT_FLOAT:
            extra += f", dtype={self.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn=<{type(self.grad_fn).__name__}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -- conversions ------------------------------------------------------------------------
    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed; no graph)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a number, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values, cut from the graph (shares memory and the change count, requires no grad)."""
        out = Tensor(self.data)
        out._version = self._version
        return out

    def to(self, device=None, dtype=None):
        """A copy on another device and/or with another dtype; differentiable."""
        from .functional.basic import to_device, cast
        out = self
        if device is not None and backend.check_device(device, "to") != self.device:
            out = to_device(out, device)
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = cast(out, dtype)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def zero_grad(self):
        self.grad = None

    # -- backward -----------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Compute d(self)/d(leaf) for every leaf that requires grad; add it to ``leaf.grad``.

        A scalar is seeded with 1. A non-scalar needs ``grad``, the upstream gradient of the
        same shape (think of it as d(loss)/d(self) for some loss further on). The graph's
        saved arrays are freed afterwards unless ``retain_graph=True``.
        """
        if not self.requires_grad:
            raise ValueError("backward: this tensor does not require grad and has no graph "
                             "(did you compute it under no_grad, or from tensors without requires_grad?)")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward: a non-scalar output of shape {self.shape} needs an explicit "
                                 f"grad of the same shape (or call .sum() / a loss first)")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            grad = xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward: grad has shape {tuple(grad.shape)} but the tensor has shape {self.shape}")
        run_backward(self, grad, retain_graph)

    # -- Python operators map to the ops in functional/basic.py -------------------------------
    def __add__(self, other):
        return _basic().add(self, other)

    def __radd__(self, other):
        return _basic().add(other, self)

    def __sub__(self, other):
        return _basic().sub(self, other)

    def __rsub__(self, other):
        return _basic().sub(other, self)

    def __mul__(self, other):
        return _basic().mul(self, other)

    def __rmul__(self, other):
        return _basic().mul(other, self)

    def __truediv__(self, other):
        return _basic().div(self, other)

    def __rtruediv__(self, other):
        return _basic().div(other, self)

    def __neg__(self):
        return _basic().neg(self)

    def __pow__(self, exponent):
        return _basic().pow(self, exponent)

    def __matmul__(self, other):
        return _basic().matmul(self, other)

    def __rmatmul__(self, other):
        return _basic().matmul(other, self)

    def __getitem__(self, index):
        return _basic().getitem(self, index)

    # comparisons give plain boolean tensors (no gradient flows through a comparison)
    def __lt__(self, other):
        return Tensor(self.data < as_tensor(other, self).data)

    def __le__(self, other):
        return Tensor(self.data <= as_tensor(other, self).data)

    def __gt__(self, other):
        return Tensor(self.data > as_tensor(other, self).data)

    def __ge__(self, other):
        return Tensor(self.data >= as_tensor(other, self).data)

    __hash__ = object.__hash__  # tensors are graph nodes: identity, not value, equality

    # -- methods -------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _basic().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return _basic().mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return _basic().max(self, axis=axis, keepdims=keepdims)

    def exp(self):
        return _basic().exp(self)

    def log(self):
        return _basic().log(self)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _basic().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _basic().transpose(self, axes or None)

    permute = transpose

    @property
    def T(self):
        return _basic().transpose(self, None)

    def argmax(self, axis=None):
        """Indices of the maxima (an integer tensor; not differentiable)."""
        return Tensor(self.data.argmax(axis=axis))


def _basic():
    # functional.basic imports this module, so it is looked up lazily to avoid a cycle
    from .functional import basic
    return basic


def as_tensor(value, like=None):
    """Wrap a Python number, list or array as a constant Tensor on the device of ``like``.

    Host values (numbers, lists, NumPy arrays: data you typed or loaded) follow the device of
    the op's tensor ``like``, as PyTorch moves Python numbers. A GPU array is never moved: if
    it sits on another device than ``like``, the op reports the mismatch.
    A Python number takes the dtype of ``like`` when that is floating point (as NumPy does
    with ``float32_array * 2.0``), so constants never silently upcast float32 to float64.
    """
    if isinstance(value, Tensor):
        return value
    device = "cpu" if like is None else like.device
    if backend.is_array(value):
        if device == "cpu" or backend.device_of(value) != "cpu":
            return Tensor(value)
        return Tensor(backend.to_device(value, device))
    if like is not None and isinstance(value, (int, float, bool, np.number)):
        xp = backend.get_array_module(like.data)
        if _is_float(like.dtype) or isinstance(value, (int, bool, np.integer)):
            return Tensor(xp.asarray(value, dtype=like.dtype))
        return Tensor(xp.asarray(value, dtype=backend.DEFAULT_FLOAT))
    return Tensor(backend.to_device(np.asarray(value), device))


# ----------------------------------------------------------------------------------------------
# Function


class Function:
    """One differentiable operation: ``forward`` computes, ``backward`` applies the chain rule.

    Subclasses implement
        forward(self, *arrays, **params) -> array
        backward(self, grad_out) -> one gradient per array input (None where there is none)
    and save on ``self`` only what backward needs. Use them through ``apply``, which turns
    tensors into arrays, runs forward, and records the graph when gradients are needed.

    ``needs_input_grad`` (one bool per input) is set before forward runs, so forward can
    skip work that only backward needs (see ``will_backward``). ``retain_graph`` is False
    while the engine runs the last backward through this op (the saved arrays are released
    right after it), so backward may drop a large saved array as soon as it has used it. It
    is True otherwise, and then everything must be kept.
    """

    retain_graph = True

    def __init__(self):
        self.parents = ()            # per input: its grad_fn, the leaf tensor itself, or None
        self.needs_input_grad = ()
        self.input_meta = ()         # per input: (shape, dtype), to check backward's results
        self.input_versions = ()     # per input: (its change counter, the count forward saw)
        self._freed = False

    @classmethod
    def apply(cls, *inputs, **params):
        fn = cls()
        tensors = _as_tensors(cls.__name__, inputs)  # an optional input left out stays None
        needs = tuple(_grad_enabled and t is not None and t.requires_grad for t in tensors)
        fn.needs_input_grad = needs
        out_data = fn.forward(*[None if t is None else t.data for t in tensors], **params)
        if _detect_anomaly:
            _check_finite(out_data, f"forward of {cls.__name__}")
        out = Tensor(out_data)
        if any(needs) and _is_float(out.dtype):
            # link to the Functions that made the inputs, not to the input tensors: holding
            # a tensor would hold its array, and backward needs only what forward saved
            fn.parents = tuple(_graph_node(t) if need else None for t, need in zip(tensors, needs))
            fn.input_meta = tuple(None if t is None else (t.shape, t.dtype) for t in tensors)
            fn.input_versions = tuple(None if t is None else (t._version, t._version[0]) for t in tensors)
            out.grad_fn = fn
            out._requires_grad = True
        return out

    @property
    def will_backward(self):
        """False when ``apply`` knows no gradient will flow back through this op (inside
        no_grad, or no input requires grad): forward may then skip what only backward needs.
        True when forward is called directly, outside ``apply``."""
        return not self.needs_input_grad or any(self.needs_input_grad)

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def release(self):
        """Drop the arrays saved for backward (keep the graph's shape for error messages)."""
        keep = {"parents": self.parents, "needs_input_grad": self.needs_input_grad,
                "input_meta": self.input_meta}
        self.__dict__.clear()
        self.__dict__.update(keep, _freed=True)

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _as_tensors(op, inputs):
    """Turn the inputs of an op into Tensors on one device (numbers take a tensor's dtype);
    None (an optional input such as a bias, left out) stays None."""
    like = next((x for x in inputs if isinstance(x, Tensor)), None)
    tensors = tuple(None if x is None else as_tensor(x, like) for x in inputs)
    given = [t for t in tensors if t is not None]
    if len({t.device for t in given}) > 1:
        shapes = ", ".join(f"{t.shape} on {t.device}" for t in given)
        raise ValueError(f"{op}: inputs are on different devices ({shapes}); "
                         f"move them with .to('cpu') or .to('cuda') first")
    return tensors


# ----------------------------------------------------------------------------------------------
# The backward walk


def _graph_node(tensor):
    """The node that stands for ``tensor`` in the graph: the Function that produced it, or
    the tensor itself when it is a leaf."""
    return tensor.grad_fn if tensor.grad_fn is not None else tensor


def topological_order(root):
    """Every node ``root`` depends on, each after the nodes it was computed from.

    The nodes are Functions (one per op output) and leaf tensors that require grad. An
    explicit stack instead of recursion, so a graph 10,000 ops deep is no problem.
    """
    order, visited = [], set()
    stack = [(_graph_node(root), False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if isinstance(node, Function):
            for parent in node.parents:
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def run_backward(root, grad, retain_graph=False):
    """Propagate ``grad`` (d loss / d root) to every leaf, in reverse topological order.

    ``grads`` maps each node to d loss / d(the tensor it stands for). A tensor used by
    several ops receives the sum of their gradients (the multivariate chain rule), which is
    why gradients are accumulated, never overwritten.
    """
    grads = {id(_graph_node(root)): grad}
    for node in reversed(topological_order(root)):
        grad_out = grads.pop(id(node), None)
        if grad_out is None:
            continue
        if isinstance(node, Tensor):  # a leaf: the gradient's journey ends here
            _accumulate_leaf_grad(node, grad_out)
            continue
        _check_before_backward(node)
        node.retain_graph = retain_graph
        for parent, g in _checked_input_grads(node, node.backward(grad_out)):
            grads[id(parent)] = g if id(parent) not in grads else grads[id(parent)] + g  # the chain rule's sum
        if not retain_graph:
            node.release()


def _check_before_backward(fn):
    """The graph through ``fn`` must still exist, and its inputs must be as forward saw them.

    An input reassigned after the op used it would get a gradient computed from the new
    values. Every input is checked, not only the ones backward reads (tinymm does not track
    those), so this is a little stricter than PyTorch: even ``y = x + 1`` refuses after
    ``x.data += 1``.
    """
    if fn._freed:
        raise ValueError(f"backward: the graph through {type(fn).__name__} was already freed by an earlier "
                         f"backward; pass retain_graph=True to the first backward to go through it twice")
    for i, version in enumerate(fn.input_versions):
        if version is None:  # an optional input that was left out
            continue
        counter, seen = version
        if counter[0] != seen:
            name = type(fn).__name__
            raise ValueError(f"backward: input {i} of {name} (shape {fn.input_meta[i][0]}) was changed in place "
                             f"(its .data reassigned, or +=, -=, ...) after {name} used it, so its gradient would "
                             f"be computed from the new values; change .data after backward, or on a copy")


def _checked_input_grads(fn, input_grads):
    """(parent, gradient) for each input of ``fn`` that wants one, after checking what
    ``fn.backward`` returned: one gradient per input, each of its input's shape (cast to its
    dtype), finite when ``detect_anomaly`` is on."""
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    for parent, meta, g in zip(fn.parents, fn.input_meta, input_grads):
        if parent is None or g is None:
            continue
        shape, dtype = meta
        if g.shape != shape:
            raise ValueError(f"{type(fn).__name__}.backward returned a gradient of shape {tuple(g.shape)} "
                             f"for an input of shape {shape}")
        if _detect_anomaly:
            _check_finite(g, f"backward of {type(fn).__name__}")
        if g.dtype != dtype:
            g = g.astype(dtype)
        yield parent, g


def _accumulate_leaf_grad(leaf, grad):
    if leaf.grad is None:
        # a copy: the same array may be handed to several leaves (e.g. by add's backward)
        leaf.grad = grad.copy()
    else:
        leaf.grad += grad
