"""The calibration rule: float tensors -> tintin mantissas and scales (host, once, at import).

What is chosen, and how:

* **Weights** (per tensor, symmetric): among the scales the model's scale mode can hold on the
  weight *scale grid* (``2**S``; compound: ``2**S * u**a * d**b`` with ``0 <= a, b <= 2``) between
  the no-clipping scale ``s0`` (the smallest grid scale with ``max|w| / s0 <= L``, what
  :func:`tintin.nn.init.quantize_weight` uses) and ``s0 / 4``, the one with the smallest mean squared
  error ``mean((w - s * clip(round(w / s), -L, L))**2)``; ties go to the larger scale. A smaller
  scale clips the few largest weights to ``+-L`` and buys resolution for all others.
  ``L = 127`` (int8) or ``32767`` (int16 weights). Rounding: half away from zero.
* **Biases**: int32 at tintin's fixed bias scale ``2**BIAS_EXPONENT`` (``2**-20``), half away from
  zero. A bias beyond ``+-1024`` does not fit and is an :class:`InteropError`.
* **Inputs**: a data set that is already int8 keeps its exponent; float inputs get the exponent of
  :func:`tintin.data.quantize_inputs` (the smallest ``e`` with ``max|x| <= 128 * 2**e`` over the
  calibration batch), the rule ``tintin`` applies to the same data later.
* **Activations** have no static scale in tintin: every rescale after an accumulation picks the
  activation scale at run time from ``max|acc|`` (``docs/numerics.md``), so the int8 range is
  always used. The calibration batch measures what this costs (activation SQNR per layer).

SQNR (dB) of an approximation ``q`` of ``r``: ``10 log10(sum r**2 / sum (r - q)**2)``; capped at
:data:`SQNR_CAP_DB` when the two are equal.
"""

from __future__ import annotations

import math

import numpy as np

from ..nn import BIAS_EXPONENT, QuantConfig
from ..nn.init import smallest_scale_at_least
from ..numerics import QTensor, Scale, ScaleMode, limit_for_bits
from .errors import InteropError

#: SQNR reported when the approximation is exact
SQNR_CAP_DB = 300.0
#: the finest candidate weight scale is the no-clipping one divided by this
CLIP_RANGE = 4.0
#: largest bias magnitude at 2**BIAS_EXPONENT in int32 with tintin's +-2**30 bias bound
BIAS_LIMIT = 2.0**30 * 2.0**BIAS_EXPONENT


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    q = np.asarray(approx, dtype=np.float64).reshape(-1)
    if r.shape != q.shape:
        raise InteropError(f"cannot compare tensors of {r.size} and {q.size} elements")
    noise = float(np.sum((r - q) ** 2))
    signal = float(np.sum(r ** 2))
    if noise == 0.0:
        return SQNR_CAP_DB
    if signal == 0.0:
        return -SQNR_CAP_DB
    return min(SQNR_CAP_DB, 10.0 * math.log10(signal / noise))


def grid_candidates(top: Scale, mode: ScaleMode, low: float) -> list[Scale]:
    """Grid scales in ``[low, top]`` (``top`` included), largest first."""
    steps = range(3) if mode is ScaleMode.COMPOUND else range(1)
    hi = top.to_float()
    out = {top}
    for u in steps:
        for d in steps:
            base = Scale(0, u, d).to_float()
            for s in range(math.floor(math.log2(low / base)) - 1, math.ceil(math.log2(hi / base)) + 2):
                cand = Scale(s, u, d)
                if low * (1 - 1e-12) <= cand.to_float() <= hi * (1 + 1e-12):
                    out.add(cand)
    return sorted(out, key=lambda c: -c.to_float())


def quantize_with(w: np.ndarray, scale: Scale, bits: int) -> np.ndarray:
    limit = limit_for_bits(bits)
    return np.clip(round_half_away(w / scale.to_float()), -limit, limit)


def calibrate_weight(w: np.ndarray, config: QuantConfig, name: str = "weight") -> QTensor:
    """Float weights -> mantissas and the minimum-MSE grid scale (see the module docstring)."""
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise InteropError(f"{name}: weights contain NaN or infinite values")
    bits = config.weight_bits
    dtype = np.int8 if bits == 8 else np.int16
    limit = limit_for_bits(bits)
    amax = float(np.abs(w).max()) if w.size else 0.0
    if amax == 0.0:
        return QTensor(np.zeros(w.shape, dtype=dtype), Scale(-7))
    top = smallest_scale_at_least(amax / limit, config.scale_mode)
    best, best_err = None, math.inf
    for cand in grid_candidates(top, config.scale_mode, top.to_float() / CLIP_RANGE):
        err = float(np.mean((w - quantize_with(w, cand, bits) * cand.to_float()) ** 2))
        if err < best_err * (1 - 1e-9):
            best, best_err = cand, err
    return QTensor(quantize_with(w, best, bits).astype(dtype), best)


def calibrate_bias(b: np.ndarray, name: str = "bias") -> QTensor:
    """Float bias -> int32 mantissas at ``2**BIAS_EXPONENT``."""
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(b)):
        raise InteropError(f"{name}: bias contains NaN or infinite values")
    if b.size and float(np.abs(b).max()) > BIAS_LIMIT:
        raise InteropError(f"{name}: bias {float(np.abs(b).max()):.4g} is beyond the int32 bias range "
                           f"+-{BIAS_LIMIT:g} at scale 2^{BIAS_EXPONENT}")
    return QTensor(round_half_away(b * 2.0**-BIAS_EXPONENT).astype(np.int32), Scale(BIAS_EXPONENT))
