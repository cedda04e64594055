"""Lowering and executor kernels of convolution, pooling, residual and channel-scale layers.

Buffers per layer (B = batch size, shapes NCHW; 1-D layers use (B, C, L)):

* Conv2d / Conv1d (Cin -> Cout, fan-in F = Cin/G * kernel area, P = output positions):
  output int8 (B, Cout, *out); forward workspace: the int32 accumulator (B, Cout, *out) and, unless
  the convolution is depthwise, an int8 im2col block of one output row (F, Wo) (the C kernel
  gathers one row of windows at a time; the host kernel's full im2col is a host detail). Input
  error: int8 (B, Cin, *in) with an int32 accumulator of that shape. Weight gradient: int32
  (rows, Cin/G, *kernel), or row tiles of it fused with the update, with its own im2col block.
  The input is kept for the backward pass only if the weight is trained.
* MaxPool: output int8; the argmax (uint8 window offsets, (B, C, *out)) is produced only when the
  backward pass needs it. Input error int8 (B, C, *in), with an int32 workspace of that shape only
  when windows overlap (stride < kernel).
* AvgPool / GlobalAvgPool: int32 accumulators of the output (forward) and of the input (backward).
* Residual: the body and the shortcut are lowered in order; the add has an int32 workspace and
  may overwrite the body output in place; backward, the output error feeds both branches (no copy)
  and the two input errors are added again.
* ChannelScale: like a Linear with one weight per channel.
"""

from __future__ import annotations

import math

import numpy as np

from ..nn.conv_layers import Conv1d, Conv2d
from ..nn.pool_layers import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d
from ..nn.residual import Residual
from ..nn.scaling_layers import ChannelScale
from ..numerics import QTensor
from ..ops.conv import (conv2d_backward_bias_s32, conv2d_backward_input_s8, conv2d_backward_weight_s32,
                        conv2d_forward_s8)
from ..ops.pool import (avgpool2d_backward_s8, avgpool2d_forward_s8, global_avgpool_backward_s8,
                        global_avgpool_forward_s8, maxpool2d_backward_s8, maxpool2d_forward_s8)
from ..ops.residual import residual_add_s8
from ..ops.scaling import (channel_scale_backward_bias_s32, channel_scale_backward_input_s8,
                           channel_scale_backward_weight_s32, channel_scale_forward_s8)
from .ir import BufferKind, Phase
from .lower_dense import _row_exp
from .registry import register_gradient_rows, register_kernel, register_lowering


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


# -- 1-D as 2-D ------------------------------------------------------------------------------------
def _to2d(q: QTensor, dims: int) -> QTensor:
    """(B, C, L) -> (B, C, 1, L) for the 2-D kernels (1-D layers use the same arithmetic)."""
    return q if dims == 2 else QTensor(q.m[:, :, None, :], q.scale)


def _from2d(q: QTensor, dims: int) -> QTensor:
    return q if dims == 2 else QTensor(q.m[:, :, 0, :], q.scale)


def geom2d(values, dims: int) -> tuple[int, int]:
    """(h, w) of a kernel/stride attribute; 1-D layers run as 2-D with h = 1."""
    values = tuple(int(v) for v in values)
    return values if dims == 2 else (1, values[0]) if len(values) == 1 else values


def pad2d(values, dims: int) -> tuple[int, int]:
    """(h, w) padding of a padding attribute; 1-D layers pad only along w."""
    values = tuple(int(v) for v in values)
    return values if dims == 2 else (0, values[0])


