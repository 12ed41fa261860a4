# %% [markdown]
# # Lesson 11 — The CLIP loss: symmetric InfoNCE, temperature, and its gradient by hand
#
# **What you will build.** The loss that trains CLIP. For a batch of N images and their N
# captions it scores every image against every caption (an N×N matrix), then asks each
# image to pick its own caption out of all N, and each caption to pick its own image. You
# will write it out, see what the temperature and the learnable logit scale do, predict
# its value at initialisation (ln N), and **derive its gradient by hand**, then check the
# formula against autograd to 1e-10 and against finite differences. Last, what happens
# when a caption appears twice in a batch: soft targets and the loss floor.
#
# **Why.** Lesson 10 showed that pulling matching pairs together is not enough: with
# nothing pushing the non-matching pairs apart, everything collapses to one point. Here
# the wrong captions sit in the denominator of a softmax, and the gradient you derive
# shows the push explicitly.
#
# **Needs.** Lesson 05 (softmax cross-entropy, its gradient p − t, soft targets),
# lesson 09 (unit vectors, the cosine matrix) and lesson 10 (why MSE alignment collapses).
#
# Run it as a script (`python lessons/11_clip_loss.py`) or open it as a notebook. It runs
# in a few seconds: no training, only small matrices.

# %%
import math
import time

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.data import ShapesCaptions, shapes_tokenizer
from tinymm.gradcheck import gradcheck
from tinymm.models.clip import LOGIT_SCALE_INIT, LOGIT_SCALE_MAX
from tinymm.plots import fast_mode, pick, save_figure
from tinymm.train import TrainConfig, build_dual_encoder, train_batch

lesson_start = time.time()
print("fast mode" if fast_mode() else "full mode", "| device:", tm.get_default_device())
rng = np.random.default_rng(0)


def unit_rows(n, d, rng=rng):
    """n random unit vectors in d dimensions (float64): uniform directions on the sphere."""
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def softmax(z, axis):
    """NumPy softmax along ``axis`` (max subtracted first, lesson 05)."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def leaf(array):
    """A float64 tensor that wants a gradient."""
    return tm.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def grad_of(t):
    """A tensor's gradient as a NumPy array (copied off the GPU when there is one)."""
    return backend.to_numpy(t.grad)


# %% [markdown]
# ## 1. The loss, written out
#
# The two encoders give N image embeddings and N caption embeddings, already
# L2-normalised (lesson 09): the rows of I (N, D) and T (N, D). Pair i is (I_i, T_i). The
# **logits** are the cosine similarities, multiplied by a scale:
#
# $$Z = e^{s}\, I\, T^\top \qquad (N \times N), \qquad Z_{ij} = e^{s}\cos(\text{image}_i, \text{caption}_j).$$
#
# Row i of Z scores image i against every caption; column j scores caption j against
# every image. Two softmaxes, one along each axis:
#
# - **P_rows** = softmax along each row (axis 1): $P^{\text{rows}}_{ij} = e^{Z_{ij}} / \sum_k e^{Z_{ik}}$,
#   image i's probability over the N captions;
# - **P_cols** = softmax along each column (axis 0): $P^{\text{cols}}_{ij} = e^{Z_{ij}} / \sum_k e^{Z_{kj}}$,
#   caption j's probability over the N images.
#
# The right answers are on the diagonal (targets Y = the identity, for now). Each
# direction is an ordinary cross-entropy (lesson 05), and the loss is their mean:
#
# $$L = \tfrac12\left(\mathrm{CE}_{\text{rows}} + \mathrm{CE}_{\text{cols}}\right),\qquad
#   \mathrm{CE}_{\text{rows}} = -\frac1N\sum_i \log P^{\text{rows}}_{ii},\qquad
#   \mathrm{CE}_{\text{cols}} = -\frac1N\sum_j \log P^{\text{cols}}_{jj}.$$
#
# This is the **symmetric InfoNCE** loss. Lowering it means raising Z_ii *relative to
# the other entries of its row and of its column*: the wrong captions of image i, and the
# wrong images of caption i, must go down. That is the push apart that MSE lacked.
#
# `clip_loss` in **`tinymm/functional/loss.py`** does exactly this with library ops
# (exp, matmul, transpose, `softmax_cross_entropy` on the rows of Z and on the rows of Zᵀ).
# It is deliberately *not* a Function with a hand-written backward: autograd finds the
# gradient, and section 4 derives it by hand to compare. First, the value.

