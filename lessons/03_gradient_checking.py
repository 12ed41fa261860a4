# %% [markdown]
# # Lesson 03 — Gradient checking: trust, but verify
#
# **What you will build.** A way to *prove* that a hand-written backward pass is right,
# without trusting anyone's calculus: compare it with a derivative measured by finite
# differences. You will see why the measurement needs float64 and central differences, how to
# choose the step size (a V-shaped plot tells you), how to compare two gradients fairly
# (relative error), and how tinymm checks every op it has with one command. Last, a trap in a
# popular way of checking (two well-known teaching frameworks check their softmax that way;
# section 5 names the files), turned into a lesson.
#
# **Why it matters.** Every later lesson writes a backward by hand: linear layers, convolution,
# softmax cross-entropy, the CLIP loss. A wrong backward rarely crashes. The network still
# trains, just worse, and you will never know why. A gradient check catches it in a second.
#
# **Needs:** lesson 01 (float32 vs float64) and lesson 02 (Function, backward).

# %%
import contextlib
import io

import numpy as np
import matplotlib.pyplot as plt

import tinymm as tm
from tinymm import backend
from tinymm.__main__ import main as tinymm_cli
from tinymm.autograd import Function
from tinymm.gradcheck import GradcheckError, gradcheck, numerical_gradient, relative_error
from tinymm.opspecs import OP_SPECS
from tinymm.plots import pick, save_figure

# %% [markdown]
# ## 1. Finite differences
#
# The derivative is the limit of a slope: $f'(x) = \lim_{\varepsilon\to0}
# \frac{f(x+\varepsilon) - f(x)}{\varepsilon}$. Take a small $\varepsilon$ instead of the limit
# and you have a numerical derivative. There are two common recipes:
#
# $$\text{forward: } \frac{f(x+\varepsilon) - f(x)}{\varepsilon}, \qquad
#   \text{central: } \frac{f(x+\varepsilon) - f(x-\varepsilon)}{2\varepsilon}.$$
#
# Taylor's theorem says how wrong each is:
#
# $$f(x\pm\varepsilon) = f(x) \pm \varepsilon f'(x) + \tfrac{\varepsilon^2}{2} f''(x)
#   \pm \tfrac{\varepsilon^3}{6} f'''(x) + \ldots$$
#
# - forward: $\frac{f(x+\varepsilon) - f(x)}{\varepsilon} = f'(x) + \frac{\varepsilon}{2}f''(x)
#   + \ldots$, an error proportional to $\varepsilon$: **O(ε)**;
# - central: the $\varepsilon^2$ terms cancel, leaving $f'(x) + \frac{\varepsilon^2}{6}f'''(x)
#   + \ldots$: **O(ε²)**. Ten times smaller ε, a hundred times smaller error.
#
# So make ε tiny? No: lesson 01 showed that floats are rounded to about $|f|\cdot\epsilon_{\text{mach}}$.
# Subtracting two nearly equal values of $f$ keeps that rounding error and divides it by ε:
# a **rounding error** of about $\epsilon_{\text{mach}}|f| / \varepsilon$, which *grows* as ε
# shrinks. The total error is the sum of a term that falls with ε and one that rises, so on a
# log-log plot it is a V. Its bottom is where the two meet:
#
# | | forward (error ≈ ε + ε_mach/ε) | central (error ≈ ε² + ε_mach/ε) |
# |---|---|---|
# | best ε | $\approx\sqrt{\epsilon_{\text{mach}}}$: 1e-8 (float64), 3e-4 (float32) | $\approx\epsilon_{\text{mach}}^{1/3}$: 6e-6 (float64), 5e-3 (float32) |
# | best error | $\approx\sqrt{\epsilon_{\text{mach}}}$: 1e-8, 3e-4 | $\approx\epsilon_{\text{mach}}^{2/3}$: 4e-11, 2e-5 |
#
# Let us measure it on $f(x) = e^x / (1 + x^2)$ at $x = 0.5$, whose derivative we know exactly:
# $f'(x) = e^x (1 - x)^2 / (1 + x^2)^2$. $f$ is computed with tinymm ops, in each dtype.

