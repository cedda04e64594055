import numpy as np
import pytest
import torch
from hypothesis import example, given, strategies as st

from tintin.numerics import QTensor, Scale, ScaleMode, rescale
from tintin.ops.residual import (RESIDUAL_MAX_SHIFT, log2_ratio_floor, residual_add_backward_s8, residual_add_s8,
                                 residual_working_scale)
from tintin.ops.scaling import (channel_scale_backward_bias_s32, channel_scale_backward_input_s8,
                                channel_scale_backward_weight_s32, channel_scale_forward_s8)

wide_scales = st.builds(Scale, st.integers(-40, 10), st.integers(-6, 6), st.integers(-6, 6))


def qrand(rng, shape, scale):
    return QTensor(rng.integers(-127, 128, size=shape).astype(np.int8), scale)


@given(a=wide_scales, b=wide_scales)
def test_log2_ratio_floor(a, b):
    ratio = a.to_float() / b.to_float()
    e = log2_ratio_floor(a, b)
    # exact floor(log2) except within the 15-bit multiplier's rounding of a power of two
    assert 2.0**e <= ratio * (1 + 2**-13) and ratio < 2.0 ** (e + 1) * (1 + 2**-13)


@given(sa=wide_scales, sb=wide_scales, seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
@example(sa=Scale(0), sb=Scale(-23, 0, -1), seed=0, mode=ScaleMode.POW2)  # ratio 2**22.6: floor differs by order
def test_residual_add_matches_float_for_any_two_scales(sa, sb, seed, mode):
    rng = np.random.default_rng(seed)
    a, b = qrand(rng, (3, 2, 4, 5), sa), qrand(rng, (3, 2, 4, 5), sb)
    y = residual_add_s8(a, b, mode)
    assert y.m.dtype == np.int8 and y.m.shape == a.m.shape
    work = residual_working_scale(a.scale, b.scale)
    ref = a.dequantize() + b.dequantize()
    # final nearest rounding + each conversion to the working scale (half a working unit, and the
    # multiplier's relative error of the converted value)
    conv = 2 * 0.5 * work.to_float() + 2**-13 * (np.abs(a.dequantize()).max() + np.abs(b.dequantize()).max())
    assert np.abs(y.dequantize() - ref).max() <= 0.5 * y.scale.to_float() + conv
    # the order of the operands does not matter
    z = residual_add_s8(b, a, mode)
    assert np.array_equal(y.m, z.m) and y.scale == z.scale


def test_residual_add_equal_and_power_of_two_scales_are_exact():
    rng = np.random.default_rng(1)
    a, b = qrand(rng, (4, 33), Scale(-7, 1, 1)), qrand(rng, (4, 33), Scale(-7, 1, 1))
    y = residual_add_s8(a, b, ScaleMode.COMPOUND)
    q, s = rescale(a.m.astype(np.int32) + b.m, a.scale, 8, ScaleMode.COMPOUND)
    assert np.array_equal(y.m, q) and y.scale == s
    # 2**5 apart: b is exactly 32 units of a's scale
    b = qrand(rng, (4, 33), Scale(-2, 1, 1))
    y = residual_add_s8(a, b, ScaleMode.POW2)
    q, s = rescale(a.m.astype(np.int32) + 32 * b.m.astype(np.int32), a.scale, 8, ScaleMode.POW2)
    assert np.array_equal(y.m, q) and y.scale == s


def test_residual_add_very_different_scales():
    a = QTensor(np.array([[127, -127, 1, 0]], dtype=np.int8), Scale(-3))
    b = QTensor(np.array([[127, 127, -127, 5]], dtype=np.int8), Scale(-40))
    assert residual_working_scale(a.scale, b.scale) == Scale(-3 - RESIDUAL_MAX_SHIFT)
    y = residual_add_s8(a, b)
    # the fine operand is far below the coarse one's resolution; no int32 overflow, no wrap-around
    np.testing.assert_allclose(y.dequantize(), a.dequantize(), atol=y.scale.to_float())
    assert y.m.tolist() == [[127, -127, 1, 0]]
    # and when the coarse tensor is all zeros the fine values survive at the capped working scale
    z = residual_add_s8(QTensor(np.zeros((1, 4), dtype=np.int8), Scale(-3)),
                        QTensor(np.array([[0, 0, 0, 127]], dtype=np.int8), Scale(-20)))
    np.testing.assert_allclose(z.dequantize(), [[0, 0, 0, 127 * 2.0**-20]], rtol=2**-6)


def test_residual_add_rejects_shape_mismatch_and_backward_copies():
    a = QTensor(np.zeros((2, 3), dtype=np.int8), Scale(0))
    with pytest.raises(ValueError, match="equal shapes"):
        residual_add_s8(a, QTensor(np.zeros((2, 4), dtype=np.int8), Scale(0)))
    e1, e2 = residual_add_backward_s8(a)
    assert e1 is a and e2 is a


@given(shape=st.sampled_from([(3, 4), (2, 4, 7), (2, 3, 4, 5)]), seed=st.integers(0, 2**32 - 1),
       mode=st.sampled_from(list(ScaleMode)), bias=st.booleans())
def test_channel_scale_matches_torch(shape, seed, mode, bias):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = qrand(rng, shape, Scale(-6))
    gamma = qrand(rng, (c,), Scale(-7, 1, 0))
    beta = QTensor(rng.integers(-(2**21), 2**21, size=c).astype(np.int32), Scale(-20)) if bias else None
    err = qrand(rng, shape, Scale(-9))
    view = (1, c) + (1,) * (len(shape) - 2)
    xt = torch.tensor(x.dequantize(), requires_grad=True)
    gt = torch.tensor(gamma.dequantize(), requires_grad=True)
    yt = xt * gt.view(view)
    if bias:
        bt = torch.tensor(beta.dequantize(), requires_grad=True)
        yt = yt + bt.view(view)
    yt.backward(torch.tensor(err.dequantize()))
    y = channel_scale_forward_s8(x, gamma, beta, mode)
    bias_err = 0.5 * x.scale.to_float() * gamma.scale.to_float() + (np.abs(beta.dequantize()).max() * 2.0**-13 if bias else 0)
    assert np.abs(y.dequantize() - yt.detach().numpy()).max() <= 0.5 * y.scale.to_float() + bias_err + 1e-12
    e = channel_scale_backward_input_s8(err, gamma, mode)
    assert np.abs(e.dequantize() - xt.grad.numpy()).max() <= 0.5 * e.scale.to_float() + 1e-12
    g = channel_scale_backward_weight_s32(err, x)
    assert g.m.dtype == np.int32
    np.testing.assert_allclose(g.dequantize(), gt.grad.numpy(), rtol=1e-12, atol=1e-300)
    if bias:
        np.testing.assert_allclose(channel_scale_backward_bias_s32(err).dequantize(), bt.grad.numpy(), rtol=1e-12,
                                   atol=1e-300)
