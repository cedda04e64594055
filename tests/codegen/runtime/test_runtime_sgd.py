"""C optimiser updates equal tintin.optim.IntegerSGD.update bit for bit."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tintin.nn.module import Context, Parameter
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode
from tintin.optim import IntegerSGD, OptimConfig

ROUNDINGS = [Rounding.NEAREST, Rounding.STOCHASTIC, Rounding.PSEUDO_STOCHASTIC]


def python_step(kind, value, bits, grad, cfg, mode, batch, seed, momentum=None, rows=None):
    """One IntegerSGD.update; returns (value, momentum, stream key, optimizer)."""
    p = Parameter("p", kind, value.copy(), bits)
    p.momentum = None if momentum is None else momentum.copy()
    p.trainable_rows = rows
    opt = IntegerSGD([p], cfg, mode)
    opt.batch_size = batch
    p.grad = grad
    stream = RoundingStream(seed, 3)
    opt.update(p, Context(mode=mode, stream=stream))
    return p.value, p.momentum, stream.key(0), opt


def c_step(rt, kind, value, grad, opt, key, momentum=None, rows=None):
    return rt.sgd_update(kind, value, grad, rt.SgdConfig.from_optimizer(opt), key, momentum, rows)


@st.composite
def update_case(draw, kind="weight"):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bits = 32 if kind == "bias" else draw(st.sampled_from([8, 16]))
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    shape = (n,) if kind == "bias" else (n, k)
    limit = {8: 127, 16: 32767, 32: 2**30}[bits]
    wmax = draw(st.sampled_from([0, 3, limit // 2, limit]))
    dtype = {8: np.int8, 16: np.int16, 32: np.int32}[bits]
    w = rng.integers(-wmax, wmax + 1, shape).astype(dtype)
    if wmax and draw(st.booleans()):
        w.flat[0] = limit  # a weight at the edge of the range
    gmax = draw(st.sampled_from([0, 1, 200, 16129, 2**20, 2**30]))
    g = rng.integers(-gmax, gmax + 1, shape).astype(np.int32)
    w_scale = draw(st.builds(Scale, st.integers(-18, -2), st.integers(0, 2), st.integers(0, 2)))
    if kind == "bias":
        w_scale = Scale(-20)
    g_scale = draw(st.builds(Scale, st.integers(-30, -8), st.integers(-3, 3), st.integers(-3, 3)))
    cfg = OptimConfig(rule=draw(st.sampled_from(["aligned", "niti"])), lr=draw(st.sampled_from([0.01, 0.1, 0.5, 1.7])),
                      mu=draw(st.integers(1, 8)), rounding=draw(st.sampled_from(ROUNDINGS)),
                      momentum_shift=draw(st.sampled_from([0, 0, 1, 3, 8])), weight_rescale=draw(st.booleans()))
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    return (QTensor(w, w_scale), bits, QTensor(g, g_scale), cfg, mode, draw(st.integers(1, 64)),
            draw(st.integers(0, 2**32 - 1)))


def assert_same(c_value, c_mom, py_value, py_mom):
    assert c_value.scale == py_value.scale
    assert c_value.m.dtype == py_value.m.dtype and np.array_equal(c_value.m, py_value.m)
    if py_mom is None:
        assert c_mom is None
    else:
        assert np.array_equal(c_mom, py_mom)


@given(case=update_case("weight"))
def test_weight_update(rt, case):
    value, bits, grad, cfg, mode, batch, seed = case
    pv, pm, key, opt = python_step("weight", value, bits, grad, cfg, mode, batch, seed)
    cv, cm = c_step(rt, "weight", value, grad, opt, key)
    assert_same(cv, cm, pv, pm)


@given(case=update_case("bias"))
def test_bias_update(rt, case):
    value, bits, grad, cfg, mode, batch, seed = case
    pv, pm, key, opt = python_step("bias", value, bits, grad, cfg, mode, batch, seed)
    cv, cm = c_step(rt, "bias", value, grad, opt, key)
    assert_same(cv, cm, pv, pm)


@given(case=update_case("weight"), data=st.data())
def test_row_subset_update(rt, case, data):
    value, bits, grad, cfg, mode, batch, seed = case
    n = value.m.shape[0]
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
    pv, pm, key, opt = python_step("weight", value, bits, grad, cfg, mode, batch, seed, rows=rows)
    cv, cm = c_step(rt, "weight", value, grad, opt, key, rows=rows)
    assert_same(cv, cm, pv, pm)
    frozen = np.setdiff1d(np.arange(n), rows)
    assert np.array_equal(cv.m[frozen], value.m[frozen])


@given(case=update_case("bias"), data=st.data())
def test_bias_row_subset_update(rt, case, data):
    value, bits, grad, cfg, mode, batch, seed = case
    n = value.m.shape[0]
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
    pv, pm, key, opt = python_step("bias", value, bits, grad, cfg, mode, batch, seed, rows=rows)
    cv, cm = c_step(rt, "bias", value, grad, opt, key, rows=rows)
    assert_same(cv, cm, pv, pm)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_momentum_over_many_steps_with_rescales(rt, bits, rounding):
    """Momentum state and weight scale evolve identically over 12 updates that overflow the range."""
    rng = np.random.default_rng(bits)
    limit = 127 if bits == 8 else 32767
    dtype = np.int8 if bits == 8 else np.int16
    cfg = OptimConfig(lr=1.7, rounding=rounding, momentum_shift=2, weight_rescale=True)
    mode = ScaleMode.COMPOUND
    py_value = c_value = QTensor(rng.integers(-limit, limit + 1, (5, 9)).astype(dtype), Scale(-9 if bits == 8 else -17, 1, 2))
    py_mom = c_mom = None
    scales = set()
    for step in range(12):
        grad = QTensor(rng.integers(-2**14, 2**14, (5, 9)).astype(np.int32), Scale(-14))
        py_value, py_mom, key, opt = python_step("weight", py_value, bits, grad, cfg, mode, 2, step, py_mom)
        c_value, c_mom = c_step(rt, "weight", c_value, grad, opt, key, c_mom)
        assert_same(c_value, c_mom, py_value, py_mom)
        scales.add(py_value.scale)
    assert len(scales) > 2  # the grid rescale really happened, more than once


def test_niti_rule_all_zero_gradient_leaves_the_weight(rt):
    value = QTensor(np.array([[127, -3], [0, 5]], np.int8), Scale(-7))
    grad = QTensor(np.zeros((2, 2), np.int32), Scale(-20))
    pv, pm, key, opt = python_step("weight", value, 8, grad, OptimConfig(rule="niti", momentum_shift=3),
                                   ScaleMode.POW2, 4, 1)
    cv, cm = c_step(rt, "weight", value, grad, opt, key)
    assert_same(cv, cm, pv, pm)
    assert np.array_equal(cv.m, value.m) and cv.scale == value.scale


def test_niti_rule_small_gradient_shifts_left(rt):
    """max|g| has fewer than mu bits: delta = g << (mu - bitlen)."""
    value = QTensor(np.zeros((1, 4), np.int8), Scale(-7))
    grad = QTensor(np.array([[1, -1, 2, 0]], np.int32), Scale(-20))
    pv, pm, key, opt = python_step("weight", value, 8, grad, OptimConfig(rule="niti", mu=5), ScaleMode.POW2, 1, 0)
    cv, cm = c_step(rt, "weight", value, grad, opt, key)
    assert_same(cv, cm, pv, pm)
    assert cv.m.tolist() == [[-8, 8, -16, 0]]


def test_overflow_to_grid_rescale_both_modes(rt):
    for mode in (ScaleMode.POW2, ScaleMode.COMPOUND):
        for bits, dtype, limit in ((8, np.int8, 127), (16, np.int16, 32767)):
            value = QTensor(np.array([[limit, -limit, 1, 0]], dtype), Scale(-7, 2, 1))
            grad = QTensor(np.array([[-2**20, 2**20, 3, 0]], np.int32), Scale(-20))
            pv, pm, key, opt = python_step("weight", value, bits, grad, OptimConfig(lr=0.5, rounding="nearest"),
                                           mode, 1, 0)
            cv, cm = c_step(rt, "weight", value, grad, opt, key)
            assert_same(cv, cm, pv, pm)
            assert cv.scale != value.scale and abs(int(cv.m[0, 0])) <= limit
