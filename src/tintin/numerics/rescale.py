"""Range estimation and integer rescaling.

``rescale(acc, scale, bits, ...)`` brings an integer tensor (usually an int32 accumulator) into the
signed ``bits``-bit range ``[-L, L]`` with ``L = 2**(bits-1) - 1`` (symmetric: -128 never appears in
int8) and returns the new mantissas and their exact scale:

1. Range estimation: ``A = max|acc|``. If ``A <= L`` nothing changes (no upscaling of small
   tensors: it would add rounding error and no information).
2. ``k = bitlen(A) - bitlen(L)`` so that ``A / 2**k`` lies in ``[2**(bits-2), 2**(bits-1))``.
3. Candidate multipliers ``f / 2**k`` then ``f / 2**(k+1)``, with ``f`` from the *fine-step table*
   in descending order: ``f = 1`` only in ``pow2`` mode; in ``compound`` mode every
   ``u**a * d**b * 2**c`` in ``[1, 2)`` with ``0 <= a, b <= 2`` (1, 1.125, 1.171875, 1.25,
   1.40625, 1.5, 1.5625, 1.7578125, 1.875). The first candidate whose nearest-rounded
   ``A * f / 2**k`` is ``<= L`` is applied to every element: ``q = round(acc * m, p + k)`` where
   ``f = m / 2**p`` with ``m = 5**a * 3**b``; ``m = 1`` needs no multiply.
4. Saturation: elements are clipped to ``[-L, L]`` (only stochastic rounding of the maximum can
   reach ``L + 1``).
5. The scale becomes ``scale * 2**(p + k - 2a - 2b) * u**-a * d**-b``: exact.

In pow2 mode this leaves the largest mantissa in ``[2**(bits-2), L]`` (up to one bit unused); in
compound mode the largest mantissa is at least ``L / 1.125`` (about 113 for int8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rounding import Rounding, shift_round, shift_round_scalar
from .scale import U_NUM, U_SHIFT, D_NUM, D_SHIFT, Scale, ScaleMode


@dataclass(frozen=True, slots=True)
class FineStep:
    """A multiplier ``m / 2**p`` in [1, 2) with ``m = 5**a * 3**b``."""

    m: int
    p: int
    a: int
    b: int


def _fine_steps(max_steps: int = 2) -> tuple[FineStep, ...]:
    steps = []
    for a in range(max_steps + 1):
        for b in range(max_steps + 1):
            m = U_NUM**a * D_NUM**b
            p = m.bit_length() - 1  # m / 2**p in [1, 2)
            steps.append(FineStep(m, p, a, b))
    # descending by value m / 2**p (compared exactly as integers m * 2**(16 - p))
    steps.sort(key=lambda s: s.m << (16 - s.p), reverse=True)
    return tuple(steps)


COMPOUND_STEPS: tuple[FineStep, ...] = _fine_steps(2)
POW2_STEPS: tuple[FineStep, ...] = (FineStep(1, 0, 0, 0),)


def fine_steps(mode: ScaleMode | str) -> tuple[FineStep, ...]:
    return COMPOUND_STEPS if ScaleMode(mode) is ScaleMode.COMPOUND else POW2_STEPS


def limit_for_bits(bits: int) -> int:
    """Largest mantissa magnitude of a signed ``bits``-bit tensor (symmetric range)."""
    return (1 << (bits - 1)) - 1


_DTYPE_MAX: dict = {}


def clip_inplace(x: np.ndarray, limit: int) -> np.ndarray:
    """Clip an integer array to ``[-limit, limit]`` in place (``np.clip`` without its per-call checks)."""
    top = _DTYPE_MAX.get(x.dtype)
    if top is None:
        top = _DTYPE_MAX[x.dtype] = int(np.iinfo(x.dtype).max)
    limit = min(limit, top)
    np.minimum(x, limit, out=x)
    np.maximum(x, -limit, out=x)
    return x


def max_abs(x: np.ndarray) -> int:
    """``max |x|`` as a Python int (0 for an empty array)."""
    if x.size == 0:
        return 0
    return max(int(x.max()), -int(x.min()))


def choose_rescale(amax: int, bits: int, mode: ScaleMode | str) -> tuple[FineStep, int] | None:
    """The fine step and shift ``k`` that :func:`rescale` applies for a tensor with ``max|x| = amax``.

    ``None`` when the tensor already fits (no change).
    """
    limit = limit_for_bits(bits)
    if amax <= limit:
        return None
    k = amax.bit_length() - limit.bit_length()
    steps = fine_steps(mode)
    for shift in (k, k + 1):
        for st in steps:
            if shift_round_scalar(amax * st.m, st.p + shift) <= limit:
                return st, shift
    raise AssertionError("unreachable: f/2**(k+1) < 1 always fits")  # pragma: no cover


def apply_step(x: np.ndarray, step: FineStep, shift: int, bits: int, rounding: Rounding,
               key: int | None) -> np.ndarray:
    """``clip(round(x * m, p + shift))`` into the symmetric ``bits`` range."""
    limit = limit_for_bits(bits)
    if step.m != 1:
        x = x.astype(np.int64) * step.m
    q = shift_round(x, step.p + shift, rounding, key)
    clip_inplace(q, limit)
    return q


def rescaled_scale(scale: Scale, step: FineStep, shift: int) -> Scale:
    return Scale(scale.S + step.p + shift - U_SHIFT * step.a - D_SHIFT * step.b,
                 scale.U - step.a, scale.D - step.b)


def rescale(acc: np.ndarray, scale: Scale, bits: int = 8, mode: ScaleMode | str = ScaleMode.POW2,
            rounding: Rounding = Rounding.NEAREST, key: int | None = None,
            out_dtype=None) -> tuple[np.ndarray, Scale]:
    """Rescale an integer tensor into ``bits`` bits (see the module docstring).

    Returns ``(mantissas, scale)``; mantissas have ``out_dtype`` (default: int8 for ``bits <= 8``,
    int16 for ``bits <= 16``, else int32).
    """
    return rescale_known_max(acc, max_abs(acc), scale, bits, mode, rounding, key, out_dtype)


def rescale_known_max(acc: np.ndarray, amax: int, scale: Scale, bits: int = 8,
                      mode: ScaleMode | str = ScaleMode.POW2, rounding: Rounding = Rounding.NEAREST,
                      key: int | None = None, out_dtype=None) -> tuple[np.ndarray, Scale]:
    """:func:`rescale` with ``max|x|`` given: ``amax`` may be the maximum of a larger tensor that
    ``acc`` is a part of. With nearest rounding each element's result depends only on itself and
    ``amax``, so the parts of a tensor rescaled with the whole tensor's maximum are the whole
    tensor's rescaled values (how a patch-by-patch computation stays bit-exact)."""
    if out_dtype is None:
        out_dtype = np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32
    choice = choose_rescale(amax, bits, mode)
    if choice is None:
        return acc.astype(out_dtype), scale
    step, shift = choice
    if step.m == 1 and acc.dtype.itemsize == 4 and amax > 0x7FFFFFFF - (1 << (step.p + shift - 1)):
        # int32 values within 2**(n-1) of 2**31 (an accumulator plus a saturated bias): widen, so
        # that nearest rounding's added half cannot wrap (``shift_round``'s int32 domain)
        acc = acc.astype(np.int64)
    q = apply_step(acc, step, shift, bits, rounding, key)
    return q.astype(out_dtype), rescaled_scale(scale, step, shift)


