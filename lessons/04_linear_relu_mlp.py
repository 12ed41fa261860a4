# %% [markdown]
# # Lesson 04 — Linear layers, ReLU, and a first neural network
#
# **What you will build.** The two pieces every network in this course is made of: the *linear
# layer* `y = x Wᵀ + b` and the *ReLU* `max(0, x)`. You derive their backward passes by
# hand, see where broadcasting hides a sum, write gradient descent yourself, and then train
# a small multi-layer perceptron (MLP) that untangles two interleaved spirals. On the way
# you meet `tinymm.nn` (layers that own their weights) and `tinymm.optim` (the update rules).
#
# **Why.** The encoders and decoders of the later lessons are built mostly from these two
# layers (convolution, in lesson 06, turns out to be a matrix product too). If you can derive
# the gradient of `x Wᵀ + b`, you can derive most of the rest.
#
# **Needs.** Lesson 02 (the autograd engine: a `Function` has a `forward` and a `backward`;
# `loss.backward()` applies the chain rule op by op) and lesson 03 (gradient checking
# with central differences and the relative error).
#
# Run it as a script (`python lessons/04_linear_relu_mlp.py`) or open it as a notebook.

# %%
import time

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
import tinymm.functional as F
from tinymm import backend, nn, optim
from tinymm.functional import unbroadcast
from tinymm.gradcheck import gradcheck
from tinymm.plots import fast_mode, pick, save_figure

lesson_start = time.time()
print("fast mode" if fast_mode() else "full mode", "| device:", tm.get_default_device())

# %% [markdown]
# ## 1. The linear layer, forward
#
# A batch of N inputs, each a row of `in` numbers, is the matrix X of shape (N, in). The layer
# has a weight W of shape (out, in) and a bias b of shape (out,). Every output unit j
# takes a weighted sum of the inputs and adds its bias:
#
#     Y[i, j] = Σ_k X[i, k] · W[j, k] + b[j]        that is      Y = X Wᵀ + b,   Y is (N, out)
#
# (W is stored as (out, in), as in PyTorch, so row j of W holds the weights of output j.)
#
# Written out for N = 2 inputs, in = 3 and out = 2:
#
# $$
# Y = \begin{pmatrix} x_{11} & x_{12} & x_{13} \\ x_{21} & x_{22} & x_{23} \end{pmatrix}
#     \begin{pmatrix} w_{11} & w_{21} \\ w_{12} & w_{22} \\ w_{13} & w_{23} \end{pmatrix}
#   + \begin{pmatrix} b_1 & b_2 \\ b_1 & b_2 \end{pmatrix}
#   = \begin{pmatrix}
#       x_{11}w_{11} + x_{12}w_{12} + x_{13}w_{13} + b_1 & x_{11}w_{21} + x_{12}w_{22} + x_{13}w_{23} + b_2 \\
#       x_{21}w_{11} + x_{22}w_{12} + x_{23}w_{13} + b_1 & x_{21}w_{21} + x_{22}w_{22} + x_{23}w_{23} + b_2
#     \end{pmatrix}
# $$
#
# Notice the bias: b is one row, but it is added to *both* rows of X Wᵀ. Remember that for
# section 3.

