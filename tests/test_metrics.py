"""Tests of tinymm.metrics: ranks and recall worked out by hand, then whole evaluations with fake
encoders whose right answers we know.

- a "perfect" encoder embeds every image and every caption by the attributes it shows or says
  (one-hot features per object slot and relation), so an image and its caption get the same
  vector: every metric must be exactly 1.0;
- a random encoder must land near chance, and near the chance level computed for each scene;
- a bag-of-words text encoder must fail exactly the swapped-order hard negatives.
"""

import math

import numpy as np
import pytest

import tinymm as tm
from tinymm import backend
from tinymm.data import (
    COLOURS,
    EDIT_KINDS,
    RELATIONS,
    SHAPES,
    SIZES,
    VOCABULARY,
    ShapesCaptions,
    one_edit_variants,
    parse_caption,
)
from tinymm.metrics import (
    attribute_accuracy,
    caption_metrics,
    confusion_matrix,
    evaluate_clip,
    format_metrics_table,
    hard_negative_accuracy,
    psnr,
    recall_at_k,
    retrieval_metrics,
    similarity_ranks,
    zero_shot,
)

pytestmark = [pytest.mark.lesson12]

ONE = "a small red circle"
TWO = "a small red circle left of a large blue square"


# ---------------------------------------------------------------- fake encoders


def attribute_features(size, colour, shape, relation):
    """(M, 2) size/colour/shape codes and (M,) relation codes (-1: absent) -> (M, 26) unit rows.

    One block of one-hot features per object slot (2 sizes + 6 colours + 4 shapes), then the
    relation. Two scenes get the same vector exactly when their captions are the same.
    """
    blocks = []
    for slot in range(2):
        for codes, values in ((size, SIZES), (colour, COLOURS), (shape, SHAPES)):
            blocks.append(codes[:, slot, None] == np.arange(len(values)))
    blocks.append(relation[:, None] == np.arange(len(RELATIONS)))
    features = np.concatenate(blocks, axis=1).astype(np.float32)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def caption_codes(texts):
    """Attribute codes of captions, read with the grammar's parser."""
    size = np.full((len(texts), 2), -1)
    colour, shape, relation = size.copy(), size.copy(), np.full(len(texts), -1)
    for i, text in enumerate(texts):
        scene = parse_caption(text)
        for slot, obj in enumerate(scene.objects):
            size[i, slot], colour[i, slot] = SIZES.index(obj.size), COLOURS.index(obj.colour)
            shape[i, slot] = SHAPES.index(obj.shape)
        if scene.relation is not None:
            relation[i] = RELATIONS.index(scene.relation)
    return size, colour, shape, relation


def perfect_encoders(dataset, device):
    """encode_image / encode_text that embed the ground-truth attributes of scenes and captions.

    The image encoder recognises each image by its bytes (noise makes them all different) and
    embeds its scene's attributes from ``dataset.scenes``; the text encoder parses the caption.
    One returns a Tensor and the other a device array, to check that both are accepted.
    """
    index = {image.tobytes(): i for i, image in enumerate(dataset.images)}
    s = dataset.scenes

    def encode_image(images):
        rows = [index[image.tobytes()] for image in images]
        emb = attribute_features(s["size"][rows], s["colour"][rows], s["shape"][rows], s["relation"][rows])
        return tm.tensor(emb, device=device)

    def encode_text(texts):
        return backend.to_device(attribute_features(*caption_codes(texts)), device)

    return encode_image, encode_text


def random_text_encoder(dim=64, seed=1):
    """The same random unit vector for the same text every time; unrelated vectors otherwise."""
    rng, table = np.random.default_rng(seed), {}

    def encode_text(texts):
        for text in texts:
            if text not in table:
                v = rng.standard_normal(dim)
                table[text] = v / np.linalg.norm(v)
        return np.stack([table[text] for text in texts])

    return encode_text


