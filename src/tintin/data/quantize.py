"""Input quantisation: real-valued samples -> int8 mantissas with a power-of-two scale.

This is the one place where floating point meets the integer pipeline. It runs once, on the host,
when a data set is prepared; everything downstream sees only ``int8`` mantissas ``q`` and one integer
exponent ``e`` per data set, with real value ``q * 2**e``.

Conventions (the same as the rest of tintin):

* mantissas use the symmetric range ``[-127, 127]`` (``-128`` never occurs, so negation is safe);
* rounding is *half away from zero* (``2.5 -> 3``, ``-2.5 -> -3``), then saturation to ``+-127``;
* the exponent chosen automatically is the smallest integer ``e`` with ``max|x| <= 128 * 2**e``.
  Data in ``[0, 1]`` therefore gets ``e = -7`` and mantissas ``0..127`` (the value ``1.0`` maps to
  ``128`` and saturates to ``127``: an error of one step at the very top, in exchange for a full
  extra bit of resolution everywhere else).

Sensor data (time series) is first standardised per channel with statistics of the *training split
only*, then quantised with the exponent for ``clip_sigmas = 4`` standard deviations, i.e. ``e = -5``:
one standard deviation is 32 steps and values beyond ``127 / 32 = 3.97`` standard deviations are
clipped (about 0.007 % of Gaussian samples).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .errors import DataError

__all__ = [
    "INT8_LIMIT",
    "SENSOR_CLIP_SIGMAS",
    "choose_exponent",
    "round_half_away_from_zero",
    "quantize_inputs",
    "dequantize",
    "quantize_unit_pixels",
    "channel_statistics",
    "SensorQuantization",
    "quantize_sensor",
]

#: Largest mantissa magnitude; the int8 range used is symmetric: [-127, 127].
INT8_LIMIT = 127
#: Standard deviations that fit in the int8 range for standardised sensor data (exponent -5).
SENSOR_CLIP_SIGMAS = 4.0
#: Exponents are restricted to this closed range (fits in an int8 on the device).
EXPONENT_MIN, EXPONENT_MAX = -128, 127


def _check_exponent(exponent: object) -> int:
    if isinstance(exponent, bool) or not isinstance(exponent, (int, np.integer)):
        raise DataError(f"exponent must be an integer, got {exponent!r}")
    value = int(exponent)
    if not EXPONENT_MIN <= value <= EXPONENT_MAX:
        raise DataError(f"exponent {value} is outside [{EXPONENT_MIN}, {EXPONENT_MAX}]")
    return value


def _as_finite_float(x: object, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numeric: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} contains NaN or infinite values")
    return arr


def choose_exponent(max_abs: float) -> int:
    """The smallest integer ``e`` with ``max_abs <= 128 * 2**e`` (``0`` when ``max_abs == 0``).

    ``max_abs`` is a non-negative finite real number (the largest magnitude to represent). With this
    exponent every value maps to a mantissa of magnitude at most 128 before saturation to 127.
    The result is clamped to ``[-128, 127]`` (magnitudes below ``2**-135`` quantise to zero).
    """
    value = float(max_abs)
    if not math.isfinite(value) or value < 0:
        raise DataError(f"max_abs must be finite and >= 0, got {max_abs!r}")
    if value == 0.0:
        return 0
    mantissa, exp2 = math.frexp(value)  # value = mantissa * 2**exp2, mantissa in [0.5, 1)
    ceil_log2 = exp2 - 1 if mantissa == 0.5 else exp2
    return min(max(ceil_log2 - 7, EXPONENT_MIN), EXPONENT_MAX)


def round_half_away_from_zero(v: np.ndarray) -> np.ndarray:
    """Round float64 values to the nearest integer, ties away from zero (exact, no ``+0.5`` error).

    Returns float64 values that are integers. ``floor(|v| + 0.5)`` would round ``0.49999999999999994``
    up because the addition itself rounds; splitting off the fraction avoids that.
    """
    magnitude = np.abs(v)
    whole = np.floor(magnitude)
    rounded = whole + (magnitude - whole >= 0.5)
    return np.copysign(rounded, v)


def quantize_inputs(x_float: object, exponent: int | None = None) -> tuple[np.ndarray, int]:
    """Quantise real values to int8 mantissas with a power-of-two scale.

    Parameters
    ----------
    x_float:
        Array-like of finite real values, any shape.
    exponent:
        Power-of-two exponent ``e`` of the scale (an integer in ``[-128, 127]``). ``None`` chooses
        the smallest ``e`` with ``max|x| <= 128 * 2**e`` (see :func:`choose_exponent`).

    Returns
    -------
    (q, e):
        ``q`` is an ``np.int8`` array of the same shape with values in ``[-127, 127]``:
        ``q = clip(round_half_away_from_zero(x / 2**e), -127, 127)``; ``e`` is the exponent used.
        The real value represented by ``q`` is ``q * 2**e``.

    >>> from tintin.data import quantize_inputs
    >>> q, e = quantize_inputs([0.0, 0.5, -1.0, 1.0])
    >>> q.tolist(), e
    ([0, 64, -127, 127], -7)
    """
    x = _as_finite_float(x_float, "x_float")
    if exponent is None:
        exponent = choose_exponent(float(np.max(np.abs(x))) if x.size else 0.0)
    e = _check_exponent(exponent)
    scaled = np.ldexp(x, -e)  # exact: multiplication by a power of two
    q = np.clip(round_half_away_from_zero(scaled), -INT8_LIMIT, INT8_LIMIT)
    return q.astype(np.int8), e


def dequantize(q: object, exponent: int) -> np.ndarray:
    """Real values ``q * 2**exponent`` as float64 (exact for int8 mantissas). Same shape as ``q``."""
    arr = np.asarray(q)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"mantissas must have an integer dtype, got {arr.dtype}")
    return np.ldexp(arr.astype(np.float64), _check_exponent(exponent))


def quantize_unit_pixels(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Quantise 8-bit pixels (``uint8`` in 0..255, real value ``p / 255`` in [0, 1]).

    Returns ``(q, -7)`` with ``q = quantize_inputs(p / 255, -7)``: mantissas in ``0..127``. Done with
    a 256-entry lookup table, so that 60 000 images need no float copy of the data.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise DataError(f"pixels must be uint8, got {arr.dtype}")
    table, exponent = quantize_inputs(np.arange(256, dtype=np.float64) / 255.0, -7)
    return table[arr], exponent


def channel_statistics(x_train: object) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of a time-series array of shape ``(N, C, L)``.

    Statistics run over samples and time (axes 0 and 2). Returns two float64 arrays of shape
    ``(C,)``; a channel with zero spread gets standard deviation 1 (so it maps to zero).
    """
    x = _as_finite_float(x_train, "x_train")
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[2] == 0:
        raise DataError(f"x_train must have shape (N, C, L) with N, L > 0, got {x.shape}")
    mean = x.mean(axis=(0, 2))
    std = x.std(axis=(0, 2))
    std = np.where(std > 0, std, 1.0)
    return mean, std