# -- convolution -----------------------------------------------------------------------------------
class ConvLowering:
    def forward(self, b, layer, x: str) -> str:
        B = b.batch_size
        in_shape = b.shape(x)[1:]
        out_shape = layer.output_shape(in_shape)
        dims = layer.dims
        attrs = {"dims": dims, "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
                 "padding": list(layer.padding), "groups": layer.groups, "input_hw": list(in_shape[1:])}
        positions = _size(out_shape[1:])
        w = b.kernel_weight(layer.weight, layer.name, Phase.FORWARD, "fwd")
        inputs = (x, w) + ((b.param(layer.bias),) if layer.bias is not None else ())
        rexp = b.row_exp(layer.weight)
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", (B, *out_shape), layer=layer.name)
        macs = B * layer.out_channels * positions * layer.fan_in
        acc, passes = b.accumulator(f"{layer.name}.acc", (B, *out_shape), layer.name, macs)
        ws = acc + self._im2col(b, layer, out_shape, "fwd")
        b.add_step(Phase.FORWARD, "conv_forward_s8", layer.name, inputs + ((rexp,) if rexp else ()), (y,), workspace=ws,
                   attrs={**attrs, "accumulator_passes": passes, **({"row_exp": rexp} if rexp else {})},
                   macs=passes * macs, elementwise=B * _size(out_shape) * 4)
        b.remember(layer, "x", x)
        b.remember(layer, "attrs", attrs)
        b.remember(layer, "shapes", (in_shape, out_shape))
        return y

    @staticmethod
    def _im2col_shape(layer, out_shape) -> tuple[int, int] | None:
        if layer.depthwise_like:
            return None
        return (layer.fan_in, out_shape[-1])

    def _im2col(self, b, layer, out_shape, tag: str) -> tuple[str, ...]:
        shape = self._im2col_shape(layer, out_shape)
        if shape is None:
            return ()
        return (b.add_buffer(f"{layer.name}.im2col@{tag}", BufferKind.WORKSPACE, "int8", shape, layer=layer.name),)

    def backward(self, b, layer, err: str, need_input_error: bool) -> str | None:
        B = b.batch_size
        x = b.recall(layer, "x")
        attrs = b.recall(layer, "attrs")
        in_shape, out_shape = b.recall(layer, "shapes")
        macs = B * layer.out_channels * _size(out_shape[1:]) * layer.fan_in
        e_in = None
        if need_input_error:
            w = b.kernel_weight(layer.weight, layer.name, Phase.BACKWARD, "bwd")
            e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", (B, *in_shape), layer=layer.name)
            acc, passes = b.accumulator(f"{layer.name}.acc_in", (B, *in_shape), layer.name, macs)
            rexp = b.row_exp(layer.weight)
            b.add_step(Phase.BACKWARD, "conv_backward_input_s8", layer.name, (err, w) + ((rexp,) if rexp else ()),
                       (e_in,), workspace=acc,
                       attrs={**attrs, "accumulator_passes": passes, **({"row_exp": rexp} if rexp else {})},
                       macs=passes * macs, elementwise=B * _size(in_shape) * 3)
        if b.trained(layer.weight):
            im2col = self._im2col_shape(layer, out_shape)
            scratch = (("im2col", "int8", im2col),) if im2col else ()
            b.update_parameter(layer.weight, layer.name, "conv_backward_weight_s32", (err, x), grad_macs=macs,
                               attrs={**attrs, "scratch": scratch})
        if b.trained(layer.bias):
            b.update_parameter(layer.bias, layer.name, "conv_backward_bias_s32", (err,), grad_macs=0, attrs=attrs)
        return e_in


@register_kernel("conv_forward_s8")
def _conv_forward(step, io, env):
    a = step.attrs
    d = a["dims"]
    x, w = io.read(step.inputs[0]), io.read(step.inputs[1])
    rexp = _row_exp(step, io)
    bias = io.read(step.inputs[2]) if len(step.inputs) > 2 + (rexp is not None) else None
    y = conv2d_forward_s8(_to2d(x, d), _to2d(w, d), bias, geom2d(a["stride"], d), pad2d(a["padding"], d),
                          a["groups"], env.mode, row_exp=rexp)
    io.write(step.outputs[0], _from2d(y, d))


@register_kernel("conv_backward_input_s8")
def _conv_backward_input(step, io, env):
    a = step.attrs
    d = a["dims"]
    err, w = io.read(step.inputs[0]), io.read(step.inputs[1])
    e = conv2d_backward_input_s8(_to2d(err, d), _to2d(w, d), geom2d(a["input_hw"], d), geom2d(a["stride"], d),
                                 pad2d(a["padding"], d), a["groups"], env.mode, row_exp=_row_exp(step, io))
    io.write(step.outputs[0], _from2d(e, d))


@register_gradient_rows("conv_backward_weight_s32")
def _conv_weight_rows(err: QTensor, x: QTensor, rows, attrs) -> QTensor:
    """Gradient of output channels ``rows``: per group, the ungrouped gradient of those channels
    against the group's input channels (integer sums: identical to the grouped computation)."""
    d = attrs["dims"]
    groups = attrs["groups"]
    e2, x2 = _to2d(err, d), _to2d(x, d)
    kernel, stride, padding = geom2d(attrs["kernel_size"], d), geom2d(attrs["stride"], d), pad2d(attrs["padding"], d)
    cout, cin = e2.m.shape[1], x2.m.shape[1]
    idx = np.arange(cout)[rows]
    per_out, per_in = cout // groups, cin // groups
    if groups == 1:
        g = conv2d_backward_weight_s32(QTensor(e2.m[:, idx], e2.scale), x2, kernel, stride, padding, 1)
        return _from2d_weight(g, d)
    if per_in == 1 and per_out == 1:  # depthwise: the selected channels form a depthwise conv themselves
        g = conv2d_backward_weight_s32(QTensor(e2.m[:, idx], e2.scale), QTensor(x2.m[:, idx], x2.scale), kernel,
                                       stride, padding, len(idx))
        return _from2d_weight(g, d)
    out = np.empty((len(idx), per_in) + kernel, dtype=np.int32)
    group_of = idx // per_out
    scale = None
    for grp in np.unique(group_of):
        sel = np.nonzero(group_of == grp)[0]
        g = conv2d_backward_weight_s32(QTensor(e2.m[:, idx[sel]], e2.scale),
                                       QTensor(x2.m[:, grp * per_in:(grp + 1) * per_in], x2.scale),
                                       kernel, stride, padding, 1)
        out[sel] = g.m
        scale = g.scale
    return _from2d_weight(QTensor(out, scale), d)


