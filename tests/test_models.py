"""The course's models: output shapes, the dual encoder's contract, clear errors, gradient checks.

ImageEncoder, TextEncoder and BagOfWordsTextEncoder (tinymm/models/encoders.py), DualEncoder
(tinymm/models/clip.py) and FusionHead (tinymm/models/fusion.py). Models are kept tiny wherever
the size does not matter, so the whole file runs in a few seconds.
"""
import math

import numpy as np
import pytest

import tinymm as tm
from tinymm import backend
from tinymm.data import one_edit_variants, shapes_tokenizer
from tinymm.gradcheck import gradcheck
from tinymm.models import (LOGIT_SCALE_INIT, LOGIT_SCALE_MAX, BagOfWordsTextEncoder, DualEncoder, FusionHead,
                           ImageEncoder, TextEncoder)

pytestmark = pytest.mark.lesson07

TOKENIZER = shapes_tokenizer()
CAPTION = "a small red circle left of a large blue square"
SWAPPED = "a large blue square left of a small red circle"


def images(n, size=32, channels=3):
    rng = np.random.default_rng(1)
    return rng.uniform(0, 1, (n, channels, size, size)).astype(np.float32)


def tiny_dual_encoder(embed_dim=8):
    image_encoder = ImageEncoder(embed_dim=embed_dim, channels=(4, 8), hidden=16)
    text_encoder = TextEncoder(TOKENIZER.vocab_size, embed_dim=embed_dim, width=16)
    return DualEncoder(image_encoder, text_encoder)


def norms(t):
    return np.linalg.norm(t.numpy().astype(np.float64), axis=-1)


# ---------------------------------------------------------------- shapes


def test_image_encoder_output_shape_and_parameter_count():
    encoder = ImageEncoder()  # the course's default: channels (16, 32), hidden 128, embed_dim 64
    assert encoder(images(3)).shape == (3, 64)
    conv1, conv2 = 3 * 16 * 9 + 16, 16 * 32 * 9 + 32
    fc1, fc2 = 32 * 8 * 8 * 128 + 128, 128 * 64 + 64
    assert encoder.num_parameters() == conv1 + conv2 + fc1 + fc2 == 275_616
    small = ImageEncoder(embed_dim=5, channels=(2, 3), hidden=7)
    assert small(images(2)).shape == (2, 5)


def test_image_encoder_shapes_through_each_layer():
    encoder = ImageEncoder(embed_dim=8, channels=(4, 6), hidden=16)
    x = tm.tensor(images(2))
    shapes = []
    for layer in list(encoder.features) + list(encoder.head):
        x = layer(x)
        shapes.append(x.shape)
    assert shapes == [(2, 4, 32, 32), (2, 4, 32, 32), (2, 4, 16, 16),
                      (2, 6, 16, 16), (2, 6, 16, 16), (2, 6, 8, 8),
                      (2, 384), (2, 16), (2, 16), (2, 8)]


@pytest.mark.lesson08
@pytest.mark.parametrize("cls", [TextEncoder, BagOfWordsTextEncoder])
def test_text_encoders_output_shape(cls):
    encoder = cls(TOKENIZER.vocab_size, embed_dim=6, width=10)
    tokens = TOKENIZER.encode([CAPTION, "a small red circle", SWAPPED])
    assert tokens.shape == (3, 12)
    assert encoder(tokens).shape == (3, 6)
    assert encoder(tokens[:, :7]).shape == (3, 6)  # shorter rows are fine (no longer than max_len)


def test_fusion_head_output_shape():
    head = FusionHead(embed_dim=8, hidden=12)
    a, b = tm.randn(5, 8), tm.randn(5, 8)
    assert head(a, b).shape == (5,)


# ---------------------------------------------------------------- the dual encoder


def test_dual_encoder_gives_unit_vectors_and_transposed_logits():
    model = tiny_dual_encoder()
    tokens = TOKENIZER.encode([CAPTION, SWAPPED, "a large green cross", "a small cyan square"])
    image_emb, text_emb = model.encode_image(images(4)), model.encode_text(tokens)
    assert image_emb.shape == text_emb.shape == (4, 8)
    assert np.abs(norms(image_emb) - 1).max() < 1e-5
    assert np.abs(norms(text_emb) - 1).max() < 1e-5

    logits_per_image, logits_per_text = model(images(4), tokens)
    assert logits_per_image.shape == logits_per_text.shape == (4, 4)
    assert np.array_equal(logits_per_text.numpy(), logits_per_image.numpy().T)
    expected = math.exp(LOGIT_SCALE_INIT) * image_emb.numpy() @ text_emb.numpy().T
    assert np.allclose(logits_per_image.numpy(), expected, atol=1e-4)


def test_dual_encoder_builds_its_text_encoder_from_the_vocab_size():
    model = DualEncoder(vocab_size=TOKENIZER.vocab_size, embed_dim=8)
    assert isinstance(model.text_encoder, TextEncoder)
    assert model.encode_text(TOKENIZER.encode([CAPTION])).shape == (1, 8)
    with pytest.raises(ValueError, match="vocab_size"):
        DualEncoder()


def test_logit_scale_starts_at_ln_1_over_0_07_and_is_clamped_to_0_ln_100():
    model = tiny_dual_encoder()
    s = model.logit_scale
    assert s.shape == () and s.dtype == np.float32
    assert LOGIT_SCALE_INIT == pytest.approx(math.log(1 / 0.07)) and LOGIT_SCALE_MAX == pytest.approx(math.log(100))
    assert float(backend.to_numpy(s.data)) == pytest.approx(2.6593, abs=1e-4)
    for value, clamped in [(10.0, math.log(100)), (-1.0, 0.0), (1.5, 1.5), (4.6, 4.6)]:
        s.data[...] = value
        model.clamp_logit_scale()
        assert float(backend.to_numpy(s.data)) == pytest.approx(clamped, abs=1e-6)
    assert model.logit_scale is s  # clamped in place: an optimiser holding it keeps working


