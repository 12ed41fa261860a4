"""Build the stand-in's ``cupy.*`` names from NumPy, keeping only the names CuPy 13.6 has."""
import types

import numpy as np

from . import _strict
from ._core import _SCALARS, _unwrap, _wrap, device_function, ndarray, ufunc
from ._names import NAMES

# functions whose result size depends on the values: CuPy reads the data back to size it
READS = {"nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract", "array2string",
         "array_repr", "array_str", "count_nonzero_host"}

# functions that return facts about types or shapes, not arrays
PASSTHROUGH = {"can_cast", "result_type", "promote_types", "min_scalar_type", "issubdtype", "isscalar",
               "finfo", "iinfo", "dtype", "ndim", "shape", "size", "common_type", "mintypecode",
               "broadcast_shapes", "base_repr", "binary_repr", "typename", "obj2sctype", "sctype2char",
               "iterable", "printoptions", "get_printoptions", "set_printoptions", "format_float_positional",
               "format_float_scientific", "ndindex", "index_exp", "s_", "newaxis", "e", "pi", "inf",
               "nan", "euler_gamma", "iscomplexobj", "isrealobj"}

UFUNCS = {}
namespace = {}


def _host_to_device(data, dtype=None, copy=True, order="K", ndmin=0, **kwargs):
    """cupy.array / cupy.asarray: host data is copied to the device (counted); device data stays."""
    if type(data) is ndarray:
        a = data._a
        if dtype is not None and np.dtype(dtype) != a.dtype or copy is True:
            a = np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin)
            return ndarray._from(a)
        return data if ndmin <= data.ndim else ndarray._from(np.array(a, ndmin=ndmin, copy=False))
    if type(data) in (list, tuple) and any(type(d) is ndarray for d in data):
        return ndarray._from(np.array(_unwrap(list(data)), dtype=dtype, ndmin=ndmin))  # on-device stack
    host = np.array(data, dtype=dtype, copy=True, order=order, ndmin=ndmin)
    if host.dtype.kind in "OSUV":  # CuPy arrays hold numbers and booleans only
        raise ValueError(f"Unsupported dtype {host.dtype}")
    _strict.note("copy", "asarray", host.shape)
    return ndarray._from(host)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, blocking=False):
    return _host_to_device(obj, dtype, copy=True, order=order, ndmin=ndmin)


def asarray(a, dtype=None, order=None, *, blocking=False):
    return _host_to_device(a, dtype, copy=False, order=order or "K")


def ascontiguousarray(a, dtype=None):
    out = _host_to_device(a, dtype, copy=False)
    return out if out._a.flags.c_contiguous else ndarray._from(np.ascontiguousarray(out._a))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    """The one explicit way back to the host (counted), as in CuPy."""
    if type(a) is ndarray:
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    for a in args:
        if type(a) is ndarray:
            return _module
    return np


def take(a, indices, axis=None, out=None):
    """cupy.take wraps out-of-range indices instead of raising."""
    if type(indices) is not ndarray and not isinstance(indices, (_SCALARS, list, tuple)):
        raise TypeError(f"Unsupported type {type(indices)}")
    raw = indices._a if type(indices) is ndarray else np.asarray(indices)
    return _wrap(np.take(_unwrap(a), raw, axis=axis, mode="wrap",
                         out=None if out is None else out._a), [out])


def where(condition, x=None, y=None):
    """cupy.where: with one argument it is nonzero, whose size depends on the values (a read)."""
    if x is None and y is None:
        return namespace["nonzero"](condition)
    return _where3(condition, x, y)


_where3 = device_function(np.where, "where")


def is_available():
    return _strict.device_count() > 0


class _MemoryPool:
    """Enough of cupy.cuda.MemoryPool for code that reports or frees GPU memory."""

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def n_free_blocks(self):
        return 0

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_memory_pool, _pinned_pool = _MemoryPool(), _MemoryPool()


def get_default_memory_pool():
    return _memory_pool


def get_default_pinned_memory_pool():
    return _pinned_pool


def fuse(*args, **kwargs):
    """cupy.fuse: a decorator that fuses kernels on a GPU; here it changes nothing."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


SPECIAL = {"array": array, "asarray": asarray, "asanyarray": asarray, "ascontiguousarray": ascontiguousarray,
           "asnumpy": asnumpy, "get_array_module": get_array_module, "take": take, "ndarray": ndarray,
           "is_available": is_available, "get_default_memory_pool": get_default_memory_pool,
           "get_default_pinned_memory_pool": get_default_pinned_memory_pool, "fuse": fuse,
           "ufunc": ufunc, "where": where}

_module = None  # the cupy module itself, set by cupy/__init__.py


def build():
    for name in sorted(NAMES):
        if name in SPECIAL:
            namespace[name] = SPECIAL[name]
            continue
        obj = getattr(np, name, None)
        if obj is None or isinstance(obj, types.ModuleType) or name == "cuda":
            continue  # NumPy 2 dropped it, or CuPy's own submodule (built separately)
        if isinstance(obj, np.ufunc):
            UFUNCS[name] = UFUNCS.get(obj.__name__) or ufunc(obj)
            UFUNCS[obj.__name__] = UFUNCS[name]
            namespace[name] = UFUNCS[name]
        elif name in PASSTHROUGH or isinstance(obj, type) or not callable(obj):
            namespace[name] = obj  # dtypes, constants, exceptions, facts about types
        elif name in ("allclose", "array_equal", "array_equiv"):  # NumPy gives a bool, CuPy a 0-d array
            namespace[name] = device_function(lambda *a, _f=obj, **k: np.asarray(_f(*a, **k)), name)
        else:
            namespace[name] = device_function(obj, name, reads=name in READS)
    # NumPy's operators call ufuncs CuPy also has under these names
    for name in ("true_divide", "divide", "positive", "invert", "matmul"):
        if name in namespace:
            UFUNCS[name] = namespace[name] if isinstance(namespace[name], ufunc) else UFUNCS.get(name)
    if "true_divide" not in UFUNCS:
        UFUNCS["true_divide"] = UFUNCS["divide"]
    return namespace


def _linalg_module():
    mod = types.ModuleType("cupy.linalg")
    for name in ("norm", "det", "inv", "solve", "svd", "qr", "eigh", "eigvalsh", "cholesky", "pinv",
                 "lstsq", "matrix_power", "matrix_rank", "slogdet", "tensorinv", "tensorsolve"):
        setattr(mod, name, device_function(getattr(np.linalg, name), name))
    return mod


MODULES = {}  # func.__module__ of a NumPy function -> the stand-in module with the same layout