# %% [markdown]
# ## 2. The linear layer, backward
#
# Backward receives G = ∂L/∂Y, of shape (N, out): how much the loss L changes when each
# output changes. It must return ∂L/∂X, ∂L/∂W and ∂L/∂b. The chain rule says: add up, over
# every output that an input touches, "upstream gradient × local derivative".
#
# **Input.** x₁₂ appears in y₁₁ (times w₁₂) and in y₁₂ (times w₂₂), so
#
#     ∂L/∂x₁₂ = g₁₁·w₁₂ + g₁₂·w₂₂ = (row 1 of G) · (column 2 of W)   →   dX = G W      (N, out)(out, in) = (N, in)
#
# **Weight.** w₁₂ multiplies x₁₂ in y₁₁ and x₂₂ in y₂₁, so
#
#     ∂L/∂w₁₂ = g₁₁·x₁₂ + g₂₁·x₂₂ = (column 1 of G) · (column 2 of X)   →   dW = Gᵀ X     (out, N)(N, in) = (out, in)
#
# **Bias.** b₁ is added to y₁₁ and y₂₁ with derivative 1, so
#
#     ∂L/∂b₁ = g₁₁ + g₂₁   →   db = G summed over the rows (the batch axis)     (out,)
#
# A quick check that needs no algebra: each gradient has the shape of the thing it is the
# gradient of. (N, out) and (out, in) can only combine into (N, in) as G W, and into
# (out, in) as Gᵀ X.
#
# The library implements this as `F.linear` in **`tinymm/functional/linear.py`**; open it and
# you will find these three lines in its `backward`. Let us compare them with autograd on
# random numbers.

# %%
rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3))
W = rng.standard_normal((2, 3))
b = rng.standard_normal(2)
G = rng.standard_normal((2, 2))            # some upstream gradient dL/dY

x_t = tm.tensor(X, requires_grad=True)     # float64 arrays stay float64
w_t = tm.tensor(W, requires_grad=True)
b_t = tm.tensor(b, requires_grad=True)
y_t = F.linear(x_t, w_t, b_t)
y_t.backward(G)

dX, dW, db = G @ W, G.T @ X, G.sum(axis=0)  # the formulas derived above
grads = [backend.to_numpy(t.grad) for t in (x_t, w_t, b_t)]  # (copied off the GPU if needed)
print("Y =\n", y_t.numpy())
print("dX by hand =\n", dX, "\nautograd =\n", grads[0])
assert np.allclose(y_t.numpy(), X @ W.T + b)
assert np.allclose(grads[0], dX) and np.allclose(grads[1], dW) and np.allclose(grads[2], db)

# %% [markdown]
# And the honest test from lesson 03: a gradient check in float64 with a random upstream
# projection, for the input, the weight and the bias together.

# %%
report = gradcheck(F.linear, [tm.tensor(rng.standard_normal((4, 3)), requires_grad=True),
                              tm.tensor(rng.standard_normal((5, 3)), requires_grad=True),
                              tm.tensor(rng.standard_normal(5), requires_grad=True)], name="linear")
print(report)
assert report.max_rel_error < 1e-6  # float64 rounding alone gives ~1e-8 here; a wrong formula gives ~1

# %% [markdown]
# ## 3. Broadcasting, and why the bias gradient is a sum
#
# `X @ W.T + b` adds a (2,)-shaped b to a (N, 2)-shaped matrix. NumPy *broadcasts*: it
# behaves as if b had been copied into every row. Each copy feeds the loss separately, so
# the gradient of the one real b is the **sum** of the gradients of its copies — that is
# the `G.sum(axis=0)` above.
#
# The same happens with any broadcast: a (N, 1) column added to a (N, D) matrix is copied
# along axis 1, so its gradient is the sum over axis 1 (keeping the axis of size 1). In tinymm
# one helper undoes every broadcast, `unbroadcast(grad, shape)` in
# **`tinymm/functional/basic.py`**: it sums over the leading axes that broadcasting added,
# then over every axis where the input had size 1. Every elementwise backward (add, sub,
# mul, div) ends with it.

# %%
print("unbroadcast(G, (2,))   =", unbroadcast(G, (2,)), " = G.sum(axis=0) =", G.sum(axis=0))
print("unbroadcast(G, (2, 1)) =", unbroadcast(G, (2, 1)).ravel(), " = G.sum(axis=1) =", G.sum(axis=1))
print("unbroadcast(G, (1, 2)) has shape", unbroadcast(G, (1, 2)).shape)
assert np.allclose(unbroadcast(G, (2,)), G.sum(axis=0))
assert np.allclose(unbroadcast(G, (2, 1)), G.sum(axis=1, keepdims=True))

