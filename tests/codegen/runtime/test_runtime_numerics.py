"""C numerics (rounding, multipliers, rescale) equal the Python specification bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.numerics import (Rounding, RoundingStream, Scale, ScaleMode, apply_multiplier, choose_rescale,
                             draw_bits, max_abs, mix32, ratio_multiplier, rescale, shift_round)
from tintin.numerics.rescale import choose_grid_rescale
from tintin.numerics.scale import divide_multiplier

ROUNDINGS = [Rounding.NEAREST, Rounding.STOCHASTIC, Rounding.PSEUDO_STOCHASTIC]
MODES = [ScaleMode.POW2, ScaleMode.COMPOUND]
keys = st.integers(0, 2**32 - 1)


def int32_arrays(max_size=64):
    # the Python int32 path needs |x| < 2**31 - 2**(n-1) (documented bound): |x| < 2**30 for n <= 31
    return st.lists(st.integers(-2**30 + 1, 2**30 - 1), min_size=1, max_size=max_size).map(
        lambda v: np.array(v, dtype=np.int32))


def test_mix32_draws_and_stream_keys(rt):
    for x in [0, 1, 0x9E3779B9, 0xFFFFFFFF, 123456789]:
        assert rt.mix32(x) == mix32(x)
    for key in [0, 7, 0xDEADBEEF]:
        assert np.array_equal(rt.draw_bits(key, 50), draw_bits(key, 50))
    for seed, step, site in [(0, 0, 0), (1, 2, 3), (2**32 - 1, 99, 4 * 7), (42, 2**32 - 1, 2**32 - 1)]:
        assert rt.stream_key(seed, step, site) == RoundingStream(seed, step).key(site)


@pytest.mark.parametrize("mode", ROUNDINGS)
@given(x=int32_arrays(), n=st.integers(0, 31), key=keys)
def test_shift_round_int32(rt, mode, x, n, key):
    assert np.array_equal(rt.shift_round(x, n, mode, key), shift_round(x, n, mode, key))


@pytest.mark.parametrize("mode", ROUNDINGS)
@given(x=st.lists(st.integers(-2**60, 2**60), min_size=1, max_size=32).map(lambda v: np.array(v, np.int64)),
       n=st.integers(0, 62), key=keys)
def test_shift_round_int64(rt, mode, x, n, key):
    assert np.array_equal(rt.shift_round(x, n, mode, key), shift_round(x, n, mode, key))


@pytest.mark.parametrize("mode", ROUNDINGS)
def test_shift_round_edges(rt, mode):
    """Zeros, +-1, exact halves, all residues of small n, negative values and both widths."""
    base = np.arange(-300, 301, dtype=np.int64)
    extremes = np.array([2**30, -2**30, 2**30 - 1, -(2**30 - 1), 127, -127, 0], dtype=np.int64)
    for n in [0, 1, 2, 3, 4, 5, 8, 15, 16, 29, 30]:
        for x in (base, extremes, base * 2**20):
            x32 = x.astype(np.int32)
            assert np.array_equal(rt.shift_round(x32, n, mode, 99), shift_round(x32, n, mode, 99)), n
            assert np.array_equal(rt.shift_round(x, n, mode, 99), shift_round(x, n, mode, 99)), n
    for n in [31, 32, 33, 40, 62]:  # wide shifts of int64 values (n > 32 shifts the draw left)
        x = np.array([2**61, -2**61, 3 * 2**40 + 5, -(3 * 2**40 + 5), 1, -1], dtype=np.int64)
        assert np.array_equal(rt.shift_round(x, n, mode, 5), shift_round(x, n, mode, 5)), n


def test_rounding_is_sign_symmetric_in_c(rt):
    x = np.arange(1, 5000, dtype=np.int32) * 37
    for mode in ROUNDINGS[::2]:  # deterministic modes: round(-x) == -round(x)
        assert np.array_equal(rt.shift_round(-x, 7, mode), -rt.shift_round(x, 7, mode))
    # stochastic: the same draw for the same index, so also symmetric
    assert np.array_equal(rt.shift_round(-x, 7, Rounding.STOCHASTIC, 3), -rt.shift_round(x, 7, Rounding.STOCHASTIC, 3))


@given(s=st.integers(-200, 200), u=st.integers(-64, 64), d=st.integers(-64, 64))
def test_ratio_multiplier(rt, s, u, d):
    assert rt.ratio_multiplier(Scale(s, u, d)) == ratio_multiplier(Scale(s, u, d))


def test_ratio_multiplier_too_many_steps(rt):
    for bad in [Scale(0, 65, 0), Scale(0, 0, -65)]:
        with pytest.raises(OverflowError):
            ratio_multiplier(bad)
        with pytest.raises(OverflowError):
            rt.ratio_multiplier(bad)


@given(s=st.integers(-60, 60), u=st.integers(-8, 8), d=st.integers(-8, 8), divisor=st.integers(1, 70000))
def test_divide_multiplier(rt, s, u, d, divisor):
    mult = ratio_multiplier(Scale(s, u, d))
    assert rt.divide_multiplier(mult, divisor) == divide_multiplier(mult, divisor)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@given(x=st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=32).map(lambda v: np.array(v, np.int64)),
       s=st.integers(-40, 40), u=st.integers(-4, 4), d=st.integers(-4, 4),
       limit=st.sampled_from([None, 127, 32767, 2**30]), key=keys)
def test_apply_multiplier(rt, rounding, x, s, u, d, limit, key):
    mult = ratio_multiplier(Scale(s, u, d))  # s > ~14 gives n < 0: exact left shifts, clipped bound
    want = apply_multiplier(x, mult, rounding, key, limit=limit)
    assert np.array_equal(rt.apply_multiplier(x, mult, rounding, key, limit), want)


def test_apply_multiplier_negative_and_huge_n(rt):
    x = np.array([0, 1, -1, 1000, -1000, 2**30, -2**30], dtype=np.int64)
    for mult in [(16384, -1), (20000, -20), (30000, -40), (16384, 63), (16384, 100), (16385, 62)]:
        for limit in [None, 127, 2**30]:
            if limit is None and mult[1] < -16:
                continue  # the unlimited product would leave int64 (outside the documented bound)
            want = apply_multiplier(x, mult, Rounding.NEAREST, limit=limit)
            assert np.array_equal(rt.apply_multiplier(x, mult, Rounding.NEAREST, None, limit), want), (mult, limit)


@pytest.mark.parametrize("mode", MODES)
def test_choose_rescale_every_magnitude_boundary(rt, mode):
    """Around every power of two and for many values: both modes, bits 8 and 16."""
    values = set(range(0, 3000))
    for b in range(7, 32):
        values.update({2**b - 2, 2**b - 1, 2**b, 2**b + 1, 3 * 2**(b - 2), 15 * 2**(b - 4)})
    values.update(int(v) for v in np.random.default_rng(0).integers(0, 2**31, 3000))
    for bits in (8, 16):
        for amax in sorted(values):
            if amax >= 2**32:
                continue
            assert rt.choose_rescale(amax, bits, mode) == choose_rescale(amax, bits, mode), (amax, bits)


def test_compound_candidates_cover_every_fine_step(rt):
    """Each of the 9 compound fine steps (and both shifts k, k+1) is chosen for some amax."""
    seen = set()
    for amax in range(128, 40000):
        choice = rt.choose_rescale(amax, 8, ScaleMode.COMPOUND)
        assert choice == choose_rescale(amax, 8, ScaleMode.COMPOUND)
        step, shift = choice
        seen.add((step.m, shift - (amax.bit_length() - 7)))
    assert {m for m, _ in seen} == {1, 225, 25, 15, 3, 5, 45, 75, 9}
    assert {k for _, k in seen} == {0, 1}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@given(acc=st.lists(st.integers(-2**30, 2**30), min_size=1, max_size=64).map(lambda v: np.array(v, np.int32)),
       s=st.integers(-40, 10), u=st.integers(-3, 3), d=st.integers(-3, 3), key=keys)
def test_rescale_s32(rt, mode, rounding, acc, s, u, d, key):
    q, scale = rt.rescale(acc, Scale(s, u, d), mode, rounding, key)
    wq, wscale = rescale(acc, Scale(s, u, d), 8, mode, rounding, key)
    assert scale == wscale
    assert np.array_equal(q, wq)


@pytest.mark.parametrize("mode", MODES)
def test_rescale_edges(rt, mode):
    for acc in ([0, 0, 0], [127, -127], [128], [-128], [2**31 - 1], [-2**31 + 1], [2**30, -2**30, 1, -1],
                list(range(-1000, 1000, 7))):
        a = np.array(acc, dtype=np.int32)
        q, s = rt.rescale(a, Scale(-3), mode, Rounding.NEAREST)
        wq, ws = rescale(a.astype(np.int64), Scale(-3), 8, mode)  # int64: no Python-side int32 wrap
        assert s == ws and np.array_equal(q, wq), acc
        assert np.abs(q.astype(int)).max() <= 127


def _python_int16_view(w: np.ndarray, scale: Scale, mode) -> tuple[np.ndarray, Scale]:
    """The int16 rescale computed without the int16 wrap of the Python nearest shift (see docs)."""
    return rescale(w.astype(np.int64), scale, 8, mode)


@pytest.mark.parametrize("mode", MODES)
@given(w=st.lists(st.integers(-32767, 32767), min_size=1, max_size=64).map(lambda v: np.array(v, np.int16)))
def test_rescale_s16(rt, mode, w):
    q, s = rt.rescale(w, Scale(-12, 1, 0), mode)
    wq, ws = _python_int16_view(w, Scale(-12, 1, 0), mode)
    assert s == ws and np.array_equal(q, wq)
    if max_abs(w) < 32767 - 512:  # far from the int16 wrap of the Python: identical to rescale itself
        pq, ps = rescale(w, Scale(-12, 1, 0), 8, mode)
        assert ps == s and np.array_equal(pq, q)


def test_rescale_s16_near_full_range_rounds_half_away_from_zero(rt):
    """Documented divergence: the Python nearest shift of int16 values wraps near +-32767."""
    w = np.array([32767, -32767, 100, 32600], dtype=np.int16)
    q, s = rt.rescale(w, Scale(0), ScaleMode.POW2)
    assert s == Scale(9) and q.tolist() == [64, -64, 0, 64]  # sign((|w| + 256) >> 9)


@given(x=st.lists(st.integers(-2**31 + 1, 2**31 - 1), min_size=0, max_size=40))
def test_max_abs(rt, x):
    a = np.array(x, dtype=np.int32)
    assert rt.max_abs(a) == max_abs(a)
    assert rt.max_abs(np.clip(a, -127, 127).astype(np.int8)) == max_abs(np.clip(a, -127, 127))
    assert rt.max_abs(np.clip(a, -32767, 32767).astype(np.int16)) == max_abs(np.clip(a, -32767, 32767))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", [8, 16])
@given(amax=st.integers(0, 2**46), s=st.integers(-30, 10), u=st.integers(-3, 5), d=st.integers(-3, 5))
def test_choose_grid_rescale(rt, mode, bits, amax, s, u, d):
    assert rt.choose_grid_rescale(amax, Scale(s, u, d), bits, mode) == choose_grid_rescale(amax, Scale(s, u, d),
                                                                                             bits, mode)


def test_choose_grid_rescale_edges(rt):
    for mode in MODES:
        for amax in [0, 127, 128, 129, 254, 255, 256, 1000, 32767, 32768, 2**40, 2**47 - 1]:
            for scale in [Scale(-7), Scale(-9, 2, 2), Scale(-9, 0, 2), Scale(3, 1, 0)]:
                for bits in (8, 16):
                    want = choose_grid_rescale(amax, scale, bits, mode)
                    assert rt.choose_grid_rescale(amax, scale, bits, mode) == want, (amax, scale, bits)
    with pytest.raises(rt.HostRuntimeError) as exc:  # beyond the documented bound
        rt.choose_grid_rescale(2**47, Scale(0), 8, ScaleMode.POW2)
    assert exc.value.status == rt.TT_ERR_OVERFLOW


def test_divide_multiplier_many_divisors(rt):
    """Every batch size up to 300 for multipliers of many scale ratios (exact half-up ties included)."""
    mults = {ratio_multiplier(Scale(0, u, d)) for u in range(-6, 7) for d in range(-6, 7)}
    for mult in sorted(mults):
        for divisor in range(1, 301):
            assert rt.divide_multiplier(mult, divisor) == divide_multiplier(mult, divisor), (mult, divisor)
    # divisors where the half-up rounding of (M << 16) / divisor sits on a boundary
    d = np.arange(2, 200000, dtype=np.int64)
    for mult in sorted(mults)[::10]:
        rem = ((mult[0] << 16) + d // 2) % d
        for divisor in d[(rem == 0) | (rem == d - 1)][:40]:
            assert rt.divide_multiplier(mult, int(divisor)) == divide_multiplier(mult, int(divisor)), (mult, divisor)


def test_ratio_multiplier_every_step_count(rt):
    """Every (U, D) the runtime accepts (S only adds to n): the C multiplier equals the Python on the whole
    domain."""
    for u in range(-64, 65):
        for d in range(-64, 65):
            assert rt.ratio_multiplier(Scale(5, u, d)) == ratio_multiplier(Scale(5, u, d)), (u, d)