# %%
X0 = 0.5
EXACT = np.exp(X0) * (1 - X0) ** 2 / (1 + X0**2) ** 2


def f(x):
    return x.exp() / (x * x + 1.0)


eps_grid = np.logspace(-14, 0, pick(57, 29))
curves = {}
for dtype in (np.float32, np.float64):
    x = tm.tensor(np.array(X0, dtype=dtype))
    h = tm.tensor(eps_grid.astype(dtype))  # every ε at once: one tensor op, no loop
    f_x, f_plus, f_minus = (backend.to_numpy(t.data).astype(np.float64) for t in (f(x), f(x + h), f(x - h)))
    name = np.dtype(dtype).name
    curves[name, "forward"] = np.abs((f_plus - f_x) / eps_grid - EXACT) / abs(EXACT)
    curves[name, "central"] = np.abs((f_plus - f_minus) / (2 * eps_grid) - EXACT) / abs(EXACT)

best = {}
for (name, scheme), err in curves.items():
    i = int(err.argmin())
    best[name, scheme] = (eps_grid[i], err[i])
    print(f"{name:7s} {scheme:7s}: best relative error {err[i]:.1e} at eps = {eps_grid[i]:.0e}")


def slope(name, scheme, lo, hi):
    """Slope of log(error) against log(eps) between eps = lo and hi (the order of the error)."""
    keep = (eps_grid >= lo) & (eps_grid <= hi)
    return np.polyfit(np.log10(eps_grid[keep]), np.log10(curves[name, scheme][keep]), 1)[0]


print(f"float64 slopes for eps in [1e-4, 1e-2]: forward {slope('float64', 'forward', 1e-4, 1e-2):.2f}, "
      f"central {slope('float64', 'central', 1e-4, 1e-2):.2f}")
assert abs(slope("float64", "forward", 1e-4, 1e-2) - 1) < 0.1   # O(eps)
assert abs(slope("float64", "central", 1e-4, 1e-2) - 2) < 0.1   # O(eps^2)
assert best["float64", "central"][1] < 1e-9 < best["float64", "forward"][1] < 1e-7
assert 1e-7 <= best["float64", "central"][0] <= 1e-4 and best["float64", "forward"][0] < 1e-7
assert best["float32", "central"][1] > 1e-5 and best["float32", "forward"][1] > 1e-4
assert curves["float32", "central"][eps_grid < 1e-8].min() == 1.0  # x + eps == x: the slope is 0

# float32 numbers next to 0.5 are 6e-8 apart, so x + eps rounds back to x when eps is below half that
gap = float(np.spacing(np.float32(X0)))
x32 = np.float32(X0)
print(f"float32 gap at x = {X0}: {gap:.2e}; x + 0.45*gap == x: {x32 + np.float32(0.45 * gap) == x32}, "
      f"x + 0.55*gap == x: {x32 + np.float32(0.55 * gap) == x32}")
assert x32 + np.float32(0.45 * gap) == x32 and x32 + np.float32(0.55 * gap) != x32

# %%
fig, ax = plt.subplots(figsize=(7.5, 5))
colours = {"float32": "tab:red", "float64": "tab:blue"}
for (name, scheme), err in curves.items():
    ax.loglog(eps_grid, np.maximum(err, 1e-16), "-" if scheme == "central" else "--",
              color=colours[name], marker="o" if scheme == "central" else "s", ms=3,
              label=f"{name}, {scheme} difference")
guide1, guide2 = np.array([1e-7, 1e-5]), np.array([1e-3, 1e-1])  # reference slopes, in empty space
ax.loglog(guide1, 0.01 * guide1, "k-", lw=1)
ax.loglog(guide2, 0.01 * guide2**2, "k-", lw=1)
ax.text(1.5e-6, 3e-9, "slope 1", fontsize=8, ha="left", va="top")
ax.text(1.5e-2, 4e-7, "slope 2", fontsize=8, ha="left", va="top")
ax.annotate("float32: x + ε rounds back to x,\nso the difference is exactly 0", xy=(3e-10, 1.0),
            xytext=(3e-12, 3e-2), fontsize=8, arrowprops=dict(arrowstyle="->", color="0.4"))
