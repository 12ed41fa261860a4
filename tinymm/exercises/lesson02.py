"""Lesson 02's coded exercise: the backward walk of a scalar engine (topological order, then
the chain rule in reverse, accumulating).

The learner's two functions run on graphs of ``Node``s, which have what lesson 02's ``Scalar``
has (``value``, ``grad``, ``parents`` as (parent, local derivative) pairs). Each Node is built
together with a tinymm Tensor computed by the same ops, so the truth comes from the library:
tinymm's ``topological_order`` for the order and tinymm's backward for the gradients.
"""
import numpy as np

from .. import autograd
from ..autograd import Tensor, run_backward, topological_order as tinymm_topological_order
from .core import Exercise, Finding, Wrong, call_learner

REREAD = "lesson 02, sections 2 (a naive autograd), 4 (the backward walk) and 5 (re-used nodes add up)"
DEPTH = 5000


class Node:
    """A scalar node as in lesson 02, plus its tinymm twin (``_tensor``) and a name for messages."""

    def __init__(self, value, parents=(), name=None, tensor=None):
        self.value, self.grad, self.parents, self.name = float(value), 0.0, parents, name
        self._tensor = tensor if tensor is not None else Tensor(np.array(value, dtype=np.float64),
                                                                requires_grad=True)

    def __add__(self, other):
        return Node(self.value + other.value, ((self, 1.0), (other, 1.0)), tensor=self._tensor + other._tensor)

    def __mul__(self, other):
        return Node(self.value * other.value, ((self, other.value), (other, self.value)),
                    tensor=self._tensor * other._tensor)

    def exp(self):
        out = np.exp(self.value)
        return Node(out, ((self, out),), tensor=self._tensor.exp())

    def __repr__(self):
        return f"{self.name or 'node'}(value={self.value:.4g})"


def _lesson_graph():
    a, b = Node(2.0, name="a"), Node(-0.5, name="b")
    return "L = (exp(a·b) + a)·b", ((a * b).exp() + a) * b, (a, b)


def _reused_twice():
    x = Node(1.5, name="x")
    return "y = x·x + x", x * x + x, (x,)


def _diamond():
    a, k1, k2 = Node(0.3, name="a"), Node(2.0, name="k1"), Node(-3.0, name="k2")
    b = a.exp()
    return "b = exp(a); L = b·k1 + b·k2 (b feeds two nodes)", b * k1 + b * k2, (a, k1, k2)


def _deep_chain():
    x = Node(1.0, name="x")
    y = x
    for _ in range(DEPTH):
        y = y * Node(1.0001)
    return f"a chain of {DEPTH:,} multiplications", y, (x,)


GRAPHS = (_lesson_graph, _reused_twice, _diamond, _deep_chain)


def _nodes(root):
    """Every node of a graph, found through the tinymm twins (no second graph walk here)."""
    by_fn = {}
    stack, seen = [root], set()
    while stack:  # map each tinymm node back to our Node
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        by_fn[id(autograd._graph_node(node._tensor))] = node
        stack.extend(parent for parent, _ in node.parents)
    return by_fn


# ---- tinymm's answers, through the twins ----------------------------------------------------


def topological_order(root):
    by_fn = _nodes(root)
    return [by_fn[id(n)] for n in tinymm_topological_order(root._tensor)]


def backward(root):
    run_backward(root._tensor, np.ones(()), retain_graph=True)
    for node in _nodes(root).values():
        if not node.parents and node._tensor.grad is not None:
            node.grad += float(node._tensor.grad)
            node._tensor.grad = None
    root.grad = 1.0


# ---- the checks ---------------------------------------------------------------------------


def _check(impl):
    passed = []
    for build in GRAPHS:
        title, root, _ = build()
        _check_order(impl, title, root)
    passed.append(f"topological_order lists every node once, after its parents (4 graphs, one "
                  f"{DEPTH:,} deep)")
    for build in GRAPHS:
        title, root, leaves = build()
        _check_backward(impl, title, root, leaves)
    passed.append("backward gives every leaf the gradient tinymm's autograd finds (re-used nodes, "
                  "a diamond, a deep chain)")
    return passed


