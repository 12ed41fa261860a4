# %% [markdown]
# # Lesson 01 — Tensors and backends
#
# **What you will build.** Nothing yet: this lesson is about the material everything else is
# made of. By the end you will know what a tinymm `Tensor` holds, why its numbers are
# `float32` unless you ask otherwise, how the same line of code runs on a CPU (NumPy) or a
# GPU (CuPy), and what happens when tensors live on different devices.
#
# **Why it matters.** Every later lesson stacks operations on arrays. When a gradient check
# fails or a loss turns into `nan`, the cause is often one level down: a dtype, a rounding
# error, an array on the wrong device. Ten minutes here save hours later.
#
# **Needs:** Python and a little NumPy. No earlier lesson.
#
# Run it as a script (`python lessons/01_tensors_and_backends.py`) or open it in Jupyter
# (with jupytext) and run it cell by cell. `TINYMM_FAST=1` makes it finish in a couple of
# seconds.

# %%
import inspect
import math
import time

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
from tinymm import backend
from tinymm.autograd import _as_tensors  # the device check, shown below when there is no GPU
from tinymm.linecount import python_lines
from tinymm.plots import pick, save_figure

DEVICE = tm.get_default_device()  # "cpu" unless TINYMM_DEVICE=cuda
print("tinymm", tm.__version__, "| default device:", DEVICE)

# %% [markdown]
# ## 1. Arrays: one operation on many numbers
#
# A neural network does the same small computation on millions of numbers. Writing that as a
# Python loop is slow, because Python looks at every number one at a time. An **array**
# library (NumPy on the CPU, CuPy on the GPU) stores the numbers in one block of memory and
# runs the loop in compiled code. Every op in tinymm works on whole arrays; the course never
# loops over pixels, tokens or examples inside an op.
#
# Here is the same sum of squares, $\sum_i x_i^2$, written both ways. To see *why* one is
# faster, we count the work the Python interpreter does. `sys.settrace` asks Python to call a
# small function of ours before every line of Python it runs; counting those calls counts
# the lines. Code that runs inside NumPy is compiled, not Python, so it adds no lines.
# The counter is twenty lines in **`tinymm/linecount.py`** (`python_lines`): open it. Lesson 06
# and the exercise checker use it too.

# %%
def sum_squares_loop(values):
    total = 0.0
    for v in values.tolist():  # Python floats, one at a time
        total += v * v
    return total


def sum_squares_array(values):
    return float((values * values).sum())  # two array ops: multiply all, then add all


n = pick(1_000_000, 100_000)
values = np.random.default_rng(0).standard_normal(n)
loop_lines, total_loop = python_lines(lambda: sum_squares_loop(values))
array_lines, total_array = python_lines(lambda: sum_squares_array(values))
print(f"n = {n:,}: the loop runs {loop_lines:,} lines of Python, the array version {array_lines}")
assert math.isclose(total_loop, total_array, rel_tol=1e-9)  # same answer, up to rounding
assert loop_lines >= 2 * n  # the `for` line and its body, once per number
assert array_lines < 10     # a handful, whatever n is

# %% [markdown]
# Both versions do the same arithmetic: $n$ multiplications and $n$ additions. The loop asks
# the interpreter to run two lines per number. The array version runs three lines in all
# (the `lambda`, our `return`, and one line of Python inside NumPy's `.sum()`), and NumPy's
# compiled code does the rest. Now the clock. A single short timing is easily
# disturbed by other programs, so we keep the best of several runs (another program can make
# a run slower, never faster).

