import numpy as np
import torch
from hypothesis import given, strategies as st

from tintin.numerics import QTensor, Scale, ScaleMode
from tintin.ops import (linear_backward_bias_s32, linear_backward_input_s8, linear_backward_weight_s32,
                        linear_forward_s8, relu_backward_s8, relu_forward_s8)

scales = st.builds(Scale, st.integers(-12, -2), st.integers(0, 2), st.integers(0, 2))


def qrand(rng, shape, scale, bits=8, lo=None):
    lim = 2 ** (bits - 1) - 1
    m = rng.integers(-lim if lo is None else lo, lim + 1, size=shape)
    return QTensor(m.astype(np.int8 if bits == 8 else np.int32), scale)


def unit(t: QTensor) -> float:
    return t.scale.to_float()


@given(b=st.integers(1, 9), k=st.integers(1, 70), n=st.integers(1, 40), sx=scales, sw=scales,
       seed=st.integers(0, 2**31), mode=st.sampled_from(list(ScaleMode)), bias=st.booleans())
def test_linear_forward_and_backward_match_float_gradients(b, k, n, sx, sw, seed, mode, bias):
    rng = np.random.default_rng(seed)
    x, w = qrand(rng, (b, k), sx), qrand(rng, (n, k), sw)
    bq = QTensor(rng.integers(-(2**20), 2**20, size=n).astype(np.int32), Scale(-20)) if bias else None
    err = qrand(rng, (b, n), Scale(-9, 1, 0))

    xt = torch.tensor(x.dequantize(), requires_grad=True)
    wt = torch.tensor(w.dequantize(), requires_grad=True)
    bt = torch.tensor(bq.dequantize(), requires_grad=True) if bias else None
    yt = torch.nn.functional.linear(xt, wt, bt)
    yt.backward(torch.tensor(err.dequantize()))

    y = linear_forward_s8(x, w, bq, mode)
    # forward: nearest rounding of the exact sum, plus the bias alignment (half an accumulator unit
    # and the 15-bit multiplier's relative error, below 2**-13 for these scale ratios)
    bias_err = 0.5 * unit(x) * unit(w) + (np.abs(bq.dequantize()).max() * 2.0**-13 if bias else 0.0)
    assert np.abs(y.dequantize() - yt.detach().numpy()).max() <= 0.5 * unit(y) + bias_err + 1e-12
    e_in = linear_backward_input_s8(err, w, mode)
    assert np.abs(e_in.dequantize() - xt.grad.numpy()).max() <= 0.5 * unit(e_in) + 1e-12
    g = linear_backward_weight_s32(err, x)
    assert g.m.dtype == np.int32
    np.testing.assert_allclose(g.dequantize(), wt.grad.numpy(), rtol=1e-12, atol=1e-300)  # exact
    if bias:
        gb = linear_backward_bias_s32(err)
        np.testing.assert_allclose(gb.dequantize(), bt.grad.numpy(), rtol=1e-12, atol=1e-300)


@given(st.integers(0, 2**31), st.sampled_from(list(ScaleMode)))
def test_relu_forward_backward(seed, mode):
    rng = np.random.default_rng(seed)
    x = qrand(rng, (5, 13), Scale(-6))
    err = qrand(rng, (5, 13), Scale(-8))
    y = relu_forward_s8(x)
    assert (y.m == np.maximum(x.m, 0)).all() and y.scale == x.scale
    xt = torch.tensor(x.dequantize(), requires_grad=True)
    torch.relu(xt).backward(torch.tensor(err.dequantize()))
    e_in = relu_backward_s8(err, y)
    np.testing.assert_array_equal(e_in.dequantize(), xt.grad.numpy())
    assert e_in.m.dtype == np.int8


def test_linear_saturation_free_at_extremes():
    # the largest possible accumulator still rescales into int8 without wrap-around
    k = 4096
    x = QTensor(np.full((2, k), 127, np.int8), Scale(-7))
    x.m[1] = -127
    w = QTensor(np.full((3, k), 127, np.int8), Scale(-7))
    y = linear_forward_s8(x, w, None, ScaleMode.COMPOUND)
    assert y.m[0].min() > 100 and y.m[1].max() < -100
    np.testing.assert_allclose(y.dequantize(), x.dequantize() @ w.dequantize().T, rtol=0.01)
