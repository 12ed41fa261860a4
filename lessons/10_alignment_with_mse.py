# %% [markdown]
# # Lesson 10 — Alignment with MSE: the naive objective, and why it collapses
#
# **What you will build.** Nothing new in the library: you will train the dual encoder
# (an image encoder and a text encoder, each ending in the L2 normalisation of lesson 09)
# with the most obvious objective there is, "put each image's embedding where its
# caption's embedding is", and watch it fail. You will measure the failure three ways:
# the loss (it goes to almost 0), the spread of the embeddings (it shrinks by a factor of
# several hundred) and retrieval (it drops to chance).
#
# **Why.** A loss that reaches 0 is not a model that works. Seeing exactly *how* this
# objective fails tells you what the CLIP loss of lesson 11 must add: a force that pushes
# the embeddings of *non-matching* pairs apart.
#
# **Needs.** Lesson 09 (unit vectors and cosine similarity). Lessons 07 and 08 (the two
# encoders) help but are not required: here they are black boxes that output vectors.
#
# Run it as a script (`python lessons/10_alignment_with_mse.py`) or open it as a notebook.
# A full run trains two small models on the CPU and takes under a minute.

# %%
import tempfile
import time

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
import tinymm.functional as F
from tinymm.data import shapes_tokenizer
from tinymm.metrics import retrieval_metrics
from tinymm.plots import fast_mode, pick, save_figure
from tinymm.train import TrainConfig, build_dual_encoder, encoders_of, evaluation_sets, train_clip

lesson_start = time.time()
print("fast mode" if fast_mode() else "full mode", "| device:", tm.get_default_device())

# %% [markdown]
# ## 1. The naive objective
#
# The dual encoder maps an image to a unit vector f(image) and a caption to a unit vector
# g(caption), both in the same D = 64 dimensional space. We want an image and its caption
# to land in the same place. The simplest way to say so is a squared distance, averaged
# over a batch of N pairs:
#
# $$L_{\text{MSE}} = \frac{1}{N D} \sum_{i=1}^{N} \lVert f(\text{image}_i) - g(\text{caption}_i) \rVert^2 .$$
#
# (The 1/(ND) is because `F.mse_loss` averages over all N·D numbers; only the scale
# changes.) For **unit** vectors a and b the squared distance is a cosine in disguise:
#
# $$\lVert a - b\rVert^2 = \lVert a\rVert^2 + \lVert b\rVert^2 - 2\,a\cdot b = 2 - 2\cos(a, b).$$
#
# So minimising the MSE is the same as maximising the cosine of each *matching* pair,
# and nothing else. Look at what the loss never mentions: the non-matching pairs. It
# never asks the image of a red circle to be *far* from the caption "a blue square".
#
# The loss is `mse_loss` in **`tinymm/functional/loss.py`**; the training loop that uses
# it when `loss="mse"` is `alignment_loss` and `train_clip` in **`tinymm/train/clip.py`**.

# %%
rng = np.random.default_rng(0)
a = rng.standard_normal((5, 64))
b = rng.standard_normal((5, 64))
a /= np.linalg.norm(a, axis=1, keepdims=True)
b /= np.linalg.norm(b, axis=1, keepdims=True)
squared = ((a - b) ** 2).sum(axis=1)
cosine = (a * b).sum(axis=1)
print("‖a − b‖²  :", squared.round(4))
print("2 − 2 cos :", (2 - 2 * cosine).round(4))
assert np.allclose(squared, 2 - 2 * cosine)
assert abs(F.mse_loss(tm.tensor(a), tm.tensor(b)).item() - squared.mean() / 64) < 1e-12

# %% [markdown]
# ## 2. Two perfect scores: one useful, one useless
#
# There are two very different ways to get L = 0.
#
# - **Perfect alignment with spread**: every caption has its own direction, and every
#   image of that caption points the same way. Retrieval would be perfect.
# - **Collapse**: *every* image and *every* caption map to the same vector c. Each pair
#   matches exactly, so the loss is 0 as well, and the embeddings say nothing at all.
#
# The loss cannot tell these apart. Below, both score exactly 0.

# %%
n_pairs, dim = 8, 64
spread = rng.standard_normal((n_pairs, dim))
spread /= np.linalg.norm(spread, axis=1, keepdims=True)
collapsed = np.tile(spread[:1], (n_pairs, 1))       # everything is the same vector c
loss_spread = F.mse_loss(tm.tensor(spread), tm.tensor(spread)).item()
loss_collapsed = F.mse_loss(tm.tensor(collapsed), tm.tensor(collapsed)).item()
print(f"loss, aligned and spread out : {loss_spread}")
print(f"loss, everything collapsed   : {loss_collapsed}")
assert loss_spread == 0.0 and loss_collapsed == 0.0

