"""Executor kernels of the steps that belong to no layer type: int8 weight views, prediction and the
loss errors."""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor, Rounding, Scale, rescale
from ..ops import mse_error, predict_argmax, softmax_cross_entropy_error
from .registry import register_kernel


@register_kernel("weight_view_s8")
def _weight_view(step, io, env):
    """int8 view of int16 master weights: nearest rescale to 8 bits (``Parameter.forward_view``)."""
    w = io.read(step.inputs[0])
    q, s = rescale(w.m, w.scale, 8, env.mode)
    io.write(step.outputs[0], QTensor(q, s))


@register_kernel("predict_argmax")
def _predict(step, io, env):
    logits = io.read(step.inputs[0])
    io.write(step.outputs[0], QTensor(predict_argmax(logits.m), Scale(0)))


@register_kernel("softmax_cross_entropy_error")
def _cross_entropy(step, io, env):
    logits, labels = io.read(step.inputs[0]), io.read(step.inputs[1])
    rounding = Rounding(step.attrs.get("rounding", "nearest"))
    key = env.ctx.stream.key(step.attrs["site"]) if rounding is not Rounding.NEAREST else None
    err, loss = softmax_cross_entropy_error(logits, labels.m.astype(np.int64), env.mode, rounding, key)
    io.write(step.outputs[0], err)
    io.write(step.outputs[1], QTensor(np.array([loss.total], dtype=np.int64), loss.scale))


@register_kernel("mse_error")
def _mse(step, io, env):
    pred, target = io.read(step.inputs[0]), io.read(step.inputs[1])
    target = QTensor(target.m, Scale(step.attrs["target_exponent"]))
    err, loss = mse_error(pred, target, env.mode)
    io.write(step.outputs[0], err)
    io.write(step.outputs[1], QTensor(np.array([loss.total], dtype=np.int64), loss.scale))
