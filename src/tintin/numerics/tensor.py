"""The quantised tensor: integer mantissas plus an integer-tracked scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scale import Scale


@dataclass(slots=True)
class QTensor:
    """``real = m * scale``. ``m`` is an integer numpy array (int8 for activations, errors and
    weights; int16 for wide weights; int32 for accumulators, gradients and biases)."""

    m: np.ndarray
    scale: Scale

    @property
    def shape(self) -> tuple[int, ...]:
        return self.m.shape

    def dequantize(self) -> np.ndarray:
        """Real values as float64. Host-side reporting and float baselines only."""
        return self.m.astype(np.float64) * self.scale.to_float()

    def copy(self) -> "QTensor":
        return QTensor(self.m.copy(), self.scale)

    def __repr__(self) -> str:
        return f"QTensor(shape={self.m.shape}, dtype={self.m.dtype}, scale={self.scale})"
