"""Per-channel scale and shift ``y = gamma[c] * x + beta[c]``: the trainable, statistics-free
stand-in for batch normalisation (see ``docs/cnn.md``), forward and backward side by side.

Shapes: ``x`` (B, C, ...) int8 (any number of trailing positions, also none), ``gamma`` (C,) int8,
``beta`` (C,) int32 at its own scale. Integer definition:

``channel_scale_forward_s8``
    ``acc = x * gamma[c]`` (one int8 x int8 product, ``|acc| <= 127 * 127``) at scale
    ``s_x * s_gamma``, plus ``beta`` aligned to that scale (nearest, clipped to ``+-2**30``), int32;
    rescaled to int8 (nearest).
``channel_scale_backward_input_s8``
    ``err * gamma[c]`` (int32 at ``s_err * s_gamma``) rescaled to int8 (nearest).
``channel_scale_backward_weight_s32``
    ``sum over batch and positions of err * x`` per channel: int32 at ``s_err * s_x``
    (``B * positions`` terms, checked by the trainer).
``channel_scale_backward_bias_s32``
    ``sum over batch and positions of err`` per channel, int32 at ``s_err``.

It is a depthwise 1x1 convolution with bias; the separate kernel avoids the convolution's
bookkeeping and works for 1-D, 2-D and flat feature maps alike.
"""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor, ScaleMode, rescale
from .linear import align_bias


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> (1, C, 1, ...) for broadcasting against a (B, C, ...) array of ``ndim`` dims."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _reduce_axes(ndim: int) -> tuple[int, ...]:
    return (0,) + tuple(range(2, ndim))


def channel_scale_forward_s8(x: QTensor, gamma: QTensor, beta: QTensor | None,
                             mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """``gamma[c] * x + beta[c]`` in int32, rescaled to int8 (nearest)."""
    nd = x.m.ndim
    acc = x.m.astype(np.int32) * _per_channel(gamma.m.astype(np.int32), nd)
    acc_scale = x.scale * gamma.scale
    if beta is not None:
        acc += _per_channel(align_bias(beta, acc_scale).astype(np.int32), nd)
    q, s = rescale(acc, acc_scale, 8, mode)
    return QTensor(q, s)


def channel_scale_backward_input_s8(err: QTensor, gamma: QTensor, mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """Input error ``err * gamma[c]`` rescaled to int8 (nearest)."""
    acc = err.m.astype(np.int32) * _per_channel(gamma.m.astype(np.int32), err.m.ndim)
    q, s = rescale(acc, err.scale * gamma.scale, 8, mode)
    return QTensor(q, s)


def channel_scale_backward_weight_s32(err: QTensor, x: QTensor) -> QTensor:
    """Gradient of ``gamma`` (C,): int32 at scale ``s_err * s_x``."""
    prod = err.m.astype(np.int32) * x.m
    return QTensor(prod.sum(axis=_reduce_axes(err.m.ndim), dtype=np.int32), err.scale * x.scale)


def channel_scale_backward_bias_s32(err: QTensor) -> QTensor:
    """Gradient of ``beta`` (C,): the error summed over batch and positions, int32 at ``s_err``."""
    return QTensor(err.m.sum(axis=_reduce_axes(err.m.ndim), dtype=np.int32), err.scale)
