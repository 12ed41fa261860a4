"""The stand-in's array: NumPy memory behind CuPy's rules.

``ndarray`` holds a private NumPy array ``_a`` and lets through only what CuPy lets through:

- no implicit conversion to NumPy: ``np.asarray(a)`` and anything else that calls
  ``__array__`` raise CuPy's TypeError; ``a.get()`` / ``cupy.asnumpy(a)`` are the way out;
- a NumPy array is never mixed with a device array in a ufunc, an operator or a function
  (CuPy raises ``TypeError: Unsupported type <class 'numpy.ndarray'>``); Python and NumPy
  scalars are fine;
- NumPy functions reach the stand-in's functions through ``__array_function__`` and
  ``__array_ufunc__``, and only names CuPy has exist;
- reductions return 0-d device arrays, not NumPy scalars;
- integer-array indices that are out of range wrap around (CuPy does not check them on the
  device); a plain integer index out of range raises as in CuPy;
- every read back to the host (``get``, ``item``, ``tolist``, ``bool``/``int``/``float``,
  printing, boolean masks, ``nonzero``, ``unique``...) and every copy to the device is
  counted in ``_strict`` with the line that asked for it.
"""
import functools
import inspect
import numbers

import numpy as np

from . import _strict

_SCALARS = (bool, int, float, complex, np.generic)


def _unsupported(obj):
    return TypeError(f"Unsupported type {type(obj)}")


def _unwrap(obj):
    """Device arrays -> their NumPy memory (recursively in lists/tuples); host arrays refused."""
    if type(obj) is ndarray:
        return obj._a
    if isinstance(obj, np.ndarray):
        raise _unsupported(obj)
    if type(obj) in (list, tuple):
        return type(obj)(_unwrap(o) for o in obj)
    return obj


def _wrap(result, inputs=()):
    """NumPy results -> device arrays; NumPy scalars -> 0-d device arrays (CuPy never returns them)."""
    if isinstance(result, np.ndarray):
        for x in inputs:  # an in-place result (out=...) is the same device object
            if type(x) is ndarray and x._a is result:
                return x
        return ndarray._from(result)
    if isinstance(result, np.generic):
        return ndarray._from(np.asarray(result))
    if type(result) in (list, tuple):
        return type(result)(_wrap(r, inputs) for r in result)
    return result


def _all_inputs(args, kwargs):
    return list(args) + list(kwargs.values())


# parameters that take shapes, axes or counts: CuPy reads them as Python sequences, so a small
# NumPy array of integers is accepted there (only the data operands must live on the device)
SHAPE_PARAMS = {"axes", "axis", "shape", "newshape", "reps", "repeats", "indices_or_sections", "pad_width",
                "source", "destination", "new_shape", "kth", "order", "dtype", "out_shape"}


def _unwrap_lenient(obj):
    """Device arrays -> NumPy memory; host arrays pass (a shape or an axis list)."""
    if type(obj) is ndarray:
        return obj._a
    if type(obj) in (list, tuple):
        return type(obj)(_unwrap_lenient(o) for o in obj)
    return obj


def _unwrap_call(signature, args, kwargs):
    """Unwrap a call's arguments: strictly for data, leniently for shape/axis parameters."""
    try:
        bound = signature.bind(*args, **kwargs)
    except (TypeError, ValueError, AttributeError):
        return _unwrap(list(args)), {k: _unwrap(v) for k, v in kwargs.items()}
    raw_args, raw_kwargs = [], {}
    names = list(bound.arguments)
    for name in names:
        value = bound.arguments[name]
        kind = signature.parameters[name].kind
        unwrap = _unwrap_lenient if name in SHAPE_PARAMS else _unwrap
        if kind is inspect.Parameter.VAR_POSITIONAL:
            raw_args.extend(unwrap(list(value)))
        elif kind is inspect.Parameter.VAR_KEYWORD:
            raw_kwargs.update({k: unwrap(v) for k, v in value.items()})
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            raw_args.append(unwrap(value))
        else:
            raw_kwargs[name] = unwrap(value)
    return raw_args, raw_kwargs


