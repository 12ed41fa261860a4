# %% [markdown]
# # Lesson 09 — L2 normalisation and cosine similarity
#
# **What you will build.** The last layer of both CLIP encoders: L2 normalisation, which
# scales every embedding to length 1. You will derive its backward pass and see what it
# means geometrically (the gradient is *projected onto the plane tangent to the sphere*),
# check it, including for tiny and zero vectors, and then use it to compute a whole matrix
# of cosine similarities with one matrix product.
#
# **Why.** CLIP scores an image against a caption by the cosine of the angle between their
# embeddings. Cosines ignore length, so the model cannot make a pair look better by
# inflating a vector; every score lies in [−1, 1], so the logits exp(s)·cos of lesson 11
# stay bounded. Once both embeddings have length 1, the cosine is a plain dot product, and a
# batch of B images against B captions is one (B, D) @ (D, B) product.
#
# **Needs.** Lesson 02 (Functions and backward), lesson 03 (gradient checks, and the trap of
# checking by summing an output), lesson 05 is useful but not required.
#
# Run it as a script (`python lessons/09_l2_norm_and_cosine.py`) or open it as a notebook.

# %%
import time

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.gradcheck import gradcheck
from tinymm.plots import fast_mode, pick, save_figure

lesson_start = time.time()
print("fast mode" if fast_mode() else "full mode", "| device:", tm.get_default_device())


def grad_of(t):
    """A tensor's gradient as a NumPy array (copied off the GPU when there is one)."""
    return backend.to_numpy(t.grad)


# %% [markdown]
# ## 1. Cosine similarity is a dot product of unit vectors
#
# The cosine of the angle between two vectors a and b is
#
# $$\cos(a, b) = \frac{a \cdot b}{\lVert a\rVert\,\lVert b\rVert}
#   = \frac{a}{\lVert a\rVert} \cdot \frac{b}{\lVert b\rVert},
#   \qquad \lVert a\rVert = \sqrt{\textstyle\sum_i a_i^2}.$$
#
# So normalise first, and the cosine is a dot product. **L2 normalisation** is
#
# $$y = \frac{x}{\max(\lVert x\rVert, \varepsilon)}$$
#
# along the last axis, with a tiny ε (1e-12) so that the zero vector gives 0 instead of 0/0.
# It lives in **`tinymm/functional/normalize.py`** as `F.l2_normalize`.

# %%
a = tm.tensor(np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]]))
y = F.l2_normalize(a)
print("x =", a.numpy().tolist())
print("y =", y.numpy().tolist(), "  lengths:", np.linalg.norm(y.numpy(), axis=1).tolist())
assert np.allclose(y.numpy(), [[0.6, 0.8], [1.0, 0.0], [0.0, 0.0]])
cos = (y[0] * y[1]).sum().item()
print(f"cos(x0, x1) = {cos:.2f} = 3 / (5 · 1)")
assert abs(cos - 0.6) < 1e-12

# %% [markdown]
# ## 2. The backward pass, derived
#
# Write r = ‖x‖ (assume r > ε for now), so y_i = x_i / r. The derivative of the norm is
# ∂r/∂x_k = x_k / r = y_k. With the quotient rule,
#
# $$\frac{\partial y_i}{\partial x_k} = \frac{\delta_{ik}}{r} - \frac{x_i}{r^2}\,y_k
#   = \frac{\delta_{ik} - y_i y_k}{r}, \qquad\text{so}\qquad J = \frac{I - y y^\top}{r}.$$
#
# J is symmetric, so the backward (the vector–Jacobian product with the upstream g) is
#
# $$\frac{\partial L}{\partial x} = J^\top g = \frac{g - y\,(y \cdot g)}{\lVert x\rVert}.$$
#
# **What it means.** $(y\cdot g)\,y$ is the part of g that points along y (radially, away
# from the origin). $g - y(y\cdot g)$ removes it: what is left lies in the plane
# perpendicular to y, the plane that touches the unit sphere at y. $I - yy^\top$ is the
# *projection* onto that tangent plane. Two facts follow:
#
# - **the gradient is perpendicular to x.** Stretching x along itself does not change y at
#   all, so the loss cannot care about that direction: J x = 0.
# - **it is divided by ‖x‖.** Turning a long vector by a given angle needs a bigger push
#   than turning a short one, so the same change of y costs a longer x more.
#
# When ‖x‖ ≤ ε the function is the linear map x/ε, and its backward is simply g/ε: large,
# but finite even for the zero vector.
#
# Three checks, as in lesson 05: the formula, autograd through the same function written with
# basic ops (x / √(Σ x²)), and a gradient check in float64.