def _check_order(impl, title, root):
    order = call_learner("topological_order", impl.topological_order, root)
    if order is None:
        raise Finding(f"topological_order returned None: did you forget `return order`? Reread {REREAD}.")
    order = list(order)
    by_fn = _nodes(root)
    nodes = {id(n): n for n in by_fn.values()}
    seen = {}
    for node in order:
        if id(node) not in nodes:
            raise Finding(f"topological_order returned {node!r}, which is not a node of the graph {title}: "
                          f"list the nodes themselves. Reread {REREAD}.")
        seen[id(node)] = seen.get(id(node), 0) + 1
    twice = [nodes[i] for i, count in seen.items() if count > 1]
    if twice:
        raise Finding(f"topological_order lists {twice[0]!r} {seen[id(twice[0])]} times on the graph "
                      f"{title}: remember which nodes you have visited (a set of id(node)) and list each "
                      f"once, or its gradient is handed on more than once. Reread {REREAD}.")
    missing = [n for i, n in nodes.items() if i not in seen]
    if missing:
        raise Finding(f"topological_order misses {len(missing)} of the {len(nodes)} nodes of the graph "
                      f"{title}, e.g. {missing[0]!r}: the root and the leaves belong in it too. "
                      f"Reread {REREAD}.")
    position = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for parent, _ in node.parents:
            if position[id(parent)] > position[id(node)]:
                raise Finding(f"topological_order puts {node!r} before its parent {parent!r} on the graph "
                              f"{title}: each node must come after every node it was made from. "
                              f"Reread {REREAD}.")


def _check_backward(impl, title, root, leaves):
    call_learner("backward", impl.backward, root)
    if root.grad != 1.0:
        raise Finding(f"after backward, root.grad is {root.grad!r} on the graph {title}; it should be 1.0 "
                      f"(d root / d root = 1: the walk starts from there). Reread {REREAD}.")
    run_backward(root._tensor, np.ones(()), retain_graph=True)
    uses = {}
    for node in _nodes(root).values():
        for parent, _ in node.parents:
            uses[id(parent)] = uses.get(id(parent), 0) + 1
    for leaf in leaves:
        truth = float(leaf._tensor.grad)
        if not np.isclose(leaf.grad, truth, rtol=1e-9, atol=1e-12):
            n = uses.get(id(leaf), 0)
            hint = (f"{leaf.name} is used {n} times in this graph, so its gradient is the sum over its "
                    f"uses: add with +=, never overwrite; and hand a node's gradient on only after it has "
                    f"received all of it (reverse topological order)." if n > 1 else
                    "Walk the nodes in reverse topological order, so a node hands its gradient on only "
                    "after it has received all of it; multiply by each local derivative once.")
            raise Finding(f"backward gives {leaf.name}.grad = {leaf.grad:.6g} on the graph {title}, but "
                          f"tinymm's autograd gives {truth:.6g}. {hint} Reread {REREAD}.")


# ---- wrong versions -----------------------------------------------------------------------


def _recursive_order(root):
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent, _ in node.parents:
                visit(parent)
            order.append(node)

    visit(root)
    return order


def _order_with_repeats(root):
    order, stack = [], [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((parent, False) for parent, _ in node.parents)
    return order


def _order_without_leaves(root):
    return [n for n in topological_order(root) if n.parents]


def _walk(root, combine, reverse=True, seed=1.0):
    order = topological_order(root)
    root.grad = seed
    for node in (reversed(order) if reverse else order):
        for parent, local in node.parents:
            parent.grad = combine(parent.grad, node.grad * local)


def _overwrites(root):
    _walk(root, lambda old, new: new)


def _forwards(root):
    _walk(root, lambda old, new: old + new, reverse=False)


def _no_seed(root):
    _walk(root, lambda old, new: old + new, seed=0.0)


def _scaled(root):
    _walk(root, lambda old, new: old + 1.01 * new)


BACKWARD_WALK = Exercise(
    name="backward_walk", lesson="02",
    title="the engine's backward walk: topological order, then the chain rule, accumulating",
    stub="02_backward_walk.py", slots=("topological_order", "backward"), reread=REREAD, check=_check,
    reference={"topological_order": topological_order, "backward": backward},
    answer=(autograd.topological_order, autograd.run_backward),
    wrong=[
        Wrong("recursive topological order", {"topological_order": _recursive_order},
              ("RecursionError", "explicit stack")),
        Wrong("no visited set", {"topological_order": _order_with_repeats}, ("times on the graph", "visited")),
        Wrong("leaves left out of the order", {"topological_order": _order_without_leaves}, ("misses",)),
        Wrong("gradients overwritten, not accumulated", {"backward": _overwrites},
              ("a.grad", "used 2 times", "+=")),
        Wrong("walk in forward order", {"backward": _forwards}, ("backward gives", "tinymm's autograd gives")),
        Wrong("root not seeded with 1", {"backward": _no_seed}, ("root.grad is 0.0",)),
        Wrong("every step scaled by 1.01", {"backward": _scaled}, ("a.grad", "tinymm's autograd gives")),
    ])
