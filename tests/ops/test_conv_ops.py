import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # the direct-loop references next to this file
from _conv_naive import conv_acc, conv_input_error_acc, conv_weight_grad
from tintin.numerics import QTensor, Scale, ScaleMode, rescale, set_matmul_backend
from tintin.ops.conv import (FLOAT32_TERMS, conv1d_backward_bias_s32, conv1d_backward_input_s8,
                             conv1d_backward_weight_s32, conv1d_forward_s8, conv1d_im2col, conv2d_accumulate,
                             conv2d_backward_bias_s32, conv2d_backward_input_s8, conv2d_backward_weight_s32,
                             conv2d_forward_s8, conv2d_im2col, conv2d_input_error_acc, conv_output_size, im2col_shape)
from tintin.ops.linear import align_bias

scales = st.builds(Scale, st.integers(-12, -3), st.integers(0, 2), st.integers(0, 2))


@st.composite
def geometries(draw, max_batch=3):
    """A valid conv geometry: groups (incl. depthwise), kernel, stride, padding, input size."""
    groups = draw(st.integers(1, 3))
    if draw(st.booleans()):  # depthwise: one input and one output channel per group
        cg, cog = 1, 1
    else:
        cg, cog = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(1, kh - 2 * ph), kh - 2 * ph + 6))
    w = draw(st.integers(max(1, kw - 2 * pw), kw - 2 * pw + 6))
    b = draw(st.integers(1, max_batch))
    return dict(b=b, cin=cg * groups, cout=cog * groups, groups=groups, kernel=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), hw=(h, w))


def qrand(rng, shape, scale):
    return QTensor(rng.integers(-127, 128, size=shape).astype(np.int8), scale)


