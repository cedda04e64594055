"""Integer loss errors: softmax cross-entropy and mean squared error.

Both return the output error ``dL/dy`` as an int8 :class:`QTensor` (rescaled with nearest rounding)
and the summed loss value as an exact integer with its scale (a :class:`LossValue`). The error is
the gradient of the *summed* loss over the batch; the optimiser divides by the batch size.

Softmax cross-entropy (all integer; tables in :mod:`tintin.numerics.tables`):

1. ``t = round((q - max q) * s * log2(e) * 2**16)``: logits minus the row maximum (so ``t <= 0``),
   times the logit scale and log2(e), as Q16 in the base-2 domain. The scale is the fixed-point
   multiplier ``(M, n)`` of ``s`` times ``LOG2E_Q14``; ``t`` is clipped to ``>= -31 * 2**16``.
2. ``e = EXP2(frac(t)) >> -floor(t)`` in Q15 (``2**t``; 32768 for the maximum).
3. ``p = (e * 2**15 + sum/2) // sum`` with ``sum = sum(e)``: probabilities in Q15.
4. error ``= p - onehot * 2**15`` at scale ``2**-15``, rescaled to int8 (nearest; or stochastic
   with ``rounding`` and a stream ``key``: ``QuantConfig.loss_error_rounding``).
5. loss (nats, Q16) per sample ``= round((log2_q16(sum) - 15 * 2**16 - t[label]) * LN2_Q16 / 2**16)``.

Mean squared error ``L = 1/2 * sum (y - target)**2`` with the target aligned to the prediction's
scale: error ``= y - target`` (int32), rescaled to int8; loss = the integer sum of squared
differences at scale ``s**2 / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numerics import (QTensor, Rounding, Scale, ScaleMode, apply_multiplier, ratio_multiplier,
                        rescale, shift_round)
from ..numerics.tables import LN2_Q16, LOG2_Q16, LOG2E_Q14, exp2_frac_q15

T_MIN_Q16 = -31 << 16


@dataclass(frozen=True, slots=True)
class LossValue:
    """An exact loss total: ``real = total * scale``."""

    total: int
    scale: Scale

    def to_float(self) -> float:
        """Host-side reporting only."""
        return float(self.total) * self.scale.to_float()


_POWERS_OF_TWO = np.array([1 << i for i in range(63)], dtype=np.int64)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Element-wise bit length of a non-negative int64 array (integer-only: a search among the
    powers of two)."""
    return np.searchsorted(_POWERS_OF_TWO, x, side="right").astype(np.int64)


def log2_q16_array(x: np.ndarray) -> np.ndarray:
    """Vectorised :func:`tintin.numerics.tables.log2_q16` for positive int64 values below 2**47."""
    e = bit_length(x) - 1
    frac16 = np.where(e <= 16, (x << 16) >> e, x >> np.maximum(e - 16, 0)) - (1 << 16)
    idx = frac16 >> 8
    low = frac16 & 0xFF
    base = LOG2_Q16[idx]
    return (e << 16) + base + (((LOG2_Q16[idx + 1] - base) * low + 128) >> 8)


def log2_domain_q16(logits: QTensor) -> np.ndarray:
    """Step 1: ``(q - max q) * s * log2(e)`` in Q16, clipped to ``>= -31 * 2**16`` (int64)."""
    q = logits.m.astype(np.int64)
    d = q - q.max(axis=1, keepdims=True)
    m, n = ratio_multiplier(logits.scale)
    mult = m * LOG2E_Q14  # value s*log2(e) = mult * 2**-(n + 14)
    shift = n + 14 - 16
    prod = d * mult
    if shift >= 0:
        t = shift_round(prod, shift, Rounding.NEAREST) if shift <= 62 else np.zeros_like(prod)
    else:
        t = np.maximum(prod, T_MIN_Q16 >> -shift) << -shift
    return np.maximum(t, T_MIN_Q16)


def softmax_q15(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-3: Q15 probabilities and the per-row sums of ``2**t`` (both int64)."""
    e = exp2_frac_q15(t & 0xFFFF) >> -(t >> 16)
    total = e.sum(axis=1, keepdims=True)
    p = ((e << 15) + (total >> 1)) // total
    return p, total[:, 0]


def softmax_cross_entropy_error(logits: QTensor, labels: np.ndarray, mode: ScaleMode = ScaleMode.POW2,
                                rounding: Rounding = Rounding.NEAREST,
                                key: int | None = None) -> tuple[QTensor, LossValue]:
    """Integer softmax cross-entropy: output error (int8) and summed loss (nats, scale 2**-16).
    ``rounding``/``key``: the rounding of the error's rescale to int8 (stochastic needs a key)."""
    t = log2_domain_q16(logits)
    p, total = softmax_q15(t)
    rows = np.arange(len(labels))
    err = p
    err[rows, labels] -= 1 << 15
    q, s = rescale(err, Scale(-15), 8, mode, rounding, key)
    t_label = t[rows, labels]
    per_sample = ((log2_q16_array(total) - (15 << 16) - t_label) * LN2_Q16 + (1 << 15)) >> 16
    return QTensor(q, s), LossValue(int(per_sample.sum()), Scale(-16))


def softmax_probabilities_q15(logits: QTensor) -> np.ndarray:
    """Q15 class probabilities (for reporting and calibration)."""
    return softmax_q15(log2_domain_q16(logits))[0]


def mse_error(pred: QTensor, target: QTensor, mode: ScaleMode = ScaleMode.POW2) -> tuple[QTensor, LossValue]:
    """Integer MSE error ``pred - target`` (int8) and ``1/2 * sum (pred - target)**2``."""
    if pred.shape != target.shape:
        raise ValueError(f"MSE target shape {target.shape} does not match prediction {pred.shape}")
    aligned = apply_multiplier(target.m, ratio_multiplier(target.scale / pred.scale), Rounding.NEAREST,
                               limit=1 << 30)
    diff = pred.m.astype(np.int64) - aligned
    # exact total (Python integers: squares of differences near 2**30 would overflow an int64 sum)
    loss = LossValue(sum(int(v) * int(v) for v in diff.ravel().tolist()), Scale(2 * pred.scale.S - 1, 2 * pred.scale.U, 2 * pred.scale.D))
    q, s = rescale(diff, pred.scale, 8, mode)
    return QTensor(q, s), loss


def predict_argmax(logits: np.ndarray) -> np.ndarray:
    """Class prediction from int8 logits (batch, classes): the first index of the row maximum (as
    the C runtime's ``tt_argmax_rows_s8``)."""
    return np.argmax(logits, axis=1)
