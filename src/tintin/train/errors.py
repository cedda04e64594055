"""Errors of :mod:`tintin.train`: training or evaluation data the model cannot take.

Each message is one line for a user and says how to fix the data. Out-of-domain or float samples
raise :class:`tintin.numerics.bounds.InputDomainError` (the int8 domain is defined there).
"""

from __future__ import annotations

from tintin.errors import TintinError

__all__ = ["LabelError", "TrainingDataError"]


class TrainingDataError(TintinError, ValueError):
    """Training or evaluation data the model cannot take (no samples, a scalar, ...)."""


class LabelError(TrainingDataError):
    """Labels (or regression targets) of the wrong type, count, shape or range for the model."""
