"""Bad arguments to the Python API are refused at the door, with one line naming the argument.

Before these checks: k=-1 silently dropped the last result, k=2.5, None queries, empty galleries
and batch_size=0 ended in IndexError and friends, uint8 or NaN images gave NaN or 50/50 scores,
and "<pad> <unk> <eos>" drew a picture.
"""
import numpy as np
import pytest

import tinymm as tm
from tinymm.data import shapes_tokenizer
from tinymm.errors import UserError
from tinymm.models import CaptionDecoder, DualEncoder, ImageDecoder
from tinymm.run import Run


@pytest.fixture(scope="module")
def run():
    """An untrained but real run: argument checks must not depend on what the model learned."""
    tm.manual_seed(0)
    tokenizer = shapes_tokenizer()
    model = DualEncoder(vocab_size=tokenizer.vocab_size, embed_dim=16).to(tm.get_default_device())
    model.eval()
    captioner = CaptionDecoder(tokenizer.vocab_size, embed_dim=16, max_len=tokenizer.max_len,
                               pad_id=0, bos_id=1, eos_id=2, unk_id=3).to(tm.get_default_device())
    drawer = ImageDecoder(embed_dim=16, channels=(8, 4, 4), prior_hidden=16).to(tm.get_default_device())
    return Run("no-folder", config=None, model=model, tokenizer=tokenizer, metrics={},
               caption_decoder=captioner, image_decoder=drawer)


def _images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(n, 3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("k", [-1, 0, 2.5, True, "3", None])
def test_retrieve_refuses_a_k_that_is_not_a_positive_whole_number(run, k):
    with pytest.raises(UserError, match=r"^retrieve: k must be a whole number >= 1, got"):
        run.retrieve("a small red circle", k=k, images=_images())


def test_retrieve_with_a_valid_k_returns_k_results_best_first(run):
    results = run.retrieve("a small red circle", k=3, images=_images(5))
    assert [i for i, _ in results] == sorted(range(5), key=lambda i: -dict(
        run.retrieve("a small red circle", k=5, images=_images(5)))[i])[:3]
    sims = [s for _, s in results]
    assert sims == sorted(sims, reverse=True) and len(results) == 3


def test_retrieve_refuses_none_and_empty_galleries(run):
    with pytest.raises(UserError, match="retrieve: the query is None"):
        run.retrieve(None)
    with pytest.raises(UserError, match=r"images: got no images \(shape \(0, 3, 32, 32\)\)"):
        run.retrieve("a small red circle", images=np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="captions: the list is empty"):
        run.retrieve(_images(1)[0], captions=[])


@pytest.mark.parametrize("method", ["encode_images", "encode_texts"])
@pytest.mark.parametrize("batch_size", [0, -5, 1.5])
def test_batch_sizes_must_be_positive_whole_numbers(run, method, batch_size):
    data = _images(2) if method == "encode_images" else ["a small red circle"]
    with pytest.raises(UserError, match=rf"^{method}: batch_size must be a whole number >= 1"):
        getattr(run, method)(data, batch_size=batch_size)


def test_a_batch_size_of_one_gives_the_same_embeddings_as_one_batch(run):
    images = _images(3)
    np.testing.assert_allclose(run.encode_images(images, batch_size=1), run.encode_images(images),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, words", [
    (lambda: (_images() * 255).astype(np.uint8), r"values must lie in \[0, 1\], got .* to 25\d.*divide them by 255"),
    (lambda: _images() * 255, r"values must lie in \[0, 1\].*divide them by 255"),
    (lambda: _images() - 0.5, r"values must lie in \[0, 1\], got -0.\d+"),
    (lambda: np.where(np.arange(4 * 3 * 32 * 32).reshape(4, 3, 32, 32) == 7, np.nan, _images()), "1 values are NaN or infinite"),
    (lambda: np.full((2, 3, 32, 32), np.inf), r"(6144|3072) values are NaN or infinite"),
    (lambda: np.array([[["x"]]]), "expected numbers, got an array of dtype <U1"),
    (lambda: np.zeros((4, 32, 32, 3), np.float32), r"must have shape \(N, 3, 32, 32\).*got \([14], 32, 32, 3\)"),
])
@pytest.mark.parametrize("use", ["caption", "classify", "retrieve", "encode_images"])
def test_images_passed_to_the_api_are_checked_for_range_finiteness_and_shape(run, make, words, use):
    images = make()
    call = {"caption": lambda: run.caption(images),
            "classify": lambda: run.classify(images, ["red circle", "blue square"]),
            "retrieve": lambda: run.retrieve(images[:1], k=2),
            "encode_images": lambda: run.encode_images(images)}[use]
    with pytest.raises(UserError, match=words):
        call()


def test_valid_float_images_still_give_probabilities_that_sum_to_one(run):
    probs = run.classify(_images(3), ["red circle", "blue square"])
    assert probs.shape == (3, 2) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("captions", ["<pad> <unk> <eos>", ["a small red circle", "a <bos> circle"]])
def test_captions_with_special_tokens_are_refused(run, captions):
    with pytest.raises(UserError, match=r"captions: item \d .* contains the special token\(s\) <"):
        run.generate(captions)
    with pytest.raises(UserError, match="special token"):
        run.retrieve(captions if isinstance(captions, str) else captions[1], images=_images(2))


def test_generate_names_the_unknown_words(run):
    with pytest.raises(ValueError, match="generate: words not in the vocabulary: giraffe, purple"):
        run.generate(["a purple giraffe"])


@pytest.mark.parametrize("k", ["0", "-1"])
def test_cli_k_is_checked_before_the_run_is_loaded(tmp_path, capsys, k):
    from tinymm.__main__ import main
    assert main(["retrieve", "--run", str(tmp_path / "no-run"), "-k", k, "a small red circle"]) == 2
    assert capsys.readouterr().err == f"error: retrieve: -k must be a whole number >= 1, got {k}\n"
