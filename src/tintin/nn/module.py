"""Parameters, the layer interface and the step context.

Every layer implements the same small interface (forward and backward side by side):

* ``forward(x, ctx) -> QTensor``: int8 in, int8 out; when ``ctx.training`` the layer keeps what its
  backward pass needs.
* ``backward(err, ctx, need_input_error) -> QTensor | None``: takes the int8 error of its output,
  sets ``param.grad`` (int32 at the accumulator scale) for every trainable parameter and returns the
  int8 error of its input when ``need_input_error`` (else ``None``). The input error is computed
  with the weights as they were in the forward pass, before any update.
* ``parameters()``, ``output_shape(input_shape)`` (per-sample shapes, raises ``ShapeError``),
  ``spec()`` (JSON-able description used by model files and float twins).
"""

from __future__ import annotations

from tintin.errors import TintinError

from dataclasses import dataclass, field

import numpy as np

from ..numerics import QTensor, RoundingStream, ScaleMode, rescale
from ..numerics.bitplane import PLANE_BITS, field_range


class ShapeError(TintinError, ValueError):
    """A layer cannot accept the shape it is given (raised at model construction)."""


#: the widths an error-feedback remainder may have (``OptimConfig.feedback_bits``): the field widths
#: of the packed plane compiled programs keep it in; ``remainder_range(bits)`` is its value range
FEEDBACK_BITS_CHOICES = PLANE_BITS
remainder_range = field_range


class Parameter:
    """A trainable tensor: master mantissas (int8 / int16 weights, int32 biases) and its scale."""

    __slots__ = ("name", "kind", "value", "bits", "trainable", "trainable_rows", "grad", "momentum",
                 "remainder", "feedback_bits", "row_exp", "row_limit", "_view", "_view_mode")

    def __init__(self, name: str, kind: str, value: QTensor, bits: int, trainable: bool = True):
        self.name = name
        self.kind = kind  # "weight" or "bias"
        self.value = value
        self.bits = bits
        self.trainable = trainable
        #: sparse update: indices along axis 0 (output channels / rows) that are trained; None = all
        self.trainable_rows: np.ndarray | None = None
        self.grad: QTensor | None = None
        self.momentum: np.ndarray | None = None
        #: error feedback: int8 remainder in 2**-feedback_bits weight steps (tintin.optim.sgd), None when unused
        self.remainder: np.ndarray | None = None
        self.feedback_bits = 8
        #: per-row scales: int8 exponent per output row, real w[r] = m[r] * scale * 2**-row_exp[r]
        #: (tintin.numerics.scale_rows), None when the tensor has one scale
        self.row_exp: np.ndarray | None = None
        #: the largest row exponent the layer's accumulator bounds allow (row_exp_limit)
        self.row_limit = 0
        self._view: QTensor | None = None
        self._view_mode = None

    def forward_view(self, mode: ScaleMode) -> QTensor:
        """The int8 tensor the forward and backward kernels use.

        int8 weights and int32 biases are used as they are; wider master weights (int16) are
        rescaled to int8 (nearest rounding, the model's scale mode), cached until the next update."""
        if self.kind != "weight" or self.bits <= 8:
            return self.value
        if self._view is None or self._view_mode is not mode:
            q, s = rescale(self.value.m, self.value.scale, 8, mode)
            self._view, self._view_mode = QTensor(q, s), mode
        return self._view

    def assign(self, value: QTensor) -> None:
        self.value = value
        self._view = None

    def __repr__(self) -> str:
        return f"Parameter({self.name}, {self.value!r}, trainable={self.trainable})"


def row_args(p: Parameter) -> tuple:
    """``(p.row_exp,)`` for a weight with per-row scales, else ``()``: the kernels of a tensor with one
    scale are called exactly as before (and can be swapped for kernels of the same signature)."""
    return () if p.row_exp is None else (p.row_exp,)


@dataclass
class Context:
    """What a training or evaluation pass needs besides the tensors."""

    mode: ScaleMode = ScaleMode.COMPOUND
    training: bool = False
    stream: RoundingStream = field(default_factory=RoundingStream)


class Module:
    """Base class of all layers."""

    name: str = ""

    def forward(self, x: QTensor, ctx: Context) -> QTensor:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:  # pragma: no cover
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return []

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:  # pragma: no cover
        raise NotImplementedError

    def spec(self) -> dict:  # pragma: no cover
        raise NotImplementedError

    def clear_cache(self) -> None:
        """Drop what was kept for the backward pass."""
        for key in [k for k in vars(self) if k.startswith("_cache")]:
            setattr(self, key, None)