def random_unit_rows(n, dim=64, seed=2):
    v = np.random.default_rng(seed).standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bag_of_words(texts):
    """Word counts over the grammar's vocabulary: blind to word order, as lesson 8 warns."""
    counts = np.array([[text.split().count(word) for word in VOCABULARY] for text in texts], dtype=np.float64)
    return counts / np.linalg.norm(counts, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def test_split():
    return ShapesCaptions("test", n=240, seed=3)


@pytest.fixture(scope="module")
def compositional_split():
    return ShapesCaptions("compositional", n=120, seed=3)


# ---------------------------------------------------------------- ranks and recall by hand


def test_ranks_by_hand_with_ties_and_several_positives():
    similarity = np.array(
        [
            [0.9, 0.5, 0.1, 0.3],  # positive 0 is the best: rank 1
            [0.2, 0.8, 0.8, 0.1],  # positive 2 ties with negative 1: pessimistic rank 2
            [0.1, 0.4, 0.3, 0.7],  # positives 0 and 2: the best is 0.3, beaten by 0.4 and 0.7: rank 3
            [0.5, 0.5, 0.2, 0.6],  # positives 0 and 1 tie with each other (no harm), 0.6 beats them: rank 2
        ]
    )
    positives = np.array(
        [
            [True, False, False, False],
            [False, False, True, False],
            [True, False, True, False],
            [True, True, False, False],
        ]
    )
    ranks = similarity_ranks(similarity, positives)
    assert ranks.tolist() == [1, 2, 3, 2]
    assert ranks.dtype == np.int64
    assert recall_at_k(ranks, 1) == 0.25
    assert recall_at_k(ranks, 2) == 0.75
    assert recall_at_k(ranks, 3) == 1.0


def test_everything_tied_ranks_last():
    """A model that maps everything to one vector ranks every right answer below all wrong ones."""
    ranks = similarity_ranks(np.zeros((3, 5)), np.eye(3, 5, dtype=bool))
    assert ranks.tolist() == [5, 5, 5]


def test_ranks_reject_bad_input():
    with pytest.raises(ValueError, match="at least one positive"):
        similarity_ranks(np.zeros((2, 3)), np.array([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="same shape"):
        similarity_ranks(np.zeros((2, 3)), np.ones((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="bool"):
        similarity_ranks(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        similarity_ranks(np.array([[np.nan, 0.0]]), np.array([[True, False]]))
    with pytest.raises(ValueError, match="positive int"):
        recall_at_k(np.array([1, 2]), 0)


def test_retrieval_metrics_by_hand():
    """Captions a, b, a, c: the gallery of texts is the 3 distinct captions a, b, c.

    Text embeddings a=e0, b=e1, c=e2 (scene 2 repeats "a": its text embedding is ignored, so we
    set it to garbage). Images: e0 (a), e2 (b, looks like c), (e0+e1)/sqrt2 (a), e2 (c).
    image -> text ranks: 1, 3 (b scores 0, tied with a, below c), 2 (a ties b), 1.
    text -> image ranks: a: 1 (image 0); b: 4 (image 1 scores 0, tied with images 0 and 3, below 2);
    c: 2 (image 3 ties image 1).
    """
    e = np.eye(3)
    text_emb = np.stack([e[0], e[1], e[2], e[2]])  # row 2 should be "a" = e0; it must be ignored
    image_emb = np.stack([e[0], e[2], (e[0] + e[1]) / np.sqrt(2.0), e[2]])
    m = retrieval_metrics(image_emb, text_emb, ["a", "b", "a", "c"], ks=(1, 2))
    assert m == {
        "t2i_r1": pytest.approx(1 / 3),
        "t2i_r2": pytest.approx(2 / 3),
        "t2i_median_rank": 2.0,
        "t2i_mean_rank": pytest.approx(7 / 3),
        "i2t_r1": 0.5,
        "i2t_r2": 0.75,
        "i2t_median_rank": 1.5,
        "i2t_mean_rank": 1.75,
    }
    default = retrieval_metrics(image_emb, text_emb, ["a", "b", "a", "c"])
    assert list(default) == [
        "t2i_r1", "t2i_r5", "t2i_r10", "t2i_median_rank", "t2i_mean_rank",
        "i2t_r1", "i2t_r5", "i2t_r10", "i2t_median_rank", "i2t_mean_rank",
    ]
    assert default["i2t_r5"] == 1.0 and default["t2i_r10"] == 1.0


def test_retrieval_metrics_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same N scenes"):
        retrieval_metrics(np.eye(3), np.eye(3), ["a", "b"])
    with pytest.raises(ValueError, match="differ in D"):
        retrieval_metrics(np.eye(2), np.eye(2, 3), ["a", "b"])


# ---------------------------------------------------------------- zero-shot by hand


def test_zero_shot_by_hand():
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    true = np.array([0, 1, 0, 1])  # predictions are 0, 1, 1, 2: two right
    accuracy, probabilities = zero_shot(images, labels, true, logit_scale=2.0)
    assert accuracy == 0.5
    assert probabilities.shape == (4, 3)
    expected = np.exp([2.0, 0.0, -2.0]) / np.exp([2.0, 0.0, -2.0]).sum()
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-12)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert probabilities.argmax(axis=1).tolist() == [0, 1, 1, 2]
    # The scale sharpens the probabilities but never changes which label wins.
    sharp_accuracy, sharp = zero_shot(images, labels, true, logit_scale=100.0)
    assert sharp_accuracy == 0.5 and sharp[0, 0] > probabilities[0, 0]
    # A tie between the true label and another is wrong.
    tied_accuracy, _ = zero_shot(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0]))
    assert tied_accuracy == 0.0


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(np.array([0, 1, 0, 1]), np.array([0, 1, 1, 2]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_matrix(np.array([0]), np.array([3]), 3)


# ---------------------------------------------------------------- per-attribute and captions by hand


def test_attribute_accuracy_by_hand():
    true = [ONE, ONE, "a large blue cross", ONE, TWO, TWO, TWO]
    predicted = [
        ONE,  # all right
        "a large red square",  # size and shape wrong
        "not a caption",  # unparsable: wrong about everything
        TWO,  # the object is right, but there is an extra one: the caption is wrong
        "a large blue square left of a small red circle",  # order swapped: every object attribute wrong
        "a small red circle above a large blue square",  # only the relation is wrong
        ONE,  # first object right, second missing, relation missing
    ]
    assert attribute_accuracy(predicted, true) == {
        "one_size": 0.5,
        "one_colour": 0.75,
        "one_shape": 0.5,
        "one_caption": 0.25,
        "two_size_first": pytest.approx(2 / 3),
        "two_colour_first": pytest.approx(2 / 3),
        "two_shape_first": pytest.approx(2 / 3),
        "two_size_second": pytest.approx(1 / 3),
        "two_colour_second": pytest.approx(1 / 3),
        "two_shape_second": pytest.approx(1 / 3),
        "two_relation": pytest.approx(1 / 3),
        "two_caption": 0.0,
    }
    # Only one-object scenes: the two-object keys are left out.
    assert list(attribute_accuracy([ONE], [ONE])) == ["one_size", "one_colour", "one_shape", "one_caption"]
    with pytest.raises(ValueError, match="2 predicted captions but 1"):
        attribute_accuracy([ONE, ONE], [ONE])


def test_caption_metrics_by_hand():
    true = [ONE, ONE, "a large cyan cross", TWO, TWO]
    predicted = [
        "A  Small red CIRCLE",  # case and spaces are forgiven: exact
        "a large red circle",  # 3 of 4 words
        "",  # nothing: 0 of 4
        ONE,  # 4 right, 6 missing: 4 of 10
        "a small red circle above a large blue square",  # 9 words, right up to "above": 4 of 10
    ]
    m = caption_metrics(predicted, true)
    assert m == {
        "caption_exact": 0.2,
        "caption_token_acc": pytest.approx(15 / 32),
        "caption_exact_one": pytest.approx(1 / 3),
        "caption_token_acc_one": pytest.approx(7 / 12),
        "caption_exact_two": 0.0,
        "caption_token_acc_two": 0.4,
    }
    assert caption_metrics([TWO], [TWO]) == {
        "caption_exact": 1.0, "caption_token_acc": 1.0, "caption_exact_two": 1.0, "caption_token_acc_two": 1.0,
    }


def test_psnr_on_known_arrays():
    target = np.zeros((3, 3, 4, 4), dtype=np.float32)
    pred = target.copy()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    pred[1] += 0.01  # MSE 1e-4 -> 40 dB
    per_image, mean = psnr(pred[:2], target[:2])
    np.testing.assert_allclose(per_image, [20.0, 40.0], rtol=1e-5)
    assert mean == pytest.approx(30.0, rel=1e-5)
    per_image, mean = psnr(pred, target)  # image 2 is perfect
    assert per_image[2] == np.inf and mean == np.inf
    per_image, _ = psnr(np.full((1, 2, 2), 25.5), np.zeros((1, 2, 2)), max_value=255.0)
    np.testing.assert_allclose(per_image, [20.0])
    with pytest.raises(ValueError, match="same"):
        psnr(np.zeros((2, 3)), np.zeros((3, 2)))


# ---------------------------------------------------------------- hard negatives


@pytest.mark.lesson14
def test_hard_negatives_by_hand_ties_lose_and_absent_kinds_are_nan():
    """One scene "a small red circle": every variant gets e1 except the size variant, which gets
    e0, exactly the true caption's vector. The image is e0, so the size variant ties: a loss."""
    size_variant = one_edit_variants(ONE)["size"][0]
    calls = []

    def encode_text(texts):
        calls.append(list(texts))
        return np.array([[1.0, 0.0] if t in (ONE, size_variant) else [0.0, 1.0] for t in texts])

    m = hard_negative_accuracy(np.array([[1.0, 0.0]]), [ONE], encode_text)
    assert m["hard_neg_colour"] == 1.0 and m["hard_neg_shape"] == 1.0
    assert m["hard_neg_size"] == 0.0 and m["hard_neg_all"] == 0.0
    assert math.isnan(m["hard_neg_relation"]) and math.isnan(m["hard_neg_order"])
    assert list(m) == [f"hard_neg_{kind}" for kind in EDIT_KINDS] + ["hard_neg_all"]
    # One call with every distinct text: the caption and its 5 + 3 + 1 variants.
    assert len(calls) == 1 and len(calls[0]) == 10 == len(set(calls[0]))


@pytest.mark.lesson14
def test_bag_of_words_fails_exactly_the_swapped_order(test_split):
    """An image embedded like its own caption, a text encoder that counts words: every one-word
    edit changes the counts, but swapping the two objects does not, so "order" ties and loses."""
    captions = test_split.captions
    m = hard_negative_accuracy(bag_of_words(captions), captions, bag_of_words)
    two_objects = np.mean([len(parse_caption(c).objects) == 2 for c in captions])
    assert m["hard_neg_order"] == 0.0
    for kind in ("colour", "shape", "size", "relation"):
        assert m[f"hard_neg_{kind}"] == 1.0
    assert m["hard_neg_all"] == pytest.approx(1.0 - two_objects)


@pytest.mark.lesson14
def test_random_hard_negatives_are_at_the_chance_level_of_each_scene(test_split):
    """With random embeddings the true caption beats k variants with probability 1 / (k + 1)."""
    captions = test_split.captions
    m = hard_negative_accuracy(random_unit_rows(len(captions)), captions, random_text_encoder(), batch_size=100)
    counts = [one_edit_variants(c) for c in captions]
    for kind in EDIT_KINDS + ("all",):
        k = np.array([sum(map(len, v.values())) if kind == "all" else len(v[kind]) for v in counts])
        p = 1.0 / (k[k > 0] + 1.0)
        std = np.sqrt(np.sum(p * (1 - p))) / len(p)
        assert abs(m[f"hard_neg_{kind}"] - p.mean()) < 4 * std, kind


# ---------------------------------------------------------------- whole evaluations


@pytest.mark.lesson14
@pytest.mark.parametrize("split", ["test", "compositional"])
def test_perfect_encoder_scores_one_everywhere(split, test_split, compositional_split, device):
    dataset = test_split if split == "test" else compositional_split
    encode_image, encode_text = perfect_encoders(dataset, device)
    m = evaluate_clip(encode_image, encode_text, dataset, batch_size=64)
    assert m["n_scenes"] == len(dataset)
    assert m["n_captions"] == len(set(dataset.captions))
    assert m["n_one_object"] == int(np.sum(dataset.scenes["n_objects"] == 1)) > 0
    scores = {key: value for key, value in m.items() if not key.startswith("n_")}
    assert len(scores) == 10 + 4 + 6  # retrieval, zero-shot, hard negatives
    for key, value in scores.items():
        assert value == 1.0, key  # recalls and accuracies are 1, and so are the ranks


def test_random_encoder_is_near_chance(test_split):
    encode_text = random_text_encoder()
    m = evaluate_clip(lambda images: random_unit_rows(len(images), seed=len(images)), encode_text, test_split)
    n_captions = m["n_captions"]
    assert m["i2t_r1"] < 0.05 and m["i2t_r10"] < 0.15  # chance: 1 / U and 10 / U, U ~ 150
    assert 0.3 * n_captions < m["i2t_median_rank"] < 0.7 * n_captions
    assert m["t2i_r1"] < 0.1
    assert m["zero_shot_accuracy"] < 0.1  # chance 1 / 48
    assert 0.35 < m["zero_shot_size"] < 0.65  # chance 1 / 2
    assert m["zero_shot_colour"] < 0.35  # chance 1 / 6
    assert 0.35 < m["hard_neg_order"] < 0.65  # chance 1 / 2


def test_evaluate_clip_encodes_each_text_once_in_batches(test_split):
    seen = []
    random_encode = random_text_encoder()

    def encode_text(texts):
        seen.append(len(texts))
        return tm.tensor(random_encode(texts).astype(np.float32))

    evaluate_clip(lambda images: random_unit_rows(len(images)), encode_text, test_split, batch_size=400)
    distinct = set(test_split.captions) | set(ShapesCaptions.one_object_captions())
    distinct |= {v for c in test_split.captions for kinds in one_edit_variants(c).values() for v in kinds}
    assert sum(seen) == len(distinct)
    assert len(seen) == -(-len(distinct) // 400) and max(seen) == 400


# ---------------------------------------------------------------- printing


def test_format_metrics_table():
    table = format_metrics_table(
        {
            "test": {"t2i_r1": 0.5, "n_scenes": 200},
            "compositional": {"t2i_r1": float("nan"), "n_scenes": 100, "extra": 1.23456},
        }
    )
    assert table == "\n".join(
        [
            "metric     test  compositional",
            "--------  -----  -------------",
            "t2i_r1    0.500              -",
            "n_scenes    200            100",
            "extra         -          1.235",
        ]
    )
    with pytest.raises(TypeError, match="split name"):
        format_metrics_table([{"a": 1.0}])
