# %% [markdown]
# # Lesson 08 — The text encoder: from words to one vector, without losing word order
#
# **What you will build.** The text half of our CLIP model. A caption becomes a row of
# integer ids (the **tokenizer**), each id picks a learned vector from a table (the
# **embedding**, whose backward pass must *add up* the gradients of a word that appears
# twice), and the vectors of one caption are averaged into one, skipping the padding
# (**masked mean pooling**). Then comes the main event: the simplest text encoder, a bag of
# words, cannot tell "a small red circle left of a large blue square" from "a large blue
# square left of a small red circle". You will see exactly why, fix it with position
# embeddings and a per-token layer, and prove the fix by training two small image–caption
# matchers, one with each text encoder.
#
# **Why.** In our captions, meaning lives in word order. "Red" belongs to the circle
# because it comes right before "circle"; which object is on the left depends on which
# comes first. A text encoder that ignores order cannot learn any of that, however long
# it trains.
#
# **Needs.** Lesson 05 (softmax cross-entropy: section 5 trains with it), lesson 07 (the
# shapes dataset, the image encoder, and a training loop with Adam). Lesson 03's gradient checks are used
# throughout.

# %%
import time
import warnings

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
import tinymm.functional as F
from tinymm import backend, optim
from tinymm.data import ShapesCaptions, all_captions, one_edit_variants, shapes_tokenizer
from tinymm.gradcheck import gradcheck
from tinymm.metrics import hard_negative_accuracy
from tinymm.models import BagOfWordsTextEncoder, ImageEncoder, TextEncoder
from tinymm.plots import as_rgb, fast_mode, pick, save_figure

lesson_start = time.time()
print("fast mode" if fast_mode() else "full mode", "| device:", tm.get_default_device())
tm.manual_seed(0)
rng = np.random.default_rng(0)


def grad_of(t):
    """A tensor's gradient as a NumPy array (copied off the GPU when there is one)."""
    return backend.to_numpy(t.grad)

# %% [markdown]
# ## 1. The tokenizer: captions as rows of integers
#
# A network computes with numbers, not words. The tokenizer (**`tinymm/data/tokenizer.py`**)
# gives every word of a fixed vocabulary an integer id and writes each caption as a row of
# ids. Our grammar has only 16 words, so there is nothing clever to do: split on spaces and
# look each word up. Four ids are reserved for special tokens:
#
# | id | token | role |
# |---|---|---|
# | 0 | `<pad>` | fills the row after the caption, so that every row has the same length |
# | 1 | `<bos>` | "beginning of sequence": the first token of every row |
# | 2 | `<eos>` | "end of sequence": marks where the caption stops |
# | 3 | `<unk>` | stands for any word that is not in the vocabulary |
#
# The longest caption has 10 words, so with `<bos>` and `<eos>` every row has 12 ids. A
# batch of captions is then one rectangular integer array, shape $(N, 12)$. (`<bos>` and
# `<eos>` matter most for the caption decoder of lesson 15, which writes captions word by
# word and has to know where to start and when to stop.)

# %%
tokenizer = shapes_tokenizer()
print(tokenizer, "\nvocabulary:", {i: w for i, w in enumerate(tokenizer.id_to_word)})
caption = "a small red circle left of a large blue square"
swapped = "a large blue square left of a small red circle"
ids = tokenizer.encode([caption, "a small red circle"])
print("encoded:\n", ids)
print("decoded:", tokenizer.decode(ids))
assert ids.shape == (2, 12) and ids.dtype == np.int64
assert ids[0, 0] == tokenizer.bos_id and ids[0, 11] == tokenizer.eos_id and ids[1, 5] == tokenizer.eos_id
assert (ids[1, 6:] == tokenizer.pad_id).all()

# the round trip: every one of the grammar's 4,560 captions comes back unchanged
captions = all_captions()
assert tokenizer.decode(tokenizer.encode(captions)) == captions
print(f"round trip: decode(encode(c)) == c for all {len(captions)} captions of the grammar")

