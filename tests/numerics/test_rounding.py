from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tintin.numerics import Rounding, RoundingStream, draw_bits, mix32, shift_round, shift_round_scalar

int64s = st.integers(-(2**40), 2**40)


def half_away(x: int, n: int) -> int:
    q = Fraction(x, 2**n)
    mag = abs(q)
    r = int(mag) + (1 if mag - int(mag) >= Fraction(1, 2) else 0)
    return r if x >= 0 else -r


@given(st.lists(int64s, min_size=1, max_size=50), st.integers(0, 40))
def test_nearest_is_half_away_from_zero(values, n):
    x = np.array(values, dtype=np.int64)
    got = shift_round(x, n, Rounding.NEAREST)
    assert got.tolist() == [half_away(v, n) for v in values]
    assert [shift_round_scalar(v, n) for v in values] == got.tolist()


@given(st.lists(st.integers(-(2**30), 2**30), min_size=1, max_size=50), st.integers(0, 30))
def test_nearest_int32_keeps_dtype(values, n):
    x = np.array(values, dtype=np.int32)
    got = shift_round(x, n, Rounding.NEAREST)
    assert got.dtype == np.int32
    assert got.tolist() == [half_away(v, n) for v in values]


@pytest.mark.parametrize("mode", [Rounding.NEAREST, Rounding.STOCHASTIC, Rounding.PSEUDO_STOCHASTIC])
@given(values=st.lists(int64s, min_size=1, max_size=40), n=st.integers(1, 40), key=st.integers(0, 2**32 - 1))
def test_every_mode_is_sign_symmetric_and_within_one(mode, values, n, key):
    x = np.array(values, dtype=np.int64)
    up = shift_round(x, n, mode, key)
    down = shift_round(-x, n, mode, key)
    assert (up == -down).all()
    exact = x / 2.0**n
    assert (np.abs(up - exact) < 1.0).all()
    floor_mag = np.abs(x) >> n
    assert ((np.abs(up) == floor_mag) | (np.abs(up) == floor_mag + 1)).all()


def test_stochastic_is_deterministic_per_key():
    x = np.arange(-5000, 5000, dtype=np.int64) * 37
    a = shift_round(x, 7, Rounding.STOCHASTIC, 1234)
    b = shift_round(x, 7, Rounding.STOCHASTIC, 1234)
    # keys are hashes (RoundingStream.key): neighbouring integers never occur as the keys of two
    # calls, and under the weyl32 draw they would shift every draw by only 1 / 2**32
    c = shift_round(x, 7, Rounding.STOCHASTIC, RoundingStream(1).key(0))
    assert (a == b).all() and (a != c).any()


def test_stochastic_needs_a_key():
    with pytest.raises(ValueError):
        shift_round(np.array([5]), 2, Rounding.STOCHASTIC)


@pytest.mark.parametrize("mode", list(Rounding))
@pytest.mark.parametrize("sign", [1, -1])
def test_mean_error_is_near_zero_on_negative_and_positive_values(mode, sign):
    """No mode drifts like a floor shift (-0.5 on average). Ties away from zero cost at most
    2**-(n+1) of a unit (nearest, pseudo-stochastic); stochastic rounding is unbiased."""
    rng = np.random.default_rng(7)
    x = sign * rng.integers(0, 2**20, size=200_000)
    for n in (1, 2, 3, 8, 13):
        mean = (shift_round(x, n, mode, 99) - x / 2.0**n).mean()
        expected = 0.0 if mode is Rounding.STOCHASTIC else sign * 2.0 ** -(n + 1)
        assert abs(mean - expected) < 0.006, (mode, n, mean)


def test_stochastic_rounds_small_values_up_with_their_probability():
    # 0.25 of a unit rounds up about a quarter of the time, for positive and negative values
    x = np.full(100_000, 1, dtype=np.int64)
    for sign in (1, -1):
        q = shift_round(sign * x, 2, Rounding.STOCHASTIC, 5)
        assert abs(np.abs(q).mean() - 0.25) < 0.01
        assert set(np.unique(q)) == {0, sign}