# %%
N, D = 6, 8
I_np = unit_rows(N, D)
T_np = unit_rows(N, D)
s_np = LOGIT_SCALE_INIT                  # ln(1/0.07), see section 2

Z = math.exp(s_np) * I_np @ T_np.T
P_rows, P_cols = softmax(Z, axis=1), softmax(Z, axis=0)
ce_rows = -np.log(np.diag(P_rows)).mean()
ce_cols = -np.log(np.diag(P_cols)).mean()
by_hand = 0.5 * (ce_rows + ce_cols)
library = F.clip_loss(tm.tensor(I_np), tm.tensor(T_np), tm.tensor(np.array(s_np))).item()
print(f"CE over rows {ce_rows:.6f}, over columns {ce_cols:.6f}: L = {by_hand:.12f}")
print(f"F.clip_loss                                        = {library:.12f}")
assert abs(by_hand - library) < 1e-12
assert np.allclose(P_rows.sum(axis=1), 1) and np.allclose(P_cols.sum(axis=0), 1)

# %% [markdown]
# ## 2. Temperature and the learnable logit scale
#
# Cosines lie in [−1, 1], so without a scale the logits would too, and a softmax over
# logits that differ by at most 2 can never be confident: with N = 64 captions, even a
# perfect model (cos 1 for the right caption, −1 for all others) would give it only
# e/(e + 63/e) = e²/(e² + 63) ≈ 10%. Dividing by a **temperature** τ < 1 sharpens the
# softmax: logits = cos / τ. CLIP calls 1/τ the **logit scale** and *learns* it.
#
# It learns it through its logarithm: the parameter is s, and the scale is e^s.
#
# - e^s is positive for every real s, so a gradient step can never flip the sign of the
#   scale (a negative scale would reward the *wrong* captions);
# - a step in s is a relative change of the scale: s + 0.01 multiplies the scale by
#   about 1.01 whether it is 2 or 80, so one learning rate suits every scale;
# - the gradient is easy: d e^s / ds = e^s, so ∂L/∂s = Σ_ij (∂L/∂Z_ij) Z_ij (section 4).
#
# CLIP starts at τ = 0.07, so s₀ = ln(1/0.07) ≈ 2.66 (scale 14.3), and **clamps** s to
# [0, ln 100] after every optimiser step, so the scale stays in [1, 100]. Why an upper
# limit? Once a batch is ranked correctly, a larger scale always lowers the loss (every
# softmax gets sharper), so s would grow without end, the logits with it, and training
# would become unstable. `DualEncoder` in **`tinymm/models/clip.py`** holds s as a 0-d
# parameter and `clamp_logit_scale` does the clamp (the training loop calls it after every
# step, and keeps s out of weight decay).

# %%
best_unscaled = math.exp(1) / (math.exp(1) + 63 * math.exp(-1))
print(f"scale 1, N = 64, a perfect model: the right caption gets at most {best_unscaled:.1%}")
assert abs(best_unscaled - 0.105) < 0.001

model = build_dual_encoder(TrainConfig(image_encoder="plain"), shapes_tokenizer())
scale_init = math.exp(float(backend.to_numpy(model.logit_scale.data)))
print(f"s at init = {float(backend.to_numpy(model.logit_scale.data)):.4f} = ln(1/0.07); "
      f"scale e^s = {scale_init:.3f}")
assert abs(scale_init - 1 / 0.07) < 1e-4
for wild in (7.0, -3.0):
    model.logit_scale.data[...] = wild
    model.clamp_logit_scale()
    clamped = float(backend.to_numpy(model.logit_scale.data))
    print(f"s = {wild:+.1f} is clamped to {clamped:.4f} (scale {math.exp(clamped):.1f})")
    assert abs(clamped - (LOGIT_SCALE_MAX if wild > 0 else 0.0)) < 1e-6

# %% [markdown]
# The left of the next figure shows what the scale does to one row: the softmax of the
# same six cosines at scale 1 (the lower clamp), 14.3 (the initial value) and 100 (the
# upper clamp). On the right, the loss as a function of s for three batches of 64 pairs:
# unrelated random vectors, partly aligned pairs, and perfectly aligned ones.
#
# - Random pairs: the loss only grows with s. It is lowest, ln N, when the scale is tiny
#   and every softmax is uniform; a sharper softmax only makes confident mistakes.
# - Partly aligned: an interior best scale, where the gain on the right pairs balances
#   the cost of confident mistakes. Training moves s towards it, and it rises as the
#   model improves.
# - Perfect pairs: the loss falls forever as s grows, which is why the clamp is needed.

