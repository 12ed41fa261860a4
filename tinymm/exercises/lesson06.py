"""Lesson 06's coded exercises: im2col and col2im, conv2d, max-pool.

The references are adapters that run tinymm's own code (``_im2col_array``/``_col2im_array``,
``Conv2d``, ``MaxPool2d``) on the learner's arrays; the wrong versions below
are the mistakes the checker must catch.

Kernel size, stride and padding are settings, not arrays. ``op_exercise`` hands every input
over as an array, so the cases draw them as 0-d integer arrays, and ``_WithIntSettings``
gives them to the learner's functions as the plain ints the stub's docstring promises.
"""
import numpy as np

from ..autograd import Function, Tensor
from ..functional.conv import (Conv2d, MaxPool2d, _col2im_array, _im2col_array, _offset_view, _offsets,
                               _pool_args)
from ..gradcheck import gradcheck
from ..opspecs import distinct
from .core import Exercise, Finding, Wrong, _untouched, call_learner, count_lines, worst, wrong_layout, axis_order
from .opcheck import _check_unchanged, op_exercise

STUB = "06_conv2d.py"
REREAD_IM2COL = "lesson 06, sections 2 (im2col: the whole convolution as one matrix product) and 3 (col2im)"
REREAD_CONV = "lesson 06, sections 2 (im2col) and 3 (the backward pass: two matrix products and col2im)"
REREAD_POOL = "lesson 06, section 4 (max pooling: the gradient goes to the winner)"


# ----------------------------------------------------------------------------------------------
# Settings as ints


def _int(value):
    """A 0-d integer array -> a Python int; anything else unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        return int(value)
    return value


class _IntSettings:
    """One learner function, called with its 0-d integer arrays turned into Python ints.

    ``__code__`` is the learner's own, so ``count_lines`` counts the lines of their file and
    ``call_learner`` quotes their line when it fails."""

    def __init__(self, fn):
        self.fn = fn
        self.__code__ = fn.__code__

    def __call__(self, *args):
        return self.fn(*(_int(a) for a in args))


class _WithIntSettings:
    """The learner's module (or the reference's namespace) as op_exercise should see it."""

    def __init__(self, impl):
        self._impl = impl

    def __getattr__(self, name):
        fn = getattr(self._impl, name)
        return _IntSettings(fn) if hasattr(fn, "__code__") else fn


def _settings_as_ints(exercise, before=None):
    """Make ``exercise`` (from op_exercise) call the learner with int settings; ``before(impl)``
    runs first (e.g. to say that a function this exercise needs is not written yet)."""
    check = exercise.check

    def wrapped(impl):
        if before is not None:
            before(impl)
        return check(_WithIntSettings(impl))

    exercise.check = wrapped
    return exercise


# ----------------------------------------------------------------------------------------------
# im2col and col2im (a check of its own: two functions that are each other's adjoint)


def _pair(k):
    return (int(k), int(k))


def reference_im2col(x, kh, kw, stride, padding):
    return _im2col_array(x, (int(kh), int(kw)), _pair(stride), _pair(padding))


def reference_col2im(cols, x_shape, kh, kw, stride, padding):
    return _col2im_array(cols, tuple(int(s) for s in x_shape), (int(kh), int(kw)), _pair(stride), _pair(padding))


# (x shape, KH, KW, stride, padding): overlapping patches with padding; a non-square kernel with
# stride 2; patches that tile the image exactly (no overlap, no padding)
IM2COL_CASES = [((2, 3, 5, 4), 3, 3, 1, 1), ((2, 2, 7, 6), 3, 2, 2, 1), ((1, 2, 4, 4), 2, 2, 2, 0)]


def _case_name(shape, kh, kw, stride, padding):
    return f"x {shape}, kernel {kh}x{kw}, stride {stride}, padding {padding}"


def _out_hw(shape, kh, kw, stride, padding):
    return (shape[2] + 2 * padding - kh) // stride + 1, (shape[3] + 2 * padding - kw) // stride + 1


def _describe_entry(index, shape, kh, kw, stride, padding):
    """What row r, column q of cols stand for, in the lesson's words."""
    r, q = index
    ho, wo = _out_hw(shape, kh, kw, stride, padding)
    c, i, j = r // (kh * kw), (r // kw) % kh, r % kw
    n, y, x = q // (ho * wo), (q // wo) % ho, q % wo
    return (f"row {r} = channel {c} at kernel offset ({i}, {j}); column {q} = image {n}, output "
            f"position ({y}, {x}), which sees padded pixel ({y * stride + i}, {x * stride + j})")


