# %% [markdown]
# # Lesson 05 — Softmax cross-entropy: the loss behind every classifier (and CLIP)
#
# **What you will build.** The loss that turns a row of scores into a training signal:
# softmax to get probabilities, cross-entropy to compare them with the right answer. You
# will derive its gradient by hand (it comes out as *softmax minus target*), check it three
# ways, extend it to soft targets, and make it numerically safe with the log-sum-exp trick,
# so that logits of ±10,000 give a finite loss where a naive version gives NaN.
#
# **Why.** Every classifier in this course ends with this loss, and so does CLIP: lesson 11
# builds the CLIP loss from exactly this op, applied to the rows and to the columns of an
# image-caption score matrix. Soft targets are what CLIP needs when a caption appears twice
# in a batch.
#
# **Needs.** Lesson 02 (a `Function` has a forward and a backward), lesson 03 (gradient
# checking in float64) and lesson 04 (a linear layer produces the scores).
#
# Run it as a script (`python lessons/05_softmax_cross_entropy.py`) or open it as a notebook.

# %%
import math
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
# ## 1. From scores to probabilities: softmax
#
# A classifier with C classes outputs C numbers per example, the **logits** z₁ … z_C. They
# can be any real numbers. Softmax turns them into probabilities:
#
# $$p_c = \frac{e^{z_c}}{\sum_{k=1}^{C} e^{z_k}}$$
#
# Every p_c is positive and they sum to 1. A bigger logit gets a bigger share, and the
# exponential makes the biggest one win by a lot.
#
# One property matters for everything below: adding the same number m to every logit
# changes nothing, because $e^{z_c + m} = e^{z_c} e^m$ and the $e^m$ cancels between the top
# and the bottom of the fraction. So we are free to subtract the largest logit first.

# %%
z = tm.tensor(np.array([[2.0, 1.0, 0.1]]))
p = F.softmax(z)
print("logits      ", z.numpy())
print("softmax     ", p.numpy().round(4), " sum =", p.numpy().sum())
print("softmax(z+100)", F.softmax(z + 100.0).numpy().round(4))
assert abs(p.numpy().sum() - 1) < 1e-12
assert np.allclose(F.softmax(z + 100.0).numpy(), p.numpy())

# %% [markdown]
# ## 2. Cross-entropy, and the log-sum-exp trick
#
# For an example whose true class is y, the **cross-entropy** loss is the negative log of
# the probability the model gives to y:
#
# $$L = -\log p_y .$$
#
# If the model is sure and right (p_y → 1) the loss goes to 0. If it gives the right class a
# tiny probability, the loss is large. Put in the definition of p_y:
#
# $$L = -\log \frac{e^{z_y}}{\sum_k e^{z_k}} = -z_y + \log \sum_k e^{z_k} .$$
#
# The second term is the **log-sum-exp**, LSE(z). It is a smooth version of the maximum:
# LSE(z) is at least max z and at most max z + log C. Computed as written it overflows:
# e^z is larger than the biggest float once z > 88.7 in float32 (709.8 in float64). The
# shift from section 1 fixes it. With m = max z,
#
# $$\mathrm{LSE}(z) = m + \log \sum_k e^{z_k - m} .$$
#
# Now every exponent is ≤ 0, so every e^(...) is between 0 and 1, and the largest one is
# exactly 1, so the sum is at least 1 and its log is never −∞. The log-probabilities are
# then $\log p_c = z_c - \mathrm{LSE}(z) = (z_c - m) - \log\sum_k e^{z_k - m}$: no
# exponential of a large number and no log of a tiny one anywhere.
#
# That is `log_softmax` in **`tinymm/functional/loss.py`**, and `softmax_cross_entropy`
# in the same file uses it. Here it is on the example above, against NumPy.

# %%
y = np.array([0])
loss = F.softmax_cross_entropy(z, y)
by_hand = -z.numpy()[0, 0] + np.log(np.exp(z.numpy()).sum())
print(f"L = -z_y + LSE(z) = {by_hand:.6f};  F.softmax_cross_entropy = {loss.item():.6f}")
print("log_softmax:", F.log_softmax(z).numpy().round(4), " log(softmax):", np.log(p.numpy()).round(4))
assert abs(loss.item() - by_hand) < 1e-12
assert np.allclose(F.log_softmax(z).numpy(), np.log(p.numpy()))

