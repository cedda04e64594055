"""The errors of a fleet run (one line each, under :class:`tintin.errors.TintinError`)."""

from __future__ import annotations

from tintin.errors import TintinError


class FleetError(TintinError, ValueError):
    """A fleet run cannot start or continue: bad configuration, a bad partition, a failed client."""


class AggregationError(FleetError):
    """Client tensors that cannot be aggregated (shapes or kinds that disagree, no weight)."""