# %%
rng = np.random.default_rng(1)
x_np, g_np = 2.5 * rng.standard_normal((4, 3)), rng.standard_normal((4, 3))

x_lib = tm.tensor(x_np, requires_grad=True)
F.l2_normalize(x_lib).backward(g_np)

norm = np.linalg.norm(x_np, axis=1, keepdims=True)
y_np = x_np / norm
formula = (g_np - y_np * (y_np * g_np).sum(axis=1, keepdims=True)) / norm
print("max |library − formula|        =", f"{np.abs(grad_of(x_lib) - formula).max():.1e}")
assert np.allclose(grad_of(x_lib), formula, rtol=1e-12, atol=1e-15)

x_ops = tm.tensor(x_np, requires_grad=True)
(x_ops / (x_ops * x_ops).sum(axis=1, keepdims=True) ** 0.5).backward(g_np)
print("max |library − autograd of ops| =", f"{np.abs(grad_of(x_lib) - grad_of(x_ops)).max():.1e}")
assert np.allclose(grad_of(x_lib), grad_of(x_ops), rtol=1e-12, atol=1e-15)

perpendicular = np.abs((grad_of(x_lib) * x_np).sum(axis=1)).max()
print(f"largest |dx · x| over the rows: {perpendicular:.1e}  (the gradient is perpendicular to x)")
assert perpendicular < 1e-14

report = gradcheck(F.l2_normalize, [tm.tensor(x_np, requires_grad=True)], name="l2_normalize")
print(report)
assert report.max_rel_error < 1e-7

# %% [markdown]
# **The trap of lesson 03, again.** Every output row has length 1 whatever x is, so a
# "gradient check" of Σ‖y‖² compares two zeros and passes even for a backward that returns
# garbage. Autograd confirms that the true gradient of that sum is 0; `gradcheck` avoids the
# trap by projecting the output onto a random upstream gradient.

# %%
x_trap = tm.tensor(x_np, requires_grad=True)
y_trap = F.l2_normalize(x_trap)
(y_trap * y_trap).sum().backward()
print(f"d Σ‖y‖² / dx: largest entry {np.abs(grad_of(x_trap)).max():.1e}")
assert np.abs(grad_of(x_trap)).max() < 1e-14

# %% [markdown]
# ## 3. A picture of the projection, and how the gradient grows near zero
#
# On the left, one short 2-D vector x (length 0.5), its normalised y on the unit circle, an
# upstream gradient g drawn at y, and its two parts: radial (discarded) and tangent (kept).
# The gradient with respect to x is the tangent part divided by ‖x‖ = 0.5, so twice as
# long, drawn at x: it is perpendicular to x.
#
# On the right, the size of the gradient as x shrinks towards 0 (same direction, same g):
# it grows like 1/‖x‖, until ‖x‖ reaches ε = 1e-12. Below that the clamp takes over and the
# gradient is g/ε: the largest it can ever be, and finite.

# %%
x2 = np.array([0.3, 0.4])                # a short vector: ‖x‖ = 0.5
g2 = np.array([0.55, 0.1])               # some upstream gradient at y
xt = tm.tensor(x2, requires_grad=True)
y2 = F.l2_normalize(xt)
y2.backward(g2)
y2 = y2.numpy()
radial = (y2 @ g2) * y2
tangent = g2 - radial
dx2 = grad_of(xt)
assert np.allclose(dx2, tangent / 0.5) and abs(dx2 @ x2) < 1e-15

radii = np.logspace(-16, 2, pick(73, 19))
u, g3 = np.array([0.6, 0.8, 0.0]), np.array([0.5, -1.0, 2.0])
rows = tm.tensor(radii[:, None] * u, requires_grad=True)   # the same direction at every length
F.l2_normalize(rows).backward(np.tile(g3, (len(radii), 1)))
grad_norms = np.linalg.norm(grad_of(rows), axis=1)
g3_tangent = np.linalg.norm(g3 - (u @ g3) * u)
above = radii > 1e-12
assert np.allclose(grad_norms[above], g3_tangent / radii[above], rtol=1e-9)       # ∝ 1/‖x‖
assert np.allclose(grad_norms[~above], np.linalg.norm(g3) / 1e-12, rtol=1e-12)    # g/ε, finite
slope = np.polyfit(np.log10(radii[above]), np.log10(grad_norms[above]), 1)[0]
print(f"log-log slope of |dx| against |x| above eps: {slope:.3f}")
assert abs(slope + 1) < 1e-6