def make(rng, g, sx=Scale(-7), sw=Scale(-8, 1, 0)):
    x = qrand(rng, (g["b"], g["cin"]) + g["hw"], sx)
    w = qrand(rng, (g["cout"], g["cin"] // g["groups"]) + g["kernel"], sw)
    out_hw = tuple(conv_output_size(n, k, s, p) for n, k, s, p in zip(g["hw"], g["kernel"], g["stride"], g["padding"]))
    err = qrand(rng, (g["b"], g["cout"]) + out_hw, Scale(-9, 0, 1))
    bias = QTensor(rng.integers(-(2**22), 2**22, size=g["cout"]).astype(np.int32), Scale(-20))
    return x, w, bias, err


@given(g=geometries(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
def test_fast_path_equals_direct_loops(g, seed, mode):
    rng = np.random.default_rng(seed)
    x, w, bias, err = make(rng, g)
    args = (g["stride"], g["padding"], g["groups"])
    want_acc = conv_acc(x.m, w.m, *args)
    assert np.array_equal(conv2d_accumulate(x.m, w.m, *args), want_acc)
    cols = conv2d_im2col(x.m, g["kernel"], *args)
    assert cols.shape == im2col_shape(x.m.shape, g["kernel"], *args)
    assert np.array_equal(conv2d_accumulate(x.m, w.m, *args, cols=cols), want_acc)
    # the whole op: bias aligned to the accumulator scale, then the shared rescale
    y = conv2d_forward_s8(x, w, bias, *args, mode=mode)
    acc = want_acc + align_bias(bias, x.scale * w.scale)[None, :, None, None]
    q, s = rescale(acc, x.scale * w.scale, 8, mode)
    assert np.array_equal(y.m, q) and y.scale == s and y.m.dtype == np.int8
    # backward
    want_in = conv_input_error_acc(err.m, w.m, g["hw"], *args)
    assert np.array_equal(conv2d_input_error_acc(err.m, w.m, g["hw"], *args), want_in)
    e_in = conv2d_backward_input_s8(err, w, g["hw"], *args, mode=mode)
    q, s = rescale(want_in, err.scale * w.scale, 8, mode)
    assert np.array_equal(e_in.m, q) and e_in.scale == s and e_in.m.flags.c_contiguous
    want_g = conv_weight_grad(err.m, x.m, g["kernel"], *args)
    for c in (None, cols):
        gw = conv2d_backward_weight_s32(err, x, g["kernel"], *args, cols=c)
        assert gw.m.dtype == np.int32 and np.array_equal(gw.m, want_g) and gw.scale == err.scale * x.scale


@given(g=geometries(), seed=st.integers(0, 2**32 - 1))
def test_integer_backend_gives_the_same_bits(g, seed):
    rng = np.random.default_rng(seed)
    x, w, bias, err = make(rng, g)
    args = (g["stride"], g["padding"], g["groups"])

    def run():
        return (conv2d_forward_s8(x, w, bias, *args, mode=ScaleMode.COMPOUND).m,
                conv2d_backward_input_s8(err, w, g["hw"], *args).m,
                conv2d_backward_weight_s32(err, x, g["kernel"], *args).m)
    fast = run()
    prev = set_matmul_backend("int")
    try:
        ref = run()
    finally:
        set_matmul_backend(prev)
    for a, b in zip(fast, ref):
        assert np.array_equal(a, b)


def unit(t):
    return t.scale.to_float()


def check_against_torch(x, w, bias, err, g, mode):
    args = (g["stride"], g["padding"], g["groups"])
    xt = torch.tensor(x.dequantize(), requires_grad=True)
    wt = torch.tensor(w.dequantize(), requires_grad=True)
    bt = torch.tensor(bias.dequantize(), requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, g["stride"], g["padding"], 1, g["groups"])
    yt.backward(torch.tensor(err.dequantize()))
    y = conv2d_forward_s8(x, w, bias, *args, mode=mode)
    # nearest rounding of the exact sum, plus the bias alignment (half an accumulator unit and the
    # 15-bit multiplier's relative error)
    bias_err = 0.5 * unit(x) * unit(w) + np.abs(bias.dequantize()).max() * 2.0**-13
    assert np.abs(y.dequantize() - yt.detach().numpy()).max() <= 0.5 * unit(y) + bias_err + 1e-12
    e_in = conv2d_backward_input_s8(err, w, g["hw"], *args, mode=mode)
    assert np.abs(e_in.dequantize() - xt.grad.numpy()).max() <= 0.5 * unit(e_in) + 1e-12
    gw = conv2d_backward_weight_s32(err, x, g["kernel"], *args)
    np.testing.assert_allclose(gw.dequantize(), wt.grad.numpy(), rtol=1e-12, atol=1e-300)  # exact
    gb = conv2d_backward_bias_s32(err)
    np.testing.assert_allclose(gb.dequantize(), bt.grad.numpy(), rtol=1e-12, atol=1e-300)


@given(g=geometries(), seed=st.integers(0, 2**32 - 1), sx=scales, sw=scales,
       mode=st.sampled_from(list(ScaleMode)))
def test_forward_and_backward_match_torch_autograd(g, seed, sx, sw, mode):
    rng = np.random.default_rng(seed)
    x, w, bias, err = make(rng, g, sx, sw)
    check_against_torch(x, w, bias, err, g, mode)


EDGE_CASES = {
    "1x1": dict(b=2, cin=3, cout=5, groups=1, kernel=(1, 1), stride=(1, 1), padding=(0, 0), hw=(4, 3)),
    "kernel_equals_input": dict(b=2, cin=2, cout=3, groups=1, kernel=(5, 4), stride=(1, 1), padding=(0, 0), hw=(5, 4)),
    "kernel_equals_padded_input": dict(b=1, cin=2, cout=2, groups=1, kernel=(5, 5), stride=(2, 2), padding=(1, 1),
                                       hw=(3, 3)),
    "depthwise_stride2": dict(b=2, cin=4, cout=4, groups=4, kernel=(3, 3), stride=(2, 2), padding=(1, 1), hw=(7, 6)),
    "depthwise_padding_beyond_kernel": dict(b=2, cin=3, cout=3, groups=3, kernel=(2, 3), stride=(2, 3), padding=(3, 4),
                                            hw=(3, 2)),
    "depthwise_large_stride": dict(b=1, cin=2, cout=2, groups=2, kernel=(3, 2), stride=(4, 3), padding=(1, 1), hw=(9, 8)),
    "padding_beyond_kernel": dict(b=1, cin=2, cout=3, groups=1, kernel=(2, 2), stride=(1, 2), padding=(2, 3), hw=(3, 2)),
    "depthwise_multiplier": dict(b=2, cin=3, cout=6, groups=3, kernel=(3, 3), stride=(1, 1), padding=(1, 1), hw=(5, 5)),
    "stride_larger_than_kernel": dict(b=2, cin=2, cout=2, groups=1, kernel=(2, 2), stride=(3, 3), padding=(0, 0),
                                      hw=(8, 7)),
    "asymmetric": dict(b=1, cin=2, cout=4, groups=2, kernel=(1, 3), stride=(2, 1), padding=(0, 2), hw=(5, 2)),
    "single_input_channel": dict(b=3, cin=1, cout=6, groups=1, kernel=(5, 5), stride=(1, 1), padding=(2, 2), hw=(8, 8)),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases(name):
    g = EDGE_CASES[name]
    rng = np.random.default_rng(sorted(EDGE_CASES).index(name))
    x, w, bias, err = make(rng, g)
    args = (g["stride"], g["padding"], g["groups"])
    assert np.array_equal(conv2d_accumulate(x.m, w.m, *args), conv_acc(x.m, w.m, *args))
    assert np.array_equal(conv2d_input_error_acc(err.m, w.m, g["hw"], *args),
                          conv_input_error_acc(err.m, w.m, g["hw"], *args))
    check_against_torch(x, w, bias, err, g, ScaleMode.COMPOUND)


def extreme(shape, seed):
    """+-127 everywhere: the largest sums any operands can make."""
    rng = np.random.default_rng(seed)
    return QTensor(np.where(rng.random(shape) < 0.9, 127, -127).astype(np.int8), Scale(-7))


@pytest.mark.parametrize("path", ["forward_fan_in", "input_error_terms", "weight_gradient_terms"])
def test_long_sums_beyond_float32_are_exact(path):
    """Sums of more than FLOAT32_TERMS products take the chunked / int32 paths: still exact."""
    if path == "forward_fan_in":  # fan-in 1100 > 1040
        x, w = extreme((2, 1100, 2, 2), 1), extreme((3, 1100, 1, 1), 2)
        err = extreme((2, 3, 2, 2), 3)
    elif path == "input_error_terms":  # 1100 output channels feed each input position
        x, w = extreme((2, 2, 2, 2), 1), extreme((1100, 2, 1, 1), 2)
        err = extreme((2, 1100, 2, 2), 3)
    else:  # 2 x 33 x 33 = 2178 positions per weight-gradient element
        x, w = extreme((2, 1, 35, 35), 1), extreme((2, 1, 3, 3), 2)
        err = extreme((2, 2, 33, 33), 3)
    assert max(x.m.shape[1], w.m.shape[0], err.m.shape[0] * err.m.shape[2] * err.m.shape[3]) > FLOAT32_TERMS
    g = (1, 1), (0, 0), 1
    hw = x.m.shape[2:]
    assert np.array_equal(conv2d_accumulate(x.m, w.m, *g), conv_acc(x.m, w.m, *g))
    assert np.array_equal(conv2d_input_error_acc(err.m, w.m, hw, *g), conv_input_error_acc(err.m, w.m, hw, *g))
    assert np.array_equal(conv2d_backward_weight_s32(err, x, w.m.shape[2:], *g).m,
                          conv_weight_grad(err.m, x.m, w.m.shape[2:], *g))


def test_im2col_buffer_reuse_and_errors():
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(2, 4, 6, 5)).astype(np.int8)
    want = conv2d_im2col(x, (3, 2), (2, 1), (1, 0), 2)
    buf = np.full(want.shape, 99.0, dtype=np.float32)
    got = conv2d_im2col(x, (3, 2), (2, 1), (1, 0), 2, out=buf)
    assert got is buf and np.array_equal(got, want)
    with pytest.raises(ValueError, match="buffer"):
        conv2d_im2col(x, (3, 2), (2, 1), (1, 0), 2, out=np.empty(want.shape, dtype=np.float64))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_im2col(x, (9, 2), 1, 0, 1)


@given(b=st.integers(1, 3), groups=st.integers(1, 2), cg=st.integers(1, 3), cog=st.integers(1, 3),
       k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 2), extra=st.integers(0, 7),
       seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
def test_conv1d_matches_torch_and_the_2d_kernels(b, groups, cg, cog, k, s, p, extra, seed, mode):
    p = min(p, k - 1)
    length = max(1, k - 2 * p) + extra
    rng = np.random.default_rng(seed)
    cin, cout = cg * groups, cog * groups
    x, w = qrand(rng, (b, cin, length), Scale(-6)), qrand(rng, (cout, cg, k), Scale(-8, 0, 2))
    lo = conv_output_size(length, k, s, p)
    err = qrand(rng, (b, cout, lo), Scale(-10))
    bias = QTensor(rng.integers(-(2**21), 2**21, size=cout).astype(np.int32), Scale(-20))
    y = conv1d_forward_s8(x, w, bias, s, p, groups, mode)
    y2 = conv2d_forward_s8(QTensor(x.m[:, :, None], x.scale), QTensor(w.m[:, :, None], w.scale), bias, (1, s),
                           (0, p), groups, mode)
    assert np.array_equal(y.m, y2.m[:, :, 0]) and y.scale == y2.scale
    cols = conv1d_im2col(x.m, k, s, p, groups)
    assert np.array_equal(conv1d_forward_s8(x, w, bias, s, p, groups, mode, cols).m, y.m)

    xt = torch.tensor(x.dequantize(), requires_grad=True)
    wt = torch.tensor(w.dequantize(), requires_grad=True)
    bt = torch.tensor(bias.dequantize(), requires_grad=True)
    yt = torch.nn.functional.conv1d(xt, wt, bt, s, p, 1, groups)
    yt.backward(torch.tensor(err.dequantize()))
    bias_err = 0.5 * unit(x) * unit(w) + np.abs(bias.dequantize()).max() * 2.0**-13
    assert np.abs(y.dequantize() - yt.detach().numpy()).max() <= 0.5 * unit(y) + bias_err + 1e-12
    e_in = conv1d_backward_input_s8(err, w, length, s, p, groups, mode)
    assert e_in.m.shape == x.m.shape
    assert np.abs(e_in.dequantize() - xt.grad.numpy()).max() <= 0.5 * unit(e_in) + 1e-12
    gw = conv1d_backward_weight_s32(err, x, k, s, p, groups, cols)
    np.testing.assert_allclose(gw.dequantize(), wt.grad.numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(conv1d_backward_bias_s32(err).dequantize(), bt.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_input_positions_no_window_reads_get_zero_error():
    # H = 6, k = 2, stride 3: rows 2 and 5 are never read
    rng = np.random.default_rng(3)
    w = qrand(rng, (2, 1, 2, 2), Scale(-7))
    err = qrand(rng, (1, 2, 2, 2), Scale(-7))
    e = conv2d_backward_input_s8(err, w, (6, 6), 3, 0, 1)
    assert not e.m[:, :, [2, 5], :].any() and not e.m[:, :, :, [2, 5]].any()
    assert e.m[:, :, :2, :2].any()


def test_operands_must_be_int8():
    x = QTensor(np.zeros((1, 1, 3, 3), dtype=np.int16), Scale(0))
    w = QTensor(np.zeros((1, 1, 2, 2), dtype=np.int8), Scale(0))
    with pytest.raises(TypeError, match="int8"):
        conv2d_forward_s8(x, w, None)
    with pytest.raises(TypeError, match="int8"):
        conv2d_backward_input_s8(QTensor(np.zeros((1, 1, 2, 2), dtype=np.int32), Scale(0)), w, (3, 3))
    with pytest.raises(TypeError, match="int8"):
        conv2d_backward_weight_s32(QTensor(np.zeros((1, 1, 2, 2), dtype=np.int8), Scale(0)), x, 2)