# a word outside the vocabulary becomes <unk>, with a warning instead of silence
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    unknown = tokenizer.encode(["a small purple circle"])
print("'a small purple circle' ->", unknown[0], "->", tokenizer.decode(unknown), "|", caught[0].message)
assert unknown[0, 3] == tokenizer.unk_id and len(caught) == 1

# %% [markdown]
# ## 2. Embeddings: one learned vector per word
#
# An embedding table is a weight matrix $W$ of shape $(V, D)$: row $v$ is the vector of
# token $v$. For a row of ids $i_0, \dots, i_{L-1}$, the lookup returns
#
# $$x_l = W[i_l] \qquad (l = 0, \dots, L-1), \qquad \text{out shape } (L, D).$$
#
# That is plain indexing; the backward pass is the interesting part. Output $x_l$ is a copy
# of row $i_l$, so $\partial L / \partial W[v]$ collects the upstream gradient $g_l$ of every
# position that copied row $v$:
#
# $$\frac{\partial L}{\partial W[v]} = \sum_{l \,:\, i_l = v} g_l .$$
#
# A word that appears twice gets the **sum** of two gradients. In NumPy the tempting line
# `dW[ids] = g` is wrong: with a repeated index, the later write overwrites the earlier one.
# Even `dW[ids] += g` is wrong, for the same reason (it reads, adds and writes once per
# *distinct* index). The right tool is a **scatter-add**, `np.add.at(dW, ids, g)` (or
# `cupyx.scatter_add` on the GPU), which adds every contribution. It is
# `backend.scatter_add`, used by `Embedding.backward` in **`tinymm/functional/embedding.py`**.
#
# Positions count from 0, as array indices do. Our caption has the word "a" twice, at
# positions 1 and 7 (position 0 holds `<bos>`). Let us check that row "a" of the gradient is
# $g_1 + g_7$.

# %%
ids = tokenizer.encode([caption])[0]                     # (12,)
a_id = tokenizer.word_to_id["a"]
print("ids:", ids, f"| 'a' is id {a_id}, at positions {np.flatnonzero(ids == a_id).tolist()}")
table = tm.tensor(rng.standard_normal((tokenizer.vocab_size, 3)), requires_grad=True)   # V=20, D=3
vectors = F.embedding(ids, table)                        # (12, 3)
g = rng.standard_normal((12, 3))
vectors.backward(tm.tensor(g))
print("gradient row of 'a':     ", grad_of(table)[a_id].round(4))
print("g at position 1 + at 7:  ", (g[1] + g[7]).round(4))
assert np.allclose(grad_of(table)[a_id], g[1] + g[7], atol=1e-12)

wrong = np.zeros((tokenizer.vocab_size, 3))
wrong[ids] = g                                           # the tempting, wrong version
print("dW[ids] = g keeps only:  ", wrong[a_id].round(4), "(position 7, the last write)")
assert np.allclose(wrong[a_id], g[7]) and not np.allclose(wrong[a_id], g[1] + g[7])
# rows of words that do not occur get no gradient at all
absent = [v for v in range(tokenizer.vocab_size) if v not in ids]
assert np.all(grad_of(table)[absent] == 0)

# a gradient check (lesson 03) with repeated ids in a batch of two rows
report = gradcheck(lambda t: F.embedding(tokenizer.encode([caption, swapped]), t),
                   [tm.tensor(rng.standard_normal((tokenizer.vocab_size, 4)), requires_grad=True)],
                   name="embedding with repeated ids")
print(report)
assert report.passed

# %% [markdown]
# ## 3. Masked mean pooling: one vector per caption
#
# After the lookup a batch of captions is an array of shape $(N, L, D)$. We need one vector
# per caption, $(N, D)$, and the simplest summary is the average over the tokens. But not
# over *all* $L$ positions: the padding is not part of the caption, and a short caption
# would be diluted by its padding. With a mask $m_l = 1$ for real tokens and $0$ for padding,
# and $c = \sum_l m_l$ real tokens,
#
# $$\text{out} = \frac{1}{c}\sum_{l=0}^{L-1} m_l\, x_l,
#   \qquad \frac{\partial L}{\partial x_l} = \frac{m_l}{c}\, g .$$
#
# Each real token receives an equal share $g / c$ of the upstream gradient; padding
# receives nothing. That is `MaskedMean` in `tinymm/functional/embedding.py`.

