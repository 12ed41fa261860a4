"""How good is a CLIP model? Retrieval, zero-shot, per-attribute and hard-negative metrics.

A contrastive model is trained to put an image and its caption close together, so every metric
here starts from cosine similarities between L2-normalised embeddings and asks a question:

- **retrieval**: given a caption, is the right image near the top of all images (text -> image)?
  Given an image, is its caption near the top of all captions (image -> text)? We report
  recall@k (the fraction of queries whose right answer is among the first k) and the median and
  mean rank of the right answer;
- **zero-shot classification**: write every class as a caption ("a small red circle", ...),
  pick the caption nearest to the image, and never train a classifier;
- **per-attribute accuracy**: when the predicted caption is wrong, which word is wrong: the size,
  the colour, the shape, the relation?
- **hard negatives**: does the true caption beat captions that differ from it in one word only
  (another colour, the two objects swapped...)? A bag of words fails the swapped order.

Decoders get their own metrics: exact-match and token accuracy for captions, PSNR for images.

Everything works on plain NumPy arrays and never needs a model: the evaluation functions take
callables (``encode_image``, ``encode_text``) and convert what they return (NumPy or CuPy arrays,
or Tensors) with ``backend.to_numpy``. Metrics are bookkeeping, not ops: nothing here is
differentiated, so ordinary NumPy code on the CPU is the right tool.

Ties are counted pessimistically throughout: a right answer that scores exactly as high as a wrong
one ranks below it. A model that maps everything to the same vector must not look perfect.
"""

import math

import numpy as np

from . import backend
from .autograd import Tensor
from .batches import map_batches
from .data.grammar import COLOURS, EDIT_KINDS, RELATIONS, one_edit_variants, one_object_captions, parse_caption
from .data.shapes import RGB, SIGNED_DISTANCES


# ---------------------------------------------------------------- helpers


def _as_numpy(x):
    """A NumPy array from a NumPy/CuPy array or a Tensor (for what callables give back)."""
    if isinstance(x, Tensor):
        x = x.data
    if backend.is_array(x):
        return backend.to_numpy(x)
    return np.asarray(x)


def _embeddings(x, name, op):
    """A 2-D float NumPy array of embeddings with unit rows (already-unit rows are unchanged)."""
    x = _as_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"{op}: {name} must be 2-D (N, D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{op}: {name} must be a float array, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{op}: {name} contains NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12).astype(x.dtype)


def _distinct(texts):
    """The distinct texts in order of first appearance, and for each text its position among them."""
    position = {}
    for text in texts:
        position.setdefault(text, len(position))
    return list(position), np.array([position[text] for text in texts], dtype=np.int64)


def _encode_texts(encode_text, texts, batch_size, op):
    """Encode each distinct text once, ``batch_size`` texts per call (None: all in one call).

    Returns (embeddings (U, D) with unit rows, {text: row}).
    """
    unique, _ = _distinct(texts)
    if not unique:
        raise ValueError(f"{op}: there are no texts to encode")
    step = len(unique) if batch_size is None else batch_size
    if not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"{op}: batch_size must be a positive int or None, got {batch_size!r}")

    def check(emb, chunk):
        if emb.ndim != 2 or emb.shape[0] != len(chunk):
            raise ValueError(f"{op}: encode_text was given {len(chunk)} texts and must return ({len(chunk)}, D) "
                             f"embeddings, got shape {emb.shape}")
        return emb

    # metrics never need gradients: map_batches builds no graph
    table = _embeddings(map_batches(encode_text, unique, step, check), "encode_text output", op)
    return table, {text: i for i, text in enumerate(unique)}


def _check_texts(texts, name, op):
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{op}: {name} must be a list of str")
    return list(texts)


# ---------------------------------------------------------------- retrieval


