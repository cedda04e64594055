"""Fully connected layer: ``y = x @ W.T + b``, forward and backward side by side.

Shapes: ``x`` (B, K) int8, ``W`` (N, K) int8, ``b`` (N,) int32, ``y`` (B, N) int8.
Accumulators: int32, ``|acc| <= K * 127 * 127 <= 2**30`` (``K <= ACC_TERMS_LIMIT``, checked when the
layer is built); the bias is aligned to the accumulator scale and clipped to ``+-2**30`` before the
add, so ``acc + bias`` stays inside int32.

Per-row weight scales (``row_exp``, :mod:`tintin.numerics.scale_rows`): the forward accumulator of
output ``r`` is shifted right by ``row_exp[r]`` (nearest) before the bias (``|acc|`` only shrinks);
the input error shifts output ``r``'s error left by ``max(row_exp) - row_exp[r]`` before the sum,
``|acc| <= N * 127 * 127 * 2**max(row_exp) <= 2**30`` (``row_exp <= row_exp_limit(N)``, checked
when the layer is built); the weight gradient does not change.
"""

from __future__ import annotations

import numpy as np

from ..numerics import (BIAS_ALIGN_LIMIT, QTensor, Rounding, Scale, ScaleMode, apply_multiplier,
                        int_matmul, ratio_multiplier, rescale)
from ..numerics.scale_rows import align_rows, expand_rows


def align_bias(bias: QTensor, acc_scale: Scale) -> np.ndarray:
    """Bias mantissas expressed at ``acc_scale`` (nearest rounding, clipped to +-2**30), int64."""
    return apply_multiplier(bias.m, ratio_multiplier(bias.scale / acc_scale), Rounding.NEAREST,
                            limit=BIAS_ALIGN_LIMIT)


def linear_forward_s8(x: QTensor, weight: QTensor, bias: QTensor | None,
                      mode: ScaleMode = ScaleMode.POW2, row_exp: np.ndarray | None = None) -> QTensor:
    """int8 ``x @ W.T`` (+ aligned bias) accumulated in int32, rescaled to int8 (nearest).
    ``row_exp``: per-row exponents of ``W`` (``None``: one scale)."""
    acc = int_matmul(x.m, weight.m.T)
    if row_exp is not None:
        acc = align_rows(acc, row_exp, axis=1)
    acc_scale = x.scale * weight.scale
    if bias is not None:
        acc = acc + align_bias(bias, acc_scale)
    q, s = rescale(acc, acc_scale, 8, mode)
    return QTensor(q, s)


def linear_backward_input_s8(err: QTensor, weight: QTensor, mode: ScaleMode = ScaleMode.POW2,
                             row_exp: np.ndarray | None = None) -> QTensor:
    """Input error ``err @ W`` (B, K): int32 accumulation over N outputs, rescaled to int8."""
    e, top = (err.m, 0) if row_exp is None else expand_rows(err.m, row_exp, axis=1)
    acc = int_matmul(e, weight.m)
    q, s = rescale(acc, (err.scale * weight.scale).shifted(-top), 8, mode)
    return QTensor(q, s)


def linear_backward_weight_s32(err: QTensor, x: QTensor) -> QTensor:
    """Weight gradient ``err.T @ x`` (N, K), kept as int32 at scale ``s_err * s_x`` until the update.

    ``|g| <= B * 127 * 127`` (batch size B checked against the accumulator bound by the trainer)."""
    return QTensor(int_matmul(err.m.T, x.m), err.scale * x.scale)


def linear_backward_bias_s32(err: QTensor) -> QTensor:
    """Bias gradient: the error summed over the batch, int32 at the error's scale."""
    return QTensor(err.m.sum(axis=0, dtype=np.int32), err.scale)