def test_parameter_groups_exclude_the_logit_scale_from_weight_decay():
    model = tiny_dual_encoder()
    groups = model.parameter_groups(weight_decay=0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert len(groups[1]["params"]) == 1 and groups[1]["params"][0] is model.logit_scale
    assert all(p is not model.logit_scale for p in groups[0]["params"])
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}
    assert len(groups[0]["params"]) + 1 == len(list(model.parameters()))


# ---------------------------------------------------------------- word order


@pytest.mark.lesson08
def test_bag_of_words_cannot_tell_swapped_captions_apart_but_text_encoder_can():
    assert one_edit_variants(CAPTION)["order"] == [SWAPPED]
    tokens = TOKENIZER.encode([CAPTION, SWAPPED])
    # float64, so that the only difference a bag of words could show is rounding (~1e-16)
    bow = BagOfWordsTextEncoder(TOKENIZER.vocab_size, embed_dim=8, width=16).double()
    with tm.no_grad():
        a, b = bow(tokens).numpy()
    assert np.abs(a - b).max() < 1e-12 * np.abs(a).max()

    encoder = TextEncoder(TOKENIZER.vocab_size, embed_dim=8, width=16).double()
    with tm.no_grad():
        a, b = encoder(tokens).numpy()
    assert np.abs(a - b).max() > 1e-2 * np.abs(a).max()
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine < 0.9999


# ---------------------------------------------------------------- clear errors


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 1, 32, 32), (3, 32, 32), (2, 32, 32, 3)])
def test_image_encoder_rejects_wrong_image_shapes(shape):
    encoder = ImageEncoder(embed_dim=4, channels=(2, 2), hidden=4)
    with pytest.raises(ValueError, match=r"ImageEncoder: expected images of shape \(N, 3, 32, 32\)"):
        encoder(np.zeros(shape, dtype=np.float32))


@pytest.mark.lesson08
@pytest.mark.parametrize("cls", [TextEncoder, BagOfWordsTextEncoder])
def test_text_encoders_reject_float_tokens_and_wrong_shapes(cls):
    encoder = cls(TOKENIZER.vocab_size, embed_dim=4, width=8)
    tokens = TOKENIZER.encode([CAPTION])
    with pytest.raises(TypeError, match=rf"{cls.__name__}: token ids must be integers, got dtype float"):
        encoder(tokens.astype(np.float32))
    with pytest.raises(ValueError, match=rf"{cls.__name__}: expected token ids of shape \(N, L\) with L <= 12"):
        encoder(tokens[0])  # a single row without its batch axis
    with pytest.raises(ValueError, match=r"L <= 12, got \(1, 13\)"):
        encoder(np.zeros((1, 13), dtype=np.int64))
    # checked on the host, before the copy to the model's device
    with pytest.raises(ValueError, match=rf"{cls.__name__}: ids must be in \[0, {TOKENIZER.vocab_size}\)"):
        encoder(np.full((1, 12), TOKENIZER.vocab_size, dtype=np.int64))


def test_fusion_head_rejects_mismatched_embeddings():
    head = FusionHead(embed_dim=8, hidden=12)
    with pytest.raises(ValueError, match=r"FusionHead: expected two \(N, 8\) embeddings"):
        head(tm.randn(5, 8), tm.randn(4, 8))
    with pytest.raises(ValueError, match=r"FusionHead: expected two \(N, 8\) embeddings"):
        head(tm.randn(5, 6), tm.randn(5, 6))


# ---------------------------------------------------------------- gradient checks


@pytest.mark.lesson08
def test_gradcheck_tiny_text_encoder_wrt_every_parameter():
    encoder = TextEncoder(vocab_size=7, max_len=5, embed_dim=3, width=4).double()
    # a repeated id (4), padding at the end of two rows, every position used
    tokens = tm.tensor(np.array([[1, 4, 5, 4, 2], [1, 6, 2, 0, 0], [1, 3, 5, 2, 0]], dtype=np.int64))
    params = list(encoder.parameters())
    assert len(params) == 8  # token and position tables, token layer, two head layers (weight, bias)
    report = gradcheck(lambda x, *ps: encoder(x), [tokens, *params], tol=1e-6, name="TextEncoder")
    assert report.passed and len(report.checks) == len(params)


def test_gradcheck_tiny_fusion_head_wrt_every_parameter():
    head = FusionHead(embed_dim=3, hidden=5).double()
    rng = np.random.default_rng(2)
    a = tm.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    b = tm.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    params = list(head.parameters())
    report = gradcheck(lambda x, y, *ps: head(x, y), [a, b, *params], tol=1e-6, name="FusionHead")
    assert report.passed and len(report.checks) == 2 + len(params) == 6


# ---------------------------------------------------------------- seeds


def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    def weights(seed):
        tm.manual_seed(seed)
        return tiny_dual_encoder().state_dict()

    first, again, other = weights(3), weights(3), weights(4)
    assert list(first) == list(again)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["image_encoder.features.0.weight"], other["image_encoder.features.0.weight"])
    assert not np.array_equal(first["text_encoder.token_embedding.weight"],
                              other["text_encoder.token_embedding.weight"])
