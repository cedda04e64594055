"""A tintin model -> ONNX: float (dequantised) or QDQ int8, and its check with onnxruntime.

The default form, the exact integer graph, is built by :mod:`tintin.interop.onnx_exact`;
:func:`to_onnx` chooses between the three.

* **Float**: every parameter dequantised (``m * scale`` in float32: exact for int8 / int16
  mantissas and tintin's scales), activations in float. Input: real values ``x * 2**input_exponent``,
  shape ``(batch, *input_shape)``; output: the logits (no softmax), ``(batch, classes)``.
* **QDQ int8**: weights stored as int8 initialisers (int16 master weights: the int8 view the kernels
  use) with ``DequantizeLinear`` (per-tensor scale, zero point 0), biases as int32 at ``2**-20``;
  a ``QuantizeLinear``/``DequantizeLinear`` pair (symmetric, zero point 0) on the input
  (scale ``2**input_exponent``) and after every layer that rescales (linear, conv, channel scale,
  average pools, residual add). tintin picks activation scales at run time per batch; a QDQ graph
  needs them fixed, so they are the scales the simulator used on a reference batch (``x_ref``,
  e.g. the calibration batch). ``Relu``, max pool and flatten keep their input's scale, as in tintin.

Operator mapping: Linear -> Gemm (``transB=1``), Conv1d/Conv2d -> Conv, ReLU -> Relu, MaxPool /
AvgPool -> MaxPool / AveragePool, GlobalAvgPool -> GlobalAveragePool + Flatten, Flatten ->
Flatten, ChannelScale -> Mul + Add, Residual -> the two branches + Add. Opset 17.
"""

from __future__ import annotations

import numpy as np

from ..nn import (AvgPool1d, AvgPool2d, ChannelScale, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool1d,
                  MaxPool2d, ReLU, Residual, Sequential)
from ..numerics import QTensor, Scale
from ..ops.linear import align_bias
from .errors import InteropError, require

OPSET = 17
#: layers whose output scale differs from their input's (they get a Q/DQ pair in a QDQ graph)
RESCALING = (Linear, Conv1d, Conv2d, ChannelScale, AvgPool1d, AvgPool2d, GlobalAvgPool, Residual)


