from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from tintin.numerics import (COMPOUND_STEPS, Rounding, Scale, ScaleMode, apply_multiplier, choose_rescale,
                             limit_for_bits, ratio_multiplier, rescale)
from tintin.numerics.rescale import choose_grid_rescale, grid_steps


def exact(scale):
    return Fraction(2) ** scale.S * Fraction(5, 4) ** scale.U * Fraction(3, 4) ** scale.D


acc_arrays = arrays(np.int32, st.integers(1, 300), elements=st.integers(-(2**30), 2**30))


def test_fine_steps_are_sorted_and_in_one_octave():
    values = [Fraction(s.m, 2**s.p) for s in COMPOUND_STEPS]
    assert values == sorted(values, reverse=True)
    assert all(1 <= v < 2 for v in values)
    assert values[-1] == 1 and len(values) == 9
    # each fine step is u**a * d**b * 2**c
    for s in COMPOUND_STEPS:
        assert s.m == 5**s.a * 3**s.b


@pytest.mark.parametrize("mode", list(ScaleMode))
@given(acc=acc_arrays)
def test_rescale_fits_and_tracks_the_scale_exactly(mode, acc):
    scale = Scale(-10, 1, 0)
    q, s = rescale(acc, scale, 8, mode)
    assert q.dtype == np.int8
    assert np.abs(q.astype(np.int32)).max() <= 127
    amax = int(np.abs(acc.astype(np.int64)).max())
    if amax <= 127:
        assert s == scale and (q == acc).all()
        return
    # real values agree within half a unit of the new scale (nearest rounding, exact scales)
    ratio = exact(scale) / exact(s)
    for a, b in zip(acc.tolist()[:50], q.tolist()[:50]):
        assert abs(Fraction(a) * ratio - b) <= Fraction(1, 2) + Fraction(1, 10**9)
    top = int(np.abs(q.astype(np.int32)).max())
    if mode is ScaleMode.POW2:
        assert s.U == scale.U and s.D == scale.D
        assert top >= 63
    else:
        assert top >= 112  # at most one fine step (<= 1.125) below the limit


def test_compound_uses_more_of_the_range_than_pow2():
    rng = np.random.default_rng(0)
    tops = {mode: [] for mode in ScaleMode}
    for _ in range(200):
        acc = rng.integers(-(2**20), 2**20, size=64).astype(np.int32) >> rng.integers(0, 12)
        for mode in ScaleMode:
            q, _ = rescale(acc, Scale(0), 8, mode)
            tops[mode].append(np.abs(q.astype(np.int32)).max())
    assert np.mean(tops[ScaleMode.COMPOUND]) > np.mean(tops[ScaleMode.POW2]) + 15


@pytest.mark.parametrize("bits", [8, 16])
def test_rescale_other_widths(bits):
    acc = np.array([2**28, -(2**27), 5], dtype=np.int64)
    q, s = rescale(acc, Scale(0), bits, ScaleMode.COMPOUND)
    assert np.abs(q.astype(np.int64)).max() <= limit_for_bits(bits)
    assert q.dtype == (np.int8 if bits == 8 else np.int16)


def test_choose_rescale_none_when_fitting():
    assert choose_rescale(127, 8, "pow2") is None
    assert choose_rescale(0, 8, "compound") is None
    step, k = choose_rescale(128, 8, "pow2")
    assert (step.m, k) == (1, 1)


def test_stochastic_rescale_saturates():
    acc = np.full(1000, 127 * 4 + 3, dtype=np.int32)  # 127.75 after /4: may round to 128
    q, _ = rescale(acc, Scale(0), 8, ScaleMode.POW2, Rounding.STOCHASTIC, key=3)
    assert q.max() <= 127


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30), st.integers(-20, 20),
       st.integers(-4, 4), st.integers(-4, 4))
def test_apply_multiplier_matches_exact_rounding(values, s, u, d):
    m, n = ratio_multiplier(Scale(s, u, d))
    got = apply_multiplier(np.array(values, dtype=np.int64), (m, n))
    for v, g in zip(values, got.tolist()):
        exact_val = Fraction(v * m) / Fraction(2) ** n
        mag = abs(exact_val)
        r = int(mag) + (1 if mag - int(mag) >= Fraction(1, 2) else 0)
        assert g == (r if v >= 0 else -r)


def test_apply_multiplier_limit():
    got = apply_multiplier(np.array([10**6, -(10**6)]), (16384, -4), limit=1000)
    assert got.tolist() == [1000, -1000]


@pytest.mark.parametrize("mode", list(ScaleMode))
@given(amax=st.integers(128, 2**20), s=st.integers(-20, 0))
def test_grid_rescale_stays_on_the_grid_and_fits(mode, amax, s):
    for a, b in grid_steps(mode):
        scale = Scale(s, a, b)
        new_scale, (m, n) = choose_grid_rescale(amax, scale, 8, mode)
        assert (new_scale.U, new_scale.D) in grid_steps(mode)
        q = apply_multiplier(np.array([amax, -amax]), (m, n))
        assert abs(int(q[0])) <= 127 and int(q[0]) >= 60
        # the multiplier is the scale ratio (to 2**-14)
        assert abs(Fraction(m) / Fraction(2) ** n / (exact(scale) / exact(new_scale)) - 1) < Fraction(4, 2**14)


@pytest.mark.parametrize("mode", list(ScaleMode))
def test_rescale_of_int16_extremes_does_not_wrap(mode):
    # the int8 view of int16 weights: adding the rounding half must not overflow int16
    w = np.array([32767, -32767, 16384, 0], dtype=np.int16)
    q, s = rescale(w, Scale(-15), 8, mode)
    assert q[0] >= 64 and q[0] == -q[1]  # 127.996 rounds to 128: pow2 halves once more
    np.testing.assert_allclose(q * s.to_float(), w * 2.0**-15, atol=0.5 * s.to_float())


@given(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]),
       arrays(np.int32, st.integers(2, 40), elements=st.integers(-2**31 + 1, 2**31 - 1)), st.data())
def test_parts_rescaled_with_the_whole_maximum_are_the_whole_result(mode, acc, data):
    from tintin.numerics import rescale_known_max

    whole, scale = rescale(acc, Scale(-3), 8, mode)
    cut = data.draw(st.integers(1, len(acc) - 1))
    amax = max(int(acc.max()), -int(acc.min()))
    parts = [rescale_known_max(part, amax, Scale(-3), 8, mode) for part in (acc[:cut], acc[cut:])]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole)
    assert all(p[1] == scale for p in parts)