# %%
cosines_row = np.array([0.8, 0.6, 0.5, 0.2, 0.0, -0.3])
temperature_rows = {scale: softmax(scale * cosines_row, axis=0) for scale in (1.0, 1 / 0.07, 100.0)}
assert temperature_rows[100.0][0] > 0.999 and temperature_rows[1.0][0] < 0.3

B = 64
s_grid = np.linspace(-1.0, 6.0, pick(57, 15))
I_big = unit_rows(B, 64)
batches = {"random pairs": unit_rows(B, 64),                 # captions unrelated to the images
           "partly aligned": F.l2_normalize(tm.tensor(I_big + 0.4 * rng.standard_normal((B, 64)))).numpy(),
           "perfectly aligned": I_big}                        # caption i = image i
loss_vs_s = {name: np.array([F.clip_loss(tm.tensor(I_big), tm.tensor(T_big), tm.tensor(np.array(s))).item()
                             for s in s_grid])
             for name, T_big in batches.items()}
best_s = {name: s_grid[np.argmin(v)] for name, v in loss_vs_s.items()}
print("s with the lowest loss: random pairs", best_s["random pairs"], "| partly aligned", best_s["partly aligned"],
      f"(scale {math.exp(best_s['partly aligned']):.0f}) | perfectly aligned: the loss only falls, "
      f"to {loss_vs_s['perfectly aligned'][-1]:.1e} at s = {s_grid[-1]}")
assert best_s["random pairs"] == s_grid[0]
assert s_grid[0] < best_s["partly aligned"] < s_grid[-1]
assert np.all(np.diff(loss_vs_s["perfectly aligned"]) <= 0) and loss_vs_s["perfectly aligned"][-1] < 1e-6

# %%
fig, (ax_row, ax_s) = plt.subplots(1, 2, figsize=(13, 4.6))
width = 0.27
for k, (scale, probs) in enumerate(temperature_rows.items()):
    ax_row.bar(np.arange(len(cosines_row)) + (k - 1) * width, probs, width,
               label=f"scale e^s = {scale:.1f}  (τ = {1 / scale:.2f})")
ax_row.set_xticks(range(len(cosines_row)))
ax_row.set_xticklabels([f"caption {j}\ncos {c:+.1f}" for j, c in enumerate(cosines_row)], fontsize=8)
ax_row.set_ylabel("softmax probability")
ax_row.set_title("One image against six captions: the scale sharpens the softmax")
ax_row.legend(fontsize=8)
for name, colour in zip(loss_vs_s, ("tab:gray", "tab:orange", "tab:green")):
    ax_s.plot(s_grid, np.maximum(loss_vs_s[name], 1e-12), color=colour, label=name)
ax_s.axhline(math.log(B), color="k", ls=":", lw=1, label=f"ln B = ln {B} = {math.log(B):.2f}")
ax_s.axvspan(0, LOGIT_SCALE_MAX, color="tab:blue", alpha=0.07, label="allowed by the clamp: s ∈ [0, ln 100]")
ax_s.axvline(LOGIT_SCALE_INIT, color="tab:blue", ls="--", lw=1, label="init s = ln(1/0.07)")
ax_s.set_yscale("log")
ax_s.set_ylim(1e-3, 300)
ax_s.set_xlabel("log-scale s   (logits = e^s · cos)")
ax_s.set_ylabel("CLIP loss")
ax_s.set_title(f"CLIP loss against s, batches of {B} pairs")
ax_s.legend(fontsize=8, loc="lower left")
ax_s.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "11_temperature.png")

# %% [markdown]
# ## 3. The loss at initialisation is about ln N
#
# Before training, the model has no idea which caption goes with which image. If every
# logit in a row is the same, the row's softmax is uniform, P = 1/N for every caption, and
# the cross-entropy is −log(1/N) = **ln N**, in both directions. So a fresh model should
# start near ln N, and a first loss far from it is a bug worth chasing.
#
# How close? For random unit vectors in D dimensions the cosines have mean 0 and standard
# deviation 1/√D (lesson 09), so the logits have a spread σ = e^s/√D. A second-order
# expansion of the log-sum-exp gives, on average,
#
# $$L \approx \ln N + \frac{\sigma^2}{2} = \ln N + \frac{e^{2s}}{2D}.$$
#
# With s = 0 and D = 64 the correction is 1/128 ≈ 0.008. It grows fast with the scale.