def _signature(func):
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def device_function(np_func, name=None, reads=False):
    """A stand-in for cupy.<name>: NumPy's function on device arrays, refusing host arrays."""
    signature = _signature(np_func)

    @functools.wraps(np_func)
    def cupy_func(*args, **kwargs):
        if signature is None:
            raw_args, raw_kwargs = _unwrap(list(args)), {k: _unwrap(v) for k, v in kwargs.items()}
        else:
            raw_args, raw_kwargs = _unwrap_call(signature, args, kwargs)
        if reads:  # the size of the result depends on the values: CuPy must read them first
            first = args[0] if args else None
            _strict.note("read", name or np_func.__name__, getattr(first, "shape", ()))
        result = np_func(*raw_args, **raw_kwargs)
        return _wrap(result, _all_inputs(args, kwargs))

    cupy_func.__module__ = "cupy"
    return cupy_func


class ufunc:
    """cupy.ufunc: a NumPy ufunc that accepts device arrays and scalars only."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout, self.nargs = np_ufunc.nin, np_ufunc.nout, np_ufunc.nargs
        self.types = np_ufunc.types

    def _run(self, method, args, kwargs):
        out = kwargs.get("out")
        if isinstance(out, tuple) and len(out) == 1:
            kwargs["out"] = out = out[0]
        for x in args:
            if not (type(x) is ndarray or isinstance(x, _SCALARS) or x is None):
                raise _unsupported(x)
        raw = [_unwrap(x) for x in args]
        raw_kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        result = getattr(self._u, method)(*raw, **raw_kwargs) if method else self._u(*raw, **raw_kwargs)
        return _wrap(result, _all_inputs(args, kwargs))

    def __call__(self, *args, **kwargs):
        return self._run(None, args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._run("reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        return self._run("accumulate", args, kwargs)

    def reduceat(self, *args, **kwargs):
        return self._run("reduceat", args, kwargs)

    def outer(self, *args, **kwargs):
        return self._run("outer", args, kwargs)

    def at(self, a, indices, b=None):
        if type(a) is not ndarray:
            raise _unsupported(a)
        idx = _device_index(a, indices, "at")
        raw_b = () if b is None else (_value(b, a.dtype),)
        getattr(self._u, "at")(a._a, idx, *raw_b)

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


def _value(v, dtype):
    """A value written into a device array: device arrays and scalars; host data is copied (counted)."""
    if type(v) is ndarray:
        return v._a
    if isinstance(v, _SCALARS):
        return v
    _strict.note("copy", "setitem value", np.shape(v))
    return np.asarray(v, dtype=dtype)


def _wrap_index_array(idx, size):
    """CuPy does not bounds-check integer index arrays on the device: they wrap around."""
    if idx.dtype.kind in "iu" and size > 0:
        return np.mod(idx, size)
    return idx


def _device_index(a, key, what):
    """Turn a CuPy-style index into a NumPy index: device arrays unwrapped, int arrays wrapped."""
    items = list(key) if isinstance(key, tuple) else [key]
    # which axis of ``a`` each item indexes (None and Ellipsis do not consume one)
    n_consumed = sum(1 for k in items if k is not None and k is not Ellipsis
                     and not (type(k) is ndarray and k.dtype == bool)) + sum(
        k.ndim for k in items if type(k) is ndarray and k.dtype == bool)
    axis = 0
    out = []
    for k in items:
        if k is Ellipsis:
            axis += a.ndim - n_consumed
            out.append(k)
            continue
        if k is None or isinstance(k, slice) or (isinstance(k, numbers.Integral) and not isinstance(k, bool)):
            out.append(k)
            axis += 0 if k is None else 1
            continue
        if type(k) is not ndarray:  # a list or a NumPy array: copied to the device first
            _strict.note("copy", f"{what} index", np.shape(k))
            k = ndarray._from(np.asarray(k) if not (isinstance(k, list) and len(k) == 0)
                              else np.asarray(k, dtype=np.int32))
        raw = k._a
        if raw.dtype == bool:
            _strict.note("read", f"{what} boolean mask", raw.shape)  # the result's size is needed
            out.append(raw)
            axis += raw.ndim
            continue
        size = a.shape[axis] if axis < a.ndim else 0
        out.append(_wrap_index_array(raw, size))
        axis += 1
    return tuple(out) if isinstance(key, tuple) else out[0]


def _should_use_rop(x, y):
    try:
        y_ufunc = y.__array_ufunc__
    except AttributeError:
        return getattr(x, "__array_priority__", 0) < getattr(y, "__array_priority__", 0)
    return y_ufunc is None


def _binary(np_name, reflected=False):
    def op(self, other):
        if type(other) is not ndarray:
            if _should_use_rop(self, other):
                return NotImplemented
            # as CuPy does: NumPy's ufunc, which comes back through __array_ufunc__
            u = getattr(np, np_name)
        else:
            from . import _namespace
            u = _namespace.UFUNCS[np_name]
        return u(other, self) if reflected else u(self, other)
    op.__name__ = np_name
    return op


def _inplace(np_name):
    def op(self, other):
        from . import _namespace
        _namespace.UFUNCS[np_name](self, other, out=self)
        return self
    return op


def _unary(np_name):
    def op(self):
        from . import _namespace
        return _namespace.UFUNCS[np_name](self)
    return op


def _method(name, reads=False, operands=False):
    """A method of NumPy's ndarray on the device array. ``operands``: its arguments are data
    (dot, clip...), so host arrays are refused; otherwise they are shapes or axes."""
    unwrap = _unwrap if operands else _unwrap_lenient

    def method(self, *args, **kwargs):
        if reads:
            _strict.note("read", name, self.shape)
        result = getattr(self._a, name)(*unwrap(list(args)), **{k: unwrap(v) for k, v in kwargs.items()})
        return _wrap(result, [self] + _all_inputs(args, kwargs))
    method.__name__ = name
    return method


class ndarray:
    """cupy.ndarray, played by a NumPy array that refuses to leave the 'device' silently."""

    __array_priority__ = 100
    __slots__ = ("_a", "__weakref__")

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from(cls, array):
        obj = object.__new__(cls)
        obj._a = array
        return obj

    # -- what CuPy refuses --------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, np_ufunc, method, *inputs, **kwargs):
        from . import _namespace
        u = _namespace.UFUNCS.get(np_ufunc.__name__)
        if u is None or method not in ("__call__", "outer", "at", "reduce", "accumulate", "reduceat"):
            return NotImplemented
        for x in inputs + tuple(kwargs.get("out", ()) or ()):
            if not (type(x) is ndarray or isinstance(x, _SCALARS) or isinstance(x, np.ndarray)):
                return NotImplemented
        if np_ufunc.__name__ in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
            # CuPy turns 0-d NumPy arrays into numbers in comparisons (numpy/numpy#12142)
            inputs = tuple(x.item() if isinstance(x, np.ndarray) and x.ndim == 0 else x for x in inputs)
        return (u if method == "__call__" else getattr(u, method))(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import _namespace
        module = _namespace.MODULES.get(func.__module__)
        cupy_func = getattr(module, func.__name__, None) if module is not None else None
        if cupy_func is None or cupy_func is func:
            return NotImplemented
        for t in types:
            if not issubclass(t, (ndarray, np.ndarray)):
                return NotImplemented
        return cupy_func(*args, **kwargs)

    # -- attributes ------------------------------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @shape.setter
    def shape(self, value):
        self._a.shape = value

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._from(self._a.T))
    real = property(lambda self: ndarray._from(self._a.real))
    imag = property(lambda self: ndarray._from(self._a.imag))

    @property
    def base(self):
        return None if self._a.base is None else ndarray._from(self._a.base)

    @property
    def device(self):
        from .cuda import Device
        return Device(0)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):  # pickling goes through the host, like CuPy's
        from . import array
        return array, (self.get(),)

    # -- reads back to the host (each one counted) ------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        _strict.note("read", "get", self.shape)
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        if type(arr) is ndarray:
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        _strict.note("copy", "set", np.shape(arr))
        self._a[...] = arr

    def item(self, *args):
        _strict.note("read", "item", self.shape)
        return self._a.item(*args)

    def tolist(self):
        _strict.note("read", "tolist", self.shape)
        return self._a.tolist()

    def tobytes(self, order="C"):
        _strict.note("read", "tobytes", self.shape)
        return self._a.tobytes(order)

    def __bool__(self):
        _strict.note("read", "bool", self.shape)
        return bool(self._a)

    def __int__(self):
        _strict.note("read", "int", self.shape)
        return int(self._a)

    def __float__(self):
        _strict.note("read", "float", self.shape)
        return float(self._a)

    def __complex__(self):
        _strict.note("read", "complex", self.shape)
        return complex(self._a)

    def __repr__(self):
        _strict.note("read", "repr", self.shape)
        return repr(self._a)

    def __str__(self):
        _strict.note("read", "str", self.shape)
        return str(self._a)

    def __format__(self, spec):
        _strict.note("read", "format", self.shape)
        return format(self._a, spec)

    nonzero = _method("nonzero", reads=True)

    # -- indexing ----------------------------------------------------------------------------------
    def __getitem__(self, key):
        return ndarray._from(self._a[_device_index(self, key, "getitem")])

    def __setitem__(self, key, value):
        self._a[_device_index(self, key, "setitem")] = _value(value, self.dtype)

    def take(self, indices, axis=None, out=None):
        from . import take
        return take(self, indices, axis=axis, out=out)

    def scatter_add(self, slices, value):
        np.add.at(self._a, _device_index(self, slices, "scatter_add"), _value(value, self.dtype))

    def scatter_max(self, slices, value):
        np.maximum.at(self._a, _device_index(self, slices, "scatter_max"), _value(value, self.dtype))

    def scatter_min(self, slices, value):
        np.minimum.at(self._a, _device_index(self, slices, "scatter_min"), _value(value, self.dtype))

    # -- operators ---------------------------------------------------------------------------------
    __add__, __radd__ = _binary("add"), _binary("add", True)
    __sub__, __rsub__ = _binary("subtract"), _binary("subtract", True)
    __mul__, __rmul__ = _binary("multiply"), _binary("multiply", True)
    __truediv__, __rtruediv__ = _binary("true_divide"), _binary("true_divide", True)
    __floordiv__, __rfloordiv__ = _binary("floor_divide"), _binary("floor_divide", True)
    __mod__, __rmod__ = _binary("remainder"), _binary("remainder", True)
    __pow__, __rpow__ = _binary("power"), _binary("power", True)
    __matmul__, __rmatmul__ = _binary("matmul"), _binary("matmul", True)
    __and__, __rand__ = _binary("bitwise_and"), _binary("bitwise_and", True)
    __or__, __ror__ = _binary("bitwise_or"), _binary("bitwise_or", True)
    __xor__, __rxor__ = _binary("bitwise_xor"), _binary("bitwise_xor", True)
    __lshift__, __rlshift__ = _binary("left_shift"), _binary("left_shift", True)
    __rshift__, __rrshift__ = _binary("right_shift"), _binary("right_shift", True)
    __lt__, __le__ = _binary("less"), _binary("less_equal")
    __gt__, __ge__ = _binary("greater"), _binary("greater_equal")
    __eq__, __ne__ = _binary("equal"), _binary("not_equal")
    __iadd__, __isub__, __imul__ = _inplace("add"), _inplace("subtract"), _inplace("multiply")
    __itruediv__, __ifloordiv__ = _inplace("true_divide"), _inplace("floor_divide")
    __imod__, __ipow__ = _inplace("remainder"), _inplace("power")
    __iand__, __ior__, __ixor__ = _inplace("bitwise_and"), _inplace("bitwise_or"), _inplace("bitwise_xor")
    __neg__, __pos__, __abs__ = _unary("negative"), _unary("positive"), _unary("absolute")
    __invert__ = _unary("invert")
    __hash__ = None

    def __divmod__(self, other):
        return self // other, self % other


# the rest of CuPy's ndarray methods: NumPy's, on device arrays (no method reads back)
for _name in ("all any argmax argmin argpartition argsort astype conj conjugate copy cumprod cumsum "
              "diagonal flatten max mean min partition prod ptp ravel repeat reshape round sort squeeze "
              "std sum swapaxes trace transpose var view").split():
    setattr(ndarray, _name, _method(_name))
for _name in "choose clip dot fill put searchsorted".split():
    setattr(ndarray, _name, _method(_name, operands=True))
ndarray.compress = _method("compress", reads=True, operands=True)  # the size depends on the values