def similarity_ranks(similarity, positives):
    """The 1-based rank of the best-ranked correct item for each query.

    ``similarity`` (Q, G): score of gallery item g for query q (higher is better).
    ``positives`` (Q, G) bool: which gallery items are correct answers; several may be (images
    that share a caption), and every query needs at least one.

    rank[q] = 1 + the number of *wrong* items scoring at least as high as the best correct one.
    So other correct items never push a query down, and a tie with a wrong item counts against
    the query (pessimistic ties). Returns (Q,) int64.
    """
    similarity = _as_numpy(similarity)
    positives = _as_numpy(positives)
    if similarity.ndim != 2 or positives.shape != similarity.shape:
        raise ValueError(
            f"similarity_ranks: similarity must be 2-D (Q, G) and positives the same shape, "
            f"got {similarity.shape} and {positives.shape}"
        )
    if positives.dtype != bool:
        raise TypeError(f"similarity_ranks: positives must be a bool array, got dtype {positives.dtype}")
    if not np.all(np.isfinite(similarity)):
        raise ValueError("similarity_ranks: similarity contains NaN or inf")
    no_positive = np.flatnonzero(~positives.any(axis=1))
    if len(no_positive):
        raise ValueError(
            f"similarity_ranks: every query needs at least one positive; rows {no_positive[:10].tolist()} have none"
        )
    best_positive = np.where(positives, similarity, -np.inf).max(axis=1, keepdims=True)
    beaten_by = (similarity >= best_positive) & ~positives
    return 1 + beaten_by.sum(axis=1).astype(np.int64)


def recall_at_k(ranks, k):
    """Recall@k: the fraction of queries whose correct answer ranks k or better."""
    ranks = _as_numpy(ranks)
    if ranks.ndim != 1 or len(ranks) == 0:
        raise ValueError(f"recall_at_k: ranks must be a non-empty 1-D array, got shape {ranks.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"recall_at_k: k must be a positive int, got {k!r}")
    return float(np.mean(ranks <= k))


def retrieval_metrics(image_emb, text_emb, captions, ks=(1, 5, 10)):
    """Recall@k, median and mean rank of retrieval in both directions, over distinct captions.

    ``image_emb``, ``text_emb``: (N, D) L2-normalised embeddings of N scenes and of their captions
    ``captions`` (a list of N str). Captions repeat (the grammar is small), so the gallery of
    texts is the U distinct captions, each embedded by the first scene that has it:

    - text -> image ("t2i"): each distinct caption queries all N images; every image with that
      caption is a correct answer;
    - image -> text ("i2t"): each image queries the U distinct captions; its own is correct.

    Returns a flat dict of floats: ``t2i_r1, t2i_r5, t2i_r10, t2i_median_rank, t2i_mean_rank,``
    and the same five for ``i2t`` (one ``_r{k}`` key per k in ``ks``). For scale: a random model
    has recall@k about k / U for image -> text, and the best rank of several correct images in
    text -> image.
    """
    op = "retrieval_metrics"
    image_emb = _embeddings(image_emb, "image_emb", op)
    text_emb = _embeddings(text_emb, "text_emb", op)
    captions = _check_texts(captions, "captions", op)
    if not (len(image_emb) == len(text_emb) == len(captions)):
        raise ValueError(
            f"{op}: image_emb {image_emb.shape}, text_emb {text_emb.shape} and captions "
            f"({len(captions)}) must describe the same N scenes"
        )
    if image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"{op}: image_emb {image_emb.shape} and text_emb {text_emb.shape} differ in D")
    unique, caption_id = _distinct(captions)
    first_scene = {}
    for i, text in enumerate(captions):
        first_scene.setdefault(text, i)
    first = np.array([first_scene[text] for text in unique], dtype=np.int64)
    similarity = image_emb @ text_emb[first].T  # (N, U): cosine of image n and distinct caption u
    matches = caption_id[:, None] == np.arange(len(unique))[None, :]  # (N, U) bool

    ranks = {
        "t2i": similarity_ranks(similarity.T, matches.T),
        "i2t": similarity_ranks(similarity, matches),
    }
    out = {}
    for direction, r in ranks.items():
        for k in ks:
            out[f"{direction}_r{k}"] = recall_at_k(r, k)
        out[f"{direction}_median_rank"] = float(np.median(r))
        out[f"{direction}_mean_rank"] = float(np.mean(r))
    return out


