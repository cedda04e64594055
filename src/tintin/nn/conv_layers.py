"""Convolution layers: Conv2d on (C, H, W) samples and Conv1d on (C, L) samples.

Parameters: weight (Cout, Cin/groups, kH, kW) (1-D: (Cout, Cin/groups, k)) with int8 (or int16
master) mantissas, optional int32 bias at ``2**BIAS_EXPONENT``; PyTorch's default initialisation
(uniform in +-1/sqrt(fan_in), ``fan_in = Cin/groups * kernel area``) or, with ``init="he"``,
uniform in +-sqrt(6/fan_in), quantised once on the host.
Arithmetic: :mod:`tintin.ops.conv`. Bounds checked at construction: the forward fan-in and the
input-error sum (``Cout/groups * ceil(kH/sH) * ceil(kW/sW)`` terms); the weight gradient's
``batch * Ho * Wo`` terms are checked by the trainer through :meth:`gradient_positions`.

:func:`fold_batchnorm` folds a float BatchNorm that follows a convolution into its weights and bias
(host side, for importing trained models; see ``docs/cnn.md``).
"""

from __future__ import annotations

import math

import numpy as np

from ..numerics import QTensor, check_terms
from ..numerics.scale_rows import dequantize_rows, row_exp_limit
from ..ops.conv import (conv1d_backward_bias_s32, conv1d_backward_input_s8, conv1d_backward_weight_s32,
                        conv1d_forward_s8, conv1d_im2col, conv2d_backward_bias_s32, conv2d_backward_input_s8,
                        conv2d_backward_weight_s32, conv2d_forward_s8, conv2d_im2col, conv_output_size,
                        im2col_shape)
from .config import QuantConfig
from .init import initial_bias, initial_weight_rows, quantize_bias, quantize_weight
from .module import Context, Module, Parameter, ShapeError, row_args


