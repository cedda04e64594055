"""A tintin model -> a TFLite int8 flatbuffer, checked with TFLite Micro's interpreter and LiteRT.

Written with the schema's object API (``schema_py_generated.py`` shipped in the ``tflite-micro``
package) and the ``flatbuffers`` builder; no TensorFlow.

Layout and numbers:

* TFLite is channels-last: the input is ``(1, H, W, C)`` for images, ``(1, 1, L, C)`` for
  (C, L) series (1-D layers become 2-D ones of height 1), ``(1, features)`` for vectors; the
  output is ``(1, classes)`` int8 logits. Batch 1, as on the device.
* int8 everywhere, symmetric (zero point 0): the input at ``2**input_exponent``, weights at their
  tintin scale (the int8 view of int16 master weights), repeated per output channel for
  convolutions; int32 biases at ``input scale x weight scale`` (aligned as tintin's kernels do).
  Activation scales are fixed: those the simulator uses on a reference batch, as for QDQ ONNX.
* Linear -> FULLY_CONNECTED (after a flatten the weight columns are permuted from tintin's
  (C, H, W) order to TFLite's (H, W, C)); Conv -> PAD (when padded) + CONV_2D or
  DEPTHWISE_CONV_2D; ReLU -> RELU; pools -> MAX_POOL_2D / AVERAGE_POOL_2D; GlobalAvgPool -> MEAN
  over the spatial axes; Flatten -> RESHAPE; Residual -> its branches + ADD. ChannelScale has no
  TFLite form here (an error).
"""

from __future__ import annotations

import numpy as np

from ..nn import (AvgPool1d, AvgPool2d, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool1d, MaxPool2d,
                  ReLU, Residual, Sequential)
from ..numerics import QTensor, Scale
from ..ops.linear import align_bias
from .errors import InteropError, require


def _schema():
    require("flatbuffers", "flatbuffers", "writing TFLite files")
    return require("tflite_micro.tensorflow.lite.micro.python.schema_py_generated", "tflite-micro",
                   "writing TFLite files")