def _check_im2col_case(impl, x, setting, where):
    shape, kh, kw, stride, padding = setting
    given = x.copy()
    cols = call_learner("im2col", impl.im2col, given, kh, kw, stride, padding)
    _check_unchanged("im2col", ("x",), (x,), (given,), REREAD_IM2COL)
    if cols is None:
        raise Finding(f"im2col returned None: did you forget `return cols`? Reread {REREAD_IM2COL}.")
    cols = np.asarray(cols)
    ref = reference_im2col(x, kh, kw, stride, padding)
    if cols.shape != ref.shape:
        raise Finding(f"im2col returned shape {cols.shape}, but cols should have shape {ref.shape} "
                      f"(C·KH·KW rows, N·H_out·W_out columns){where}. Reread {REREAD_IM2COL}.")
    if not np.allclose(cols, ref, rtol=1e-12, atol=1e-12):
        error, index, a, b = worst(cols, ref)
        axes = (shape[1], kh, kw, shape[0]) + _out_hw(shape, kh, kw, stride, padding)
        layout = wrong_layout(cols, ref, axes, ("C", "KH", "KW", "N", "H_out", "W_out"))
        order = axis_order(cols, ref, axes) if layout else None
        if order is not None and order.index(3) < order.index(0):  # N before C
            layout += " A strided slice comes out (N, C, H_out, W_out): move C in front of N before flattening."
        raise Finding(f"im2col differs from tinymm's{where}: at {index} yours is {a:.6g}, tinymm's {b:.6g} "
                      f"({_describe_entry(index, shape, kh, kw, stride, padding)}).{layout} Reread {REREAD_IM2COL}.")


def _check_col2im_case(impl, x, setting, where):
    shape, kh, kw, stride, padding = setting
    rng = np.random.default_rng(3)
    ref_cols_shape = reference_im2col(x, kh, kw, stride, padding).shape
    cols = rng.standard_normal(ref_cols_shape)
    given = cols.copy()
    image = call_learner("col2im", impl.col2im, given, shape, kh, kw, stride, padding)
    _check_unchanged("col2im", ("cols",), (cols,), (given,), REREAD_IM2COL)
    if image is None:
        raise Finding(f"col2im returned None: did you forget a `return`? Reread {REREAD_IM2COL}.")
    image = np.asarray(image)
    ref = reference_col2im(cols, shape, kh, kw, stride, padding)
    if image.shape != ref.shape:
        raise Finding(f"col2im returned shape {image.shape}, but it should give back the image's shape "
                      f"{ref.shape}{where}: cut the padding off. Reread {REREAD_IM2COL}.")
    if np.allclose(image, ref, rtol=1e-10, atol=1e-12):
        return
    # a telling input: every entry 1. tinymm's col2im then counts each pixel's copies
    ones = np.ones(ref_cols_shape)
    copies = reference_col2im(ones, shape, kh, kw, stride, padding)
    mine = np.asarray(call_learner("col2im", impl.col2im, ones.copy(), shape, kh, kw, stride, padding))
    if copies.max() > 1 and mine.shape == copies.shape and np.array_equal(mine, (copies > 0).astype(mine.dtype)):
        raise Finding(f"col2im must add overlapping contributions{where}: where patches overlap, a pixel was "
                      f"copied into several columns, so it gets the SUM of their entries. With every entry of "
                      f"cols equal to 1, tinymm's col2im gives up to {copies.max():.0f} (the number of patches "
                      f"that hold the pixel) but yours gives at most {mine.max():.0f}: it assigns (=) where it "
                      f"should add (+=). Reread {REREAD_IM2COL}.")
    error, index, a, b = worst(image, ref)
    zeros = " Yours is all zeros." if not image.any() else ""
    raise Finding(f"col2im differs from tinymm's{where}: relative error {error:.1e} at pixel {index} (yours "
                  f"{a:.6g}, tinymm's {b:.6g}).{zeros} Reread {REREAD_IM2COL}.")


