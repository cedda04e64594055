"""Lowering and executor kernels of the fully connected layers: Linear, ReLU, Flatten.

Buffers per layer (B = batch size):

* Linear (K -> N): output ``<name>.out`` int8 (B, N); forward workspace ``<name>.acc`` int32 (B, N);
  input error ``<name>.err_in`` int8 (B, K) with workspace ``<name>.acc_in`` int32 (B, K); the
  weight gradient int32 (rows, K) or a row tile of it; the bias gradient int32 (rows,). With
  per-row weight scales, ``<name>.weight.row_exp`` int8 (N,), persistent (one byte per row), read
  by the forward and input-error steps and changed by the update.
  The input is kept for the backward pass only if the weight is trained.
* ReLU: output in place over its input when nothing else reads the input; the backward pass reads
  the output, or, when the output is not kept for anything else, a 1-bit mask ``<name>.mask``
  (uint8, ceil(B*size/8) bytes, ``np.packbits`` order). The input error overwrites the output error.
* Flatten: a view (no copy, no bytes) forwards and backwards.
"""

from __future__ import annotations

import numpy as np

from ..nn.layers import Flatten, Linear, ReLU
from ..numerics import QTensor
from ..ops import (linear_backward_bias_s32, linear_backward_input_s8, linear_backward_weight_s32,
                   linear_forward_s8, relu_backward_s8, relu_forward_s8)
from .ir import BufferKind, Phase
from .registry import register_gradient_rows, register_kernel, register_lowering


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


class LinearLowering:
    def forward(self, b, layer: Linear, x: str) -> str:
        B, K, N = b.batch_size, layer.in_features, layer.out_features
        w = b.kernel_weight(layer.weight, layer.name, Phase.FORWARD, "fwd")
        inputs = (x, w) + ((b.param(layer.bias),) if layer.bias is not None else ())
        rexp = b.row_exp(layer.weight)
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", (B, N), layer=layer.name)
        acc, passes = b.accumulator(f"{layer.name}.acc", (B, N), layer.name, B * N * K)
        b.add_step(Phase.FORWARD, "linear_forward_s8", layer.name, inputs + ((rexp,) if rexp else ()), (y,),
                   workspace=acc, attrs={"accumulator_passes": passes, **({"row_exp": rexp} if rexp else {})},
                   macs=passes * B * N * K, elementwise=B * N * 4)
        b.remember(layer, "x", x)
        return y

    def backward(self, b, layer: Linear, err: str, need_input_error: bool) -> str | None:
        B, K, N = b.batch_size, layer.in_features, layer.out_features
        x = b.recall(layer, "x")
        e_in = None
        if need_input_error:
            w = b.kernel_weight(layer.weight, layer.name, Phase.BACKWARD, "bwd")
            e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", (B, K), layer=layer.name)
            acc, passes = b.accumulator(f"{layer.name}.acc_in", (B, K), layer.name, B * N * K)
            rexp = b.row_exp(layer.weight)
            b.add_step(Phase.BACKWARD, "linear_backward_input_s8", layer.name, (err, w) + ((rexp,) if rexp else ()),
                       (e_in,), workspace=acc,
                       attrs={"accumulator_passes": passes, **({"row_exp": rexp} if rexp else {})},
                       macs=passes * B * N * K, elementwise=B * K * 3)
        if b.trained(layer.weight):
            b.update_parameter(layer.weight, layer.name, "linear_backward_weight_s32", (err, x), grad_macs=B * N * K)
        if b.trained(layer.bias):
            b.update_parameter(layer.bias, layer.name, "linear_backward_bias_s32", (err,), grad_macs=0)
        return e_in


