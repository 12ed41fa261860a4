"""Exercise: the backward walk of an autograd engine (lesson 02, sections 2, 4 and 5).

Below is the naive scalar engine of lesson 02 without its backward: every `Scalar` remembers
its `parents`, pairs (parent, d self / d parent). Write the two functions that make it learn,
then run

    python -m tinymm check backward_walk

1. `topological_order(root)`: every node `root` depends on (root and leaves included), each
   listed once and after all of its parents. Use a list as an explicit stack, not recursion:
   the checker walks a chain 5,000 nodes deep, and Python stops recursion at about 1,000.
   (Hint: push each node twice, the second time with a flag meaning "its parents are done".)
2. `backward(root)`: set root.grad = 1.0, then visit the nodes in reverse topological order
   and hand each node's gradient to its parents: parent.grad += node.grad * local. Use +=:
   a node used twice (a diamond, or x * x) receives the sum over its uses. Do not reset the
   leaves' .grad (they start at 0.0, and gradients add up across calls, as in tinymm).
"""
import math


class Scalar:
    """A number that remembers how it was made (lesson 02's naive scalar autograd)."""

    def __init__(self, value, parents=()):
        self.value, self.grad = value, 0.0
        self.parents = parents  # pairs (parent, d self / d parent)

    def __add__(self, other):
        return Scalar(self.value + other.value, ((self, 1.0), (other, 1.0)))

    def __mul__(self, other):
        return Scalar(self.value * other.value, ((self, other.value), (other, self.value)))

    def exp(self):
        out = math.exp(self.value)
        return Scalar(out, ((self, out),))

    def __repr__(self):
        return f"Scalar({self.value:.4g}, grad={self.grad:.4g})"


def topological_order(root):
    """A list of every node root depends on, each once, each after all of its parents."""
    # ---- write your code here ----
    raise NotImplementedError("topological_order: write it, then run: python -m tinymm check backward_walk")
    # ---- end of your code ----


def backward(root):
    """Set root.grad = 1.0 and accumulate d root / d node into every node's .grad."""
    # ---- write your code here ----
    raise NotImplementedError("backward: write it, then run: python -m tinymm check backward_walk")
    # ---- end of your code ----