# %%
x = tm.tensor(rng.standard_normal((2, 12, 3)), requires_grad=True)
tokens = tokenizer.encode([caption, "a small red circle"])
mask = tokens != tokenizer.pad_id                         # 12 and 6 real tokens
pooled = F.masked_mean(x, mask, axis=1)
assert np.allclose(pooled.numpy()[1], x.numpy()[1, :6].mean(axis=0), atol=1e-12)
g = rng.standard_normal((2, 3))
pooled.backward(tm.tensor(g))
print("gradient of the short caption's tokens (6 real, then padding):\n", grad_of(x)[1].round(3))
assert np.allclose(grad_of(x)[1, :6], g[1] / 6, atol=1e-12) and np.all(grad_of(x)[1, 6:] == 0)
report = gradcheck(lambda t: F.masked_mean(t, mask, axis=1),
                   [tm.tensor(rng.standard_normal((2, 12, 3)), requires_grad=True)], name="masked_mean")
print(report)
assert report.passed

# %% [markdown]
# ## 4. The bag of words, and why it cannot read our captions
#
# Embedding, then masked mean, then a Linear layer: that is a complete text encoder,
# `BagOfWordsTextEncoder` in **`tinymm/models/encoders.py`**. It is called a *bag of words*
# because the mean does not care about order. Adding numbers gives the same result in any
# order, so the encoder sees only *which* words a caption contains and how often, as if
# they had been shaken up in a bag.
#
# Now look at our two captions:
#
# ```
# a small red circle left of a large blue square
# a large blue square left of a small red circle
# ```
#
# They describe different scenes (the circle is on the left in one, on the right in the
# other), but they contain exactly the same words, each the same number of times. So the
# bag of words must give them the same vector, whatever its weights are. Not "similar":
# the same. No amount of training can change that.

# %%
pair = tokenizer.encode([caption, swapped])
assert sorted(pair[0]) == sorted(pair[1]) and not np.array_equal(pair[0], pair[1])


def cosine(u, v):
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


tm.manual_seed(0)
bow = BagOfWordsTextEncoder(tokenizer.vocab_size)
with tm.no_grad():
    bow_32 = bow(pair).numpy()
    bow_64 = bow.double()(pair).numpy()                  # the same weights in float64
bow.float()
diff_32 = np.abs(bow_32[0] - bow_32[1]).max() / np.abs(bow_32[0]).max()
diff_64 = np.abs(bow_64[0] - bow_64[1]).max() / np.abs(bow_64[0]).max()
print(f"bag of words, float32: cosine {cosine(*bow_32.astype(np.float64)):.9f}, largest difference {diff_32:.1e}")
print(f"bag of words, float64: cosine {cosine(*bow_64):.16f}, largest difference {diff_64:.1e}")
assert diff_32 < 1e-6 and diff_64 < 1e-14
assert abs(cosine(*bow_64) - 1.0) < 1e-15