# %% [markdown]
# So a linear layer could also be written with the basic ops of lesson 02: a matmul, a
# transpose, and an add whose backward calls `unbroadcast`. The gradients are the same;
# `F.linear` is one Function instead of three, with one short backward you can read.

# %%
x2, w2, b2 = (tm.tensor(a, requires_grad=True) for a in (X, W, b))
(x2 @ w2.T + b2).backward(G)
for mine, reference in zip((x2, w2, b2), grads):
    assert np.allclose(backend.to_numpy(mine.grad), reference)
print("x @ W.T + b from basic ops gives the same three gradients as F.linear")

# %% [markdown]
# ## 4. ReLU: the non-linearity
#
#     relu(x) = max(0, x)        d relu / dx = 1 where x > 0, 0 where x < 0
#
# Each output depends only on the input at the same position, so the Jacobian is diagonal,
# diag(1[x > 0]), and multiplying G by it is just a mask:
#
#     dX = G ⊙ 1[X > 0]          (⊙: elementwise product; the gradient passes where the unit was "on")
#
# At exactly x = 0 the function has a kink: the slope is 0 on the left and 1 on the right.
# tinymm, like PyTorch, uses 0 there. ReLU lives in **`tinymm/functional/activation.py`**.
#
# The kink is why gradient checks keep ReLU inputs away from 0. A central difference at
# 0 measures (relu(ε) − relu(−ε)) / 2ε = 0.5, which is neither slope:

# %%
away = tm.tensor(np.array([[-1.5, -0.3, 0.2, 2.0]]), requires_grad=True)
print(gradcheck(F.relu, [away], name="relu away from 0"))
at_kink = tm.tensor(np.array([[-1.5, 0.0, 0.2, 2.0]]), requires_grad=True)
kink_report = gradcheck(F.relu, [at_kink], name="relu at 0", raise_on_failure=False)
print(kink_report)
assert kink_report.max_rel_error > 0.1  # the check "fails" at the kink, as it should

# %% [markdown]
# Why do we need it at all? Two linear layers in a row are one linear layer:
# (x W₁ᵀ + b₁) W₂ᵀ + b₂ = x (W₂W₁)ᵀ + (b₁W₂ᵀ + b₂). However many you stack, the model can
# only draw straight lines through the data. A ReLU between them bends the line: each
# hidden unit switches on in one half-plane, and the sum of many such pieces can follow
# any curve. Section 6 shows both.

# %% [markdown]
# ## 5. Gradient descent, by hand and with `optim.SGD`
#
# Training means: compute the loss, get its gradient with `backward()`, and move every
# parameter a little downhill,
#
#     θ ← θ − lr · ∂L/∂θ
#
# Gradients *accumulate* (`+=`) in `.grad` — that is what makes a tensor used twice get the
# sum of both contributions (lesson 02) — so they must be cleared before each backward.
#
# Let us fit a line y = 2x − 1 with one `nn.Linear(1, 1)`, writing the update ourselves.
# The layer lives in **`tinymm/nn/layers.py`**: it owns a `weight` and a `bias` (both
# `nn.Parameter`s, tensors with `requires_grad=True`) and calls `F.linear`.

# %%
x_line = tm.tensor(np.linspace(-1, 1, 20, dtype=np.float32)[:, None])
y_line = tm.tensor(2 * x_line.numpy() - 1)

tm.manual_seed(0)
by_hand = nn.Linear(1, 1)
tm.manual_seed(0)
with_sgd = nn.Linear(1, 1)                 # the same seed gives the same starting weights
print(by_hand, "starts at w =", by_hand.weight.item(), "b =", by_hand.bias.item())

