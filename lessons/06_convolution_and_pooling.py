# %% [markdown]
# # Lesson 06 — Convolution and pooling
#
# **What you will build.** The layers that let a network look at images: a 2-D convolution,
# max pooling, average pooling and nearest-neighbour upsampling, each with its backward pass
# written by hand. You will first write a convolution as plain loops, then turn the whole
# thing into **one matrix product** with a trick called *im2col*, and count and time why
# that is faster. Its backward pass turns out to be two more matrix products and *col2im*, the
# mirror image of im2col. At the end you will run a few hand-made edge detectors over a small
# synthetic picture and look at what they see.
#
# **Why it matters.** A fully connected layer on a 32×32 colour image needs 3,072 weights per
# output unit and has to learn separately that a red circle in the top left and one in the
# bottom right are the same thing. A convolution reuses one small kernel (here 3×3×3 = 27
# weights) at every position, so what it learns in one place works everywhere. Every image
# model in this course (the image encoder of lesson 07, the image decoder of lesson 16) is
# built from the ops of this lesson, with the linear layers and ReLU of lesson 04.
#
# **Needs:** lesson 02 (Function, forward/backward), lesson 03 (gradient checking), lesson 04
# (a linear layer is a matrix product; its gradients are matrix products too).
#
# The code of this lesson lives in **`tinymm/functional/conv.py`**. Open it beside this file:
# every op there is a `Function` with `forward` and `backward` next to each other.

# %%
import time

import numpy as np
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.gradcheck import gradcheck
from tinymm.linecount import python_lines
from tinymm.plots import pick, save_figure

tm.manual_seed(0)
rng = np.random.default_rng(0)


def timed(fn, repeat):
    """The best wall time of ``repeat`` calls of fn(), in seconds (GPU work is waited for).

    The best, not the mean: other programs on the machine can only make a run slower.
    """
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        backend.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


# %% [markdown]
# ## 1. What a convolution computes
#
# The input is a batch of images $x$ of shape $(N, C, H, W)$: $N$ images, $C$ channels
# (3 for red, green, blue), height $H$ and width $W$. A convolution layer holds a weight
# $W$ of shape $(C_\text{out}, C, K_H, K_W)$ — one small $C \times K_H \times K_W$ kernel for
# each of its $C_\text{out}$ output channels — and a bias $b$ of shape $(C_\text{out},)$.
#
# Output channel $o$ at position $(y, x)$ is the dot product of kernel $o$ with the patch of
# the image under it:
#
# $$\text{out}[n, o, y, x] = b[o] + \sum_{c=0}^{C-1}\sum_{i=0}^{K_H-1}\sum_{j=0}^{K_W-1}
#   W[o, c, i, j]\; x_\text{pad}[n, c,\; yS + i,\; xS + j].$$
#
# Two settings change where the kernel goes. The **stride** $S$ is the step between two
# positions (stride 2 halves the size). The **padding** $P$ adds $P$ rows and columns of
# zeros around the image, so that the kernel can sit on the border pixels too; that padded
# image is $x_\text{pad}$. The number of positions along the height is
#
# $$H_\text{out} = \left\lfloor \frac{H + 2P - K_H}{S} \right\rfloor + 1,$$
#
# and the same along the width. With a 3×3 kernel, $P = 1$ and $S = 1$ the size stays the
# same: $(32 + 2 - 3)/1 + 1 = 32$.
#
# (Strictly speaking this is a *cross-correlation*: a mathematician's convolution flips the
# kernel first. Every deep-learning library computes the unflipped version and calls it
# convolution; since the kernel is learned, the flip makes no difference.)
#
# Here is that formula as loops, exactly as written. It is deliberately naive: one small
# dot product per output value, in Python.

# %%
def conv2d_loops(x, w, b, stride=1, padding=0):
    """The convolution formula above, one output value at a time (NumPy arrays)."""
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    x_pad = np.zeros((n, c, h + 2 * padding, wd + 2 * padding), dtype=x.dtype)
    x_pad[:, :, padding:padding + h, padding:padding + wd] = x
    h_out = (h + 2 * padding - kh) // stride + 1
    w_out = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, c_out, h_out, w_out), dtype=x.dtype)
    for i in range(n):
        for o in range(c_out):
            for y in range(h_out):
                for z in range(w_out):
                    patch = x_pad[i, :, y * stride:y * stride + kh, z * stride:z * stride + kw]
                    out[i, o, y, z] = (patch * w[o]).sum() + b[o]
    return out


