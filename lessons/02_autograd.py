# %% [markdown]
# # Lesson 02 — Autograd: the chain rule, one operation at a time
#
# **What you will build.** First a tiny automatic-differentiation engine for single numbers,
# about twenty lines, to see the whole idea at once. Then the real one in tinymm, which does
# the same thing on whole arrays: `Tensor`, `Function`, and the backward walk. You will write
# your own differentiable op, watch gradients add up where a value is used twice, and draw
# the computational graph of a small formula with every gradient written on it.
#
# **Why it matters.** Training a network means nudging millions of weights downhill on a
# loss. For that we need the derivative of the loss with respect to every weight, and we need
# it cheaply: about the cost of computing the loss once more. Backpropagation does exactly
# that, and everything after this lesson relies on it.
#
# **Needs:** lesson 01 (tensors, dtypes). Calculus: the derivative of a product and of
# $e^x$, and the chain rule.

# %%
import gc
import inspect
import math
import time
import weakref

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

import tinymm as tm
from tinymm import backend
from tinymm.autograd import Function, topological_order
from tinymm.functional.basic import Mul
from tinymm.plots import pick, save_figure

# %% [markdown]
# ## 1. A formula as a graph
#
# Take two inputs $a = 2$ and $b = -0.5$ and compute, one operation at a time,
#
# $$c = a\,b, \qquad d = e^{c}, \qquad s = d + a, \qquad L = s\,b .$$
#
# (Here $e \approx 2.718$ is Euler's number, as everywhere below. The sum is called $s$ so that
# $e$ never names a node.)
#
# Each line is a node in a **computational graph**; its inputs are the nodes it was computed
# from. Note that $a$ and $b$ are each used twice.
#
# We want $\partial L/\partial a$ and $\partial L/\partial b$. The **chain rule** says: the
# derivative of $L$ with respect to any node is the sum, over every way that node is used,
# of (derivative of $L$ with respect to the user) × (local derivative of the user with
# respect to the node). Start at the end, where $\partial L/\partial L = 1$, and walk back:
#
# | node | used by | $\partial L/\partial(\text{node})$ | value |
# |---|---|---|---|
# | $L$ | — | $1$ | $1$ |
# | $s$ | $L = s\,b$ | $\frac{\partial L}{\partial L}\cdot b$ | $-0.5$ |
# | $d$ | $s = d + a$ | $\frac{\partial L}{\partial s}\cdot 1$ | $-0.5$ |
# | $c$ | $d = e^c$ | $\frac{\partial L}{\partial d}\cdot e^{c}$ | $-0.5\,e^{-1} \approx -0.1839$ |
# | $a$ | $c = ab$ and $s = d + a$ | $\frac{\partial L}{\partial c}\cdot b + \frac{\partial L}{\partial s}\cdot 1$ | $0.0920 - 0.5 \approx -0.4080$ |
# | $b$ | $c = ab$ and $L = s\,b$ | $\frac{\partial L}{\partial c}\cdot a + \frac{\partial L}{\partial L}\cdot s$ | $-0.3679 + 2.3679 = 2$ |
#
# As a check, write $L$ out in one line, $L = (e^{ab} + a)\,b$, and differentiate directly:
# $\partial L/\partial a = b^2 e^{ab} + b$ and $\partial L/\partial b = e^{ab} + a + ab\,e^{ab}$.
# At our point these give the same $-0.4080$ and $2$.
#
# Two things to notice. Each step needed only a *local* derivative (of one small operation)
# and the gradient already computed for the node after it. And a node used twice
# ($a$, $b$) **adds** the contributions of its two uses.

# %%
A, B = 2.0, -0.5
HAND = {  # dL/d(node), from the table above
    "L": 1.0,
    "s": B,
    "d": B,
    "c": B * math.exp(A * B),
    "a": B * math.exp(A * B) * B + B,
    "b": B * math.exp(A * B) * A + (math.exp(A * B) + A),
}
CLOSED_FORM = {"a": B**2 * math.exp(A * B) + B,
               "b": math.exp(A * B) + A + A * B * math.exp(A * B)}
print({k: round(v, 6) for k, v in HAND.items()})
assert math.isclose(HAND["a"], CLOSED_FORM["a"]) and math.isclose(HAND["b"], CLOSED_FORM["b"])

