"""C convolution, pooling, residual-add and channel-scale kernels equal tintin.ops bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tintin.numerics import QTensor, Scale, ScaleMode
from tintin.ops import conv, pool, residual, scaling

MODES = [ScaleMode.POW2, ScaleMode.COMPOUND]
scales = st.builds(Scale, st.integers(-14, 0), st.integers(-2, 2), st.integers(-2, 2))


def same(a: QTensor, b: QTensor) -> bool:
    return a.scale == b.scale and a.m.shape == b.m.shape and np.array_equal(a.m, b.m)


def int8(rng, shape, kind):
    if kind == "zeros":
        return np.zeros(shape, np.int8)
    if kind == "extreme":
        return rng.choice(np.array([-127, 127, 0], np.int8), size=shape)
    return rng.integers(-127, 128, shape).astype(np.int8)


@st.composite
def conv_case(draw, one_d=False):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "random", "extreme", "zeros"]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans())
    cin = groups * (1 if depthwise else draw(st.integers(1, 3)))
    cout = groups * (1 if depthwise else draw(st.integers(1, 3)))
    b = draw(st.integers(1, 3))
    kh = 1 if one_d else draw(st.integers(1, 4))
    kw = draw(st.integers(1, 5))
    sh = 1 if one_d else draw(st.integers(1, 3))
    sw = draw(st.integers(1, 3))
    ph = 0 if one_d else draw(st.integers(0, 2))
    pw = draw(st.integers(0, 2))
    h = 1 if one_d else draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    x = QTensor(int8(rng, (b, cin, h, w), kind), draw(scales))
    wt = QTensor(int8(rng, (cout, cin // groups, kh, kw), draw(st.sampled_from(["random", "extreme"]))), draw(scales))
    bias = None
    if draw(st.booleans()):
        bias = QTensor(rng.integers(-2**20, 2**20, cout).astype(np.int32), Scale(-20))
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    err = QTensor(int8(rng, (b, cout, ho, wo), kind), draw(scales))
    return x, wt, bias, err, (sh, sw), (ph, pw), groups


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_case(), scratch=st.booleans())
def test_conv2d(rt, mode, case, scratch):
    x, w, bias, err, stride, padding, groups = case
    assert same(rt.conv2d_forward_s8(x, w, bias, stride, padding, groups, mode, scratch=scratch),
                conv.conv2d_forward_s8(x, w, bias, stride, padding, groups, mode))
    hw = x.m.shape[2:]
    assert same(rt.conv2d_backward_input_s8(err, w, hw, stride, padding, groups, mode, scratch=scratch),
                conv.conv2d_backward_input_s8(err, w, hw, stride, padding, groups, mode))
    k = w.m.shape[2:]
    assert same(rt.conv2d_backward_weight_s32(err, x, k, stride, padding, groups),
                conv.conv2d_backward_weight_s32(err, x, k, stride, padding, groups))
    assert same(rt.conv2d_backward_bias_s32(err), conv.conv2d_backward_bias_s32(err))


@pytest.mark.parametrize("mode", MODES)
@given(case=conv_case(one_d=True))
def test_conv1d(rt, mode, case):
    x4, w4, bias, err4, (_, s), (_, p), groups = case
    x, w, err = QTensor(x4.m[:, :, 0], x4.scale), QTensor(w4.m[:, :, 0], w4.scale), QTensor(err4.m[:, :, 0], err4.scale)
    assert same(rt.conv1d_forward_s8(x, w, bias, s, p, groups, mode), conv.conv1d_forward_s8(x, w, bias, s, p, groups, mode))
    n = x.m.shape[2]
    assert same(rt.conv1d_backward_input_s8(err, w, n, s, p, groups, mode),
                conv.conv1d_backward_input_s8(err, w, n, s, p, groups, mode))
    k = w.m.shape[2]
    assert same(rt.conv1d_backward_weight_s32(err, x, k, s, p, groups),
                conv.conv1d_backward_weight_s32(err, x, k, s, p, groups))
    assert same(rt.conv1d_backward_bias_s32(err), conv.conv1d_backward_bias_s32(err))


def test_conv_bad_geometry_is_a_status(rt):
    x = QTensor(np.zeros((1, 2, 3, 3), np.int8), Scale(0))
    with pytest.raises(rt.HostRuntimeError) as exc:  # 5x5 kernel on a 3x3 input, no padding
        rt.conv2d_forward_s8(x, QTensor(np.zeros((1, 2, 5, 5), np.int8), Scale(0)), None)
    assert exc.value.status == rt.TT_ERR_SHAPE


@st.composite
def pool_case(draw, one_d=False):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "extreme", "ties"]))
    kh = 1 if one_d else draw(st.integers(1, 4))
    kw = draw(st.integers(1, 4))
    stride = draw(st.one_of(st.none(), st.tuples(st.just(1) if one_d else st.integers(1, 4), st.integers(1, 4))))
    h = 1 if one_d else draw(st.integers(kh, 9))
    w = draw(st.integers(kw, 9))
    b, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    m = rng.integers(-2, 3, (b, c, h, w)).astype(np.int8) if kind == "ties" else int8(rng, (b, c, h, w), kind)
    x = QTensor(m, draw(scales))
    sh, sw = (kh, kw) if stride is None else stride
    out = ((h - kh) // sh + 1, (w - kw) // sw + 1)
    err = QTensor(int8(rng, (b, c) + out, draw(st.sampled_from(["random", "extreme"]))), draw(scales))
    return x, err, (kh, kw), stride


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_case(), scratch=st.booleans())
def test_pool2d(rt, mode, case, scratch):
    x, err, k, stride = case
    y, arg = rt.maxpool2d_forward_s8(x, k, stride)
    wy, warg = pool.maxpool2d_forward_s8(x, k, stride)
    assert same(y, wy) and arg.dtype == warg.dtype and np.array_equal(arg, warg)
    hw = x.m.shape[2:]
    assert same(rt.maxpool2d_backward_s8(err, arg, hw, k, stride, mode, scratch=scratch),
                pool.maxpool2d_backward_s8(err, warg, hw, k, stride, mode))
    assert same(rt.avgpool2d_forward_s8(x, k, stride, mode, scratch=scratch), pool.avgpool2d_forward_s8(x, k, stride, mode))
    assert same(rt.avgpool2d_backward_s8(err, hw, k, stride, mode, scratch=scratch),
                pool.avgpool2d_backward_s8(err, hw, k, stride, mode))
    assert same(rt.global_avgpool_forward_s8(x, mode), pool.global_avgpool_forward_s8(x, mode))
    gerr = QTensor(err.m[:, :, 0, 0].copy(), err.scale)
    assert same(rt.global_avgpool_backward_s8(gerr, x.m.shape[1:], mode),
                pool.global_avgpool_backward_s8(gerr, x.m.shape[1:], mode))


@pytest.mark.parametrize("mode", MODES)
@given(case=pool_case(one_d=True))
def test_pool1d(rt, mode, case):
    x4, err4, (_, k), stride = case
    s = None if stride is None else stride[1]
    x, err = QTensor(x4.m[:, :, 0], x4.scale), QTensor(err4.m[:, :, 0], err4.scale)
    y, arg = rt.maxpool1d_forward_s8(x, k, s)
    wy, warg = pool.maxpool1d_forward_s8(x, k, s)
    assert same(y, wy) and np.array_equal(arg, warg)
    n = x.m.shape[2]
    assert same(rt.maxpool1d_backward_s8(err, arg, n, k, s, mode), pool.maxpool1d_backward_s8(err, warg, n, k, s, mode))
    assert same(rt.avgpool1d_forward_s8(x, k, s, mode), pool.avgpool1d_forward_s8(x, k, s, mode))
    assert same(rt.avgpool1d_backward_s8(err, n, k, s, mode), pool.avgpool1d_backward_s8(err, n, k, s, mode))
    assert same(rt.global_avgpool_forward_s8(x, mode), pool.global_avgpool_forward_s8(x, mode))


def test_avgpool_multiplier_every_window(rt):
    for window in list(range(1, 5000)) + [2**k + d for k in range(12, 22) for d in (-1, 0, 1)] + [4227330]:
        assert rt.avgpool_multiplier(window) == pool.avgpool_multiplier(window), window
    with pytest.raises(ValueError):
        pool.avgpool_multiplier(4227331)
    with pytest.raises(ValueError):
        rt.avgpool_multiplier(4227331)


def test_overlapping_maxpool_sums_are_rescaled(rt):
    """3x3 windows with stride 1 and one peak: the nine windows around it all pick it, so their
    errors add up past 127 and the sum is rescaled."""
    x = QTensor(np.zeros((1, 1, 6, 6), np.int8), Scale(-3))
    x.m[0, 0, 2, 2] = 5
    err = QTensor(np.full((1, 1, 4, 4), 127, np.int8), Scale(-9))
    y, arg = rt.maxpool2d_forward_s8(x, 3, 1)
    back = rt.maxpool2d_backward_s8(err, arg, (6, 6), 3, 1, ScaleMode.COMPOUND)
    want = pool.maxpool2d_backward_s8(err, pool.maxpool2d_forward_s8(x, 3, 1)[1], (6, 6), 3, 1, ScaleMode.COMPOUND)
    assert same(back, want) and back.scale != err.scale


@pytest.mark.parametrize("mode", MODES)
@given(seed=st.integers(0, 2**32 - 1), sa=scales, sb=st.one_of(scales, st.builds(Scale, st.integers(-60, 40))),
       shape=st.sampled_from([(1, 5), (2, 3, 4), (3, 2, 2, 2)]), scratch=st.booleans())
def test_residual_add(rt, mode, seed, sa, sb, shape, scratch):
    rng = np.random.default_rng(seed)
    a = QTensor(rng.integers(-127, 128, shape).astype(np.int8), sa)
    b = QTensor(rng.integers(-127, 128, shape).astype(np.int8), sb)
    assert rt.residual_working_scale(sa, sb) == residual.residual_working_scale(sa, sb)
    assert same(rt.residual_add_s8(a, b, mode, scratch=scratch), residual.residual_add_s8(a, b, mode))
    assert same(rt.residual_add_s8(b, a, mode, scratch=scratch), residual.residual_add_s8(b, a, mode))


def test_residual_add_equal_and_far_scales(rt):
    a = QTensor(np.array([[127, -127, 1, 0, 64]], np.int8), Scale(-7))
    for sb in (Scale(-7), Scale(-8), Scale(-7, 1, 0), Scale(-7 - 22), Scale(-7 - 23), Scale(-7 - 40), Scale(20, 2, 1)):
        b = QTensor(np.array([[127, 127, -1, 5, -64]], np.int8), sb)
        for mode in MODES:
            assert same(rt.residual_add_s8(a, b, mode), residual.residual_add_s8(a, b, mode)), sb


@pytest.mark.parametrize("mode", MODES)
@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from([(2, 3), (1, 4, 5), (2, 2, 3, 3)]),
       xs=scales, gs=scales, with_beta=st.booleans(), scratch=st.booleans())
def test_channel_scale(rt, mode, seed, shape, xs, gs, with_beta, scratch):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = QTensor(rng.integers(-127, 128, shape).astype(np.int8), xs)
    err = QTensor(rng.integers(-127, 128, shape).astype(np.int8), Scale(-9))
    gamma = QTensor(rng.integers(-127, 128, c).astype(np.int8), gs)
    beta = QTensor(rng.integers(-2**24, 2**24, c).astype(np.int32), Scale(-20)) if with_beta else None
    assert same(rt.channel_scale_forward_s8(x, gamma, beta, mode, scratch=scratch),
                scaling.channel_scale_forward_s8(x, gamma, beta, mode))
    assert same(rt.channel_scale_backward_input_s8(err, gamma, mode), scaling.channel_scale_backward_input_s8(err, gamma, mode))
    assert same(rt.channel_scale_backward_weight_s32(err, x), scaling.channel_scale_backward_weight_s32(err, x))
    assert same(rt.channel_scale_backward_bias_s32(err), scaling.channel_scale_backward_bias_s32(err))
