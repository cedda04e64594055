"""Pooling layers: MaxPool2d / MaxPool1d, AvgPool2d / AvgPool1d and GlobalAvgPool.

No parameters. Arithmetic and rounding: :mod:`tintin.ops.pool` (max pool: first maximum of the
window wins, overlapping errors add in int32; average pool: fixed-point reciprocal of the window
size). Windows have no padding; ``stride=None`` means ``stride = kernel_size``.
"""

from __future__ import annotations

import math

from ..numerics import QTensor
from ..ops.pool import (avgpool_multiplier, avgpool1d_backward_s8, avgpool1d_forward_s8, avgpool2d_backward_s8, avgpool2d_forward_s8,
                        global_avgpool_backward_s8, global_avgpool_forward_s8, maxpool1d_backward_s8,
                        maxpool1d_forward_s8, maxpool2d_backward_s8, maxpool2d_forward_s8)
from .module import Context, Module, ShapeError


class _PoolNd(Module):
    dims = 2
    type_name = "MaxPool2d"

    def __init__(self, kernel_size, stride=None, name: str = "pool"):
        self.name = name
        k = (int(kernel_size),) * self.dims if isinstance(kernel_size, int) else tuple(int(v) for v in kernel_size)
        if stride is None:
            s = k
        else:
            s = (int(stride),) * self.dims if isinstance(stride, int) else tuple(int(v) for v in stride)
        if len(k) != self.dims or len(s) != self.dims:
            raise ShapeError(f"{name}: {self.type_name} needs {self.dims} kernel and stride value(s), got "
                             f"kernel {kernel_size!r}, stride {stride!r}")
        if min(k) < 1 or min(s) < 1:
            raise ShapeError(f"{name}: {self.type_name} kernel and stride must be >= 1, got {k} and {s}")
        self.kernel_size, self.stride = k, s
        self._cache_shape = None

    def output_shape(self, input_shape):
        want = "(C, H, W)" if self.dims == 2 else "(C, L)"
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != self.dims + 1:
            raise ShapeError(f"{self.name}: {self.type_name} expects samples of shape {want}, got {shape}")
        out = []
        for size, k, s in zip(shape[1:], self.kernel_size, self.stride):
            if k > size:
                raise ShapeError(f"{self.name}: {self.type_name} window {self.kernel_size} is larger than the "
                                 f"input {shape[1:]}")
            out.append((size - k) // s + 1)
        return (shape[0],) + tuple(out)

    def _k(self):
        return self.kernel_size if self.dims == 2 else self.kernel_size[0]

    def _s(self):
        return self.stride if self.dims == 2 else self.stride[0]

    def spec(self) -> dict:
        return {"type": self.type_name, "name": self.name, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride)}


class MaxPool2d(_PoolNd):
    """Max pool over (B, C, H, W); the backward routes each error to its window's first maximum."""

    dims = 2
    type_name = "MaxPool2d"

    def __init__(self, kernel_size, stride=None, name: str = "maxpool"):
        super().__init__(kernel_size, stride, name)
        self._cache_argmax = None

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        y, arg = maxpool2d_forward_s8(x, self.kernel_size, self.stride)
        if ctx.training:
            self._cache_argmax, self._cache_shape = arg, x.m.shape
        return y

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        if not need_input_error:
            return None
        return maxpool2d_backward_s8(err, self._cache_argmax, self._cache_shape[2:], self.kernel_size,
                                     self.stride, ctx.mode)


class MaxPool1d(_PoolNd):
    """Max pool over (B, C, L)."""

    dims = 1
    type_name = "MaxPool1d"

    def __init__(self, kernel_size, stride=None, name: str = "maxpool"):
        super().__init__(kernel_size, stride, name)
        self._cache_argmax = None

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        y, arg = maxpool1d_forward_s8(x, self._k(), self._s())
        if ctx.training:
            self._cache_argmax, self._cache_shape = arg, x.m.shape
        return y

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        if not need_input_error:
            return None
        return maxpool1d_backward_s8(err, self._cache_argmax, self._cache_shape[2], self._k(), self._s(), ctx.mode)


class AvgPool2d(_PoolNd):
    """Average pool over (B, C, H, W) (integer window sum times a fixed-point reciprocal)."""

    dims = 2
    type_name = "AvgPool2d"

    def __init__(self, kernel_size, stride=None, name: str = "avgpool"):
        super().__init__(kernel_size, stride, name)

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        if ctx.training:
            self._cache_shape = x.m.shape
        return avgpool2d_forward_s8(x, self.kernel_size, self.stride, ctx.mode)

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        if not need_input_error:
            return None
        return avgpool2d_backward_s8(err, self._cache_shape[2:], self.kernel_size, self.stride, ctx.mode)


class AvgPool1d(_PoolNd):
    """Average pool over (B, C, L)."""

    dims = 1
    type_name = "AvgPool1d"

    def __init__(self, kernel_size, stride=None, name: str = "avgpool"):
        super().__init__(kernel_size, stride, name)

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        if ctx.training:
            self._cache_shape = x.m.shape
        return avgpool1d_forward_s8(x, self._k(), self._s(), ctx.mode)

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        if not need_input_error:
            return None
        return avgpool1d_backward_s8(err, self._cache_shape[2], self._k(), self._s(), ctx.mode)


class GlobalAvgPool(Module):
    """Mean over all positions: (B, C, L) or (B, C, H, W) -> (B, C)."""

    def __init__(self, name: str = "gap"):
        self.name = name
        self._cache_shape = None

    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        if ctx.training:
            self._cache_shape = x.m.shape
        return global_avgpool_forward_s8(x, ctx.mode)

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        if not need_input_error:
            return None
        return global_avgpool_backward_s8(err, self._cache_shape[1:], ctx.mode)

    def output_shape(self, input_shape):
        shape = tuple(int(v) for v in input_shape)
        if len(shape) not in (2, 3):
            raise ShapeError(f"{self.name}: GlobalAvgPool expects samples of shape (C, L) or (C, H, W), got {shape}")
        if math.prod(shape[1:]) < 1:
            raise ShapeError(f"{self.name}: GlobalAvgPool got an empty input {shape}")
        try:
            avgpool_multiplier(math.prod(shape[1:]))
        except ValueError as exc:
            raise ShapeError(f"{self.name}: {exc}") from None
        return (shape[0],)

    def spec(self) -> dict:
        return {"type": "GlobalAvgPool", "name": self.name}
