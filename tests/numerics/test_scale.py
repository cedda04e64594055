import math
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from tintin.numerics import Scale, ScaleMode, ratio_multiplier
from tintin.numerics.scale import divide_multiplier


def exact(scale: Scale) -> Fraction:
    return Fraction(2) ** scale.S * Fraction(5, 4) ** scale.U * Fraction(3, 4) ** scale.D


def test_scale_arithmetic_adds_exponents():
    a, b = Scale(-3, 1, 2), Scale(5, -2, 1)
    assert a * b == Scale(2, -1, 3)
    assert (a * b) / b == a
    assert exact(a * b) == exact(a) * exact(b)
    assert Scale(3).shifted(-5) == Scale(-2)


@given(st.integers(-40, 40), st.integers(-20, 20), st.integers(-20, 20))
def test_ratio_multiplier_is_accurate(s, u, d):
    m, n = ratio_multiplier(Scale(s, u, d))
    assert 2**14 <= m < 2**15
    approx = Fraction(m) / Fraction(2) ** n if n >= 0 else Fraction(m * 2 ** -n)
    rel = abs(approx / exact(Scale(s, u, d)) - 1)
    # one rounding to 15 bits per factor step plus the final one
    assert rel <= (abs(u) + abs(d) + 1) * Fraction(1, 2**14)


def test_ratio_multiplier_exact_for_small_products():
    # 5**a * 3**b fits in 15 bits: the multiplier is exact
    for a in range(3):
        for b in range(3):
            m, n = ratio_multiplier(Scale(0, a, b))
            assert Fraction(m, 2**n) == exact(Scale(0, a, b))


def test_ratio_multiplier_rejects_runaway_exponents():
    with pytest.raises(OverflowError):
        ratio_multiplier(Scale(0, 65, 0))


@given(st.integers(1, 10_000), st.integers(-10, 10), st.integers(-3, 3))
def test_divide_multiplier(div, s, u):
    m, n = divide_multiplier(ratio_multiplier(Scale(s, u, 0)), div)
    assert 2**14 <= m < 2**15
    target = exact(Scale(s, u, 0)) / div
    assert abs(Fraction(m, 1) / Fraction(2) ** n / target - 1) < Fraction(3, 2**14)


@pytest.mark.parametrize("value", [0.5, 0.1, 0.03, 1.7, 123.0, 1e-4])
def test_nearest_scale(value):
    comp = Scale.nearest(value, ScaleMode.COMPOUND)
    pow2 = Scale.nearest(value, ScaleMode.POW2)
    assert pow2.is_pow2
    assert abs(math.log2(comp.to_float() / value)) <= abs(math.log2(pow2.to_float() / value)) + 1e-12
    assert abs(math.log2(pow2.to_float() / value)) <= 0.5 + 1e-12
    assert abs(comp.to_float() / value - 1) < 0.05


def test_nearest_rejects_bad_values():
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            Scale.nearest(bad)