# %% [markdown]
# ## 3. The gradient: softmax minus one-hot
#
# Differentiate $L = -z_y + \mathrm{LSE}(z)$ with respect to one logit z_k. The first term
# gives −1 if k = y and 0 otherwise. The second gives
# $\partial\,\mathrm{LSE}/\partial z_k = e^{z_k} / \sum_j e^{z_j} = p_k$. So
#
# $$\frac{\partial L}{\partial z_k} = p_k - [k = y], \qquad\text{or, as a vector,}\qquad
#   \frac{\partial L}{\partial z} = p - \mathrm{onehot}(y).$$
#
# That is the whole backward. It reads well, too: push down every wrong class by its
# probability, push up the right one by 1 − p_y. Each entry lies in [−1, 1], so the
# gradient can never explode, whatever the logits. For a batch of N rows whose losses are
# averaged, each row's gradient is divided by N.
#
# **The long way round gives the same thing.** Treat softmax and log as two separate ops.
# The log gives ∂L/∂p_y = −1/p_y. Softmax's Jacobian is ∂p_i/∂z_k = p_i([i = k] − p_k).
# Chain them: ∂L/∂z_k = −(1/p_y) · p_y([y = k] − p_k) = p_k − [k = y]. Same answer, but
# written this way the backward divides by p_y, which is 0 when p_y underflows: 0 · ∞. Doing
# softmax and cross-entropy as **one** Function lets that division cancel on paper.
#
# Three checks follow. (a) The formula, against `F.softmax_cross_entropy`'s backward.
# (b) Against autograd through the same loss written with basic ops (max, exp, sum, log,
# indexing), which lesson 02's engine differentiates op by op with no help.
# (c) A gradient check in float64, the lesson 03 way.

# %%
rng = np.random.default_rng(0)
N, C = 6, 4
logits_np = 3 * rng.standard_normal((N, C))
labels_np = rng.integers(0, C, N)

logits = tm.tensor(logits_np, requires_grad=True)
F.softmax_cross_entropy(logits, labels_np).backward()

probs = np.exp(logits_np - logits_np.max(axis=1, keepdims=True))
probs /= probs.sum(axis=1, keepdims=True)
formula = (probs - np.eye(C)[labels_np]) / N
print("(a) max |library − (softmax − onehot)/N| =", f"{np.abs(grad_of(logits) - formula).max():.1e}")
assert np.allclose(grad_of(logits), formula, rtol=1e-12, atol=1e-15)


def cross_entropy_from_basic_ops(z, labels):
    """The same loss, composed from basic ops: autograd finds its gradient by itself."""
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    return -log_p[np.arange(len(labels)), labels].mean()


composed = tm.tensor(logits_np, requires_grad=True)
loss_composed = cross_entropy_from_basic_ops(composed, labels_np)
loss_composed.backward()
print("(b) max |library − autograd of basic ops| =", f"{np.abs(grad_of(logits) - grad_of(composed)).max():.1e}")
assert np.allclose(grad_of(composed), grad_of(logits), rtol=1e-12, atol=1e-15)
assert abs(loss_composed.item() - F.softmax_cross_entropy(tm.tensor(logits_np), labels_np).item()) < 1e-12

report = gradcheck(lambda t: F.softmax_cross_entropy(t, labels_np), [tm.tensor(logits_np, requires_grad=True)],
                   name="softmax_cross_entropy")
print("(c)", report)
assert report.max_rel_error < 1e-6  # the worst element is a tiny gradient, where rounding weighs most

# %% [markdown]
# Where does the loss start? A freshly initialised classifier has small, nearly equal
# logits, so p ≈ 1/C for every class and L ≈ −log(1/C) = **ln C**. Checking the first loss
# of a training run against ln C catches many bugs before any training happens (lesson 11
# does the same for CLIP, where C is the batch size).

# %%
start_loss = F.softmax_cross_entropy(tm.tensor(np.zeros((5, 10))), np.arange(5)).item()
print(f"all logits equal, C = 10: loss = {start_loss:.4f}, ln 10 = {math.log(10):.4f}")
assert abs(start_loss - math.log(10)) < 1e-12