class _Builder:
    def __init__(self, model: Sequential, qdq: bool, act_scales: dict[str, Scale] | None):
        self.onnx = require("onnx", "onnx", "writing ONNX models")
        self.model, self.qdq, self.act_scales = model, qdq, act_scales or {}
        self.nodes, self.inits = [], []
        self.mode = model.config.scale_mode
        self.n = 0
        #: QDQ: the static scale of the tensor being built on (input scale of the next layer)
        self.scale = Scale(model.input_exponent)

    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        out = self.fresh(name)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def qdq_pair(self, x: str, scale: float, name: str) -> str:
        s = self.const(f"{name}.act_scale", np.array(scale, dtype=np.float32))
        z = self.const(f"{name}.act_zero", np.array(0, dtype=np.int8))
        q = self.node("QuantizeLinear", [x, s, z], f"{name}.quantize")
        return self.node("DequantizeLinear", [q, s, z], f"{name}.dequantize")

    def param(self, p, name: str, weight=None) -> str:
        """A parameter as a float tensor (float graph) or int + DequantizeLinear (QDQ graph). In a
        QDQ graph a bias is stored as tintin's forward pass uses it: aligned to the accumulator
        scale ``input scale * weight scale`` (the ONNX QDQ convention too)."""
        value = p.forward_view(self.mode) if p.kind == "weight" else p.value
        if not self.qdq:
            return self.const(name, value.dequantize().astype(np.float32))
        if p.kind == "bias":
            acc_scale = self.scale * weight.forward_view(self.mode).scale
            value = QTensor(align_bias(value, acc_scale).astype(np.int32), acc_scale)
        m = value.m.astype(np.int8 if p.kind == "weight" else np.int32)
        q = self.const(f"{name}.q", m)
        s = self.const(f"{name}.scale", np.array(value.scale.to_float(), dtype=np.float32))
        z = self.const(f"{name}.zero", np.zeros((), dtype=m.dtype))
        return self.node("DequantizeLinear", [q, s, z], f"{name}.dequantize")

    def layers(self, layers, x: str) -> str:
        for layer in layers:
            x = self.layer(layer, x)
            if self.qdq and isinstance(layer, RESCALING):
                if layer.name not in self.act_scales:
                    raise InteropError(f"no activation scale for layer {layer.name} (give reference data)")
                self.scale = self.act_scales[layer.name]
                x = self.qdq_pair(x, self.scale.to_float(), layer.name)
        return x

    def layer(self, layer, x: str) -> str:
        name = layer.name
        if isinstance(layer, Linear):
            ins = [x, self.param(layer.weight, f"{name}.weight")]
            if layer.bias is not None:
                ins.append(self.param(layer.bias, f"{name}.bias", layer.weight))
            return self.node("Gemm", ins, name, transB=1)
        if isinstance(layer, (Conv1d, Conv2d)):
            ins = [x, self.param(layer.weight, f"{name}.weight")]
            if layer.bias is not None:
                ins.append(self.param(layer.bias, f"{name}.bias", layer.weight))
            return self.node("Conv", ins, name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                             pads=list(layer.padding) * 2, group=layer.groups)
        if isinstance(layer, ReLU):
            return self.node("Relu", [x], name)
        if isinstance(layer, (MaxPool1d, MaxPool2d)):
            return self.node("MaxPool", [x], name, kernel_shape=list(layer.kernel_size), strides=list(layer.stride))
        if isinstance(layer, (AvgPool1d, AvgPool2d)):
            return self.node("AveragePool", [x], name, kernel_shape=list(layer.kernel_size),
                             strides=list(layer.stride))
        if isinstance(layer, GlobalAvgPool):
            return self.node("Flatten", [self.node("GlobalAveragePool", [x], name)], f"{name}.flatten", axis=1)
        if isinstance(layer, Flatten):
            return self.node("Flatten", [x], name, axis=1)
        if isinstance(layer, ChannelScale):
            dims = len(self.shape_of(layer)) - 1
            shape = (-1,) + (1,) * dims
            g = self.param(layer.weight, f"{name}.weight")
            gs = self.node("Reshape", [g, self.const(f"{name}.shape", np.array(shape, dtype=np.int64))],
                           f"{name}.weight_shape")
            y = self.node("Mul", [x, gs], name)
            if layer.bias is not None:
                b = self.param(layer.bias, f"{name}.bias", layer.weight)
                bs = self.node("Reshape", [b, f"{name}.shape"], f"{name}.bias_shape")
                y = self.node("Add", [y, bs], f"{name}.add")
            return y
        if isinstance(layer, Residual):
            start = self.scale
            body = self.layers(layer.body, x)
            self.scale = start
            short = self.layers(layer.shortcut, x) if layer.shortcut else x
            return self.node("Add", [body, short], name)
        raise InteropError(f"layer {name} ({layer.spec()['type']}) has no ONNX form")

    def shape_of(self, layer) -> tuple[int, ...]:
        """Per-sample input shape of a top-level or residual-inner layer."""
        def find(layers, shape):
            for lay in layers:
                if lay is layer:
                    return shape
                if isinstance(lay, Residual):
                    got = find(lay.body, shape) or find(lay.shortcut, shape)
                    if got:
                        return got
                shape = lay.output_shape(shape)
            return None
        return find(self.model.layers, self.model.input_shape)

    def build(self):
        onnx = self.onnx
        x = "input"
        if self.qdq:
            x = self.qdq_pair(x, 2.0**self.model.input_exponent, "input")
        y = self.layers(self.model.layers, x)
        y = self.node("Identity", [y], "logits")
        self.nodes[-1].output[0] = "logits"
        inp = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", *self.model.input_shape])
        out = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", *self.model.output_shape_])
        graph = onnx.helper.make_graph(self.nodes, self.model.name, [inp], [out], self.inits)
        proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                       producer_name="tintin")
        proto.ir_version = min(proto.ir_version, 9)
        onnx.checker.check_model(proto)
        return proto


def activation_scales(model: Sequential, x_ref: np.ndarray) -> dict[str, Scale]:
    """The scale of every layer's output when the simulator runs ``x_ref`` (int8) as one batch."""
    from .oracle import trace

    return {name: q.scale for name, q in trace(model, x_ref).items()}