def _gradcheck_col2im(impl, x, setting, where):
    """tinymm.gradcheck of an op whose forward is tinymm's im2col and backward the learner's col2im."""
    shape, kh, kw, stride, padding = setting

    class LearnerIm2Col(Function):
        def forward(self, x):
            return reference_im2col(x, kh, kw, stride, padding)

        def backward(self, g):
            return np.asarray(call_learner("col2im", impl.col2im, g.copy(), shape, kh, kw, stride, padding))

    report = gradcheck(lambda t: LearnerIm2Col.apply(t), [Tensor(x.copy(), requires_grad=True)],
                       eps=1e-4, tol=1e-7, name="col2im", raise_on_failure=False)
    if not report.passed:  # _check_col2im_case found equality with tinymm's, so this is a checker bug
        raise AssertionError(f"col2im equals tinymm's but fails the gradient check: {report}")
    return report.max_rel_error


def _check_dtype_and_loops(impl):
    shape, kh, kw, stride, padding = IM2COL_CASES[0]
    x32 = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    cols = np.asarray(call_learner("im2col", impl.im2col, x32.copy(), kh, kw, stride, padding))
    image = np.asarray(call_learner("col2im", impl.col2im, cols.copy(), shape, kh, kw, stride, padding))
    for slot, out in (("im2col", cols), ("col2im", image)):
        if out.dtype != np.float32:
            raise Finding(f"{slot} returned {out.dtype} for float32 inputs: keep the input's dtype (np.zeros and "
                          f"np.empty make float64 unless given dtype=x.dtype).")
    counts = {}
    for n in (2, 5):
        x = np.random.default_rng(0).standard_normal((n,) + shape[1:])
        cols = reference_im2col(x, kh, kw, stride, padding)
        counts.setdefault("im2col", []).append(count_lines("im2col", impl.im2col, x, kh, kw, stride, padding))
        counts.setdefault("col2im", []).append(
            count_lines("col2im", impl.col2im, cols, x.shape, kh, kw, stride, padding))
    for slot, (small, large) in counts.items():
        if large > small:
            raise Finding(f"{slot} loops over the batch in Python: it runs {small} lines of your file for a batch "
                          f"of 2 and {large} for a batch of 5. Loop over the KH·KW kernel offsets only, each "
                          f"one strided slice of the whole batch. Reread {REREAD_IM2COL}.")


# what each of IM2COL_CASES tests, in words, in the same order
IM2COL_CASE_WORDS = ("overlapping 3x3 patches with padding", "a non-square 3x2 kernel at stride 2",
                     "2x2 patches that do not overlap")


def _check_im2col(impl):
    passed = []
    try:
        return _run_im2col_checks(impl, passed)
    except Finding as finding:
        finding.passed = passed + finding.passed  # e.g. a failing col2im after a passing im2col
        raise


def _run_im2col_checks(impl, passed):
    errors = []
    for setting in IM2COL_CASES:
        x = np.random.default_rng(0).standard_normal(setting[0])
        _check_im2col_case(impl, x, setting, f" (case: {_case_name(*setting)})")
    passed.append(f"im2col equals tinymm's and leaves x unchanged ({len(IM2COL_CASES)} cases: "
                  f"{'; '.join(IM2COL_CASE_WORDS)})")
    for setting in IM2COL_CASES:
        x = np.random.default_rng(0).standard_normal(setting[0])
        where = f" (case: {_case_name(*setting)})"
        _check_col2im_case(impl, x, setting, where)
        errors.append(_gradcheck_col2im(impl, x, setting, where))
    passed.append("col2im equals tinymm's, adds overlapping contributions and leaves cols unchanged")
    passed.append(f"col2im is im2col's backward: gradients match finite differences, max relative error "
                  f"{max(errors):.1e}")
    _check_dtype_and_loops(impl)
    passed.append("float32 stays float32; no Python loop over the batch")
    return passed