# %% [markdown]
# Which one does gradient descent find? The loss allows collapse; it does not demand it.
# (Free vectors, one per pair, would simply meet their partners and keep their spread.)
# But our embeddings come out of two *networks* whose weights are shared by every input,
# and for a network, collapse is the easy road:
#
# - the gradient of each pair, 2(f − g), has a part that is the same for the whole batch
#   (the average pull from where the images sit to where the captions sit). The last
#   layer's bias follows exactly that average, and moving it fixes *all N pairs at once*;
# - matching pair by pair instead needs the network to read colour and shape from pixels
#   and words: slow, and every bit of it makes the two towers disagree a little;
# - weight decay shrinks the weights that read the input and leaves a constant behind.
#
# So the outputs stop depending on the input. Let us watch it happen.
#
# ## 3. Training the dual encoder with MSE
#
# `TrainConfig(loss="mse")` and `train_clip` train the same model lesson 12 trains, on
# fresh random scenes of the shapes dataset every step, but with the MSE objective. We
# keep an untrained copy (`build_dual_encoder` with the same seed gives the same initial
# weights) to compare against, and evaluate on fresh test scenes.

# %%
def make_config(loss):
    # the plain pictures and image encoder of lesson 12 (its section 10 adds the default's recipe)
    return TrainConfig(name=f"lesson10_{loss}", loss=loss, device=tm.get_default_device(),
                       augment="", image_encoder="plain",
                       steps=pick(100, 15), batch_size=pick(64, 32), warmup_steps=pick(10, 3),
                       log_every=pick(5, 1), checkpoint_every=10**9, eval_size=pick(1000, 200))


mse_config = make_config("mse")
untrained = build_dual_encoder(mse_config, shapes_tokenizer()).to(mse_config.device)
untrained.eval()
with tempfile.TemporaryDirectory() as run_dir:
    t0 = time.time()
    mse_model, mse_history = train_clip(mse_config, run_dir)
    mse_seconds = time.time() - t0
final_mse = mse_history["loss"][-1]
print(f"MSE training: {mse_config.steps} steps of {mse_config.batch_size} pairs in {mse_seconds:.0f} s; "
      f"loss {mse_history['loss'][0]:.2e} (step {mse_history['step'][0]}) -> {final_mse:.2e}")
# 2 − 2 cos = D · loss: the average cosine of a matching pair
print(f"so the average cosine of a matching pair is {1 - 64 * final_mse / 2:.6f}")
assert final_mse < pick(2e-5, 1e-3)

# %% [markdown]
# The loss is tiny: matching images and captions are almost exactly aligned. Now the
# catch. We embed 1,000 fresh test scenes (fewer in fast mode) and their captions, with
# the untrained model and with the trained one, and measure how spread out the
# embeddings are:
#
# - the **mean pairwise cosine** between different images (and between different
#   captions). 1 means they all point the same way. We also print 1 − that, the spread
#   that is left;
# - the **singular values** of the (N, D) embedding matrix. If every row is the same
#   vector, the matrix has rank 1: one singular value √N and the rest 0. The ratio
#   σ₂/σ₁ measures how much the embeddings vary beyond one shared direction.

# %%
test = evaluation_sets(mse_config)["test"]


def embed(model):
    encode_image, encode_text = encoders_of(model)
    return encode_image(test.images).astype(np.float64), encode_text(test.captions).astype(np.float64)


def mean_pairwise_cosine(emb):
    n = len(emb)
    sims = emb @ emb.T
    return (sims.sum() - np.trace(sims)) / (n * n - n)


def spread_report(name, image_emb, text_emb):
    row = {"name": name}
    for side, emb in (("image", image_emb), ("text", text_emb)):
        sv = np.linalg.svd(emb, compute_uv=False)
        row[f"{side}_cos"] = mean_pairwise_cosine(emb)
        row[f"{side}_sv"] = sv / sv[0]
    print(f"{name:>10}: mean cosine images {row['image_cos']:.5f} (1 − it: {1 - row['image_cos']:.1e}), "
          f"captions {row['text_cos']:.5f} (1 − it: {1 - row['text_cos']:.1e}); "
          f"σ₂/σ₁ images {row['image_sv'][1]:.1e}, captions {row['text_sv'][1]:.1e}")
    return row


init_emb, mse_emb = embed(untrained), embed(mse_model)
init_spread = spread_report("untrained", *init_emb)
mse_spread = spread_report("MSE", *mse_emb)
shrink = (1 - init_spread["image_cos"]) / (1 - mse_spread["image_cos"])
print(f"the spread of the image embeddings shrank {shrink:.0f} times")
assert mse_spread["image_cos"] > 0.99 and mse_spread["text_cos"] > 0.99
assert shrink > pick(300, 10) and (1 - init_spread["text_cos"]) / (1 - mse_spread["text_cos"]) > 10