ax.annotate("rounding error ≈ ε_mach / ε\n(rises as ε shrinks)", xy=(1e-12, 4e-4), xytext=(1e-13, 1e-8),
            fontsize=8, arrowprops=dict(arrowstyle="->", color="0.4"))
ax.set(xlabel="step ε", ylabel="relative error of the numerical derivative",
       title="Finite differences: truncation error falls with ε, rounding error rises",
       ylim=(1e-13, 3))
ax.legend(fontsize=8, loc="lower right")
ax.grid(True, which="major", alpha=0.3)
save_figure(fig, "03_error_vs_eps.png")

# %% [markdown]
# Read the figure from right to left. At large ε the truncation error dominates: the dashed
# forward curves fall with slope 1, the solid central curves with slope 2. Then rounding takes
# over and the error climbs again with slope −1. In float32 (red) it climbs much sooner, and
# below ε ≈ 3e-8 the sum $x + \varepsilon$ rounds back to $x$: the numerical derivative is 0
# and the relative error is exactly 1. Why 3e-8? Near 0.5, neighbouring float32 numbers are
# 6e-8 apart, and (lesson 01) a sum is rounded to the *nearest* float32, so anything less than
# half the gap is lost.
#
# The numbers, from the run above: in float64 the central difference reaches about **1e-11**
# (at ε ≈ 3e-6), the forward difference about **2e-9** (at ε ≈ 2e-8). In float32 the best
# central difference is about **3e-5**, and only at one well-chosen ε.
#
# So tinymm checks gradients with **central differences in float64 at ε = 1e-6**, on the flat
# bottom of the blue V, where a correct backward scores around 1e-10 and the choice of ε
# hardly matters.
#
# ## 2. Comparing two gradients: the relative error
#
# A gradient is an array. How close is close enough? An absolute difference of 1e-6 is
# excellent for a gradient of size 100 and terrible for one of size 1e-6. So compare each
# element relative to its size, with the formula the Stanford cs231n course uses:
#
# $$\text{rel}(a, n) = \max_i \frac{|a_i - n_i|}{\max(10^{-8},\ |a_i| + |n_i|)}$$
#
# ($a$ analytic, $n$ numerical). The floor $10^{-8}$ avoids 0/0 where both are zero. Rough
# guide, in float64: above 1e-2 the backward is wrong; 1e-7 and below is right; in between,
# look closer (a kink such as ReLU at 0 inside $[x-\varepsilon, x+\varepsilon]$, or a real bug
# on a few elements). A backward off by just 1% scores $0.01/2.01 \approx 5\times10^{-3}$.
#
# Four pairs below: nearly equal (5e-11), 1% apart (5e-3), two tiny values 20% apart (judged
# against the floor, so 2e-2 rather than 0.1), and two exact zeros (0, not 0/0).

# %%
analytic = np.array([1.0, -2.0, 1e-9, 0.0])
numeric = np.array([1.0 + 1e-10, -2.02, 1.2e-9, 0.0])
print("elementwise relative error:", relative_error(analytic, numeric))
one_percent = relative_error(np.array([1.0]), np.array([1.01]))[0]
print(f"1% apart: {one_percent:.2e}")
assert abs(one_percent - 0.01 / 2.01) < 1e-12

# %% [markdown]
# ## 3. Checking a whole op: `tinymm.gradcheck.gradcheck`
#
# For an op $y = f(x)$ with an array output, backward computes a vector–Jacobian product:
# given an upstream gradient $G = \partial L/\partial y$ it returns $\partial L/\partial x$.
# So the check needs a scalar. `gradcheck` (in `tinymm/gradcheck.py`) makes one by
# **projecting** the output onto a fixed random $G$ with the output's shape:
#
# $$L(x) = \sum_j f(x)_j\, G_j .$$
#
# It runs backward once with upstream $G$, then nudges every element of every input that
# requires grad by ±ε (central differences, ε = 1e-6, float64), and compares with the relative
# error. It raises a `GradcheckError` if the worst element is above `tol` (default 1e-6), and
# returns a report naming the worst element.