# %% [markdown]
# ## 4. Soft targets
#
# Sometimes the answer is not one class but a distribution t over classes (t_c ≥ 0,
# Σ t_c = 1): a label shared between two classes, label smoothing, or, in lesson 11, a
# caption that appears twice in a batch, so two images are equally right. Cross-entropy
# takes the expectation under t:
#
# $$L = -\sum_c t_c \log p_c = -\sum_c t_c z_c + \Big(\sum_c t_c\Big)\,\mathrm{LSE}(z)
#     = -\sum_c t_c z_c + \mathrm{LSE}(z).$$
#
# The gradient is the same formula with t in place of the one-hot vector:
# **∂L/∂z = p − t** (this uses Σ t_c = 1, which `softmax_cross_entropy` checks). A one-hot t
# gives back section 3. Pass probabilities of the logits' shape instead of class ids, and
# the same function does it. The gradient with respect to t itself is −log p; gradcheck
# verifies both.

# %%
soft_t = rng.dirichlet(np.ones(C), size=N)  # random rows that sum to 1
z_soft = tm.tensor(logits_np, requires_grad=True)
F.softmax_cross_entropy(z_soft, soft_t).backward()
assert np.allclose(grad_of(z_soft), (probs - soft_t) / N, rtol=1e-12, atol=1e-15)
report = gradcheck(F.softmax_cross_entropy, [tm.tensor(logits_np, requires_grad=True),
                                              tm.tensor(soft_t, requires_grad=True)], name="soft targets")
print(report)
assert report.passed  # relative error ~1e-7, below the 1e-6 tolerance
one_hot_loss = F.softmax_cross_entropy(tm.tensor(logits_np), np.eye(C)[labels_np]).item()
assert abs(one_hot_loss - F.softmax_cross_entropy(tm.tensor(logits_np), labels_np).item()) < 1e-12

# %% [markdown]
# **How low can the loss go?** With a one-hot target, L → 0 as p_y → 1. With a soft target
# it cannot reach 0. The cross-entropy is smallest, over all possible p, when p = t, and then
# it equals the **entropy** of the targets, $H(t) = -\sum_c t_c \log t_c$. That is the
# *loss floor*: lesson 11 reports it next to the CLIP loss.
#
# Let us watch it happen. Below, the logits themselves are the parameters (no network), and
# plain gradient descent with step p − t moves them. Two targets over C = 4 classes: a soft
# one, t = (0.6, 0.25, 0.1, 0.05), and a hard one, class 0.

# %%
target_soft = np.array([[0.6, 0.25, 0.1, 0.05]])
floor = float(-(target_soft * np.log(target_soft)).sum())
steps = pick(2000, 300)
lr = 1.0
z_fit_soft = tm.tensor(np.zeros((1, 4)), requires_grad=True)
z_fit_hard = tm.tensor(np.zeros((1, 4)), requires_grad=True)
history = {"soft": [], "hard": [], "gap": []}
for step in range(steps):
    for z_fit, target, key in ((z_fit_soft, target_soft, "soft"), (z_fit_hard, np.array([0]), "hard")):
        z_fit.grad = None
        loss = F.softmax_cross_entropy(z_fit, target)
        loss.backward()
        z_fit.data -= lr * z_fit.grad
        history[key].append(loss.item())
    zh = z_fit_hard.numpy()[0]
    history["gap"].append(float(zh[0] - zh[1:].max()))