def _from2d_weight(g: QTensor, dims: int) -> QTensor:
    return g if dims == 2 else QTensor(g.m[:, :, 0, :], g.scale)


@register_gradient_rows("conv_backward_bias_s32")
def _conv_bias_rows(err: QTensor, x, rows, attrs) -> QTensor:
    return conv2d_backward_bias_s32(_to2d(QTensor(err.m[:, rows], err.scale), attrs["dims"]))


# -- pooling ---------------------------------------------------------------------------------------
def _pool_forward_start(b, layer, x: str):
    """What the max and average pool lowerings share: shapes, kernel attributes (remembered for the
    backward step) and the int8 output buffer."""
    B = b.batch_size
    in_shape = b.shape(x)[1:]
    out_shape = layer.output_shape(in_shape)
    attrs = {"dims": layer.dims, "kernel_size": list(layer.kernel_size), "stride": list(layer.stride),
             "input_hw": list(in_shape[1:])}
    y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", (B, *out_shape), layer=layer.name)
    b.remember(layer, "attrs", attrs)
    b.remember(layer, "in_shape", in_shape)
    return B, in_shape, out_shape, attrs, y


class MaxPoolLowering:
    def forward(self, b, layer, x: str) -> str:
        B, in_shape, out_shape, attrs, y = _pool_forward_start(b, layer, x)
        area = math.prod(layer.kernel_size)
        arg = b.add_buffer(f"{layer.name}.argmax", BufferKind.ACTIVATION, "uint8" if area <= 256 else "int32",
                           (B, *out_shape), layer=layer.name)
        b.add_step(Phase.FORWARD, "maxpool_forward_s8", layer.name, (x,), (y, arg), attrs=attrs, optional=(arg,),
                   elementwise=B * _size(out_shape) * area)
        b.remember(layer, "argmax", arg)
        return y

    def backward(self, b, layer, err: str, need_input_error: bool) -> str | None:
        if not need_input_error:
            return None
        B = b.batch_size
        in_shape = b.recall(layer, "in_shape")
        overlap = any(s < k for s, k in zip(layer.stride, layer.kernel_size))
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", (B, *in_shape), layer=layer.name)
        ws = ()
        if overlap:
            ws = (b.add_buffer(f"{layer.name}.acc_in", BufferKind.WORKSPACE, "int32", (B, *in_shape), layer=layer.name),)
        b.add_step(Phase.BACKWARD, "maxpool_backward_s8", layer.name, (err, b.recall(layer, "argmax")), (e_in,),
                   workspace=ws, attrs=b.recall(layer, "attrs"), elementwise=B * _size(in_shape))
        return e_in


@register_kernel("maxpool_forward_s8")
def _maxpool_forward(step, io, env):
    a = step.attrs
    d = a["dims"]
    y, arg = maxpool2d_forward_s8(_to2d(io.read(step.inputs[0]), d), geom2d(a["kernel_size"], d),
                                  geom2d(a["stride"], d))
    io.write(step.outputs[0], _from2d(y, d))
    if len(step.outputs) > 1:
        io.write(step.outputs[1], QTensor(arg if d == 2 else arg[:, :, 0, :], y.scale))


@register_kernel("maxpool_backward_s8")
def _maxpool_backward(step, io, env):
    a = step.attrs
    d = a["dims"]
    err, arg = io.read(step.inputs[0]), io.read(step.inputs[1]).m
    arg = arg if d == 2 else arg[:, :, None, :]
    e = maxpool2d_backward_s8(_to2d(err, d), arg, geom2d(a["input_hw"], d), geom2d(a["kernel_size"], d),
                              geom2d(a["stride"], d), env.mode)
    io.write(step.outputs[0], _from2d(e, d))