# ---------------------------------------------------------------- zero-shot


def zero_shot(image_emb, label_emb, true_label_index, logit_scale=100.0):
    """Zero-shot classification: the label whose caption embedding is nearest to the image.

    ``image_emb`` (N, D) and ``label_emb`` (C, D) are L2-normalised; ``true_label_index`` (N,) ints.
    Probabilities are softmax(logit_scale * cosine) over the C labels, as CLIP computes them;
    the scale changes how peaked they are, not which label wins. An image counts as right when
    its true label scores strictly higher than every other label (a tie is wrong).

    Returns (accuracy as a float, probabilities (N, C)).
    """
    op = "zero_shot"
    image_emb = _embeddings(image_emb, "image_emb", op)
    label_emb = _embeddings(label_emb, "label_emb", op)
    true = _as_numpy(true_label_index)
    if image_emb.shape[1] != label_emb.shape[1]:
        raise ValueError(f"{op}: image_emb {image_emb.shape} and label_emb {label_emb.shape} differ in D")
    if true.shape != (len(image_emb),) or not np.issubdtype(true.dtype, np.integer):
        raise ValueError(f"{op}: true_label_index must be ({len(image_emb)},) ints, got {true.shape} {true.dtype}")
    if len(true) and (true.min() < 0 or true.max() >= len(label_emb)):
        raise ValueError(f"{op}: true_label_index must lie in [0, {len(label_emb)}), got {true.min()}..{true.max()}")
    if not (math.isfinite(logit_scale) and logit_scale > 0):
        raise ValueError(f"{op}: logit_scale must be a positive number, got {logit_scale!r}")
    cosine = image_emb @ label_emb.T  # (N, C)
    logits = logit_scale * cosine
    logits = logits - logits.max(axis=1, keepdims=True)  # softmax is unchanged; exp cannot overflow
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    if not len(true):
        return float("nan"), probabilities
    # Right means ranked first among the labels, ties counted as wrong (like retrieval's recall@1).
    is_true = true[:, None] == np.arange(len(label_emb))[None, :]
    accuracy = recall_at_k(similarity_ranks(cosine, is_true), 1)
    return accuracy, probabilities


def confusion_matrix(true, pred, n_classes):
    """(C, C) int64 counts: row = true class, column = predicted class."""
    true = _as_numpy(true).astype(np.int64).ravel()
    pred = _as_numpy(pred).astype(np.int64).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"confusion_matrix: true {true.shape} and pred {pred.shape} differ in length")
    for name, values in (("true", true), ("pred", pred)):
        if len(values) and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(
                f"confusion_matrix: {name} must lie in [0, {n_classes}), got {values.min()}..{values.max()}"
            )
    counts = np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


# ---------------------------------------------------------------- per-attribute


_SLOT_NAMES = ("first", "second")


