"""Residual (element-wise) add of two int8 tensors with different scales, forward and backward.

Integer definition of ``residual_add_s8(a, b)`` (the C kernel does the same):

1. Working scale ``s_w``. For two scales ``p, q`` let ``(M, n) = ratio_multiplier(p / q)`` (15-bit
   mantissa ``M`` in ``[2**14, 2**15)``), so ``E(p, q) = 14 - n = floor(log2(p / q))`` up to the
   multiplier's rounding. The *coarse* operand ``c`` is the one with ``E(c, other) >= 0`` (if both
   qualify, i.e. the scales agree to 2**-14, the larger ``(S, U, D)`` tuple), the other one is
   *fine* ``f``, and ``E = E(c, f)``. Then ``s_w = s_f`` if ``E < 23``, else ``s_w = s_c * 2**-23``.
   The rule is symmetric: ``a + b`` and ``b + a`` give the same bits.
2. Each operand is brought to ``s_w``: ``m' = round(m * M_x / 2**n_x)`` with
   ``(M_x, n_x) = ratio_multiplier(s_x / s_w)`` (:func:`tintin.numerics.apply_multiplier`, nearest,
   int64 product). The operand whose scale *is* ``s_w``, and any power-of-two ratio, converts
   exactly (``M = 2**14``); with ``E < 23`` only the coarse operand can round (compound ratios).
   Thanks to the ``2**-23`` cap a converted magnitude is at most ``127 * 2**23`` (+1 from
   rounding) and the other one at most 127, so:
3. ``acc = a' + b'`` in int32 (``|acc| < 2**31``) at scale ``s_w``;
4. :func:`tintin.numerics.rescale` to int8 with nearest rounding.

When the two scales are equal the result is exactly ``rescale(a + b)``; when they differ by a power
of two, the add is exact before the final rescale.

Backward: ``d(a + b)/da = d(a + b)/db = 1``, so the output error goes unchanged (same mantissas,
same scale) to both branches (:func:`residual_add_backward_s8`); the two branch input errors are
merged with :func:`residual_add_s8` again.
"""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor, Rounding, Scale, ScaleMode, apply_multiplier, ratio_multiplier, rescale
from ..numerics.scale import MULT_BITS

#: the working scale is at most this many powers of two finer than the coarser operand's scale
RESIDUAL_MAX_SHIFT = 23


def log2_ratio_floor(a: Scale, b: Scale) -> int:
    """``floor(log2(a / b))`` from the integer multiplier of the ratio (no float)."""
    _, n = ratio_multiplier(a / b)
    return (MULT_BITS - 1) - n


def residual_working_scale(a: Scale, b: Scale) -> Scale:
    """The scale at which :func:`residual_add_s8` sums two tensors (step 1 of the definition).

    Symmetric in ``a`` and ``b``: the coarse operand is the one whose ratio to the other has
    ``floor(log2) >= 0``; if the multiplier's rounding makes both ratios look >= 1 (scales within
    2**-14 of each other), the one with the larger ``(S, U, D)`` tuple is coarse."""
    e_ab, e_ba = log2_ratio_floor(a, b), log2_ratio_floor(b, a)
    if (e_ab >= 0) != (e_ba >= 0):
        a_coarse = e_ab >= 0
    else:
        a_coarse = a.as_tuple() >= b.as_tuple()
    coarse, fine, e = (a, b, e_ab) if a_coarse else (b, a, e_ba)
    if e < RESIDUAL_MAX_SHIFT:
        return fine
    return coarse.shifted(-RESIDUAL_MAX_SHIFT)


def to_scale(x: QTensor, target: Scale) -> np.ndarray:
    """Mantissas of ``x`` expressed at ``target`` (nearest rounding, int64)."""
    if x.scale == target:
        return x.m.astype(np.int64)
    return apply_multiplier(x.m, ratio_multiplier(x.scale / target), Rounding.NEAREST)


def residual_add_s8(a: QTensor, b: QTensor, mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """``a + b`` for int8 tensors of the same shape at any two scales -> int8 (see module docstring)."""
    if a.m.shape != b.m.shape:
        raise ValueError(f"residual add needs equal shapes, got {a.m.shape} and {b.m.shape}")
    if a.m.dtype != np.int8 or b.m.dtype != np.int8:
        raise TypeError(f"residual add needs int8 mantissas, got {a.m.dtype} and {b.m.dtype}")
    work = residual_working_scale(a.scale, b.scale)
    acc = (to_scale(a, work) + to_scale(b, work)).astype(np.int32)
    q, s = rescale(acc, work, 8, mode)
    return QTensor(q, s)


def residual_add_backward_s8(err: QTensor) -> tuple[QTensor, QTensor]:
    """Errors of the two operands of an add: both equal the output error (no arithmetic)."""
    return err, err
