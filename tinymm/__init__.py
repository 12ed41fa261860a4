"""tinymm: a tiny autograd engine on NumPy/CuPy, and a course that builds CLIP on it.

    import tinymm as tm
    x = tm.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()          # x.grad == 2 * x
"""
import numpy as np

from . import backend
from .autograd import Tensor, Function, no_grad, enable_grad, is_grad_enabled, detect_anomaly
from .backend import manual_seed, set_default_device, get_default_device, cuda_available
from . import functional, nn, optim
from .functional import concatenate, stack
from .serialization import save, load
from .errors import UserError

__version__ = "0.1.0"


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new Tensor holding a copy of ``data`` (a number, nested list, NumPy/CuPy array or Tensor).

    Python floats become float32 (the default, as in PyTorch); an array keeps its dtype, so
    float64 stays float64 (gradient checks rely on it); integers stay integers.
    Without ``device``, a CuPy array (or a tensor on the GPU) stays on the GPU, as in PyTorch;
    host data (numbers, lists, NumPy arrays) goes to the default device.
    """
    if isinstance(data, Tensor):
        data = data.data
    if device is None and backend.on_gpu(data):
        device = "cuda"
    device = backend.check_device(device, "tensor")
    if backend.is_array(data):
        array = data.astype(dtype) if dtype is not None else data.copy()
    else:
        if data is None:
            raise UserError("tensor: got None; give a number, a (nested) list of numbers or an array")
        try:
            array = np.array(data, dtype=dtype)
        except ValueError as err:  # ragged lists such as [[1, 2], [3]]
            raise UserError(f"tensor: cannot make an array of this data ({err}); give numbers, "
                            f"with lists of equal length at each level") from None
        if dtype is None and array.dtype == np.float64:
            array = array.astype(backend.DEFAULT_FLOAT)
    if array.dtype.hasobject or array.dtype.kind in "USV":
        raise UserError(f"tensor: the data is not numeric (NumPy made a {array.dtype} array from it); "
                        f"give numbers, with lists of equal length at each level")
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def _filled(fill, shape, dtype, device, requires_grad):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    xp = backend.xp_for(backend.check_device(device))
    return Tensor(fill(xp, shape, dtype or backend.DEFAULT_FLOAT), requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: ``tm.zeros(2, 3)`` or ``tm.zeros((2, 3))``."""
    return _filled(lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of ones."""
    return _filled(lambda xp, s, d: xp.ones(s, dtype=d), shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from tinymm's seeded generator (same numbers on CPU and GPU)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    values = backend.get_rng().standard_normal(shape).astype(dtype or backend.DEFAULT_FLOAT)
    return Tensor(backend.to_device(values, backend.check_device(device)), requires_grad=requires_grad)


def load_run(run_dir, device=None):
    """Load a run folder left by ``python -m tinymm train`` (see ``tinymm.run``)."""
    from .run import load_run as _load_run
    return _load_run(run_dir, device=device)