# %% [markdown]
# The two embeddings are identical, up to rounding. Why any difference at all? The
# computer adds the twelve word vectors in the order of the caption, and floating-point
# addition is not exactly associative: $(a + b) + c$ and $(c + b) + a$ can differ in the
# last bit. In float32 that last bit is about $10^{-7}$ of the value; in float64 it is
# about $10^{-16}$. That the difference shrinks exactly by the precision of the number
# format tells us it is rounding, not information. Mathematically the two vectors are the
# same, and their cosine is 1.
#
# ### The fix, step by step
#
# Give each token a vector for its **position** as well: a second table $P$ of shape
# $(L_\max, D)$, learned like the word table, and use $e_{i_l} + p_l$ for the token at
# position $l$. Surely "red" at position 3 (first caption) and "red" at position 9 (swapped
# caption) now differ?
#
# They do, but the mean undoes it. For two captions of the same length,
#
# $$\frac{1}{L}\sum_{l}\,(e_{i_l} + p_l) = \frac{1}{L}\sum_l e_{i_l} + \frac{1}{L}\sum_l p_l ,$$
#
# and the second term is the same for both captions, because both use positions
# $0, \dots, 11$. The sum has split into "which words" plus "which positions", and the link
# between a word and its position is lost again. A Linear layer $A(e + p) + b$ before the
# mean does not help either: it is linear, so it splits the same way.
#
# What does help is a **non-linearity before the mean**. With
# $h_l = \operatorname{ReLU}(A(e_{i_l} + p_l) + b)$, the ReLU cuts off the negative
# coordinates of the *sum* $A e_{i_l} + A p_l + b$, and which coordinates are cut depends on
# the word and the position together. "Red at position 3" is now a vector of its own, not
# "red" plus "position 3". That is `TextEncoder` (the default): embedding + position
# embedding → per-token Linear + ReLU → masked mean → two Linear layers. (A transformer goes
# further and lets tokens look at each other with attention; our grammar does not need it.)
#
# Let us build the pooled vector in those four steps, with the tables of a freshly made
# `TextEncoder`, in float64 so that rounding cannot hide anything.

# %%
tm.manual_seed(0)
encoder = TextEncoder(tokenizer.vocab_size).double()
linear, relu = encoder.token_layer[0], encoder.token_layer[1]
mask = pair != tokenizer.pad_id
with tm.no_grad():
    words = encoder.token_embedding(pair)                              # (2, 12, 128)
    places = encoder.position_embedding(np.arange(pair.shape[1]))      # (12, 128)
    steps_to_fix = {
        "mean of word vectors (bag of words)": F.masked_mean(words, mask),
        "+ position embeddings": F.masked_mean(words + places, mask),
        "+ a per-token Linear": F.masked_mean(linear(words + places), mask),
        "+ a per-token Linear and ReLU": F.masked_mean(relu(linear(words + places)), mask),
    }
    final = encoder(pair).numpy()
print(f"{'pooled vector after':<38} {'cosine(caption, swapped)':>26} {'largest difference':>20}")
differences = {}
for name, pooled in steps_to_fix.items():
    u, v = pooled.numpy()
    differences[name] = np.abs(u - v).max() / np.abs(u).max()
    print(f"{name:<38} {cosine(u, v):>26.16f} {differences[name]:>20.1e}")
print(f"{'TextEncoder output (after the head)':<38} {cosine(*final):>26.16f}")
for name in list(steps_to_fix)[:3]:
    assert differences[name] < 1e-14, name            # identical up to float64 rounding
assert differences["+ a per-token Linear and ReLU"] > 1e-2
assert cosine(*final) < 0.999

# %% [markdown]
# The first three rows agree to the sixteenth digit; only the ReLU separates the two
# captions. At initialisation the difference is modest (the weights are random); training
# will make it as large as it needs to be.
#
# The same check as a gradient check: the whole `TextEncoder`, tiny and in float64, with
# respect to every one of its parameters (token table, position table and three Linear
# layers), on rows with a repeated id and with padding.

# %%
tiny = TextEncoder(vocab_size=7, max_len=5, embed_dim=3, width=4).double()
tiny_tokens = np.array([[1, 4, 5, 4, 2], [1, 6, 2, 0, 0]])
report = gradcheck(lambda t, *params: tiny(t), [tm.tensor(tiny_tokens), *tiny.parameters()],
                   name="TextEncoder, every parameter")
print(report)
assert report.passed and len(report.checks) == 8

