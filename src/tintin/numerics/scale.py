"""Integer-tracked scales.

A quantised tensor stores integer *mantissas* ``m`` and one scale per tensor; the real value of an
element is ``m * scale``. The scale is never a float: it is a triple of small integer exponents

    scale = 2**S * u**U * d**D,   u = 5/4 (upscale), d = 3/4 (downscale)

``u`` and ``d`` are short sums of powers of two (1 + 2**-2 and 2**-1 + 2**-2), so multiplying a
mantissa by them takes shifts and adds. In ``pow2`` mode (NITI style) only ``S`` is used; in
``compound`` mode (Tin-Tin style) all three are. Multiplying two tensors adds their exponents
component-wise; converting a value from one scale to another uses an integer fixed-point
multiplier computed by :func:`ratio_multiplier` with integer arithmetic only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

#: numerator / right-shift of the upscale factor u = 5 / 2**2 = 1.25
U_NUM, U_SHIFT = 5, 2
#: numerator / right-shift of the downscale factor d = 3 / 2**2 = 0.75
D_NUM, D_SHIFT = 3, 2

#: fixed-point multipliers are normalised to [2**MULT_BITS-1, 2**MULT_BITS) (Q14 mantissa, 15 bits)
MULT_BITS = 15
#: largest |U| or |D| exponent difference accepted by ratio_multiplier (bounded loop on the device)
MAX_FACTOR_STEPS = 64


class ScaleMode(str, Enum):
    """How a rescale may change a tensor's scale."""

    POW2 = "pow2"  #: powers of two only (NITI)
    COMPOUND = "compound"  #: 2**S * u**U * d**D (Tin-Tin)


@dataclass(frozen=True, slots=True)
class Scale:
    """``2**S * (5/4)**U * (3/4)**D`` with integer exponents."""

    S: int = 0
    U: int = 0
    D: int = 0

    def __mul__(self, other: "Scale") -> "Scale":
        return Scale(self.S + other.S, self.U + other.U, self.D + other.D)

    def __truediv__(self, other: "Scale") -> "Scale":
        return Scale(self.S - other.S, self.U - other.U, self.D - other.D)

    def shifted(self, bits: int) -> "Scale":
        """The scale times ``2**bits``."""
        return Scale(self.S + bits, self.U, self.D)

    @property
    def is_pow2(self) -> bool:
        return self.U == 0 and self.D == 0

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.S, self.U, self.D)

    @classmethod
    def from_tuple(cls, t) -> "Scale":
        s, u, d = (int(v) for v in t)
        return cls(s, u, d)

    # -- host-side helpers (reporting and configuration only; never inside a training step) --
    def to_float(self) -> float:
        """Real value of the scale. For reports and float baselines only."""
        return math.ldexp((U_NUM / 2**U_SHIFT) ** self.U * (D_NUM / 2**D_SHIFT) ** self.D, self.S)

    @classmethod
    def nearest(cls, value: float, mode: ScaleMode | str = ScaleMode.COMPOUND, max_steps: int = 3) -> "Scale":
        """The representable scale closest to ``value`` (in log distance). Host configuration only.

        In compound mode ``U`` and ``D`` range over ``0..max_steps`` (their inverse is covered by
        ``S``); ties prefer fewer steps.
        """
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"a scale must be a positive finite number, got {value!r}")
        mode = ScaleMode(mode)
        steps = range(max_steps + 1) if mode is ScaleMode.COMPOUND else range(1)
        best, best_err = None, math.inf
        for u in steps:
            for d in steps:
                base = (U_NUM / 2**U_SHIFT) ** u * (D_NUM / 2**D_SHIFT) ** d
                s = round(math.log2(value / base))
                err = abs(math.log2(value) - math.log2(base) - s)
                if err < best_err - 1e-12:
                    best, best_err = cls(s, u, d), err
        return best

    def __str__(self) -> str:
        parts = [f"2^{self.S}"]
        if self.U:
            parts.append(f"u^{self.U}")
        if self.D:
            parts.append(f"d^{self.D}")
        return "*".join(parts)


def _normalise(m: int, e: int) -> tuple[int, int]:
    """Bring ``m * 2**e`` to a mantissa in [2**(MULT_BITS-1), 2**MULT_BITS) by rounding half up."""
    top = 1 << MULT_BITS
    low = 1 << (MULT_BITS - 1)
    while m >= top:
        s = m.bit_length() - MULT_BITS
        m = (m + (1 << (s - 1))) >> s
        e += s
    while m < low:
        m <<= 1
        e -= 1
    return m, e


@lru_cache(maxsize=8192)
def ratio_multiplier(ratio: Scale) -> tuple[int, int]:
    """Integer fixed-point form ``(M, n)`` of a scale ratio: ``ratio ~= M * 2**-n``.

    ``M`` is in [2**14, 2**15). Computed with integers only, so the device can do the same:
    start from 1.0 = 2**14 * 2**-14; for each factor step multiply by the numerator (u: 5, d: 3) and
    account for the ``2**-2``; for each inverse step compute ``round((m << 16) / numerator)``
    (half up) and account for ``2**(2-16)``; renormalise after every step (shift right, half up).
    U steps come before D steps. Relative error per step is below 2**-14.
    """
    if abs(ratio.U) > MAX_FACTOR_STEPS or abs(ratio.D) > MAX_FACTOR_STEPS:
        raise OverflowError(f"scale ratio {ratio} has too many u/d steps (limit {MAX_FACTOR_STEPS})")
    m, e = 1 << (MULT_BITS - 1), -(MULT_BITS - 1)
    for count, num, shift in ((ratio.U, U_NUM, U_SHIFT), (ratio.D, D_NUM, D_SHIFT)):
        for _ in range(abs(count)):
            if count > 0:
                m, e = _normalise(m * num, e - shift)
            else:
                m, e = _normalise(((m << 16) + num // 2) // num, e + shift - 16)
    return m, -(e + ratio.S)


@lru_cache(maxsize=8192)
def divide_multiplier(multiplier: tuple[int, int], divisor: int) -> tuple[int, int]:
    """``(M, n)`` divided by a positive integer: ``round((M << 16) / divisor)`` (half up), renormalised.

    Used for the ``1/batch`` factor of the update (integer division, as on the device)."""
    if divisor <= 0:
        raise ValueError("divisor must be positive")
    m, n = multiplier
    if divisor == 1:
        return m, n
    m, e = _normalise(((m << 16) + divisor // 2) // divisor, -(n + 16))
    return m, -e