p_fit = F.softmax(z_fit_soft).numpy()[0]
print(f"soft target: loss {history['soft'][-1]:.6f} -> floor H(t) = {floor:.6f}; softmax(z) = {p_fit.round(4)}")
print(f"hard target: loss {history['hard'][-1]:.2e}, logit gap z_0 − max(others) = {history['gap'][-1]:.2f}")
assert abs(history["soft"][-1] - floor) < pick(1e-6, 1e-3)
assert np.allclose(p_fit, target_soft[0], atol=pick(1e-4, 3e-3))
assert history["hard"][-1] < pick(2e-3, 1e-2) and history["gap"][-1] > pick(7.0, 5.0)
assert abs(floor - 1.0331) < 1e-4 and history["gap"][-1] > history["gap"][steps // 2] + 0.5  # still growing

# %% [markdown]
# The soft target converges: softmax(z) becomes t and the loss stops at H(t) ≈ 1.033. The
# hard target never converges: the loss keeps falling towards 0 (4e-4 after 2,000 steps)
# only because the gap between the right logit and the others keeps growing (about 9 after
# 2,000 steps, roughly like the log of the step count). Nothing in the loss stops logits
# from becoming large. That is one reason real networks produce big logits, and why the
# loss must stay exact when they do.
#
# ## 5. Large logits: naive versus stable
#
# Now the stress test. Three ways to compute the same loss, all written with tinymm ops so
# their gradients come from autograd:
#
# 1. **naive**: softmax as written, e^z / Σ e^z, then −log p_y;
# 2. **half-fixed**: subtract the max inside the softmax, then take the log of p_y;
# 3. **stable**: `F.softmax_cross_entropy` (log-sum-exp, one Function).
#
# First, logits of ±1e4, in the default float32.

# %%
def naive_cross_entropy(z, labels, reduction="mean"):
    e = z.exp()
    p = e / e.sum(axis=1, keepdims=True)
    rows = -p[np.arange(len(labels)), labels].log()
    return rows.mean() if reduction == "mean" else rows


def half_fixed_cross_entropy(z, labels, reduction="mean"):
    p = F.softmax(z)  # max subtracted: no overflow
    rows = -p[np.arange(len(labels)), labels].log()
    return rows.mean() if reduction == "mean" else rows


VERSIONS = {"naive": naive_cross_entropy, "half-fixed": half_fixed_cross_entropy,
            "stable": F.softmax_cross_entropy}

big = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
big_labels = np.array([0, 0])  # the first row is right by a margin of 1e4, the second wrong by 2e4
results = {}
with np.errstate(all="ignore"):  # the naive versions will produce inf and NaN: that is the point
    for name, fn in VERSIONS.items():
        zt = tm.tensor(big, requires_grad=True)
        loss = fn(zt, big_labels)
        loss.backward()
        results[name] = (loss.item(), bool(np.isfinite(grad_of(zt)).all()))
        print(f"{name:10s}: loss = {loss.item():<10.6g} gradient finite: {results[name][1]}")
assert not np.isfinite(results["naive"][0]) and not np.isfinite(results["half-fixed"][0])
assert results["stable"][1] and abs(results["stable"][0] - 1e4) < 1e-3  # (0 + 2e4) / 2
with tm.detect_anomaly():  # the library's version passes anomaly detection, forward and backward
    zt = tm.tensor(big, requires_grad=True)
    F.softmax_cross_entropy(zt, big_labels).backward()
print("stable gradient:\n", grad_of(zt))
assert np.allclose(grad_of(zt), [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)

# %% [markdown]
# The naive version computes e^10000 = inf, then inf / inf = NaN. The half-fixed one avoids
# the overflow, but for the second row p_y = e^(−20000) rounds to 0 and −log 0 = inf. Only
# the log-sum-exp form gives the right answer: the mean of 0 and 20,000 is 10,000, and the
# gradient is softmax minus one-hot, exactly.
#
# Where exactly do they break? Take two classes with logits (d, 0) and true class 0, so
# L = log(1 + e^(−d)) and ∂L/∂d = p₀ − 1, and sweep the margin d.

# %%
margins = np.linspace(-1000, 1000, pick(801, 201))
zero_class = np.zeros(len(margins), dtype=np.int64)
curves = {}
with np.errstate(all="ignore"):
    for dtype in (np.float32, np.float64):
        for name, fn in VERSIONS.items():
            zt = tm.tensor(np.stack([margins, np.zeros_like(margins)], axis=1).astype(dtype), requires_grad=True)
            rows = fn(zt, zero_class, reduction="none")  # one loss per margin, one graph for the sweep
            rows.sum().backward()
            curves[np.dtype(dtype).name, name] = (rows.numpy().astype(np.float64), grad_of(zt)[:, 0].astype(np.float64))

exact_loss = np.logaddexp(0, -margins)                       # log(1 + e^(−d)), computed safely by NumPy
exact_grad = -1 / (1 + np.exp(np.clip(margins, -700, 700)))  # p₀ − 1 = −σ(−d)


def describe(bad):
    """Where a boolean mask over the sweep is true, in words."""
    if not bad.any():
        return "never"
    parts = []
    if (bad & (margins < 0)).any():
        parts.append(f"d ≤ {margins[bad & (margins < 0)].max():g}")
    if (bad & (margins > 0)).any():
        parts.append(f"d ≥ {margins[bad & (margins > 0)].min():g}")
    return " or ".join(parts)


fails = {}
for (dtype, name), (loss_d, grad_d) in curves.items():
    fails[dtype, name] = (~np.isfinite(loss_d), ~np.isfinite(grad_d))
    print(f"{dtype} {name:10s}: loss inf/NaN {describe(fails[dtype, name][0]):24s} "
          f"gradient inf/NaN {describe(fails[dtype, name][1])}")
for dtype, tol in (("float32", 1e-5), ("float64", 1e-12)):
    loss_d, grad_d = curves[dtype, "stable"]
    assert np.allclose(loss_d, exact_loss, rtol=tol, atol=tol) and np.allclose(grad_d, exact_grad, atol=tol)
# where e^d stops being a finite, non-zero float32: the walls the naive versions hit
overflow32 = float(np.log(np.finfo(np.float32).max))                 # 88.72
underflow32 = float(np.log(np.finfo(np.float32).smallest_subnormal))  # −103.28
print(f"float32: e^d overflows above d = {overflow32:.2f} and rounds to 0 below d ≈ {underflow32:.2f}")
(naive_loss, naive_grad), (half_loss, half_grad) = fails["float32", "naive"], fails["float32", "half-fixed"]
inside, far_right, far_left = np.abs(margins) < 88, margins > 89, margins < -104
assert naive_loss[far_right].all() and naive_loss[far_left].all() and not naive_loss[inside].any()
assert naive_grad[np.abs(margins) > 89].all() and not naive_grad[inside].any()
assert half_loss[far_left].all() and not half_loss[margins > -103].any()
assert half_grad[margins < -89].all() and not half_grad[margins > -88].any()
assert not any(f.any() for f in fails["float32", "stable"] + fails["float64", "stable"])
assert fails["float64", "naive"][1][np.abs(margins) > 710].all()

# %%
fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4.2))
styles = {"naive": dict(color="tab:red", marker="x", ls="none", ms=4),
          "half-fixed": dict(color="tab:orange", marker="o", ls="none", ms=3, mfc="none"),
          "stable": dict(color="tab:blue", lw=2)}