# %%
B, D_big = 64, 64
n_draws = pick(20, 5)
print(f"{'s':>6} {'mean loss':>10} {'ln B + e^2s/2D':>15}")
for s in (0.0, 1.0, 2.0, LOGIT_SCALE_INIT):
    losses = [F.clip_loss(tm.tensor(unit_rows(B, D_big)), tm.tensor(unit_rows(B, D_big)),
                          tm.tensor(np.array(s))).item() for _ in range(n_draws)]
    predicted = math.log(B) + math.exp(2 * s) / (2 * D_big)
    print(f"{s:6.2f} {np.mean(losses):10.4f} {predicted:15.4f}")
    if s == 0.0:
        one_draw = losses[0]
        assert abs(one_draw - math.log(B)) < 0.1 and abs(np.mean(losses) - predicted) < 0.05
print(f"ln {B} = {math.log(B):.4f};  one batch of random unit vectors at s = 0: {one_draw:.4f}")

# %% [markdown]
# At CLIP's initial scale (14.3) random 64-D vectors would start well above ln N. A real
# untrained model does better than that prediction, because its embeddings are bunched
# together (lesson 10: mean cosine ≈ 0.97), so its cosines vary far less than 1/√D. Here
# is its first loss on a real training batch (with the soft targets of section 6, which do
# not change the uniform-softmax argument: any target distribution against a uniform p
# gives ln N).

# %%
batch = train_batch(TrainConfig(batch_size=B, augment=""), step=0)
model = build_dual_encoder(TrainConfig(image_encoder="plain"), shapes_tokenizer())
with tm.no_grad():
    image_emb, text_emb = model.encode_image(batch.images), model.encode_text(batch.tokens)
    first_loss = F.clip_loss(image_emb, text_emb, model.logit_scale,
                             targets=F.clip_targets(batch.captions)).item()
cos_spread = float((image_emb.numpy() @ text_emb.numpy().T).std())
print(f"untrained model, batch of {B}: cosines vary with std {cos_spread:.3f} (1/√D would be "
      f"{1 / math.sqrt(64):.3f}); first loss {first_loss:.4f}, ln {B} = {math.log(B):.4f}")
assert abs(first_loss - math.log(B)) < 0.1

# %% [markdown]
# ## 4. The gradient, derived by hand
#
# Take general targets Y (N×N, each row sums to 1; the identity so far). For the columns
# the targets are Y with each column rescaled to sum to 1; call that Y′ (for the identity,
# and for the soft targets of section 6, Y′ = Y). The loss is
#
# $$L = \frac{1}{2N}\Big[\sum_i \Big(-\sum_j Y_{ij} Z_{ij} + \log\sum_k e^{Z_{ik}}\Big)
#      + \sum_j \Big(-\sum_i Y'_{ij} Z_{ij} + \log\sum_k e^{Z_{kj}}\Big)\Big].$$
#
# (Each cross-entropy is −Σ t log p = −Σ t z + log-sum-exp, because the targets sum to
# 1: lesson 05.) Differentiate with respect to one logit Z_ij. It appears once in row i
# and once in column j, and the derivative of a log-sum-exp is a softmax:
#
# $$\frac{\partial L}{\partial Z_{ij}} = \frac{1}{2N}\Big[(P^{\text{rows}}_{ij} - Y_{ij})
#      + (P^{\text{cols}}_{ij} - Y'_{ij})\Big],\qquad
#   G := \frac{\partial L}{\partial Z} = \frac{P^{\text{rows}} + P^{\text{cols}} - 2Y}{2N}
#   \quad (\text{when } Y' = Y).$$
#
# Careful with one convention. Here P_cols is the column-wise softmax laid out like Z.
# The library computes the text → image direction as the row-wise softmax of Zᵀ, call it
# P_text (row j: caption j over images); then P_cols = P_textᵀ and the same formula reads
# (P_rows + P_textᵀ − 2Y)/2N.
#
# Now the chain rule through Z = e^s I Tᵀ. It is a matrix product, so (lesson 04's
# linear layer) each factor's gradient is G multiplied by the other factor:
#
# $$\frac{\partial L}{\partial I} = e^{s}\, G\, T, \qquad
#   \frac{\partial L}{\partial T} = e^{s}\, G^\top I, \qquad
#   \frac{\partial L}{\partial s} = \sum_{ij} G_{ij}\,\frac{\partial Z_{ij}}{\partial s}
#                                  = \sum_{ij} G_{ij} Z_{ij}.$$
#
# These are gradients with respect to the *normalised* embeddings. In the model they then
# flow back through `l2_normalize` (lesson 09), which keeps only their part tangent to
# the sphere, and on into the encoders.
#
# **Read it.** Gradient descent moves I_i along −∂L/∂I_i:
#
# $$-\frac{\partial L}{\partial I_i} = \frac{e^{s}}{2N}\Big[(2 - P^{\text{rows}}_{ii} - P^{\text{cols}}_{ii})\,T_i
#    \;-\; \sum_{j\ne i} (P^{\text{rows}}_{ij} + P^{\text{cols}}_{ij})\,T_j\Big].$$
#
# Towards its own caption, and **away from every other caption**, each in proportion to
# the probability it wrongly receives. The captions that are most confused with image i
# push hardest. This is the force that prevents collapse: if everything sat at one point,
# every P would be 1/N and the loss would be ln N, the loss of a blind guess, far above the
# floor of 0. Any arrangement where images sit closer to their own captions than to the others
# scores lower, so training has every reason to leave collapse behind. (ln N is not the top:
# cross-entropy has no upper bound, and confident mistakes score above it, as the random pairs
# of section 2 do at large s.)
#
# Now compute all of it with NumPy and compare with autograd, in float64.