# %%
rng = np.random.default_rng(0)
x_data, W_data = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))


def log_sum_exp_layer(x, W):
    return (x @ W).exp().sum(axis=1).log()


report = gradcheck(log_sum_exp_layer,
                   [tm.tensor(x_data, requires_grad=True), tm.tensor(W_data, requires_grad=True)])
print(report)
assert report.passed and report.max_rel_error < 1e-7

# %% [markdown]
# ### Why float64, again
#
# `gradcheck` refuses float32 inputs. The cell below shows why: it does the same check by hand
# in float32, for a correct backward and for one scaled by 1.01 (1% wrong), at three step
# sizes. In float32 the correct backward's score depends on ε far more than on the bug. At
# ε = 1e-4 it is about 1e-1, as bad as the 1%-wrong one. At ε = 1e-3 it is about 1e-2, *worse*
# than the wrong one scores in float64. Only at ε = 1e-2 does it drop to about 3e-4, some 16
# times below the wrong one: a gap, but one you find only if you already know which ε to use.
# In float64 at ε = 1e-6 the gap is five orders of magnitude (about 2e-8 against 5e-3).

# %%
try:
    gradcheck(log_sum_exp_layer,
              [tm.tensor(x_data.astype(np.float32)), tm.tensor(W_data.astype(np.float32), requires_grad=True)])
except TypeError as err:
    print("TypeError:", err)
else:
    raise AssertionError("gradcheck must refuse float32 inputs")

float_scores = {}
for dtype, eps in [(np.float32, 1e-4), (np.float32, 1e-3), (np.float32, 1e-2), (np.float64, 1e-6)]:
    x_t, W_t = tm.tensor(x_data.astype(dtype)), tm.tensor(W_data.astype(dtype), requires_grad=True)
    out = log_sum_exp_layer(x_t, W_t)
    G = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(G.astype(dtype))
    a = backend.to_numpy(W_t.grad).astype(np.float64)
    n = numerical_gradient(log_sum_exp_layer, [x_t, W_t], 1, G, eps)
    correct, wrong = relative_error(a, n).max(), relative_error(1.01 * a, n).max()
    float_scores[np.dtype(dtype).name, eps] = (correct, wrong)
    print(f"{np.dtype(dtype).name}, eps {eps:.0e}: correct backward {correct:.1e}, 1% wrong backward {wrong:.1e}")

assert min(v[0] for k, v in float_scores.items() if k[0] == "float32") > 1e-4
# correct in float32 at eps 1e-3 scores worse than 1% wrong in float64
assert float_scores["float32", 1e-3][0] > float_scores["float64", 1e-6][1]
assert float_scores["float64", 1e-6][0] < 1e-7 < 1e-3 < float_scores["float64", 1e-6][1]
assert float_scores["float32", 1e-4][0] > 0.5 * float_scores["float32", 1e-4][1]  # no gap at all
assert float_scores["float32", 1e-2][0] < 0.1 * float_scores["float32", 1e-2][1]  # a gap, at this ε only
assert float_scores["float64", 1e-6][1] > 1e4 * float_scores["float64", 1e-6][0]

# %% [markdown]
# ## 4. Every op, one table: `python -m tinymm gradcheck`
#
# tinymm keeps one table of op specifications, `OP_SPECS` in `tinymm/opspecs.py`. Each row
# says how to call an op and how to draw its inputs, *away from kinks*: `positive` values for
# `log` and division, `distinct` values (no ties) for `max`, `away_from_zero` for ReLU. At a
# kink the ±ε nudge straddles two slopes and neither gradient is "right". Every op added to
# tinymm gets rows there, and two things run the whole table: the test
# `tests/test_gradcheck_table.py` and the command `python -m tinymm gradcheck`.

