"""Shared pieces of the benchmarks: thread pinning, timing, the benchmark model in tinymm
and in PyTorch, a plain-NumPy reference with naive loops, and peak memory.

Import this module only after ``pin_threads`` has run (the scripts do that first): the BLAS
library reads its thread count once, when NumPy is imported.
"""
import math
import os
import resource
import statistics
import subprocess
import sys
import time

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads):
    """Give NumPy's BLAS and PyTorch the same number of threads (call before importing numpy)."""
    if "numpy" in sys.modules:
        raise RuntimeError("pin_threads must run before numpy is imported")
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


import numpy as np  # noqa: E402  (after pin_threads has been given its chance)

import tinymm as tm  # noqa: E402
import tinymm.functional as F  # noqa: E402
from tinymm import backend, nn, optim  # noqa: E402



def clock():
    """Wall-clock seconds (the default), or this process's CPU seconds after ``use_cpu_clock()``."""
    return _clock()


_clock = time.perf_counter


def use_cpu_clock():
    """Time with CPU seconds of this process instead of wall-clock seconds.

    On a machine busy with other programs, wall time includes waiting for a free core;
    CPU time does not. It is a fair measure only with ONE thread per framework (with
    more, it adds up the threads, and a BLAS thread that spins while it waits counts too).
    """
    global _clock
    _clock = time.process_time


VOCAB = 20          # the course tokenizer's vocabulary (tinymm.data)
TOKENS = 8          # tokens per caption in the benchmark model
EMBED = 64
LOGIT_SCALE_INIT = math.log(1 / 0.07)


def try_import_torch(threads):
    """PyTorch with ``threads`` intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (only allowed once per process)
        pass
    return torch


def median_ms(seconds):
    return 1000 * statistics.median(seconds)


def machine_line(threads):
    """One line naming the machine, for the header of every table."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, load average {load:.1f}; NumPy {np.__version__}, "
            f"{threads} BLAS thread(s)")


# ----------------------------------------------------------------------------------------------
# The benchmark model (PERF-NOTES): a small dual encoder, CLIP loss, Adam.


class BenchDualEncoder(nn.Module):
    """Images (B, 3, 32, 32) and token ids (B, 8) -> the CLIP loss.

    Image tower: conv 3->16 and 16->32 (3x3, padding 1), each with ReLU and 2x2 max-pool,
    Linear 2048->128, ReLU, Linear 128->64. Text tower: embedding(64) of 8 tokens, mean over
    tokens, Linear 64->64. Both L2-normalised; CLIP loss with a learnable logit scale.
    """

    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, EMBED))
        self.token_embedding = nn.Embedding(VOCAB, EMBED)
        self.text_proj = nn.Linear(EMBED, EMBED)
        self.logit_scale = nn.Parameter(np.array(LOGIT_SCALE_INIT, dtype=np.float32))

    def forward(self, images, tokens):
        image_emb = F.l2_normalize(self.image(images))
        text_emb = F.l2_normalize(self.text_proj(self.token_embedding(tokens).mean(axis=1)))
        return F.clip_loss(image_emb, text_emb, self.logit_scale)