# %%
def clip_gradient_by_hand(I, T, s, Y=None):
    """dL/dZ, dL/dI, dL/dT, dL/ds of the CLIP loss, from the formulas above (NumPy)."""
    n = len(I)
    Y = np.eye(n) if Y is None else Y
    Y_cols = Y / Y.sum(axis=0, keepdims=True)           # Y′: each column sums to 1
    Z = math.exp(s) * I @ T.T
    P_rows, P_cols = softmax(Z, axis=1), softmax(Z, axis=0)
    G = (P_rows - Y + P_cols - Y_cols) / (2 * n)
    return G, math.exp(s) * G @ T, math.exp(s) * G.T @ I, float((G * Z).sum())


def clip_gradient_by_autograd(I, T, s, Y=None):
    It, Tt, st = leaf(I), leaf(T), leaf(np.array(s))
    F.clip_loss(It, Tt, st, targets=Y).backward()
    return grad_of(It), grad_of(Tt), float(grad_of(st))


def rel(a, b):
    """The largest |a − b| relative to the largest |b| (one number per comparison)."""
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(b).max())


T_fig = unit_rows(N, D)
I_fig = F.l2_normalize(tm.tensor(T_fig + 0.6 * rng.standard_normal((N, D)))).numpy()  # partly aligned
G, dI, dT, ds = clip_gradient_by_hand(I_fig, T_fig, LOGIT_SCALE_INIT)
dI_auto, dT_auto, ds_auto = clip_gradient_by_autograd(I_fig, T_fig, LOGIT_SCALE_INIT)
errors = {"dL/dI": rel(dI, dI_auto), "dL/dT": rel(dT, dT_auto), "dL/ds": rel(ds, ds_auto)}
print("hand formula vs autograd, relative difference:", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < 1e-10

# %% [markdown]
# G itself can be read off autograd too, with a small trick: make T the identity matrix
# (D = N) and s = 0. Then Z = I·Tᵀ = I, so autograd's gradient with respect to I *is*
# ∂L/∂Z. (`clip_loss` does not normalise its inputs, so any matrix can stand in for Z.)

# %%
Z_fig = math.exp(LOGIT_SCALE_INIT) * I_fig @ T_fig.T
Z_leaf = leaf(Z_fig)
F.clip_loss(Z_leaf, tm.tensor(np.eye(N)), tm.tensor(np.array(0.0))).backward()
print(f"dL/dZ: hand formula vs autograd, relative difference {rel(G, grad_of(Z_leaf)):.1e}")
assert rel(G, grad_of(Z_leaf)) < 1e-10
print("diagonal of 2N·G (pull towards the own caption): ", np.diag(2 * N * G).round(3))
print("largest off-diagonal entry of 2N·G (push away):   ", (2 * N * G)[~np.eye(N, dtype=bool)].max().round(3))
assert np.all(np.diag(G) < 0) and np.all(G[~np.eye(N, dtype=bool)] > 0)

# %% [markdown]
# The diagonal of G is negative (raise the right pairs) and everything off it is positive
# (lower the wrong pairs): the push apart, entry by entry. The figure shows the four
# matrices for this batch of six partly aligned pairs.

# %%
fig, axes = plt.subplots(1, 4, figsize=(17, 4.3))
panels = [(Z_fig, "logits Z = e^s · I Tᵀ", "viridis", None),
          (softmax(Z_fig, axis=1), "P_rows: softmax along each row\n(image i → captions)", "Blues", (0, 1)),
          (softmax(Z_fig, axis=0), "P_cols: softmax along each column\n(caption j → images)", "Blues", (0, 1)),
          (G * 2 * N, "2N · dL/dZ = P_rows + P_cols − 2Y\n(negative: pull together; positive: push apart)",
           "RdBu_r", (-2, 2))]
for ax, (matrix, title, cmap, limits) in zip(axes, panels):
    vmin, vmax = limits if limits else (matrix.min(), matrix.max())
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    for i in range(N):
        for j in range(N):
            shade = (matrix[i, j] - vmin) / (vmax - vmin)
            dark = shade > 0.6 if cmap != "RdBu_r" else abs(shade - 0.5) > 0.3
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(N))
    ax.set_yticks(range(N))
    ax.set_xlabel("caption j")
    ax.set_ylabel("image i")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.suptitle(f"A batch of {N} partly aligned pairs at s = ln(1/0.07); targets Y = identity", y=1.02)