def apply_multiplier(x: np.ndarray, multiplier: tuple[int, int], rounding: Rounding = Rounding.NEAREST,
                     key: int | None = None, limit: int | None = None) -> np.ndarray:
    """``round(x * M / 2**n)`` for a fixed-point multiplier ``(M, n)`` (product in int64).

    ``n < 0`` multiplies by ``2**-n`` exactly. With ``limit`` the result is clipped to
    ``[-limit, limit]``. Requires ``|x| * M < 2**62`` (``|x| < 2**47`` with ``M < 2**15``).
    """
    m, n = multiplier
    prod = np.multiply(x, m, dtype=np.int64)
    if n >= 0:
        if n > 62:
            q = np.zeros_like(prod)
        else:
            q = shift_round(prod, n, rounding, key)
    else:
        if limit is not None:
            bound = (limit >> -n) + 1
            clip_inplace(prod, bound)
        q = prod << -n
    if limit is not None:
        clip_inplace(q, limit)
    return q


#: the (U, D) exponent pairs a persistent tensor's scale may have (weights): the "scale grid"
GRID_MAX_STEPS = 2


def grid_steps(mode: ScaleMode | str) -> tuple[tuple[int, int], ...]:
    if ScaleMode(mode) is ScaleMode.POW2:
        return ((0, 0),)
    return tuple((a, b) for a in range(GRID_MAX_STEPS + 1) for b in range(GRID_MAX_STEPS + 1))


def choose_grid_rescale(amax: int, scale: Scale, bits: int, mode: ScaleMode | str) -> tuple[Scale, tuple[int, int]] | None:
    """Coarser *grid* scale for a persistent tensor that outgrew its range (``None`` if it fits).

    Weights are rescaled many times over training; applying fine steps as for activations would
    let their ``U``/``D`` exponents drift without bound. Instead the new scale is the finest
    ``2**S' * u**a * d**b`` with ``(a, b)`` in :func:`grid_steps` (``0 <= a, b <= 2``) for which the
    converted maximum ``round(amax * ratio)`` fits, ``ratio = scale / new_scale`` as a fixed-point
    multiplier (:func:`ratio_multiplier`). Ties go to the first grid entry. Returns the new scale and
    the multiplier ``(M, n)`` to apply (nearest rounding).
    """
    from .scale import ratio_multiplier

    limit = limit_for_bits(bits)
    if amax <= limit:
        return None
    best = None
    for a, b in grid_steps(mode):
        m, n = ratio_multiplier(Scale(0, scale.U - a, scale.D - b))
        # smallest extra shift j >= 0 (new S = scale.S + j, relative to 2**0) that fits
        j = max(0, (amax * m).bit_length() - n - limit.bit_length())
        while shift_round_scalar(amax * m, n + j) > limit:
            j += 1
        while j > -64 and shift_round_scalar(amax * m, n + j - 1) <= limit:
            j -= 1
        fitted = shift_round_scalar(amax * m, n + j)
        if best is None or fitted > best[0]:
            best = (fitted, Scale(scale.S + j, a, b), (m, n + j))
    return best[1], best[2]
