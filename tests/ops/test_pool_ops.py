import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # the direct-loop references next to this file
from _conv_naive import maxpool, maxpool_backward_acc, window_spread, window_sums
from tintin.numerics import QTensor, Scale, ScaleMode, rescale
from tintin.ops.pool import (avgpool1d_backward_s8, avgpool1d_forward_s8, avgpool2d_backward_s8, avgpool2d_forward_s8,
                             avgpool_multiplier, global_avgpool_backward_s8, global_avgpool_forward_s8,
                             maxpool1d_backward_s8, maxpool1d_forward_s8, maxpool2d_backward_s8, maxpool2d_forward_s8)


@st.composite
def pool_geometries(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = kh + draw(st.integers(0, 6)), kw + draw(st.integers(0, 6))
    return dict(b=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), kernel=(kh, kw), stride=(sh, sw), hw=(h, w))


def qrand(rng, shape, scale, lo=-127, hi=127):
    return QTensor(rng.integers(lo, hi + 1, size=shape).astype(np.int8), scale)


def out_hw(g):
    return tuple((n - k) // s + 1 for n, k, s in zip(g["hw"], g["kernel"], g["stride"]))


@given(g=pool_geometries(), seed=st.integers(0, 2**32 - 1), narrow=st.booleans(),
       mode=st.sampled_from(list(ScaleMode)))
def test_maxpool_equals_direct_loops_with_first_maximum(g, seed, narrow, mode):
    rng = np.random.default_rng(seed)
    # a narrow value range makes ties frequent
    x = qrand(rng, (g["b"], g["c"]) + g["hw"], Scale(-5), *((-2, 2) if narrow else (-127, 127)))
    y, arg = maxpool2d_forward_s8(x, g["kernel"], g["stride"])
    want_y, want_arg = maxpool(x.m, g["kernel"], g["stride"])
    assert np.array_equal(y.m, want_y) and np.array_equal(arg, want_arg) and y.scale == x.scale
    err = qrand(rng, y.m.shape, Scale(-9))
    e = maxpool2d_backward_s8(err, arg, g["hw"], g["kernel"], g["stride"], mode)
    acc = maxpool_backward_acc(err.m, arg, g["hw"], g["kernel"], g["stride"])
    q, s = rescale(acc, err.scale, 8, mode)
    assert np.array_equal(e.m, q) and e.scale == s and e.m.dtype == np.int8
    overlap = any(st_ < k for st_, k in zip(g["stride"], g["kernel"]))
    if not overlap:  # at most one error per input: mantissas and scale unchanged
        assert e.scale == err.scale and np.abs(e.m).sum() == np.abs(err.m).sum()


def test_maxpool_tie_rule_first_in_row_major_order():
    x = QTensor(np.array([[[[5, 5], [5, 5]], [[1, 7], [7, 7]], [[-3, -4], [-3, -9]]]], dtype=np.int8)
                .transpose(0, 1, 2, 3).reshape(1, 3, 2, 2), Scale(0))
    y, arg = maxpool2d_forward_s8(x, 2)
    assert y.m.reshape(-1).tolist() == [5, 7, -3]
    assert arg.reshape(-1).tolist() == [0, 1, 0]  # all equal -> top-left; (0,1) before (1,0), (1,1)
    e = maxpool2d_backward_s8(QTensor(np.array([[[[10]], [[20]], [[30]]]], dtype=np.int8), Scale(0)), arg, (2, 2), 2)
    assert e.m[0, 0].tolist() == [[10, 0], [0, 0]]
    assert e.m[0, 1].tolist() == [[0, 20], [0, 0]]
    assert e.m[0, 2].tolist() == [[30, 0], [0, 0]]


@given(g=pool_geometries(), seed=st.integers(0, 2**32 - 1))
def test_maxpool_matches_torch(g, seed):
    rng = np.random.default_rng(seed)
    x = qrand(rng, (g["b"], g["c"]) + g["hw"], Scale(-5))
    err = qrand(rng, (g["b"], g["c"]) + out_hw(g), Scale(-8))
    xt = torch.tensor(x.dequantize(), requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, g["kernel"], g["stride"])
    yt.backward(torch.tensor(err.dequantize()))
    y, arg = maxpool2d_forward_s8(x, g["kernel"], g["stride"])
    assert np.array_equal(y.dequantize(), yt.detach().numpy())
    e = maxpool2d_backward_s8(err, arg, g["hw"], g["kernel"], g["stride"])
    # PyTorch also routes to the first maximum; overlapping sums may be rescaled (nearest)
    assert np.abs(e.dequantize() - xt.grad.numpy()).max() <= 0.5 * e.scale.to_float() * (e.scale != err.scale)


def test_overlapping_windows_add_errors_then_rescale():
    # 1-D, kernel 3 stride 1: the middle maximum is the argmax of three windows
    x = QTensor(np.array([[[0, 0, 9, 0, 0]]], dtype=np.int8), Scale(0))
    y, arg = maxpool1d_forward_s8(x, 3, 1)
    assert y.m.tolist() == [[[9, 9, 9]]] and arg.tolist() == [[[2, 1, 0]]]
    e = maxpool1d_backward_s8(QTensor(np.array([[[100, 100, 100]]], dtype=np.int8), Scale(-4)), arg, 5, 3, 1)
    # 300 at scale 2**-4 does not fit int8: rescaled exactly to 75 at scale 2**-2
    assert e.m.tolist() == [[[0, 0, 75, 0, 0]]] and e.scale == Scale(-2)
    e = maxpool1d_backward_s8(QTensor(np.array([[[40, -20, 30]]], dtype=np.int8), Scale(-4)), arg, 5, 3, 1)
    assert e.m.tolist() == [[[0, 0, 50, 0, 0]]] and e.scale == Scale(-4)


@pytest.mark.parametrize("window", [1, 2, 3, 4, 5, 7, 9, 16, 25, 49, 64, 65, 100, 255, 1000, 1024, 4096, 8192, 10_000])
def test_avgpool_multiplier(window):
    m, n = avgpool_multiplier(window)
    bits = min(15, 30 - (127 * window).bit_length())
    assert 127 * window * m <= 2**30  # the int32 accumulator bound
    assert m % 2 == 1 or n == 0
    if window & (window - 1) == 0:
        assert m == 1 and 2**n == window  # exact change of scale
    assert abs(m / 2**n * window - 1) <= 2.0**-bits


def test_avgpool_multiplier_rejects_bad_windows():
    with pytest.raises(ValueError):
        avgpool_multiplier(0)
    with pytest.raises(ValueError, match="too large"):
        avgpool_multiplier(2**23)


@given(g=pool_geometries(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
def test_avgpool_equals_definition_and_matches_torch(g, seed, mode):
    rng = np.random.default_rng(seed)
    x = qrand(rng, (g["b"], g["c"]) + g["hw"], Scale(-5, 1, 0))
    err = qrand(rng, (g["b"], g["c"]) + out_hw(g), Scale(-8, 0, 1))
    area = g["kernel"][0] * g["kernel"][1]
    m, n = avgpool_multiplier(area)
    y = avgpool2d_forward_s8(x, g["kernel"], g["stride"], mode)
    q, s = rescale(window_sums(x.m, g["kernel"], g["stride"]) * m, x.scale.shifted(-n), 8, mode)
    assert np.array_equal(y.m, q) and y.scale == s
    e = avgpool2d_backward_s8(err, g["hw"], g["kernel"], g["stride"], mode)
    q, s = rescale(window_spread(err.m, g["hw"], g["kernel"], g["stride"]) * m, err.scale.shifted(-n), 8, mode)
    assert np.array_equal(e.m, q) and e.scale == s

    xt = torch.tensor(x.dequantize(), requires_grad=True)
    yt = torch.nn.functional.avg_pool2d(xt, g["kernel"], g["stride"])
    yt.backward(torch.tensor(err.dequantize()))
    rel = abs(m / 2**n * area - 1)  # the fixed-point reciprocal's error (0 for powers of two)
    ref = yt.detach().numpy()
    assert np.abs(y.dequantize() - ref).max() <= 0.5 * y.scale.to_float() + rel * np.abs(ref).max() + 1e-12
    ref = xt.grad.numpy()
    assert np.abs(e.dequantize() - ref).max() <= 0.5 * e.scale.to_float() + rel * np.abs(ref).max() + 1e-12


def test_avgpool_power_of_two_window_is_exact_when_it_fits():
    x = QTensor(np.array([[[[1, 2], [3, 5]]]], dtype=np.int8), Scale(0))
    y = avgpool2d_forward_s8(x, 2)
    assert y.m.tolist() == [[[[11]]]] and y.scale == Scale(-2)  # 11/4 exactly, no rounding
    e = avgpool2d_backward_s8(QTensor(np.array([[[[12]]]], dtype=np.int8), Scale(0)), (2, 2), 2)
    assert (e.m == 12).all() and e.scale == Scale(-2)  # 12/4 = 3 at every input


@given(b=st.integers(1, 3), c=st.integers(1, 4), spatial=st.sampled_from([(7,), (16,), (3, 5), (4, 4), (1, 1), (50,)]),
       seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
def test_global_avgpool_matches_torch(b, c, spatial, seed, mode):
    rng = np.random.default_rng(seed)
    x = qrand(rng, (b, c) + spatial, Scale(-6))
    err = qrand(rng, (b, c), Scale(-9))
    y = global_avgpool_forward_s8(x, mode)
    area = int(np.prod(spatial))
    m, n = avgpool_multiplier(area)
    q, s = rescale(x.m.reshape(b, c, -1).astype(np.int64).sum(axis=2) * m, x.scale.shifted(-n), 8, mode)
    assert y.m.shape == (b, c) and np.array_equal(y.m, q) and y.scale == s
    e = global_avgpool_backward_s8(err, (c,) + spatial, mode)
    assert e.m.shape == x.m.shape and e.m.flags.c_contiguous
    xt = torch.tensor(x.dequantize(), requires_grad=True)
    yt = xt.flatten(2).mean(dim=2)
    yt.backward(torch.tensor(err.dequantize()))
    rel = abs(m / 2**n * area - 1)
    ref = yt.detach().numpy()
    assert np.abs(y.dequantize() - ref).max() <= 0.5 * y.scale.to_float() + rel * np.abs(ref).max() + 1e-12
    ref = xt.grad.numpy()
    assert np.abs(e.dequantize() - ref).max() <= 0.5 * e.scale.to_float() + rel * np.abs(ref).max() + 1e-12


@given(b=st.integers(1, 3), c=st.integers(1, 3), k=st.integers(1, 5), s=st.integers(1, 5), extra=st.integers(0, 9),
       seed=st.integers(0, 2**32 - 1))
def test_1d_pools_match_torch(b, c, k, s, extra, seed):
    rng = np.random.default_rng(seed)
    length = k + extra
    x = qrand(rng, (b, c, length), Scale(-5))
    lo = (length - k) // s + 1
    err = qrand(rng, (b, c, lo), Scale(-8))
    xt = torch.tensor(x.dequantize(), requires_grad=True)
    yt = torch.nn.functional.max_pool1d(xt, k, s)
    yt.backward(torch.tensor(err.dequantize()))
    y, arg = maxpool1d_forward_s8(x, k, s)
    assert np.array_equal(y.dequantize(), yt.detach().numpy()) and arg.shape == (b, c, lo)
    e = maxpool1d_backward_s8(err, arg, length, k, s)
    assert np.abs(e.dequantize() - xt.grad.numpy()).max() <= 0.5 * e.scale.to_float() * (e.scale != err.scale)

    xt = torch.tensor(x.dequantize(), requires_grad=True)
    yt = torch.nn.functional.avg_pool1d(xt, k, s)
    yt.backward(torch.tensor(err.dequantize()))
    y = avgpool1d_forward_s8(x, k, s)
    e = avgpool1d_backward_s8(err, length, k, s)
    m, n = avgpool_multiplier(k)
    rel = abs(m / 2**n * k - 1)
    for got, ref in ((y, yt.detach().numpy()), (e, xt.grad.numpy())):
        assert got.m.shape == ref.shape
        assert np.abs(got.dequantize() - ref).max() <= 0.5 * got.scale.to_float() + rel * np.abs(ref).max() + 1e-12


def test_pool_window_larger_than_input_raises():
    x = QTensor(np.zeros((1, 1, 3, 3), dtype=np.int8), Scale(0))
    with pytest.raises(ValueError, match="does not fit"):
        maxpool2d_forward_s8(x, 4)
    with pytest.raises(ValueError, match="does not fit"):
        avgpool2d_forward_s8(x, (1, 4))