def test_floor_shift_would_be_biased_on_negatives():
    # the property the sign-magnitude design protects: python's >> floors (biased), ours does not
    x = -np.arange(1, 1001, dtype=np.int64)
    assert ((x >> 3) - x / 8).mean() < -0.4
    assert abs((shift_round(x, 3, Rounding.NEAREST) - x / 8).mean()) < 0.07


def test_draw_bits_is_the_weyl32_sequence():
    # the draw is part of the specification (the C runtime walks it with one addition per element)
    key = 0xDEADBEEF
    bits = draw_bits(key, 100)
    assert bits.tolist() == [(key + i * 0x9E3779B9) & 0xFFFFFFFF for i in range(100)]
    assert bits.dtype == np.uint32
    assert draw_bits(7, 4).tolist() == [0x00000007, 0x9E3779C0, 0x3C6EF379, 0xDAA66D32]


def test_draws_depend_only_on_key_and_flat_index():
    # order independence: a slice of a call starting at element o equals the call keyed key + o * G
    key, o = 0x1234567, 37
    assert np.array_equal(draw_bits(key, 100)[o:], draw_bits((key + o * 0x9E3779B9) & 0xFFFFFFFF, 100 - o))


@given(values=st.lists(st.integers(-(2**30), 2**30), min_size=1, max_size=30), n=st.integers(1, 16),
       key=st.integers(0, 2**32 - 1))
def test_stochastic_rounding_is_exactly_unbiased_over_the_keys(values, n, key):
    """E[round(x)] = x / 2**n exactly: over the 2**n keys key + j * 2**(32-n) every element's top n draw
    bits take each value in [0, 2**n) once, so the rounded values sum to exactly x (Hermite's identity)
    for every element, on both signs. A uniform key is a uniform mixture of such sets."""
    x = np.array(values, dtype=np.int64)
    total = np.zeros_like(x)
    for j in range(2**n):
        total += shift_round(x, n, Rounding.STOCHASTIC, (key + (j << (32 - n))) & 0xFFFFFFFF)
    assert total.tolist() == x.tolist()


@pytest.mark.parametrize("n", [1, 5, 12, 20, 31, 32])
def test_stochastic_rounding_is_exactly_unbiased_for_every_shift_used(n):
    # the same identity over all sizes of shift the update uses, on int32 and int64 arrays
    rng = np.random.default_rng(n)
    for dtype in (np.int32, np.int64) if n <= 31 else (np.int64,):
        x = rng.integers(-(2**30), 2**30, size=64).astype(dtype)
        reps = min(2**n, 4096)  # a subset of keys whose top bits also cover [0, 2**n) evenly when reps | 2**n
        step = 2**32 // reps
        total = np.zeros(x.shape, dtype=np.int64)
        for j in range(reps):
            total += shift_round(x, n, Rounding.STOCHASTIC, (12345 + j * step) & 0xFFFFFFFF)
        if reps == 2**n:
            assert total.tolist() == x.tolist()
        else:  # reps keys spaced 2**32 / reps apart: the mean equals x / 2**n up to 1 / reps
            assert np.all(np.abs(total / reps - x / 2.0**n) <= 1.0 / reps + 1e-12)


def test_mix32_and_stream_keys_are_pinned():
    # the hash and the key derivation are part of the specification (the C runtime embeds them):
    # pinned values catch any change to constants or shifts
    assert mix32(0) == 0
    assert [mix32(v) for v in (1, 2, 0xFFFFFFFF, 0x12345678)] == [0x688990C0, 0xD1132181, 0x6768824A, 0xF5E71C96]
    assert RoundingStream(7, 3).key(4) == 0xCBDFE130


def test_rounding_stream_keys_depend_on_seed_step_and_site():
    s = RoundingStream(3)
    k0 = s.key(0)
    assert s.key(0) == k0 and s.key(4) != k0
    s.advance()
    assert s.key(0) != k0
    assert RoundingStream(4).key(0) != k0
    assert RoundingStream(3).key(0) == k0


def test_shift_out_of_range():
    with pytest.raises(ValueError):
        shift_round(np.array([1]), 63)
    with pytest.raises(ValueError):
        shift_round(np.array([1]), -1)
