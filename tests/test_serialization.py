"""Checkpoints: tm.save / tm.load round trips, atomic writes, and clear errors for bad files."""
import os
import zipfile

import numpy as np
import pytest

from tinymm import nn, optim, serialization
from tinymm.serialization import CheckpointError, load, save

pytestmark = pytest.mark.lesson04


def _nested():
    rng = np.random.default_rng(0)
    return {
        "model": {"encoder.0.weight": rng.standard_normal((4, 3)).astype(np.float32),
                  "encoder.0.bias": np.zeros(4, dtype=np.float64),
                  "ids": np.arange(5, dtype=np.int64)},
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.full((4, 3), 0.5, dtype=np.float32)}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "nesterov": False,
                                        "params": [0, 1]}]},
        "step": 10,
        "loss": 0.125,
        "name": "run-α",  # non-ASCII text survives
        "done": True,
        "nothing": None,
        "history": [1.0, 0.5, [np.ones(2, dtype=np.float32), "x"]],
        "scalar": np.array(2.5),
        "np_number": np.float32(0.25),
    }


def test_nested_round_trip_keeps_structure_values_and_dtypes(tmp_path):
    obj = _nested()
    path = tmp_path / "ckpt.npz"
    save(obj, path)
    back = load(path)

    assert set(back) == set(obj)
    w = back["model"]["encoder.0.weight"]
    assert w.dtype == np.float32 and np.array_equal(w, obj["model"]["encoder.0.weight"])
    assert back["model"]["encoder.0.bias"].dtype == np.float64
    assert back["model"]["ids"].dtype == np.int64 and back["model"]["ids"].tolist() == [0, 1, 2, 3, 4]
    # an optimiser's integer keys and tuples come back as ints and tuples
    assert list(back["optimizer"]["state"]) == [0]
    assert back["optimizer"]["state"][0]["step"] == 3
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["optimizer"]["param_groups"][0]["params"] == [0, 1]
    assert back["step"] == 10 and back["loss"] == 0.125 and back["name"] == "run-α"
    assert back["done"] is True and back["nothing"] is None
    assert back["history"][:2] == [1.0, 0.5] and back["history"][2][1] == "x"
    assert np.array_equal(back["history"][2][0], np.ones(2))
    assert back["scalar"].shape == () and float(back["scalar"]) == 2.5
    assert back["np_number"] == 0.25 and isinstance(back["np_number"], float)


def test_archive_is_a_plain_npz_with_readable_names(tmp_path):
    path = tmp_path / "ckpt.npz"
    save(_nested(), path)
    with np.load(path, allow_pickle=False) as archive:
        assert "model/encoder.0.weight" in archive.files
        assert "optimizer/state/0/exp_avg" in archive.files
        assert serialization.META_KEY in archive.files


def test_keys_that_join_to_the_same_name_do_not_collide(tmp_path):
    obj = {"a/b": np.ones(2), "a": {"b": np.zeros(2)}}
    save(obj, tmp_path / "c.npz")
    back = load(tmp_path / "c.npz")
    assert back["a/b"].tolist() == [1.0, 1.0] and back["a"]["b"].tolist() == [0.0, 0.0]


def test_path_is_used_as_given_without_adding_an_extension(tmp_path):
    path = tmp_path / "model.ckpt"
    save({"x": np.ones(1)}, str(path))
    assert path.exists() and not (tmp_path / "model.ckpt.npz").exists()
    assert load(str(path))["x"].tolist() == [1.0]


def test_model_and_optimizer_resume_from_a_checkpoint(tmp_path):
    model = nn.Module()
    model.w = nn.Parameter(np.array([1.0, -2.0], dtype=np.float32))
    opt = optim.Adam(model.parameters(), lr=0.1)
    model.w.grad = np.array([0.5, 0.5], dtype=np.float32)
    opt.step()
    save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 1}, tmp_path / "c.npz")

    ckpt = load(tmp_path / "c.npz")
    model2 = nn.Module()
    model2.w = nn.Parameter(np.zeros(2, dtype=np.float32))
    model2.load_state_dict(ckpt["model"])
    opt2 = optim.Adam(model2.parameters(), lr=0.5)
    opt2.load_state_dict(ckpt["optimizer"])
    assert np.array_equal(model2.w.data, model.w.data)
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.state[model2.w]["step"] == 1
    for m, o in ((model, opt), (model2, opt2)):
        m.w.grad = np.array([-1.0, 2.0], dtype=np.float32)
        o.step()
    assert np.array_equal(model2.w.data, model.w.data)


def test_failed_save_leaves_the_old_file_intact_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    save({"version": 1, "w": np.ones(3)}, path)
    before = path.read_bytes()

    def crash_midway(file, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("disk full")

    monkeypatch.setattr(serialization, "_write_archive", crash_midway)
    with pytest.raises(RuntimeError, match="disk full"):
        save({"version": 2, "w": np.zeros(3)}, path)

    assert path.read_bytes() == before
    assert load(path)["version"] == 1
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(ValueError, match="nowhere.npz.*not found"):
        load(path)


@pytest.mark.parametrize("content, words", [
    (b"just some text\n", "cannot read"),
    (b"", "cannot read"),
])
def test_load_unreadable_file_is_a_clear_value_error(tmp_path, content, words):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"{words}.*bad.npz"):
        load(path)


def test_load_plain_npz_or_npy_is_not_a_tinymm_checkpoint(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(ValueError, match="plain.npz.*not a tinymm checkpoint"):
        load(tmp_path / "plain.npz")
    np.save(tmp_path / "one.npy", np.ones(2))
    with pytest.raises(ValueError, match="one.npy.*single NumPy array"):
        load(tmp_path / "one.npy")


def test_load_truncated_checkpoint_is_a_clear_value_error(tmp_path):
    path = tmp_path / "cut.npz"
    save({"w": np.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ValueError, match="cut.npz"):
        load(path)


def test_archive_without_tinymm_format_is_rejected(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as z:
        with z.open(serialization.META_KEY + ".npy", "w") as f:
            np.lib.format.write_array(f, np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(ValueError, match="other.npz.*unknown format"):
        load(path)


@pytest.mark.parametrize("obj, words", [
    ([np.ones(2)], "expected a dict"),
    ({"f": lambda x: x}, "cannot store a function at 'f'"),
    ({"a": {"b": np.array([object()], dtype=object)}}, "'a/b' has dtype object"),
    ({"a": {(1, 2): 3}}, "dict keys must be strings or numbers"),
])
def test_save_rejects_what_it_cannot_store(tmp_path, obj, words):
    with pytest.raises(TypeError, match=words):
        save(obj, tmp_path / "x.npz")
    assert not os.listdir(tmp_path)


def test_save_into_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        save({"w": np.ones(1)}, tmp_path / "no" / "such" / "x.npz")