# %% [markdown]
# ## 2. im2col: the whole convolution as one matrix product
#
# Look at the formula again. For a fixed output position $(n, y, x)$, the patch
# $x_\text{pad}[n, :, yS : yS + K_H, xS : xS + K_W]$ has $C K_H K_W$ numbers. Flatten it into
# a column. Do that for every one of the $N H_\text{out} W_\text{out}$ positions and put the
# columns side by side: that matrix is called **cols**, of shape
# $(C K_H K_W,\; N H_\text{out} W_\text{out})$. The columns come in a fixed order: image $n$
# outermost, then output row $y$, then output column $x$, so position $(n, y, x)$ is column
# $n H_\text{out} W_\text{out} + y W_\text{out} + x$. The rows likewise: channel $c$ outermost,
# then kernel row $i$, then kernel column $j$. Flatten each kernel into a row too:
# $W_\text{mat}$ = `W.reshape(C_out, C*KH*KW)`. Then every dot product of the loops above is one
# entry of a single matrix product:
#
# $$\text{out\_mat} = W_\text{mat}\;\text{cols} \qquad (C_\text{out},\; N H_\text{out} W_\text{out}),$$
#
# which we reshape to $(C_\text{out}, N, H_\text{out}, W_\text{out})$, reorder to
# $(N, C_\text{out}, H_\text{out}, W_\text{out})$ (a transpose: a reshape alone keeps the numbers
# but puts them in the wrong places) and add the bias to.
# The matrix product runs in the BLAS library, compiled and vectorised, instead of in Python.
#
# How do we *build* cols without a loop over pixels? Fix one kernel offset $(i, j)$. The
# pixel that offset sees at output position $(y, x)$ is $x_\text{pad}[:, :, i + yS, j + xS]$.
# Over all positions at once, that is one strided slice: `x_pad[:, :, i::S, j::S]` (cut to
# $H_\text{out} \times W_\text{out}$; the exercise stub writes that cut slice in one go as
# `x_pad[:, :, i : i + S·(H_out−1) + 1 : S, j : j + S·(W_out−1) + 1 : S]`). So im2col is a loop
# over the $K_H K_W$ offsets only — nine slices for a 3×3 kernel — each copied into its block of
# rows. The slice comes out $(N, C, H_\text{out}, W_\text{out})$, but in cols the channel picks
# the row and the image picks the columns, so $C$ must move in front of $N$ (a transpose to
# $(C, N, H_\text{out}, W_\text{out})$) before the slice is flattened into its $C$ rows
# (tinymm's `im2col` moves it once, for the whole padded image, before slicing). The picture
# below shows it on a 4×4 image with a 3×3 kernel: four patches, four columns.

# %%
tiny = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
tiny_cols = F.im2col(tm.tensor(tiny), 3, 3).numpy()
print("image:\n", tiny[0, 0])
print("cols (9 rows = kernel offsets, 4 columns = output positions):\n", tiny_cols)
# the column of output position (y, x) is the 3x3 patch at (y, x), flattened row by row
assert np.array_equal(tiny_cols[:, 3], tiny[0, 0, 1:4, 1:4].reshape(-1))

# %%
colors = ["tab:red", "tab:blue", "tab:green", "tab:orange"]
fig, (ax_img, ax_cols) = plt.subplots(1, 2, figsize=(10, 4.4), gridspec_kw={"width_ratios": [1, 1.1], "wspace": 0.45})
ax_img.imshow(tiny[0, 0], cmap="Greys", vmin=-10, vmax=60)
for (r, c), v in np.ndenumerate(tiny[0, 0]):
    ax_img.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=12)
for k, (y, x) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
    inset = 0.08 * (k + 1)
    ax_img.add_patch(Rectangle((x - 0.5 + inset, y - 0.5 + inset), 3 - 2 * inset, 3 - 2 * inset,
                               fill=False, lw=2.2, ec=colors[k]))
ax_img.set_title("4×4 image, four 3×3 patches (stride 1)")
ax_img.set_xticks([])
ax_img.set_yticks([])
ax_cols.imshow(tiny_cols, cmap="Greys", vmin=-10, vmax=60, aspect="auto")
for (r, c), v in np.ndenumerate(tiny_cols):
    ax_cols.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=10, color=colors[c])
