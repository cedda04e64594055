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

The sums are exact, so the bounds hold for any order and grouping of the terms: a partial sum is a
sum of a subset of them. The C product loops (``tt_dot.c``) rely on this: the Cortex-M4/M33 loop adds
two products at a time to a 32-bit sum (``SMLAD``), and the AVR loop sums at most
``INT24_PARTIAL_TERMS = 511`` products in a 24-bit register before adding them to the 32-bit total
(``511 * 128 * 128 < 2**23``: safe even for -128 operands).

The bound needs every int8 operand inside the **int8 domain** ``[-127, 127]``
(:data:`INT8_DOMAIN_MIN`, :data:`INT8_DOMAIN_MAX`): ``-128 * -128 = 16384`` would break it. tintin's
own arithmetic never produces -128 (every rescale saturates symmetrically), so the domain is enforced
where values come from outside: training and evaluation inputs (:func:`check_int8_domain`, used by
``fit``, ``train_step``, ``evaluate`` and ``predict``), which *reject* -128 and any other value
outside the domain, and model files (:mod:`tintin.io`), which reject -128 weights.

Scale exponents (``S``, ``U``, ``D`` of a stored tensor's scale and a model's input exponent) are
kept in ``[SCALE_EXPONENT_MIN, SCALE_EXPONENT_MAX] = [-128, 127]``, the range of the data-set
exponents (one int8 on the device). The C runtime stores exponents in ``int16_t`` and needs every
scale it derives (sums and doubles of these) to stay within +-16000
(:data:`RUNTIME_EXPONENT_LIMIT`); starting from int8 exponents leaves that margin for a hundred
layers.
"""

from __future__ import annotations

import numpy as np

from tintin.errors import TintinError

PRODUCT_MAX = 127 * 127
INT32_SAFE_TERMS = (2**31 - 1) // PRODUCT_MAX
ACC_TERMS_LIMIT = 2**30 // PRODUCT_MAX
FLOAT32_EXACT_TERMS = (2**24 - 1) // PRODUCT_MAX
INT24_PARTIAL_TERMS = (2**23 - 1) // (128 * 128)
BIAS_ALIGN_LIMIT = 2**30

#: the int8 domain of every operand: symmetric, -128 excluded (so |product| <= PRODUCT_MAX)
INT8_DOMAIN_MIN, INT8_DOMAIN_MAX = -127, 127
#: range of a stored scale exponent (S, U, D) and of a model's input exponent
SCALE_EXPONENT_MIN, SCALE_EXPONENT_MAX = -128, 127
#: the C runtime's tt_scale_t holds int16_t exponents and needs |S|, |U|, |D| <= this for every
#: scale it derives (tintin.codegen.host checks the same figure)
RUNTIME_EXPONENT_LIMIT = 16000

#: how to bring data into the domain, quoted by every domain error
QUANTISE_HINT = ("quantise real-valued data first with tintin.data.quantize.quantize_inputs(x) "
                 "(returns int8 mantissas and their exponent)")


class AccumulatorBoundError(TintinError, ValueError):
    """A layer or batch would sum more products than the int32 accumulator bound allows."""


class InputDomainError(TintinError, ValueError):
    """Samples are not integers, or lie outside the int8 domain [-127, 127]."""


def check_int8_domain(x, what: str = "inputs") -> np.ndarray:
    """``x`` as an int8 array after checking it lies in the int8 domain (the check every entry
    point runs on samples). Integer arrays of any width are accepted when their values fit; float,
    bool or object arrays and any value outside ``[-127, 127]`` (``-128`` included) raise
    :class:`InputDomainError` with a one-line hint. Returns ``x`` itself when it is already int8."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise InputDomainError(f"{what} must be int8 integers in [{INT8_DOMAIN_MIN}, {INT8_DOMAIN_MAX}], "
                               f"got {arr.dtype} values: {QUANTISE_HINT}")
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < INT8_DOMAIN_MIN or hi > INT8_DOMAIN_MAX:
            fix = ("np.clip(x, -127, 127) maps the -128 values into the domain"
                   if lo == -128 and hi <= INT8_DOMAIN_MAX else QUANTISE_HINT)
            raise InputDomainError(f"{what} must lie in [{INT8_DOMAIN_MIN}, {INT8_DOMAIN_MAX}] (-128 is "
                                   f"excluded), got values in [{lo}, {hi}]: {fix}")
    return arr if arr.dtype == np.int8 else arr.astype(np.int8)


def check_terms(terms: int, what: str) -> None:
    """Raise :class:`AccumulatorBoundError` if ``terms`` int8 products could overflow the bound."""
    if terms > ACC_TERMS_LIMIT:
        raise AccumulatorBoundError(
            f"{what} sums {terms} int8 products per int32 accumulator; the limit is "
            f"{ACC_TERMS_LIMIT} (|sum| <= 2**30)")
