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
import stat
import uuid
import zipfile

import numpy as np

from . import backend
from .autograd import Tensor
from .errors import CheckpointError, UserError  # CheckpointError re-exported: old imports keep working

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
    if os.path.isdir(path):
        raise UserError(f"save: {path!r} is a folder; give a file name inside it, e.g. {os.path.join(path, 'checkpoint.npz')!r}")
    write_atomically(path, lambda file: _write_archive(file, arrays))


def write_atomically(path, write):
    """Write the file ``path`` with ``write(file)`` (an open binary file), all or nothing.

    The bytes go to a temporary file next to ``path``, which is renamed to ``path`` once they
    are on disk: a reader never sees half a file, and an older file at ``path`` survives a
    failed write. A failure leaves no temporary file behind, and its OSError names ``path``
    (a full disk names no file at all, other errors the temporary one). ``save`` and the run
    folder's JSON files (``train/bookkeeping.write_json``) both write this way.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError) and err.filename in (None, tmp):
            raise OSError(err.errno, err.strerror, path) from err
        raise


def load(path, required=None):
    """Read a checkpoint written by ``save``; arrays come back as NumPy arrays.

    ``required`` maps top-level keys to the types they must have, e.g.
    ``{"model": dict, "step": int}``: a file that lacks one, or holds another type, is refused
    before anything uses it.

    Raises ``CheckpointError`` naming the path when the file is missing, damaged, or not a
    tinymm checkpoint. The file is checked before it is trusted: it must be a regular file
    (a pipe would block the read forever), every array's size declared in its header must
    match the bytes the file really holds (a damaged header cannot ask for a terabyte), and
    only the arrays the structure refers to are read.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"load: no checkpoint at {path!r} (file not found)")
    if os.path.isdir(path):
        raise CheckpointError(f"load: {path!r} is a folder, not a checkpoint file")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise CheckpointError(f"load: {path!r} is not a regular file (a pipe, socket or device); "
                              f"give the path of a checkpoint file")
    try:
        with open(path, "rb") as file:
            if file.read(6) == b"\x93NUMPY":
                raise CheckpointError(f"load: {path!r} holds a single NumPy array, not a tinymm checkpoint")
            file_size = os.fstat(file.fileno()).st_size
            with zipfile.ZipFile(file) as archive:
                members = {info.filename: info for info in archive.infolist()}
                if META_KEY + ".npy" not in members:
                    raise CheckpointError(f"load: {path!r} is an .npz archive but not a tinymm checkpoint "
                                          f"(it has no {META_KEY!r} entry); open it with numpy.load instead")
                meta_bytes = _read_member(archive, members[META_KEY + ".npy"], path, file_size).tobytes()
                meta = _parse_meta(meta_bytes, path)
                arrays = {}
                for name in _array_names(meta["object"], path):
                    if name + ".npy" not in members:
                        raise CheckpointError(f"load: {path!r} is damaged: the array {name!r} is missing")
                    arrays[name] = _read_member(archive, members[name + ".npy"], path, file_size)
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise CheckpointError(f"load: cannot read {path!r} as a tinymm checkpoint "
                              f"(damaged, or not an .npz file): {err}") from None
    obj = _decode(meta["object"], arrays)
    _check_required(obj, required, path)
    return obj


def _read_member(archive, info, path, file_size):
    """One ``.npy`` member as an array, after checking that its header tells the truth.

    The header declares a shape and a dtype; their product is the number of bytes that must
    follow it. Checking that number against the member's real size before reading means a
    header that claims 10**12 floats is refused instead of being allocated.
    """
    where = f"load: {path!r} is damaged: the member {info.filename!r}"
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"{where} is compressed; tinymm checkpoints store arrays uncompressed, "
                              f"so a file never inflates beyond its own size (save it again with tm.save)")
    if info.header_offset + info.file_size > file_size:
        raise CheckpointError(f"{where} declares {info.file_size} bytes, more than the file holds")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise CheckpointError(f"{where} has an .npy header of version {version}, which tinymm does not write")
        if dtype.hasobject:
            raise CheckpointError(f"{where} holds Python objects (pickle), which tinymm never loads")
        declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if member.tell() + declared != info.file_size:
            raise CheckpointError(f"{where} declares shape {shape} of {dtype} ({declared} bytes) "
                                  f"but holds {info.file_size - member.tell()} bytes")
    with archive.open(info) as member:  # the sizes agree: now it is safe to read
        return np.lib.format.read_array(member, allow_pickle=False)


def _parse_meta(meta_bytes, path):
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"load: the {META_KEY!r} entry of {path!r} is damaged: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"load: {path!r} is not a tinymm checkpoint (unknown format)")
    version = meta.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"load: {path!r} is damaged: its format version is {version!r}, not a number")
    if version > VERSION:
        raise CheckpointError(f"load: {path!r} was written by a newer tinymm (format version "
                              f"{version}, this one reads up to {VERSION}); upgrade tinymm")
    if not isinstance(meta.get("object"), dict):
        raise CheckpointError(f"load: {path!r} is damaged: it stores no dict of contents")
    return meta


def _array_names(data, path):
    """The archive names of every array the structure refers to (only these are read).

    The same walk checks the markers: each must hold what ``_encode`` wrote into it.
    """
    names, stack = [], [data]
    while stack:  # a loop, not recursion: a hostile file cannot nest deeply enough to crash it
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            kind = set(item) & {_ARRAY, _TUPLE, _DICT}
            if len(item) == 1 and kind == {_ARRAY}:
                if not isinstance(item[_ARRAY], str):
                    raise CheckpointError(f"load: {path!r} is damaged: an array reference is {item[_ARRAY]!r}, "
                                          f"not a name")
                names.append(item[_ARRAY])
            elif len(item) == 1 and kind == {_TUPLE}:
                if not isinstance(item[_TUPLE], list):
                    raise CheckpointError(f"load: {path!r} is damaged: a tuple holds {item[_TUPLE]!r:.60}")
                stack.extend(item[_TUPLE])
            elif len(item) == 1 and kind == {_DICT}:
                pairs = item[_DICT]
                if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                    raise CheckpointError(f"load: {path!r} is damaged: a dict holds {pairs!r:.60}, "
                                          f"not [key, value] pairs")
                for key, value in pairs:
                    if not (key is None or isinstance(key, (str, int, float, bool))):
                        raise CheckpointError(f"load: {path!r} is damaged: a dict key is {key!r:.60}")
                    stack.append(value)
            else:
                stack.extend(item.values())
    return names


def _check_required(obj, required, path):
    for key, kind in (required or {}).items():
        if key not in obj:
            raise CheckpointError(f"load: {path!r} has no {key!r} entry (it holds {sorted(map(str, obj))}); "
                                  f"it is not the checkpoint expected here")
        value = obj[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise CheckpointError(f"load: {path!r} is damaged: {key!r} is a {type(value).__name__}, "
                                  f"not a {kind.__name__}")
