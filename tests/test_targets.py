"""The numbers the README promises, from the default training run (slow: minutes; `pytest -m slow`).

These train the real default configuration, so they are left out of the quick suite.
"""
import pytest

from tinymm.train import TrainConfig, run_training

pytestmark = pytest.mark.slow  # no lesson marker: `pytest -m lesson12` must stay quick


@pytest.fixture(scope="module")
def default_metrics(tmp_path_factory):
    return run_training(TrainConfig(), tmp_path_factory.mktemp("runs") / "default")


def test_dual_encoder_targets(default_metrics):
    test = default_metrics["test"]
    assert test["zero_shot_accuracy"] >= 0.95
    assert test["t2i_r1"] >= 0.90
    assert test["i2t_r1"] >= 0.80
    assert test["hard_neg_order"] >= 0.90


@pytest.fixture(scope="module")
def other_seeds(tmp_path_factory):
    """The CLIP stage of the default recipe with seeds 1 and 2 (the decoders do not matter here)."""
    root = tmp_path_factory.mktemp("seeds")
    return {seed: run_training(TrainConfig(seed=seed, stages=("clip",)), root / f"seed{seed}") for seed in (1, 2)}


def test_generalisation_targets(default_metrics, other_seeds):
    """Pictures from a renderer training never used, and colour-shape pairs training never showed."""
    assert default_metrics["other_renderer"]["zero_shot_accuracy"] >= 0.90
    compositional = [default_metrics["compositional"]["zero_shot_accuracy"]] + \
        [other_seeds[seed]["compositional"]["zero_shot_accuracy"] for seed in (1, 2)]
    assert min(compositional) >= 0.70, compositional
    assert sum(compositional) / 3 >= 0.80, compositional
    for seed in (1, 2):
        assert other_seeds[seed]["other_renderer"]["zero_shot_accuracy"] >= 0.90
        assert other_seeds[seed]["test"]["zero_shot_accuracy"] >= 0.95


def test_decoder_targets(default_metrics):
    test = default_metrics["test"]
    assert test["caption_exact_one"] >= 0.90
    assert test["caption_exact_two"] >= 0.60
    assert test["caption_roundtrip"] >= 0.80
    assert test["gen48_colour"] >= 0.90
    assert test["gen48_area_large"] > 2 * test["gen48_area_small"]
    # caption -> image, judged by the second CLIP (issue 17)
    assert test["image_roundtrip_one"] >= 0.90
    assert test["image_roundtrip_two"] >= 0.40
    assert test["gen48_shape"] >= 0.90 and test["gen48_size"] >= 0.90


def test_bag_of_words_cannot_tell_argument_order(tmp_path):
    metrics = run_training(TrainConfig(text_encoder="bow", stages=("clip",), steps=600), tmp_path / "bow")
    assert metrics["test"]["hard_neg_order"] <= 0.6


def test_mse_alignment_collapses(tmp_path):
    metrics = run_training(TrainConfig(loss="mse", stages=("clip",), steps=300), tmp_path / "mse")
    chance = 1.0 / metrics["test"]["n_captions"]
    assert metrics["test"]["t2i_r1"] < 10 * chance