lr = 0.5
for step in range(50):
    loss = ((by_hand(x_line) - y_line) ** 2).mean()
    for p in by_hand.parameters():
        p.grad = None                      # clear the old gradients
    loss.backward()
    for p in by_hand.parameters():
        p.data -= lr * p.grad              # plain array arithmetic: no graph is recorded
print(f"by hand:  w = {by_hand.weight.item():.4f}, b = {by_hand.bias.item():.4f}, loss = {loss.item():.2e}")
assert abs(by_hand.weight.item() - 2) < 0.01 and abs(by_hand.bias.item() + 1) < 0.01

# %% [markdown]
# `tinymm.optim` packages the same loop. `optim.SGD(params, lr)` does exactly the update
# above in `step()`, and `zero_grad()` clears the gradients. It also offers momentum (keep
# a running sum of past gradients, so steps build up speed along a consistent direction)
# and weight decay; `Adam` and `AdamW` give each parameter its own step size. All of them
# are in **`tinymm/optim.py`**, a few lines each.

# %%
opt = optim.SGD(with_sgd.parameters(), lr=lr)
for step in range(50):
    loss = ((with_sgd(x_line) - y_line) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"optim.SGD: w = {with_sgd.weight.item():.4f}, b = {with_sgd.bias.item():.4f}")
assert np.array_equal(with_sgd.weight.numpy(), by_hand.weight.numpy())
assert np.array_equal(with_sgd.bias.numpy(), by_hand.bias.numpy())
print("identical to the hand-written loop, bit for bit")

# %% [markdown]
# ## 6. An MLP on two spirals
#
# Now a problem no straight line can solve: two spirals wound into each other, one per
# class. The data is generated with NumPy: a point at angle t sits at radius ∝ t, and the
# second spiral is the first turned by 180°.