# wrong versions of im2col / col2im


def _im2col_off_by_one(x, kh, kw, stride, padding):
    # the window starts one pixel to the right: every patch shifted
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding + 1)))
    return reference_im2col(padded[:, :, :, 1:], kh, kw, stride, 0)


def _im2col_in_place(x, kh, kw, stride, padding):
    x[:, :, 0, 0] = 0  # "clean up" a corner of the caller's image
    return reference_im2col(x, kh, kw, stride, padding)


def _im2col_n_before_c(x, kh, kw, stride, padding):
    # each strided slice (N, C, H_out, W_out) stored without moving C in front of N
    n, c, h, w = x.shape
    ho, wo = _out_hw(x.shape, kh, kw, stride, padding)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, kh, kw, c, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = padded[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
    return cols.reshape(c * kh * kw, n * ho * wo)


def _im2col_wrong_order(x, kh, kw, stride, padding):
    # columns ordered (y, x, n) instead of (n, y, x)
    cols = reference_im2col(x, kh, kw, stride, padding)
    n = x.shape[0]
    return cols.reshape(cols.shape[0], n, -1).transpose(0, 2, 1).reshape(cols.shape)


def _col2im_assigns(cols, x_shape, kh, kw, stride, padding):
    n, c, h, w = x_shape
    ho, wo = _out_hw(x_shape, kh, kw, stride, padding)
    blocks = cols.reshape(c, kh, kw, n, ho, wo)
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride] = \
                blocks[:, i, j].transpose(1, 0, 2, 3)  # = where it should be +=
    return padded[:, :, padding:padding + h, padding:padding + w]


def _col2im_zeros(cols, x_shape, kh, kw, stride, padding):
    return np.zeros(x_shape, dtype=cols.dtype)


def _col2im_scaled(cols, x_shape, kh, kw, stride, padding):
    return 1.01 * reference_col2im(cols, x_shape, kh, kw, stride, padding)


def _col2im_keeps_padding(cols, x_shape, kh, kw, stride, padding):
    n, c, h, w = x_shape
    padded = (n, c, h + 2 * padding, w + 2 * padding)
    return reference_col2im(cols, padded, kh, kw, stride, 0)


def _col2im_loops(cols, x_shape, kh, kw, stride, padding):
    out = np.zeros(x_shape, dtype=cols.dtype)
    per_image = cols.shape[1] // x_shape[0]
    for n in range(x_shape[0]):
        out[n:n + 1] = reference_col2im(cols[:, n * per_image:(n + 1) * per_image], (1,) + tuple(x_shape[1:]),
                                        kh, kw, stride, padding)
    return out


def _im2col_float64(x, kh, kw, stride, padding):
    return reference_im2col(x.astype(np.float64), kh, kw, stride, padding)


IM2COL = Exercise(
    name="im2col", lesson="06", title="im2col and its adjoint col2im (stride, padding, overlaps)",
    stub=STUB, slots=("im2col", "col2im"), reread=REREAD_IM2COL, check=_check_im2col,
    reference={"im2col": reference_im2col, "col2im": reference_col2im},
    answer=(_im2col_array, _col2im_array),
    wrong=[
        Wrong("im2col off by one pixel", {"im2col": _im2col_off_by_one},
              ("im2col differs from tinymm's", "kernel offset", "lesson 06, sections 2")),
        Wrong("im2col columns in the wrong order", {"im2col": _im2col_wrong_order},
              ("im2col differs from tinymm's", "output position")),
        Wrong("im2col with N and C swapped", {"im2col": _im2col_n_before_c},
              ("im2col differs from tinymm's", "Right numbers, wrong layout", "transpose before reshape",
               "move C in front of N")),
        Wrong("im2col edits x in place", {"im2col": _im2col_in_place}, ("im2col changed its input x in place",)),
        Wrong("im2col makes float64 from float32", {"im2col": _im2col_float64},
              ("im2col returned float64 for float32 inputs",)),
        Wrong("col2im assigns instead of adding", {"col2im": _col2im_assigns},
              ("col2im must add overlapping contributions", "assigns (=) where it should add (+=)")),
        Wrong("col2im returns zeros", {"col2im": _col2im_zeros}, ("col2im differs from tinymm's", "all zeros")),
        Wrong("col2im scaled by 1.01", {"col2im": _col2im_scaled}, ("col2im differs from tinymm's", "relative error")),
        Wrong("col2im keeps the padding", {"col2im": _col2im_keeps_padding},
              ("col2im returned shape", "cut the padding off")),
        Wrong("col2im loops over the batch", {"col2im": _col2im_loops}, ("col2im loops over the batch",)),
    ])


