"""Convolution and pooling (tinymm/functional/conv.py), checked against plain Python loops.

The references below loop over every output pixel and say what each op means in the most
literal way; the library must give the same numbers, and its backward passes must agree
with finite differences.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymm as tm
import tinymm.functional as F
from tinymm import backend
from tinymm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson06

# conv and pooling are linear in each input (max-pool piecewise, away from ties), so central
# differences have no truncation error and a larger step only reduces rounding error
EPS, TOL = 1e-4, 1e-7


def leaf(array, device=None):
    """A float tensor that requires grad, on the device under test unless ``device`` is given."""
    return tm.tensor(np.array(array), requires_grad=True, device=device)


# ----------------------------------------------------------------------------------------------
# Reference implementations: one output value at a time


def conv_reference(x, w, b, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    xpad = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xpad[:, :, ph:ph + h, pw:pw + wd] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c_out, ho, wo))
    for i in range(n):
        for o in range(c_out):
            for y in range(ho):
                for z in range(wo):
                    patch = xpad[i, :, y * sh:y * sh + kh, z * sw:z * sw + kw]
                    out[i, o, y, z] = (patch * w[o]).sum() + (0.0 if b is None else b[o])
    return out


def pool_reference(x, kernel, stride, reduce):
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, c, ho, wo))
    for y in range(ho):
        for z in range(wo):
            out[:, :, y, z] = reduce(x[:, :, y * sh:y * sh + kh, z * sw:z * sw + kw], axis=(2, 3))
    return out


def im2col_reference(x, kh, kw, stride, padding):
    """Column n·H_out·W_out + y·W_out + z holds the patch at (y, z) of image n, flattened (c, i, j)."""
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = []
    for i in range(n):
        for y in range(ho):
            for z in range(wo):
                cols.append(xpad[i, :, y * stride:y * stride + kh, z * stride:z * stride + kw].reshape(-1))
    return np.stack(cols, axis=1)


def _pair(v):
    return (v, v) if isinstance(v, int) else v


# ----------------------------------------------------------------------------------------------
# Forward: same numbers as the loops


@pytest.mark.parametrize("stride", [1, 2, (2, 1)])
@pytest.mark.parametrize("padding", [0, 1, (0, 2)])
def test_conv2d_matches_loops_non_square(stride, padding):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    out = F.conv2d(tm.tensor(x), tm.tensor(w), tm.tensor(b), stride=stride, padding=padding)
    expected = conv_reference(x, w, b, _pair(stride), _pair(padding))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def test_conv2d_without_bias_float32_matches_loops():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((3, 2, 9, 8)).astype(np.float32), rng.standard_normal((5, 2, 1, 4)).astype(np.float32)
    out = F.conv2d(tm.tensor(x), tm.tensor(w), stride=2, padding=1)
    assert out.dtype == np.float32
    expected = conv_reference(x.astype(np.float64), w.astype(np.float64), None, (2, 2), (1, 1))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), c_out=st.integers(1, 3), h=st.integers(1, 7),
       w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 2))
def test_conv2d_matches_loops_on_drawn_shapes(n, c, c_out, h, w, kh, kw, stride, padding):
    if kh > h + 2 * padding or kw > w + 2 * padding:
        return  # too small for the kernel: the error tests below cover that
    rng = np.random.default_rng(h * 10 + w)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((c_out, c, kh, kw)), rng.standard_normal(c_out)
    out = F.conv2d(tm.tensor(x), tm.tensor(wt), tm.tensor(b), stride=stride, padding=padding)
    np.testing.assert_allclose(out.numpy(), conv_reference(x, wt, b, (stride,) * 2, (padding,) * 2), atol=1e-12)


POOLS = [(2, None), (3, 2), (2, 1), (3, 3), (2, 3), ((2, 3), (1, 2))]


@pytest.mark.parametrize("kernel, stride", POOLS)
def test_max_pool2d_matches_loops_odd_sizes(kernel, stride):
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 5))
    out = F.max_pool2d(tm.tensor(x), kernel, stride)
    expected = pool_reference(x, _pair(kernel), _pair(stride if stride is not None else kernel), np.max)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("kernel, stride", POOLS)
def test_avg_pool2d_matches_loops_odd_sizes(kernel, stride):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 5))
    out = F.avg_pool2d(tm.tensor(x), kernel, stride)
    expected = pool_reference(x, _pair(kernel), _pair(stride if stride is not None else kernel), np.mean)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)


def test_odd_sizes_floor_like_pytorch():
    x = tm.tensor(np.arange(2 * 7 * 5, dtype=np.float64).reshape(1, 2, 7, 5))
    assert F.max_pool2d(x, 2).shape == (1, 2, 3, 2)          # last row and column dropped
    assert F.avg_pool2d(x, 3, stride=2).shape == (1, 2, 3, 2)
    assert F.conv2d(x, tm.tensor(np.ones((1, 2, 3, 3))), stride=2).shape == (1, 1, 3, 2)
    np.testing.assert_array_equal(F.max_pool2d(x, 2).numpy()[0, 0], [[6, 8], [16, 18], [26, 28]])


def test_global_avg_pool2d_and_upsample_match_numpy():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(F.global_avg_pool2d(tm.tensor(x)).numpy(), x.mean(axis=(2, 3)), atol=1e-15)
    up = F.upsample_nearest2d(tm.tensor(x), scale_factor=3).numpy()
    assert up.shape == (2, 3, 12, 15)
    np.testing.assert_array_equal(up, x.repeat(3, axis=2).repeat(3, axis=3))


def test_im2col_layout_matches_loops():
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 6))
    cols = F.im2col(tm.tensor(x), 3, 2, stride=2, padding=1)
    expected = im2col_reference(x, 3, 2, 2, 1)
    assert cols.shape == expected.shape == (3 * 3 * 2, 2 * 3 * 4)
    np.testing.assert_array_equal(cols.numpy(), expected)


# ----------------------------------------------------------------------------------------------
# Backward: gradient checks in float64


def test_gradcheck_conv2d_stride2_pad1_non_square():
    rng = np.random.default_rng(6)
    inputs = [leaf(rng.standard_normal((2, 3, 5, 4))), leaf(rng.standard_normal((2, 3, 3, 2))),
              leaf(rng.standard_normal(2))]
    report = gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), inputs, eps=EPS, tol=TOL)
    assert len(report.checks) == 3 and report.max_rel_error < TOL


def test_gradcheck_conv2d_mixed_stride_and_padding_without_bias():
    rng = np.random.default_rng(7)
    inputs = [leaf(rng.standard_normal((1, 2, 6, 5))), leaf(rng.standard_normal((3, 2, 2, 3)))]
    gradcheck(lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=(1, 0)), inputs, eps=EPS, tol=TOL)


def distinct_values(shape, seed):
    """Values 0.05 apart in random order: no two tie for a maximum, even after a nudge."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.05 - n * 0.025).reshape(shape)