def attribute_accuracy(predicted_captions, true_captions):
    """Which words of a predicted caption are right, attribute by attribute.

    Scenes are grouped by the number of objects in the TRUE caption. For one-object scenes the
    keys are ``one_size, one_colour, one_shape, one_caption``; for two-object scenes
    ``two_{size,colour,shape}_{first,second}, two_relation, two_caption``. Each value is the
    fraction of scenes in that group where the prediction has that attribute right in that slot
    (``*_caption``: the whole caption). A prediction with fewer objects than the truth is wrong
    about the missing one; a prediction that is not a caption of the grammar is wrong about
    everything. A group with no scenes leaves its keys out.
    """
    op = "attribute_accuracy"
    predicted = _check_texts(predicted_captions, "predicted_captions", op)
    true = _check_texts(true_captions, "true_captions", op)
    if len(predicted) != len(true):
        raise ValueError(f"{op}: {len(predicted)} predicted captions but {len(true)} true ones")
    right = {}  # key -> list of 0/1, one per scene of its group
    for guess, truth in zip(predicted, true):
        scene = parse_caption(truth)  # a true caption outside the grammar is the caller's error
        try:
            guessed = parse_caption(guess)
        except (ValueError, TypeError):
            guessed = None
        group = "one" if len(scene.objects) == 1 else "two"
        for slot, obj in enumerate(scene.objects):
            other = guessed.objects[slot] if guessed is not None and slot < len(guessed.objects) else None
            for attribute in ("size", "colour", "shape"):
                key = f"{group}_{attribute}" if group == "one" else f"two_{attribute}_{_SLOT_NAMES[slot]}"
                ok = other is not None and getattr(other, attribute) == getattr(obj, attribute)
                right.setdefault(key, []).append(ok)
        if group == "two":
            right.setdefault("two_relation", []).append(guessed is not None and guessed.relation == scene.relation)
        right.setdefault(f"{group}_caption", []).append(guessed == scene)
    order = ["one_size", "one_colour", "one_shape", "one_caption"]
    order += [f"two_{a}_{s}" for s in _SLOT_NAMES for a in ("size", "colour", "shape")]
    order += ["two_relation", "two_caption"]
    return {key: float(np.mean(right[key])) for key in order if key in right}


# ---------------------------------------------------------------- hard negatives


TIE_TOLERANCE = 1e-6


def hard_negative_accuracy(image_emb, captions, encode_text, batch_size=None):
    """Does each image prefer its true caption over captions that differ from it in one edit?

    ``image_emb`` (N, D) L2-normalised embeddings of N scenes whose captions are ``captions``.
    ``encode_text``: a callable list[str] -> (M, D) L2-normalised embeddings. Every distinct text
    (true captions and all their ``one_edit_variants``) is encoded exactly once, ``batch_size``
    texts per call (None: one single call).

    For each kind of edit (colour, shape, size, relation, order) the score is the fraction of
    scenes, among those whose caption has variants of that kind, whose true caption scores
    strictly higher than every variant of that kind. "all": the true caption beats every variant
    of every kind. Returns ``hard_neg_colour, hard_neg_shape, hard_neg_size, hard_neg_relation,
    hard_neg_order, hard_neg_all``; a kind no scene has (relation and order when every scene has
    one object) is NaN.
    """
    op = "hard_negative_accuracy"
    image_emb = _embeddings(image_emb, "image_emb", op)
    captions = _check_texts(captions, "captions", op)
    if len(captions) != len(image_emb):
        raise ValueError(f"{op}: image_emb {image_emb.shape} but {len(captions)} captions")
    unique, caption_id = _distinct(captions)
    variants = [one_edit_variants(text) for text in unique]
    texts = unique + [v for kinds in variants for kind in EDIT_KINDS for v in kinds[kind]]
    table, row = _encode_texts(encode_text, texts, batch_size, op)
    if table.shape[1] != image_emb.shape[1]:
        raise ValueError(f"{op}: encode_text gives {table.shape[1]}-d embeddings but image_emb is {image_emb.shape}")

    # For each distinct caption: the table rows of its variants and the kind of each.
    variant_rows, variant_kinds = [], []
    for kinds in variants:
        variant_rows.append(np.array([row[v] for kind in EDIT_KINDS for v in kinds[kind]], dtype=np.int64))
        variant_kinds.append(np.array([k for k, kind in enumerate(EDIT_KINDS) for _ in kinds[kind]], dtype=np.int64))
    # Flatten to one (scene, variant) pair per entry, then score all pairs at once.
    counts = np.array([len(variant_rows[u]) for u in caption_id])
    scene = np.repeat(np.arange(len(captions)), counts)
    rows = np.concatenate([variant_rows[u] for u in caption_id])
    kinds = np.concatenate([variant_kinds[u] for u in caption_id])
    scores = np.einsum("pd,pd->p", image_emb[scene], table[rows])
    true_scores = np.einsum("nd,nd->n", image_emb, table[[row[text] for text in captions]])

    # best_variant[n, k]: the highest score of any variant of kind k for scene n (-inf: none).
    best_variant = np.full((len(captions), len(EDIT_KINDS)), -np.inf, dtype=scores.dtype)
    np.maximum.at(best_variant, (scene, kinds), scores)
    has = np.isfinite(best_variant)
    # a tie is a loss, and so is a win by less than float32 rounding: a bag of words scores a caption
    # and its argument-swapped twin equally up to the order its sums were taken in (~1e-7)
    wins = true_scores[:, None] > best_variant + TIE_TOLERANCE

    out = {}
    for k, kind in enumerate(EDIT_KINDS):
        out[f"hard_neg_{kind}"] = float(np.mean(wins[has[:, k], k])) if has[:, k].any() else float("nan")
    out["hard_neg_all"] = float(np.mean(np.all(wins | ~has, axis=1))) if len(captions) else float("nan")
    return out