# ----------------------------------------------------------------------------------------------
# conv2d forward and backward


def _conv(x, W, b, stride, padding):
    fn = Conv2d()
    fn.needs_input_grad = (True, True, True)
    return fn, fn.forward(x, W, b, stride=_pair(_int(stride)), padding=_pair(_int(padding)))


def conv2d_forward(x, W, b, stride, padding):
    return _conv(x, W, b, stride, padding)[1]


def conv2d_backward(g, x, W, b, stride, padding):
    fn, _ = _conv(x, W, b, stride, padding)
    return fn.backward(g)


def _conv_padded(rng, n):
    return (rng.standard_normal((n, 2, 5, 4)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3),
            np.array(1), np.array(1))


def _conv_strided(rng, n):
    # a non-square kernel, stride 2: the last column of the padded input fits no window
    return (rng.standard_normal((n, 2, 6, 5)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3),
            np.array(2), np.array(1))


def _needs_im2col_first(impl):
    """conv2d uses the learner's im2col and col2im: say so if they are not written yet."""
    if not hasattr(impl, "im2col") or _untouched(impl, "conv2d_forward") and _untouched(impl, "conv2d_backward"):
        return
    for slot in ("im2col", "col2im"):
        if _untouched(impl, slot):
            raise Finding(f"conv2d_forward and conv2d_backward use your {slot}, which is not written yet: do "
                          f"that exercise first (python -m tinymm check im2col).")
    setting = IM2COL_CASES[0]
    x = np.random.default_rng(0).standard_normal(setting[0])
    try:
        _check_im2col_case(impl, x, setting, "")
        _check_col2im_case(impl, x, setting, "")
    except Finding as finding:
        raise Finding(f"conv2d_forward and conv2d_backward use your im2col and col2im, which do not pass their "
                      f"own exercise yet: run python -m tinymm check im2col first. It says: {finding}") from None


def _conv_scaled(g, x, W, b, stride, padding):
    return tuple(1.01 * d for d in conv2d_backward(g, x, W, b, stride, padding))


def _conv_zero_dW(g, x, W, b, stride, padding):
    dx, dW, db = conv2d_backward(g, x, W, b, stride, padding)
    return dx, np.zeros_like(dW), db


def _conv_dW_transposed(g, x, W, b, stride, padding):
    dx, dW, db = conv2d_backward(g, x, W, b, stride, padding)
    return dx, dW.transpose(1, 0, 2, 3), db  # (C, C_out, KH, KW): the weight matrix transposed


def _conv_db_not_summed(g, x, W, b, stride, padding):
    dx, dW, db = conv2d_backward(g, x, W, b, stride, padding)
    return dx, dW, g.sum(axis=(2, 3))  # summed over the pixels but not over the batch


def _conv_dx_assigns(g, x, W, b, stride, padding):
    dx, dW, db = conv2d_backward(g, x, W, b, stride, padding)
    kh, kw = W.shape[2:]
    dcols = W.reshape(W.shape[0], -1).T @ g.transpose(1, 0, 2, 3).reshape(W.shape[0], -1)
    return _col2im_assigns(dcols, x.shape, kh, kw, stride, padding), dW, db


def _conv_forward_off_by_one(x, W, b, stride, padding):
    return conv2d_forward(np.roll(x, 1, axis=3), W, b, stride, padding)