class _Writer:
    def __init__(self, model: Sequential, act_scales: dict[str, Scale] | None, float_model: bool = False):
        self.s = _schema()
        self.model, self.act, self.float = model, act_scales or {}, float_model
        self.mode = model.config.scale_mode
        self.tensors, self.buffers, self.ops, self.opcodes = [], [self.s.BufferT()], [], {}

    # -- tensors --------------------------------------------------------------------------------
    def tensor(self, name, shape, ttype, scale=None, data: np.ndarray | None = None, qdim: int = 0) -> int:
        s = self.s
        t = s.TensorT()
        t.name, t.shape, t.type = name, [int(v) for v in shape], ttype
        if scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(v) for v in np.atleast_1d(scale)]
            q.zeroPoint = [0] * len(q.scale)
            q.quantizedDimension = qdim
            t.quantization = q
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def act_tensor(self, name, shape, scale: Scale | None) -> int:
        if self.float:
            return self.tensor(name, shape, self.s.TensorType.FLOAT32)
        return self.tensor(name, shape, self.s.TensorType.INT8, scale.to_float())

    def weight_tensor(self, name, m: np.ndarray, w: QTensor, per_channel: int | None = None, qdim: int = 0) -> int:
        """int8 mantissas at the tintin scale, or (float model) their real values."""
        if self.float:
            return self.tensor(name, m.shape, self.s.TensorType.FLOAT32, None,
                               (m.astype(np.float64) * w.scale.to_float()).astype(np.float32))
        scale = w.scale.to_float() if per_channel is None else np.full(per_channel, w.scale.to_float())
        return self.tensor(name, m.shape, self.s.TensorType.INT8, scale, m.astype(np.int8), qdim)

    def bias_tensor(self, name, bias, in_scale: Scale, w: QTensor, channels: int, per_channel: bool) -> int:
        """int32 at ``in_scale * w.scale`` (aligned as tintin's kernels do), or (float) real values."""
        if self.float:
            b = bias.value.dequantize() if bias is not None else np.zeros(channels)
            return self.tensor(name, b.shape, self.s.TensorType.FLOAT32, None, b.astype(np.float32))
        acc = in_scale * w.scale
        b = (align_bias(bias.value, acc) if bias is not None else np.zeros(channels)).astype(np.int32)
        scale = np.full(channels, acc.to_float()) if per_channel else acc.to_float()
        return self.tensor(name, b.shape, self.s.TensorType.INT32, scale, b)

    def out_scale(self, name: str) -> Scale | None:
        return None if self.float else self.act[name]

    def op(self, code: str, inputs, outputs, options_type: str | None = None, options=None) -> None:
        s = self.s
        builtin = getattr(s.BuiltinOperator, code)
        if builtin not in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = builtin
            oc.deprecatedBuiltinCode = min(builtin, 127)
            oc.version = 1
            self.opcodes[builtin] = (len(self.opcodes), oc)
        o = s.OperatorT()
        o.opcodeIndex = self.opcodes[builtin][0]
        o.inputs, o.outputs = list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(s.BuiltinOptions, options_type)
            o.builtinOptions = options
        self.ops.append(o)

    # -- layers ---------------------------------------------------------------------------------
    def layers(self, layers, x: int, shape: tuple, scale: Scale):
        """``shape``: the tintin per-sample shape; the TFLite tensor is channels-last of it."""
        for layer in layers:
            x, shape, scale = self.layer(layer, x, shape, scale)
        return x, shape, scale

    @staticmethod
    def nhwc(shape) -> list[int]:
        if len(shape) == 3:
            return [1, shape[1], shape[2], shape[0]]
        if len(shape) == 2:
            return [1, 1, shape[1], shape[0]]
        return [1, *shape]

    def layer(self, layer, x, shape, scale):
        s = self.s
        name = layer.name
        out_shape = tuple(layer.output_shape(shape))
        if isinstance(layer, Linear):
            w = layer.weight.forward_view(self.mode)
            wm = w.m.astype(np.int8)
            if getattr(self, "_flat_from", None) is not None:  # columns (C, H, W) -> (H, W, C)
                c, *sp = self._flat_from
                idx = np.arange(wm.shape[1]).reshape([c, *sp]).transpose(list(range(1, len(sp) + 1)) + [0]).reshape(-1)
                wm = wm[:, idx]
                self._flat_from = None
            ins = [x, self.weight_tensor(f"{name}.weight", wm, w)]
            ins.append(self.bias_tensor(f"{name}.bias", layer.bias, scale, w, layer.out_features, False)
                       if layer.bias is not None else -1)
            out_scale = self.out_scale(name)
            y = self.act_tensor(name, [1, layer.out_features], out_scale)
            opt = s.FullyConnectedOptionsT()
            self.op("FULLY_CONNECTED", ins, [y], "FullyConnectedOptions", opt)
            return y, out_shape, out_scale
        if isinstance(layer, (Conv1d, Conv2d)):
            kh, kw = (1, layer.kernel_size[0]) if isinstance(layer, Conv1d) else layer.kernel_size
            sh, sw = (1, layer.stride[0]) if isinstance(layer, Conv1d) else layer.stride
            ph, pw = (0, layer.padding[0]) if isinstance(layer, Conv1d) else layer.padding
            in_t = self.nhwc(shape)
            if ph or pw:
                pads = np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], dtype=np.int32)
                pt = self.tensor(f"{name}.pads", pads.shape, s.TensorType.INT32, None, pads)
                padded = [1, in_t[1] + 2 * ph, in_t[2] + 2 * pw, in_t[3]]
                xp = self.act_tensor(f"{name}.padded", padded, scale)
                self.op("PAD", [x, pt], [xp], "PadOptions", s.PadOptionsT())
                x = xp
            w = layer.weight.forward_view(self.mode)
            wm = w.m.astype(np.int8).reshape(layer.out_channels, layer.in_channels // layer.groups, kh, kw)
            depthwise = layer.groups == layer.in_channels and layer.groups > 1
            if layer.groups > 1 and not depthwise:
                raise InteropError(f"{name}: grouped convolutions other than depthwise have no TFLite form")
            if depthwise:  # (Cout, 1, kh, kw) -> (1, kh, kw, Cout)
                wk, qdim = wm.transpose(1, 2, 3, 0), 3
            else:          # (Cout, Cin, kh, kw) -> (Cout, kh, kw, Cin)
                wk, qdim = wm.transpose(0, 2, 3, 1), 0
            wt = self.weight_tensor(f"{name}.weight", wk, w, layer.out_channels, qdim)
            bt = self.bias_tensor(f"{name}.bias", layer.bias, scale, w, layer.out_channels, True)
            out_scale = self.out_scale(name)
            y = self.act_tensor(name, self.nhwc(out_shape), out_scale)
            if depthwise:
                opt = s.DepthwiseConv2DOptionsT()
                opt.depthMultiplier = layer.out_channels // layer.in_channels
                code, otype = "DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions"
            else:
                opt = s.Conv2DOptionsT()
                code, otype = "CONV_2D", "Conv2DOptions"
            opt.padding, opt.strideH, opt.strideW = s.Padding.VALID, sh, sw
            opt.dilationHFactor = opt.dilationWFactor = 1
            self.op(code, [x, wt, bt], [y], otype, opt)
            return y, out_shape, out_scale
        if isinstance(layer, ReLU):
            y = self.act_tensor(name, self.nhwc(out_shape) if len(out_shape) > 1 else [1, *out_shape], scale)
            self.op("RELU", [x], [y])
            return y, out_shape, scale
        if isinstance(layer, (MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d)):
            one_d = isinstance(layer, (MaxPool1d, AvgPool1d))
            kh, kw = (1, layer.kernel_size[0]) if one_d else layer.kernel_size
            sh, sw = (1, layer.stride[0]) if one_d else layer.stride
            avg = isinstance(layer, (AvgPool1d, AvgPool2d))
            out_scale = self.out_scale(name) if avg else scale
            # TFLite Micro's int8 average pool needs equal input and output scales: pool at the
            # input scale, then requantise (int8 QUANTIZE) to the scale tintin's pool ends at
            requantise = avg and out_scale != scale
            y = self.act_tensor(f"{name}.pooled" if requantise else name, self.nhwc(out_shape),
                                scale if requantise else out_scale)
            opt = s.Pool2DOptionsT()
            opt.padding, opt.strideH, opt.strideW, opt.filterHeight, opt.filterWidth = s.Padding.VALID, sh, sw, kh, kw
            self.op("AVERAGE_POOL_2D" if avg else "MAX_POOL_2D", [x], [y], "Pool2DOptions", opt)
            if requantise:
                pooled, y = y, self.act_tensor(name, self.nhwc(out_shape), out_scale)
                self.op("QUANTIZE", [pooled], [y])
            return y, out_shape, out_scale
        if isinstance(layer, GlobalAvgPool):
            axes = np.array([1, 2], dtype=np.int32)
            at = self.tensor(f"{name}.axes", axes.shape, s.TensorType.INT32, None, axes)
            out_scale = self.out_scale(name)
            y = self.act_tensor(name, [1, out_shape[0]], out_scale)
            opt = s.ReducerOptionsT()
            opt.keepDims = False
            self.op("MEAN", [x, at], [y], "ReducerOptions", opt)
            return y, out_shape, out_scale
        if isinstance(layer, Flatten):
            if len(shape) > 1:
                self._flat_from = tuple(shape)
            new = np.array([1, out_shape[0]], dtype=np.int32)
            st = self.tensor(f"{name}.shape", new.shape, s.TensorType.INT32, None, new)
            y = self.act_tensor(name, [1, out_shape[0]], scale)
            opt = s.ReshapeOptionsT()
            opt.newShape = [1, out_shape[0]]
            self.op("RESHAPE", [x, st], [y], "ReshapeOptions", opt)
            return y, out_shape, scale
        if isinstance(layer, Residual):
            a, _, _ = self.layers(layer.body, x, shape, scale)
            b, _, _ = self.layers(layer.shortcut, x, shape, scale) if layer.shortcut else (x, shape, scale)
            out_scale = self.out_scale(name)
            y = self.act_tensor(name, self.nhwc(out_shape), out_scale)
            self.op("ADD", [a, b], [y], "AddOptions", s.AddOptionsT())
            return y, out_shape, out_scale
        raise InteropError(f"layer {name} ({layer.spec()['type']}) has no TFLite form")

    def build(self) -> bytes:
        import flatbuffers

        s = self.s
        self._flat_from = None
        x = self.act_tensor("input", self.nhwc(self.model.input_shape), Scale(self.model.input_exponent))
        y, _, _ = self.layers(self.model.layers, x, self.model.input_shape, Scale(self.model.input_exponent))
        sub = s.SubGraphT()
        sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = self.tensors, [x], [y], self.ops, "main"
        self.tensors[y].name = "logits"
        m = s.ModelT()
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = "serving_default", 0
        sig.inputs, sig.outputs = [s.TensorMapT()], [s.TensorMapT()]
        sig.inputs[0].name, sig.inputs[0].tensorIndex = "input", x
        sig.outputs[0].name, sig.outputs[0].tensorIndex = "logits", y
        m.signatureDefs = [sig]
        m.version = 3
        m.description = f"tintin {self.model.name}"
        m.operatorCodes = [oc for _, oc in sorted(self.opcodes.values(), key=lambda t: t[0])]
        m.subgraphs, m.buffers = [sub], self.buffers
        builder = flatbuffers.Builder(4096)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def to_tflite(model: Sequential, x_ref: np.ndarray | None = None, float_model: bool = False) -> bytes:
    """The TFLite int8 flatbuffer of ``model``; activation scales from ``x_ref`` (int8) as one batch.
    ``float_model=True``: a float32 file instead (dequantised parameters, float activations; the
    input takes real values), e.g. to hand to a TFLite quantiser."""
    from .onnx_export import activation_scales, refuse_row_scales

    refuse_row_scales(model, "TFLite")
    if float_model:
        return _Writer(model, None, True).build()
    if x_ref is None:
        raise InteropError("a TFLite int8 export needs reference data to fix the activation scales")
    return _Writer(model, activation_scales(model, x_ref)).build()


def tflite_input(model: Sequential, x: np.ndarray) -> np.ndarray:
    """tintin int8 samples ``(N, *input_shape)`` in the file's channels-last layout ``(N, ...)``."""
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(0, 2, 1)[:, None])
    return np.ascontiguousarray(x)