class SensorQuantization(NamedTuple):
    """Result of :func:`quantize_sensor`: int8 splits ``x_train`` / ``x_test`` (named as in
    :class:`tintin.data.Dataset`), their exponent and the train statistics.

    ``train`` and ``test`` are deprecated aliases of ``x_train`` and ``x_test``."""

    x_train: np.ndarray
    x_test: np.ndarray
    exponent: int
    channel_mean: np.ndarray
    channel_std: np.ndarray

    @property
    def train(self) -> np.ndarray:
        """Deprecated alias of :attr:`x_train`."""
        return self.x_train

    @property
    def test(self) -> np.ndarray:
        """Deprecated alias of :attr:`x_test`."""
        return self.x_test


def quantize_sensor(
    x_train: object, x_test: object, clip_sigmas: float = SENSOR_CLIP_SIGMAS
) -> SensorQuantization:
    """Standardise time series per channel with TRAIN statistics, then quantise both splits.

    ``x_train`` and ``x_test`` have shape ``(N, C, L)`` (real units of the sensor). Each channel is
    mapped to ``z = (x - mean_c) / std_c`` using the training split only (no test leakage), then
    quantised with exponent ``choose_exponent(clip_sigmas)`` (``-5`` for the default 4): real value
    of a mantissa = ``z`` (standard deviations), values beyond about ``clip_sigmas`` are clipped.
    """
    if not (isinstance(clip_sigmas, (int, float)) and math.isfinite(clip_sigmas) and clip_sigmas > 0):
        raise DataError(f"clip_sigmas must be a positive number, got {clip_sigmas!r}")
    train = _as_finite_float(x_train, "x_train")
    test = _as_finite_float(x_test, "x_test")
    mean, std = channel_statistics(train)
    if test.ndim != 3 or test.shape[1:2] != train.shape[1:2]:
        raise DataError(f"x_test shape {test.shape} does not match x_train channels {train.shape}")
    exponent = choose_exponent(clip_sigmas)

    def standardise(x: np.ndarray) -> np.ndarray:
        return (x - mean[None, :, None]) / std[None, :, None]

    q_train, _ = quantize_inputs(standardise(train), exponent)
    q_test, _ = quantize_inputs(standardise(test), exponent)
    return SensorQuantization(q_train, q_test, exponent, mean, std)