ax_cols.set_xticks(range(4), [f"patch\n({y},{x})" for y, x in [(0, 0), (0, 1), (1, 0), (1, 1)]])
ax_cols.set_yticks(range(9), [f"offset ({i},{j})" for i in range(3) for j in range(3)])
ax_cols.set_title("cols = im2col(image): one column per patch")
fig.suptitle("im2col: conv = W.reshape(C_out, 9) @ cols", fontsize=12, y=1.03)
save_figure(fig, "06_im2col.png")

# %% [markdown]
# ![im2col](figures/06_im2col.png)
#
# Each coloured patch on the left becomes the column of the same colour on the right. A
# pixel in the middle, like 6, sits in all four patches, so it is copied four times.

# %% [markdown]
# Now the real comparison, at the size of the course's first conv layer: a batch of 16
# images, 3 → 16 channels, 32×32, a 3×3 kernel with padding 1. `F.conv2d` is the im2col
# version from `tinymm/functional/conv.py`. Both must give the same numbers: to 1e-12 in
# float64, where only rounding in the last digits differs, and to 1e-5 in float32, whose
# rounding step is about 1e-7 relative.

# %%
batch = pick(16, 2)
x64 = rng.standard_normal((batch, 3, 32, 32))
w64 = rng.standard_normal((16, 3, 3, 3)) * 0.2
b64 = rng.standard_normal(16) * 0.1

for dtype, tol in [(np.float64, 1e-12), (np.float32, 1e-5)]:
    x, w, b = (a.astype(dtype) for a in (x64, w64, b64))
    loops = conv2d_loops(x, w, b, stride=1, padding=1)
    fast = F.conv2d(tm.tensor(x), tm.tensor(w), tm.tensor(b), padding=1).numpy()
    error = np.abs(loops - fast).max()
    print(f"{np.dtype(dtype).name}: output {fast.shape}, largest difference {error:.1e}")
    assert fast.dtype == dtype and error < tol

# the same check with stride 2, no padding and a non-square kernel
w_odd = w64[:, :, :2, :]
loops = conv2d_loops(x64, w_odd, b64, stride=2, padding=0)
fast = F.conv2d(tm.tensor(x64), tm.tensor(w_odd), tm.tensor(b64), stride=2).numpy()
assert fast.shape == (batch, 16, 16, 15) and np.abs(loops - fast).max() < 1e-12

# %% [markdown]
# And the speed. Why should im2col be faster at all? Not because it computes less. The
# loops compute every output value as a dot product of $C K_H K_W$ numbers. The matrix
# product of $W_\text{mat}$ $(C_\text{out} \times C K_H K_W)$ and cols
# $(C K_H K_W \times N H_\text{out} W_\text{out})$ does $C K_H K_W$ multiply-adds for each of
# its $C_\text{out} N H_\text{out} W_\text{out}$ entries: the same count.
#
# What differs is who runs the loop. The loop version asks the Python interpreter to run a
# few lines of Python for every output value. im2col runs a few lines per kernel offset and
# leaves everything else to compiled code: NumPy copies each strided view in one call, and
# the BLAS library does the matrix product. As in lesson 01, we count the lines of Python the
# interpreter runs (`python_lines` from `tinymm/linecount.py`), for the whole batch and for
# one image. A count is the same on every machine, busy or quiet.

# %%
x32, w32, b32 = (a.astype(np.float32) for a in (x64, w64, b64))
xt, wt, bt = tm.tensor(x32), tm.tensor(w32), tm.tensor(b32)
loop_lines, out_loops = python_lines(lambda: conv2d_loops(x32, w32, b32, padding=1))
im2col_lines, out_im2col = python_lines(lambda: F.conv2d(xt, wt, bt, padding=1))
# the same two, on the first image alone
x32_1, xt_1 = x32[:1], tm.tensor(x32[:1])
loop_lines_1, _ = python_lines(lambda: conv2d_loops(x32_1, w32, b32, padding=1))
im2col_lines_1, _ = python_lines(lambda: F.conv2d(xt_1, wt, bt, padding=1))
cols = F.im2col(xt, 3, 3, padding=1)
macs_loops = out_loops.size * w32[0].size                     # one dot product of C·KH·KW numbers per output value
macs_im2col = w32.shape[0] * cols.shape[0] * cols.shape[1]    # (C_out, C·KH·KW) @ (C·KH·KW, N·H_out·W_out)
print(f"batch {batch}, 3->16 channels, 32x32: {out_loops.size:,} output values")
print(f"multiply-adds: loops {macs_loops:,}, im2col {macs_im2col:,}")
print(f"lines of Python run: loops {loop_lines:,} ({loop_lines / out_loops.size:.1f} per output value; "
      f"{loop_lines_1:,} for one image), im2col {im2col_lines:,} ({im2col_lines_1:,} for one image)")