@pytest.mark.parametrize("kernel, stride, shape", [(2, 2, (2, 2, 5, 7)), (3, 2, (2, 2, 7, 6)), (2, 1, (1, 2, 4, 5))])
def test_gradcheck_max_pool2d(kernel, stride, shape):
    x = leaf(distinct_values(shape, seed=8))
    gradcheck(lambda t: F.max_pool2d(t, kernel, stride), [x], eps=EPS, tol=TOL)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), ((2, 3), 1)])
def test_gradcheck_avg_pool2d(kernel, stride):
    x = leaf(np.random.default_rng(9).standard_normal((2, 2, 5, 7)))
    gradcheck(lambda t: F.avg_pool2d(t, kernel, stride), [x], eps=EPS, tol=TOL)


def test_gradcheck_global_avg_pool2d_and_upsample():
    rng = np.random.default_rng(10)
    gradcheck(F.global_avg_pool2d, [leaf(rng.standard_normal((2, 3, 3, 4)))], eps=EPS, tol=TOL)
    gradcheck(lambda t: F.upsample_nearest2d(t, 2), [leaf(rng.standard_normal((2, 3, 3, 4)))], eps=EPS, tol=TOL)
    gradcheck(lambda t: F.upsample_nearest2d(t, 3), [leaf(rng.standard_normal((1, 2, 2, 3)))], eps=EPS, tol=TOL)


def test_gradcheck_im2col_and_col2im():
    rng = np.random.default_rng(11)
    gradcheck(lambda t: F.im2col(t, 3, 2, stride=2, padding=1), [leaf(rng.standard_normal((1, 2, 5, 4)))],
              eps=EPS, tol=TOL)
    gradcheck(lambda c: F.col2im(c, (1, 2, 5, 4), 3, 2, stride=2, padding=1), [leaf(rng.standard_normal((12, 9)))],
              eps=EPS, tol=TOL)


def test_conv2d_gradients_only_where_asked():
    rng = np.random.default_rng(12)
    x = tm.tensor(rng.standard_normal((2, 3, 6, 6)))  # an image batch: no gradient wanted
    w = leaf(rng.standard_normal((4, 3, 3, 3)))
    (F.conv2d(x, w, padding=1) ** 2).sum().backward()
    assert x.grad is None and w.grad.shape == (4, 3, 3, 3)