# %%
spec = OP_SPECS[1]
print(f"{len(OP_SPECS)} rows; for example {spec.name!r}: input shapes {spec.shapes()}, tolerance {spec.tol:.0e}")


def run_cli(*args):
    """Run `python -m tinymm ARGS` in this process; return (exit code, what it printed)."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = tinymm_cli(list(args))
    return code, captured.getvalue()


code, output = run_cli("gradcheck")
print("$ python -m tinymm gradcheck")
print(output)
assert code == 0, "every op in the table passes its gradient check"
row_errors = [float(line.split()[-2]) for line in output.splitlines() if line.rstrip().endswith(" ok")]
print(f"{len(row_errors)} rows, worst relative error {max(row_errors):.1e}")
assert len(row_errors) == len(OP_SPECS) and max(row_errors) < 1e-6

# %% [markdown]
# Every row passes, most with errors around 1e-9, far below the tolerance of 1e-7 that each row
# of the table sets (`gradcheck` called without `tol` uses 1e-6). Does the check have teeth? The
# command can break one Function on purpose: `--break Mul` multiplies `Mul.backward`'s answer
# by 1.01. Every row whose gradient goes through a `Mul` should now fail. If it goes through one
# `Mul`, the error is $0.01/2.01 \approx 5\times10^{-3}$.

# %%
code, output = run_cli("gradcheck", "--break", "Mul")
print("$ python -m tinymm gradcheck --break Mul")
print("\n".join(line for line in output.splitlines() if any(w in line for w in ("FAIL", "deliberately", "passed"))))
failed_rows = [line for line in output.splitlines() if line.rstrip().endswith("FAIL")]
mul_rows = [line for line in failed_rows if line.startswith("mul")]
assert code == 1 and len(mul_rows) >= 2, "a 1% error in Mul.backward is caught"
assert all(4e-3 < float(line.split()[-2]) < 6e-3 for line in mul_rows)  # 0.01 / 2.01
clip_rows = [line for line in failed_rows if line.startswith("clip_loss")]
assert len(clip_rows) == 2 and all(abs(float(line.split()[-2]) - 0.0201 / 2.0201) < 1e-4 for line in clip_rows)

# %% [markdown]
# The two `clip_loss` rows fail at about twice that, 9.95e-3. Every gradient of `clip_loss`
# (lesson 11) passes through **two** multiplications in a row: the logits $e^{s}\cdot IT^\top$,
# and the $\tfrac12$ that averages its two directions. Each scales the gradient by 1.01, so the
# gradient is off by $1.01^2 = 1.0201$, and $0.0201/2.0201 \approx 9.95\times10^{-3}$. A bug in
# an op is multiplied by every use of that op along the way.

# %% [markdown]
# ## 5. The trap: checking a softmax by summing its output
#
# A tempting shortcut: to check an op with an array output, sum the output and check the
# gradient of that scalar, comparing with `np.allclose`. Two well-known teaching frameworks do
# exactly this, and you can read it in their code. DeZero (the framework of the book *Deep
# Learning from Scratch 3*, repository `oreilly-japan/deep-learning-from-scratch-3`): its
# `gradient_check` in `dezero/utils.py` calls `y.backward()`, which seeds the output with ones,
# and its `numerical_grad` takes `(y1 - y2).sum()`; `tests/test_softmax.py` checks `F.softmax`
# with it. minitorch (`minitorch/minitorch`): `grad_check` in `minitorch/tensor_functions.py`
# runs `out.sum().backward()` and compares with central differences of `f(...).sum()`;
# `tests/test_nn.py` checks `softmax` with it. Apply the shortcut to the softmax,
#
# $$y_i = \frac{e^{x_i}}{\sum_k e^{x_k}} .$$
#
# Every row of a softmax sums to 1, *whatever* $x$ is. So $\sum_i y_i$ is a constant, and its
# true gradient is **exactly zero**. A backward that returns zeros is then "correct", and so
# is any backward whose errors happen to sum to zero. The check cannot fail.
#
# First, the fact itself, with a softmax written from basic ops (exp, sum, div):

# %%
def softmax_from_basic_ops(x):
    e = (x - x.max(axis=-1, keepdims=True)).exp()  # subtracting the max avoids overflow
    return e / e.sum(axis=-1, keepdims=True)


x_soft = np.random.default_rng(2).standard_normal((3, 4))
x = tm.tensor(x_soft, requires_grad=True)
y = softmax_from_basic_ops(x)
y.sum().backward()
print("row sums of softmax:", backend.to_numpy(y.sum(axis=-1).data))
print("largest |d sum(softmax) / dx| by autograd:", f"{np.abs(backend.to_numpy(x.grad)).max():.1e}")
assert np.allclose(backend.to_numpy(y.sum(axis=-1).data), 1.0)
assert np.abs(backend.to_numpy(x.grad)).max() < 1e-15

# %% [markdown]
# Now a softmax as one Function, with its backward derived by hand. The Jacobian of one row is
# $\partial y_i/\partial x_j = y_i(\delta_{ij} - y_j)$, so for an upstream gradient $g$
#
# $$\frac{\partial L}{\partial x_j} = \sum_i g_i\, y_i(\delta_{ij} - y_j) = y_j\Big(g_j - \sum_i g_i y_i\Big).$$
#
# And a copy with a deliberately broken backward that returns zeros.

# %%
class LessonSoftmax(Function):
    """out = softmax(x) along the last axis.   dx = y * (g - sum(g * y, last axis))."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, g):
        y = self.y
        return (y * (g - (g * y).sum(axis=-1, keepdims=True)),)