assert macs_loops == macs_im2col                     # the same arithmetic
assert loop_lines >= 3 * out_loops.size               # the inner loop's lines, once per output value
assert loop_lines >= 0.99 * batch * loop_lines_1       # so they grow with the batch ...
assert im2col_lines == im2col_lines_1                 # ... while im2col's do not

# %% [markdown]
# Now the clock. The loops run once (they are slow); im2col runs several times and we keep
# the best time, since other programs can make a run slower but never faster.

# %%
t_loops = timed(lambda: conv2d_loops(x32, w32, b32, padding=1), repeat=1)
t_im2col = timed(lambda: F.conv2d(xt, wt, bt, padding=1), repeat=pick(20, 5))
print(f"loops {t_loops * 1e3:.0f} ms ({t_loops / loop_lines * 1e9:.0f} ns per line of Python), "
      f"im2col {t_im2col * 1e3:.2f} ms: {t_loops / t_im2col:,.0f}x faster on this machine, now")

# %% [markdown]
# On our 2-core test machine, at its quietest (it is shared with other work), the loops
# took about 0.53 s and im2col about 0.19 ms: **about 2,800 times faster**. Almost all of the
# loops' time is overhead, some 500 ns per line of Python, each line starting a NumPy
# operation on a handful of numbers; the 7 million multiply-adds themselves take compiled
# code well under a millisecond.
#
# The ratio of the times depends on the machine and on what else it is doing; the ratio of
# the counts does not. With other programs keeping both cores busy we measured anything
# from 7 to 7,000 times. Each Python line just waits its turn for a core. But BLAS splits
# the matrix product over threads, one per core, and every thread must finish before the
# product is done: when one of them waits for a core that another program holds, they all
# wait (we saw im2col's best time grow from 0.19 ms to 38 ms). That is why this
# lesson asserts the counts above and only prints the times. (To time BLAS fairly on a
# shared machine, start Python with `OPENBLAS_NUM_THREADS=1`; lesson 17 says more.)
#
# The price is memory: cols holds every pixel up to $K_H K_W$ = 9 times (once per patch that
# contains it, padding zeros filling in at the border), here 27 × 16,384 numbers for 16
# images against 3 × 1,024 × 16 in the input: nine times as many.
#
# ## 3. The backward pass: two matrix products and col2im
#
# The forward pass is $\text{out\_mat} = W_\text{mat}\,\text{cols}$, a matrix product, and
# lesson 04 derived the gradients of a linear layer $Y = X W^\top$ with upstream gradient
# $G$: $dX = G W$ and $dW = G^\top X$. Transpose our product to see it in that form:
# $\text{out\_mat}^\top = \text{cols}^\top W_\text{mat}^\top$. That is lesson 04's layer with
# $X = \text{cols}^\top$ (one row per output position, as there one row per example),
# $W = W_\text{mat}$ and $Y = \text{out\_mat}^\top$. Let $g_\text{mat}$ be the upstream
# gradient $g$ laid out like out_mat, $(C_\text{out}, N H_\text{out} W_\text{out})$, so that
# $G = g_\text{mat}^\top$. Lesson 04's formulas give $dW_\text{mat} = G^\top X =
# g_\text{mat}\,\text{cols}^\top$ and $d\text{cols}^\top = G W = g_\text{mat}^\top W_\text{mat}$,
# that is:
#
# $$dW_\text{mat} = g_\text{mat}\,\text{cols}^\top, \qquad
#   d\text{cols} = W_\text{mat}^\top\, g_\text{mat}, \qquad
#   db[o] = \sum_{n, y, x} g[n, o, y, x].$$
#
# The bias is added at every position, so its gradient is the sum over all positions.
#
# That leaves $dx$ from $d\text{cols}$. Each entry of cols is a *copy* of one pixel (or a
# padding zero). A pixel copied into several columns influences the loss through each copy,
# so its gradient is the **sum** of the gradients of its copies. That is **col2im**: the same
# loop over kernel offsets as im2col, but adding each block of rows back into a zero image
# (`x_pad[:, :, i::S, j::S] += ...`), then cutting the padding off:
#
# $$dx = \text{col2im}(W_\text{mat}^\top\, g_\text{mat}).$$
#
# In the language of linear algebra, im2col is a linear map $M$ (cols = $M x$) and col2im is
# its transpose $M^\top$. A transpose is defined by $\langle M^\top c, x\rangle = \langle c,
# Mx\rangle$ for every $c$ and $x$, which we can check with random arrays:

# %%
x_small = rng.standard_normal((2, 3, 7, 6))
for kh, kw, stride, padding in [(3, 3, 1, 1), (3, 2, 2, 1), (2, 2, 2, 0)]:
    cols = F.im2col(tm.tensor(x_small), kh, kw, stride=stride, padding=padding).numpy()
    c = rng.standard_normal(cols.shape)
    back = F.col2im(tm.tensor(c), x_small.shape, kh, kw, stride=stride, padding=padding).numpy()
    lhs, rhs = (back * x_small).sum(), (c * cols).sum()
    print(f"kernel {kh}x{kw} stride {stride} pad {padding}: <col2im(c), x> = {lhs:.12f}, "
          f"<c, im2col(x)> = {rhs:.12f}")
    assert abs(lhs - rhs) < 1e-12 * max(1.0, abs(rhs))

# %% [markdown]
# Now the full proof: a gradient check (lesson 03) of `conv2d` in float64 with stride 2,
# padding 1 and a non-square kernel, for the input, the weight and the bias at once.
#
# A note on the step size: conv is *linear* in each of its inputs, so a central difference
# has no truncation error at all, only rounding error, which shrinks as the step grows. We
# use eps = 1e-4 here. With the default 1e-6 the rounding noise (about
# 1e-16 × |loss| / eps) reaches 1e-7 relative on the smallest gradient entries, right at
# our tolerance (lesson 03's V-shaped plot, seen from its left side).

# %%
x_check = tm.tensor(rng.standard_normal((2, 3, 5, 4)), requires_grad=True)
w_check = tm.tensor(rng.standard_normal((2, 3, 3, 2)), requires_grad=True)
b_check = tm.tensor(rng.standard_normal(2), requires_grad=True)
report = gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
                   [x_check, w_check, b_check], eps=1e-4, tol=1e-7, name="conv2d stride 2 pad 1")
print(report)
assert report.passed

# %% [markdown]
# ## 4. Max pooling: the gradient goes to the winner
#
# Max pooling keeps the largest value of each $K \times K$ window (stride $S$, by default
# $S = K$). It halves the size with a 2×2 window, and it makes the network a little
# insensitive to where exactly in a window a feature was found.
#
# In tinymm the forward is again a loop over offsets: the maximum of a 2×2 window at every
# position is the elementwise maximum of the four strided views `x[:, :, 0::2, 0::2]`,
# `x[:, :, 0::2, 1::2]`, `x[:, :, 1::2, 0::2]` and `x[:, :, 1::2, 1::2]`.
#
# The backward follows from "out = one of the inputs": nudging the winning entry by $\epsilon$
# moves the output by $\epsilon$; nudging any other entry (a little) changes nothing. So
#
# $$dx[\text{winner of window } w] \mathrel{+}= g[w], \qquad dx = 0 \text{ elsewhere}.$$
#
# The gradient is **routed**, not spread. Where windows overlap (3×3 with stride 2, say) one
# pixel can win several windows and receives the sum of their gradients.
#
# **Ties.** When two entries of a window are equal and largest, the max is not
# differentiable there. tinymm gives the whole gradient to the **first** of them in
# row-major order inside the window (the same choice `argmax` makes). That is deterministic,
# and it is a valid *subgradient*.
#
# **What is kept for backward.** While forward takes the maximum, it also records, for
# every window, the number $k$ of the first offset that holds the maximum (offsets counted
# in row-major order, 0 to 3 for a 2×2 window): it compares each offset's view with the
# output, and counts the offsets that came before the first match. This array, `winner`,
# takes one byte per window. Backward needs nothing else, not even $x$: for each offset $k$
# it writes $g$ into that offset's strided view of a zero image wherever `winner == k`
# (adding instead of writing where windows overlap). When no backward will follow (inside
# `tm.no_grad()`, or when the input needs no gradient), forward skips this bookkeeping.