for name, style in styles.items():
    loss_d, grad_d = curves["float32", name]
    label = f"{name} (float32)" if name != "stable" else "stable: log-sum-exp (float32)"
    ax_loss.plot(margins, np.where(np.isfinite(loss_d), loss_d, np.nan), label=label, **style)
    ax_grad.plot(margins, np.where(np.isfinite(grad_d), grad_d, np.nan), label=label, **style)
for ax in (ax_loss, ax_grad):
    ax.axvspan(overflow32, 1000, color="tab:red", alpha=0.08)
    ax.axvspan(-1000, -overflow32, color="tab:orange", alpha=0.08)
    ax.set_xlabel("margin d = z_true − z_other")
    ax.grid(alpha=0.3)
ax_loss.set_ylabel("loss  log(1 + e^(−d))")
ax_grad.set_ylabel("gradient dL/dd = p_true − 1")
ax_loss.text(110, 200, "naive: e^d = inf,\ninf/inf = NaN", color="tab:red", fontsize=9)
ax_loss.text(-170, 215, "naive and half-fixed:\nbelow −103, p_true = 0\nand −log 0 = inf", color="tab:orange",
             fontsize=9)
ax_loss.set_ylim(-10, 320)
ax_grad.text(-290, -0.45, "naive and half-fixed:\nbackward divides by p_true;\n1/p_true overflows\nbelow d = −88.7",
             color="tab:orange", fontsize=9)