def _conv_forward_reshaped_only(x, W, b, stride, padding):
    # out_mat (C_out, N·H_out·W_out) reshaped straight to (N, C_out, H_out, W_out): no transpose
    out = conv2d_forward(x, W, b, stride, padding)
    return out.transpose(1, 0, 2, 3).reshape(out.shape)


def _conv_backward_in_place(g, x, W, b, stride, padding):
    grads = conv2d_backward(g, x, W, b, stride, padding)
    g *= 0  # "free" the upstream gradient: but it belongs to the caller
    return grads


def _conv_backward_loops(g, x, W, b, stride, padding):
    dx = np.zeros_like(x)
    for n in range(len(x)):
        dx[n:n + 1] = conv2d_backward(g[n:n + 1], x[n:n + 1], W, b, stride, padding)[0]
    _, dW, db = conv2d_backward(g, x, W, b, stride, padding)
    return dx, dW, db


CONV2D = _settings_as_ints(op_exercise(
    name="conv2d", lesson="06", title="conv2d forward (W_mat @ cols) and backward (dx by col2im, dW, db)",
    stub=STUB, reread=REREAD_CONV, forward="conv2d_forward", backward="conv2d_backward",
    inputs=("x", "W", "b", "stride", "padding"), grads=("x", "W", "b"),
    cases={"stride 1, padding 1": _conv_padded, "stride 2, padding 1, a 3x2 kernel": _conv_strided},
    reference_forward=conv2d_forward, reference_backward=conv2d_backward, answer=(Conv2d,),
    batch=2, eps=1e-4, grad_tol=1e-7,  # conv is linear in each input: a larger step, no truncation error
    out_axes=("N", "C_out", "H_out", "W_out"),
    hints={"b": "b was added at every output position of every image, so db sums g over N, H_out and W_out.",
           "W": "dW has W's layout (C_out, C, KH, KW): reshape dW_mat = g_mat colsᵀ back to it."},
    wrong=[
        Wrong("backward scaled by 1.01", {"conv2d_backward": _conv_scaled},
              ("gradients for x, W and b are wrong", "ratio 1.01", "Every gradient (dx, dW and db) is 1.01× off",
               "lesson 06, sections 2")),
        Wrong("dW zeroed", {"conv2d_backward": _conv_zero_dW}, ("the gradient for W is wrong, x and b are right", "all zeros")),
        Wrong("dW transposed", {"conv2d_backward": _conv_dW_transposed},
              ("returned dW with shape (2, 3, 3, 3)", "W has shape (3, 2, 3, 3)", "W's layout")),
        Wrong("db not summed over the batch", {"conv2d_backward": _conv_db_not_summed},
              ("returned db with shape (2, 3)", "sums g over N, H_out and W_out")),
        Wrong("dx by a col2im that assigns", {"conv2d_backward": _conv_dx_assigns}, ("gradient for x is wrong",)),
        Wrong("forward off by one pixel", {"conv2d_forward": _conv_forward_off_by_one},
              ("conv2d_forward differs from tinymm's",)),
        Wrong("forward reshaped without reordering the axes", {"conv2d_forward": _conv_forward_reshaped_only},
              ("conv2d_forward differs from tinymm's", "Right numbers, wrong layout", "transpose before reshape")),
        Wrong("backward zeroes g in place", {"conv2d_backward": _conv_backward_in_place},
              ("conv2d_backward changed its input g in place",)),
        Wrong("loop over the batch", {"conv2d_backward": _conv_backward_loops},
              ("conv2d_backward loops over the batch",)),
    ]), before=_needs_im2col_first)


# ----------------------------------------------------------------------------------------------
# max-pool forward and backward


def _pool(x, kernel, stride):
    fn = MaxPool2d()
    fn.needs_input_grad = (True,)
    kernel, stride, out_hw = _pool_args(x, _int(kernel), _int(stride), "max_pool2d")
    return fn, fn.forward(x, kernel=kernel, stride=stride, out_hw=out_hw)