def test_conv2d_backward_twice_with_retain_graph_gives_the_same_gradients():
    # the last backward drops the saved columns early; a retained graph must keep them
    rng = np.random.default_rng(13)
    x, w = leaf(rng.standard_normal((2, 3, 5, 5))), leaf(rng.standard_normal((4, 3, 3, 3)))
    y = (F.conv2d(x, w, padding=1) ** 2).sum()
    y.backward(retain_graph=True)
    first = (x.grad.copy(), w.grad.copy())
    y.backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), backend.to_numpy(2 * first[0]), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(w.grad), backend.to_numpy(2 * first[1]), rtol=1e-12)


def test_conv2d_backward_never_holds_the_columns_and_their_gradient_together():
    import tracemalloc

    rng = np.random.default_rng(14)
    # host memory, as tracemalloc sees it: this one runs on the CPU
    x = leaf(rng.standard_normal((8, 8, 16, 16)).astype(np.float32), device="cpu")
    w = leaf(rng.standard_normal((8, 8, 3, 3)).astype(np.float32), device="cpu")
    columns_bytes = 8 * 9 * 8 * 16 * 16 * 4           # (C·KH·KW, N·H·W) float32
    tracemalloc.start()  # before forward, so that freeing the columns is counted too
    try:
        out = F.conv2d(x, w, padding=1)
        g = np.ones(out.shape, dtype=np.float32)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out.backward(g)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # the columns (made in forward) are freed before their gradient is made, so backward
    # adds only the small padded image on top; holding both would add a columns' worth
    assert peak < 0.5 * columns_bytes, (peak, columns_bytes)


# ----------------------------------------------------------------------------------------------
# Max-pool routing and its tie rule


def test_max_pool_routes_gradient_to_the_maximum():
    x = leaf(np.array([[[[1.0, 3.0, 0.0, 0.0],
                         [2.0, 0.0, 0.0, 5.0]]]]))
    F.max_pool2d(x, 2).backward(np.array([[[[10.0, 20.0]]]]))
    np.testing.assert_array_equal(backend.to_numpy(x.grad)[0, 0], [[0, 10, 0, 0], [0, 0, 0, 20]])


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2)])
def test_max_pool_tie_sends_whole_gradient_to_first_position(kernel, stride):
    # every window is all 7s: the first entry of each window (row-major) gets all of g
    x = leaf(np.full((1, 1, 5, 5), 7.0))
    out = F.max_pool2d(x, kernel, stride)
    g = np.arange(1.0, out.size + 1).reshape(out.shape)
    out.backward(g)
    expected = np.zeros((5, 5))
    for y in range(out.shape[2]):
        for z in range(out.shape[3]):
            expected[y * stride, z * stride] += g[0, 0, y, z]
    np.testing.assert_array_equal(backend.to_numpy(x.grad)[0, 0], expected)


def test_max_pool_tie_inside_a_window_picks_first_in_row_major_order():
    # the maximum 5 appears at (0, 1) and (1, 0) of the window: (0, 1) comes first
    x = leaf(np.array([[[[1.0, 5.0], [5.0, 2.0]]]]))
    F.max_pool2d(x, 2).backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(backend.to_numpy(x.grad)[0, 0], [[0, 1], [0, 0]])


def test_overlapping_windows_sum_their_gradients_at_a_shared_maximum():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the centre pixel lies in all four 3x3 stride-2 windows
    t = leaf(x)
    F.max_pool2d(t, 3, stride=2).backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert t.grad[0, 0, 2, 2] == 10.0 and t.grad.sum() == 10.0


# ----------------------------------------------------------------------------------------------
# col2im is the adjoint of im2col


@pytest.mark.parametrize("kernel, stride, padding", [((3, 3), 1, 1), ((3, 2), 2, 1), ((2, 2), 2, 0), ((1, 3), 3, 2)])
def test_col2im_is_the_adjoint_of_im2col(kernel, stride, padding):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 7, 6))
    cols_x = F.im2col(tm.tensor(x), *kernel, stride=stride, padding=padding).numpy()
    c = rng.standard_normal(cols_x.shape)
    back = F.col2im(tm.tensor(c), x.shape, *kernel, stride=stride, padding=padding).numpy()
    # <col2im(c), x> == <c, im2col(x)>
    assert abs((back * x).sum() - (c * cols_x).sum()) < 1e-12 * max(1.0, abs((c * cols_x).sum()))


# ----------------------------------------------------------------------------------------------
# dtypes


