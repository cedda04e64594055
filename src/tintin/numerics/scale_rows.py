"""Per-row (per-output-channel) weight scales.

With ``QuantConfig(row_scales=True)`` an int8 weight tensor ``W`` of shape ``(N, ...)`` keeps, next
to its tensor scale ``s`` (on the scale grid, see :func:`tintin.numerics.rescale.choose_grid_rescale`),
one int8 *row exponent* ``e[r]`` per output row (channel): the real value of an element is

    w[r, ...] = m[r, ...] * s * 2**-e[r],     0 <= e[r] <= limit

so a row with small weights keeps its full 7 bits under a finer power-of-two scale instead of the
few the largest row leaves it (the per-channel scales of CMSIS-NN and TFLite int8, restricted to
powers of two so that every conversion is a shift). The smallest row exponent is kept at 0: the
tensor scale is the coarsest row's scale.

The integer rules (the C runtime follows them bit for bit):

* **forward** (:func:`align_rows`): the int32 accumulator of output channel ``r`` is at
  ``s_x * s * 2**-e[r]``; it is brought to ``s_x * s`` by a nearest (half away from zero) right
  shift by ``e[r]``, then the bias is added and the tensor rescaled as without row scales. The
  shift only shrinks the accumulator: its bound stays ``|acc| <= K * 127 * 127 <= 2**30``.
* **input error** (:func:`expand_rows`): the int8 error of output channel ``r`` is shifted left by
  ``E - e[r]`` (``E = max e``) before the int32 sum over the ``T`` outputs that reach one input, so
  the sum is at ``s_e * s * 2**-E``. Bound: ``|acc| <= T * 127 * 127 * 2**E``; a layer's row
  exponents are capped at :func:`row_exp_limit` ``(T)``, the largest ``E`` with
  ``T * 2**E <= ACC_TERMS_LIMIT``, so ``|acc| <= 2**30`` as for every other accumulator.
* **weight gradient**: unchanged (``err.T @ x``, int32 at ``s_e * s_x``).
* **update** (:func:`apply_multiplier_rows`): with ``(M, n)`` the aligned multiplier of
  ``lr * s_g / s / B``, row ``r`` uses ``delta = round(g * M / 2**(n - e[r]))`` (stochastic: the
  draw of element ``i`` is the top ``n - e[r]`` bits of the same ``weyl32`` value as without row
  scales; a left shift when ``n - e[r] <= 0``).
* **renormalisation** (:func:`renormalise_rows`) after every update, in two stages. Stage 1, each
  row alone: a row whose maximum exceeds 127 is shifted right (nearest) by the fewest bits ``j``
  that fit; a nonzero row whose maximum is at most 63 is shifted left (exactly) until its maximum
  is in [64, 127]; its exponent becomes ``e[r] - j`` (it may leave ``[0, limit]`` for a moment).
  Stage 2: the tensor scale moves by the smallest exponent ``lo`` (``S`` becomes ``S - lo``,
  ``U``/``D`` unchanged) and every exponent by ``-lo``, so the smallest is 0; a row whose exponent
  is then above the limit is shifted right (nearest) by the excess and set to the limit (exact
  for a row that was refined in stage 1; a second rounding only for a row whose exponents spread
  by more than the limit). Stage 1 needs only the row at hand, so a device renormalises while it
  streams the gradient rows (no second pass over the gradient); stage 2 touches int8 weights
  only. A second renormalisation changes nothing.

A tensor whose row exponents are all 0 computes exactly what the per-tensor kernels compute
(forward, input error and the update's rounding); only the renormalisation differs.
"""

from __future__ import annotations

import numpy as np

from ..errors import TintinError
from .bounds import ACC_TERMS_LIMIT
from .rounding import Rounding, draw_bits, shift_round
from .scale import Scale

class RowScaleError(TintinError, ValueError):
    """Per-row weight scales are used where they are not supported (one line)."""


#: largest row exponent of any layer (int8 storage; a layer's own cap may be lower)
ROW_EXP_MAX = 15
#: a row is refined (shifted left) when its largest mantissa is at most this
ROW_REFINE_MAX = 63
_LIMIT8 = 127


def row_exp_limit(input_error_terms: int) -> int:
    """The largest row exponent ``E`` of a layer whose input-error sums have ``input_error_terms``
    int8 products: ``terms * 2**E <= ACC_TERMS_LIMIT`` (so ``|acc| <= 2**30``), at most
    :data:`ROW_EXP_MAX`."""
    e = 0
    while e < ROW_EXP_MAX and int(input_error_terms) << (e + 1) <= ACC_TERMS_LIMIT:
        e += 1
    return e