def max_pool2d_forward(x, kernel, stride):
    return _pool(x, kernel, stride)[1]


def max_pool2d_backward(g, x, kernel, stride):
    fn, _ = _pool(x, kernel, stride)
    return fn.backward(g)


def _pool_2x2(rng, n):
    # an odd size: the last row and column fit no window and are dropped. Values at least
    # 0.05 apart, so no window has a tie (finite differences would straddle two winners)
    return distinct(n, 2, 5, 7)(rng), np.array(2), np.array(2)


def _pool_overlapping(rng, n):
    return distinct(n, 2, 7, 6)(rng), np.array(3), np.array(2)


def _diagnose_pool(name, mine, reference, arrays, mine_all=None, ref_all=None):
    """Compare where the learner's gradient lands with where tinymm's does."""
    x, kernel, stride = arrays
    winners = max_pool2d_backward(np.ones(max_pool2d_forward(x, kernel, stride).shape), x, kernel, stride) != 0
    reached = np.asarray(mine) != 0
    if mine.shape != x.shape:
        return None
    if (reached & ~winners).sum() > 0 and reached.sum() > winners.sum():
        return ("Your gradient reaches pixels that are not the maximum of any window: max-pool routes each "
                "window's g to its winner only, 0 everywhere else (that spreading is average pooling).")
    if reached.sum() == winners.sum() and (reached != winners).any():
        return ("Your gradient goes to one pixel per window, but not always to the window's maximum: check "
                "how the winner's offset (i, j) inside the window becomes a pixel position.")
    if (reached == winners).all() and int(kernel) > int(stride):
        return ("It lands on the right pixels with the wrong values: where windows overlap, a pixel that wins "
                "several windows gets the sum of their gradients (+=, not =).")
    return None


def _pool_route(g, x, kernel, stride, winner_of, add=True):
    """dx with each window's g written to the offset ``winner_of(views, out)`` names."""
    kernel, stride = int(kernel), int(stride)
    out = max_pool2d_forward(x, kernel, stride)
    views = [_offset_view(x, i, j, out.shape[2:], (stride, stride)) for i, j in _offsets((kernel, kernel))]
    winner = winner_of(np.stack(views), out)
    dx = np.zeros_like(x)
    for k, (i, j) in enumerate(_offsets((kernel, kernel))):
        target = _offset_view(dx, i, j, out.shape[2:], (stride, stride))
        if add:
            target += g * (winner == k)
        else:
            target[winner == k] = g[winner == k]
    return dx


def _pool_scaled(g, x, kernel, stride):
    return 1.01 * max_pool2d_backward(g, x, kernel, stride)


def _pool_zeroed(g, x, kernel, stride):
    return np.zeros_like(x)


def _pool_spread(g, x, kernel, stride):
    # g shared by every pixel of the window, as average pooling would do
    kernel, stride = int(kernel), int(stride)
    dx = np.zeros_like(x)
    for i, j in _offsets((kernel, kernel)):
        _offset_view(dx, i, j, g.shape[2:], (stride, stride))[...] += g / kernel ** 2
    return dx


def _pool_wrong_offset(g, x, kernel, stride):
    # the winner's number k = i·K + j read back as (j, i): row and column swapped inside the window
    k = int(kernel)
    swap = np.array([j * k + i for i, j in _offsets((k, k))])
    return _pool_route(g, x, kernel, stride, lambda views, out: swap[(views == out).argmax(axis=0)])


def _pool_assigns(g, x, kernel, stride):
    return _pool_route(g, x, kernel, stride, lambda views, out: (views == out).argmax(axis=0), add=False)


def _pool_forward_off_by_one(x, kernel, stride):
    return max_pool2d_forward(np.roll(x, -1, axis=3), kernel, stride)


def _pool_backward_in_place(g, x, kernel, stride):
    dx = max_pool2d_backward(g, x, kernel, stride)
    x[...] = 0  # the caller's input
    return dx


def _pool_loops(g, x, kernel, stride):
    dx = np.zeros_like(x)
    for n in range(len(x)):
        dx[n:n + 1] = max_pool2d_backward(g[n:n + 1], x[n:n + 1], kernel, stride)
    return dx