# ---------------------------------------------------------------- a whole evaluation


def evaluate_clip(encode_image, encode_text, dataset, batch_size=500, logit_scale=100.0):
    """Every CLIP metric of a dataset in one flat dict (ready for ``format_metrics_table``).

    ``encode_image``: (B, 3, 32, 32) float array -> (B, D) L2-normalised embeddings.
    ``encode_text``: list of B str -> (B, D) L2-normalised embeddings (tokenize inside it, e.g.
    ``lambda texts: model.encode_text(tm.tensor(tokenizer.encode(texts)))``). Outputs may be
    NumPy or CuPy arrays or Tensors; both run under ``no_grad``, ``batch_size`` items per call.
    ``dataset`` has ``.images`` (N, 3, 32, 32) and ``.captions`` (N str), like ``ShapesCaptions``.

    Keys: ``n_scenes, n_captions`` (distinct), the ``retrieval_metrics`` keys, ``n_one_object``,
    ``zero_shot_accuracy, zero_shot_size, zero_shot_colour, zero_shot_shape`` (one-object scenes
    classified among all 48 one-object captions of the grammar; NaN without such scenes), and the
    ``hard_negative_accuracy`` keys. Each distinct text is encoded once for all of them.
    """
    op = "evaluate_clip"
    captions = _check_texts(dataset.captions, "dataset.captions", op)
    images = dataset.images
    if len(images) != len(captions):
        raise ValueError(f"{op}: dataset has {len(images)} images but {len(captions)} captions")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{op}: batch_size must be a positive int, got {batch_size!r}")

    def check(emb, batch):
        if emb.ndim != 2 or emb.shape[0] != len(batch):
            raise ValueError(f"{op}: encode_image was given {len(batch)} images and returned shape {emb.shape}")
        return emb

    image_emb = _embeddings(map_batches(encode_image, images, batch_size, check), "encode_image output", op)

    # Encode every text any metric will ask for once: captions, the 48 labels, all variants.
    labels = one_object_captions()
    unique, _ = _distinct(captions)
    variants = [v for text in unique for kinds in one_edit_variants(text).values() for v in kinds]
    table, row = _encode_texts(encode_text, captions + labels + variants, batch_size, op)

    def lookup(texts):
        return table[[row[text] for text in texts]]

    out = {"n_scenes": len(captions), "n_captions": len(unique)}
    out.update(retrieval_metrics(image_emb, lookup(captions), captions))

    label_index = {text: i for i, text in enumerate(labels)}
    one = np.array([text in label_index for text in captions], dtype=bool)
    out["n_one_object"] = int(one.sum())
    if one.any():
        true = np.array([label_index[text] for text, o in zip(captions, one) if o], dtype=np.int64)
        accuracy, probabilities = zero_shot(image_emb[one], lookup(labels), true, logit_scale)
        predicted = [labels[i] for i in probabilities.argmax(axis=1)]
        per_attribute = attribute_accuracy(predicted, [labels[i] for i in true])
        out["zero_shot_accuracy"] = accuracy
        for attribute in ("size", "colour", "shape"):
            out[f"zero_shot_{attribute}"] = per_attribute[f"one_{attribute}"]
    else:
        for key in ("accuracy", "size", "colour", "shape"):
            out[f"zero_shot_{key}"] = float("nan")

    out.update(hard_negative_accuracy(image_emb, captions, lookup))
    return out


