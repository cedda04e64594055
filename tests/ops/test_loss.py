import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from tintin.numerics import QTensor, Scale, ScaleMode
from tintin.numerics.tables import EXP2_Q15, LOG2_Q16, exp2_frac_q15, log2_q16
from tintin.ops import mse_error, softmax_cross_entropy_error, softmax_probabilities_q15


@given(b=st.integers(1, 16), c=st.integers(2, 30), s=st.integers(-9, 0), u=st.integers(-2, 2),
       seed=st.integers(0, 2**31), mode=st.sampled_from(list(ScaleMode)))
def test_softmax_cross_entropy_matches_float(b, c, s, u, seed, mode):
    rng = np.random.default_rng(seed)
    logits = QTensor(rng.integers(-127, 128, size=(b, c)).astype(np.int8), Scale(s, u, 0))
    labels = rng.integers(0, c, size=b)
    z = torch.tensor(logits.dequantize(), requires_grad=True)
    loss = torch.nn.functional.cross_entropy(z, torch.tensor(labels), reduction="sum")
    loss.backward()
    err, lv = softmax_cross_entropy_error(logits, labels, mode)
    assert err.m.dtype == np.int8
    # error = p - onehot: probabilities to ~2**-12, then int8 rounding of the error tensor
    assert np.abs(err.dequantize() - z.grad.numpy()).max() <= 0.5 * err.scale.to_float() + 2e-3
    # loss value: per sample within a few thousandths of a nat (tables); the base-2 exponent of
    # the label's logit is clipped at -31 (the spec), so the loss is logsumexp(z - max) - max(z_y - max, -31 ln 2)
    zz = logits.dequantize() - logits.dequantize().max(axis=1, keepdims=True)
    lse = np.log(np.exp(zz).sum(axis=1))
    expected = (lse - np.maximum(zz[np.arange(b), labels], -31 * math.log(2))).sum()
    assert abs(lv.to_float() - expected) <= b * 3e-3


def test_probabilities_sum_to_one_in_q15():
    rng = np.random.default_rng(0)
    logits = QTensor(rng.integers(-127, 128, size=(50, 10)).astype(np.int8), Scale(-4))
    p = softmax_probabilities_q15(logits)
    assert np.abs(p.sum(axis=1) - 32768).max() <= 10
    assert (p >= 0).all()


def test_extreme_logits_do_not_overflow():
    logits = QTensor(np.array([[127, -127, 0], [-127, -127, -127]], np.int8), Scale(4))  # huge scale
    err, lv = softmax_cross_entropy_error(logits, np.array([1, 0]), ScaleMode.COMPOUND)
    assert np.isfinite(lv.to_float()) and lv.to_float() > 0
    assert err.m[0, 1] < 0 and err.m[0, 0] > 0
    tiny = QTensor(np.array([[1, 0, 0]], np.int8), Scale(-30))  # nearly uniform
    p = softmax_probabilities_q15(tiny)
    assert np.abs(p - 32768 / 3).max() <= 2


def test_tables():
    assert EXP2_Q15[0] == 32768 and EXP2_Q15[-1] == 65536
    assert LOG2_Q16[0] == 0 and LOG2_Q16[-1] == 65536
    f = np.arange(0, 65536, 97)
    np.testing.assert_allclose(exp2_frac_q15(f) / 32768, 2.0 ** (f / 65536), atol=4e-5)
    for x in [1, 2, 3, 5, 1000, 32768, 99991, 2**40 + 12345]:
        assert abs(log2_q16(x) / 65536 - math.log2(x)) < 3e-5
    with pytest.raises(ValueError):
        log2_q16(0)


@given(st.integers(0, 2**31), st.sampled_from(list(ScaleMode)))
def test_mse_error_matches_float(seed, mode):
    rng = np.random.default_rng(seed)
    pred = QTensor(rng.integers(-127, 128, size=(4, 6)).astype(np.int8), Scale(-5, 1, 0))
    target = QTensor(rng.integers(-127, 128, size=(4, 6)).astype(np.int8), Scale(-6))
    p = torch.tensor(pred.dequantize(), requires_grad=True)
    loss = 0.5 * ((p - torch.tensor(target.dequantize())) ** 2).sum()
    loss.backward()
    err, lv = mse_error(pred, target, mode)
    tol = 0.5 * err.scale.to_float() + 0.5 * pred.scale.to_float()
    assert np.abs(err.dequantize() - p.grad.numpy()).max() <= tol + 1e-12
    assert abs(lv.to_float() - loss.item()) <= 0.02 * loss.item() + 1e-9


def test_mse_shape_mismatch():
    a = QTensor(np.zeros((2, 3), np.int8), Scale(0))
    with pytest.raises(ValueError, match="shape"):
        mse_error(a, QTensor(np.zeros((2, 4), np.int8), Scale(0)))
