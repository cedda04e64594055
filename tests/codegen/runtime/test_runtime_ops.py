"""C kernels of the fully connected layer, ReLU and the losses equal tintin.ops bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tintin.numerics import QTensor, Scale, ScaleMode, apply_multiplier, ratio_multiplier
from tintin.ops import (linear_backward_bias_s32, linear_backward_input_s8, linear_backward_weight_s32,
                        linear_forward_s8, mse_error, relu_backward_s8, relu_forward_s8,
                        softmax_cross_entropy_error, softmax_probabilities_q15)
from tintin.ops.linear import align_bias
from tintin.train.step import predict_argmax

MODES = [ScaleMode.POW2, ScaleMode.COMPOUND]
scales = st.builds(Scale, st.integers(-20, 4), st.integers(-2, 2), st.integers(-2, 2))


@st.composite
def int8_matrix(draw, rows, cols, lo=-127, hi=127):
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["random", "extreme", "sparse", "zeros"]))
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros((rows, cols), np.int8)
    if kind == "extreme":
        return rng.choice(np.array([lo, hi, 0], np.int8), size=(rows, cols))
    m = rng.integers(lo, hi + 1, size=(rows, cols)).astype(np.int8)
    if kind == "sparse":
        m[rng.random((rows, cols)) < 0.7] = 0
    return m


@st.composite
def linear_case(draw):
    b, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 40)), draw(st.integers(1, 12))
    x = QTensor(draw(int8_matrix(b, k)), draw(scales))
    w = QTensor(draw(int8_matrix(n, k)), draw(scales))
    bias = None
    if draw(st.booleans()):
        seed = draw(st.integers(0, 2**32 - 1))
        lim = draw(st.sampled_from([10, 2**20, 2**30]))
        bias = QTensor(np.random.default_rng(seed).integers(-lim, lim + 1, n).astype(np.int32),
                       draw(st.builds(Scale, st.integers(-30, 0), st.integers(-2, 2), st.integers(-2, 2))))
    err = QTensor(draw(int8_matrix(b, n)), draw(scales))
    return x, w, bias, err


def same(a: QTensor, b: QTensor) -> bool:
    return a.scale == b.scale and a.m.dtype == b.m.dtype and np.array_equal(a.m, b.m)


@pytest.mark.parametrize("mode", MODES)
@given(case=linear_case(), scratch=st.booleans())
def test_linear_forward(rt, mode, case, scratch):
    x, w, bias, _ = case
    assert same(rt.linear_forward_s8(x, w, bias, mode, scratch=scratch), linear_forward_s8(x, w, bias, mode))


@given(case=linear_case())
def test_align_bias(rt, case):
    x, w, bias, _ = case
    if bias is not None:
        acc_scale = x.scale * w.scale
        assert np.array_equal(rt.align_bias(bias, acc_scale), align_bias(bias, acc_scale))


@pytest.mark.parametrize("mode", MODES)
@given(case=linear_case(), scratch=st.booleans())
def test_linear_backward_input(rt, mode, case, scratch):
    _, w, _, err = case
    assert same(rt.linear_backward_input_s8(err, w, mode, scratch=scratch), linear_backward_input_s8(err, w, mode))


@given(case=linear_case(), data=st.data())
def test_linear_backward_weight_and_bias(rt, case, data):
    x, _, _, err = case
    full = rt.linear_backward_weight_s32(err, x)
    assert same(full, linear_backward_weight_s32(err, x))
    n = err.m.shape[1]
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n)), dtype=np.int64)
    sub = rt.linear_backward_weight_s32(err, x, rows)
    assert sub.scale == full.scale and np.array_equal(sub.m, full.m[rows])
    assert same(rt.linear_backward_bias_s32(err), linear_backward_bias_s32(err))


def test_linear_full_range_accumulators(rt):
    """Largest products (+-127 x +-127) over a long fan-in, with a bias at the clip limit."""
    k = 4000
    x = QTensor(np.full((2, k), 127, np.int8), Scale(-7))
    x.m[1] = -127
    w = QTensor(np.full((3, k), -127, np.int8), Scale(-7))
    bias = QTensor(np.array([2**30, -2**30, 5], np.int32), Scale(-14))
    for mode in MODES:
        for b in (None, bias):
            assert same(rt.linear_forward_s8(x, w, b, mode), linear_forward_s8(x, w, b, mode))
            assert same(rt.linear_forward_s8(x, w, b, mode, scratch=False), linear_forward_s8(x, w, b, mode))
        assert same(rt.linear_backward_input_s8(QTensor(w.m[:, :2].T.copy(), Scale(-7)), w, mode),
                    linear_backward_input_s8(QTensor(w.m[:, :2].T.copy(), Scale(-7)), w, mode))


def test_linear_shape_errors(rt):
    x = QTensor(np.zeros((2, 3), np.int8), Scale(0))
    with pytest.raises(ValueError):
        rt.linear_forward_s8(x, QTensor(np.zeros((4, 5), np.int8), Scale(0)), None)
    with pytest.raises(rt.HostRuntimeError) as exc:
        rt.linear_forward_s8(QTensor(np.zeros((1, 70000), np.int8), Scale(0)),
                             QTensor(np.zeros((1, 70000), np.int8), Scale(0)), None)
    assert exc.value.status == rt.TT_ERR_SHAPE
    with pytest.raises(rt.HostRuntimeError) as exc:  # bias scale 100 u steps away from the accumulator's
        rt.linear_forward_s8(x, QTensor(np.zeros((4, 3), np.int8), Scale(0)),
                             QTensor(np.zeros(4, np.int32), Scale(0, 100, 0)))
    assert exc.value.status == rt.TT_ERR_RANGE


@given(x=int8_matrix(3, 17), e=int8_matrix(3, 17))
def test_relu(rt, x, e):
    xq, eq = QTensor(x, Scale(-5)), QTensor(e, Scale(-9, 1, 0))
    y = rt.relu_forward_s8(xq)
    assert same(y, relu_forward_s8(xq))
    assert same(rt.relu_backward_s8(eq, y), relu_backward_s8(eq, y))


@st.composite
def logits_case(draw):
    b, c = draw(st.integers(1, 8)), draw(st.integers(1, 20))
    m = draw(int8_matrix(b, c))
    # logit scales from tiny (all probabilities equal) to huge (negative shift: one-hot softmax)
    scale = draw(st.builds(Scale, st.integers(-16, 8), st.integers(-3, 3), st.integers(-3, 3)))
    labels = np.array(draw(st.lists(st.integers(0, c - 1), min_size=b, max_size=b)), dtype=np.int64)
    return QTensor(m, scale), labels


@pytest.mark.parametrize("mode", MODES)
@given(case=logits_case())
def test_softmax_cross_entropy(rt, mode, case):
    logits, labels = case
    err, loss = rt.softmax_cross_entropy_error(logits, labels, mode)
    werr, wloss = softmax_cross_entropy_error(logits, labels, mode)
    assert same(err, werr)
    assert loss == wloss
    assert np.array_equal(rt.softmax_probabilities_q15(logits), softmax_probabilities_q15(logits))


def test_softmax_edges(rt):
    for m in ([[0, 0, 0]], [[127, -127, 0]], [[-127, -127, -127, 127]], [[5]], [[127] * 10, [-127] * 10]):
        a = np.array(m, np.int8)
        labels = np.zeros(len(a), np.int64)
        for scale in (Scale(-30), Scale(-7), Scale(0), Scale(3), Scale(12), Scale(40)):
            q = QTensor(a, scale)
            err, loss = rt.softmax_cross_entropy_error(q, labels, ScaleMode.COMPOUND)
            werr, wloss = softmax_cross_entropy_error(q, labels, ScaleMode.COMPOUND)
            assert same(err, werr) and loss == wloss, (m, scale)
    with pytest.raises(rt.HostRuntimeError) as exc:
        rt.softmax_cross_entropy_error(QTensor(np.zeros((1, 3), np.int8), Scale(-4)), np.array([3]))
    assert exc.value.status == rt.TT_ERR_ARG


@pytest.mark.parametrize("mode", MODES)
@given(p=int8_matrix(4, 6), t=int8_matrix(4, 6), ps=scales, ts=st.builds(Scale, st.integers(-12, 2)))
def test_mse(rt, mode, p, t, ps, ts):
    pred, target = QTensor(p, ps), QTensor(t, ts)
    werr, wloss = mse_error(pred, target, mode)
    aligned = apply_multiplier(t, ratio_multiplier(ts / ps), limit=1 << 30)
    exact = sum((int(a) - int(b)) ** 2 for a, b in zip(p.ravel(), aligned.ravel()))  # Python ints: no wrap
    if exact >= 2**63:
        # beyond int64 the numpy sum wraps; the C kernel saturates and says so
        with pytest.raises(rt.HostRuntimeError) as exc:
            rt.mse_error(pred, target, mode)
        assert exc.value.status == rt.TT_ERR_OVERFLOW
        return
    err, loss = rt.mse_error(pred, target, mode)
    assert same(err, werr)
    assert loss == wloss


def test_mse_target_scale_far_above_prediction(rt):
    """Target scale 2**20 x the prediction's: aligned target clipped at 2**30 (left-shift path)."""
    pred = QTensor(np.array([[1, -1, 127]], np.int8), Scale(-10))
    target = QTensor(np.array([[127, -127, 3]], np.int8), Scale(10))
    for mode in MODES:
        err, loss = rt.mse_error(pred, target, mode)
        werr, wloss = mse_error(pred, target, mode)
        assert same(err, werr) and loss == wloss


@given(m=int8_matrix(5, 7, -3, 3))
def test_argmax_first_maximum(rt, m):
    assert np.array_equal(rt.predict_argmax(m), predict_argmax(m))


def test_mse_loss_beyond_int64_is_reported(rt):
    """24 differences of 2**30 + 127 (aligned target clipped): the exact loss exceeds int64; C saturates
    with TT_ERR_OVERFLOW (the numpy sum would wrap)."""
    pred = QTensor(np.full((4, 6), -127, np.int8), Scale(-20))
    target = QTensor(np.full((4, 6), 127, np.int8), Scale(4))
    assert 24 * (2**30 + 127) ** 2 >= 2**63
    with pytest.raises(rt.HostRuntimeError) as exc:
        rt.mse_error(pred, target, ScaleMode.POW2)
    assert exc.value.status == rt.TT_ERR_OVERFLOW