class AvgPoolLowering:
    def forward(self, b, layer, x: str) -> str:
        B, in_shape, out_shape, attrs, y = _pool_forward_start(b, layer, x)
        acc = b.add_buffer(f"{layer.name}.acc", BufferKind.WORKSPACE, "int32", (B, *out_shape), layer=layer.name)
        b.add_step(Phase.FORWARD, "avgpool_forward_s8", layer.name, (x,), (y,), workspace=(acc,), attrs=attrs,
                   elementwise=B * _size(out_shape) * (math.prod(layer.kernel_size) + 3))
        return y

    def backward(self, b, layer, err: str, need_input_error: bool) -> str | None:
        if not need_input_error:
            return None
        B = b.batch_size
        in_shape = b.recall(layer, "in_shape")
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", (B, *in_shape), layer=layer.name)
        acc = b.add_buffer(f"{layer.name}.acc_in", BufferKind.WORKSPACE, "int32", (B, *in_shape), layer=layer.name)
        b.add_step(Phase.BACKWARD, "avgpool_backward_s8", layer.name, (err,), (e_in,), workspace=(acc,),
                   attrs=b.recall(layer, "attrs"), elementwise=B * _size(in_shape) * 4)
        return e_in


@register_kernel("avgpool_forward_s8")
def _avgpool_forward(step, io, env):
    a = step.attrs
    d = a["dims"]
    y = avgpool2d_forward_s8(_to2d(io.read(step.inputs[0]), d), geom2d(a["kernel_size"], d),
                             geom2d(a["stride"], d), env.mode)
    io.write(step.outputs[0], _from2d(y, d))


@register_kernel("avgpool_backward_s8")
def _avgpool_backward(step, io, env):
    a = step.attrs
    d = a["dims"]
    e = avgpool2d_backward_s8(_to2d(io.read(step.inputs[0]), d), geom2d(a["input_hw"], d),
                              geom2d(a["kernel_size"], d), geom2d(a["stride"], d), env.mode)
    io.write(step.outputs[0], _from2d(e, d))


class GlobalAvgPoolLowering:
    def forward(self, b, layer, x: str) -> str:
        B = b.batch_size
        in_shape = b.shape(x)[1:]
        C = in_shape[0]
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", (B, C), layer=layer.name)
        acc = b.add_buffer(f"{layer.name}.acc", BufferKind.WORKSPACE, "int32", (B, C), layer=layer.name)
        b.add_step(Phase.FORWARD, "global_avgpool_forward_s8", layer.name, (x,), (y,), workspace=(acc,),
                   elementwise=B * _size(in_shape) + B * C * 3)
        b.remember(layer, "in_shape", in_shape)
        return y

    def backward(self, b, layer, err: str, need_input_error: bool) -> str | None:
        if not need_input_error:
            return None
        B = b.batch_size
        in_shape = b.recall(layer, "in_shape")
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", (B, *in_shape), layer=layer.name)
        acc = b.add_buffer(f"{layer.name}.acc_in", BufferKind.WORKSPACE, "int32", (B, in_shape[0]), layer=layer.name)
        b.add_step(Phase.BACKWARD, "global_avgpool_backward_s8", layer.name, (err,), (e_in,), workspace=(acc,),
                   attrs={"input_shape": list(in_shape)}, elementwise=B * _size(in_shape))
        return e_in


@register_kernel("global_avgpool_forward_s8")
def _gap_forward(step, io, env):
    io.write(step.outputs[0], global_avgpool_forward_s8(io.read(step.inputs[0]), env.mode))


@register_kernel("global_avgpool_backward_s8")
def _gap_backward(step, io, env):
    io.write(step.outputs[0], global_avgpool_backward_s8(io.read(step.inputs[0]), tuple(step.attrs["input_shape"]),
                                                         env.mode))


# -- residual --------------------------------------------------------------------------------------
class ResidualLowering:
    def forward(self, b, layer: Residual, x: str) -> str:
        h = x
        for sub in layer.body:
            h = b.forward(sub, h)
        s = x
        for sub in layer.shortcut:
            s = b.forward(sub, s)
        shape = b.shape(h)
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", shape, layer=layer.name)
        acc = b.add_buffer(f"{layer.name}.acc", BufferKind.WORKSPACE, "int32", shape, layer=layer.name)
        b.add_step(Phase.FORWARD, "residual_add_s8", layer.name, (h, s), (y,), workspace=(acc,), inplace={y: h},
                   elementwise=_size(shape) * 6)
        return y

    @staticmethod
    def _chain(b, layers, err: str, need_input_error: bool) -> str | None:
        for i in range(len(layers) - 1, -1, -1):
            err = b.backward(layers[i], err, need_input_error=(i > 0) or need_input_error)
        return err

    def backward(self, b, layer: Residual, err: str, need_input_error: bool) -> str | None:
        e_body = self._chain(b, layer.body, err, need_input_error)
        e_short = self._chain(b, layer.shortcut, err, need_input_error)
        if not need_input_error:
            return None
        shape = b.shape(err)
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", b.shape(e_body), layer=layer.name)
        acc = b.add_buffer(f"{layer.name}.acc_in", BufferKind.WORKSPACE, "int32", b.shape(e_body), layer=layer.name)
        b.add_step(Phase.BACKWARD, "residual_add_s8", layer.name, (e_body, e_short), (e_in,), workspace=(acc,),
                   inplace={e_in: e_body}, elementwise=_size(shape) * 6)
        return e_in


