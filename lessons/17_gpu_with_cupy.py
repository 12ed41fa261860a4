# %% [markdown]
# # Lesson 17 — The same training on a GPU, with CuPy
#
# **What you will do.** Run the dual encoder of lesson 12 on a graphics card without
# changing a line of its layers: every op in tinymm asks its inputs which array library
# they belong to (`xp = backend.get_array_module(x)`) and then calls `xp.matmul`,
# `xp.maximum`, ... — NumPy for arrays in main memory, CuPy for arrays on the GPU. You will
# see what has to move to the GPU and what stays behind, why a GPU program must not ask for
# numbers back too often, how to time GPU code honestly, and why a GPU only pays off for
# large batches.
#
# **Why it matters.** A GPU does thousands of multiply-adds at once, but every array
# operation is a separate *kernel* that the CPU has to launch, and launching costs several
# microseconds each time. Knowing where the time goes tells you which batch size to pick and
# what to optimise.
#
# **Needs:** lesson 01 (NumPy and CuPy behind one `xp`), lesson 12 (training CLIP).
#
# **No GPU?** The lesson still runs: every GPU step is skipped with a message, and the CPU
# half (timing, the speed table, the fixed cost of a step) works everywhere. With CuPy and an
# NVIDIA GPU (`pip install -e ".[gpu]"`), the same cells also time the GPU. The code lives in
# **`tinymm/backend.py`** (the only file that knows about CuPy) and in the ops of
# **`tinymm/functional/`**; `benchmarks/bench_step.py` compares both devices with PyTorch.

# %%
import time

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
import tinymm.functional as F
from tinymm import backend, optim
from tinymm.autograd import Function
from tinymm.data import shapes_tokenizer
from tinymm.plots import fast_mode, pick, save_figure
from tinymm.train import TrainConfig, build_dual_encoder, train_batch

HAVE_GPU = tm.cuda_available()
DEVICES = ["cpu", "cuda"] if HAVE_GPU else ["cpu"]
print("fast mode" if fast_mode() else "full mode", "| GPU available:", HAVE_GPU)
if not HAVE_GPU:
    print("No CuPy or no GPU here: the GPU parts of this lesson are skipped.")

# %% [markdown]
# ## 1. What moves to the device, and what stays
#
# A GPU has its own memory. An operation can only combine arrays that live in the same
# memory, so before training, everything the step touches must be there:
#
# - **the parameters** — `model.to("cuda")` replaces every parameter's array by a copy on
#   the GPU (the Parameter objects stay the same, so an optimiser built before still works);
# - **the optimiser's state** — Adam's moments are made with `xp.zeros_like(p.data)`, so
#   they are created where the parameter lives;
# - **every batch** — images and token ids. The models move what they are given
#   (`model_input` in `tinymm/models/encoders.py`); moving a batch yourself, once, lets you
#   reuse it without copying it again;
# - **index arrays** — the integer arrays that pick elements: the targets `arange(N)` of the
#   CLIP loss, the positions `0..L−1` of the text encoder. They are made with `xp.arange`, on
#   the device, instead of being built in NumPy and copied over in every step.
#
# What stays on the CPU: the random draws (initial weights and dropout masks are drawn
# from one seeded NumPy generator and then moved, so a seed gives the same weights on both
# devices), the dataset generator, and the numbers you print.
#
# Asking for a GPU where there is none is a clear error, not a silent fallback:

# %%
try:
    tm.tensor([1.0, 2.0], device="cuda")
    print("a tensor on the GPU: CuPy works here")
except RuntimeError as err:
    print("RuntimeError:", str(err)[:150], "...")

# %% [markdown]
# Mixing devices inside one op is an error too: tinymm never copies between devices behind
# your back, because a hidden copy in a training loop would cost more than the op itself.

# %%
if HAVE_GPU:
    a, b = tm.tensor([1.0, 2.0], device="cpu"), tm.tensor([3.0, 4.0], device="cuda")
    try:
        a + b
    except ValueError as err:
        print("ValueError:", err)
else:
    print("(skipped: needs a GPU)")