# %%
def two_spirals(n_per_class, turns=1.5, noise=0.02, seed=0):
    """Points (2·n, 2) and labels (2·n,) in {0, 1}: two interleaved spirals."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0, 1, n_per_class)) * turns * 2 * np.pi  # sqrt: even density along the arm
    radius = t / (turns * 2 * np.pi)
    points, labels = [], []
    for label in (0, 1):
        angle = t + label * np.pi
        xy = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        points.append(xy + noise * rng.standard_normal(xy.shape))
        labels.append(np.full(n_per_class, label))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels)


n_per_class = pick(200, 150)
points, labels = two_spirals(n_per_class)
print("data:", points.shape, "labels:", np.bincount(labels))

# %% [markdown]
# **The model.** Two hidden layers of 64 ReLU units and one output number z per point:
# z > 0 means class 1. Printing a Module shows its layers.
#
# **The loss.** With labels written as y = ±1, the *logistic loss* is
#
#     L = mean over points of log(1 + e^(−y·z))
#
# It is near 0 when z has the right sign with a margin, and grows linearly when z is
# confidently wrong. It is built from ops we already have (multiply, exp, log, mean), so
# autograd differentiates it with no new code: dL/dz = −y · σ(−y z) / N. Lesson 05 replaces
# it by the softmax cross-entropy, which handles any number of classes.
#
# **Training.** Full batch (all 400 points in every step), SGD with learning rate 0.1 and
# momentum 0.9.

# %%
def make_mlp(hidden=64, nonlinear=True):
    act = nn.ReLU if nonlinear else None
    layers = [nn.Linear(2, hidden), act() if act else None,
              nn.Linear(hidden, hidden), act() if act else None,
              nn.Linear(hidden, 1)]
    return nn.Sequential(*[layer for layer in layers if layer is not None])


def logistic_loss(z, y_pm):
    return (1 + (-y_pm * z).exp()).log().mean()


def accuracy(model, x, labels):
    with tm.no_grad():
        z = model(x).numpy().ravel()
    return float(((z > 0) == (labels == 1)).mean())


def train(model, steps, lr=0.1, momentum=0.9):
    x, y_pm = tm.tensor(points), tm.tensor((2 * labels - 1).astype(np.float32)[:, None])
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses, accuracies = [], []
    for step in range(steps):
        z = model(x)
        loss = logistic_loss(z, y_pm)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accuracies.append(float(((z.numpy().ravel() > 0) == (labels == 1)).mean()))
    return losses, accuracies


tm.manual_seed(0)
mlp = make_mlp()
print(mlp)
print("parameters:", mlp.num_parameters(), "| names:", [name for name, _ in mlp.named_parameters()])

steps = pick(3000, 300)
start = time.time()
losses, accuracies = train(mlp, steps)
train_seconds = time.time() - start
final_acc = accuracy(mlp, tm.tensor(points), labels)
first_98 = next((step for step, acc in enumerate(accuracies) if acc >= 0.98), None)
print(f"MLP with ReLU: {steps} steps in {train_seconds:.1f} s, loss {losses[-1]:.4f}, "
      f"train accuracy {final_acc:.4f} (first reached 98% at step {first_98})")
assert final_acc >= pick(0.98, 0.85)
if not fast_mode():
    assert first_98 is not None and first_98 < 500

# %% [markdown]
# For comparison, the same network with the ReLUs taken out. It is a linear model in
# disguise, so the best it can do is one straight cut through the spirals.

# %%
tm.manual_seed(0)
linear_only = make_mlp(nonlinear=False)
linear_losses, linear_accuracies = train(linear_only, pick(500, 100))
linear_acc = accuracy(linear_only, tm.tensor(points), labels)
print(f"without ReLU: train accuracy {linear_acc:.4f}")
assert linear_acc < 0.75
assert final_acc - linear_acc > pick(0.25, 0.1)

# %% [markdown]
# **The pictures.** The decision boundary is where z = 0. We evaluate both models on a grid
# of points (under `tm.no_grad()`, since no gradient is needed) and colour each grid point
# by σ(z), the model's probability of class 1.

# %%
def plot_boundary(ax, model, title):
    lim = 1.15
    grid = np.linspace(-lim, lim, 250, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    with tm.no_grad():
        z = model(tm.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1))).numpy().reshape(gx.shape)
    prob = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
    ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    ax.contour(gx, gy, z, levels=[0], colors="k", linewidths=1.2)
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        pts = points[labels == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=9, c=colour, edgecolors="white", linewidths=0.3,
                   label=f"class {label}")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


fig, axes = plt.subplots(1, 2, figsize=(10, 5))
plot_boundary(axes[0], linear_only, f"Linear layers only: {linear_acc:.0%} train accuracy")
plot_boundary(axes[1], mlp, f"MLP with ReLU: {final_acc:.1%} train accuracy")
axes[1].legend(loc="lower right", fontsize=8)
fig.suptitle("Two spirals: decision boundary (black line, z = 0) and σ(z)")
save_figure(fig, "04_decision_boundary.png")

fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
ax_loss.semilogy(losses, label="MLP with ReLU")
ax_loss.semilogy(linear_losses, label="linear layers only")
ax_loss.set_xlabel("step")
ax_loss.set_ylabel("logistic loss (log scale)")
ax_loss.legend()
ax_acc.plot(accuracies, label="MLP with ReLU")
ax_acc.plot(linear_accuracies, label="linear layers only")
ax_acc.axhline(0.98, color="gray", linestyle=":", linewidth=1)
ax_acc.set_xlabel("step")
ax_acc.set_ylabel("train accuracy")
ax_acc.set_ylim(0.4, 1.01)
ax_acc.legend(loc="lower right")
fig.suptitle("Training on two spirals with SGD (momentum 0.9, lr 0.1, full batch)")
save_figure(fig, "04_loss_curve.png")

# %% [markdown]
# ## 7. Keeping what was learned
#
# A trained network is just its parameters. `state_dict()` lists them by name as NumPy
# arrays; `tm.save` writes such a dict to one `.npz` file (in **`tinymm/serialization.py`**:
# written to a temporary file and then renamed, so a crash never leaves half a checkpoint),
# and `load_state_dict` copies the values back into a freshly built model of the same shape.

# %%
import tempfile
from pathlib import Path

from tinymm.serialization import load, save

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "spirals_mlp.npz"
    save({"model": mlp.state_dict(), "steps": steps}, path)
    checkpoint = load(path)
print("saved:", {name: array.shape for name, array in checkpoint["model"].items()})

tm.manual_seed(123)
restored = make_mlp()                      # different random weights...
restored.load_state_dict(checkpoint["model"])  # ...replaced by the trained ones
with tm.no_grad():
    same = np.array_equal(restored(tm.tensor(points)).numpy(), mlp(tm.tensor(points)).numpy())
print("restored model gives identical outputs:", same)
assert same and accuracy(restored, tm.tensor(points), labels) == final_acc

# %% [markdown]
# In a full run (400 points, 3000 steps, a few seconds on a laptop CPU) the MLP reaches
# **100% train accuracy** with a loss around 0.002; it first passes 98% after about 400
# steps. The same layers without ReLU stop at **70%**, the best a single straight cut can
# do. The boundary figure shows the MLP's line winding between the two arms.
#
# (This is train accuracy only: with no held-out points it measures whether the network
# *can* represent the spirals, not whether it generalises. Later lessons report held-out
# numbers.)
#
# ## Recap
#
# - A linear layer computes Y = X Wᵀ + b. Its backward is three matrix expressions:
#   dX = G W, dW = Gᵀ X, db = G summed over the batch. Shapes alone almost force them.
# - Broadcasting copies; its backward sums. `unbroadcast` in `tinymm/functional/basic.py`
#   is the one place that does it.
# - ReLU's backward is a mask, dX = G ⊙ 1[X > 0]. Gradient checks keep away from its kink.
# - Without a non-linearity, a stack of linear layers is one linear layer.
# - Gradient descent is `p.data -= lr * p.grad` after clearing and recomputing gradients;
#   `optim.SGD` does the same, bit for bit, and adds momentum and weight decay.
# - `nn.Module` keeps the bookkeeping: named parameters, `state_dict` / `load_state_dict`,
#   `train()` / `eval()`, `to(device)`. Layers own weights; the ops own the gradients.
#
# ## Exercises
#
# 1. **Tanh instead of ReLU.** Build the MLP with `nn.Tanh()` and train it the same way. How
#    many steps until it passes 98%? How does the boundary look? *Hint: tanh is smooth, so
#    its boundary has no corners; its gradient 1 − tanh² shrinks for large inputs.*
# 2. **Derive a variant.** For y = x W with W stored as (in, out) — no transpose — derive
#    dX and dW, write a small `Function` for it, and gradcheck it in float64. *Hint: start
#    from y[i, j] = Σ_k x[i, k] W[k, j] and check the shapes of your answer.*
# 3. **Momentum by hand.** Extend the hand-written loop of section 5 with a velocity
#    v ← μ·v + g, p ← p − lr·v, and show it matches `optim.SGD(..., momentum=μ)` exactly.
#    *Hint: keep one velocity array per parameter (a list next to `parameters()`), starting
#    at zeros of its shape; build both models from the same seed. `SGD.step` in
#    `tinymm/optim.py` starts v at a copy of the first g instead, which is the same thing here
#    (μ·0 + g = g). For equal bits, compute in its order: μ·v, then + g, then p − lr·v.*
#
# **Coded exercises**, graded by tinymm (`python -m tinymm check 04`): [`exercises/04_linear.py`](exercises/04_linear.py),
# [`exercises/04_relu.py`](exercises/04_relu.py) and [`exercises/04_broadcasting.py`](exercises/04_broadcasting.py).

# %%
print(f"lesson 04 finished in {time.time() - lesson_start:.1f} s")