def test_float32_stays_float32_forward_and_backward():
    rng = np.random.default_rng(14)
    x = tm.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    w = tm.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    b = tm.tensor(np.zeros(4, np.float32), requires_grad=True)
    h = F.conv2d(x, w, b, padding=1)
    outs = [h, F.max_pool2d(h, 2), F.max_pool2d(h, 3, stride=2), F.avg_pool2d(h, 2),
            F.global_avg_pool2d(h), F.upsample_nearest2d(h, 2), F.im2col(h, 3, 3)]
    assert all(o.dtype == np.float32 for o in outs)
    total = outs[0].sum()
    for o in outs[1:]:
        total = total + o.sum()
    total.backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# Errors name the op and the offending shapes or dtypes


def test_conv2d_channel_mismatch_message():
    x, w = tm.zeros(8, 4, 32, 32), tm.zeros(16, 3, 3, 3)
    with pytest.raises(ValueError) as err:
        F.conv2d(x, w)
    assert str(err.value) == ("conv2d: input has 4 channels but weight expects 3 "
                              "(input (8, 4, 32, 32), weight (16, 3, 3, 3))")


@pytest.mark.parametrize("x_shape, w_shape, needle", [
    ((3, 32, 32), (16, 3, 3, 3), "expected an input of shape (N, C, H, W), got shape (3, 32, 32)"),
    ((8, 3, 32, 32), (16, 3, 3), "expected a weight of shape (C_out, C_in, KH, KW), got shape (16, 3, 3)"),
    ((1, 3, 4, 4), (2, 3, 5, 5), "kernel 5x5 is larger than the padded input 4x4"),
])
def test_conv2d_shape_errors(x_shape, w_shape, needle):
    with pytest.raises(ValueError, match="conv2d") as err:
        F.conv2d(tm.zeros(*x_shape), tm.zeros(*w_shape))
    assert needle in str(err.value)


def test_conv2d_kernel_fits_once_padded():
    assert F.conv2d(tm.zeros(1, 3, 4, 4), tm.zeros(2, 3, 5, 5), padding=1).shape == (1, 2, 2, 2)


def test_conv2d_bias_shape_and_dtype_errors():
    x, w = tm.zeros(2, 3, 8, 8), tm.zeros(16, 3, 3, 3)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(16,\).*got \(3,\)"):
        F.conv2d(x, w, tm.zeros(3))
    with pytest.raises(TypeError, match="conv2d: input and weight need the same floating-point dtype, "
                                        "got input float32 and weight float64"):
        F.conv2d(x, tm.zeros(16, 3, 3, 3, dtype=np.float64))
    with pytest.raises(TypeError, match="conv2d: bias is float64 but weight is float32"):
        F.conv2d(x, w, tm.zeros(16, dtype=np.float64))


@pytest.mark.parametrize("kwargs, error, needle", [
    (dict(stride=0), ValueError, "conv2d: stride must be at least 1, got 0"),
    (dict(padding=-1), ValueError, "conv2d: padding must be at least 0, got -1"),
    (dict(stride=1.5), TypeError, "conv2d: stride must be an int or a pair of ints, got 1.5"),
    (dict(padding=(1, 2, 3)), TypeError, "conv2d: padding must be an int or a pair of ints"),
])
def test_conv2d_bad_stride_or_padding(kwargs, error, needle):
    with pytest.raises(error) as err:
        F.conv2d(tm.zeros(1, 3, 8, 8), tm.zeros(4, 3, 3, 3), **kwargs)
    assert needle in str(err.value)


def test_pooling_and_upsampling_errors():
    x = tm.zeros(2, 3, 5, 5)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel 6x6 is larger than the padded input 5x5"):
        F.max_pool2d(x, 6)
    with pytest.raises(ValueError, match=r"avg_pool2d: expected an input of shape \(N, C, H, W\), "
                                         r"got shape \(3, 5, 5\)"):
        F.avg_pool2d(tm.zeros(3, 5, 5), 2)
    with pytest.raises(ValueError, match="max_pool2d: kernel_size must be at least 1, got 0"):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="global_avg_pool2d: expected an input of shape"):
        F.global_avg_pool2d(tm.zeros(2, 3))
    with pytest.raises(ValueError, match="upsample_nearest2d: scale_factor must be a positive integer, got 1.5"):
        F.upsample_nearest2d(x, 1.5)
    with pytest.raises(ValueError, match="upsample_nearest2d: scale_factor must be a positive integer, got 0"):
        F.upsample_nearest2d(x, 0)


def test_col2im_rejects_columns_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"col2im: columns have shape \(10, 9\) but an image of shape "
                                         r"\(1, 2, 5, 4\).*needs \(12, 9\)"):
        F.col2im(tm.zeros(10, 9), (1, 2, 5, 4), 3, 2, stride=2, padding=1)