# %% [markdown]
# ## 2. The GPU runs behind the CPU: synchronisation
#
# A call like `xp.matmul(a, b)` on CuPy does not wait for the product. It puts a kernel in
# a queue and returns at once; the GPU works through the queue on its own. That is what
# makes a GPU fast: while it multiplies, Python is already preparing the next kernels.
#
# Two consequences:
#
# 1. **Timing** needs a wait: `backend.synchronize()` blocks until the queue is empty (it does
#    nothing on the CPU). Without it you would time how long it took to *queue* the work.
# 2. **Reading a number back** — `loss.item()`, `print(tensor)`, `if (x > 0).all():` — makes
#    the CPU wait for everything queued before it. One such read in every step stops Python
#    from running ahead, and the GPU idles while Python prepares the next kernels. So the
#    training loop reads the loss back only when it logs it.
#
# tinymm's training steps make no read at all between two logs. Whatever comes from you —
# token ids, class-id targets, soft targets — is checked on the CPU, *before* it is copied
# to the GPU: the CLIP loss checks its soft targets there, `F.embedding` and the models'
# inputs check that every token id is inside the vocabulary (`F.check_ids`), and
# `softmax_cross_entropy` checks its targets. Ids the code makes itself on the device (the
# positions `xp.arange(L)`) need no check, and the count of counted rows in a cross-entropy
# with `ignore_index` stays a 0-d GPU array. The one thing not checked is an id array you
# moved to the GPU yourself: reading it would cost a wait in every step, and CuPy does not
# check indices (an id out of range quietly reads another row), so check ids before moving.
#
# How do we know there are no reads? Counting them needs a GPU — or a stand-in for one.
# `tests/strict_device` holds a **strict stand-in for CuPy**: NumPy underneath, but it
# refuses what CuPy refuses (`np.asarray(gpu_array)`, mixing host and GPU arrays) and records
# every read back to the host (`get`, `item`, `float`, `bool`, printing, boolean masks,
# `nonzero`, `unique`, `synchronize`) and every copy to the device, with the line that asked
# for it. The test suite runs on it with `TINYMM_STRICT_DEVICE=1 TINYMM_DEVICE=cuda pytest`.
# The cell below starts a fresh Python with the stand-in as `cupy` and runs its counting
# script: the real training loop of each stage for 2 and for 5 steps. Both runs end with the
# same logging step and checkpoint, so the difference, divided by 3, is what one step costs.

# %%
tokenizer = shapes_tokenizer()
# lesson 12's plain recipe (plain pictures, plain image encoder): the numbers below were measured on it
config = TrainConfig(name="lesson17", steps=pick(150, 8), batch_size=pick(64, 32), lr=2e-3,
                     warmup_steps=0, augment="", image_encoder="plain")


def device_batch(step, batch_size, device):
    """One training batch, moved to ``device`` once: images, token ids, soft CLIP targets."""
    batch = train_batch(TrainConfig(seed=config.seed, batch_size=batch_size, augment=""), step)
    return (tm.tensor(batch.images, device=device), tm.tensor(batch.tokens, device=device),
            tm.tensor(F.clip_targets(batch.captions), dtype=np.float32, device=device))


def make_model(device):
    model = build_dual_encoder(config, tokenizer).to(device)
    optimizer = optim.AdamW(model.parameter_groups(config.weight_decay), lr=config.lr)
    return model, optimizer


def train_step(model, optimizer, batch):
    """Forward, backward, AdamW, clamp; returns the loss Tensor (nothing is read back)."""
    images, tokens, targets = batch
    loss = F.clip_loss(model.encode_image(images), model.encode_text(tokens), model.logit_scale,
                       targets=targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    model.clamp_logit_scale()
    return loss


import json
import os
import subprocess
import sys
from pathlib import Path

root = Path(tm.__file__).resolve().parent.parent
standin = root / "tests" / "strict_device"
if (standin / "count_readbacks.py").exists():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(standin), str(root)]))
    env.pop("TINYMM_DEVICE", None)
    counted = subprocess.run([sys.executable, str(standin / "count_readbacks.py")], env=env,
                             capture_output=True, text=True, check=True)
    counts = json.loads(counted.stdout)
    for stage in ("clip", "caption", "image"):
        c = counts[stage]
        print(f"{stage:>7} step: {c['reads_per_step']:.0f} read-backs, {c['copies_per_step']:.0f} copies "
              f"to the device; the logging step and checkpoint read {c['reads_outside_the_steps']:.0f} arrays")
    g = counts["generate"]
    print(f"caption generation: {g['reads_per_token']:.0f} read-back per token, of shape {g['read_shapes']}")
    assert all(counts[s]["reads_per_step"] == 0 for s in ("clip", "caption", "image"))
    assert g["reads_per_token"] <= 1