fig.tight_layout()
save_figure(fig, "11_logits_and_gradient.png")

# %% [markdown]
# ## 5. And the gradient check
#
# Autograd agreeing with a formula is strong evidence, but both could share a mistake in
# the forward pass. Finite differences (lesson 03) check the gradient against the loss
# itself: for I, T *and* the logit scale s, in float64, with a random projection of the
# output (here the output is a scalar, so the projection is just a random factor). Most
# entries agree to about 1e-8; the worst are the tiniest gradient entries, where the
# rounding of the loss (≈ 1e-16, divided by the step 1e-6) is a larger share of the
# answer. The library's tolerance, 1e-6, allows for that.

# %%
for name, targets in (("identity targets", None), ("soft targets", F.clip_targets([0, 1, 0, 2, 1, 3]))):
    report = gradcheck(lambda a, b, s: F.clip_loss(a, b, s, targets=targets),
                       [leaf(unit_rows(6, 5)), leaf(unit_rows(6, 5)), leaf(np.array(1.3))],
                       name=f"clip_loss, {name}")
    print(report)
    assert report.passed and len(report.checks) == 3

# %% [markdown]
# ## 6. Duplicate captions, soft targets and the loss floor
#
# The grammar is small, so a batch often holds two scenes with the same caption: two
# different pictures of "a small red circle". With identity targets, image 0's right
# answer is caption 0 only, and its twin caption 2, identical words, counts as a wrong
# answer to be pushed away.
#
# **Soft targets** fix what the targets say: row i spreads its probability evenly over
# every caption equal to its own. `clip_targets(ids)` builds that matrix from one id per
# sample (a caption string works as an id). It is symmetric, so the column targets are
# the same matrix and the gradient formula keeps its form, G = (P_rows + P_cols − 2Y)/2N.

# %%
captions = ["a small red circle", "a large blue square", "a small red circle", "a small green cross",
            "a large blue square", "a small red circle", "a large yellow triangle", "a small cyan circle"]
Y = F.clip_targets(captions)
print("soft targets Y (rows: images, columns: captions):")
print(np.array2string(Y, precision=2, suppress_small=True))
assert np.allclose(Y.sum(axis=1), 1) and np.allclose(Y, Y.T)

I_dup, T_dup = unit_rows(8, 5), unit_rows(8, 5)
hand = clip_gradient_by_hand(I_dup, T_dup, 2.0, Y)[1:]
auto = clip_gradient_by_autograd(I_dup, T_dup, 2.0, Y)
soft_errors = [rel(h, a) for h, a in zip(hand, auto)]
print(f"soft targets: hand formula vs autograd, relative differences "
      f"{', '.join(f'{e:.1e}' for e in soft_errors)}")
