"""Documented accumulator bounds.

Every int32 accumulator in tintin sums products of two symmetric int8 mantissas (|m| <= 127), so
one product is at most 127 * 127 = 16129 in magnitude and K products at most ``K * 16129``.

* ``INT32_SAFE_TERMS = 133_143``: K * 16129 < 2**31 for K up to this number.
* ``ACC_TERMS_LIMIT = 66_572``: K * 16129 <= 2**30. We require this for every layer's fan-in
  (forward and input-gradient sums) and every weight-gradient sum (batch x output positions), so
  an accumulator plus an aligned bias (itself clipped to +-2**30) never leaves int32.
* ``FLOAT32_EXACT_TERMS = 1040``: K * 16129 < 2**24, so a float32 matmul of integer-valued
  operands is exact (every partial sum is an integer below 2**24, whatever the summation order or
  FMA use). Above it the host uses float64 (exact below 2**53, i.e. any K allowed here).

Layers check their sizes against these bounds at construction (:func:`check_terms`).
"""

from __future__ import annotations

from tintin.errors import TintinError

PRODUCT_MAX = 127 * 127
INT32_SAFE_TERMS = (2**31 - 1) // PRODUCT_MAX
ACC_TERMS_LIMIT = 2**30 // PRODUCT_MAX
FLOAT32_EXACT_TERMS = (2**24 - 1) // PRODUCT_MAX
BIAS_ALIGN_LIMIT = 2**30


class AccumulatorBoundError(TintinError, ValueError):
    """A layer or batch would sum more products than the int32 accumulator bound allows."""


def check_terms(terms: int, what: str) -> None:
    """Raise :class:`AccumulatorBoundError` if ``terms`` int8 products could overflow the bound."""
    if terms > ACC_TERMS_LIMIT:
        raise AccumulatorBoundError(
            f"{what} sums {terms} int8 products per int32 accumulator; the limit is "
            f"{ACC_TERMS_LIMIT} (|sum| <= 2**30)")
