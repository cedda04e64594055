"""Every kernel variant that compiled programs call, on its own, against the Python reference over
random shapes and values: the unrolled fully connected kernels (x4), im2col and scatter convolution,
one-byte max-pool offsets (idx8), 1-bit ReLU masks, gradients of selected rows (rows), the fast bias
update, the zero-skipping weight update (skip0) and the row-tiled update (tiled). The cases are the
ones the plain kernels are tested with."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_runtime_cnn_ops import conv_case, pool_case
from test_runtime_ops import MODES, linear_case, same
from test_runtime_sgd import ROUNDINGS, assert_same, python_step, update_case
from tintin.numerics import QTensor, Rounding, Scale
from tintin.ops import (conv, linear_backward_bias_s32, linear_backward_input_s8, linear_backward_weight_s32,
                        linear_forward_s8, pool, relu_backward_s8, scaling)


@st.composite
def selection(draw, n):
    """(rows or None, (first, count)): a row list and a window of it, or a plain range of rows."""
    if draw(st.booleans()):
        rows = np.array(draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
        total = rows.size
    else:
        rows, total = None, n
    first = draw(st.integers(0, total))
    return rows, (first, draw(st.integers(0, total - first)))


def picked(rows, row_range, n):
    idx = np.arange(n) if rows is None else rows
    first, count = row_range
    return idx[first:first + count]


# -- fully connected -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@given(case=linear_case(), scratch=st.booleans())
def test_linear_forward_x4(rt, mode, case, scratch):
    x, w, bias, _ = case
    assert same(rt.linear_forward_s8(x, w, bias, mode, scratch=scratch, variant="x4"),
                linear_forward_s8(x, w, bias, mode))


@pytest.mark.parametrize("mode", MODES)
@given(case=linear_case())
def test_linear_backward_input_x4(rt, mode, case):
    _, w, _, err = case
    assert same(rt.linear_backward_input_s8(err, w, mode, variant="x4"), linear_backward_input_s8(err, w, mode))


def test_linear_x4_long_fan_in_at_the_bound(rt):
    """The unrolled loops' tails and the largest sums: fan-ins around multiples of 8, +-127 values."""
    for k in (1, 7, 8, 9, 4003):
        x = QTensor(np.full((2, k), 127, np.int8), Scale(-7))
        x.m[1] = -127
        w = QTensor(np.full((3, k), -127, np.int8), Scale(-7))
        bias = QTensor(np.array([2**30, -2**30, 5], np.int32), Scale(-14))
        for mode in MODES:
            for scratch in (True, False):
                assert same(rt.linear_forward_s8(x, w, bias, mode, scratch=scratch, variant="x4"),
                            linear_forward_s8(x, w, bias, mode))


def test_x4_input_error_needs_its_scratch(rt):
    w = QTensor(np.ones((2, 3), np.int8), Scale(0))
    with pytest.raises(rt.HostRuntimeError) as exc:
        rt.linear_backward_input_s8(QTensor(np.ones((1, 2), np.int8), Scale(0)), w, scratch=False, variant="x4")
    assert exc.value.status == rt.TT_ERR_ARG


@given(case=linear_case(), data=st.data())
def test_linear_backward_weight_rows(rt, case, data):
    x, _, _, err = case
    n = err.m.shape[1]
    rows, row_range = data.draw(selection(n))
    ref = linear_backward_weight_s32(err, x)
    got = rt.linear_backward_weight_s32(err, x, rows, row_range)
    assert got.scale == ref.scale and np.array_equal(got.m, ref.m[picked(rows, row_range, n)])


def test_rows_out_of_range_is_an_argument_error(rt):
    e, x = QTensor(np.ones((1, 3), np.int8), Scale(0)), QTensor(np.ones((1, 2), np.int8), Scale(0))
    for rows, row_range in ((np.array([3]), None), (None, (2, 2))):
        with pytest.raises(rt.HostRuntimeError) as exc:
            rt.linear_backward_weight_s32(e, x, rows, row_range)
        assert exc.value.status == rt.TT_ERR_ARG