assert max(soft_errors) < 1e-10

# %% [markdown]
# **The floor.** A cross-entropy −Σ t log p is smallest when p = t, and then equals the
# entropy of t, −Σ t log t. A row whose caption appears k times has k equal targets of
# 1/k, entropy ln k: even a perfect model cannot get below it, because it cannot (and
# should not) prefer one of k identical captions. `clip_loss_floor(Y)` averages these
# entropies the way `clip_loss` averages its cross-entropies. Here "a small red circle"
# appears 3 times and "a large blue square" twice:
#
# $$\text{floor} = \frac{3\ln 3 + 2\ln 2 + 3\cdot\ln 1}{8}.$$
#
# To see the loss reach it, build the perfect embeddings: one direction per distinct
# caption, every image and caption of that caption on it (I = T up to duplicates), and
# turn the scale up.

# %%
floor = F.clip_loss_floor(Y)
expected_floor = (3 * math.log(3) + 2 * math.log(2)) / 8
print(f"floor = {floor:.6f};  (3 ln 3 + 2 ln 2) / 8 = {expected_floor:.6f}")
assert abs(floor - expected_floor) < 1e-12

distinct = list(dict.fromkeys(captions))
merged = np.eye(len(distinct))[[distinct.index(c) for c in captions]]   # twins share a direction
apart = np.eye(len(captions))                                            # every sample its own direction
print(f"{'s':>6} {'soft, twins merged':>19} {'hard, twins merged':>19} {'hard, twins apart':>18} "
      f"{'soft, twins apart':>18}")
for s in (0.0, 2.0, LOGIT_SCALE_INIT, LOGIT_SCALE_MAX):
    losses = [F.clip_loss(tm.tensor(e), tm.tensor(e), tm.tensor(np.array(s)), targets=t).item()
              for e, t in ((merged, Y), (merged, None), (apart, None), (apart, Y))]
    print(f"{s:6.2f} {losses[0]:19.6f} {losses[1]:19.6f} {losses[2]:18.6f} {losses[3]:18.6f}")
soft_merged, hard_merged, hard_apart, soft_apart = losses
assert abs(soft_merged - floor) < 1e-6 and abs(hard_merged - floor) < 1e-6
assert hard_apart < 1e-6 < floor < soft_apart

# %% [markdown]
# At the largest allowed scale (s = ln 100) the soft-target loss of the merged embeddings
# sits on the floor: the floor is the best possible score, and perfect embeddings reach
# it. During training, `tinymm/train/clip.py` logs the floor beside the loss, so a loss of
# 0.30 over a floor of 0.25 reads as "nearly done", not "stuck at 0.30".
#
# Two more columns are worth a careful look.
#
# - **Hard targets prefer the wrong answer.** With identity targets, the best embeddings
#   put the twins *apart* (loss → 0, below the floor): they reward the model for telling
#   two identical captions apart, treating a true match as a negative. Soft targets
#   punish exactly that (last column) and reward the merged answer.
# - **But here, the two losses coincide where it matters.** The text encoder is a
#   function of the words, so identical captions *always* get identical embeddings: the
#   "apart" configuration cannot happen. And when twin columns of Z are equal, averaging
#   the target over them changes nothing: hard and soft give the same loss (first and
#   second columns) and the same gradient for the model's weights. Soft targets start to
#   change training as soon as duplicates are *not* embedded identically: paraphrases,
#   augmented or noisy captions, or duplicate images. In this course their job is to make
#   the targets honest and the floor explicit.
#
# Let us confirm the last claim at a random point, not only at the perfect one. (Per twin,
# ∂L/∂T differs between hard and soft targets; but the text encoder gives both twins one
# vector, so what reaches its weights is the sum over each group of twins, and that agrees.)

