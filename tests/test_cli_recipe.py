"""The training recipe's two switches on the command line: --augment and --image-encoder."""
import pytest

import tinymm.train
from tinymm.__main__ import main


@pytest.fixture
def trained(monkeypatch):
    """Run `train` up to the point where it would train, and keep the config it built."""
    seen = []
    monkeypatch.setattr(tinymm.train, "run_training", lambda config, run_dir, resume=False: seen.append(config))
    return seen


def test_the_default_recipe_and_both_switches(trained, tmp_path):
    assert main(["train", "--run-dir", str(tmp_path / "a")]) == 0
    assert (trained[-1].augment, trained[-1].image_encoder) == ("all", "split")
    assert main(["train", "--run-dir", str(tmp_path / "b"), "--augment", "none", "--image-encoder", "plain"]) == 0
    assert (trained[-1].augment, trained[-1].image_encoder) == ("none", "plain")
    assert main(["train", "--run-dir", str(tmp_path / "c"), "--augment", "size,colour"]) == 0
    assert trained[-1].augment == "size,colour"


def test_an_unknown_ingredient_is_one_line_naming_the_option(trained, tmp_path, capsys):
    assert main(["train", "--run-dir", str(tmp_path / "d"), "--augment", "size,sparkle"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--augment" in err and "sparkle" in err, err
    assert not trained
    with pytest.raises(SystemExit) as stop:
        main(["train", "--run-dir", str(tmp_path / "e"), "--image-encoder", "round"])
    assert stop.value.code == 2