@register_kernel("residual_add_s8")
def _residual_add(step, io, env):
    io.write(step.outputs[0], residual_add_s8(io.read(step.inputs[0]), io.read(step.inputs[1]), env.mode))


# -- channel scale ---------------------------------------------------------------------------------
class ChannelScaleLowering:
    def forward(self, b, layer: ChannelScale, x: str) -> str:
        shape = b.shape(x)
        w = b.kernel_weight(layer.weight, layer.name, Phase.FORWARD, "fwd")
        inputs = (x, w) + ((b.param(layer.bias),) if layer.bias is not None else ())
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", shape, layer=layer.name)
        acc, passes = b.accumulator(f"{layer.name}.acc", shape, layer.name, _size(shape))
        b.add_step(Phase.FORWARD, "channel_scale_forward_s8", layer.name, inputs, (y,), workspace=acc,
                   attrs={"accumulator_passes": passes}, macs=passes * _size(shape), elementwise=_size(shape) * 4)
        b.remember(layer, "x", x)
        return y

    def backward(self, b, layer: ChannelScale, err: str, need_input_error: bool) -> str | None:
        x = b.recall(layer, "x")
        shape = b.shape(err)
        e_in = None
        if need_input_error:
            w = b.kernel_weight(layer.weight, layer.name, Phase.BACKWARD, "bwd")
            e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", shape, layer=layer.name)
            acc, passes = b.accumulator(f"{layer.name}.acc_in", shape, layer.name, _size(shape))
            b.add_step(Phase.BACKWARD, "channel_scale_backward_input_s8", layer.name, (err, w), (e_in,),
                       workspace=acc, attrs={"accumulator_passes": passes}, macs=passes * _size(shape), elementwise=_size(shape) * 3)
        if b.trained(layer.weight):
            b.update_parameter(layer.weight, layer.name, "channel_scale_backward_weight_s32", (err, x),
                               grad_macs=_size(shape))
        if b.trained(layer.bias):
            b.update_parameter(layer.bias, layer.name, "channel_scale_backward_bias_s32", (err,), grad_macs=0)
        return e_in


@register_kernel("channel_scale_forward_s8")
def _channel_scale_forward(step, io, env):
    x, w = io.read(step.inputs[0]), io.read(step.inputs[1])
    bias = io.read(step.inputs[2]) if len(step.inputs) > 2 else None
    io.write(step.outputs[0], channel_scale_forward_s8(x, w, bias, env.mode))


@register_kernel("channel_scale_backward_input_s8")
def _channel_scale_backward_input(step, io, env):
    io.write(step.outputs[0], channel_scale_backward_input_s8(io.read(step.inputs[0]), io.read(step.inputs[1]),
                                                              env.mode))


@register_gradient_rows("channel_scale_backward_weight_s32")
def _channel_scale_weight_rows(err: QTensor, x: QTensor, rows, attrs) -> QTensor:
    return channel_scale_backward_weight_s32(QTensor(err.m[:, rows], err.scale), QTensor(x.m[:, rows], x.scale))


@register_gradient_rows("channel_scale_backward_bias_s32")
def _channel_scale_bias_rows(err: QTensor, x, rows, attrs) -> QTensor:
    return channel_scale_backward_bias_s32(QTensor(err.m[:, rows], err.scale))


for _conv in (Conv2d, Conv1d):
    register_lowering(_conv, ConvLowering())
for _pool in (MaxPool2d, MaxPool1d):
    register_lowering(_pool, MaxPoolLowering())
for _pool in (AvgPool2d, AvgPool1d):
    register_lowering(_pool, AvgPoolLowering())
register_lowering(GlobalAvgPool, GlobalAvgPoolLowering())
register_lowering(Residual, ResidualLowering())
register_lowering(ChannelScale, ChannelScaleLowering())
