"""Checkpoints: ``tm.save(obj, path)`` and ``tm.load(path)``.

``obj`` is a dict, possibly nested, of arrays (NumPy or CuPy), numbers, strings, booleans,
None, lists and tuples, e.g.

    tm.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
             "step": 1200, "config": {"dim": 64}}, "runs/clip/checkpoint.npz")
    ckpt = tm.load("runs/clip/checkpoint.npz")
    model.load_state_dict(ckpt["model"])

The file is one ordinary NumPy ``.npz`` archive, written and read with
``allow_pickle=False``: loading a checkpoint can never run code hidden in it, and any
NumPy program can open it. Inside:

- each array under a readable name made from its path in the dict, joined with "/"
  (``model/encoder.0.weight``, ``optimizer/state/0/exp_avg``);
- one entry ``__tinymm__``: the whole structure as JSON text (stored as bytes), with
  every array replaced by ``{"__array__": "<its name in the archive>"}``. Dict keys that
  are not strings (an optimiser's parameter numbers) and tuples are marked so that they
  come back as they went in.

Saving is atomic: the archive is written to a temporary file in the same folder and then
renamed over ``path`` (``os.replace``, a single step on every operating system). If
anything fails midway the temporary file is removed and an older checkpoint at ``path``
is left untouched, never half-overwritten.

Arrays come back as NumPy arrays on the CPU; ``load_state_dict`` moves them where the
model lives.
"""
import json
import os
import uuid
import zipfile

import numpy as np

from . import backend
from .autograd import Tensor
from .errors import CheckpointError  # noqa: F401  (re-exported: old imports keep working)

FORMAT = "tinymm-checkpoint"
VERSION = 1
META_KEY = "__tinymm__"

# markers used inside the JSON structure
_ARRAY, _TUPLE, _DICT = "__array__", "__tuple__", "__dict__"


# CheckpointError lives in tinymm.errors with the other user-mistake errors; it is imported
# above so that ``from tinymm.serialization import CheckpointError`` keeps working.


# ----------------------------------------------------------------------------------------------
# Flattening: a nested object -> (JSON-able structure, {archive name: array})


def _encode(obj, path, arrays):
    """Turn ``obj`` into JSON-able data; arrays are collected in ``arrays`` and referenced by name."""
    where = "/".join(map(str, path)) or "(top level)"
    if isinstance(obj, Tensor):
        obj = obj.data
    if backend.is_array(obj):
        array = backend.to_numpy(obj)
        if array.dtype.hasobject:
            raise TypeError(f"save: the array at {where!r} has dtype object, which cannot be stored "
                            f"without pickle; convert it to numbers or strings")
        name = where
        while name in arrays or name == META_KEY:
            name += "'"  # two paths that join to the same text (a key that contains "/")
        arrays[name] = array
        return {_ARRAY: name}
    if isinstance(obj, np.generic):  # a NumPy scalar such as np.float32(0.5)
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, path + [i], arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, path + [i], arrays) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        for key in obj:
            if not (key is None or isinstance(key, (str, int, float, bool))):
                raise TypeError(f"save: dict keys must be strings or numbers, got {key!r} at {where!r}")
        plain = all(isinstance(k, str) for k in obj) and not ({_ARRAY, _TUPLE, _DICT} & set(obj))
        if plain:
            return {k: _encode(v, path + [k], arrays) for k, v in obj.items()}
        return {_DICT: [[k, _encode(v, path + [k], arrays)] for k, v in obj.items()]}
    raise TypeError(f"save: cannot store a {type(obj).__name__} at {where!r}; a checkpoint holds arrays, "
                    f"numbers, strings, booleans, None, lists, tuples and dicts")


def _decode(data, arrays):
    """The inverse of ``_encode``."""
    if isinstance(data, list):
        return [_decode(v, arrays) for v in data]
    if isinstance(data, dict):
        if set(data) == {_ARRAY}:
            return arrays[data[_ARRAY]]
        if set(data) == {_TUPLE}:
            return tuple(_decode(v, arrays) for v in data[_TUPLE])
        if set(data) == {_DICT}:
            return {k: _decode(v, arrays) for k, v in data[_DICT]}
        return {k: _decode(v, arrays) for k, v in data.items()}
    return data


# ----------------------------------------------------------------------------------------------
# Writing and reading


def _write_archive(file, arrays):
    """Write the named arrays into an open binary file as an uncompressed .npz archive.

    An .npz is a zip file with one ``NAME.npy`` member per array; this is what
    ``numpy.savez`` writes, spelled out so that pickling stays off on the way in too.
    """
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(obj, path):
    """Save a (nested) dict of arrays, numbers and strings to one ``.npz`` file at ``path``.

    The file is written next to ``path`` under a temporary name, then renamed: a crash
    or an error never leaves half a file, and an older file at ``path`` survives a failed
    save. The path is used exactly as given (no extension is added).
    """
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. {{'model': model.state_dict()}}), got {type(obj).__name__}")
    path = os.fspath(path)
    arrays = {}
    structure = _encode(obj, [], arrays)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "object": structure})
    arrays[META_KEY] = np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"save: the folder {folder!r} does not exist (create it first)")
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            _write_archive(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path):
    """Read a checkpoint written by ``save``; arrays come back as NumPy arrays.

    Raises ``CheckpointError`` (a ValueError) naming the path when the file is missing,
    damaged, or not a tinymm checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"load: no checkpoint at {path!r} (file not found)")
    if os.path.isdir(path):
        raise CheckpointError(f"load: {path!r} is a folder, not a checkpoint file")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise CheckpointError(f"load: {path!r} holds a single NumPy array, not a tinymm checkpoint")
        with archive:
            if META_KEY not in archive.files:
                raise CheckpointError(f"load: {path!r} is an .npz archive but not a tinymm checkpoint "
                                      f"(it has no {META_KEY!r} entry); open it with numpy.load instead")
            arrays = {name: archive[name] for name in archive.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"load: cannot read {path!r} as a tinymm checkpoint "
                              f"(damaged, or not an .npz file): {err}") from None
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"load: the {META_KEY!r} entry of {path!r} is damaged: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"load: {path!r} is not a tinymm checkpoint (unknown format)")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"load: {path!r} was written by a newer tinymm (format version "
                              f"{meta['version']}, this one reads up to {VERSION}); upgrade tinymm")
    try:
        return _decode(meta["object"], arrays)
    except KeyError as err:
        raise CheckpointError(f"load: {path!r} is damaged: the array {err} is missing") from None
