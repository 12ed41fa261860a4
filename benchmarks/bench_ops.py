"""Time forward + backward of single ops at the course's shapes: tinymm vs PyTorch (CPU).

    python benchmarks/bench_ops.py                 # 2 threads, 50 repeats
    python benchmarks/bench_ops.py --threads 1 --repeats 100

Shapes are those of the course's image and text encoders at batch 64: images 3x32x32,
conv 3->16 and 16->32 with 3x3 kernels and padding 1, 2x2 max-pool, Linear 2048->128,
an embedding of 8 tokens, L2 norm and the 64x64 CLIP logits. Each op runs forward, then
backward with a fixed upstream gradient; tinymm and the reference take turns in blocks of
runs over three rounds (``benchlib.in_blocks``), so a slow spell of the machine hits both.
Medians in milliseconds and the ratio tinymm / reference are printed, and the two results
are compared (largest difference of outputs and gradients, relative to the largest value).

Without PyTorch the reference is a plain-NumPy version with naive loops (over output pixels
for conv and pooling, over tokens for the embedding gradient), and the table says so.
A script, not a test: timings are never asserted.
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="BLAS threads for NumPy = torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="wall: wall-clock time (default); cpu: this process's CPU time, steadier on a "
                        "busy machine, fair only with --threads 1")
    p.add_argument("--naive", action="store_true", help="compare with naive NumPy even if torch exists")
    return p.parse_args()


ARGS = parse_args()
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)  # before NumPy is imported: the BLAS reads it once

import benchlib as bl  # noqa: E402
from benchlib import F, np, tm  # noqa: E402


def case_list(batch, rng):
    """(name, inputs, which inputs need gradients, tinymm fn, torch fn, naive fn) per op."""
    f32 = np.float32

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    cases = []
    x1, w1, b1 = normal(batch, 3, 32, 32), normal(16, 3, 3, 3, scale=0.2), normal(16, scale=0.1)
    cases.append(("conv2d 3->16, 32x32", (x1, w1, b1), (False, True, True),
                  lambda x, w, b: F.conv2d(x, w, b, padding=1),
                  lambda t, x, w, b: t.nn.functional.conv2d(x, w, b, padding=1),
                  "conv"))
    x2, w2, b2 = normal(batch, 16, 16, 16), normal(32, 16, 3, 3, scale=0.1), normal(32, scale=0.1)
    cases.append(("conv2d 16->32, 16x16", (x2, w2, b2), (True, True, True),
                  lambda x, w, b: F.conv2d(x, w, b, padding=1),
                  lambda t, x, w, b: t.nn.functional.conv2d(x, w, b, padding=1),
                  "conv"))
    r1 = rng.permutation(batch * 16 * 32 * 32).reshape(batch, 16, 32, 32).astype(f32)  # no ties
    cases.append(("max_pool2d 2x2, 16x32x32", (r1,), (True,),
                  lambda x: F.max_pool2d(x, 2), lambda t, x: t.nn.functional.max_pool2d(x, 2), "pool"))
    cases.append(("relu 16x32x32", (normal(batch, 16, 32, 32),), (True,),
                  lambda x: F.relu(x), lambda t, x: t.relu(x), "relu"))
    h, wl, bl_ = normal(batch, 2048), normal(128, 2048, scale=0.02), normal(128, scale=0.02)
    cases.append(("linear 2048->128", (h, wl, bl_), (True, True, True),
                  lambda x, w, b: F.linear(x, w, b), lambda t, x, w, b: t.nn.functional.linear(x, w, b),
                  "linear"))
    ids, table = rng.integers(0, bl.VOCAB, size=(batch, bl.TOKENS)), normal(bl.VOCAB, bl.EMBED)
    cases.append(("embedding 8 tokens x 64", (ids, table), (False, True),
                  lambda i, w: F.embedding(i, w), lambda t, i, w: t.nn.functional.embedding(i, w),
                  "embedding"))
    cases.append(("l2_normalize 64x64", (normal(batch, 64),), (True,),
                  lambda x: F.l2_normalize(x), lambda t, x: t.nn.functional.normalize(x, dim=-1),
                  "l2"))
    labels = np.arange(batch)
    cases.append(("softmax_cross_entropy 64x64", (normal(batch, batch, scale=3.0), labels), (True, False),
                  lambda z, y: F.softmax_cross_entropy(z, y),
                  lambda t, z, y: t.nn.functional.cross_entropy(z, y), "ce"))
    return cases


# ----------------------------------------------------------------------------------------------
# One forward + backward, in each framework


class TinymmOp:
    def __init__(self, fn, inputs, needs, upstream):
        self.fn, self.g = fn, upstream
        self.tensors = [tm.Tensor(a, requires_grad=n) for a, n in zip(inputs, needs)]

    def run(self):
        for t in self.tensors:
            t.grad = None
        out = self.fn(*self.tensors)
        out.backward(self.g if out.ndim else None)
        return out.data, [t.grad for t in self.tensors if t.requires_grad]


class TorchOp:
    def __init__(self, torch, fn, inputs, needs, upstream):
        self.torch, self.fn = torch, fn
        self.g = torch.from_numpy(np.array(upstream)) if upstream is not None else None
        self.tensors = [torch.from_numpy(np.array(a)).requires_grad_(n) for a, n in zip(inputs, needs)]

    def run(self):
        for t in self.tensors:
            t.grad = None
        out = self.fn(self.torch, *self.tensors)
        out.backward(self.g if out.ndim else None)
        return out.detach().numpy(), [t.grad.numpy() for t in self.tensors if t.requires_grad]


class NaiveOp:
    """The same op written on plain arrays, the way it is first written (benchlib's loops)."""

    def __init__(self, kind, inputs, upstream):
        self.kind, self.inputs, self.g = kind, inputs, upstream

    def run(self):
        a, g = self.inputs, self.g
        if self.kind == "conv":
            x, w, b = a
            out, xpad = bl.naive_conv2d(x, w, b, 1)
            dx, dw, db = bl.naive_conv2d_backward(g, xpad, w, 1)
            return out, ([dx] if x.shape[1] == 16 else []) + [dw, db]
        if self.kind == "pool":
            out, arg = bl.naive_max_pool2(a[0])
            return out, [bl.naive_max_pool2_backward(g, arg, a[0].shape)]
        if self.kind == "relu":
            return np.maximum(a[0], 0), [g * (a[0] > 0)]
        if self.kind == "linear":
            x, w, b = a
            return x @ w.T + b, [g @ w, g.T @ x, g.sum(axis=0)]
        if self.kind == "embedding":
            ids, w = a
            return w[ids], [bl.naive_embedding_backward(ids, g, w.shape[0])]
        if self.kind == "l2":
            y, norm = bl._l2n(a[0])
            return y, [bl._l2n_backward(g, y, norm)]
        z, y = a  # softmax cross-entropy, mean over rows
        p = bl._softmax(z)
        n = len(z)
        onehot = np.zeros_like(p)
        for i in range(n):  # the loop a first version has
            onehot[i, y[i]] = 1
        return -np.log(p[np.arange(n), y]).mean(), [(p - onehot) / n]


def upstream_for(fn, inputs, needs, rng):
    """A fixed random upstream gradient of the output's shape (None for a scalar output)."""
    with tm.no_grad():
        out = fn(*[tm.Tensor(a) for a in inputs])
    return None if out.ndim == 0 else rng.standard_normal(out.shape).astype(np.float32)


def largest_difference(a, b):
    """max |a − b| / max |b| over the output and every gradient (float32 rounding: ~1e-6)."""
    (out_a, grads_a), (out_b, grads_b) = a, b
    pairs = [(out_a, out_b)] + list(zip(grads_a, grads_b))
    worst = 0.0
    for x, y in pairs:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        worst = max(worst, np.abs(x - y).max() / max(np.abs(y).max(), 1e-30))
    return worst


def timer(run):
    """A function that calls ``run`` once and returns the seconds it took."""
    def timed():
        t0 = bl.clock()
        run()
        return bl.clock() - t0
    return timed


def main(args):
    torch = None if args.naive else bl.try_import_torch(args.threads)
    if args.clock == "cpu":
        bl.use_cpu_clock()
    rng = np.random.default_rng(0)
    reference = f"PyTorch {torch.__version__}" if torch is not None else \
        "naive NumPy (PyTorch is not installed: plain arrays, loops over output pixels / tokens)"
    print(f"bench_ops: forward + backward per op, batch {args.batch}, median of {args.repeats} runs")
    print(f"machine: {bl.machine_line(args.threads)}")
    print(f"reference: {reference}; clock: {args.clock}\n")
    header = f"{'op':<30}{'tinymm ms':>11}{'ref ms':>9}{'ratio':>8}{'rel. diff':>12}"
    print(header)
    print("-" * len(header))
    for name, inputs, needs, fn, torch_fn, kind in case_list(args.batch, rng):
        g = upstream_for(fn, inputs, needs, rng)
        ours = TinymmOp(fn, inputs, needs, g)
        ref = TorchOp(torch, torch_fn, inputs, needs, g) if torch is not None else NaiveOp(kind, inputs, g)
        diff = largest_difference(ours.run(), ref.run())
        repeats = args.repeats if torch is not None else max(3, args.repeats // 10)
        samples = bl.in_blocks([timer(ours.run), timer(ref.run)], repeats)
        ms_ours, ms_ref = bl.median_ms(samples[0]), bl.median_ms(samples[1])
        print(f"{name:<30}{ms_ours:11.3f}{ms_ref:9.3f}{ms_ours / ms_ref:7.2f}x{diff:12.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