# %%
fig, (ax, ax_r) = plt.subplots(1, 2, figsize=(12.5, 5.2), gridspec_kw={"width_ratios": [1.15, 1]})
circle = np.linspace(0, 2 * np.pi, 200)
ax.plot(np.cos(circle), np.sin(circle), color="0.75", lw=1)
along_tangent = np.array([-y2[1], y2[0]])
ax.plot(*np.stack([y2 - 1.2 * along_tangent, y2 + 1.2 * along_tangent]).T, ":", color="0.5", lw=1)
arrow = dict(angles="xy", scale_units="xy", scale=1)
ax.quiver(0, 0, *y2, color="tab:purple", width=0.012, **arrow)
ax.quiver(0, 0, *x2, color="black", width=0.006, **arrow)
ax.quiver(*y2, *g2, color="0.45", width=0.007, **arrow)
ax.quiver(*y2, *radial, color="tab:red", width=0.007, **arrow)
ax.quiver(*y2, *tangent, color="tab:blue", width=0.007, **arrow)
ax.quiver(*x2, *dx2, color="tab:green", width=0.007, **arrow)
ax.plot(*np.stack([y2 + radial, y2 + g2, y2 + tangent]).T, "--", color="0.6", lw=0.8)
labels = [((-0.62, 0.32), "x  (‖x‖ = 0.5)", "black"), ((-0.2, 0.68), "y = x / ‖x‖", "tab:purple"),
          (y2 + g2 + [0.05, 0.0], "g (upstream)", "0.35"),
          (y2 + radial + [-0.35, 0.1], "radial part (y·g) y: removed", "tab:red"),
          (y2 + tangent + [0.06, -0.08], "tangent part g − y(y·g)", "tab:blue"),
          (x2 + dx2 + [0.05, -0.17], "dx = tangent / ‖x‖\n(twice as long: ‖x‖ = 0.5)", "tab:green")]
for (px, py), text, colour in labels:
    ax.text(px, py, text, color=colour, fontsize=9)
ax.text(-0.95, -0.45, "unit circle", color="0.55", fontsize=9)
ax.text(-0.45, 1.45, "tangent line at y", color="0.45", fontsize=9)
ax.set_aspect("equal")
ax.set_xlim(-1.1, 2.3)
ax.set_ylim(-1.1, 1.7)
ax.grid(alpha=0.2)
ax.set_title("Backward of y = x/‖x‖: the tangent part of g, over ‖x‖", fontsize=11)

ax_r.loglog(radii, grad_norms, "o-", ms=3, color="tab:green", label="|dx| from F.l2_normalize")
ax_r.loglog(radii[above], g3_tangent / radii[above], "k:", lw=1, label="|tangent part of g| / ‖x‖")
ax_r.axvline(1e-12, color="tab:red", lw=1, ls="--")
ax_r.text(3e-12, 1e-1, "ε = 1e-12: below it y = x/ε,\nso dx = g/ε (finite)", color="tab:red", fontsize=9)
ax_r.set_xlabel("‖x‖")
ax_r.set_ylabel("‖dx‖")
ax_r.set_title("‖dx‖ grows like 1/‖x‖ (slope −1), capped at ‖g‖/ε", fontsize=11)
ax_r.legend(fontsize=8, loc="upper right")
ax_r.grid(alpha=0.3, which="major")
save_figure(fig, "09_tangent_projection.png")

# %% [markdown]
# ## 4. Checking near zero
#
# A vector of length 1e-3 is still normalised normally (1e-3 ≫ ε), and its gradient is about
# 1,000 times larger than for a unit vector. It still passes a gradient check, with one
# condition: the finite-difference step must be small **compared with the vector**. With the
# usual step of 1e-6, a nudge moves the direction of a 1e-3 vector by a thousandth of a
# radian, and the central difference picks up an error of order (step/‖x‖)² ≈ 1e-6.
# A step of 1e-9 is back to the normal situation.

