"""Fully connected layers: Linear, ReLU, Flatten."""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor, check_terms
from ..numerics.scale_rows import row_exp_limit
from ..ops import (linear_backward_bias_s32, linear_backward_input_s8, linear_backward_weight_s32,
                   linear_forward_s8, relu_backward_s8, relu_forward_s8)
from .config import QuantConfig
from .init import initial_bias, initial_weight_rows
from .module import Context, Module, Parameter, ShapeError, row_args


class Linear(Module):
    """``y = x @ W.T + b`` on (B, in_features) int8 inputs. ``rng``: the generator of the initial
    weights (:data:`tintin.nn.init.PLACEHOLDER`: no initial values)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 config: QuantConfig | None = None, rng: np.random.Generator | None = None,
                 name: str = "linear"):
        if in_features <= 0 or out_features <= 0:
            raise ShapeError(f"{name}: Linear sizes must be positive, got {in_features}x{out_features}")
        check_terms(in_features, f"{name}: Linear fan-in")
        check_terms(out_features, f"{name}: Linear input-error sum")
        self.name = name
        self.in_features, self.out_features, self.has_bias = in_features, out_features, bias
        config = (config or QuantConfig()).for_layer(name)
        rng = rng if rng is not None else np.random.default_rng(0)
        #: largest per-row exponent: the input-error sums have out_features terms
        self.row_exp_limit = row_exp_limit(out_features)
        value, row_exp = initial_weight_rows(rng, (out_features, in_features), in_features, config,
                                             self.row_exp_limit if config.rows_of(name) else None)
        self.weight = Parameter(f"{name}.weight", "weight", value, config.weight_bits)
        self.weight.row_exp, self.weight.row_limit = row_exp, self.row_exp_limit
        self.bias = None
        if bias:
            self.bias = Parameter(f"{name}.bias", "bias", initial_bias(rng, (out_features,), in_features), 32)
        self._cache_x = None

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        if ctx.training:
            self._cache_x = x
        b = self.bias.value if self.bias is not None else None
        return linear_forward_s8(x, self.weight.forward_view(ctx.mode), b, ctx.mode, *row_args(self.weight))

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        x = self._cache_x
        e_in = (linear_backward_input_s8(err, self.weight.forward_view(ctx.mode), ctx.mode, *row_args(self.weight))
                if need_input_error else None)
        if self.weight.trainable:
            self.weight.grad = linear_backward_weight_s32(err, x)
        if self.bias is not None and self.bias.trainable:
            self.bias.grad = linear_backward_bias_s32(err)
        return e_in

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if tuple(input_shape) != (self.in_features,):
            raise ShapeError(f"{self.name}: Linear expects inputs of shape ({self.in_features},), got {tuple(input_shape)}"
                             + (" (add a Flatten first)" if len(input_shape) > 1 else ""))
        return (self.out_features,)

    def macs(self, input_shape: tuple[int, ...]) -> int:
        return self.in_features * self.out_features

    def spec(self) -> dict:
        return {"type": "Linear", "name": self.name, "in_features": self.in_features,
                "out_features": self.out_features, "bias": self.has_bias}


class ReLU(Module):
    def __init__(self, name: str = "relu"):
        self.name = name
        self._cache_y = None

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        y = relu_forward_s8(x)
        if ctx.training:
            self._cache_y = y
        return y

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        return relu_backward_s8(err, self._cache_y) if need_input_error else None

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def spec(self) -> dict:
        return {"type": "ReLU", "name": self.name}


class Flatten(Module):
    """(B, *shape) -> (B, prod(shape)); a view, no arithmetic."""

    def __init__(self, name: str = "flatten"):
        self.name = name
        self._cache_shape = None

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        if ctx.training:
            self._cache_shape = x.m.shape
        return QTensor(x.m.reshape(x.m.shape[0], -1), x.scale)

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        return QTensor(err.m.reshape(self._cache_shape), err.scale) if need_input_error else None

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def spec(self) -> dict:
        return {"type": "Flatten", "name": self.name}