# %% [markdown]
# ## 2. A naive autograd for single numbers
#
# To automate the table, each number remembers which numbers it was made from and the local
# derivative with respect to each one. `backward` then (1) lists every node so that each
# comes after the nodes it was made from (a **topological order**), and (2) walks that list
# backwards, handing gradient to the parents with `+=`, so that re-used nodes add up.
#
# This is a deliberately simple version, for comparison only. It is not how tinymm is built.

# %%
class Scalar:
    """A number that remembers how it was made (naive scalar autograd)."""

    def __init__(self, value, parents=()):
        self.value, self.grad = value, 0.0
        self.parents = parents  # pairs (parent, d self / d parent), computed right away

    def __add__(self, other):
        return Scalar(self.value + other.value, ((self, 1.0), (other, 1.0)))

    def __mul__(self, other):
        return Scalar(self.value * other.value, ((self, other.value), (other, self.value)))

    def exp(self):
        out = math.exp(self.value)
        return Scalar(out, ((self, out),))

    def backward(self):
        order, seen = [], set()

        def visit(node):  # depth-first, recursive: short and clear, but see below
            if id(node) not in seen:
                seen.add(id(node))
                for parent, _ in node.parents:
                    visit(parent)
                order.append(node)  # after all of its parents

        visit(self)
        self.grad = 1.0
        for node in reversed(order):
            for parent, local in node.parents:
                parent.grad += node.grad * local  # chain rule; += because of re-used nodes


a, b = Scalar(A), Scalar(B)
L = ((a * b).exp() + a) * b
L.backward()
print(f"naive: L = {L.value:.6f}, dL/da = {a.grad:.6f}, dL/db = {b.grad:.6f}")
assert math.isclose(a.grad, HAND["a"], rel_tol=1e-12) and math.isclose(b.grad, HAND["b"], rel_tol=1e-12)

# %% [markdown]
# It works, and it is worth reading twice. But it has two problems a real engine cannot have.
#
# **Recursion.** `visit` calls itself once per level of the graph. Python stops recursion at
# about a thousand levels, and a graph is easily deeper than that (a recurrent network, or
# just a long loop of updates):

# %%
depth = 2000
x = Scalar(1.0)
y = x
for _ in range(depth):
    y = y * Scalar(1.0001)
try:
    y.backward()
    naive_deep_ok = True
except RecursionError:
    naive_deep_ok = False
print(f"naive backward through {depth} nested ops:", "ok" if naive_deep_ok else "RecursionError")

xt = tm.tensor(1.0, requires_grad=True)
yt = xt
for _ in range(depth):
    yt = yt * 1.0001
yt.backward()
print(f"tinymm backward through {depth} nested ops: dy/dx = {xt.grad:.6f} (exact: {1.0001 ** depth:.6f})")
assert not naive_deep_ok
assert math.isclose(float(xt.grad), 1.0001 ** depth, rel_tol=1e-3)  # float32 rounding, 2000 times

# %% [markdown]
# **One Python object per number.** A layer with a million weights would be a million
# `Scalar`s and millions of Python calls. tinymm puts a whole array in each node, so one node
# stands for a million numbers and its derivative is one array expression. Same gradient, very
# different speed:

# %%
n = pick(20_000, 2_000)
rng = np.random.default_rng(0)
xs, ws = rng.standard_normal(n), rng.standard_normal(n)

start = time.perf_counter()
w_nodes = [Scalar(w) for w in ws]
terms = [(Scalar(xi) * wi).exp() + wi for xi, wi in zip(xs, w_nodes)]  # loss = sum_i exp(x_i w_i) + w_i
while len(terms) > 1:  # add in pairs, so the graph is only about log2(n) deep (no RecursionError)
    terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
terms[0].backward()
naive_seconds = time.perf_counter() - start

start = time.perf_counter()
w = tm.tensor(ws, requires_grad=True)  # float64 array stays float64
loss = ((tm.tensor(xs) * w).exp() + w).sum()
loss.backward()
tinymm_seconds = time.perf_counter() - start

print(f"{n:,} weights: naive {naive_seconds * 1e3:.0f} ms, tinymm {tinymm_seconds * 1e3:.2f} ms "
      f"(about {naive_seconds / tinymm_seconds:.0f}x faster)")