# ---------------------------------------------------------------- decoders


def caption_metrics(predicted, true):
    """Exact-match and token accuracy of generated captions, overall and by number of objects.

    Words are compared position by position (case and extra spaces forgiven); a caption pair is
    scored over the longer of the two, so a missing or extra word counts as wrong. Token accuracy
    pools all positions of all captions: right words / positions.

    Keys: ``caption_exact, caption_token_acc``, and the same with ``_one`` / ``_two`` for scenes
    whose true caption has one / two objects (left out when there are none).
    """
    op = "caption_metrics"
    predicted = _check_texts(predicted, "predicted", op)
    true = _check_texts(true, "true", op)
    if len(predicted) != len(true):
        raise ValueError(f"{op}: {len(predicted)} predicted captions but {len(true)} true ones")
    tallies = {"": [0, 0, 0, 0]}  # group -> [exact, captions, right words, positions]
    for guess, truth in zip(predicted, true):
        g, t = guess.lower().split(), truth.lower().split()
        right = sum(a == b for a, b in zip(g, t))
        try:
            group = "_one" if len(parse_caption(truth).objects) == 1 else "_two"
        except ValueError:
            group = None  # not a caption of the grammar: counted in the overall numbers only
        for key in ("", group):
            if key is None:
                continue
            tally = tallies.setdefault(key, [0, 0, 0, 0])
            tally[0] += g == t
            tally[1] += 1
            tally[2] += right
            tally[3] += max(len(g), len(t))
    out = {}
    for key in ("", "_one", "_two"):
        if key in tallies and tallies[key][1]:
            exact, n, right, positions = tallies[key]
            out[f"caption_exact{key}"] = exact / n
            out[f"caption_token_acc{key}"] = right / positions if positions else float("nan")
    return out


def psnr(pred, target, max_value=1.0):
    """Peak signal-to-noise ratio per image, in decibels: 10 * log10(max_value^2 / MSE).

    ``pred``, ``target``: (N, ...) arrays of images with values in [0, max_value]; the MSE of each
    image is taken over all its pixels and channels. +20 dB means 10 times less error in pixel
    value (100 times less MSE); a perfect image is +inf. Returns (per_image (N,) float64, mean).
    """
    pred = _as_numpy(pred).astype(np.float64)
    target = _as_numpy(target).astype(np.float64)
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(
            f"psnr: pred and target must have the same (N, ...) shape, got {pred.shape} and {target.shape}"
        )
    mse = np.mean((pred - target) ** 2, axis=tuple(range(1, pred.ndim)))
    with np.errstate(divide="ignore"):
        per_image = 10.0 * np.log10(max_value ** 2 / mse)
    return per_image, float(np.mean(per_image))


# ---------------------------------------------------------------- printing