class ReLULowering:
    def forward(self, b, layer: ReLU, x: str) -> str:
        shape = b.shape(x)
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", shape, layer=layer.name)
        b.add_step(Phase.FORWARD, "relu_forward_s8", layer.name, (x,), (y,), inplace={y: x}, elementwise=_size(shape))
        b.remember(layer, "y", y)
        if b.options.relu_mask:
            mask = b.add_buffer(f"{layer.name}.mask", BufferKind.ACTIVATION, "uint8", (-(-_size(shape) // 8),),
                                layer=layer.name)
            b.add_step(Phase.FORWARD, "relu_mask_u1", layer.name, (y,), (mask,), elementwise=_size(shape))
            b.remember(layer, "mask", mask)
        return y

    def backward(self, b, layer: ReLU, err: str, need_input_error: bool) -> str | None:
        if not need_input_error:
            return None
        y = b.recall(layer, "y")
        use_mask = b.options.relu_mask and not b.read_by_backward(y)
        src = b.recall(layer, "mask") if use_mask else y
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", b.shape(err), layer=layer.name)
        b.add_step(Phase.BACKWARD, "relu_backward_s8", layer.name, (err, src), (e_in,), inplace={e_in: err},
                   attrs={"mask": use_mask}, elementwise=_size(b.shape(err)))
        return e_in


class FlattenLowering:
    def forward(self, b, layer: Flatten, x: str) -> str:
        shape = b.shape(x)
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, b.dtype(x), (shape[0], _size(shape[1:])),
                         layer=layer.name)
        b.add_step(Phase.FORWARD, "reshape", layer.name, (x,), (y,), view={y: x})
        b.remember(layer, "shape", shape)
        return y

    def backward(self, b, layer: Flatten, err: str, need_input_error: bool) -> str | None:
        if not need_input_error:
            return None
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, b.dtype(err), b.recall(layer, "shape"),
                            layer=layer.name)
        b.add_step(Phase.BACKWARD, "reshape", layer.name, (err,), (e_in,), view={e_in: err})
        return e_in


register_lowering(Linear, LinearLowering())
register_lowering(ReLU, ReLULowering())
register_lowering(Flatten, FlattenLowering())


# -- executor kernels ------------------------------------------------------------------------------
@register_kernel("linear_forward_s8")
def _linear_forward(step, io, env):
    x, w = io.read(step.inputs[0]), io.read(step.inputs[1])
    rexp = _row_exp(step, io)
    bias = io.read(step.inputs[2]) if len(step.inputs) > 2 + (rexp is not None) else None
    io.write(step.outputs[0], linear_forward_s8(x, w, bias, env.mode, rexp))


def _row_exp(step, io) -> np.ndarray | None:
    """The per-row exponents a step reads (its last input, named by ``attrs["row_exp"]``)."""
    name = step.attrs.get("row_exp")
    return None if name is None else io.array(name).copy()


@register_kernel("linear_backward_input_s8")
def _linear_backward_input(step, io, env):
    io.write(step.outputs[0], linear_backward_input_s8(io.read(step.inputs[0]), io.read(step.inputs[1]), env.mode,
                                                       _row_exp(step, io)))


@register_gradient_rows("linear_backward_weight_s32")
def _linear_weight_rows(err: QTensor, x: QTensor, rows, attrs) -> QTensor:
    return linear_backward_weight_s32(QTensor(err.m[:, rows], err.scale), x)


@register_gradient_rows("linear_backward_bias_s32")
def _linear_bias_rows(err: QTensor, x, rows, attrs) -> QTensor:
    return linear_backward_bias_s32(QTensor(err.m[:, rows], err.scale))


@register_kernel("relu_forward_s8")
def _relu_forward(step, io, env):
    io.write(step.outputs[0], relu_forward_s8(io.read(step.inputs[0])))


@register_kernel("relu_mask_u1")
def _relu_mask(step, io, env):
    y = io.read(step.inputs[0])
    io.write(step.outputs[0], QTensor(np.packbits((y.m > 0).ravel()), y.scale))


@register_kernel("relu_backward_s8")
def _relu_backward(step, io, env):
    err, src = io.read(step.inputs[0]), io.read(step.inputs[1])
    if step.attrs.get("mask"):
        positive = np.unpackbits(src.m)[:err.m.size].reshape(err.m.shape).astype(np.int8)
        src = QTensor(positive, src.scale)
    io.write(step.outputs[0], relu_backward_s8(err, src))


@register_kernel("reshape")
def _reshape(step, io, env):
    x = io.read(step.inputs[0])
    io.write(step.outputs[0], QTensor(x.m.reshape(io.shape(step.outputs[0])), x.scale))