# %% [markdown]
# ## 5. The proof by training
#
# An argument is good; a measurement is better. We train two small image–caption matchers
# that differ only in the text encoder: `BagOfWordsTextEncoder` or `TextEncoder`. Everything
# else is the same: the image encoder of lesson 07, the seed, the batches, the steps, the
# learning rate.
#
# **The task: pick your own caption.** Each step draws a fresh batch of two-object scenes.
# Every image must pick its own caption out of all the captions of the batch. That is a
# classification, and you know how to train one. In lesson 07 the classifier scored an image
# $x$ against each of four classes with one row of a weight matrix per class,
# $z_k = w_k \cdot f(x)$. Here the "classes" are the batch's captions, and the row for
# caption $j$ is what the text encoder makes of it, $g(t_j)$. Image $i$ scores caption $j$ by
# the cosine of section 4, times a fixed 10:
#
# $$z_{ij} = 10 \cdot \cos\big(f(x_i),\, g(t_j)\big), \qquad
#   L = -\frac{1}{N}\sum_{i=0}^{N-1} \log \operatorname{softmax}(z_i)_{i}.$$
#
# The right class of image $i$ is caption $i$ (both counted from 0, like the rows of the
# batch), so this is lesson 05's softmax cross-entropy with targets $0, 1, \dots, N-1$. The gradient flows into *both* encoders: the image encoder
# learns to put a picture where its caption is, the text encoder to put a caption where its
# picture is. Why the factor 10? A cosine lies between −1 and 1, and a softmax of numbers that
# close together cannot be confident; 10 stretches them. A caption that occurs twice in a batch
# would be the right answer for two images at once, so we keep its first scene only.
#
# This is the first sketch of CLIP. Lessons 09–12 turn it into the real thing: the cosine
# as an op with its own backward (09), why simply pulling each pair together fails (10), a
# loss that scores both directions and learns the factor 10 (11), and the full training (12).
#
# The loop is the one of lesson 07, written out: zero the gradients, forward, backward, step.

# %%
steps = pick(300, 10)
batch_size = pick(48, 16)
SCALE = 10.0  # cosines are in [-1, 1]; the softmax needs a wider range to become confident


def unit_rows(x):
    """Each row divided by its length, so that a dot product of two rows is their cosine."""
    return x / ((x * x).sum(axis=1, keepdims=True) ** 0.5)


def train_matcher(text_encoder):
    """Train a fresh ImageEncoder together with text_encoder; returns the image encoder and the losses."""
    image_encoder = ImageEncoder()
    optimizer = optim.Adam(list(image_encoder.parameters()) + list(text_encoder.parameters()), lr=2e-3)
    losses = []
    for step in range(steps):
        batch = ShapesCaptions("train", n=batch_size, seed=20_000 + step, one_object_fraction=0.0)
        _, first = np.unique(batch.captions, return_index=True)         # each caption once
        images = batch.images[first]
        tokens = tokenizer.encode([batch.captions[i] for i in first])
        scores = SCALE * unit_rows(image_encoder(images)) @ unit_rows(text_encoder(tokens)).T  # (n, n)
        loss = F.softmax_cross_entropy(scores, np.arange(len(first)))   # image i's class is caption i
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return image_encoder, losses

# %% [markdown]
# Then the test. For each fresh two-object test scene, we score the image against its
# true caption and against the **argument-swapped** caption (the two objects trade
# places), by cosine similarity, as in training. The model passes a scene if the true
# caption scores *strictly* higher: a tie counts as a failure, since a model that cannot
# tell the two apart should not get credit for guessing. The fraction of scenes passed is
# `hard_neg_order` from `hard_negative_accuracy` in `tinymm/metrics.py`. It also scores
# other one-word edits of the caption (another colour, shape, size or relation), which we
# plot alongside.

# %%
test = ShapesCaptions("test", n=pick(1000, 100), seed=8, one_object_fraction=0.0)  # two objects each
swapped_captions = [one_edit_variants(c)["order"][0] for c in test.captions]

results, margins, seconds = {}, {}, {}
for kind, make_text_encoder in [("bow", BagOfWordsTextEncoder), ("default", TextEncoder)]:
    tm.manual_seed(0)                                   # the same start for both
    text_encoder = make_text_encoder(tokenizer.vocab_size)
    start = time.perf_counter()
    image_encoder, losses = train_matcher(text_encoder)
    seconds[kind] = time.perf_counter() - start

    def encode_text(captions):
        with tm.no_grad():
            return unit_rows(text_encoder(tokenizer.encode(list(captions))).numpy())

    with tm.no_grad():
        image_emb = unit_rows(image_encoder(test.images).numpy())
    results[kind] = hard_negative_accuracy(image_emb, test.captions, encode_text)
    # how much more the true caption scores than the swapped one, scene by scene
    margins[kind] = np.sum(image_emb * (encode_text(test.captions) - encode_text(swapped_captions)), axis=1)
    print(f"{kind:>8}: {steps} steps in {seconds[kind]:.0f} s, loss {losses[0]:.2f} at step 1, "
          f"{np.mean(losses[-10:]):.2f} over the last 10 steps, "
          f"hard_neg_order {results[kind]['hard_neg_order']:.3f}, "
          f"largest |margin| {np.abs(margins[kind]).max():.1e}")

