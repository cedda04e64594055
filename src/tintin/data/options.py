"""Validation of loader options: every bad value raises :class:`DataError` with a one-line message.

Validated options are normalised to plain JSON values (ints, floats, lists of floats) so that they can
form part of the cache key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["resolve_options", "count_option", "seed_option", "snr_option", "real_option"]

Checker = Callable[[str, Any], Any]

#: SNRs are accepted in this closed range (dB).
SNR_LIMITS_DB = (-60.0, 60.0)


def resolve_options(dataset: str, given: Mapping[str, Any], defaults: Mapping[str, Any],
                    checkers: Mapping[str, Checker]) -> dict[str, Any]:
    """Merge ``given`` over ``defaults`` and validate each value with its checker.

    Unknown option names raise :class:`DataError` listing the valid ones. A value of ``None`` keeps
    the default (so callers can pass optional settings through).
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise DataError(f"unknown option(s) {', '.join(unknown)} for data set '{dataset}'; "
                        f"valid options: {valid}")
    resolved = {}
    for key, default in defaults.items():
        value = given.get(key)
        value = default if value is None else value
        resolved[key] = value if value is None else checkers[key](key, value)
    return resolved


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def count_option(minimum: int, maximum: int) -> Checker:
    """Checker for an integer in ``[minimum, maximum]``."""
    def check(key: str, value: Any) -> int:
        if not _is_int(value):
            raise DataError(f"option {key} must be an integer, got {value!r}")
        if not minimum <= int(value) <= maximum:
            raise DataError(f"option {key} must be in [{minimum}, {maximum}], got {value}")
        return int(value)
    return check


def seed_option(key: str, value: Any) -> int:
    """Checker for a random seed: an integer in ``[0, 2**63 - 1]``."""
    if not _is_int(value) or not 0 <= int(value) < 2**63:
        raise DataError(f"option {key} must be an integer in [0, 2**63), got {value!r}")
    return int(value)


def real_option(minimum: float, maximum: float) -> Checker:
    """Checker for a finite real number in ``[minimum, maximum]``."""
    def check(key: str, value: Any) -> float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise DataError(f"option {key} must be a number, got {value!r}")
        v = float(value)
        if not (math.isfinite(v) and minimum <= v <= maximum):
            raise DataError(f"option {key} must be in [{minimum}, {maximum}], got {value!r}")
        return v
    return check


def snr_option(key: str, value: Any) -> list[float]:
    """Checker for an SNR setting in dB: one number, or a non-empty list/tuple/range of numbers.

    Returns a list of floats; with several values, each generated sample draws one of them
    uniformly at random. Values must lie in [-60, 60] dB.
    """
    single = real_option(*SNR_LIMITS_DB)
    if isinstance(value, (list, tuple, range, np.ndarray)):
        values = list(value.tolist() if isinstance(value, np.ndarray) else value)
        if not values:
            raise DataError(f"option {key} must not be an empty list")
        return [single(key, v) for v in values]
    return [single(key, value)]