def torch_model(torch):
    """The same model in PyTorch (same parameter names, so state_dicts map one to one)."""
    tnn = torch.nn

    class TorchDualEncoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.image = tnn.Sequential(
                tnn.Conv2d(3, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                tnn.Flatten(), tnn.Linear(32 * 8 * 8, 128), tnn.ReLU(), tnn.Linear(128, EMBED))
            self.token_embedding = tnn.Embedding(VOCAB, EMBED)
            self.text_proj = tnn.Linear(EMBED, EMBED)
            self.logit_scale = tnn.Parameter(torch.tensor(LOGIT_SCALE_INIT, dtype=torch.float32))

        def forward(self, images, tokens):
            fn = torch.nn.functional
            image_emb = fn.normalize(self.image(images), dim=-1)
            text_emb = fn.normalize(self.text_proj(self.token_embedding(tokens).mean(dim=1)), dim=-1)
            logits = self.logit_scale.exp() * image_emb @ text_emb.T
            labels = torch.arange(len(logits), device=logits.device)
            return (fn.cross_entropy(logits, labels) + fn.cross_entropy(logits.T, labels)) / 2

    return TorchDualEncoder()


def batch_data(batch, seed=0):
    """Random images in [0, 1) and token ids, as NumPy arrays (the same for every framework)."""
    rng = np.random.default_rng(seed)
    images = rng.random((batch, 3, 32, 32), dtype=np.float32)
    tokens = rng.integers(0, VOCAB, size=(batch, TOKENS))
    return images, tokens


def tinymm_state(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


class TinymmStep:
    """One training step of the tinymm model; ``run()`` returns (forward, backward, optimiser) seconds."""

    name = "tinymm"

    def __init__(self, state, batch, device="cpu", model_cls=BenchDualEncoder, data=None):
        self.device = device
        self.model = model_cls()
        self.model.load_state_dict(state)
        self.model.to(device)
        self.opt = optim.Adam(self.model.parameters(), lr=1e-3)
        images, tokens = data if data is not None else batch_data(batch)
        self.images = tm.tensor(images, device=device)
        self.tokens = tm.tensor(tokens, device=device)

    def sync(self):
        backend.synchronize(self.device)

    def phase_sync(self):
        """Wait between the phases only on the CPU (a no-op there). On a GPU a wait after the
        forward pass would stop Python from queueing the backward pass while the GPU still
        works, so a GPU step is timed whole and its phases are not split."""
        if self.device == "cpu":
            self.sync()

    def run(self):
        t0 = clock()
        loss = self.model(self.images, self.tokens)
        self.phase_sync()
        t1 = clock()
        self.opt.zero_grad()
        loss.backward()
        self.phase_sync()
        t2 = clock()
        self.opt.step()
        self.sync()
        t3 = clock()
        # keep the value only: the Tensor would keep its whole graph, every activation of
        # this step included, alive through the next step's forward pass
        self.last_loss = loss.data
        return t1 - t0, t2 - t1, t3 - t2

    def loss_value(self):
        return float(backend.to_numpy(self.last_loss))


class TorchStep:
    """The same step in PyTorch (weights loaded from the tinymm state through load_state_dict)."""

    name = "PyTorch"

    def __init__(self, torch, state, batch, device="cpu", data=None):
        self.torch, self.device = torch, device
        self.model = torch_model(torch)
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
        self.model.to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        images, tokens = data if data is not None else batch_data(batch)
        self.images = torch.from_numpy(images).to(device)
        self.tokens = torch.from_numpy(tokens).to(device)

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def run(self):
        t0 = clock()
        loss = self.model(self.images, self.tokens)
        t1 = clock()  # on a GPU the phases are queued, not finished: see TinymmStep
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = clock()
        self.opt.step()
        self.sync()
        t3 = clock()
        self.last_loss = loss.detach()
        return t1 - t0, t2 - t1, t3 - t2

    def loss_value(self):
        return float(self.last_loss.item())


def in_blocks(samplers, repeats, rounds=3, warmup=2):
    """Take ``repeats`` samples from every sampler (a function that runs once and returns
    what it measured), in blocks: ``rounds`` rounds in alternating order (A B, B A, A B),
    every block starting with ``warmup`` unmeasured runs. Returns one list per sampler.

    Why blocks and not strict turns, step by step: with more than one thread, each library
    keeps its worker threads spinning for a moment after a parallel call, waiting for more
    work. In strict turns those threads sit on the cores the other library needs: on our
    2-core machine PyTorch's step at batch 256 went from 44 ms alone to 110 ms in strict
    turns with tinymm's. Several rounds still spread a slow spell of the machine over both.
    """
    samples = [[] for _ in samplers]
    per_block = max(1, math.ceil(repeats / rounds))
    for k in range(rounds):
        order = list(range(len(samplers)))
        if k % 2:
            order.reverse()
        for i in order:
            for _ in range(warmup):
                samplers[i]()
            samples[i].extend(samplers[i]() for _ in range(per_block))
    return samples


def phase_medians(samples):
    """Median milliseconds of forward, backward, optimiser and the whole step."""
    totals = [sum(s) for s in samples]
    return [median_ms([s[i] for s in samples]) for i in range(3)] + [median_ms(totals)]


# ----------------------------------------------------------------------------------------------
# Where the time goes: wrap every Function's forward and backward with a clock.


def all_function_classes():
    from tinymm.autograd import Function
    found, stack = [], [Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


class OpTimer:
    """Inside ``with OpTimer(sync) as t:`` every Function's forward/backward is timed.

    Only this benchmark patches the classes, and only for the duration of the block; the
    library itself carries no profiling code. ``t.totals[(name, "forward")]`` is seconds.
    """

    def __init__(self, sync=lambda: None):
        self.sync = sync
        self.totals = {}
        self.calls = {}
        self._saved = []

    def _wrap(self, cls, method):
        original = cls.__dict__[method]
        key = (cls.__name__, method)
        timer = self

        def timed(self, *args, **kwargs):
            t0 = clock()
            result = original(self, *args, **kwargs)
            timer.sync()
            timer.totals[key] = timer.totals.get(key, 0.0) + clock() - t0
            timer.calls[key] = timer.calls.get(key, 0) + 1
            return result

        setattr(cls, method, timed)
        self._saved.append((cls, method, original))

    def __enter__(self):
        for cls in all_function_classes():
            for method in ("forward", "backward"):
                if method in cls.__dict__:
                    self._wrap(cls, method)
        return self

    def __exit__(self, *exc):
        for cls, method, original in reversed(self._saved):
            setattr(cls, method, original)
        self._saved.clear()


# ----------------------------------------------------------------------------------------------
# Peak memory, measured in a fresh process per framework


def peak_rss_mib():
    """This process's peak resident set size so far, in MiB.

    Read from VmHWM in /proc/self/status (Linux): it starts afresh when a program starts.
    (ru_maxrss does not: a child started by fork + exec inherits its parent's peak.)
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def rss_in_child(script, framework, batch, threads, steps=5, extra=()):
    """Run ``script --rss-child FRAMEWORK`` in a new process; return (after import, peak) MiB."""
    cmd = [sys.executable, script, "--rss-child", framework, "--batch", str(batch),
           "--threads", str(threads), "--steps", str(steps), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RSS"):
            _, base, peak = line.split()
            return float(base), float(peak)
    raise RuntimeError(f"memory child failed:\n{out.stdout}\n{out.stderr}")


# ----------------------------------------------------------------------------------------------
# A plain-NumPy reference with textbook loops (used when PyTorch is not installed)
#
# The same model written directly on arrays, the way it is usually first written: convolution
# and max-pooling as Python loops over output pixels, the embedding gradient as a loop over
# tokens. Forward, hand-written backward and Adam. It shows what tinymm's vectorised ops buy.


def naive_conv2d(x, w, b, pad):
    """Loop over output pixels: out[:, :, y, x] = patch(y, x) · W + b."""
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    w_mat = w.reshape(c_out, -1)
    out = np.empty((n, c_out, ho, wo), dtype=x.dtype)
    for y in range(ho):
        for xx in range(wo):
            out[:, :, y, xx] = xp[:, :, y:y + kh, xx:xx + kw].reshape(n, -1) @ w_mat.T + b
    return out, xp


def naive_conv2d_backward(g, x_padded, w, pad):
    n, c_out, ho, wo = g.shape
    _, c, kh, kw = w.shape
    w_mat = w.reshape(c_out, -1)
    dxp = np.zeros_like(x_padded)
    dw = np.zeros_like(w_mat)
    for y in range(ho):
        for xx in range(wo):
            patch = x_padded[:, :, y:y + kh, xx:xx + kw].reshape(n, -1)
            dw += g[:, :, y, xx].T @ patch
            dxp[:, :, y:y + kh, xx:xx + kw] += (g[:, :, y, xx] @ w_mat).reshape(n, c, kh, kw)
    h, wd = x_padded.shape[2] - 2 * pad, x_padded.shape[3] - 2 * pad
    return dxp[:, :, pad:pad + h, pad:pad + wd], dw.reshape(w.shape), g.sum(axis=(0, 2, 3))


def naive_max_pool2(x):
    """2x2 max-pool as a loop over output pixels, remembering each window's argmax."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h // 2, w // 2), dtype=x.dtype)
    arg = np.empty((n, c, h // 2, w // 2), dtype=np.int64)
    for y in range(h // 2):
        for xx in range(w // 2):
            window = x[:, :, 2 * y:2 * y + 2, 2 * xx:2 * xx + 2].reshape(n, c, 4)
            arg[:, :, y, xx] = window.argmax(axis=2)
            out[:, :, y, xx] = window.max(axis=2)
    return out, arg


def naive_max_pool2_backward(g, arg, x_shape):
    n, c, h, w = x_shape
    dx = np.zeros(x_shape, dtype=g.dtype)
    rows, cols = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for y in range(h // 2):
        for xx in range(w // 2):
            a = arg[:, :, y, xx]
            dx[rows, cols, 2 * y + a // 2, 2 * xx + a % 2] = g[:, :, y, xx]
    return dx


def naive_embedding_backward(ids, g, num):
    dw = np.zeros((num, g.shape[-1]), dtype=g.dtype)
    flat_ids, flat_g = ids.reshape(-1), g.reshape(-1, g.shape[-1])
    for p in range(len(flat_ids)):
        dw[flat_ids[p]] += flat_g[p]
    return dw


def _l2n(x):
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / norm, norm


def _l2n_backward(g, y, norm):
    return (g - y * (y * g).sum(axis=-1, keepdims=True)) / norm


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class NaiveStep:
    """The benchmark model's training step on plain NumPy arrays, with naive loops."""

    name = "naive NumPy"

    def __init__(self, state, batch, data=None):
        self.p = {k: np.array(v, dtype=np.float32) for k, v in state.items()}
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0
        self.images, self.tokens = data if data is not None else batch_data(batch)

    def loss_and_grads(self):
        p, x, ids = self.p, self.images, self.tokens
        # image tower
        a1, x1p = naive_conv2d(x, p["image.0.weight"], p["image.0.bias"], 1)
        r1 = np.maximum(a1, 0)
        m1, arg1 = naive_max_pool2(r1)
        a2, x2p = naive_conv2d(m1, p["image.3.weight"], p["image.3.bias"], 1)
        r2 = np.maximum(a2, 0)
        m2, arg2 = naive_max_pool2(r2)
        f = m2.reshape(len(x), -1)
        h = np.maximum(f @ p["image.7.weight"].T + p["image.7.bias"], 0)
        zi = h @ p["image.9.weight"].T + p["image.9.bias"]
        # text tower
        e = p["token_embedding.weight"][ids]
        mean = e.mean(axis=1)
        zt = mean @ p["text_proj.weight"].T + p["text_proj.bias"]
        # normalise, CLIP loss
        ii, ni = _l2n(zi)
        tt, nt = _l2n(zt)
        scale = np.exp(p["logit_scale"])
        sim = ii @ tt.T
        logits = scale * sim
        n = len(x)
        pr, pc = _softmax(logits), _softmax(logits.T)
        diag = np.arange(n)
        loss = -0.5 * (np.log(pr[diag, diag]).mean() + np.log(pc[diag, diag]).mean())
        # backward
        eye = np.eye(n, dtype=np.float32)
        dlogits = ((pr - eye) + (pc - eye).T) / (2 * n)
        g = {"logit_scale": np.array((dlogits * sim).sum() * scale, dtype=np.float32)}
        dsim = dlogits * scale
        dzi = _l2n_backward(dsim @ tt, ii, ni)
        dzt = _l2n_backward(dsim.T @ ii, tt, nt)
        g["text_proj.weight"], g["text_proj.bias"] = dzt.T @ mean, dzt.sum(axis=0)
        de = np.repeat((dzt @ p["text_proj.weight"])[:, None, :] / ids.shape[1], ids.shape[1], axis=1)
        g["token_embedding.weight"] = naive_embedding_backward(ids, de, VOCAB)
        g["image.9.weight"], g["image.9.bias"] = dzi.T @ h, dzi.sum(axis=0)
        dh = (dzi @ p["image.9.weight"]) * (h > 0)
        g["image.7.weight"], g["image.7.bias"] = dh.T @ f, dh.sum(axis=0)
        dm2 = (dh @ p["image.7.weight"]).reshape(m2.shape)
        da2 = naive_max_pool2_backward(dm2, arg2, r2.shape) * (a2 > 0)
        dm1, g["image.3.weight"], g["image.3.bias"] = naive_conv2d_backward(da2, x2p, p["image.3.weight"], 1)
        da1 = naive_max_pool2_backward(dm1, arg1, r1.shape) * (a1 > 0)
        _, g["image.0.weight"], g["image.0.bias"] = naive_conv2d_backward(da1, x1p, p["image.0.weight"], 1)
        return loss, g

    def adam(self, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.t += 1
        for k, gk in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * gk
            self.v[k] = b2 * self.v[k] + (1 - b2) * gk * gk
            m_hat = self.m[k] / (1 - b1 ** self.t)
            v_hat = self.v[k] / (1 - b2 ** self.t)
            self.p[k] = (self.p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)

    def run(self):
        t0 = clock()
        loss, grads = self.loss_and_grads()  # forward and backward are one function here
        t1 = clock()
        self.adam(grads)
        t2 = clock()
        self.last_loss = loss
        return t1 - t0, 0.0, t2 - t1

    def loss_value(self):
        return float(self.last_loss)