assert np.allclose(backend.to_numpy(w.grad), [node.grad for node in w_nodes], rtol=1e-10)

# %% [markdown]
# ## 3. The real engine: `Tensor` and `Function`
#
# Open `tinymm/autograd.py`. A `Tensor` holds:
#
# - `data`: the array of values;
# - `requires_grad`: whether we want $\partial L/\partial(\text{this})$;
# - `grad`: that gradient after `backward()`, an array of the same shape and dtype;
# - `grad_fn`: the `Function` that produced it (`None` for a **leaf**, such as an input or
#   a weight).
#
# The graph is made of Functions and leaves. `grad_fn.parents` has one entry per input: the
# Function that produced that input, or the input tensor itself if it is a leaf. So a
# Function stands for the tensor it produced. (Why not link to the input tensors, as the
# naive `Scalar` did? Section 6 shows what that saves.)
#
# Here is the example from section 1 again, now with tinymm tensors. We name every node
# after the tensor it stands for.

# %%
a = tm.tensor(A, requires_grad=True)
b = tm.tensor(B, requires_grad=True)
c = a * b
d = c.exp()
s = d + a
L = s * b
TENSORS = {"a": a, "b": b, "c": c, "d": d, "s": s, "L": L}
# the node of a tensor: its grad_fn, or the tensor itself for a leaf
NODES = {name: (t.grad_fn if t.grad_fn is not None else t) for name, t in TENSORS.items()}
NAMES = {id(node): name for name, node in NODES.items()}

print("L =", L)
print("L.grad_fn =", L.grad_fn, "| its parents:", [NAMES[id(p)] for p in L.grad_fn.parents])
print("a is a leaf:", a.is_leaf, "| a.grad_fn =", a.grad_fn)
assert L.grad_fn.parents == (NODES["s"], NODES["b"]) and NODES["s"].parents == (NODES["d"], NODES["a"])

# %% [markdown]
# A `Function` is one operation with two methods, side by side:
#
# - `forward(self, *arrays, **params) -> array` computes the output from plain arrays and
#   saves on `self` whatever backward will need;
# - `backward(self, grad_out) -> tuple` receives $g = \partial L/\partial(\text{output})$ and
#   returns $\partial L/\partial(\text{input})$ for each input (`None` where there is none).
#
# `Function.apply(*tensors)` unwraps the tensors, runs `forward`, and, if any input requires
# a gradient, records itself as the output's `grad_fn`. Every op in `tinymm/functional/` is
# such a class. This is the whole of multiplication, from `tinymm/functional/basic.py`:

# %%
print(inspect.getsource(Mul))

# %% [markdown]
# `needs_input_grad[i]` tells backward whether input `i` wants a gradient at all, so work is
# skipped for constants. `unbroadcast` undoes NumPy broadcasting; lesson 04 is about it.
#
# Writing your own op takes the same ten lines. Here is the sine, with
# $\frac{d}{dx}\sin x = \cos x$:

# %%
class Sin(Function):
    """out = sin x.   dx = g * cos x."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.x = x  # backward needs the input
        return xp.sin(x)

    def backward(self, g):
        xp = backend.get_array_module(g)
        return (g * xp.cos(self.x),)


x = tm.tensor(np.linspace(-3.0, 3.0, 7), requires_grad=True)
y = (Sin.apply(x) * x).sum()  # y = Σ x sin x, so dy/dx = sin x + x cos x
y.backward()
xv = x.numpy()
expected = np.sin(xv) + xv * np.cos(xv)
print("x.grad  ", np.round(backend.to_numpy(x.grad), 4))
print("expected", np.round(expected, 4))
assert np.allclose(backend.to_numpy(x.grad), expected, rtol=1e-12)

# %% [markdown]
# (Lesson 03 shows how to *prove* a backward like this one correct without trusting your
# calculus: finite differences.)
#
# ## 4. The backward walk
#
# `L.backward()` does what the naive `Scalar.backward` did, on arrays, without recursion:
#
# 1. `topological_order(L)` lists every node $L$ depends on (Functions, and leaves that
#    require grad), each after its parents. It uses an explicit stack: each node is pushed
#    twice, once to visit its parents and once, marked "parents done", to be appended to the
#    list. No Python recursion, so a graph 10,000 ops deep is fine.
# 2. `run_backward` walks that list in reverse, starting from $\partial L/\partial L = 1$. For
#    each node it calls `grad_fn.backward(g)` and **adds** each returned gradient to what its
#    input has received so far.
# 3. Leaves that require grad get the total in `.grad`.

# %%
order = topological_order(L)
print("topological order:", " -> ".join(NAMES[id(node)] for node in order))
position = {id(node): i for i, node in enumerate(order)}
for node in order:  # every node comes after the nodes it was computed from
    if isinstance(node, Function):
        assert all(position[id(p)] < position[id(node)] for p in node.parents if p is not None)

# %% [markdown]
# `backward()` keeps only the leaves' gradients: the others are needed just long enough to
# pass on. To draw them, the next cell walks the same order itself and keeps every one. It
# is the loop of `run_backward` in `tinymm/autograd.py`, minus error checks and freeing.
# It calls each Function's `backward` directly, so it must run **before** `L.backward()`,
# which frees the arrays those methods need.

# %%
def every_gradient(root):
    """dL/d(node) for every node of root's graph, as {id(node): array}."""
    grads = {id(root.grad_fn): backend.get_array_module(root.data).ones_like(root.data)}
    for node in reversed(topological_order(root)):
        if not isinstance(node, Function):  # a leaf: nothing further back
            continue
        input_grads = node.backward(grads[id(node)])
        input_grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        for parent, g in zip(node.parents, input_grads):
            if parent is not None and g is not None:
                grads[id(parent)] = grads.get(id(parent), 0.0) + g
    return grads


walked = every_gradient(L)
L.backward()  # the library's walk: fills a.grad and b.grad

for node in reversed(order):  # from L back to the leaves, as the walk goes
    name = NAMES[id(node)]
    print(f"dL/d{name} = {float(walked[id(node)]):+.6f}   (by hand {HAND[name]:+.6f})")
    assert math.isclose(float(walked[id(node)]), HAND[name], rel_tol=1e-6)
print(f"a.grad = {float(a.grad):+.6f}, b.grad = {float(b.grad):+.6f}")
assert math.isclose(float(a.grad), HAND["a"], rel_tol=1e-6)  # float32: about 7 digits
assert math.isclose(float(b.grad), HAND["b"], rel_tol=1e-6)

# %% [markdown]
# Every gradient autograd computed equals the one we worked out by hand (to float32
# precision, about seven digits). Here is the graph, drawn from the links
# `parents`: each box shows a node's operation and the value of the tensor it stands for,
# and in red its gradient $\partial L/\partial(\text{node})$.