bow_order, default_order = results["bow"]["hard_neg_order"], results["default"]["hard_neg_order"]
bow_ties = float(np.mean(margins["bow"] == 0))
print(f"bag of words: exact ties on {bow_ties:.0%} of scenes; the rest differ by rounding only")
# whatever it learned, the bag of words scores the two captions the same, up to rounding
assert np.abs(margins["bow"]).max() < 1e-5
if not fast_mode():
    assert bow_order <= 0.05
    assert default_order >= 0.85

# %%
kinds = ["colour", "shape", "size", "relation", "order"]
fig, (ax_example, ax_bars, ax_hist) = plt.subplots(1, 3, figsize=(16, 4.6),
                                                   gridspec_kw={"width_ratios": [0.8, 1.3, 1.1]})
example = 0
ax_example.imshow(as_rgb(test.images[example]))
ax_example.set_xticks([])
ax_example.set_yticks([])
ax_example.set_title("one test scene", fontsize=10)
ax_example.set_xlabel(f"true: {test.captions[example]}\nswapped: {swapped_captions[example]}\n"
                      f"score(true) − score(swapped): bag of words {margins['bow'][example]:+.1e},\n"
                      f"positions + per-token ReLU {margins['default'][example]:+.3f}", fontsize=8)

width = 0.38
for offset, kind, colour, label in [(-width / 2, "bow", "tab:gray", "bag of words"),
                                    (width / 2, "default", "tab:blue", "positions + per-token ReLU")]:
    values = [results[kind][f"hard_neg_{k}"] for k in kinds]
    bars = ax_bars.bar(np.arange(len(kinds)) + offset, values, width, color=colour, label=label)
    for bar, value in zip(bars, values):
        ax_bars.text(bar.get_x() + bar.get_width() / 2, value + 0.015, f"{value:.2f}", ha="center", fontsize=8)
ax_bars.axhline(0.5, ls="--", color="gray", lw=1)
ax_bars.text(1, 0.52, "a coin toss (one variant:\nrelation, order)", ha="center", va="bottom", fontsize=8,
             color="gray")
ax_bars.set_xticks(range(len(kinds)), [f"swapped\n{k}" if k == "order" else f"other\n{k}" for k in kinds])
ax_bars.get_xticklabels()[-1].set_fontweight("bold")
ax_bars.set_ylim(0, 1.22)
ax_bars.set_ylabel("fraction of scenes where the true caption wins")
ax_bars.set_title(f"hard negatives after {steps} training steps ({len(test)} two-object test scenes)", fontsize=10)
ax_bars.legend(loc="upper center", ncol=2, fontsize=8)

bins = np.linspace(min(margins["default"].min(), -0.05), margins["default"].max(), 50)
ax_hist.hist(margins["default"], bins=bins, color="tab:blue", alpha=0.8, label="positions + per-token ReLU")
ax_hist.hist(margins["bow"], bins=bins, color="tab:gray", alpha=0.9,
             label=f"bag of words (every |margin| ≤ {max(np.abs(margins['bow']).max(), 1e-9):.1e})")
ax_hist.set_yscale("log")
ax_hist.axvline(0, color="k", lw=0.8)
ax_hist.set_xlabel("score(true caption) − score(swapped caption)")
ax_hist.set_ylabel("scenes (log scale)")
ax_hist.set_title("the margin, scene by scene", fontsize=10)
ax_hist.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "08_swapped_captions.png")