# %%
tiny = 1e-3 * np.array([[0.6, -0.8, 0.0], [0.3, 0.4, -0.5]])   # lengths 1e-3 and 7e-4
step_errors = {}
for step in (1e-6, 1e-7, 1e-8, 1e-9):
    r = gradcheck(F.l2_normalize, [tm.tensor(tiny, requires_grad=True)], eps=step, raise_on_failure=False)
    step_errors[step] = r.max_rel_error
    print(f"norm ~1e-3, finite-difference step {step:.0e}: relative error {r.max_rel_error:.1e}")
assert step_errors[1e-6] > 1e-6 and step_errors[1e-9] < 1e-8

# %% [markdown]
# And the zero vector. Its output is 0 and its gradient g/ε = 1e12·g: huge, but a number.
# Anomaly detection (which raises on any inf or NaN) finds nothing. To gradient-check the
# clamped branch, make ε larger than the finite-difference step, here ε = 1e-3, so that the
# nudged vector stays inside the clamp where y = x/ε exactly.

# %%
with_zero = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 2.0], [0.0, 0.0, 0.0]])
xz = tm.tensor(with_zero, requires_grad=True)
with tm.detect_anomaly():
    yz = F.l2_normalize(xz)
    yz.backward(np.ones((3, 3)))
print("output rows:", yz.numpy().round(4).tolist())
print("gradient of the zero rows:", grad_of(xz)[0].tolist())
assert np.all(yz.numpy()[[0, 2]] == 0) and np.allclose(grad_of(xz)[[0, 2]], 1e12)
r = gradcheck(lambda t: F.l2_normalize(t, eps=1e-3), [tm.tensor(with_zero, requires_grad=True)],
              name="l2_normalize with zero rows, eps=1e-3")
print(r)
assert r.max_rel_error < 1e-7

# %% [markdown]
# ## 5. Gradient steps only ever lengthen the vector
#
# A small consequence with a large effect. Take a raw vector a, and move it by gradient
# ascent to increase cos(a, b) for a fixed b. Every step is perpendicular to a (section 2),
# and by Pythagoras ‖a + step‖² = ‖a‖² + ‖step‖², so **‖a‖ grows at every step**, and since
# the gradient is divided by ‖a‖, each later step turns a a little less. Weight decay, which
# shrinks parameters, is what balances this in real networks.

# %%
b = tm.tensor(np.array([[0.0, 0.0, 1.0]]))
a = tm.tensor(np.array([[1.0, 0.2, -0.3]]), requires_grad=True)
steps, lr = pick(300, 100), 0.5
norms, cosines = [], []
for step in range(steps):
    a.grad = None
    cos_ab = (F.l2_normalize(a) * F.l2_normalize(b)).sum()
    cos_ab.backward()
    cosines.append(cos_ab.item())
    norms.append(float(np.linalg.norm(a.numpy())))
    a.data += lr * a.grad                # ascent: increase the cosine
print(f"cosine {cosines[0]:.3f} -> {cosines[-1]:.5f}; length of a {norms[0]:.3f} -> {norms[-1]:.3f}")
assert all(n2 >= n1 - 1e-12 for n1, n2 in zip(norms, norms[1:]))  # up to rounding, once converged
assert cosines[-1] > pick(0.999, 0.99) and norms[-1] > norms[0]

# %% [markdown]
# ## 6. A matrix of cosine similarities
#
# For a batch, normalise every row and multiply: with Î (B, D) and T̂ (B, D) both
# normalised, **S = Î T̂ᵀ** is the (B, B) matrix of every cosine at once. Lesson 11 scales it
# by exp(s) and feeds its rows and columns to `softmax_cross_entropy`.
#
# To see one without a trained model, describe captions by which words they contain (a
# vector of word counts, a "bag of words"). "a small red circle" and "a large red circle"
# share 3 of their 4 words, so their cosine is 3/4. Each caption below has 4 words, all
# share "a", and the cosine is (number of shared words)/4.

# %%
sizes, colours, shapes = ("small", "large"), ("red", "blue"), ("circle", "square")
captions = [f"a {s} {c} {h}" for c in colours for h in shapes for s in sizes]
vocabulary = sorted({w for cap in captions for w in cap.split()})
counts = np.array([[cap.split().count(w) for w in vocabulary] for cap in captions], dtype=np.float64)
unit = F.l2_normalize(tm.tensor(counts))
similarity = (unit @ unit.T).numpy()
shared = np.array([[len(set(p.split()) & set(q.split())) for q in captions] for p in captions])
print("vocabulary:", vocabulary)
print("cos('a small red circle', ·):", {c: float(v) for c, v in zip(captions, similarity[0].round(2))})
assert np.allclose(similarity, shared / 4)