# %%
def best_time(fn, repeat):
    """The shortest wall-clock time of `repeat` calls of fn(), in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


loop_seconds = best_time(lambda: sum_squares_loop(values), repeat=3)
array_seconds = best_time(lambda: sum_squares_array(values), repeat=10)
print(f"best times: Python loop {loop_seconds * 1e3:.1f} ms ({loop_seconds / n * 1e9:.0f} ns per number), "
      f"array ops {array_seconds * 1e3:.2f} ms ({array_seconds / n * 1e9:.1f} ns per number): "
      f"{loop_seconds / array_seconds:.0f}x faster on this machine, now")

# %% [markdown]
# On our 2-core test machine, at its quietest (it is shared with other work), the loop took
# about 34 ns per number and the array ops about 0.27 ns: some 125 times faster. With both
# cores kept busy by other programs we measured anything from 75 to 470 times; a busy
# machine interrupts the long loop more often than the short array ops, whose best of ten
# runs can fit between two interruptions. The counts of lines never change; the times do,
# because a busy machine gives each program only a share of its cores. That is why this
# lesson asserts the counts and the sums, and only prints the times.
#
# Why `(values * values).sum()` and not `values @ values`, which is a single op? `@` hands
# the work to the BLAS library, which splits a long product over several threads, one per
# core. On a quiet machine that is faster (0.03 ms here, eight times faster than our two
# ops). On a busy one the threads wait for cores that other programs hold: for 100,000
# numbers we saw `@` take 10 to 24 ms, longer than the whole Python loop (3 to 6 ms).
# Elementwise ops and `.sum()` run on one core and slow down only as much as the machine is
# shared. Lessons 06 and 17 meet BLAS threads again.

# %% [markdown]
# An array has a **shape** (how many numbers along each axis) and a **dtype** (what kind of
# number each one is). Images in this course are arrays of shape `(N, 3, 32, 32)`: N images,
# 3 colour channels, 32×32 pixels.

# %%
images = np.zeros((8, 3, 32, 32), dtype=np.float32)
print("shape", images.shape, "| dtype", images.dtype, "| bytes", images.nbytes)
assert images.nbytes == 8 * 3 * 32 * 32 * 4  # float32 takes 4 bytes per number

# %% [markdown]
# ## 2. A tinymm tensor
#
# `tm.tensor(data)` copies `data` (a number, a nested list, or an array) into a `Tensor`.
# A Tensor is a thin wrapper: its numbers are in `.data`, an ordinary NumPy (or CuPy) array.
# Lesson 02 adds the rest: `.grad`, `requires_grad` and `grad_fn`.
#
# The class lives in `tinymm/autograd.py`; `tm.tensor` is in `tinymm/__init__.py`.

# %%
x = tm.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print(x)
print("shape", x.shape, "| dtype", x.dtype, "| device", x.device, "| data is a", type(x.data).__module__,
      type(x.data).__name__)

source = np.array([1.0, 2.0, 3.0])
copy = tm.tensor(source)
source[0] = 100.0  # tm.tensor copied the numbers, so this does not change `copy`
assert copy.numpy()[0] == 1.0
assert x.shape == (2, 3) and x.device == DEVICE

# %% [markdown]
# ## 3. dtypes: float32 by default, float64 when you ask, integers for ids
#
# The rules, which follow PyTorch's:
#
# - **Python floats become `float32`.** Four bytes a number, and what GPUs are fast at.
# - **An array keeps its dtype.** A `float64` NumPy array stays `float64`. Gradient checks
#   (lesson 03) rely on that: they need the extra precision.
# - **Integers stay integers.** Token ids and class labels are integer tensors. They are
#   inputs only: nothing can be differentiated with respect to an index.
# - **A Python number does not change a tensor's dtype**: `x32 * 2.0` is still `float32`.

# %%
a32 = tm.tensor([1.0, 2.0])
a64 = tm.tensor(np.array([1.0, 2.0]))            # a float64 array stays float64
a64_asked = tm.tensor([1.0, 2.0], dtype=np.float64)
ids = tm.tensor([3, 1, 4])
print("floats:", a32.dtype, "| float64 array:", a64.dtype, "| dtype=float64:", a64_asked.dtype,
      "| ints:", ids.dtype, "| float32 * 2.0:", (a32 * 2.0).dtype)

assert a32.dtype == np.float32
assert a64.dtype == np.float64 and a64_asked.dtype == np.float64
assert np.issubdtype(ids.dtype, np.integer)
assert (a32 * 2.0).dtype == np.float32

try:
    tm.tensor([3, 1, 4], requires_grad=True)
except TypeError as err:
    print("TypeError:", err)
else:
    raise AssertionError("an integer tensor must not accept requires_grad=True")

# %% [markdown]
# ### How precise is a float?
#
# A float stores about 24 binary digits (float32) or 53 (float64) of a number, plus an
# exponent. So the gap between one number and the next representable one grows with the
# number's size: near 1 it is the **machine epsilon**, $\varepsilon \approx 1.2\times10^{-7}$
# for float32 and $2.2\times10^{-16}$ for float64. Anything smaller than half that gap simply
# vanishes when added to 1:

# %%
eps32, eps64 = np.finfo(np.float32).eps, np.finfo(np.float64).eps
print(f"machine epsilon: float32 {eps32:.3g}, float64 {eps64:.3g}")
one = np.float32(1.0)
print("float32: 1 + 1e-8 == 1 ?", one + np.float32(1e-8) == one)
print("float64: 1 + 1e-8 == 1 ?", 1.0 + 1e-8 == 1.0)
assert one + np.float32(1e-8) == one and 1.0 + 1e-8 != 1.0

# %% [markdown]
# Each addition rounds its result to the nearest representable number, so an error of up to
# $\varepsilon/2$ relative to the running total can creep in at every step. Summing $n$
# numbers one after the other (a "sequential" sum) piles up $n$ such roundings. NumPy's own
# `.sum()` is smarter: it adds in pairs, then pairs of pairs (a "pairwise" sum), so each
# number goes through only about $\log_2 n$ roundings.
#
# The experiment below sums $n$ random numbers in $[0, 1)$ three ways and compares with the
# exact sum (`math.fsum`, which keeps every bit). The figure shows the results, next to the
# gap between neighbouring floats.

# %%
sizes = np.unique(np.logspace(1, pick(7, 5), pick(13, 9)).astype(int))
seeds = range(pick(5, 3))
names = ["float32, sequential", "float32, pairwise (np.sum)", "float64, sequential"]
errors = np.zeros((len(sizes), len(names)))
for i, size in enumerate(sizes):
    per_seed = []
    for seed in seeds:
        v64 = np.random.default_rng(seed).uniform(0.0, 1.0, size)
        v32 = v64.astype(np.float32)
        exact32 = math.fsum(v32.astype(np.float64))  # float32 -> float64 is exact
        exact64 = math.fsum(v64)
        per_seed.append([abs(float(np.cumsum(v32)[-1]) - exact32) / exact32,   # cumsum adds one by one
                         abs(float(v32.sum()) - exact32) / exact32,
                         abs(float(np.cumsum(v64)[-1]) - exact64) / exact64])
    errors[i] = np.median(per_seed, axis=0)

for size, row in zip(sizes[::2], errors[::2]):
    print(f"n = {size:>10,}: " + ", ".join(f"{name} {e:.1e}" for name, e in zip(names, row)))

seq32, pair32, seq64 = errors[-1]
assert seq32 > 1e-6, "a long float32 sequential sum loses more than a millionth"
assert pair32 < seq32 / 10, "pairwise summation is far more accurate at the same dtype"
assert seq64 < 1e-12 and seq32 / seq64 > 1e6, "float64 is hundreds of millions of times more precise"

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
magnitudes = np.logspace(-3, 6, 400)
for dtype, colour in [(np.float32, "tab:red"), (np.float64, "tab:blue")]:
    gaps = np.spacing(magnitudes.astype(dtype))
    left.loglog(magnitudes, gaps, color=colour, label=f"{np.dtype(dtype).name}: gap to the next float")
    left.loglog(magnitudes, magnitudes * np.finfo(dtype).eps, ":", color=colour, lw=1,
                label=f"|x| × ε ({np.finfo(dtype).eps:.1e})")
left.set(xlabel="|x|", ylabel="distance to the next representable number",
         title="Floats are spaced in proportion to their size")
left.legend(fontsize=8)

floor = 1e-17  # an exact result (error 0) is drawn at the bottom of the log axis
styles = [("tab:red", "o-"), ("tab:orange", "s--"), ("tab:blue", "o-")]
for (colour, style), name, column in zip(styles, names, errors.T):
    right.loglog(sizes, np.maximum(column, floor), style, color=colour, label=name, ms=4)
right.axhline(eps32, color="tab:red", lw=0.8, ls=":")
right.axhline(eps64, color="tab:blue", lw=0.8, ls=":")
right.text(sizes[-1], eps32 * 1.4, "ε float32", color="tab:red", fontsize=8, ha="right")
right.text(sizes[-1], eps64 * 1.4, "ε float64", color="tab:blue", fontsize=8, ha="right")
right.text(sizes[0], floor * 1.6, "exact (error 0)", color="gray", fontsize=7)
right.set(xlabel="number of values summed, n", ylabel="relative error of the sum",
          title="Rounding error of a sum grows with n", ylim=(floor / 2, 1e-3))
right.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "01_float32_vs_float64.png")

# %% [markdown]
# Read the right panel from left to right. A float32 sequential sum of ten million numbers is
# wrong in about the fifth significant digit (a relative error near $2\times10^{-5}$ in the
# full run); the same sum in float64 is wrong in the fourteenth (about $10^{-13}$). Pairwise
# summation keeps float32 at or below $\varepsilon$ at every size: how you add matters as much as
# the dtype.
#
# The lesson for the course: float32 is precise enough to *train* networks (the noise of
# stochastic gradients is far larger), but far too coarse to *check* gradients by finite
# differences. Lesson 03 shows this on a plot. Checks run in float64; training in float32.

# %% [markdown]
# ## 4. NumPy and CuPy: one code path for two devices
#
# CuPy copies NumPy's interface for arrays in GPU memory: `cupy.exp`, `cupy.zeros`,
# `a @ b`, broadcasting, all the same. So an op that never names `numpy` directly runs on
# both. The trick, borrowed from the DeZero framework, is to ask the input which library owns
# it:
#
# ```python
# xp = backend.get_array_module(x)   # numpy for a NumPy array, cupy for a CuPy array
# return xp.exp(x)                   # the same line for both
# ```
#
# `tinymm/backend.py` is the **only** file in tinymm that chooses between NumPy and CuPy.
# It imports CuPy lazily, the first time the device `"cuda"` is asked for, so tinymm works
# on a machine that has never heard of CUDA. Every op in `tinymm/functional/` starts with
# that `xp = ...` line. Here is a small function written the same way:

# %%
def softplus(x):
    """log(1 + e^x), written so that it never overflows: max(x, 0) + log(1 + e^-|x|)."""
    xp = backend.get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


v = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0])
print("array module for a NumPy array:", backend.get_array_module(v).__name__)
print("softplus:", softplus(v))
assert backend.get_array_module(v) is np
assert np.allclose(softplus(v), [0.0, np.log1p(np.exp(-1.0)), np.log(2.0), 1.0 + np.log1p(np.exp(-1.0)), 1000.0])

# %% [markdown]
# ## 5. Devices
#
# A tensor lives on a **device**: `"cpu"` (its data is a NumPy array in main memory) or
# `"cuda"` (a CuPy array in GPU memory). Three ways to choose:
#
# - per tensor: `tm.tensor(data, device="cuda")` or `x.to("cuda")` (a copy; `x.to("cpu")`
#   brings it back; `x.numpy()` always gives a NumPy array);
# - for everything created afterwards: `tm.set_default_device("cuda")`;
# - from outside, with no code change: the environment variable `TINYMM_DEVICE=cuda`, read
#   when tinymm first needs a default device. Every lesson runs on the GPU that way.
#
# Asking for `"cuda"` where CuPy or a GPU is missing is an error that says how to install
# it; a misspelt device name is an error that lists the choices.

# %%
print("cuda available here:", tm.cuda_available())
for bad in ["gpu"] + ([] if tm.cuda_available() else ["cuda"]):
    try:
        tm.tensor([1.0]).to(bad)
    except (ValueError, RuntimeError) as err:
        print(f".to({bad!r}) -> {type(err).__name__}: {err}")
    else:
        raise AssertionError(f".to({bad!r}) should have failed here")

# %% [markdown]
# ### Mixing devices is an error, never a silent copy
#
# Copying between CPU and GPU memory is slow. If tinymm quietly copied whenever a CPU tensor
# met a GPU tensor, a training loop could spend most of its time copying and you would never
# know why. So an op whose inputs sit on different devices raises a `ValueError` that names
# the op, the shapes and the devices, and tells you to move one of them.
#
# ### The same numbers on both backends
#
# tinymm draws every random number (weights, `tm.randn`) from one seeded NumPy generator and
# *then* moves it to the device, so the same seed gives the same starting numbers on CPU and
# GPU. The arithmetic is the same formulas, run by different libraries, so the results agree
# to float32 rounding (not bit for bit: a GPU adds numbers in a different order).
#
# The cell below computes a small loss and its gradient on every device this machine has,
# and compares them. It needs autograd, the subject of lesson 02; here we only compare
# numbers.

# %%
def loss_and_grad(device):
    """A small computation, loss = mean(exp(0.3 · x @ W)), and its gradient for W, on `device`."""
    tm.manual_seed(0)
    x = tm.randn(16, 8, device=device)
    W = tm.randn(8, 4, device=device, requires_grad=True)
    loss = ((x @ W) * 0.3).exp().mean()
    loss.backward()
    return loss.item(), backend.to_numpy(W.grad)


cpu_loss, cpu_grad = loss_and_grad("cpu")
print(f"cpu : loss {cpu_loss:.6f}, |grad| {np.linalg.norm(cpu_grad):.6f}")

if tm.cuda_available():
    gpu_loss, gpu_grad = loss_and_grad("cuda")
    print(f"cuda: loss {gpu_loss:.6f}, |grad| {np.linalg.norm(gpu_grad):.6f}")
    print(f"largest difference: loss {abs(gpu_loss - cpu_loss):.2e}, "
          f"gradient {np.abs(gpu_grad - cpu_grad).max():.2e}")
    assert math.isclose(gpu_loss, cpu_loss, rel_tol=1e-5)
    assert np.allclose(gpu_grad, cpu_grad, rtol=1e-4, atol=1e-6)

    on_cpu, on_gpu = tm.tensor([1.0, 2.0], device="cpu"), tm.tensor([1.0, 2.0], device="cuda")
    try:
        on_cpu + on_gpu
    except ValueError as err:
        print("ValueError:", err)
    else:
        raise AssertionError("adding a CPU tensor to a GPU tensor must fail")
    assert (on_cpu + on_gpu.to("cpu")).device == "cpu"  # after an explicit move it works
else:
    print("Skipped the GPU half: this machine has no CuPy or no NVIDIA GPU (tm.cuda_available() "
          "is False).\nOn a machine with one, this cell computes the same loss on 'cuda' and checks "
          "that it matches the CPU to float32 rounding, then shows the error for mixed devices.\n"
          "The check that raises that error, from tinymm/autograd.py (every op's inputs go through it):\n")
    print(inspect.getsource(_as_tensors))

# %% [markdown]
# ## Recap
#
# - A tinymm `Tensor` wraps an array in `.data`: NumPy on `"cpu"`, CuPy on `"cuda"`.
# - Python floats become float32; arrays keep their dtype (float64 stays float64); integers
#   stay integers and can never require a gradient.
# - float32 keeps about 7 significant digits, float64 about 16. Rounding errors grow with the
#   length of a computation, and the order of operations matters (pairwise vs sequential sum).
# - Ops get their array module from their input (`xp = backend.get_array_module(x)`), so one
#   code path serves both devices; only `tinymm/backend.py` chooses.
# - Devices are chosen per tensor (`device=`, `.to()`), globally (`tm.set_default_device`) or
#   from the environment (`TINYMM_DEVICE`). Mixing devices in one op is a clear error.
#
# ## Exercises
#
# 1. **Where does float32 stop counting?** Start from `np.float32(0)` and keep adding
#    `np.float32(1)`. At which value does adding one stop changing the number? *Hint:* the gap
#    between neighbouring float32 numbers is $|x|\varepsilon$ to within a factor of two; find
#    where it reaches 2. Then check your answer with `np.spacing`.
# 2. **Kahan summation.** Write a sequential sum that carries a small correction term along with
#    the total, and add it to the right panel of the figure. *Hint:* after `t = total + y`, the
#    quantity `(t - total) - y` is exactly what the rounding threw away.
# 3. **Make an op device-agnostic.** Write `logsigmoid(x)` so that it never overflows and uses
#    only `xp.` functions. *Hint:* $\log\sigma(x) = -\text{softplus}(-x)$; test it on
#    `[-1000, 0, 1000]`.