# %% [markdown]
# ![swapped captions](figures/08_swapped_captions.png)
#
# In the full run (300 steps of 48 scenes for each model: one and a half to two and a half
# minutes each on our 2-core machine while other jobs shared it) the default encoder prefers
# the true caption over the swapped one in **98%** of the test scenes.
# The bag of words manages **0%**. Its two scores differ only by rounding (every margin in
# the histogram is smaller than $2 \times 10^{-7}$): which caption "wins" is decided by the
# last bits of two floating-point sums, not by anything the model knows. So the metric
# (`tinymm/metrics.py`) counts a win by less than $10^{-6}$ as a tie, and a tie as a
# failure. Nothing the bag of words learned can move its score off that line.
#
# The bars are the other hard negatives. For colour, shape and size edits the true
# caption must beat every variant (10, 6 and 2 of them), so chance is lower than a coin
# toss. Both encoders do about equally well on colour, size and relation edits, because
# those change *which* words the caption contains, and a bag of words sees that. Shape
# edits are hard for both after this short run: telling a circle from a square is the
# image encoder's job, and lesson 07 showed that it needs a few hundred steps of direct
# supervision to learn it. Only the order of the objects separates the two text encoders,
# and there the bag of words is helpless by construction. (The full CLIP training of
# `python -m tinymm train`, lessons 11–12, also reaches 0.99 on swapped captions.)

# %%
print(f"lesson 08 ran in {time.time() - lesson_start:.0f} s")

# %% [markdown]
# ## Recap
#
# - The **tokenizer** (`tinymm/data/tokenizer.py`) maps each caption to a row of 12 ids:
#   `<bos>`, the words, `<eos>`, then `<pad>`; unknown words become `<unk>` with a warning.
#   `decode(encode(c)) == c` for all 4,560 captions.
# - The **embedding** lookup is indexing; its backward is a **scatter-add**, so a word that
#   occurs twice gets the sum of both gradients (`dW[ids] = g` would keep only one).
# - **Masked mean pooling** averages the real tokens only; each gets $g / c$ of the gradient,
#   padding gets none.
# - A **bag of words** gives argument-swapped captions the same vector (equal up to
#   rounding, cosine 1). Position embeddings alone do not help, because a mean of sums
#   splits into a mean of words plus a mean of positions; neither does a Linear layer. A
#   **non-linearity before pooling** (Linear + ReLU per token) ties each word to its place.
# - Trained for 300 steps to pick each image's caption out of its batch (softmax
#   cross-entropy over cosines), the default encoder picks the true caption over the swapped
#   one for 98% of test scenes; the bag of words for 0%: its two scores differ only by
#   rounding, which counts as a tie.
#
# Next, lesson 09 turns section 5's `unit_rows` into an op of its own, L2 normalisation,
# derives its backward pass, and builds the matrix of cosine similarities that CLIP uses.
#
# ## Exercises
#
# 1. **A mean that counts words.** Show that the bag of words' pooled vector equals
#    $\frac{1}{c}\, n^\top W$, where $n$ is the vector of word counts of the caption (length
#    $V$). Build $n$ for both captions with `np.bincount` and check that they are equal.
#    *Hint:* `np.bincount(ids, minlength=tokenizer.vocab_size)`, without the padding.
# 2. **Which relations survive?** Run `one_edit_variants` on a caption and list its
#    variants of every kind. For which kinds does a bag of words see a different multiset
#    of words, and for which not? *Hint:* compare `sorted(caption.split())` for the caption
#    and each variant.
# 3. **A different non-linearity.** Replace the ReLU of the per-token layer with `tanh`
#    (build a small encoder of your own from `nn.Embedding`, `nn.Linear`, `nn.Tanh` and
#    `F.masked_mean`). Do the swapped captions still get different vectors? What if you
#    drop the non-linearity and put two Linear layers there? *Hint:* a composition of
#    linear maps is linear; check the splitting argument of section 4.
#
# **Coded exercise**, graded by tinymm: [`exercises/08_embedding.py`](exercises/08_embedding.py), then
# `python -m tinymm check embedding`.