# %%
I_rand = unit_rows(8, 5)
T_twins = unit_rows(len(distinct), 5)[[distinct.index(c) for c in captions]]   # twins identical
loss_soft = F.clip_loss(tm.tensor(I_rand), tm.tensor(T_twins), tm.tensor(np.array(2.0)), targets=Y).item()
loss_hard = F.clip_loss(tm.tensor(I_rand), tm.tensor(T_twins), tm.tensor(np.array(2.0))).item()
_, dI_soft_twins, dT_soft_twins, _ = clip_gradient_by_hand(I_rand, T_twins, 2.0, Y)
_, dI_hard_twins, dT_hard_twins, _ = clip_gradient_by_hand(I_rand, T_twins, 2.0)
# the text encoder gives twins one vector, so what reaches its weights is the sum over each group
group_sum = np.eye(len(distinct))[[distinct.index(c) for c in captions]].T     # (distinct, N)
dT_gap = np.abs(group_sum @ (dT_soft_twins - dT_hard_twins)).max()
print(f"identical twin embeddings: soft loss {loss_soft:.12f}, hard loss {loss_hard:.12f}; "
      f"dL/dI differ by {np.abs(dI_soft_twins - dI_hard_twins).max():.1e}, "
      f"dL/dT summed over each group of twins by {dT_gap:.1e}")
assert abs(loss_soft - loss_hard) < 1e-12 and np.allclose(dI_soft_twins, dI_hard_twins, atol=1e-14)
assert dT_gap < 1e-14

# %% [markdown]
# How much does the floor matter in practice? A real training batch of 128 scenes, half
# of them one-object scenes drawn from only 36 one-object captions (48 in the grammar,
# minus the 6 held-out colour–shape pairs in both sizes), has many repeats:

# %%
real = ShapesCaptions("train", n=128, seed=3)
real_floor = F.clip_loss_floor(F.clip_targets(real.captions))
print(f"a training batch of 128: {len(set(real.captions))} distinct captions, loss floor {real_floor:.3f} "
      f"(ln 128 = {math.log(128):.2f} at init)")
assert 0 < real_floor < 1

# %% [markdown]
# ## Recap
#
# - CLIP scores every image against every caption of the batch: Z = e^s I Tᵀ. The loss is
#   the mean of two cross-entropies, over the rows (image → caption, softmax along each
#   row) and over the columns (caption → image, softmax along each column).
# - The scale e^s is a learned inverse temperature: positive by construction, updated in
#   relative steps, initialised at 1/0.07 and clamped to [1, 100].
# - At initialisation, all logits are about equal and the loss is about ln N (ln N + e^{2s}/2D
#   for random unit vectors).
# - The gradient: ∂L/∂Z = (P_rows + P_cols − 2Y)/2N; ∂L/∂I = e^s G T, ∂L/∂T = e^s Gᵀ I,
#   ∂L/∂s = Σ G ⊙ Z. Every wrong caption pushes an image away in proportion to the
#   probability it steals: the force MSE lacked. Hand formula = autograd to about 1e-16
#   (float64 rounding).
# - Duplicate captions get soft targets (`clip_targets`); the entropy of the targets is
#   the loss floor (`clip_loss_floor`), reached by perfect embeddings at a large scale.
#   Identical captions embedded identically give the same loss with hard or soft targets.
# - Code: `clip_loss`, `clip_targets`, `clip_loss_floor` in `tinymm/functional/loss.py`;
#   the logit scale and its clamp in `tinymm/models/clip.py`. Lesson 12 trains with them.
#
# ## Exercises
#
# 1. **A one-sided loss.** Use only CE_rows (image → caption). Derive ∂L/∂Z and check it
#    against autograd with `softmax_cross_entropy` on Z. What does the loss no longer
#    ask of a caption? *Hint: the column softmax disappears from G; which pairs are then
#    only pushed through rows?*
# 2. **The gradient with respect to s.** For the "perfectly aligned" and the "partly
#    aligned" batches of section 2, compute ∂L/∂s = Σ G ⊙ Z at s = 0, 2 and 4 with
#    `clip_gradient_by_hand`, and check the signs against the slopes of the curves in
#    `11_temperature.png`. For which batch is it never zero, and what does that say about
#    the clamp? *Hint: gradient descent moves s against the sign of ∂L/∂s.*
# 3. **When soft targets change the gradient.** Give twin captions slightly different
#    embeddings (add noise of size 0.1 to one of them and renormalise). Compare ∂L/∂I for
#    hard and soft targets. Which one pushes image 0 away from its twin caption? *Hint:
#    look at the sign of G[0, 2] in both cases.*
#
# **Coded exercise**, graded by tinymm: the loss and its gradient for I, T and s in
# [`exercises/11_clip_loss.py`](exercises/11_clip_loss.py), then `python -m tinymm check clip_loss`.

# %%
print(f"lesson 11 done in {time.time() - lesson_start:.1f} s")
