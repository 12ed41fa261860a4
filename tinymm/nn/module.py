"""Module and Parameter: the bookkeeping that turns functions into layers and models.

A ``Parameter`` is a Tensor that an optimiser should update (``requires_grad=True``).
A ``Module`` is an object that owns Parameters and other Modules. Assigning one to an
attribute registers it, in order, so that

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(2, 16)      # registered as child "hidden"
            self.out = nn.Linear(16, 1)         # registered as child "out"
        def forward(self, x):
            return self.out(F.relu(self.hidden(x)))

knows its parameters by name ("hidden.weight", "hidden.bias", "out.weight", "out.bias"),
can hand them to an optimiser, save them (``state_dict``), load them back
(``load_state_dict``), move them to the GPU (``to``) and switch between training and
evaluation behaviour (``train`` / ``eval``). Names and layouts follow PyTorch, so a PyTorch
``state_dict`` converted to NumPy arrays loads by name into the same model built here.

Nothing in this file computes a gradient: the layers call ops from ``tinymm.functional``,
and those carry the hand-written backward passes.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module: always ``requires_grad=True``.

    ``Parameter(array_or_tensor)`` keeps the array it is given (no copy), on its device: a
    NumPy array stays on the CPU whatever the default device (as ``torch.from_numpy`` does);
    move it with ``backend.to_device(array, tm.get_default_device())`` or ``module.to(...)``.
    It must hold floating-point numbers: a gradient step cannot move an integer.
    """

    def __init__(self, data):
        if isinstance(data, Tensor):
            data = data.data
        if not backend.is_array(data):
            data = np.asarray(data)
            if data.dtype == np.float64:  # Python floats become float32, as in tm.tensor
                data = data.astype(backend.DEFAULT_FLOAT)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter: parameters must be floating point, got dtype {data.dtype} "
                            f"(shape {tuple(data.shape)})")
        super().__init__(data, requires_grad=True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


# What load_state_dict returns when strict=False lets keys go unmatched (as in PyTorch).
LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign Parameters and sub-Modules as
    attributes, and implement ``forward``. Calling the module calls ``forward``.
    """

    def __init__(self):
        # object.__setattr__ because our own __setattr__ needs these dicts to exist
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() at the start of "
                                 f"__init__ before assigning attribute {name!r}")
        params, modules = self._parameters, self._modules
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} to parameter "
                                f"{name!r}; wrap it as nn.Parameter(...) or assign None")
            params[name] = None  # e.g. a layer built with bias=False
        elif name in modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}: cannot assign {type(value).__name__} to "
                                f"sub-module {name!r}; assign a Module or None")
            modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only called when normal lookup fails: parameters and modules live in the dicts
        d = self.__dict__
        if name in d.get("_parameters", {}):
            return d["_parameters"][name]
        if name in d.get("_modules", {}):
            return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def _forget(self, name, keep=None):
        """Drop ``name`` from the other registries before it is registered in ``keep``.

        Re-assigning an existing parameter keeps its place in the order (as in PyTorch).
        """
        for registry in (self._parameters, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self.__dict__.pop(name, None)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``; same as assigning the attribute."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param

    def add_module(self, name, module):
        """Register a sub-module under ``name`` (any string, e.g. "0" in a Sequential)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        if not isinstance(name, str) or name == "" or "." in name:
            raise ValueError(f"add_module: module name must be a non-empty string without '.', got {name!r}")
        self._forget(name, keep=self._modules)
        self._modules[name] = module

    # -- walking the tree -------------------------------------------------------------------
    def named_children(self):
        """(name, module) for each direct sub-module, in the order they were assigned."""
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module ("") and every module below it, depth first."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module.named_children()]
            stack.extend(reversed(children))  # reversed, so the first child comes out first

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) pairs: "weight", "encoder.0.weight", ...

        A Parameter shared by two layers (tied weights) is listed once unless
        ``remove_duplicate=False``, so an optimiser never updates it twice.
        """
        seen = set()
        owners = self.named_modules(prefix) if recurse else [(prefix, self)]
        for owner_name, module in owners:
            for name, param in module._parameters.items():
                if param is None or (remove_duplicate and id(param) in seen):
                    continue
                seen.add(id(param))
                yield (f"{owner_name}.{name}" if owner_name else name), param

    def parameters(self, recurse=True):
        """Every Parameter of this module and its sub-modules (what an optimiser needs)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def num_parameters(self):
        """How many numbers the model learns (each shared Parameter counted once)."""
        return sum(p.size for p in self.parameters())

    # -- saving and loading -------------------------------------------------------------------
    def state_dict(self):
        """An ordered dict: parameter name -> a NumPy copy of its values.

        Copies, so later training does not change a state_dict already taken (a snapshot
        of the best model stays the best model). Save it with ``tm.save``.
        """
        return OrderedDict((name, np.array(backend.to_numpy(p.data), copy=True))
                           for name, p in self.named_parameters(remove_duplicate=False))

    def load_state_dict(self, state_dict, strict=True):
        """Copy the values in ``state_dict`` (name -> NumPy/CuPy array or Tensor) into this module.

        Every problem is found before anything is written, and reported together in one
        ValueError: missing keys, unexpected keys, shape mismatches, values that are not
        arrays. So a failed load leaves the model exactly as it was. Values are copied into
        the existing arrays, on this module's device and with its dtype, so an optimiser
        holding these Parameters keeps working. ``strict=False`` allows missing and
        unexpected keys (never wrong shapes); the keys are returned as
        ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"load_state_dict: expected a dict of name -> array, got {type(state_dict).__name__}")
        own = OrderedDict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems, updates = [], []
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if isinstance(value, Tensor):
                value = value.data
            if not backend.is_array(value):
                problems.append(f"{name!r}: expected an array, got {type(value).__name__}")
                continue
            if tuple(value.shape) != param.shape:
                problems.append(f"{name!r}: checkpoint has shape {tuple(value.shape)}, model has {param.shape}")
                continue
            if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
                problems.append(f"{name!r}: dtype {value.dtype} is not numeric")
                continue
            updates.append((param, value))
        if strict and unexpected:
            problems.insert(0, f"unexpected keys (in the state_dict, not in the model): {unexpected}")
        if strict and missing:
            problems.insert(0, f"missing keys (in the model, not in the state_dict): {missing}")
        if problems:
            raise ValueError(f"load_state_dict: cannot load into {type(self).__name__} "
                             f"(nothing was changed):\n  " + "\n  ".join(problems))
        for param, value in updates:
            param.data[...] = backend.to_device(value, param.device).astype(param.dtype, copy=False)
        return LoadResult(missing, unexpected)

    # -- training helpers ---------------------------------------------------------------------
    def zero_grad(self):
        """Forget every parameter's gradient (set it to None) before the next backward."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        """Training mode (the default): Dropout drops. Applies to every sub-module; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: Dropout passes everything through. Same as ``train(False)``."""
        return self.train(False)

    def to(self, device=None, dtype=None):
        """Move every parameter (and its gradient) to ``device`` and/or cast to a float ``dtype``.

        Works in place: the Parameter objects stay the same (an optimiser built before keeps
        pointing at them), only their arrays change. Returns self, so ``model = Model().to("cuda")``.
        """
        if device is not None:
            device = backend.check_device(device, "Module.to")
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"Module.to: parameters must stay floating point, got dtype {np.dtype(dtype)}")
        for p in self.parameters():
            for attr in ("data", "grad"):
                array = getattr(p, attr)
                if array is None:
                    continue
                if device is not None:
                    array = backend.to_device(array, device)
                if dtype is not None:
                    array = array.astype(dtype, copy=False)
                setattr(p, attr, array)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def double(self):
        """Cast parameters to float64 (gradient checks of whole models)."""
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # -- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- printing -----------------------------------------------------------------------------
    def extra_repr(self):
        """The text between the parentheses of this module's repr (layers override it)."""
        return ""

    def __repr__(self):
        children = [f"({name}): " + repr(module).replace("\n", "\n  ")
                    for name, module in self.named_children()]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
