"""C updates equal tintin.optim.IntegerSGD.update bit for bit where ``w - delta`` leaves int32.

A diverging run grows the momentum to its clip (``|v| <= 2**40``, so ``|delta| <= 2**32``) or meets
an aligned multiplier with a small shift (``|delta|`` up to ``2**46``); the weight scale then jumps
by up to 2**30 in one step. The whole-tensor update (plain and skip0) and the row-tiled update must
find the simulator's exact new values and grid scale, not int32-saturated ones. The int32 rescale
of accumulators (the 64-bit branch from ``2**23`` on, and values within ``2**(n-1)`` of ``2**31``)
is checked the same way."""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from test_runtime_sgd import ROUNDINGS, assert_same, python_step
from tintin.numerics import QTensor, Rounding, Scale, ScaleMode, rescale
from tintin.optim import OptimConfig

MOMENTUM_LIMIT = 2**40


def _big_ints(rng, shape, top_bits: int) -> np.ndarray:
    """Signed values whose magnitudes spread over every bit length up to ``top_bits``."""
    lengths = rng.integers(0, top_bits + 1, shape)
    mags = np.array([int(rng.integers(0, 2**b)) if b else 0 for b in lengths.ravel()], dtype=np.int64)
    return (mags * rng.choice([-1, 1], mags.size)).reshape(shape)


@st.composite
def wide_case(draw, momentum: bool):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    bits = draw(st.sampled_from([8, 16]))
    limit = 127 if bits == 8 else 32767
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 9)))
    w = rng.integers(-limit, limit + 1, shape).astype(np.int8 if bits == 8 else np.int16)
    g = _big_ints(rng, shape, draw(st.integers(0, 30))).astype(np.int32)
    w_scale = Scale(draw(st.integers(-12, 8)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # the gradient scale far above the weight's: small multiplier shifts, deltas beyond int32
    g_scale = Scale(w_scale.S + draw(st.integers(-30, 14)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    cfg = OptimConfig(lr=draw(st.sampled_from([0.01, 0.5, 1.7])), rounding=draw(st.sampled_from(ROUNDINGS)),
                      momentum_shift=draw(st.integers(1, 8)) if momentum else 0,
                      weight_rescale=draw(st.sampled_from([True, True, False])))
    v = None
    if momentum:
        # up to the clip, and at the clip itself (the diverging fleet run)
        v = _big_ints(rng, shape, 41)
        v = np.clip(v, -MOMENTUM_LIMIT, MOMENTUM_LIMIT)
        if draw(st.booleans()):
            v.flat[0] = MOMENTUM_LIMIT * draw(st.sampled_from([-1, 1]))
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    return (QTensor(w, w_scale), bits, QTensor(g, g_scale), cfg, mode, draw(st.integers(1, 4)),
            draw(st.integers(0, 2**32 - 1)), v, draw(st.integers(1, shape[0])))


def _check_all_forms(rt, case):
    value, bits, grad, cfg, mode, batch, seed, v, tile_rows = case
    pv, pm, key, opt = python_step("weight", value, bits, grad, cfg, mode, batch, seed, momentum=v)
    m, n = opt.aligned_multiplier(grad.scale, value.scale)
    assume(n >= 0)  # n < 0 shifts products left beyond int64 (outside |g| * M < 2**62)
    c_cfg = rt.SgdConfig.from_optimizer(opt)
    cv, cm = rt.sgd_update("weight", value, grad, c_cfg, key, v)
    assert_same(cv, cm, pv, pm)
    tv, tm = rt.sgd_update_tiled(value, grad, c_cfg, key, v, tile_rows=tile_rows)
    assert_same(tv, tm, pv, pm)
    if bits == 8 and v is None and cfg.rounding is Rounding.STOCHASTIC:
        sv, sm = rt.sgd_update("weight", value, grad, c_cfg, key, variant="skip0")
        assert_same(sv, sm, pv, pm)
    return pv, value


@settings(max_examples=150, deadline=None)
@given(case=wide_case(momentum=True))
def test_momentum_update_with_deltas_beyond_int32(rt, case):
    _check_all_forms(rt, case)


@settings(max_examples=150, deadline=None)
@given(case=wide_case(momentum=False))
def test_aligned_update_with_deltas_beyond_int32(rt, case):
    _check_all_forms(rt, case)


def test_momentum_at_its_clip_moves_the_scale_by_2_to_the_25(rt):
    """The fleet case in one update: v = 2**40 gives delta = 2**32 and the weight scale moves from
    2**1 to 2**26 (compound grid); the C used to keep 2**31 - 1 and so half the weight."""
    value = QTensor(np.array([[5, -7, 100]], np.int8), Scale(1))
    grad = QTensor(np.array([[10, -20, 30]], np.int32), Scale(-10))
    v = np.array([[MOMENTUM_LIMIT, -MOMENTUM_LIMIT // 3, 12345]], np.int64)
    cfg = OptimConfig(lr=0.5, momentum_shift=3)
    pv, pm, key, opt = python_step("weight", value, 8, grad, cfg, ScaleMode.COMPOUND, 1, 7, momentum=v)
    assert pv.scale.S == 26 and pv.m[0, 0] == -127
    cv, cm = rt.sgd_update("weight", value, grad, rt.SgdConfig.from_optimizer(opt), key, v)
    assert_same(cv, cm, pv, pm)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 40), top=st.integers(20, 31),
       at_edge=st.booleans(), mode=st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]),
       rounding=st.sampled_from(ROUNDINGS), key=st.integers(0, 2**32 - 1))
def test_int32_rescale_up_to_2_to_the_31(rt, seed, count, top, at_edge, mode, rounding, key):
    """Accumulators from 2**20 to 2**31 - 1 (an int32 sum plus a saturated aligned bias reaches
    2**31 - 2**20): the 64-bit branch of tt_rescale_apply and the simulator's widening agree."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**top) + 1, 2**top, count).astype(np.int64)
    if at_edge:
        acc[0] = (2**31 - 1) * int(rng.choice([-1, 1]))
    acc = acc.astype(np.int32)
    want, want_scale = rescale(acc, Scale(-20), 8, mode, rounding, key)
    got, got_scale = rt.rescale(acc, Scale(-20), mode, rounding, key)
    assert got_scale == want_scale
    assert np.array_equal(got, want)


def test_nearest_rescale_of_2_to_the_31_minus_1_keeps_its_sign():
    """pow2 mode, nearest: 2**31 - 1 >> 25 rounds to 64; adding the half in int32 used to wrap to -64."""
    q, s = rescale(np.array([2**31 - 1, -(2**31 - 1)], np.int32), Scale(0), 8, ScaleMode.POW2)
    assert q.tolist() == [64, -64] and s == Scale(25)