for ax in (ax_loss, ax_grad):
    ax.set_xlim(-300, 300)  # the float32 walls; float64's stand at ±710
ax_loss.legend(fontsize=8, loc="upper right")
ax_grad.legend(fontsize=8, loc="center right")
fig.suptitle("Two-class cross-entropy in float32: missing points are inf or NaN")
save_figure(fig, "05_naive_vs_stable.png")

# %% [markdown]
# Read the figure. The blue line (the library) is right over the whole sweep, in float32.
# The naive version (red crosses) survives only for margins between about −89 and +89. Past
# +88.7, e^d overflows and inf/inf gives NaN. On the negative side the *gradient* dies first:
# below d = −88.7 the loss is still finite (p_true ≈ 1e-39) but the backward of the log
# divides by p_true, and 1/p_true is too big for float32; below −103 p_true rounds to 0 and
# the loss is inf too. The half-fixed version (orange circles) survives every positive margin
# but dies on the negative side in the same way. That is the 0 · ∞ of section 3, measured.
# In float64 the walls stand at about ±710: further out, but there.
#
# ## 6. Sequences and ignored positions
#
# Lesson 15's caption decoder predicts one token per position, so its logits are (N, L, C)
# with targets (N, L). Captions are padded to the same length, and padding positions must
# not count: give their target the value `ignore_index`. Those rows contribute 0, get a
# zero gradient, and the mean is taken over the rows that remain.

# %%
seq_logits = tm.tensor(rng.standard_normal((2, 3, 5)), requires_grad=True)
seq_targets = np.array([[4, 1, -100], [2, -100, -100]])  # -100 marks padding
seq_loss = F.softmax_cross_entropy(seq_logits, seq_targets, ignore_index=-100)
seq_loss.backward()
kept = seq_targets != -100
flat = F.softmax_cross_entropy(tm.tensor(seq_logits.numpy()[kept]), seq_targets[kept]).item()
print(f"loss over the 3 real tokens: {seq_loss.item():.6f} (the same 3 rows alone: {flat:.6f})")
assert abs(seq_loss.item() - flat) < 1e-12
assert np.all(grad_of(seq_logits)[~kept] == 0)

# %% [markdown]
# ## Recap
#
# - Softmax turns logits into probabilities; adding a constant to every logit changes
#   nothing, so the maximum can be subtracted first.
# - Cross-entropy: L = −log p_y = −z_y + LSE(z). The log-sum-exp is computed as
#   m + log Σ e^(z − m): finite for any finite logits, in float32 too.
# - Its gradient is **softmax − target**, divided by N for a mean. With soft targets the
#   same formula holds (because the targets sum to 1), and the lowest reachable loss is the
#   entropy of the targets.
# - Softmax and cross-entropy belong in one Function: separately, the backward divides by a
#   probability that can be 0.
# - Code: `log_softmax`, `softmax_cross_entropy` and `mse_loss` in
#   `tinymm/functional/loss.py`; `softmax` in `tinymm/functional/activation.py`.
#
# ## Exercises
#
# 1. **Label smoothing.** Train the free logits of section 4 towards the hard class 0, but
#    with the target (1 − ε)·onehot + ε/C for ε = 0.1. Does the logit gap still grow
#    forever? What gap does it settle at? *Hint: at the optimum softmax(z) = t, so the gap
#    is log(t₀ / t₁); check your run against that number.*
# 2. **Binary case.** Show that for C = 2 the cross-entropy with logits (d, 0) is the
#    logistic loss of lesson 04, log(1 + e^(−y·d)) with y = ±1. *Hint: write p₀ as a
#    sigmoid of d.*
# 3. **A log-sum-exp Function.** Write `LogSumExp(Function)` for one axis, with the max
#    trick in forward and backward g · softmax(z). Gradcheck it at logits near 0 and near
#    ±1e3. *Hint: save the softmax in forward; do not save e^z.*
#
# **Coded exercise**, graded by tinymm: [`exercises/05_softmax_cross_entropy.py`](exercises/05_softmax_cross_entropy.py),
# then `python -m tinymm check softmax_cross_entropy`.

# %%
print(f"lesson 05 done in {time.time() - lesson_start:.1f} s")