#: the ONNX forms of a model: ``exact`` (the simulator's integers, default), ``float`` (dequantised
#: parameters, float activations), ``qdq`` (int8 QDQ with fixed activation scales)
FORMS = ("exact", "float", "qdq")


def refuse_row_scales(model: Sequential, what: str) -> None:
    """Exports write one scale per weight tensor: a model with per-row weight scales is refused."""
    rowed = [p.name for p in model.parameters() if getattr(p, "row_exp", None) is not None]
    if rowed:
        raise InteropError(f"{rowed[0]}: {what} export of models with per-row weight scales is not supported yet")


def to_onnx(model: Sequential, qdq: bool = False, x_ref: np.ndarray | None = None, form: str | None = None):
    """The ONNX ``ModelProto`` of ``model`` in ``form`` (default ``"exact"``; ``qdq=True`` is
    ``form="qdq"``): exact integer graph (:mod:`tintin.interop.onnx_exact`), dequantised float, or
    QDQ int8 with activation scales from ``x_ref``."""
    refuse_row_scales(model, "ONNX")
    form = "qdq" if qdq and form is None else (form or "exact")
    if form not in FORMS:
        raise InteropError(f"unknown ONNX form {form!r} (forms: {', '.join(FORMS)})")
    if form == "exact":
        from .onnx_exact import to_exact_onnx

        return to_exact_onnx(model)
    scales = None
    if form == "qdq":
        if x_ref is None:
            raise InteropError("a QDQ export needs reference data to fix the activation scales")
        scales = activation_scales(model, x_ref)
    return _Builder(model, form == "qdq", scales).build()


def simulator_logits(model: Sequential, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Dequantised output of the simulator (``batch_size=None``: ``x`` as one batch)."""
    from ..nn import Context
    from ..numerics import QTensor

    ctx = Context(mode=model.config.scale_mode, training=False)
    step = batch_size or max(len(x), 1)
    outs = [model.forward(QTensor(np.ascontiguousarray(x[i:i + step]), Scale(model.input_exponent)), ctx).dequantize()
            for i in range(0, len(x), step)]
    return np.concatenate(outs) if outs else np.zeros((0,) + model.output_shape_)


def verify_onnx(model: Sequential, proto, x: np.ndarray, batch_size: int | None = None,
                qdq_fusion: bool = False) -> dict:
    """Run the ONNX model with onnxruntime on ``x`` (int8 mantissas, fed as real values) beside the
    simulator (``batch_size=None``: ``x`` as one batch): argmax agreement and the largest output
    difference, also in output steps (the simulator's output scale). onnxruntime's QDQ fusion is
    off unless ``qdq_fusion`` (see :func:`tintin.interop.oracle.ort_session`)."""
    from .oracle import ort_session, run_session

    sim = simulator_logits(model, x, batch_size)
    real = x.astype(np.float32) * np.float32(2.0**model.input_exponent)
    got = run_session(ort_session(proto.SerializeToString(), qdq_fusion), real)[0]
    step = _output_step(model, x, batch_size)
    diff = np.abs(got.astype(np.float64) - sim)
    differ = np.argmax(got, 1) != np.argmax(sim, 1)
    # how close the simulator itself was to a tie where the two disagree (its top-1 minus the
    # runtime's choice, in output steps)
    margin = (sim.max(1) - sim[np.arange(len(sim)), np.argmax(got, 1)])[differ] / step if len(x) else np.zeros(0)
    return {"samples": int(len(x)),
            "argmax_agreement": float(np.mean(~differ)) if len(x) else None,
            "bit_exact": bool(np.array_equal(got, sim.astype(np.float32))),
            "disagreements": int(differ.sum()),
            "max_disagreement_margin_steps": float(margin.max()) if margin.size else 0.0,
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "max_abs_diff_steps": float(diff.max() / step) if diff.size else 0.0,
            "output_step": step}


def _output_step(model: Sequential, x: np.ndarray, batch_size: int | None) -> float:
    from ..nn import Context
    from ..numerics import QTensor

    ctx = Context(mode=model.config.scale_mode, training=False)
    step = batch_size or max(len(x), 1)
    return model.forward(QTensor(np.ascontiguousarray(x[:step]), Scale(model.input_exponent)), ctx).scale.to_float()