class ZeroGradSoftmax(LessonSoftmax):
    """The same forward; a broken backward that returns zeros."""

    def backward(self, g):
        xp = backend.get_array_module(g)
        return (xp.zeros_like(self.y),)


def sum_check(function, x_array, eps=1e-6):
    """THE TRAP: check d sum(function(x)) / dx against finite differences with np.allclose."""
    x = tm.tensor(x_array.copy(), requires_grad=True)
    function(x).sum().backward()
    analytic = backend.to_numpy(x.grad)
    numeric = numerical_gradient(lambda t: function(t).sum(), [x], 0, np.array(1.0), eps)
    return np.allclose(analytic, numeric, rtol=1e-4, atol=1e-5), analytic, numeric


def projected_check(function, x_array):
    """tinymm's way: project onto a random upstream gradient (gradcheck); True if it passes."""
    try:
        gradcheck(function, [tm.tensor(x_array.copy(), requires_grad=True)])
        return True
    except GradcheckError as err:
        print("  GradcheckError:", str(err).splitlines()[0])
        return False


results = {}
for name, function in [("correct backward", LessonSoftmax.apply), ("zeroed backward", ZeroGradSoftmax.apply),
                       ("basic ops", softmax_from_basic_ops)]:
    passed_sum, analytic, numeric = sum_check(function, x_soft)
    print(f"{name}: sum-check {'passes' if passed_sum else 'FAILS'} "
          f"(largest |numeric| {np.abs(numeric).max():.0e}, relative error {relative_error(analytic, numeric).max():.1e})")
    passed_projected = projected_check(function, x_soft)
    print(f"{name}: projected check {'passes' if passed_projected else 'FAILS'}")
    results[name] = (passed_sum, passed_projected)

assert results["zeroed backward"] == (True, False), "the sum-check is fooled; the projected check is not"
assert results["correct backward"] == (True, True) and results["basic ops"] == (True, True)

# %% [markdown]
# The summed check passes the zeroed backward. Even its relative error is no help: both
# gradients are zero up to rounding noise (about 2e-10), so the ratio measures noise, and the
# correct and the broken backward score the same. With a random projection, the true gradient
# is far from zero and the zeroed backward fails with relative error 1.0, the largest there is.
#
# The picture below puts the two checks side by side: each point is one element of the
# gradient, numerical (x axis) against backprop (y axis). A correct backward lies on the
# diagonal.