# %%
def draw_graph(root, names, values, grads, ax):
    """Boxes for the nodes of root's graph, arrows from inputs to outputs, gradients in red."""
    nodes = topological_order(root)
    inputs = {id(t): ([p for p in t.parents if p is not None] if isinstance(t, Function) else ())
              for t in nodes}
    level = {}
    for t in nodes:  # a leaf is in column 0; any other node one column right of its furthest input
        level[id(t)] = 1 + max((level[id(p)] for p in inputs[id(t)]), default=-1)
    columns = {}
    for t in nodes:
        columns.setdefault(level[id(t)], []).append(t)
    xy = {}
    for k, column in columns.items():  # nodes of one column stacked around y = 0
        for i, t in enumerate(column):
            xy[id(t)] = (3.0 * k, -2.6 * (i - (len(column) - 1) / 2))
    w, h = 0.95, 0.55  # half width and half height of a box
    for t in nodes:
        for p in inputs[id(t)]:
            (x0, y0), (x1, y1) = xy[id(p)], xy[id(t)]
            if level[id(t)] - level[id(p)] == 1:  # neighbouring columns: a straight arrow
                start, end, style = (x0 + w, y0), (x1 - w, y1), "arc3"
            else:  # skips columns: run along the outside, then turn into the box from above/below
                side = 1 if y0 >= y1 else -1
                start, end, style = (x0 + w, y0), (x1, y1 + side * h), "angle,angleA=0,angleB=90,rad=8"
            ax.annotate("", xy=end, xytext=start,
                        arrowprops=dict(arrowstyle="-|>", color="0.35", lw=1.2, shrinkA=0, shrinkB=0,
                                        connectionstyle=style))
    for t in nodes:
        x0, y0 = xy[id(t)]
        leaf = not isinstance(t, Function)
        op = "leaf" if leaf else type(t).__name__
        ax.add_patch(FancyBboxPatch((x0 - w, y0 - h), 2 * w, 2 * h, boxstyle="round,pad=0.05",
                                    fc="#dbe9f6" if leaf else "#f4f4f4", ec="0.3"))
        ax.text(x0, y0 + 0.22, f"{names[id(t)]}   [{op}]", ha="center", va="center", fontsize=10,
                weight="bold")
        ax.text(x0, y0 - 0.02, f"value {values[id(t)]:+.4f}", ha="center", va="center", fontsize=9)
        ax.text(x0, y0 - 0.3, f"∂L/∂{names[id(t)]} = {float(grads[id(t)]):+.4f}", ha="center",
                va="center", fontsize=9, color="tab:red")
    xs = [p[0] for p in xy.values()]
    ys = [p[1] for p in xy.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")


fig, ax = plt.subplots(figsize=(11, 4))
VALUES = {id(NODES[name]): float(t.data) for name, t in TENSORS.items()}
draw_graph(L, NAMES, VALUES, walked, ax)
ax.set_title("L = (exp(a·b) + a)·b at a = 2, b = −0.5: values forward, gradients (red) backward")
save_figure(fig, "02_graph.png")

# %% [markdown]
# ## 5. Re-used nodes add up
#
# In the figure, $a$ has two outgoing arrows. Its gradient is the sum of what comes back
# along each: $\frac{\partial L}{\partial c}\,b = 0.0920$ through $c$, and
# $\frac{\partial L}{\partial s} = -0.5$ through $s$. That is why the engine accumulates
# (`+`) and never overwrites. Forgetting this is the classic bug of hand-written autograd:
# with overwriting, $a$ would get only one of the two.

# %%
through_c = float(walked[id(NODES["c"])]) * B
through_s = float(walked[id(NODES["s"])]) * 1.0
print(f"through c: {through_c:+.4f}, through s: {through_s:+.4f}, sum {through_c + through_s:+.4f}, "
      f"a.grad {float(a.grad):+.4f}")
assert math.isclose(through_c + through_s, float(a.grad), rel_tol=1e-6)

# x used three times: y = x*x + x, so dy/dx = 2x + 1
x = tm.tensor([1.0, 2.0, 3.0], requires_grad=True)
(x * x + x).sum().backward()
print("d/dx sum(x*x + x) at [1, 2, 3]:", backend.to_numpy(x.grad))
assert np.array_equal(backend.to_numpy(x.grad), [3.0, 5.0, 7.0])

# %% [markdown]
# Leaves accumulate **across** calls too: a second `backward` adds to `.grad` rather than
# replacing it. That is useful (summing gradients over several small batches), but it means a
# training loop must clear gradients before each step: `x.zero_grad()` here, and
# `optimizer.zero_grad()` in later lessons.

# %%
(x * 10.0).sum().backward()
print("after a second backward:", backend.to_numpy(x.grad))
assert np.array_equal(backend.to_numpy(x.grad), [13.0, 15.0, 17.0])
x.zero_grad()
assert x.grad is None

# %% [markdown]
# ## 6. `retain_graph`: walking the same graph twice
#
# During the forward pass each Function saves arrays for its backward (`Mul` keeps both
# inputs, `Exp` its output). In a real network those saved arrays are most of the memory, so
# `backward()` frees them as it goes. A second `backward()` on the same graph is then an
# error, with a message that says what to do. Pass `retain_graph=True` to the first call to
# keep them.

# %%
try:
    L.backward()
except ValueError as err:
    print("ValueError:", err)
else:
    raise AssertionError("a second backward through a freed graph must fail")

a.zero_grad(), b.zero_grad()
L = ((a * b).exp() + a) * b
L.backward(retain_graph=True)
first = float(a.grad)
L.backward()  # allowed: the first call kept the graph
print(f"a.grad after one backward {first:+.4f}, after two {float(a.grad):+.4f}")
assert math.isclose(float(a.grad), 2 * first, rel_tol=1e-6)

# %% [markdown]
# **What the graph keeps, and what it lets go.** The naive `Scalar` of section 2 linked each
# node to its parent *values*, so every intermediate result stayed in memory until the whole
# graph was gone. tinymm's Functions link to their parents' *Functions* instead, and keep only
# what their own backward needs. An intermediate array that no backward needs is freed as
# soon as your code drops its tensor, long before `backward()`. In a convolutional network
# that is tens of megabytes per step (see `benchmarks/README.md`). Below, `h` is such an array:
# `Add` needs nothing to pass a gradient back (its local derivatives are 1), and `Sum` keeps
# only the shape. A weak reference tells us when the array has gone, without keeping it
# alive. (The demo uses the CPU, where Python frees an array the moment nobody holds it.)

# %%
x = tm.tensor(np.ones(1_000_000), requires_grad=True, device="cpu")
h = x + 1.0                 # an 8 MB intermediate array
total = h.sum()
probe = weakref.ref(h.data)
del h                       # our only handle on it
gc.collect()
print("h's array still in memory before backward:", probe() is not None)
total.backward()            # the graph did not need it
assert probe() is None and np.all(x.grad == 1.0)

# %% [markdown]
# ## 7. `no_grad`: when you do not want a graph
#
# Recording a graph costs memory and time. Evaluating a model on test data, updating weights
# in an optimiser, computing an accuracy: none of these will be differentiated, so they run
# inside `with tm.no_grad():`, where ops record nothing. `x.detach()` does the same for one
# tensor: same values, cut from the graph.

# %%
w = tm.tensor([0.0], requires_grad=True)
with tm.no_grad():
    untracked = w * 2.0 + 1.0
tracked = w * 2.0 + 1.0
print("inside no_grad:", untracked.requires_grad, untracked.grad_fn,
      "| outside:", tracked.requires_grad, tracked.grad_fn)
assert untracked.grad_fn is None and not untracked.requires_grad
assert tracked.grad_fn is not None and w.detach().grad_fn is None

# gradient descent on (w - 3)^2: the forward pass records, the update does not
for step in range(pick(50, 20)):
    loss = ((w - 3.0) ** 2).sum()
    w.zero_grad()
    loss.backward()
    with tm.no_grad():
        w.data -= 0.1 * w.grad  # the update itself must not become part of any graph
print(f"after gradient descent w = {w.item():.4f} (the minimum is at 3)")
assert abs(w.item() - 3.0) < 0.05

# %% [markdown]
# ## Recap
#
# - A formula is a graph of small operations. The chain rule, applied from the output back,
#   gives the derivative of the output with respect to every node, each from a *local*
#   derivative times the gradient of the node after it.
# - A node used more than once receives the **sum** of the gradients of its uses.
# - tinymm: a `Tensor` holds `data`, `grad`, `requires_grad` and `grad_fn`; a `Function` has
#   `forward` and `backward` side by side; `Function.apply` records the graph, whose nodes are
#   Functions and leaves. A Function keeps only what its backward needs, so intermediate
#   arrays nobody needs are freed early.
# - `backward()` lists the graph in topological order with an explicit stack (no recursion
#   limit), walks it in reverse, and accumulates into the leaves' `.grad`; it frees saved
#   arrays unless `retain_graph=True`. Clear gradients between steps with `zero_grad()`.
# - `tm.no_grad()` switches recording off for evaluation and updates.
#
# ## Exercises
#
# 1. **Tanh.** Add a `Tanh` Function next to `Sin` and check it on a few points against
#    $1 - \tanh^2 x$. *Hint:* save the *output* in forward; the derivative is a function of it,
#    so nothing has to be recomputed (look at how `Exp` does it in `tinymm/functional/basic.py`).
# 2. **Make the naive engine iterative.** Rewrite `Scalar.backward` without recursion so that
#    the 2000-deep chain works. *Hint:* `topological_order` in `tinymm/autograd.py` pushes each
#    node twice onto a list used as a stack, the second time with a flag meaning "its parents are
#    done".
# 3. **Break the accumulation.** In a copy of `every_gradient`, replace `grads.get(...) + g` by
#    `g`. Which gradients in the figure change, and which stay right? *Hint:* only nodes with
#    more than one outgoing arrow can be affected.
#
# **Coded exercise**, graded by tinymm: write the backward walk of the naive engine yourself in
# [`exercises/02_backward_walk.py`](exercises/02_backward_walk.py), then `python -m tinymm check backward_walk`.
