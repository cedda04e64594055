"""ChannelScale: a trainable per-channel ``gamma * x + beta``, tintin's stand-in for BatchNorm.

BatchNorm's batch statistics (mean, variance, a division by a square root per channel and step)
are not part of the integer training step: see ``docs/cnn.md`` for the decision. What stays is the
learnable per-channel affine part, in integers (:mod:`tintin.ops.scaling`); every layer output is
already renormalised per tensor by the rescale after each accumulation. A trained float BatchNorm
is imported either folded into the preceding convolution
(:func:`tintin.nn.conv_layers.fold_batchnorm`) or as a ChannelScale
(:meth:`ChannelScale.from_batchnorm`).
"""

from __future__ import annotations

import math

import numpy as np

from ..numerics import QTensor, Scale
from ..ops.scaling import (channel_scale_backward_bias_s32, channel_scale_backward_input_s8,
                           channel_scale_backward_weight_s32, channel_scale_forward_s8)
from .config import BIAS_EXPONENT, QuantConfig
from .init import Placeholder, placeholder_tensor, quantize_bias, quantize_weight, weight_dtype
from .module import Context, Module, Parameter, ShapeError


class ChannelScale(Module):
    """``y[:, c] = gamma[c] * x[:, c] + beta[c]`` on (B, C, ...) int8. ``gamma`` is a weight (int8 /
    int16 mantissas) starting at exactly 1 (mantissa ``2**(bits-2)``, scale ``2**-(bits-2)``: one bit
    of headroom to grow before the first rescale); ``beta`` an int32 bias starting at 0."""

    def __init__(self, channels: int, bias: bool = True, *, config: QuantConfig | None = None,
                 name: str = "scale", rng=None):
        """``rng`` draws nothing (the initial values are fixed); :data:`tintin.nn.init.PLACEHOLDER`
        builds the layer without values, like the other layers."""
        if channels <= 0:
            raise ShapeError(f"{name}: ChannelScale needs a positive channel count, got {channels}")
        self.name = name
        self.channels = int(channels)
        self.has_bias = bool(bias)
        config = (config or QuantConfig()).for_layer(name)
        # gamma = 1 exactly: mantissa 2**(bits-2) (64 for int8) at scale 2**-(bits-2)
        one = 1 << (config.weight_bits - 2)
        if isinstance(rng, Placeholder):
            gamma = placeholder_tensor((self.channels,), weight_dtype(config), Scale(0))
            beta = placeholder_tensor((self.channels,), np.int32, Scale(BIAS_EXPONENT))
        else:
            gamma = QTensor(np.full(self.channels, one, dtype=weight_dtype(config)), Scale(-(config.weight_bits - 2)))
            beta = quantize_bias(np.zeros(self.channels))
        self.weight = Parameter(f"{name}.weight", "weight", gamma, config.weight_bits)
        self.bias = Parameter(f"{name}.bias", "bias", beta, 32) if bias else None
        self._cache_x = None

    @classmethod
    def from_batchnorm(cls, gamma, beta, running_mean, running_var, eps: float = 1e-5, *,
                       config: QuantConfig | None = None, name: str = "scale") -> "ChannelScale":
        """An inference-mode float BatchNorm as a ChannelScale (host, at import):
        ``gamma' = gamma / sqrt(var + eps)``, ``beta' = beta - mean * gamma'``."""
        g, b, mean, var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (gamma, beta, running_mean, running_var))
        if not (g.shape == b.shape == mean.shape == var.shape):
            raise ShapeError(f"{name}: BatchNorm parameters have different lengths")
        if np.any(var + eps <= 0):
            raise ValueError(f"{name}: BatchNorm variance + eps must be positive")
        config = config or QuantConfig()
        layer = cls(g.shape[0], True, config=config, name=name)
        a = g / np.sqrt(var + eps)
        layer.weight.assign(quantize_weight(a, config))
        layer.bias.assign(quantize_bias(b - mean * a))
        return layer

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        if ctx.training:
            self._cache_x = x
        b = self.bias.value if self.bias is not None else None
        return channel_scale_forward_s8(x, self.weight.forward_view(ctx.mode), b, ctx.mode)

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        e_in = channel_scale_backward_input_s8(err, self.weight.forward_view(ctx.mode), ctx.mode) if need_input_error else None
        if self.weight.trainable:
            self.weight.grad = channel_scale_backward_weight_s32(err, self._cache_x)
        if self.bias is not None and self.bias.trainable:
            self.bias.grad = channel_scale_backward_bias_s32(err)
        return e_in

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def output_shape(self, input_shape):
        shape = tuple(int(v) for v in input_shape)
        if len(shape) < 1 or shape[0] != self.channels:
            raise ShapeError(f"{self.name}: ChannelScale expects samples of shape ({self.channels}, ...), got {shape}")
        return shape

    def gradient_positions(self, input_shape) -> int:
        return math.prod(tuple(input_shape)[1:])

    def macs(self, input_shape) -> int:
        return math.prod(tuple(input_shape))

    def spec(self) -> dict:
        return {"type": "ChannelScale", "name": self.name, "channels": self.channels, "bias": self.has_bias}