def format_metrics_table(metrics_by_split):
    """A fixed-width text table: one row per metric, one column per split.

    ``metrics_by_split``: {"test": {...}, "compositional": {...}}. Rows come in the order metrics
    first appear; ints print as ints, floats with 3 decimals; a metric a split lacks, or NaN,
    prints as "-".
    """
    if not isinstance(metrics_by_split, dict) or not all(isinstance(m, dict) for m in metrics_by_split.values()):
        raise TypeError("format_metrics_table: expected a dict of split name -> dict of metrics")
    splits = list(metrics_by_split)
    names = list(dict.fromkeys(name for metrics in metrics_by_split.values() for name in metrics))

    def cell(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (int, np.integer)):
            return str(int(value))
        return f"{float(value):.3f}"

    rows = [["metric"] + splits]
    rows += [[name] + [cell(metrics_by_split[s].get(name)) for s in splits] for name in names]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join([r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- generated images, read off their pixels


LIT = 0.4          # a pixel is part of an object when its brightest channel exceeds this


LARGE_AREA = 55    # lit pixels: small objects cover 18-49 of them, large ones 60-133


_HUES = RGB / RGB.max(axis=1, keepdims=True)  # the six colours at full brightness


def pixel_attributes(images):
    """Read colour and size off the pixels, without any model: a simple, independent check.

    images (N, 3, H, W) in [0, 1]. A pixel is *lit* when its brightest channel exceeds LIT;
    each lit pixel votes for the grammar colour nearest to its hue (the pixel divided by its
    brightest channel). Returns a dict of NumPy arrays:

        area     (N,)  lit pixels
        votes    (N, 6) lit pixels per colour (COLOURS order)
        colour   (N,)  the colour with most votes (-1 for an image with no lit pixel)
        large    (N,)  area >= LARGE_AREA
        centroid (N, 6, 2)  mean (x, y) of each colour's lit pixels (NaN where it has none)

    On real test scenes this reads colour and size right for every one-object scene.
    """
    images = np.asarray(images, dtype=np.float32)
    bright = images.max(axis=1)                                      # (N, H, W)
    lit = bright > LIT
    hue = images / np.maximum(bright, 1e-6)[:, None]                 # (N, 3, H, W)
    distance = ((hue[:, None] - _HUES[None, :, :, None, None]) ** 2).sum(axis=2)   # (N, 6, H, W)
    nearest = distance.argmin(axis=1)                                # (N, H, W)
    member = (nearest[:, None] == np.arange(len(COLOURS))[None, :, None, None]) & lit[:, None]
    votes = member.sum(axis=(2, 3))
    area = lit.sum(axis=(1, 2))
    ys, xs = np.mgrid[0:images.shape[2], 0:images.shape[3]]
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.stack([(member * xs).sum(axis=(2, 3)) / votes, (member * ys).sum(axis=(2, 3)) / votes],
                            axis=-1)
    return {"area": area, "votes": votes, "colour": np.where(area > 0, votes.argmax(axis=1), -1),
            "large": area >= LARGE_AREA, "centroid": centroid}


# How far below its box centre each shape's centroid lies (in radii; only the triangle's is
# off centre), indexed like SHAPES.
_CENTROID_BELOW = np.array([0.0, 0.0, 1 / 3, 0.0])
SHAPE_RADII = np.arange(1.0, 8.01, 0.25)   # template radii tried, in pixels (real objects: 3.3-6.2)
SHAPE_EDGES = (1.0, 2.0, 3.0)              # template edge ramps tried, in pixels (1 = the dataset's own)


def pixel_shape(images, radii=SHAPE_RADII, edges=SHAPE_EDGES):
    """Read the shape of a one-object picture off its pixels: which of the four fits best.

    images (N, 3, H, W) in [0, 1]. It looks at the picture's soft brightness, not at a
    threshold, so a slightly blurred drawing (dim arm tips of a small cross, a soft edge)
    reads as a person would read it. Brightness: the brightest channel minus the background
    (the image's median), divided by its peak; below a tenth of the peak counts as dark.
    Its brightness-weighted centroid places, for each shape, soft templates (the dataset's own
    signed distance, with an edge ramp of 1, 2 or 3 pixels) at every radius in ``radii``;
    the best correlation between template and brightness is that shape's score.
    Returns (shape (N,) index into SHAPES, -1 for an image with nothing bright; score (N, 4)
    in [-1, 1]).

    On real one-object scenes, and on the same scenes blurred by a Gaussian of 0.6-0.8 pixels,
    it names the right shape for more than 99 % of them; a round blob reads as a circle.
    """
    images = np.asarray(images, dtype=np.float32)
    n, _, h, w = images.shape
    bright = images.max(axis=1)                                      # (N, H, W)
    background = np.median(bright.reshape(n, -1), axis=1)[:, None, None]
    v = np.clip(bright - background, 0.0, None)
    v = v / np.maximum(v.max(axis=(1, 2), keepdims=True), 1e-6)
    v = np.where(v > 0.1, v, 0.0).astype(np.float32)
    mass = v.sum(axis=(1, 2))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5             # pixel centres
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = ((v * xs).sum(axis=(1, 2)) / mass)[:, None, None]
        cy = ((v * ys).sum(axis=(1, 2)) / mass)[:, None, None]
    centred = v - v.mean(axis=(1, 2), keepdims=True)
    norm = np.sqrt((centred ** 2).sum(axis=(1, 2)))
    score = np.full((n, len(SIGNED_DISTANCES)), -1.0, dtype=np.float32)
    for kind, signed_distance in enumerate(SIGNED_DISTANCES):
        for r in radii:
            distance = signed_distance(xs - cx, ys - cy + _CENTROID_BELOW[kind] * r, r)
            for edge in edges:
                template = np.clip(0.5 - distance / edge, 0.0, 1.0)
                template = template - template.mean(axis=(1, 2), keepdims=True)
                t_norm = np.sqrt((template ** 2).sum(axis=(1, 2)))
                corr = (template * centred).sum(axis=(1, 2)) / np.maximum(t_norm * norm, 1e-9)
                score[:, kind] = np.fmax(score[:, kind], corr)   # fmax: a black image keeps -1
    return np.where(mass > 0, score.argmax(axis=1), -1), score


def image_attribute_metrics(images, scenes):
    """Per-attribute correctness of (generated) images, judged by ``pixel_attributes``.

    One-object scenes: ``image_colour_one`` (dominant colour right), ``image_size_one`` (lit
    area on the right side of LARGE_AREA), ``image_shape_one`` (``pixel_shape`` right).
    Two-object scenes with two different colours:
    ``image_colours_two`` (both colours among the two most voted), ``image_relation_two`` (the
    two colours' centroids in the caption's order: first left of / above the second).
    """
    stats = pixel_attributes(images)
    out = {}
    one = scenes["n_objects"] == 1
    if one.any():
        out["image_colour_one"] = float(np.mean(stats["colour"][one] == scenes["colour"][one, 0]))
        out["image_size_one"] = float(np.mean(stats["large"][one] == (scenes["size"][one, 0] == 1)))
        out["image_shape_one"] = float(np.mean(pixel_shape(images[one])[0] == scenes["shape"][one, 0]))
    two = (scenes["n_objects"] == 2) & (scenes["colour"][:, 0] != scenes["colour"][:, 1])
    if two.any():
        first, second = scenes["colour"][two, 0], scenes["colour"][two, 1]
        top2 = np.argsort(-stats["votes"][two], axis=1, kind="stable")[:, :2]
        both = ((top2 == first[:, None]).any(axis=1) & (top2 == second[:, None]).any(axis=1))
        rows = np.flatnonzero(two)
        c1, c2 = stats["centroid"][rows, first], stats["centroid"][rows, second]
        axis = np.where(scenes["relation"][two] == RELATIONS.index("left of"), 0, 1)
        order = np.take_along_axis(c1, axis[:, None], 1)[:, 0] < np.take_along_axis(c2, axis[:, None], 1)[:, 0]
        out["image_colours_two"] = float(np.mean(both))
        out["image_relation_two"] = float(np.mean(both & order))
    return out


def top1_hits(query_emb, gallery_emb, right):
    """For each query, is the best-scoring gallery item a right one? right(q_index, g_index) -> bool array."""
    best = (query_emb @ gallery_emb.T).argmax(axis=1)
    return right(np.arange(len(query_emb)), best)