def _tuple(v, dims: int, what: str, layer: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        out = (int(v),) * dims
    else:
        out = tuple(int(a) for a in v)
    if len(out) != dims:
        raise ShapeError(f"{layer}: {what} needs {dims} value(s), got {v!r}")
    return out


#: weight initialisations: ``pytorch`` = PyTorch's default U(+-1/sqrt(fan_in)); ``he`` = He/Kaiming
#: uniform for ReLU networks, U(+-sqrt(6/fan_in)), which keeps the activation variance from layer to
#: layer (deeper networks without normalisation stall with the default). Biases: U(+-1/sqrt(fan_in)).
INITS = ("pytorch", "he")


class _ConvNd(Module):
    """Shared construction and checks of :class:`Conv2d` and :class:`Conv1d`."""

    dims = 2
    type_name = "Conv2d"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 groups: int = 1, bias: bool = True, *, config: QuantConfig | None = None,
                 rng: np.random.Generator | None = None, name: str = "conv", init: str = "pytorch"):
        t = self.type_name
        self.name = name
        if init not in INITS:
            raise ValueError(f"{name}: unknown init {init!r} ({', '.join(INITS)})")
        self.init = init
        self.kernel_size = _tuple(kernel_size, self.dims, "kernel_size", name)
        self.stride = _tuple(stride, self.dims, "stride", name)
        self.padding = _tuple(padding, self.dims, "padding", name)
        if in_channels <= 0 or out_channels <= 0 or groups <= 0:
            raise ShapeError(f"{name}: {t} channels and groups must be positive, got "
                             f"{in_channels}->{out_channels} in {groups} group(s)")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ShapeError(f"{name}: {t} needs kernel >= 1, stride >= 1 and padding >= 0, got kernel "
                             f"{self.kernel_size}, stride {self.stride}, padding {self.padding}")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"{name}: {t} channels {in_channels}->{out_channels} are not divisible by "
                             f"groups={groups}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.has_bias = bool(bias)
        area = math.prod(self.kernel_size)
        self.fan_in = self.in_channels // self.groups * area
        check_terms(self.fan_in, f"{name}: {t} fan-in")
        overlap = math.prod(-(-k // s) for k, s in zip(self.kernel_size, self.stride))
        check_terms(self.out_channels // self.groups * overlap, f"{name}: {t} input-error sum")
        config = (config or QuantConfig()).for_layer(name)
        rng = rng if rng is not None else np.random.default_rng(0)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        gain = math.sqrt(6.0) if init == "he" else 1.0  # he: U(+-sqrt(6 / fan_in)), same draws
        #: largest per-channel exponent: the input-error sums have out/groups * overlap terms
        self.row_exp_limit = row_exp_limit(self.out_channels // self.groups * overlap)
        value, row_exp = initial_weight_rows(rng, shape, self.fan_in, config,
                                             self.row_exp_limit if config.rows_of(name) else None, gain)
        self.weight = Parameter(f"{name}.weight", "weight", value, config.weight_bits)
        self.weight.row_exp, self.weight.row_limit = row_exp, self.row_exp_limit
        self.bias = None
        if self.has_bias:
            self.bias = Parameter(f"{name}.bias", "bias", initial_bias(rng, (self.out_channels,), self.fan_in), 32)
        self._cache_x = None
        self._cache_cols = None
        #: im2col buffer reused from step to step (host speed only: fresh multi-MB arrays every step
        #: cost page faults); the cached ``_cache_cols`` of a step is this buffer
        self._work_cols = None

    def _cols_buffer(self, x_shape_4d: tuple[int, ...], kernel, stride, padding) -> np.ndarray:
        shape = im2col_shape(x_shape_4d, kernel, stride, padding, self.groups)
        if self._work_cols is None or self._work_cols.shape != shape:
            self._work_cols = np.empty(shape, dtype=np.float32)
        return self._work_cols

    @property
    def depthwise_like(self) -> bool:
        """Depthwise (one input and one output channel per group): the kernels use per-offset
        multiply-adds, not im2col."""
        return self.in_channels == self.groups == self.out_channels

    # -- shapes ----------------------------------------------------------------------------------
    def _spatial_out(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        t = self.type_name
        want = "(C, H, W)" if self.dims == 2 else "(C, L)"
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != self.dims + 1:
            raise ShapeError(f"{self.name}: {t} expects samples of shape {want}, got {shape}")
        if shape[0] != self.in_channels:
            raise ShapeError(f"{self.name}: {t} expects {self.in_channels} input channels, got {shape[0]} "
                             f"(input shape {shape})")
        out = []
        for size, k, s, p in zip(shape[1:], self.kernel_size, self.stride, self.padding):
            o = conv_output_size(size, k, s, p)
            if o < 1:
                raise ShapeError(f"{self.name}: {t} kernel {self.kernel_size} is larger than the padded input "
                                 f"{tuple(v + 2 * q for v, q in zip(shape[1:], self.padding))}")
            out.append(o)
        return tuple(out)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.out_channels,) + self._spatial_out(input_shape)

    def gradient_positions(self, input_shape: tuple[int, ...]) -> int:
        """Products per sample in one weight-gradient element: the output positions."""
        return math.prod(self._spatial_out(input_shape))

    def macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of one forward pass on one sample."""
        return self.out_channels * math.prod(self._spatial_out(input_shape)) * self.fan_in

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def spec(self) -> dict:
        return {"type": self.type_name, "name": self.name, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding), "groups": self.groups,
                "bias": self.has_bias, **({"init": self.init} if self.init != "pytorch" else {})}


class Conv2d(_ConvNd):
    """2-D convolution on (B, Cin, H, W) int8 -> (B, Cout, Ho, Wo) int8; stride, zero padding, groups
    (``groups == in_channels`` is depthwise)."""

    dims = 2
    type_name = "Conv2d"

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        b = self.bias.value if self.bias is not None else None
        cols = None
        if ctx.training:
            self._cache_x = x
            if not self.depthwise_like and self.weight.trainable:  # shared with the weight gradient
                buf = self._cols_buffer(x.m.shape, self.kernel_size, self.stride, self.padding)
                cols = conv2d_im2col(x.m, self.kernel_size, self.stride, self.padding, self.groups, out=buf)
                self._cache_cols = cols
        return conv2d_forward_s8(x, self.weight.forward_view(ctx.mode), b, self.stride, self.padding,
                                 self.groups, ctx.mode, cols, *row_args(self.weight))

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        x = self._cache_x
        e_in = None
        if need_input_error:
            e_in = conv2d_backward_input_s8(err, self.weight.forward_view(ctx.mode), x.m.shape[2:], self.stride,
                                            self.padding, self.groups, ctx.mode, *row_args(self.weight))
        if self.weight.trainable:
            self.weight.grad = conv2d_backward_weight_s32(err, x, self.kernel_size, self.stride, self.padding,
                                                          self.groups, self._cache_cols)
        if self.bias is not None and self.bias.trainable:
            self.bias.grad = conv2d_backward_bias_s32(err)
        return e_in


class Conv1d(_ConvNd):
    """1-D convolution on (B, Cin, L) int8 -> (B, Cout, Lo) int8; stride, zero padding, groups."""

    dims = 1
    type_name = "Conv1d"

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        b = self.bias.value if self.bias is not None else None
        (k,), (s,), (p,) = self.kernel_size, self.stride, self.padding
        cols = None
        if ctx.training:
            self._cache_x = x
            if not self.depthwise_like and self.weight.trainable:  # shared with the weight gradient
                buf = self._cols_buffer(x.m.shape[:2] + (1,) + x.m.shape[2:], (1, k), (1, s), (0, p))
                cols = conv1d_im2col(x.m, k, s, p, self.groups, out=buf)
                self._cache_cols = cols
        return conv1d_forward_s8(x, self.weight.forward_view(ctx.mode), b, s, p, self.groups, ctx.mode, cols,
                                 *row_args(self.weight))

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        x = self._cache_x
        (k,), (s,), (p,) = self.kernel_size, self.stride, self.padding
        e_in = None
        if need_input_error:
            e_in = conv1d_backward_input_s8(err, self.weight.forward_view(ctx.mode), x.m.shape[2], s, p,
                                            self.groups, ctx.mode, *row_args(self.weight))
        if self.weight.trainable:
            self.weight.grad = conv1d_backward_weight_s32(err, x, k, s, p, self.groups, self._cache_cols)
        if self.bias is not None and self.bias.trainable:
            self.bias.grad = conv1d_backward_bias_s32(err)
        return e_in


def fold_batchnorm(conv: _ConvNd, gamma, beta, running_mean, running_var, eps: float = 1e-5,
                   config: QuantConfig | None = None) -> None:
    """Fold an inference-mode BatchNorm that follows ``conv`` into the conv's weight and bias (host).

    ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` becomes a convolution with
    ``W'[o] = W[o] * a[o]`` and ``b'[o] = (b[o] - mean[o]) * a[o] + beta[o]``, ``a = gamma /
    sqrt(var + eps)``, computed in float64 from the dequantised weights and requantised once
    (:func:`tintin.nn.init.quantize_weight`, :func:`quantize_bias`). A conv without bias gets one.
    Float is allowed here: it is the import edge, never part of a training step."""
    config = config or QuantConfig(weight_bits=conv.weight.bits)
    c = conv.out_channels
    vals = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (gamma, beta, running_mean, running_var)]
    if any(v.shape != (c,) for v in vals):
        raise ShapeError(f"{conv.name}: BatchNorm parameters must have {c} entries, got "
                         f"{[v.shape[0] for v in vals]}")
    g, bt, mean, var = vals
    if np.any(var + eps <= 0):
        raise ValueError(f"{conv.name}: BatchNorm variance + eps must be positive")
    a = g / np.sqrt(var + eps)
    w = dequantize_rows(conv.weight.value.m, conv.weight.value.scale, conv.weight.row_exp) * a.reshape((c,) + (1,) * (conv.weight.value.m.ndim - 1))
    b = conv.bias.value.dequantize() if conv.bias is not None else np.zeros(c)
    conv.weight.assign(quantize_weight(w, config))
    conv.weight.row_exp = None
    new_bias = quantize_bias((b - mean) * a + bt)
    if conv.bias is None:
        conv.bias = Parameter(f"{conv.name}.bias", "bias", new_bias, 32)
        conv.has_bias = True
    else:
        conv.bias.assign(new_bias)