def run_tflm(data: bytes, x: np.ndarray) -> np.ndarray:
    """int8 outputs of TFLite Micro's own interpreter, one sample at a time."""
    runtime = require("tflite_micro.python.tflite_micro.runtime", "tflite-micro", "running TFLite Micro")
    try:
        interp = runtime.Interpreter.from_bytes(data)
    except Exception as exc:
        raise InteropError(f"TFLite Micro cannot load the file: {str(exc).splitlines()[0][:160]}") from None
    out = []
    for sample in x:
        interp.set_input(sample[None], 0)
        interp.invoke()
        out.append(np.array(interp.get_output(0)).reshape(-1))
    return np.stack(out)


def run_litert(data: bytes, x: np.ndarray, kernels: str = "optimized") -> np.ndarray:
    """int8 outputs of LiteRT (``ai-edge-litert``), one sample at a time. ``kernels``:
    ``"optimized"`` (LiteRT's built-in CPU kernels, no delegate: what a deployment runs) or
    ``"reference"`` (its reference kernels, the arithmetic TFLite Micro's kernels implement). The
    optimized kernels may round a requantisation differently on some CPUs (seen: 4 of 500 int8
    outputs one step apart on an AVX-512 VNNI machine); the reference kernels give TFLite Micro's
    outputs bit for bit (tested)."""
    if kernels not in ("optimized", "reference"):
        raise InteropError(f"LiteRT kernels must be optimized or reference, got {kernels!r}")
    mod = require("ai_edge_litert.interpreter", "ai-edge-litert", "running LiteRT")
    resolver = getattr(getattr(mod, "OpResolverType", None),
                       "BUILTIN_WITHOUT_DEFAULT_DELEGATES" if kernels == "optimized" else "BUILTIN_REF", None)
    if resolver is None and kernels == "reference":
        raise InteropError("this ai-edge-litert has no reference kernels (OpResolverType.BUILTIN_REF)")
    try:
        extra = {"experimental_op_resolver_type": resolver} if resolver is not None else {}
        interp = mod.Interpreter(model_content=data, num_threads=1, **extra)
        interp.allocate_tensors()
    except Exception as exc:
        raise InteropError(f"LiteRT cannot load the file: {str(exc).splitlines()[0][:160]}") from None
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    out = []
    for sample in x:
        interp.set_tensor(i, sample[None])
        interp.invoke()
        out.append(interp.get_tensor(o).reshape(-1).copy())
    return np.stack(out)


def verify_tflite(model: Sequential, data: bytes, x: np.ndarray, runtime: str = "tflite-micro") -> dict:
    """Run the file on ``x`` (tintin int8 samples) in TFLite Micro or LiteRT beside the simulator
    (``x`` as one batch): argmax agreement and the largest output difference."""
    from .onnx_export import _output_step, simulator_logits

    runner = {"tflite-micro": run_tflm, "litert": run_litert}[runtime]
    got_q = runner(data, tflite_input(model, x)).astype(np.float64)
    out_scale = _last_scale(data)
    got = got_q * out_scale
    sim = simulator_logits(model, x)
    step = _output_step(model, x, None)
    diff = np.abs(got - sim)
    return {"runtime": runtime, "samples": int(len(x)),
            "argmax_agreement": float(np.mean(np.argmax(got_q, 1) == np.argmax(sim, 1))) if len(x) else None,
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "max_abs_diff_steps": float(diff.max() / step) if diff.size else 0.0, "output_step": step}


def _last_scale(data: bytes) -> float:
    sub = _schema().ModelT.InitFromPackedBuf(bytearray(data), 0).subgraphs[0]
    return float(sub.tensors[sub.outputs[0]].quantization.scale[0])