@pytest.mark.parametrize("rank", [2, 3, 4])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_bias_backward_rows(rt, rank, seed, data):
    """One selected-rows bias kernel for every layer kind: linear (B, C), channel scale (B, C, P),
    convolution (B, C, H, W)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 5, rank))
    err = QTensor(rng.integers(-127, 128, shape).astype(np.int8), Scale(int(rng.integers(-12, 0))))
    ref = {2: linear_backward_bias_s32, 3: scaling.channel_scale_backward_bias_s32,
           4: conv.conv2d_backward_bias_s32}[rank](err)
    rows, row_range = data.draw(selection(shape[1]))
    got = rt.bias_backward_rows_s32(err, rows, row_range)
    assert got.scale == ref.scale and np.array_equal(got.m, np.asarray(ref.m)[picked(rows, row_range, shape[1])])


# -- ReLU masks ------------------------------------------------------------------------------------

@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 41))
def test_relu_mask(rt, seed, n):
    rng = np.random.default_rng(seed)
    y = QTensor(rng.integers(-127, 128, (1, n)).astype(np.int8) * rng.integers(0, 2, (1, n)).astype(np.int8), Scale(-3))
    err = QTensor(rng.integers(-127, 128, (1, n)).astype(np.int8), Scale(-5))
    mask = rt.relu_mask_pack_u1(y)
    assert np.array_equal(mask, np.packbits(y.m.ravel() > 0))
    assert same(rt.relu_backward_mask_s8(err, mask), relu_backward_s8(err, y))


# -- convolution -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@given(case=conv_case(), scratch=st.booleans())
def test_conv2d_forward_im2col(rt, mode, case, scratch):
    x, w, bias, _, stride, padding, groups = case
    assert same(rt.conv2d_forward_s8(x, w, bias, stride, padding, groups, mode, scratch=scratch, variant="im2col"),
                conv.conv2d_forward_s8(x, w, bias, stride, padding, groups, mode))


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_case())
def test_conv2d_backward_input_scatter(rt, mode, case):
    x, w, _, err, stride, padding, groups = case
    hw = x.m.shape[2:]
    assert same(rt.conv2d_backward_input_s8(err, w, hw, stride, padding, groups, mode, variant="scatter"),
                conv.conv2d_backward_input_s8(err, w, hw, stride, padding, groups, mode))


@given(case=conv_case(), data=st.data())
def test_conv2d_backward_weight_rows(rt, case, data):
    x, w, _, err, stride, padding, groups = case
    k = w.m.shape[2:]
    ref = conv.conv2d_backward_weight_s32(err, x, k, stride, padding, groups)
    rows, row_range = data.draw(selection(w.m.shape[0]))
    got = rt.conv2d_backward_weight_s32(err, x, k, stride, padding, groups, rows=rows, row_range=row_range)
    assert got.scale == ref.scale and np.array_equal(got.m, ref.m[picked(rows, row_range, w.m.shape[0])])


# -- max pooling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@given(case=pool_case(), scratch=st.booleans())
def test_maxpool2d_idx8(rt, mode, case, scratch):
    x, err, k, stride = case
    y, arg = rt.maxpool2d_forward_s8(x, k, stride, variant="idx8")
    wy, warg = pool.maxpool2d_forward_s8(x, k, stride)
    assert same(y, wy) and arg.dtype == warg.dtype == np.uint8 and np.array_equal(arg, warg)
    hw = x.m.shape[2:]
    assert same(rt.maxpool2d_backward_s8(err, arg, hw, k, stride, mode, scratch=scratch, variant="idx8"),
                pool.maxpool2d_backward_s8(err, warg, hw, k, stride, mode))


def test_maxpool2d_idx8_refuses_windows_over_256(rt):
    x = QTensor(np.zeros((1, 1, 17, 17), np.int8), Scale(0))
    with pytest.raises(rt.HostRuntimeError) as exc:
        rt.maxpool2d_forward_s8(x, 17, variant="idx8")
    assert exc.value.status == rt.TT_ERR_SHAPE


# -- channel scale ---------------------------------------------------------------------------------

@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from([(2, 3), (1, 4, 5), (2, 2, 3, 3)]), data=st.data())
def test_channel_scale_backward_weight_rows(rt, seed, shape, data):
    rng = np.random.default_rng(seed)
    err = QTensor(rng.integers(-127, 128, shape).astype(np.int8), Scale(-6))
    x = QTensor(rng.integers(-127, 128, shape).astype(np.int8), Scale(-4))
    ref = scaling.channel_scale_backward_weight_s32(err, x)
    rows, row_range = data.draw(selection(shape[1]))
    got = rt.channel_scale_backward_weight_s32(err, x, rows, row_range)
    assert got.scale == ref.scale and np.array_equal(got.m, np.asarray(ref.m)[picked(rows, row_range, shape[1])])


# -- optimiser updates -----------------------------------------------------------------------------

@given(case=update_case("bias"))
def test_bias_update_fast(rt, case):
    value, bits, grad, cfg, mode, batch, seed = case
    pv, pm, key, opt = python_step("bias", value, bits, grad, cfg, mode, batch, seed)
    cv, cm = rt.sgd_update("bias", value, grad, rt.SgdConfig.from_optimizer(opt), key, variant="fast")
    assert_same(cv, cm, pv, pm)


def _skip0_config(cfg):
    """skip0 serves the aligned rule with stochastic rounding and no momentum."""
    return dataclasses.replace(cfg, rule="aligned", rounding=Rounding.STOCHASTIC, momentum_shift=0)


@given(case=update_case("weight"))
def test_weight_update_skip0(rt, case):
    value, bits, grad, cfg, mode, batch, seed = case
    if bits != 8:
        value = QTensor(np.clip(value.m, -127, 127).astype(np.int8), value.scale)
        bits = 8
    cfg = _skip0_config(cfg)
    pv, pm, key, opt = python_step("weight", value, bits, grad, cfg, mode, batch, seed)
    cv, cm = rt.sgd_update("weight", value, grad, rt.SgdConfig.from_optimizer(opt), key, variant="skip0")
    assert_same(cv, cm, pv, pm)


def test_skip0_refuses_other_settings(rt):
    value = QTensor(np.zeros((2, 3), np.int8), Scale(-7))
    grad = QTensor(np.ones((2, 3), np.int32), Scale(-12))
    for cfg in (rt.SgdConfig(rule="niti"), rt.SgdConfig(momentum_shift=2), rt.SgdConfig(rounding=Rounding.NEAREST)):
        with pytest.raises(rt.HostRuntimeError) as exc:
            rt.sgd_update("weight", value, grad, cfg, 1, variant="skip0")
        assert exc.value.status == rt.TT_ERR_ARG


@given(case=update_case("weight"), data=st.data())
def test_tiled_update(rt, case, data):
    """The row-tiled update (any tile height, all rows or a sparse selection) equals IntegerSGD.update
    on the whole gradient, rescales and momentum included."""
    value, bits, grad, cfg, mode, batch, seed = case
    n = value.m.shape[0]
    rows = None
    if data.draw(st.booleans()):
        rows = np.array(data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
    tile_rows = data.draw(st.integers(1, n + 1))
    pv, pm, key, opt = python_step("weight", value, bits, grad, cfg, mode, batch, seed, rows=rows)
    cv, cm = rt.sgd_update_tiled(value, grad, rt.SgdConfig.from_optimizer(opt), key, rows=rows, tile_rows=tile_rows)
    assert_same(cv, None if cm is None else cm.reshape(np.shape(pm)), pv, pm)


@given(seed=st.integers(0, 2**32 - 1), batch=st.one_of(st.integers(1, 9), st.sampled_from([16, 31, 32, 33])),
       n=st.integers(1, 6), k=st.integers(1, 12),
       data=st.data())
def test_tiled_update_outer_product(rt, seed, batch, n, k, data):
    """A fully connected layer at batch 1..33: the gradient is err.T @ x and the tiled update forms
    each row from err and x itself (rows without an error and columns without an input skipped),
    bit-identical to the update of the materialised gradient, with and without rescale, sparse
    rows and large errors (batch 33: gradient tiles). Batch 1 passes vectors."""
    from tintin.optim import OptimConfig

    rng = np.random.default_rng(seed)
    emax = data.draw(st.sampled_from([3, 40, 127]))
    e = (rng.integers(-emax, emax + 1, (batch, n)) * rng.integers(0, 2, (batch, n))).astype(np.int8)
    x = (rng.integers(-127, 128, (batch, k)) * rng.integers(0, 2, (batch, k))).astype(np.int8)
    wmax = data.draw(st.sampled_from([3, 64, 127]))
    value = QTensor(rng.integers(-wmax, wmax + 1, (n, k)).astype(np.int8),
                    data.draw(st.builds(Scale, st.integers(-12, -2), st.integers(0, 2), st.integers(0, 2))))
    grad = QTensor(e.astype(np.int32).T @ x.astype(np.int32),
                   data.draw(st.builds(Scale, st.integers(-22, -6), st.integers(-3, 3), st.integers(-3, 3))))
    cfg = OptimConfig(rule="aligned", lr=data.draw(st.sampled_from([0.01, 0.1, 0.5, 1.7])), rounding=Rounding.STOCHASTIC,
                      momentum_shift=0, weight_rescale=data.draw(st.booleans()))
    mode = data.draw(st.sampled_from(MODES))
    rows = None
    if data.draw(st.booleans()):
        rows = np.array(data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
    pv, pm, key, opt = python_step("weight", value, 8, grad, cfg, mode, batch, seed, rows=rows)
    cv, cm = rt.sgd_update_tiled(value, grad, rt.SgdConfig.from_optimizer(opt), key, rows=rows,
                                 tile_rows=data.draw(st.integers(1, n)),
                                 rank1=(e[0], x[0]) if batch == 1 else (e, x))
    assert_same(cv, cm, pv, pm)


@pytest.mark.parametrize("seed", range(6))
def test_tiled_update_rank1_row_overflow_in_either_run(rt, seed):
    """Rows leave the int8 range in the positive-input run or in the negative-input run: each such
    row is undone exactly (the deltas it applied are added back) and the tensor rescales."""
    from tintin.optim import OptimConfig
    from tintin.numerics import ScaleMode

    rng = np.random.default_rng(seed)
    e = np.array([90, -90, 60, -60, 0, 127], np.int8)
    x = rng.choice(np.array([-127, -40, 0, 30, 127], np.int8), 9)
    x[0], x[1] = 127, -127  # both runs are present
    w = rng.integers(-120, 121, (6, 9)).astype(np.int8)
    w[rng.integers(0, 6), rng.integers(0, 9)] = 127 if seed % 2 else -127
    value = QTensor(w, Scale(-7))
    grad = QTensor(np.outer(e.astype(np.int32), x.astype(np.int32)).astype(np.int32), Scale(-14))
    cfg = OptimConfig(rule="aligned", lr=1.7, rounding=Rounding.STOCHASTIC, momentum_shift=0, weight_rescale=True)
    pv, pm, key, opt = python_step("weight", value, 8, grad, cfg, ScaleMode.COMPOUND, 1, seed)
    cv, cm = rt.sgd_update_tiled(value, grad, rt.SgdConfig.from_optimizer(opt), key, tile_rows=1,
                                 rank1=(e, x))
    assert_same(cv, cm, pv, pm)
    assert pv.scale != value.scale  # the case does rescale


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.integers(32, 62), edge=st.booleans(), rescale=st.booleans())
def test_tiled_update_rank1_small_steps(rt, seed, shift, edge, rescale):
    """Batch 1 with a multiplier shift n of 32..62 (a small error late in training): every step
    rounds to 0 or 1 and the outer-product update keeps serving the layer, with rows at the edge
    of the range that leave it (undone, then rescaled) or saturate."""
    from tintin.optim import OptimConfig
    from tintin.numerics import ScaleMode

    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 7)), int(rng.integers(1, 13))
    e = (rng.integers(-127, 128, n) * rng.integers(0, 2, n)).astype(np.int8)
    x = (rng.integers(-127, 128, k) * rng.integers(0, 2, k)).astype(np.int8)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    if edge:
        w[:, :] = np.where(rng.integers(0, 2, (n, k)) == 1, 127, -127).astype(np.int8)
    cfg = OptimConfig(rule="aligned", lr=1.0, rounding=Rounding.STOCHASTIC, momentum_shift=0, weight_rescale=rescale)
    w_scale = Scale(-7)
    # lr * s_g / s_w = 2**(g - w) with M = 2**14: n = 14 - (g - w)
    g_scale = Scale(w_scale.S + 14 - shift)
    grad = QTensor(np.outer(e.astype(np.int32), x.astype(np.int32)).astype(np.int32), g_scale)
    value = QTensor(w, w_scale)
    pv, pm, key, opt = python_step("weight", value, 8, grad, cfg, ScaleMode.COMPOUND, 1, seed)
    assert opt.aligned_multiplier(g_scale, w_scale)[1] == shift
    cv, cm = rt.sgd_update_tiled(value, grad, rt.SgdConfig.from_optimizer(opt), key, tile_rows=1, rank1=(e, x))
    assert_same(cv, cm, pv, pm)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_tiled_update_edge_weights_rescale(rt, rounding):
    """Weights at the range's edge and a large gradient: some tiles fit, others force a grid rescale."""
    from tintin.optim import OptimConfig
    from tintin.numerics import ScaleMode

    w = np.full((5, 7), 120, np.int8)
    w[::2] = -3
    value = QTensor(w, Scale(-7))
    grad = QTensor(np.full((5, 7), -2**20, np.int32), Scale(-20))
    cfg = OptimConfig(rule="aligned", lr=0.5, rounding=rounding, momentum_shift=0, weight_rescale=True)
    for tile_rows in (1, 2, 5):
        pv, pm, key, opt = python_step("weight", value, 8, grad, cfg, ScaleMode.COMPOUND, 1, 7)
        cv, cm = rt.sgd_update_tiled(value, grad, rt.SgdConfig.from_optimizer(opt), key, tile_rows=tile_rows)
        assert_same(cv, cm, pv, pm)
        assert pv.scale != value.scale  # the case does rescale


# -- checksum ---------------------------------------------------------------------------------------

@given(data=st.binary(max_size=64), h=st.integers(0, 2**32 - 1))
def test_fnv1a(rt, data, h):
    ref = h
    for byte in data:
        ref = ((ref ^ byte) * 16777619) & 0xFFFFFFFF
    assert rt.fnv1a_u32(data, h) == ref
