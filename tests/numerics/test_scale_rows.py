"""Per-row weight scales: the integer rules of tintin.numerics.scale_rows against int64 / Python
integer definitions, over random shapes and values."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tintin.numerics import ACC_TERMS_LIMIT, Rounding, Scale, shift_round
from tintin.numerics.scale_rows import (ROW_EXP_MAX, align_rows, apply_multiplier_rows, dequantize_rows,
                                        expand_rows, quantize_rows, renormalise_rows, row_exp_limit,
                                        shift_round_rows)


@given(terms=st.integers(1, ACC_TERMS_LIMIT))
def test_row_exp_limit_keeps_the_input_error_sum_within_the_bound(terms):
    e = row_exp_limit(terms)
    assert 0 <= e <= ROW_EXP_MAX
    assert terms * 2**e <= ACC_TERMS_LIMIT  # |acc| <= terms * 127 * 127 * 2**e <= 2**30
    assert e == ROW_EXP_MAX or terms * 2 ** (e + 1) > ACC_TERMS_LIMIT


def _nearest(v: int, s: int) -> int:
    if s <= 0:
        return v << -s
    half = 1 << (s - 1)
    return (abs(v) + half) >> s if v >= 0 else -((-v + half) >> s)


@given(b=st.integers(1, 5), n=st.integers(1, 9), extra=st.integers(0, 2), seed=st.integers(0, 2**31))
def test_align_rows_is_a_nearest_shift_per_channel(b, n, extra, seed):
    rng = np.random.default_rng(seed)
    shape = (b, n) + (3,) * extra
    acc = rng.integers(-(2**30), 2**30, size=shape).astype(np.int32)
    e = rng.integers(0, ROW_EXP_MAX + 1, size=n).astype(np.int8)
    got = align_rows(acc, e, axis=1)
    assert got.dtype == np.int32
    want = np.vectorize(_nearest)(acc.astype(object), e.astype(object).reshape((1, n) + (1,) * extra))
    assert np.array_equal(got.astype(object), want)


@given(b=st.integers(1, 5), n=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_expand_rows_brings_every_channel_to_the_finest_row_scale(b, n, seed):
    rng = np.random.default_rng(seed)
    err = rng.integers(-127, 128, size=(b, n)).astype(np.int8)
    e = rng.integers(0, 9, size=n).astype(np.int8)
    got, top = expand_rows(err, e)
    assert top == int(e.max())
    assert np.array_equal(got, err.astype(np.int64) * 2 ** (top - e.astype(np.int64)))


@settings(max_examples=60)
@given(n=st.integers(1, 7), k=st.integers(1, 9), shift=st.integers(0, 40), seed=st.integers(0, 2**31),
       key=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(Rounding)))
def test_equal_row_shifts_round_exactly_as_shift_round(n, k, shift, seed, key, mode):
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2**40), 2**40, size=(n, k))
    got = shift_round_rows(x, np.full(n, shift), mode, key)
    assert np.array_equal(got, shift_round(x, shift, mode, key))


@settings(max_examples=60)
@given(n=st.integers(1, 7), k=st.integers(1, 9), seed=st.integers(0, 2**31), key=st.integers(0, 2**32 - 1),
       mode=st.sampled_from(list(Rounding)))
def test_each_row_rounds_at_its_own_shift_with_the_tensors_draws(n, k, seed, key, mode):
    """Row r of the result is row r of shift_round of the whole tensor at row r's shift: the draws
    depend on the flat element index only."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2**36), 2**36, size=(n, k))
    shifts = rng.integers(-3, 45, size=n)
    got = shift_round_rows(x, shifts, mode, key)
    for r in range(n):
        s = int(shifts[r])
        want = x[r] << -s if s <= 0 else shift_round(x, s, mode, key)[r]
        assert np.array_equal(got[r], want), r


@given(n=st.integers(1, 6), k=st.integers(1, 6), m=st.integers(2**14, 2**15 - 1), sh=st.integers(0, 30),
       seed=st.integers(0, 2**31), key=st.integers(0, 2**32 - 1))