def _pool_ties_shared(g, x, kernel, stride):
    # every tied maximum gets the whole g: right without ties, wrong at a tie
    kernel, stride = int(kernel), int(stride)
    out = max_pool2d_forward(x, kernel, stride)
    dx = np.zeros_like(x)
    for i, j in _offsets((kernel, kernel)):
        target = _offset_view(dx, i, j, out.shape[2:], (stride, stride))
        target += g * (_offset_view(x, i, j, out.shape[2:], (stride, stride)) == out)
    return dx


# lesson 06, section 4's example: a tie 4 = 4 and windows where all four entries are equal
TIES = np.array([[[[1.0, 3.0, 0.0, 0.0], [2.0, 0.0, 4.0, 4.0], [5.0, 5.0, 7.0, 7.0], [5.0, 5.0, 7.0, 7.0]]]])


def _check_ties(impl):
    g = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    mine = np.asarray(call_learner("max_pool2d_backward", impl.max_pool2d_backward, g.copy(), TIES.copy(), 2, 2))
    ref = max_pool2d_backward(g, TIES, np.array(2), np.array(2))
    if mine.shape != ref.shape or not np.array_equal(mine, ref):
        raise Finding(f"max_pool2d_backward breaks ties differently from tinymm: for lesson 06's example "
                      f"(upstream 10, 20, 30, 40) yours gives {mine.reshape(-1).tolist()} and tinymm "
                      f"{ref.reshape(-1).tolist()}. When several entries share the maximum, the FIRST of them in "
                      f"row-major order inside the window gets the whole gradient (what argmax picks). "
                      f"Reread {REREAD_POOL}.")
    return "ties: the first maximum in row-major order gets the whole gradient, as in tinymm"


MAX_POOL2D = _settings_as_ints(op_exercise(
    name="max_pool2d", lesson="06", title="max-pool forward and backward (route g to each window's winner)",
    stub="06_max_pool2d.py", reread=REREAD_POOL, forward="max_pool2d_forward", backward="max_pool2d_backward",
    inputs=("x", "kernel", "stride"), grads=("x",),
    cases={"2x2 windows on a 5x7 image": _pool_2x2, "3x3 windows, stride 2 (they overlap)": _pool_overlapping},
    reference_forward=max_pool2d_forward, reference_backward=max_pool2d_backward, answer=(MaxPool2d,),
    batch=2, eps=1e-4, grad_tol=1e-7, diagnose=_diagnose_pool, extra_checks=(_check_ties,),
    wrong=[
        Wrong("backward scaled by 1.01", {"max_pool2d_backward": _pool_scaled},
              ("gradient for x is wrong", "ratio 1.01", "lesson 06, section 4")),
        Wrong("backward zeroed", {"max_pool2d_backward": _pool_zeroed}, ("gradient for x is wrong", "all zeros")),
        Wrong("gradient spread over the window", {"max_pool2d_backward": _pool_spread},
              ("gradient for x is wrong", "not the maximum of any window")),
        Wrong("gradient to the wrong offset", {"max_pool2d_backward": _pool_wrong_offset},
              ("gradient for x is wrong", "not always to the window's maximum")),
        Wrong("overlapping wins assigned, not added", {"max_pool2d_backward": _pool_assigns},
              ("gradient for x is wrong (case: 3x3 windows", "sum of their gradients")),
        Wrong("forward off by one pixel", {"max_pool2d_forward": _pool_forward_off_by_one},
              ("max_pool2d_forward differs from tinymm's",)),
        Wrong("backward zeroes x in place", {"max_pool2d_backward": _pool_backward_in_place},
              ("max_pool2d_backward changed its input x in place",)),
        Wrong("loop over the batch", {"max_pool2d_backward": _pool_loops},
              ("max_pool2d_backward loops over the batch",)),
        Wrong("every tied maximum gets g", {"max_pool2d_backward": _pool_ties_shared},
              ("breaks ties differently", "FIRST of them in row-major order")),
    ]))
