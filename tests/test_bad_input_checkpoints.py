"""Checkpoint files are checked before they are trusted, and every problem names the file.

Before these checks a FIFO given as clip.npz hung forever, an array header claiming 10**12
floats raised ArrayMemoryError, a member that inflates to gigabytes was inflated, arrays
nothing referred to were read anyway, and damaged metadata gave KeyError or "list indices
must be integers" without naming the file.
"""
import json
import os
import threading
import zipfile

import numpy as np
import pytest

import tinymm as tm
from tinymm import serialization
from tinymm.errors import CheckpointError


def _npy_bytes(array):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _archive(path, members, compression=zipfile.ZIP_STORED):
    """An .npz with the given {name: bytes} members (".npy" is added to each name)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name + ".npy", data)
    return path


def _meta(obj, **extra):
    meta = {"format": serialization.FORMAT, "version": serialization.VERSION, "object": obj, **extra}
    return _npy_bytes(np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path):
    path = tmp_path / "clip.npz"
    os.mkfifo(path)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_try_load(path)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # unblock the hung reader so the test run can finish
        with open(path, "wb"):
            pass
        pytest.fail("load blocked on a FIFO")
    assert isinstance(outcome[0], CheckpointError)
    assert str(outcome[0]) == f"load: {str(path)!r} is not a regular file (a pipe, socket or device); " \
                              f"give the path of a checkpoint file"


def _try_load(path):
    try:
        return tm.load(path)
    except Exception as err:  # handed to the test thread to check
        return err


def _npy_header(shape, descr="<f4"):
    """The header of a version 1.0 .npy file declaring ``shape``, padded to 128 bytes."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}".ljust(128 - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def test_a_header_claiming_a_trillion_floats_is_refused_before_reading(tmp_path):
    lying = _npy_header((10**12,)) + bytes(16)  # claims 4 TB, holds 16 bytes
    path = _archive(tmp_path / "huge.npz", {"w": lying, serialization.META_KEY: _meta({"w": {"__array__": "w"}})})
    with pytest.raises(CheckpointError, match=r"huge\.npz.*'w\.npy' declares shape \(1000000000000,\) of float32 "
                                              r"\(4000000000000 bytes\) but holds 16 bytes"):
        tm.load(path)


def test_a_compressed_member_is_refused_instead_of_inflated(tmp_path):
    path = _archive(tmp_path / "zipped.npz", {"w": _npy_bytes(np.zeros(100_000, np.float32)),
                                             serialization.META_KEY: _meta({"w": {"__array__": "w"}})},
                    compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 10_000  # 400 kB of zeros packed into a few kB
    with pytest.raises(CheckpointError, match=r"zipped\.npz.* is compressed; tinymm checkpoints store arrays uncompressed"):
        tm.load(path)


def test_members_nothing_refers_to_are_never_read(tmp_path):
    tm.save({"w": np.arange(3.0)}, tmp_path / "ok.npz")
    with zipfile.ZipFile(tmp_path / "ok.npz", "a") as archive:  # a stowaway that would fail to load
        archive.writestr("extra.npy", b"\x93NUMPY garbage")
    loaded = tm.load(tmp_path / "ok.npz")
    assert list(loaded) == ["w"]
    np.testing.assert_array_equal(loaded["w"], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("obj, words", [
    ({"w": {"__array__": 5}}, "an array reference is 5, not a name"),
    ({"w": {"__array__": "nowhere"}}, "the array 'nowhere' is missing"),
    ({"w": {"__dict__": "x"}}, "a dict holds 'x', not \\[key, value\\] pairs"),
    ({"w": {"__dict__": [[{"a": 1}, 2]]}}, "a dict key is \\{'a': 1\\}"),
    ({"w": {"__tuple__": 3}}, "a tuple holds 3"),
    ([1, 2], "it stores no dict of contents"),
])
def test_damaged_structures_name_the_file(tmp_path, obj, words):
    path = _archive(tmp_path / "bent.npz", {serialization.META_KEY: _meta(obj)})
    with pytest.raises(CheckpointError, match=rf"bent\.npz.*{words}"):
        tm.load(path)


def test_a_version_that_is_not_a_number_names_the_file(tmp_path):
    path = _archive(tmp_path / "v.npz", {serialization.META_KEY: _meta({}, version="1")})
    with pytest.raises(CheckpointError, match=r"v\.npz.*format version is '1', not a number"):
        tm.load(path)


@pytest.mark.parametrize("saved, words", [
    ({"step": 3}, r"has no 'model' entry \(it holds \['step'\]\)"),
    ({"model": {}}, r"has no 'step' entry"),
    ({"model": [1, 2], "step": 3}, r"'model' is a list, not a dict"),
    ({"model": {}, "step": "3"}, r"'step' is a str, not a int"),
    ({"model": {}, "step": True}, r"'step' is a bool, not a int"),
])
def test_required_entries_and_their_types_are_checked(tmp_path, saved, words):
    tm.save(saved, tmp_path / "clip.npz")
    with pytest.raises(CheckpointError, match=rf"clip\.npz.*{words}"):
        tm.load(tmp_path / "clip.npz", required={"model": dict, "step": int})


def test_a_good_checkpoint_passes_every_check(tmp_path):
    saved = {"model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "step": 7,
             "pairs": {1: (2.0, "x")}, "fortran": np.asfortranarray(np.eye(3))}
    tm.save(saved, tmp_path / "good.npz")
    loaded = tm.load(tmp_path / "good.npz", required={"model": dict, "step": int})
    np.testing.assert_array_equal(loaded["model"]["w"], saved["model"]["w"])
    np.testing.assert_array_equal(loaded["fortran"], np.eye(3))
    assert loaded["step"] == 7 and loaded["pairs"] == {1: (2.0, "x")}
