"""Input quantisation: exponent choice, rounding half away from zero, saturation, sensor standardisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tintin.data import DataError, dequantize, quantize_inputs, quantize_sensor
from tintin.data.quantize import choose_exponent, quantize_unit_pixels, round_half_away_from_zero


@pytest.mark.parametrize(("max_abs", "expected"), [
    (1.0, -7), (0.5, -8), (0.75, -7), (127 / 128, -7), (1.01, -6), (128.0, 0), (129.0, 1),
    (4.0, -5), (3.0, -5), (1e-3, -16), (0.0, 0), (1e-60, -128),
])
def test_choose_exponent_is_smallest_with_max_below_128_steps(max_abs, expected):
    e = choose_exponent(max_abs)
    assert e == expected
    if max_abs > 1e-30:
        assert max_abs <= 128 * 2.0**e
        assert max_abs > 128 * 2.0 ** (e - 1)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_choose_exponent_rejects_bad_magnitudes(bad):
    with pytest.raises(DataError):
        choose_exponent(bad)


def test_images_in_unit_interval_use_exponent_minus_7_and_values_0_to_127():
    x = np.linspace(0.0, 1.0, 1001).reshape(7, 11, 13)
    q, e = quantize_inputs(x)
    assert e == -7
    assert q.dtype == np.int8 and q.shape == x.shape
    assert q.min() == 0 and q.max() == 127
    assert q.flat[-1] == 127                      # 1.0 -> 128 saturates
    assert np.all(np.diff(q.ravel().astype(int)) >= 0)  # monotone


@pytest.mark.parametrize(("value", "expected"), [
    (2.5, 3), (-2.5, -3), (0.5, 1), (-0.5, -1), (1.5, 2), (-1.5, -2), (-1.49, -1), (-1.51, -2),
    (0.49999999999999994, 0), (-0.49999999999999994, 0), (126.5, 127), (-126.5, -127),
    (127.49, 127), (-300.0, -127), (300.0, 127), (-127.5, -127), (-128.0, -127),
])
def test_rounding_half_away_from_zero_and_saturation(value, expected):
    q, e = quantize_inputs(np.array([value]), exponent=0)
    assert e == 0
    assert int(q[0]) == expected


def test_rounding_uses_the_scale_before_rounding():
    # exponent -2: 1 step = 0.25; -0.625 = -2.5 steps -> -3 steps (away from zero)
    q, _ = quantize_inputs(np.array([-0.625, 0.625, -0.375, 0.125]), exponent=-2)
    assert q.tolist() == [-3, 3, -2, 1]


def test_round_half_away_from_zero_has_no_bias_on_negative_values():
    rng = np.random.default_rng(1)
    v = -rng.uniform(0, 100, 200_000)
    err = round_half_away_from_zero(v) - v
    assert abs(err.mean()) < 0.005
    floor_err = np.floor(v) - v                     # the biased alternative (arithmetic shift)
    assert floor_err.mean() < -0.4


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 40),
                  elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)),
       st.one_of(st.none(), st.integers(-12, 4)))
def test_quantize_round_trip_error_is_half_a_step_or_saturates(x, exponent):
    q, e = quantize_inputs(x, exponent)
    assert q.dtype == np.int8
    assert q.min() >= -127                           # never -128
    step = 2.0**e
    back = dequantize(q, e)
    inside = np.abs(x) <= 127 * step
    assert np.all(np.abs(back - x)[inside] <= step / 2)
    assert np.all(np.abs(q[~inside]) == 127)
    assert np.all(np.sign(q[~inside]) == np.sign(x[~inside]))
    q_neg, _ = quantize_inputs(-x, e)
    assert np.array_equal(q_neg, -q)                 # symmetric: no bias for negative values
    if exponent is None and np.max(np.abs(x)) > 1e-30:
        assert np.max(np.abs(x)) / step > 64         # the automatic exponent uses the top bit


def test_dequantize_is_exact_and_rejects_floats():
    q = np.arange(-127, 128, dtype=np.int8)
    assert np.array_equal(dequantize(q, -3), q.astype(np.float64) / 8)
    with pytest.raises(DataError):
        dequantize(q.astype(np.float32), -3)
    with pytest.raises(DataError):
        dequantize(q, 2.5)


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf")], ["a", "b"]])
def test_quantize_rejects_non_finite_or_non_numeric(bad):
    with pytest.raises(DataError):
        quantize_inputs(bad)


@pytest.mark.parametrize("bad_exponent", [1.5, True, 500, "3"])
def test_quantize_rejects_bad_exponents(bad_exponent):
    with pytest.raises(DataError):
        quantize_inputs([0.5], bad_exponent)


def test_unit_pixels_table_matches_the_float_rule():
    pixels = np.arange(256, dtype=np.uint8)
    q, e = quantize_unit_pixels(pixels)
    q_ref, e_ref = quantize_inputs(pixels / 255.0, -7)
    assert e == e_ref == -7
    assert np.array_equal(q, q_ref)
    assert q[0] == 0 and q[255] == 127 and q[128] == 64   # 128/255*128 = 64.25
    with pytest.raises(DataError):
        quantize_unit_pixels(pixels.astype(np.int16))


def test_sensor_quantisation_uses_train_statistics_only_and_four_sigmas():
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 10.0, 0.01])[None, :, None]
    offset = np.array([5.0, -3.0, 0.0])[None, :, None]
    train = rng.standard_normal((200, 3, 50)) * scale + offset
    test = rng.standard_normal((100, 3, 50)) * scale + offset + 2.0 * scale   # shifted by 2 sigma
    result = quantize_sensor(train, test)
    assert result.exponent == -5                      # 4 sigma = 128 steps
    assert result.x_train.dtype == np.int8 and result.x_train.shape == train.shape
    assert np.all(np.abs(result.channel_mean - offset.ravel()) < 0.05 * scale.ravel())
    np.testing.assert_allclose(result.channel_std, scale.ravel(), rtol=0.05)
    z_train = dequantize(result.x_train, result.exponent)
    z_test = dequantize(result.x_test, result.exponent)
    np.testing.assert_allclose(z_train.mean(axis=(0, 2)), 0.0, atol=0.02)
    np.testing.assert_allclose(z_train.std(axis=(0, 2)), 1.0, atol=0.02)
    # the test split keeps its shift: it was NOT standardised with its own statistics
    np.testing.assert_allclose(z_test.mean(axis=(0, 2)), 2.0, atol=0.1)
    assert result.x_test.max() == 127 and result.x_test.min() >= -127     # clipped beyond +-3.97 sigma


def test_sensor_quantisation_handles_constant_channels_and_rejects_bad_shapes():
    train = np.zeros((4, 2, 8))
    train[:, 1] = np.arange(8)
    result = quantize_sensor(train, train)
    assert np.all(result.x_train[:, 0] == 0)
    with pytest.raises(DataError):
        quantize_sensor(train[:, :, 0], train)
    with pytest.raises(DataError):
        quantize_sensor(train, np.zeros((4, 3, 8)))
    with pytest.raises(DataError):
        quantize_sensor(train, train, clip_sigmas=0)


def test_sensor_quantisation_names_its_splits_as_the_dataset_does():
    train = np.random.default_rng(1).standard_normal((6, 2, 8))
    result = quantize_sensor(train, train[:3])
    assert result.x_train.shape == (6, 2, 8) and result.x_test.shape == (3, 2, 8)
    assert result.train is result.x_train and result.test is result.x_test   # deprecated aliases