# %%
x_pool = tm.tensor(np.array([[[[1.0, 3.0, 0.0, 0.0],
                                [2.0, 0.0, 4.0, 4.0],
                                [5.0, 5.0, 7.0, 7.0],
                                [5.0, 5.0, 7.0, 7.0]]]]), requires_grad=True)
pooled = F.max_pool2d(x_pool, 2)
pooled.backward(tm.tensor(np.array([[[[10.0, 20.0], [30.0, 40.0]]]])))
print("pooled:\n", pooled.numpy()[0, 0])
print("gradient routed back (upstream 10, 20, 30, 40):\n", x_pool.grad[0, 0])
expected = np.array([[0, 10, 0, 0],       # 3 wins the first window
                     [0, 0, 20, 0],       # a tie 4 = 4: the first 4 in row-major order takes it all
                     [30, 0, 40, 0],      # all-equal windows: the top-left entry takes it all
                     [0, 0, 0, 0]])
assert np.array_equal(backend.to_numpy(x_pool.grad[0, 0]), expected)

# %% [markdown]
# Gradient checks need inputs away from ties: with two equal values, a nudge of $\pm\epsilon$
# makes a different entry win on each side, and the finite difference measures half of each.
# The table's `distinct` sampler draws values at least 0.05 apart. Both the non-overlapping
# 2×2 case (with an odd size: the last row and column do not fit a window and are dropped,
# as in PyTorch) and the overlapping 3×3 stride 2 case:

# %%
def distinct(shape):
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025).reshape(shape)


for kernel, stride, shape in [(2, 2, (2, 2, 5, 7)), (3, 2, (2, 2, 7, 6))]:
    x_check = tm.tensor(distinct(shape), requires_grad=True)
    report = gradcheck(lambda t: F.max_pool2d(t, kernel, stride), [x_check], eps=1e-4, tol=1e-7,
                       name=f"max_pool2d {kernel}x{kernel} stride {stride} on {shape}")
    print(report)
    assert report.passed

# %% [markdown]
# ## 5. Average pooling and global average pooling
#
# Average pooling takes the mean of each window: $\text{out} = \frac{1}{K_H K_W}\sum
# (\text{window})$. Every entry of a window counts equally, so the gradient is **spread**
# evenly: each entry receives $g / (K_H K_W)$ from every window it belongs to.
# `global_avg_pool2d` is the extreme case, one window covering the whole image:
# $(N, C, H, W) \to (N, C)$, and $dx = g / (HW)$ at every pixel.

# %%
x_avg = tm.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
F.avg_pool2d(x_avg, 2).backward(tm.tensor(np.array([[[[4.0, 8.0], [12.0, 16.0]]]])))
print("avg-pool gradient (upstream 4, 8, 12, 16, spread over 2x2 windows):\n", x_avg.grad[0, 0])
assert np.array_equal(backend.to_numpy(x_avg.grad[0, 0]),
                      np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]))

for name, fn in [("avg_pool2d 3x3 stride 2", lambda t: F.avg_pool2d(t, 3, stride=2)),
                 ("global_avg_pool2d", F.global_avg_pool2d)]:
    report = gradcheck(fn, [tm.tensor(rng.standard_normal((2, 2, 5, 7)), requires_grad=True)],
                       eps=1e-4, tol=1e-7, name=name)
    print(report)
    assert report.passed

# %% [markdown]
# ## 6. Nearest-neighbour upsampling
#
# The image decoder of lesson 16 has to go the other way, from a small map to a large image.
# The simplest way: repeat every pixel into an $s \times s$ block,
# $\text{out}[n, c, y, x] = x[n, c, \lfloor y/s \rfloor, \lfloor x/s \rfloor]$. Each input
# pixel is copied $s^2$ times, so (as with im2col's copies) its gradient is the **sum** of
# $g$ over its block. Upsampling and sum-pooling are each other's transpose.

# %%
x_up = tm.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), requires_grad=True)
up = F.upsample_nearest2d(x_up, scale_factor=2)
print("upsampled:\n", up.numpy()[0, 0])
g_up = rng.standard_normal((1, 1, 4, 4))
up.backward(tm.tensor(g_up))
block_sums = g_up.reshape(1, 1, 2, 2, 2, 2).sum(axis=(3, 5))
assert np.allclose(backend.to_numpy(x_up.grad), block_sums, atol=1e-12)
report = gradcheck(lambda t: F.upsample_nearest2d(t, 3),
                   [tm.tensor(rng.standard_normal((1, 2, 2, 3)), requires_grad=True)], eps=1e-4, tol=1e-7,
                   name="upsample_nearest2d x3")