def test_apply_multiplier_rows_rounds_g_times_m_at_n_minus_the_row_exponent(n, k, m, sh, seed, key):
    rng = np.random.default_rng(seed)
    g = rng.integers(-(2**20), 2**20, size=(n, k)).astype(np.int32)
    e = rng.integers(0, 12, size=n).astype(np.int8)
    got = apply_multiplier_rows(g, (m, sh), e, Rounding.STOCHASTIC, key)
    prod = g.astype(np.int64) * m
    assert np.array_equal(got, shift_round_rows(prod, sh - e.astype(np.int64), Rounding.STOCHASTIC, key))


@settings(max_examples=200)
@given(n=st.integers(1, 8), k=st.integers(1, 8), limit=st.integers(0, 15), seed=st.integers(0, 2**31),
       span=st.integers(0, 14))
def test_renormalise_rows_keeps_the_values_and_uses_the_rows_bits(n, k, limit, seed, span):
    rng = np.random.default_rng(seed)
    e = rng.integers(0, limit + 1, size=n).astype(np.int8)
    new = rng.integers(-(2**span), 2**span + 1, size=(n, k)) * rng.integers(0, 3, size=(n, 1))
    scale = Scale(-9, 1, 2)
    m, s, e2 = renormalise_rows(new, scale, e, limit)
    assert m.dtype == np.int8 and e2.dtype == np.int8 and (s.U, s.D) == (1, 2)
    assert np.abs(m.astype(int)).max(initial=0) <= 127
    assert e2.min() >= 0 and e2.max() <= limit
    amax = np.abs(m.astype(int)).max(axis=1)
    old_step = 2.0 ** (scale.S - e.astype(float))
    new_step = 2.0 ** (s.S - e2.astype(float))
    for r in range(n):
        exact = new[r] * old_step[r]
        if new_step[r] <= old_step[r]:  # a finer or equal step: exact
            assert np.array_equal(m[r] * new_step[r], exact)
        else:  # nearest rounding at the coarser step
            # one nearest rounding, or two (stage 2 beyond the limit): within 3/4 of the new step
            assert np.abs(m[r] * new_step[r] - exact).max() <= 0.75 * new_step[r]
        # every nonzero row uses its bits: max in [64, 127] unless the exponent is at the limit
        if amax[r]:
            assert amax[r] >= 64 or e2[r] == limit
    assert e2.min() == 0
    # a fixed point: renormalising again changes nothing
    m2, s2, e3 = renormalise_rows(m.astype(np.int64), s, e2, limit)
    assert np.array_equal(m2, m) and s2 == s and np.array_equal(e3, e2)


def test_renormalise_rows_example():
    new = np.array([[140, 54, 4, -93], [-10, -23, -22, -25], [0, 0, 0, 0], [0, 0, 3, 1]])
    m, s, e = renormalise_rows(new, Scale(-7), np.array([0, 3, 2, 1], np.int8), 10)
    assert s == Scale(-6)  # row 0 overflowed at exponent 0: the tensor scale doubles
    assert e.tolist() == [0, 6, 3, 7]
    assert m.tolist() == [[70, 27, 2, -47], [-40, -92, -88, -100], [0, 0, 0, 0], [0, 0, 96, 32]]


@given(n=st.integers(1, 8), k=st.integers(1, 8), seed=st.integers(0, 2**31), limit=st.integers(0, 12))
def test_quantize_rows_fits_every_row_and_dequantises_within_half_a_row_step(n, k, seed, limit):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, size=(n, k)) * rng.uniform(0.001, 1, size=(n, 1))
    scale = Scale(int(np.ceil(np.log2(np.abs(w).max() / 127))))
    m, s, e = quantize_rows(w, scale, limit)
    assert e.min() == 0 and e.max() <= limit
    step = 2.0 ** (s.S - e.astype(float))[:, None]
    assert np.abs(dequantize_rows(m, s, e) - w).max() <= (step / 2).max() + 1e-12
    assert np.all(np.abs(m.astype(int)) <= 127)


def test_row_exp_limit_of_the_mlp_layers():
    assert [row_exp_limit(t) for t in (200, 100, 50, 10)] == [8, 9, 10, 12]
    with pytest.raises(ValueError):
        shift_round_rows(np.zeros((1, 1), np.int64), np.array([63]))