# %%
G = np.random.default_rng(0).standard_normal(x_soft.shape)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
for ax, (title, upstream) in zip(axes, [("checked by summing the output", np.ones_like(x_soft)),
                                        ("checked with a random projection G", G)]):
    numeric = numerical_gradient(LessonSoftmax.apply, [tm.tensor(x_soft.copy(), requires_grad=True)], 0,
                                 upstream, 1e-6)
    for label, cls, style in [
            ("correct backward", LessonSoftmax, dict(marker="o", s=60, fc="none", ec="tab:blue")),
            ("zeroed backward", ZeroGradSoftmax, dict(marker="x", s=40, c="tab:red"))]:
        xt = tm.tensor(x_soft.copy(), requires_grad=True)
        cls.apply(xt).backward(upstream)
        ax.scatter(numeric.ravel(), backend.to_numpy(xt.grad).ravel(), label=label, **style)
    lim = max(np.abs(numeric).max(), 1e-9) * 1.3
    ax.plot([-lim, lim], [-lim, lim], ":", color="0.5", lw=1, label="analytic = numerical")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="numerical gradient", ylabel="backprop gradient",
           title=title)
    ax.ticklabel_format(style="sci", scilimits=(-3, 3))
    if lim < 1e-6:
        ax.text(0.97, 0.03, "every value here is rounding noise (~1e-10)", transform=ax.transAxes,
                ha="right", fontsize=8, color="0.3")
    ax.legend(fontsize=8, loc="upper left")
fig.suptitle("Softmax: a zeroed backward hides in the summed check (left), not in the projected one (right)")
fig.tight_layout()
save_figure(fig, "03_softmax_trap.png")

# %% [markdown]
# On the left every point sits at (0, 0) up to noise of 1e-10: nothing to see, for either
# backward. On the right the correct backward lies on the diagonal and the zeroed one on the
# horizontal axis. The same blind spot exists for L2-normalised vectors (lesson 09: their
# norms are all 1, so the sum of the norms is constant too). That is why every check in tinymm
# uses a random projection, and checks every input.
#
# ## Recap
#
# - A numerical derivative by central differences has error O(ε²) (forward: O(ε)), plus a
#   rounding error ≈ ε_mach/ε. The sum is a V on a log-log plot.
# - In float64 at ε = 1e-6 a correct backward scores between about 1e-11 and 5e-8 in relative
#   error (most rows of the table near 1e-9), a 1%-wrong one 5e-3. In float32 a correct backward
#   scores anywhere from 3e-4 to 1e-1 depending on ε, and only a well-chosen ε keeps it clearly
#   below the 1%-wrong one. Check in float64, train in float32.
# - Relative error: $\max_i |a_i - n_i| / \max(10^{-8}, |a_i| + |n_i|)$; a 1% bug scores 5e-3.
# - `gradcheck(fn, inputs)` projects the output onto a random upstream gradient and checks every
#   input that requires grad; `python -m tinymm gradcheck` runs it on every row of
#   `tinymm/opspecs.py`, and `--break Mul` shows it failing.
# - Never check by summing the output: for a softmax the true gradient of the sum is zero, so a
#   zeroed backward passes.
#
# ## Exercises
#
# 1. **A higher-order difference.** The five-point formula
#    $\frac{-f(x+2\varepsilon) + 8f(x+\varepsilon) - 8f(x-\varepsilon) + f(x-2\varepsilon)}{12\varepsilon}$
#    has error O(ε⁴). Add it to the V plot. Where is its best ε, and how low does it go?
#    *Hint:* balance ε⁴ against ε_mach/ε.
# 2. **A quieter bug.** Change `LessonSoftmax.backward` so that it forgets the
#    $-\sum_i g_i y_i$ term (returns `y * g`). Does the summed check catch it? Does gradcheck?
#    *Hint:* with $g = 1$, what is $\sum_i g_i y_i$?
# 3. **Kinks.** Gradcheck `lambda x: x.max(axis=1)` on an input with two equal values in a row,
#    then on `distinct` values from `tinymm/opspecs.py`. *Hint:* nudging one of two tied values
#    up or down changes which one is the maximum.