else:
    print("(skipped: tests/strict_device is not in this installation; run the lesson from a clone)")

strict = getattr(backend.xp_for("cuda"), "_strict", None) if HAVE_GPU else None
if strict is not None:  # this lesson itself runs on the stand-in: count our own train_step too
    model, optimizer = make_model("cuda")
    batch = device_batch(0, 16, "cuda")
    train_step(model, optimizer, batch)
    with strict.recording() as log:
        train_step(model, optimizer, batch)
    print(f"this lesson's train_step on the stand-in: {len(log.reads)} read-backs, {len(log.copies)} copies")
    assert not log.reads, log.reads

# %% [markdown]
# No read in any training step; the copies are the batch itself (images, token ids,
# targets), a handful of host→device transfers that do not make the CPU wait for the GPU.
# The reads happen where they are meant to: the loss (`loss.item()`) and the logit scale at
# a logging step, every weight at a checkpoint. Before the checks moved to the host, the same
# count found 2 reads in every CLIP step (the id checks of the token and the position
# embeddings), 5 in a caption step (plus three target checks of the cross-entropy) and 2 in
# an image step (the frozen text encoder), and 3 per generated token; this lesson's own
# `train_step`, whose soft targets are already on the device, made 6 (the two id checks and
# four checks of the targets, now done only for host targets). Run on the stand-in
# (`TINYMM_STRICT_DEVICE=1 TINYMM_DEVICE=cuda pytest -m lesson17`), the cell counts it too:
# 0 reads and 1 copy (a Python number turned into a 0-d GPU array). Generation now reads
# back one small array per token on purpose: the logits of the next token, (N, 1, vocab),
# from which the CPU picks the token (greedy, or sampled with the seeded NumPy generator).
#
# ## 3. One training run on each device
#
# The same model, the same seed, the same batches; only the device differs. We make the
# batches first (drawing scenes is CPU work and would blur the comparison), then train and
# time. The loss is read back every 10 steps for the curve.

# %%
n_batches = pick(30, 4)


def timed_run(device):
    """Train config.steps steps on ``device``; returns (seconds, steps logged, losses logged)."""
    batches = [device_batch(k, config.batch_size, device) for k in range(n_batches)]
    model, optimizer = make_model(device)
    train_step(model, optimizer, batches[0])  # the first step also compiles GPU kernels: not timed
    model, optimizer = make_model(device)
    backend.synchronize(device)
    start = time.perf_counter()
    logged_steps, logged_losses = [], []
    for step in range(config.steps):
        loss = train_step(model, optimizer, batches[step % n_batches])
        if step % 10 == 0 or step == config.steps - 1:
            logged_steps.append(step)
            logged_losses.append(loss.item())  # a read-back: only when logging
    backend.synchronize(device)
    return time.perf_counter() - start, logged_steps, logged_losses


runs = {}
for device in DEVICES:
    runs[device] = timed_run(device)
    seconds, steps_logged, losses = runs[device]
    print(f"{device}: {config.steps} steps of {config.batch_size} pairs in {seconds:.1f} s "
          f"({1000 * seconds / config.steps:.1f} ms per step), loss {losses[0]:.3f} -> {losses[-1]:.3f}")