# %% [markdown]
# Two things to notice.
#
# **The untrained model is already bunched up** (mean cosine around 0.97). That is normal
# for a network with ReLUs: every hidden vector is non-negative, so all of them share a
# big common component, and the final linear layer maps that to one common direction.
# What tells inputs apart is the small part that varies around it: 1 − cosine ≈ 0.03.
#
# **MSE training squeezed that part out.** The spread left, 1 − mean cosine, fell by a
# factor of about 700 in a full run, and σ₂/σ₁ fell with it: the embedding matrix is
# rank 1 up to small noise. Every image and every caption sits at (almost) the same
# point. That is collapse.
#
# ## 4. Retrieval at chance level
#
# An embedding is useful if you can search with it. For each test caption we rank all
# test images by cosine (text → image, "t2i"), and for each image we rank the distinct
# captions (image → text, "i2t"). Recall@1 is the fraction of queries whose right answer
# comes first (`retrieval_metrics` in **`tinymm/metrics.py`**; ties count against the
# model, so an embedding that scores everything the same gets no credit).
#
# What is chance? For image → text, one right caption among U distinct ones: 1/U. For
# text → image it depends on how many test images share each caption, so we simply
# measure it: the same metric on random unit vectors, averaged over a few draws.

# %%
n_distinct = len(set(test.captions))
chance = {key: np.mean([retrieval_metrics(rng.standard_normal((len(test), 64)),
                                          rng.standard_normal((len(test), 64)), test.captions)[key]
                        for _ in range(5)])
          for key in ("t2i_r1", "i2t_r1")}
init_retrieval = retrieval_metrics(*init_emb, test.captions)
mse_retrieval = retrieval_metrics(*mse_emb, test.captions)
print(f"{len(test)} test scenes, {n_distinct} distinct captions: chance i2t recall@1 = 1/{n_distinct} "
      f"= {1 / n_distinct:.4f}")
print(f"{'':>15} {'t2i R@1':>8} {'i2t R@1':>8} {'i2t median rank':>16}")
for name, r in (("random vectors", chance), ("untrained", init_retrieval), ("MSE-trained", mse_retrieval)):
    median = f"{r['i2t_median_rank']:16.0f}" if "i2t_median_rank" in r else f"{'':>16}"
    print(f"{name:>15} {r['t2i_r1']:8.3f} {r['i2t_r1']:8.3f}{median}")
assert mse_retrieval["t2i_r1"] < 0.05 and mse_retrieval["i2t_r1"] < 0.05

# %% [markdown]
# Recall@1 is at chance level: the right caption is no more likely to come first than a
# random one. The loss says "solved"; the model knows nothing.
#
# ## 5. The same model with the CLIP loss, for contrast
#
# Lesson 11 builds the CLIP loss. Its idea in one line: for every image, score *all* the
# captions of the batch and ask the right one to win a softmax against the others. The
# wrong captions sit in the denominator, so lowering the loss means pushing them *away*:
# collapse would make every caption equally likely, a loss of exactly ln N. That is the
# loss of a blind guess among N captions, where training starts (lesson 11), and far above
# the best score, 0. (It is not the worst score: cross-entropy has no upper bound, and a model
# that is confidently wrong scores more than ln N.) Here is the same model, trained for the
# same number of steps with `loss="clip"` (lesson 12 trains it properly, for longer).

# %%
clip_config = make_config("clip")
with tempfile.TemporaryDirectory() as run_dir:
    clip_model, clip_history = train_clip(clip_config, run_dir)
clip_emb = embed(clip_model)
clip_spread = spread_report("CLIP", *clip_emb)
clip_retrieval = retrieval_metrics(*clip_emb, test.captions)
print(f"CLIP after {clip_config.steps} steps: t2i recall@1 {clip_retrieval['t2i_r1']:.3f}, "
      f"i2t recall@1 {clip_retrieval['i2t_r1']:.3f}")
assert 1 - clip_spread["image_cos"] > 5 * (1 - mse_spread["image_cos"])
assert clip_retrieval["i2t_r1"] > pick(0.2, 0.0)

# %% [markdown]
# ## 6. The picture
#
# Left: the singular values of the image-embedding matrix, each divided by the largest.
# Middle: how far apart images and captions are, as 1 − cosine on a log scale, for the
# matching pairs (solid) and for all the other pairs (dashed). Right: the MSE loss while
# training.

# %%
runs = (("untrained", init_emb, init_spread, "tab:gray"), ("MSE", mse_emb, mse_spread, "tab:red"),
        ("CLIP (same steps)", clip_emb, clip_spread, "tab:blue"))