print(report)
assert report.passed

# %% [markdown]
# ## 7. What edge filters see
#
# Before lesson 07 *learns* its kernels, let us set some by hand and look at the result. We
# draw a small scene with NumPy — a dark background, a red disc, a green square and a blue
# triangle — and convolve it with four classic 3×3 filters, applied equally to the three
# colour channels: a vertical-edge detector (it responds where brightness changes from left
# to right), a horizontal-edge detector, a diagonal one, and a "spot" detector (centre minus
# surroundings, which fires on corners and thin details). Each map is then rectified (its
# negative values set to 0, as a ReLU would) and max-pooled 2×2, the way the image encoder
# will use them.

# %%
def draw_scene(size=64):
    """A dark RGB scene (3, size, size) in [0, 1] with a disc, a square and a triangle."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.zeros((3, size, size))
    disc = (yy - 0.3) ** 2 + (xx - 0.28) ** 2 < 0.17 ** 2
    square = (np.abs(yy - 0.32) < 0.15) & (np.abs(xx - 0.72) < 0.15)
    triangle = (yy > 0.55) & (yy < 0.92) & (np.abs(xx - 0.5) < (yy - 0.55) * 0.75)
    for mask, rgb in [(disc, (0.95, 0.2, 0.2)), (square, (0.2, 0.9, 0.3)), (triangle, (0.25, 0.4, 1.0))]:
        image[:, mask] = np.array(rgb)[:, None]
    return image


scene = draw_scene()
filters = {
    "vertical edges": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "horizontal edges": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "diagonal edges": [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
    "spots": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
}
kernels = np.array(list(filters.values()), dtype=np.float32)             # (4, 3, 3)
weight = np.repeat(kernels[:, None], 3, axis=1) / 3                      # (4, 3, 3, 3): same on R, G, B
maps = F.conv2d(tm.tensor(scene[None].astype(np.float32)), tm.tensor(weight), padding=1)
rectified = tm.tensor(np.maximum(maps.numpy(), 0))
pooled_max = F.max_pool2d(rectified, 2).numpy()[0]
pooled_avg = F.avg_pool2d(rectified, 2).numpy()[0]
maps = maps.numpy()[0]
assert maps.shape == (4, 64, 64) and pooled_max.shape == pooled_avg.shape == (4, 32, 32)
# the vertical-edge map is positive on a shape's left edge (dark -> bright) and negative on its right edge
row = 20  # a row through the disc, which spans about x = 8..28 there
assert maps[0, row, 8:12].max() > 0.3 and maps[0, row, 25:30].min() < -0.3
# a flat region gives no response to any edge filter
assert np.abs(maps[:, 58:62, 2:6]).max() < 1e-6

# %%
fig = plt.figure(figsize=(11, 10.5))
grid = fig.add_gridspec(5, 4, height_ratios=[1.25, 1, 1, 1, 1], hspace=0.35, wspace=0.15)
ax = fig.add_subplot(grid[0, 1:3])
ax.imshow(scene.transpose(1, 2, 0))
ax.set_title("input: a 64×64 RGB scene drawn with NumPy")
ax.axis("off")
limit = np.abs(maps).max()
for r, name in enumerate(filters):
    panels = [(kernels[r], "bwr", -8, 8, f"{name}\n3×3 kernel"),
              (maps[r], "bwr", -limit, limit, "conv2d output (64×64)\nred +, blue −"),
              (pooled_max[r], "magma", 0, limit, "ReLU, max_pool2d 2×2\n(32×32)"),
              (pooled_avg[r], "magma", 0, limit, "ReLU, avg_pool2d 2×2\n(32×32)")]
    for c, (image, cmap, lo, hi, title) in enumerate(panels):
        ax = fig.add_subplot(grid[r + 1, c])
        ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi)
        if c == 0:
            for (i, j), v in np.ndenumerate(image):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=9)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
fig.suptitle("Hand-set filters over a synthetic scene: each one sees one kind of edge", fontsize=13, y=0.94)
save_figure(fig, "06_feature_maps.png")

# %% [markdown]
# ![feature maps](figures/06_feature_maps.png)
#
# Read the figure row by row. The vertical-edge filter lights up red on the left edges of
# the shapes (dark to bright, going right) and blue on their right edges; the top and bottom
# of the square and the base of the triangle vanish from it. The horizontal-edge filter does
# the opposite. The diagonal filter answers most to edges running from top left to bottom
# right, like the triangle's right side, a little less to vertical and horizontal edges, and
# hardly at all to edges running the other way, like the triangle's left side. The spot
# filter (centre minus neighbours) is zero on flat areas and outlines every shape whatever
# the direction of its edges, strongest at the triangle's sharp corners.
#
# The ReLU keeps only the positive (red) side of each map: for the first filter, the left
# edges of the shapes. Then 2×2 max pooling halves the size, yet each edge that survived is
# still there at full strength, because max pooling keeps the strongest response in each
# window. Average pooling keeps the edges too, but dimmer wherever a response does not fill
# its window. The edge filters answer in a band two pixels wide: where the band lines up
# with a 2×2 window it keeps its strength, where it straddles two windows it fills half of
# each. The spot filter's outlines, one pixel wide, are dimmed most.
#
# These filters add up the three colour channels, so they see brightness only and cannot
# tell the red disc from a blue one. The filters that lesson 07 *learns* weigh the channels
# differently, and some of them become colour detectors.
#
# ## Recap
#
# - A convolution is a dot product of a small kernel with every patch of the image.
#   **im2col** copies the patches into columns (a loop over the $K_H K_W$ kernel offsets,
#   each a strided slice), so the whole layer is **one matrix product**. It does the same
#   multiply-adds as the loops, but the Python it runs does not grow with the batch (about
#   two hundred lines on the CPU, for one image or sixteen), where the loops run about four
#   lines per output value. At the size of
#   the course's first layer that made it about 2,800× faster on a quiet machine (less on a
#   busy one, where BLAS threads wait for cores).
# - Its backward is the matrix-product backward of lesson 04, $dW = g_\text{mat}\,\text{cols}^\top$,
#   $d\text{cols} = W^\top g_\text{mat}$, plus **col2im**, the transpose of im2col, which adds
#   every copy's gradient back into its pixel. The bias gradient is $g$ summed over all positions.
# - Max pooling **routes** each window's gradient to its maximum (ties: to the first one, in
#   row-major order); average pooling **spreads** it evenly; nearest upsampling **sums** it
#   over each block.
# - All of them pass gradient checks in float64; conv and the pools are (piecewise) linear,
#   so their finite differences are exact up to rounding.
#
# Next, lesson 07 stacks two conv layers, ReLU and max pooling into the image encoder and
# trains it on the shapes dataset.
#
# ## Exercises
#
# 1. **The weight gradient with loops.** Write `conv2d_weight_grad_loops(x, g, kh, kw)` that
#    computes $dW[o, c, i, j] = \sum_{n, y, x} g[n, o, y, x]\, x_\text{pad}[n, c, yS + i, xS + j]$
#    with loops, and compare it with `w.grad` after `F.conv2d(...).backward(g)`.
#    *Hint:* it has the same loop structure as `conv2d_loops`, with the patch multiplied by
#    a number from $g$ and added into $dW[o]$.
# 2. **Stride is subsampling.** Check that `F.conv2d(x, w, stride=2)` equals
#    `F.conv2d(x, w)` with every second row and column kept. Which is cheaper, and by how
#    much? *Hint:* compare the shapes of the two cols matrices.
# 3. **Another tie rule.** Write a copy of the max-pool Function that splits the gradient
#    evenly among tied maxima. Does the gradient check with `distinct` inputs notice? Does
#    the all-equal example of section 4 change? *Hint:* tinymm's forward keeps only the
#    first winner of each window, so your forward must keep more: for instance one
#    equality mask per offset (`view == out`) and their count per window. At a tie, any
#    split that adds up to $g$ is a valid subgradient; only inputs *at* a tie can tell the
#    rules apart.
#
# **Coded exercises**, graded by tinymm (`python -m tinymm check 06`): im2col, col2im and conv2d in
# [`exercises/06_conv2d.py`](exercises/06_conv2d.py), max-pool in [`exercises/06_max_pool2d.py`](exercises/06_max_pool2d.py).