cpu_losses = runs["cpu"][2]
assert cpu_losses[-1] < pick(0.25, 1.0) * cpu_losses[0]  # it learns (30 batches, seen five times each)
if HAVE_GPU:
    # float32 on both sides, but sums run in different orders: close, not bit-identical
    first_gpu, first_cpu = runs["cuda"][2][0], cpu_losses[0]
    assert abs(first_gpu - first_cpu) < 1e-4 * abs(first_cpu), (first_cpu, first_gpu)
    print(f"first loss: cpu {first_cpu:.6f}, gpu {first_gpu:.6f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
styles = {"cpu": dict(marker="o", ls="-"), "cuda": dict(marker="x", ls="--")}  # a dashed GPU curve stays visible on top
for device, (seconds, steps_logged, losses) in runs.items():
    ax.plot(steps_logged, losses, **styles[device], ms=4,
            label=f"{device}: {1000 * seconds / config.steps:.1f} ms per step")
ax.set_xlabel("training step")
ax.set_ylabel("CLIP loss")
if HAVE_GPU:
    ax.set_title(f"the same run on the CPU and the GPU (batch {config.batch_size})")
else:
    ax.set_title(f"the run on the CPU (batch {config.batch_size}); no GPU on this machine")
ax.legend()
save_figure(fig, "17_training.png")

# %% [markdown]
# ![the loss of the training run, per step](figures/17_training.png)
#
# The figure above comes from our 2-core test machine, which has no GPU, so it shows the CPU
# run alone; on a machine with a GPU the same cell draws a second curve, and the legend
# gives each device's time per step. The CPU run took 17–20 ms per step there with one
# BLAS thread (`OPENBLAS_NUM_THREADS=1`, as section 4 advises on a shared machine), and 135
# ms with NumPy's default of one thread per core while other programs ran. The loss fell
# from 4.21 to 0.82 in 150 steps. The times printed above are your machine's. The losses do
# not depend on its speed (same seed, same batches), only on the order in which numbers are
# added: another BLAS library or thread count changes the last digits, and over 150 steps
# that shows in the third digit (0.823 with one thread, 0.829 with two). With a GPU the two
# curves start at the same loss (asserted above, to float32 rounding) and follow each
# other: the GPU computes the same thing, adding numbers in a different order. Apart from
# that last-digit noise, only the clock differs.
#
# ## 4. A speed table: one step at several batch sizes
#
# Now one step at a time, for several batch sizes, synchronising before every clock read.
# We keep the best of a few repetitions: other programs can only make a run slower.
#
# A warning about CPU timings on a shared machine: NumPy's BLAS starts one thread per core.
# When other programs keep those cores busy, its threads wait for each other and a step
# can take several times longer (135 ms instead of 19 ms at batch 64 on our test machine).
# To compare fairly there, start Python with `OPENBLAS_NUM_THREADS=1` (the benchmarks in
# `benchmarks/` pin the threads the same way).

# %%
def step_seconds(device, batch_size, repeats):
    model, optimizer = make_model(device)
    batch = device_batch(0, batch_size, device)
    for _ in range(2):  # warm-up: kernel compilation on the GPU, caches on the CPU
        train_step(model, optimizer, batch)
    times = []
    for _ in range(repeats):
        backend.synchronize(device)
        start = time.perf_counter()
        train_step(model, optimizer, batch)
        backend.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


sizes = {"cpu": pick([8, 32, 128, 512], [8, 32]), "cuda": pick([32, 128, 512, 2048, 8192], [32, 512])}
table = {device: {b: step_seconds(device, b, repeats=pick(5, 2)) for b in sizes[device]} for device in DEVICES}

print(f"{'device':<7}{'batch':>7}{'ms / step':>11}{'images / s':>12}{'µs / image':>12}")
for device, row in table.items():
    for b, s in row.items():
        print(f"{device:<7}{b:>7}{1000 * s:11.2f}{b / s:12.0f}{1e6 * s / b:12.1f}")

# %% [markdown]
# These times are printed, not asserted: they depend on the machine and on what else it is
# doing. The claim behind the table — a bigger batch spreads a fixed cost over more images —
# is checked below by counting work, which no load can change.
#
# ## 5. Why small batches do not pay on a GPU
#
# Read the table per image. On the CPU, a step at a small batch costs more per image than
# at a large one: part of every step is a **fixed cost** that does not depend on the batch —
# Python calling dozens of ops, each op checking its arguments and creating arrays, the
# autograd walk. First we count it. The wrapper below counts every call of a Function's
# `forward` or `backward` during one step, and adds up how many numbers the forward calls
# compute. We run one step at the smallest and one at the largest batch of the CPU table.

# %%
class OpCounter:
    """Counts calls of every Function's forward and backward while active (a plain wrapper),
    and the numbers (array elements) the forward calls return."""

    def __init__(self):
        self.calls = 0
        self.numbers = 0
        self.saved = []

    def __enter__(self):
        classes, stack = [], [Function]
        while stack:
            for sub in stack.pop().__subclasses__():
                classes.append(sub)
                stack.append(sub)
        for cls in classes:
            for name in ("forward", "backward"):
                if name in cls.__dict__:
                    original = cls.__dict__[name]
                    self.saved.append((cls, name, original))
                    setattr(cls, name, self._counting(original, name == "forward"))
        return self

    def _counting(self, method, is_forward):
        def counted(*args, **kwargs):
            self.calls += 1
            result = method(*args, **kwargs)
            if is_forward:
                self.numbers += result.size
            return result
        return counted

    def __exit__(self, *exc):
        for cls, name, original in self.saved:
            setattr(cls, name, original)


smallest, largest = min(sizes["cpu"]), max(sizes["cpu"])
op_counts = {}
for b in (smallest, largest):
    model, optimizer = make_model("cpu")
    with OpCounter() as counter:
        train_step(model, optimizer, device_batch(0, b, "cpu"))
    op_counts[b] = counter
    print(f"batch {b:>4}: {counter.calls} forward/backward calls of Functions, "
          f"{counter.numbers:,} numbers computed by the forward pass ({counter.numbers / b:,.0f} per image)")
n_params = len(list(model.parameters()))
print(f"plus, at every batch size, an AdamW update of {n_params} parameters")
calls = op_counts[smallest].calls
numbers_per_image = {b: op_counts[b].numbers / b for b in op_counts}
# the number of op calls is the same at every batch size: a fixed cost per step ...
assert op_counts[largest].calls == calls
# ... while the arithmetic grows with the batch (per image, it stays within a factor of two)
assert 0.5 < numbers_per_image[largest] / numbers_per_image[smallest] < 2
print(f"op calls per image: {calls / smallest:.2f} at batch {smallest}, {calls / largest:.3f} at batch {largest}")

# %% [markdown]
# The same ops run at every batch size; only the arrays they work on grow. So the fixed
# cost of a step, shared by all its images, is worth 1/B of it to each image. How much time
# that is we can read off the table: fit the step time as a straight line,
# time(B) = fixed + B · per_image.

# %%
fits = {}
for device, row in table.items():
    b = np.array(list(row), dtype=float)
    s = np.array(list(row.values()))
    per_image, fixed = np.polyfit(b, s, 1, w=1 / s)  # weights 1/s: each point's relative error counts
    fits[device] = (fixed, per_image)
    print(f"{device}: time(B) ≈ {1000 * fixed:.2f} ms + B · {1e6 * per_image:.1f} µs "
          f"(fixed cost ≈ {1e6 * max(fixed, 0) / calls:.0f} µs per op call)")
if fast_mode():
    print("(fast mode: two batch sizes, two repeats each; the fit is rough)")

# %% [markdown]
# On our test machine, with one BLAS thread, the runs made in its quieter moments gave a
# fixed cost of about 0.8–1.1 ms per step, some 15–18 µs per op call, and 0.26–0.29 ms per
# image. At batch 8 the fixed cost is a quarter to a third of the step (0.40 ms per image
# against 0.27 ms at batch 128); at batch 128 it is 2 to 3 percent. Every op call costs
# microseconds of Python on top of its arithmetic; on the CPU the arithmetic soon dominates.
# When other programs competed for the cores, the fitted fixed cost moved from run to run
# (from 0.2 ms down to below zero, even with one thread): it is the small difference of
# large times, and a busy machine makes those times noisy. The counts above do not move.
#
# On a GPU the same Python runs on the CPU, and each op becomes one or several kernels; a
# kernel launch adds roughly 5–20 µs of host time (CuPy checks and caches the kernel, then
# the CUDA driver queues it). Meanwhile the GPU finishes an op on a batch of 64 images in a
# few microseconds — less than the launch. So at small batches the GPU waits for Python:
# the step time is the fixed cost alone, whatever the batch, and the GPU sits idle most of
# the time. Only when every kernel has enough work (thousands of images) does the GPU's
# speed show, and the time per image drops far below the CPU's.
#
# Two ways out, both exercises below: fewer, bigger kernels (fuse chains of elementwise
# steps into one kernel with `cupy.fuse` or `cupy.ElementwiseKernel`; Adam's update is
# about a dozen kernels per parameter), and bigger batches.

# %%
fig, (ax_rate, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
for device, row in table.items():
    b = np.array(list(row), dtype=float)
    s = np.array(list(row.values()))
    ax_rate.plot(b, b / s, marker="o", label=device)
    ax_time.plot(b, 1000 * s, marker="o", label=f"{device} (measured)")
    fixed, per_image = fits[device]
    grid = np.geomspace(b.min(), b.max(), 50)
    ax_time.plot(grid, 1000 * (fixed + per_image * grid), "--", lw=1,
                 label=f"{device}: {1000 * fixed:.1f} ms + B·{1e3 * per_image:.3f} ms")
for ax in (ax_rate, ax_time):
    ax.set_xscale("log")
    ax.set_xlabel("batch size B")
    ax.legend(fontsize=8)
ax_time.set_yscale("log")
ax_rate.set_ylim(bottom=0)
ax_rate.set_ylabel("images per second (training)")
ax_rate.set_title("throughput, by batch size")
ax_time.set_ylabel("ms per training step")
ax_time.set_title("time per step, and the fit: fixed + B · per image")
save_figure(fig, "17_speed.png")

# %% [markdown]
# ![speed by batch size](figures/17_speed.png)
#
# Left: images per second. On the CPU it levels off once the fixed cost is spread thin; on
# a GPU (when you have one) it keeps climbing with the batch. Right: the straight-line fit;
# its value at B → 0 is the fixed cost of a step.
#
# ## Recap
#
# - The ops are written once, against `xp`; `tinymm/backend.py` alone decides between NumPy
#   and CuPy. Parameters, optimiser state, batches and index arrays move to the device; random
#   draws stay on the CPU, so a seed gives the same weights everywhere.
# - GPU work is queued, not waited for. Time it with `backend.synchronize()`; read numbers
#   back (`.item()`) only when logging. tinymm's training steps read nothing back between
#   logs (counted with the strict stand-in for CuPy in `tests/strict_device`).
# - A step has a fixed cost (Python calling the same ops at every batch size, one launch per
#   kernel on a GPU) and a cost per image. Count the work to see it; time it with one BLAS
#   thread and the best of several runs, and expect the times to move on a busy machine. On
#   a GPU the fixed cost dominates until the batch is large, which is why small batches do
#   not pay.
# - The same seed gives the same numbers on both devices, to float32 rounding
#   (`tests/test_gpu.py` checks ops and a training step when a GPU is present).
#
# ## Exercises
#
# 1. **Read back every step.** Add `loss.item()` to every step of `timed_run` and time it
#    again on a GPU at batch 128 and at batch 4096. Where does it cost more, and why?
#    *Hint:* the read waits for the queue to drain; it hurts when Python could have been
#    running ahead of a busy GPU.
# 2. **Fuse Adam.** Write Adam's update for one parameter as one `cupy.ElementwiseKernel`
#    (inputs g, lr, betas, eps, bias corrections; in-out p, m, v) and compare the step time
#    at batch 64 with `optim.Adam`. *Hint:* count kernels first: `m *= β1`, `(1 − β1)·g`,
#    `m += ...`, and so on — about a dozen per parameter, each a launch.
# 3. **Where is the crossover?** Find the smallest batch at which the GPU step is faster
#    than the CPU step on your machines, and explain it with the two fitted lines of
#    section 5. *Hint:* set fixed_gpu + B·per_image_gpu = fixed_cpu + B·per_image_cpu.
