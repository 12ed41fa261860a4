"""Optimisers: how a gradient becomes a change of the weights.

After ``loss.backward()`` every parameter p holds ``p.grad`` = dL/dp. An optimiser's
``step()`` moves each p a little against its gradient; ``zero_grad()`` clears the
gradients before the next backward (they accumulate otherwise).

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches:
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

The updates are plain array code on ``p.data``, in place: no graph is recorded and the
Parameter objects stay the same. Parameters whose ``grad`` is None (not used by this loss)
are skipped. The update rules are PyTorch's, line for line (same bias correction, same place
for eps), so the numbers agree with ``torch.optim`` to float32 rounding.

Parameter groups: instead of a list of parameters, pass a list of dicts, each with its own
settings, e.g. no weight decay for a temperature:

    optim.AdamW([{"params": weights}, {"params": [logit_scale], "weight_decay": 0.0}], lr=1e-3)
"""
import math

import numpy as np

from . import backend
from .autograd import Tensor


class Optimizer:
    """The base class: parameter groups, per-parameter state, zero_grad and state_dict.

    ``param_groups`` is a list of dicts: "params" (a list of Parameters) plus every setting
    (lr, weight_decay, ...), filled from ``defaults`` where a group does not say.
    ``state`` maps a Parameter to its own dict of running arrays (momentum, Adam moments).
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # Parameter -> dict; Tensors hash by identity
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters or of "
                            f"dicts, got a single Tensor (wrap it in a list)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a dict {"params": [...], setting: value, ...}; missing settings come from defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group must be a dict with a 'params' entry, got {group!r}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{name}: can only optimise Tensors that require grad, got {p!r:.60}")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or taken & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears twice (in one group or in two groups)")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"{name}: unknown settings {sorted(unknown)} in a parameter group; "
                             f"known: {sorted(self.defaults)}")
        full = dict(self.defaults)
        full.update(group)
        full["params"] = params
        self._check_settings(full)
        self.param_groups.append(full)

    def _check_settings(self, group):
        """Raise a ValueError for settings that make no sense (subclasses add their own)."""
        name = type(self).__name__
        if not group["lr"] >= 0:
            raise ValueError(f"{name}: learning rate must be >= 0, got {group['lr']}")
        if not group.get("weight_decay", 0) >= 0:
            raise ValueError(f"{name}: weight_decay must be >= 0, got {group['weight_decay']}")

    def zero_grad(self):
        """Set every parameter's gradient to None (the next backward starts from zero)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        raise NotImplementedError

    def _params_with_grad(self, group):
        return [p for p in group["params"] if p.grad is not None]

    # -- saving and resuming ------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to resume training: settings per group and the running arrays.

        As in PyTorch, parameters are referred to by their position (0, 1, 2, ... counted
        across groups), so the dict holds no Parameters, only numbers and NumPy arrays,
        and ``tm.save`` can store it.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            entry = {k: v for k, v in group.items() if k != "params"}
            entry["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                entry["params"].append(index[id(p)])
            groups.append(entry)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (np.array(backend.to_numpy(v), copy=True) if backend.is_array(v) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore settings and running arrays saved by ``state_dict`` (e.g. after ``tm.load``).

        The optimiser must have been built over the same parameters in the same order;
        arrays are moved to each parameter's device and dtype.
        """
        name = type(self).__name__
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if groups is None or "state" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in groups]
        if sizes != saved_sizes:
            raise ValueError(f"{name}.load_state_dict: the saved optimiser has groups of sizes {saved_sizes}, "
                             f"this one {sizes}")
        params = [p for g in self.param_groups for p in g["params"]]
        saved_ids = [int(i) for g in groups for i in g["params"]]
        by_saved_id = dict(zip(saved_ids, params))
        new_state = {}
        for key, entry in state_dict["state"].items():
            p = by_saved_id.get(int(key))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {key} that no group lists")
            moved = {}
            for k, v in entry.items():
                if backend.is_array(v) and v.ndim == 0 and np.issubdtype(v.dtype, np.integer):
                    v = v.item()  # a step count after a round trip
                elif backend.is_array(v):
                    # a running array (momentum, Adam moments), 0-d for a 0-d parameter
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"{name}.load_state_dict: {k!r} of parameter {key} has shape "
                                         f"{tuple(v.shape)}, the parameter has {p.shape}")
                    v = backend.to_device(v, p.device).astype(p.dtype, copy=True)
                moved[k] = v
            new_state[p] = moved
        for group, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(v, list) else v
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: {len(group['params'])} parameters, " +
                         ", ".join(f"{k}={v}" for k, v in group.items() if k != "params"))
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum, Nesterov momentum and weight decay.

    For each parameter p with gradient g (PyTorch's rule, dampening 0):
        g ← g + weight_decay · p                         (L2 penalty ½·wd·‖p‖²)
        with momentum μ > 0:
            b ← g on the first step, else b ← μ·b + g    (a running sum of past gradients)
            g ← g + μ·b if nesterov, else g ← b
        p ← p − lr · g
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def _check_settings(self, group):
        super()._check_settings(group)
        if not group["momentum"] >= 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {group['momentum']}")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def step(self):
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in self._params_with_grad(group):
                g = p.grad
                if wd != 0:
                    g = g + wd * p.data
                if mu != 0:
                    state = self.state.setdefault(p, {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.copy()
                    else:
                        buf = state["momentum_buffer"]
                        buf *= mu
                        buf += g
                    buf = state["momentum_buffer"]
                    g = g + mu * buf if group["nesterov"] else buf
                p.data -= lr * g


class Adam(Optimizer):
    """Adam: each parameter gets its own step size from running averages of g and g².

    For each parameter p with gradient g, at step t = 1, 2, ... (PyTorch's rule):
        g ← g + weight_decay · p                  (L2 penalty, added to the gradient)
        m ← β1·m + (1 − β1)·g                     (first moment: a smoothed gradient)
        v ← β2·v + (1 − β2)·g²                    (second moment: a smoothed squared gradient)
        m̂ = m / (1 − β1ᵗ),  v̂ = v / (1 − β2ᵗ)       (bias correction: m and v start at 0)
        p ← p − lr · m̂ / (√v̂ + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check_settings(self, group):
        super()._check_settings(group)
        name = type(self).__name__
        beta1, beta2 = group["betas"]
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"{name}: betas must be in [0, 1), got {group['betas']}")
        if not group["eps"] >= 0:
            raise ValueError(f"{name}: eps must be >= 0, got {group['eps']}")

    decoupled_weight_decay = False

    def step(self):
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in self._params_with_grad(group):
                xp = backend.get_array_module(p.data)
                g = p.grad
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.data)
                    state["exp_avg_sq"] = xp.zeros_like(p.data)
                state["step"] += 1
                t = state["step"]
                if wd != 0:
                    if self.decoupled_weight_decay:
                        p.data *= 1 - lr * wd       # AdamW: shrink the weights directly
                    else:
                        g = g + wd * p.data          # Adam: L2 penalty through the gradient
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                bias_correction1 = 1 - beta1 ** t
                bias_correction2 = 1 - beta2 ** t
                # PyTorch's arrangement: lr/bc1 · m / (√v / √bc2 + eps)
                denom = xp.sqrt(v) / math.sqrt(bias_correction2) + eps
                p.data -= (lr / bias_correction1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): before the Adam step,
        p ← p · (1 − lr · weight_decay)
    instead of adding weight_decay · p to the gradient. With Adam's per-parameter scaling,
    an L2 term in the gradient is divided away for parameters with large gradients; shrinking
    the weights directly decays every parameter at the same rate.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so that their joint L2 norm is at most ``max_norm``.

        total = √(Σ over every parameter of Σ g²)
        if total > max_norm: every g ← g · max_norm / (total + 1e-6)

    The direction of the update is kept; only its length is capped, which stops one bad
    batch from throwing the weights far away. Returns the norm before clipping as a 0-d
    float64 array on the gradients' device. Nothing is read back: on a GPU, ``float(total)``
    would wait for every queued kernel, so call it only when you log the norm.
    """
    params = [params] if isinstance(params, Tensor) else list(params)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return np.zeros((), dtype=np.float64)
    xp = backend.get_array_module(grads[0])
    total = xp.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # 1 below the limit: nothing changes
    for g in grads:
        g *= scale.astype(g.dtype)
    return total


class CosineSchedule:
    """Learning rate: a linear warm-up, then a cosine decay to ``min_lr``.

    At step t (the number of ``.step()`` calls so far), for each group with starting rate lr₀:
        t < warmup_steps:      lr = lr₀ · (t + 1) / warmup_steps
        otherwise:             progress = (t − warmup_steps) / (total_steps − warmup_steps), at most 1
                               lr = min_lr + (lr₀ − min_lr) · ½ · (1 + cos(π · progress))
    Building the schedule sets the rate of step 0; call ``schedule.step()`` after each
    ``optimizer.step()``. After ``total_steps`` the rate stays at ``min_lr``.
    Warm-up keeps the first updates small, while Adam's moment estimates are still noisy.
    """

    def __init__(self, optimizer, total_steps, warmup_steps=0, min_lr=0.0):
        if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"CosineSchedule: need total_steps > 0 and 0 <= warmup_steps <= total_steps, "
                             f"got total_steps={total_steps}, warmup_steps={warmup_steps}")
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.min_lr = min_lr
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def lr_at(self, step, base_lr):
        """The learning rate at ``step`` for a group that starts at ``base_lr``."""
        if step < self.warmup_steps:
            return base_lr * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_step, base)

    def step(self):
        """Advance one step and set each group's lr."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs), "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "min_lr": self.min_lr}

    def load_state_dict(self, state):
        self.last_step = int(state["last_step"])
        self.base_lrs = list(state["base_lrs"])
        self.total_steps, self.warmup_steps = state["total_steps"], state["warmup_steps"]
        self.min_lr = state["min_lr"]
        self._apply()