def row_amax(m: np.ndarray) -> np.ndarray:
    """``max |m[r, ...]|`` per row, int64 (N,)."""
    a = np.abs(m.reshape(m.shape[0], -1).astype(np.int64))
    return a.max(axis=1) if a.shape[1] else np.zeros(m.shape[0], dtype=np.int64)


def _per_axis(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _shift_right_nearest(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``sign(x) * ((|x| + 2**(s-1)) >> s)`` with a per-element shift ``s >= 0`` (broadcast), int64."""
    x = x.astype(np.int64, copy=False)
    s = shifts.astype(np.int64)
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0)), 0)
    return (x + half - ((x < 0) & (s > 0))) >> s


def align_rows(acc: np.ndarray, row_exp: np.ndarray, axis: int = 1) -> np.ndarray:
    """Forward: channel ``c`` (along ``axis``) of an int32 accumulator shifted right by
    ``row_exp[c]`` (nearest), from ``s * 2**-e[c]`` to the common scale ``s``. int32."""
    if not row_exp.any():
        return acc
    e = _per_axis(row_exp, acc.ndim, axis)
    return _shift_right_nearest(acc, e).astype(np.int32)


def expand_rows(err: np.ndarray, row_exp: np.ndarray, axis: int = 1) -> tuple[np.ndarray, int]:
    """Input error: ``(err << (E - e[c]), E)`` along ``axis``, int32, ``E = max e``. The result's
    scale is the error's times ``s * 2**-E``."""
    top = int(row_exp.max()) if row_exp.size else 0
    if top == 0:
        return err, 0
    e = _per_axis(top - row_exp.astype(np.int32), err.ndim, axis)
    return err.astype(np.int32) << e, top


def shift_round_rows(x: np.ndarray, shifts: np.ndarray, mode: Rounding = Rounding.NEAREST,
                     key: int | None = None) -> np.ndarray:
    """``x[r, ...] / 2**shifts[r]`` rounded by ``mode`` (a left shift where ``shifts[r] <= 0``), int64.

    The stochastic draw of element ``i`` (flat index) is the top ``shifts[r]`` bits of the same
    ``weyl32`` value :func:`tintin.numerics.shift_round` uses, so equal shifts give equal bits."""
    x = x.astype(np.int64, copy=False)
    s = _per_axis(np.asarray(shifts, dtype=np.int64), x.ndim, 0)
    if np.any(s > 62):
        raise ValueError("row shifts must be at most 62")
    left = np.maximum(-s, 0)
    right = np.maximum(s, 0)
    mode = Rounding(mode)
    if mode is Rounding.NEAREST:
        out = _shift_right_nearest(x, right)
    elif mode is Rounding.STOCHASTIC:
        if key is None:
            raise ValueError("stochastic rounding needs a stream key (RoundingStream.key)")
        bits = draw_bits(key, x.size).reshape(x.shape).astype(np.int64)
        r = np.where(right <= 32, bits >> np.minimum(32 - right, 32), bits << np.maximum(right - 32, 0))
        mask = (np.left_shift(1, right)) - 1
        r ^= (x >> 63) & mask
        out = (r + x) >> right
    else:  # pseudo-stochastic: no draw, each distinct shift on its own rows
        out = np.empty_like(x)
        flat = np.asarray(shifts, dtype=np.int64)
        for v in np.unique(flat):
            rows = flat == v
            out[rows] = shift_round(x[rows], int(max(v, 0)), mode) if v > 0 else x[rows]
    return np.where(left > 0, x << left, out) if (left > 0).any() else out


def apply_multiplier_rows(x: np.ndarray, multiplier: tuple[int, int], row_exp: np.ndarray,
                          rounding: Rounding = Rounding.NEAREST, key: int | None = None) -> np.ndarray:
    """``round(x[r] * M / 2**(n - e[r]))`` per row (product in int64), int64."""
    m, n = multiplier
    prod = np.multiply(x, m, dtype=np.int64)
    shifts = n - row_exp.astype(np.int64)
    if np.any(shifts > 62):  # updates below 2**-62 of a step: zero, as apply_multiplier does
        prod = prod.copy()
        prod[shifts > 62] = 0
        shifts = np.minimum(shifts, 62)
    return shift_round_rows(prod, shifts, rounding, key)


def renormalise_rows(new: np.ndarray, scale: Scale, row_exp: np.ndarray, limit: int,
                     bits: int = 8) -> tuple[np.ndarray, Scale, np.ndarray]:
    """After an update: ``(int8 mantissas, tensor scale, row exponents)`` (see the module docstring).

    ``new`` is the updated int64 ``(N, ...)`` mantissas at ``scale * 2**-row_exp[r]``."""
    out, target = renormalise_rows_stage1(new, row_exp, bits)
    return renormalise_rows_stage2(out, scale, target, limit)


def renormalise_rows_stage1(new: np.ndarray, row_exp: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1 on some rows: ``(mantissas clipped to the range (int64), exponents e - j (int64))``;
    each row needs only itself, so a device applies it to a tile of rows at a time."""
    top = (1 << (bits - 1)) - 1
    amax = row_amax(new)
    e = row_exp.astype(np.int64)
    # overflowing rows: fewest right shifts j with round(amax / 2**j) <= top
    j = np.zeros_like(e)
    over = amax > top
    if over.any():
        bl = np.array([int(a).bit_length() for a in amax[over]], dtype=np.int64)
        jj = bl - top.bit_length()
        jj += _shift_right_nearest(amax[over], jj) > top
        j[over] = jj
    # small nonzero rows: exact left shifts (limited in stage 2, after the tensor scale moved)
    refine = (amax > 0) & (amax <= (top >> 1))
    if refine.any():
        bl = np.array([int(a).bit_length() for a in amax[refine]], dtype=np.int64)
        j[refine] = bl - top.bit_length()
    wide = new.astype(np.int64, copy=False)
    jb = _per_axis(j, wide.ndim, 0)
    out = np.where(jb <= 0, wide << np.maximum(-jb, 0), _shift_right_nearest(wide, np.maximum(jb, 0)))
    np.clip(out, -top, top, out=out)
    return out, e - j


def renormalise_rows_stage2(m: np.ndarray, scale: Scale, target: np.ndarray, limit: int,
                            bits: int = 8) -> tuple[np.ndarray, Scale, np.ndarray]:
    """Stage 2 on the whole tensor: the tensor scale moves by the smallest stage-1 exponent, rows
    beyond ``limit`` shift right (nearest). Returns ``(mantissas, scale, row exponents (int8))``."""
    target = np.asarray(target, dtype=np.int64)
    lo = int(target.min()) if target.size else 0
    scale = Scale(scale.S - lo, scale.U, scale.D)
    target = target - lo
    out = np.asarray(m, dtype=np.int64)
    extra = np.maximum(target - limit, 0)
    if extra.any():
        out = _shift_right_nearest(out, _per_axis(extra, out.ndim, 0))
        target = target - extra
    return out.astype(np.int8 if bits <= 8 else np.int16), scale, target.astype(np.int8)


def dequantize_rows(m: np.ndarray, scale: Scale, row_exp: np.ndarray | None) -> np.ndarray:
    """Real values (float64) of a row-scaled tensor. Host reporting and float twins only."""
    real = m.astype(np.float64) * scale.to_float()
    if row_exp is None:
        return real
    return real * _per_axis(np.ldexp(1.0, -row_exp.astype(np.int64)), m.ndim, 0)


def quantize_rows(w: np.ndarray, scale: Scale, limit: int,
                  bits: int = 8) -> tuple[np.ndarray, Scale, np.ndarray]:
    """Float weights -> ``(mantissas, tensor scale, row exponents)`` (host, once): under the
    tensor scale ``scale`` (one that fits the largest weight, e.g. the one
    :func:`tintin.nn.init.quantize_weight` chose) each row takes the largest exponent ``e <= limit``
    at which its largest weight still rounds to at most 127; then the tensor scale is made finer by
    the smallest exponent, so that exponent is 0."""
    top = (1 << (bits - 1)) - 1
    n = w.shape[0]
    flat = np.abs(w.reshape(n, -1))
    amax = flat.max(axis=1) if flat.shape[1] else np.zeros(n)
    base = scale.to_float()
    e = np.zeros(n, dtype=np.int64)
    for r in range(n):
        while e[r] < limit and amax[r] > 0 and np.floor(amax[r] / base * 2.0 ** (e[r] + 1) + 0.5) <= top:
            e[r] += 1
    real_step = _per_axis(np.ldexp(base, -e), w.ndim, 0)
    q = w / real_step
    m = np.clip(np.sign(q) * np.floor(np.abs(q) + 0.5), -top, top)
    lo = int(e.min()) if n else 0
    return (m.astype(np.int8 if bits <= 8 else np.int16), Scale(scale.S - lo, scale.U, scale.D),
            (e - lo).astype(np.int8))