# %% [markdown]
# The same cosine matrix for *random* directions looks very different. In D dimensions two
# random unit vectors are nearly perpendicular: their cosine has mean 0 and standard
# deviation 1/√D. That is why a freshly initialised CLIP scores every pair about the same,
# and its first loss is close to ln B (lesson 11).

# %%
spread = {}
for dim in (4, 64, 512):
    v = F.l2_normalize(tm.tensor(rng.standard_normal((pick(400, 120), dim)))).numpy()
    sims = (v @ v.T)[np.triu_indices(len(v), k=1)]
    spread[dim] = sims
    print(f"D = {dim:3d}: std of random cosines {sims.std():.4f}, 1/sqrt(D) = {1 / np.sqrt(dim):.4f}")
    assert abs(sims.std() * np.sqrt(dim) - 1) < 0.1 and abs(sims.mean()) < 0.03

# %%
fig, (ax_h, ax_d) = plt.subplots(1, 2, figsize=(13, 5.4), gridspec_kw={"width_ratios": [1.25, 1]})
im = ax_h.imshow(similarity, cmap="viridis", vmin=0, vmax=1)
ax_h.set_xticks(range(len(captions)))
ax_h.set_xticklabels(captions, rotation=60, ha="right", fontsize=8)
ax_h.set_yticks(range(len(captions)))
ax_h.set_yticklabels(captions, fontsize=8)
for i in range(len(captions)):
    for j in range(len(captions)):
        ax_h.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", fontsize=7,
                  color="black" if similarity[i, j] > 0.6 else "white")
fig.colorbar(im, ax=ax_h, fraction=0.046)
ax_h.set_title("cosine similarity of bag-of-words captions\n= (shared words) / 4, one matmul of unit rows")
for dim, colour in zip(spread, ("tab:orange", "tab:green", "tab:blue")):
    ax_d.hist(spread[dim], bins=60, range=(-1, 1), density=True, histtype="step", lw=1.5, color=colour,
              label=f"D = {dim}: std {spread[dim].std():.3f} ≈ 1/√D = {1 / np.sqrt(dim):.3f}")
ax_d.set_xlabel("cosine similarity of two random unit vectors")
ax_d.set_ylabel("density")
ax_d.set_title("Random directions are nearly perpendicular in high dimension")
ax_d.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "09_cosine_matrix.png")

# %% [markdown]
# ## Recap
#
# - Cosine similarity is the dot product of L2-normalised vectors; a whole batch of them is
#   one matrix product of normalised rows.
# - y = x / max(‖x‖, ε). Its backward is (g − y(y·g)) / ‖x‖: project the upstream gradient
#   onto the plane tangent to the unit sphere at y, then divide by the length of x.
# - So the gradient is perpendicular to x, and gradient steps only lengthen x; short
#   vectors get large gradients (∝ 1/‖x‖), capped at g/ε for vectors shorter than ε.
# - Gradient checks near zero need a finite-difference step much smaller than the vector.
# - Code: `l2_normalize` in `tinymm/functional/normalize.py`; the CLIP model calls it at the
#   end of both encoders (`tinymm/models/clip.py`).
#
# ## Exercises
#
# 1. **The Jacobian as a matrix.** For x = (3, 4), build J = (I − yyᵀ)/‖x‖ with NumPy, find
#    its eigenvalues and eigenvectors, and explain each one. *Hint: one eigenvector is y
#    itself; what does J do to it?*
# 2. **Normalise along another axis.** `F.l2_normalize(x, axis=0)` normalises columns.
#    Write the backward formula for that case and check it with `gradcheck`. *Hint: the
#    formula is the same, with the sums taken along axis 0.*
# 3. **Weight decay against growth.** Repeat section 5 with `a.data *= (1 - wd)` after every
#    step, for wd = 0.01. Plot ‖a‖ over the steps: where does it settle? *Hint: the step adds
#    about (lr·|grad|)² to ‖a‖², and decay removes about 2·wd·‖a‖².*
#
# **Coded exercise**, graded by tinymm: [`exercises/09_l2_normalize.py`](exercises/09_l2_normalize.py), then
# `python -m tinymm check l2_normalize`.

# %%
print(f"lesson 09 done in {time.time() - lesson_start:.1f} s")
