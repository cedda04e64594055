"""Linear and convolution kernels with per-row weight exponents against direct integer loops
(tintin.numerics.scale_rows): forward, input error, and the all-zero exponents that must give the
per-tensor bits."""

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from _conv_naive import conv_acc, conv_input_error_acc  # noqa: E402
from test_conv_ops import geometries, make  # noqa: E402
from tintin.numerics import QTensor, Scale, ScaleMode, rescale  # noqa: E402
from tintin.numerics.scale_rows import row_exp_limit  # noqa: E402
from tintin.ops import linear_backward_input_s8, linear_forward_s8  # noqa: E402
from tintin.ops.conv import conv2d_backward_input_s8, conv2d_forward_s8, conv1d_forward_s8  # noqa: E402
from tintin.ops.linear import align_bias  # noqa: E402


def nearest(v, s):
    v, s = np.asarray(v, dtype=object), np.asarray(s, dtype=object)
    f = np.frompyfunc(lambda a, b: a if b == 0 else ((abs(a) + (1 << (b - 1))) >> b) * (1 if a >= 0 else -1), 2, 1)
    return f(v, s)


def qrand(rng, shape, scale):
    return QTensor(rng.integers(-127, 128, size=shape).astype(np.int8), scale)


@given(b=st.integers(1, 6), k=st.integers(1, 40), n=st.integers(1, 30), seed=st.integers(0, 2**31),
       mode=st.sampled_from(list(ScaleMode)), bias=st.booleans())
def test_linear_with_row_exponents_equals_the_definition(b, k, n, seed, mode, bias):
    rng = np.random.default_rng(seed)
    x, w, err = qrand(rng, (b, k), Scale(-7)), qrand(rng, (n, k), Scale(-8, 1, 2)), qrand(rng, (b, n), Scale(-9))
    e = rng.integers(0, row_exp_limit(n) + 1, size=n).astype(np.int8)
    bq = QTensor(rng.integers(-(2**20), 2**20, size=n).astype(np.int32), Scale(-20)) if bias else None
    # forward: acc[b, r] (int64) shifted right by e[r] (nearest), + aligned bias, rescaled
    acc = x.m.astype(np.int64) @ w.m.astype(np.int64).T
    aligned = nearest(acc, e[None, :]).astype(np.int64)
    if bias:
        aligned = aligned + align_bias(bq, x.scale * w.scale)
    q, s = rescale(aligned.astype(np.int32), x.scale * w.scale, 8, mode)
    y = linear_forward_s8(x, w, bq, mode, e)
    assert np.array_equal(y.m, q) and y.scale == s
    # input error: sum_r (err[b, r] << (E - e[r])) * w[r, k], at s_e * s_w * 2**-E
    top = int(e.max())
    acc = (err.m.astype(np.int64) << (top - e.astype(np.int64))) @ w.m.astype(np.int64)
    assert np.abs(acc).max() <= 2**30
    q, s = rescale(acc.astype(np.int32), (err.scale * w.scale).shifted(-top), 8, mode)
    ein = linear_backward_input_s8(err, w, mode, e)
    assert np.array_equal(ein.m, q) and ein.scale == s
    # all-zero exponents: the per-tensor kernels' bits
    z = np.zeros(n, np.int8)
    y0, y1 = linear_forward_s8(x, w, bq, mode, z), linear_forward_s8(x, w, bq, mode)
    assert np.array_equal(y0.m, y1.m) and y0.scale == y1.scale
    e0, e1 = linear_backward_input_s8(err, w, mode, z), linear_backward_input_s8(err, w, mode)
    assert np.array_equal(e0.m, e1.m) and e0.scale == e1.scale


def test_linear_input_error_at_the_row_limit_stays_within_the_bound():
    n, k = 200, 3
    e = np.zeros(n, np.int8)
    e[0] = row_exp_limit(n)  # every other row's error is shifted left by the limit
    err = QTensor(np.full((1, n), -127, np.int8), Scale(0))
    w = QTensor(np.full((n, k), 127, np.int8), Scale(0))
    got = linear_backward_input_s8(err, w, ScaleMode.POW2, e)
    exact = -127 * 127 * ((n - 1) * 2 ** int(e[0]) + 1)
    assert abs(exact) <= 2**30  # the documented bound: n * 127 * 127 * 2**limit <= 2**30
    q, s = rescale(np.full((1, k), exact, np.int64), Scale(-int(e[0])), 8, ScaleMode.POW2)
    assert np.array_equal(got.m, q) and got.scale == s


@given(g=geometries(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
def test_conv_with_row_exponents_equals_the_definition(g, seed, mode):
    rng = np.random.default_rng(seed)
    x, w, bias, err = make(rng, g)
    args = (g["stride"], g["padding"], g["groups"])
    e = rng.integers(0, 6, size=g["cout"]).astype(np.int8)
    acc = nearest(conv_acc(x.m, w.m, *args), e[None, :, None, None]).astype(np.int64)
    acc = acc + align_bias(bias, x.scale * w.scale)[None, :, None, None]
    q, s = rescale(acc.astype(np.int32), x.scale * w.scale, 8, mode)
    y = conv2d_forward_s8(x, w, bias, *args, mode, None, e)
    assert np.array_equal(y.m, q) and y.scale == s
    top = int(e.max())
    shifted = err.m.astype(np.int64) << (top - e.astype(np.int64))[None, :, None, None]
    acc = conv_input_error_acc(shifted, w.m, g["hw"], *args)
    q, s = rescale(acc.astype(np.int32), (err.scale * w.scale).shifted(-top), 8, mode)
    ein = conv2d_backward_input_s8(err, w, g["hw"], *args, mode, e)
    assert np.array_equal(ein.m, q) and ein.scale == s
    z = np.zeros(g["cout"], np.int8)
    assert np.array_equal(conv2d_forward_s8(x, w, bias, *args, mode, None, z).m,
                          conv2d_forward_s8(x, w, bias, *args, mode).m)
    assert np.array_equal(conv2d_backward_input_s8(err, w, g["hw"], *args, mode, z).m,
                          conv2d_backward_input_s8(err, w, g["hw"], *args, mode).m)


def test_conv1d_passes_the_row_exponents():
    rng = np.random.default_rng(3)
    x, w = qrand(rng, (2, 3, 9), Scale(-7)), qrand(rng, (4, 3, 3), Scale(-8))
    e = np.array([0, 2, 5, 1], np.int8)
    y1 = conv1d_forward_s8(x, w, None, 1, 1, 1, ScaleMode.COMPOUND, None, e)
    y2 = conv2d_forward_s8(QTensor(x.m[:, :, None, :], x.scale), QTensor(w.m[:, :, None, :], w.scale), None,
                           (1, 1), (0, 1), 1, ScaleMode.COMPOUND, None, e)
    assert np.array_equal(y1.m, y2.m[:, :, 0, :]) and y1.scale == y2.scale
