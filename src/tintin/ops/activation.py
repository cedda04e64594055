"""ReLU: ``max(0, q)``; the scale is unchanged and the backward pass masks the error."""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor


def relu_forward_s8(x: QTensor) -> QTensor:
    return QTensor(np.maximum(x.m, 0), x.scale)


def relu_backward_s8(err: QTensor, y: QTensor) -> QTensor:
    """Error through ReLU: kept where the forward output ``y`` was positive, zero elsewhere."""
    return QTensor(np.where(y.m > 0, err.m, 0).astype(err.m.dtype, copy=False), err.scale)