same_caption = np.array(test.captions)[:, None] == np.array(test.captions)[None, :]
fig, (ax_sv, ax_hist, ax_loss) = plt.subplots(1, 3, figsize=(16, 4.6))
for name, (image_emb, text_emb), row, colour in runs:
    ax_sv.semilogy(np.arange(1, len(row["image_sv"]) + 1), row["image_sv"], "o-", ms=3, color=colour,
                   label=f"{name}: σ₂/σ₁ = {row['image_sv'][1]:.1e}")
    distance = np.clip(1 - image_emb @ text_emb.T, 1e-6, None)
    bins = np.logspace(-6, np.log10(2.5), 60)
    for pairs, style, label in ((distance[same_caption], "-", "matching"),
                                (distance[~same_caption], "--", "not matching")):
        ax_hist.hist(pairs, bins=bins, weights=np.full(len(pairs), 1 / len(pairs)), histtype="step",
                     lw=1.8 if style == "-" else 1.2, ls=style, color=colour, label=f"{name}, {label}")
ax_sv.set_xlabel("index k")
ax_sv.set_ylabel("σ_k / σ_1")
ax_sv.set_title("Singular values of the image embeddings\n(rank 1 = every image is the same vector)")
ax_sv.legend(fontsize=8)
ax_sv.grid(alpha=0.3)
mse_distance = 1 - mse_emb[0] @ mse_emb[1].T
mse_matching, mse_other = np.median(mse_distance[same_caption]), np.median(mse_distance[~same_caption])
print(f"MSE model, median 1 − cos: matching pairs {mse_matching:.1e}, non-matching pairs {mse_other:.1e}")
assert max(mse_matching, mse_other) < pick(1e-3, 0.05) and mse_other < 2 * mse_matching
ax_hist.set_xscale("log")
ax_hist.set_xlabel("1 − cos(image, caption)   (0 = same direction, 2 = opposite)")
ax_hist.set_ylabel("fraction of pairs per bin")
ax_hist.set_title("MSE pulls every image onto every caption;\nCLIP separates matching from non-matching")
ax_hist.legend(fontsize=7, loc="upper left")
ax_loss.semilogy(mse_history["step"], mse_history["loss"], "o-", ms=3, color="tab:red")
ax_loss.set_xlabel("training step")
ax_loss.set_ylabel("MSE loss")
ax_loss.set_title(f"MSE loss: {mse_history['loss'][0]:.1e} → {final_mse:.1e}\n"
                  f"(while retrieval is at chance: i2t R@1 = {mse_retrieval['i2t_r1']:.3f})")
ax_loss.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "10_embedding_spread.png")

# %% [markdown]
# Reading the middle panel: before training, images and captions are unrelated (cosine
# about 0, so 1 − cos about 1) whether they match or not. After MSE training every pair,
# matching or not, sits at 1 − cos ≈ 1e-4: the solid and dashed red curves lie on top of
# each other, which is exactly why retrieval is at chance. After the same number of CLIP
# steps the matching pairs (solid blue) have moved much closer than the others (dashed).

# %% [markdown]
# ## Recap
#
# - For unit vectors, ‖f − g‖² = 2 − 2 cos(f, g): the MSE objective only rewards the
#   cosine of *matching* pairs and says nothing about non-matching ones.
# - So it has a useless perfect score: map everything to one point and the loss is 0.
# - Two networks with shared weights find that point quickly: a full run brought the loss
#   to about 4e-6 while the spread of the embeddings shrank about 700 times and
#   recall@1 fell to chance level.
# - A low loss proves nothing by itself; measure what you care about (spread, retrieval).
# - The fix is to compare each image with *all* captions of the batch and make the right
#   one win: the symmetric cross-entropy of lesson 11, `clip_loss` in
#   `tinymm/functional/loss.py`. Lesson 12 trains with it.
#
# ## Exercises
#
# 1. **A margin against collapse.** Add to the MSE loss a term that punishes non-matching
#    pairs for being too close, for example the mean of max(0, cos(f_i, g_j) − 0.2)² over
#    i ≠ j. Train with it (write a small loop: `alignment_loss` in `tinymm/train/clip.py`
#    shows how to get the embeddings). Does the spread survive? *Hint: the new term is the
#    "push apart" force that section 2 found missing.*
# 2. **Free vectors do not collapse.** Make 32 image vectors and 32 caption vectors free
#    parameters (no network), L2-normalise them, and minimise the MSE with Adam. Measure
#    the mean pairwise cosine before and after. Why does it barely move? *Hint: each pair
#    has its own parameters, so no shared weight can carry a common pull.*
# 3. **Weight decay.** Train with `weight_decay=0.0` and with `0.2`. Which collapses
#    faster? *Hint: compare σ₂/σ₁ after the same number of steps.*

# %%
print(f"lesson 10 done in {time.time() - lesson_start:.1f} s")
