"""TFLite int8 files -> :class:`FloatGraph`, read without TensorFlow.

The flatbuffer is parsed with the schema's object API shipped in ``tflite-micro``
(``schema_py_generated.py``). Every int8 weight is dequantised with its own (per-channel) scales
and zero points, ``w = (q - zero_point[c]) * scale[c]``, biases ``b = q * scale[c]``; the
calibration rule then gives them tintin's symmetric per-tensor scales, and the import report
states the cost per tensor (``weight_sqnr_db`` against TFLite's dequantised weights,
``activation_sqnr_db`` against TFLite's own int8 activations, dequantised with their asymmetric
zero points, from LiteRT with all tensors preserved).

Layout: TFLite is channels-last; a ``(1, H, W, C)`` input becomes tintin's ``(C, H, W)``, conv
weights ``(Cout, kH, kW, Cin)`` become ``(Cout, Cin, kH, kW)``, depthwise ``(1, kH, kW, C)`` become
``(C, 1, kH, kW)``, and a fully connected layer after a flatten of an ``(H, W, C)`` tensor gets its
columns reordered to tintin's ``(C, H, W)``.

Operators: CONV_2D, DEPTHWISE_CONV_2D (``PAD`` before them or ``SAME`` padding that is symmetric),
FULLY_CONNECTED, RELU (also fused), MAX_POOL_2D / AVERAGE_POOL_2D (``VALID``), MEAN over the
spatial axes, RESHAPE to ``(1, features)``, ADD of two computed tensors (a residual block),
a ``(1, 1, L, C)`` input whose convolutions and pools all have height 1 becomes a 1-D model
(``Conv1d``, ``MaxPool1d``, ``AvgPool1d``, samples ``(C, L)``),
QUANTIZE on the input and DEQUANTIZE / SOFTMAX on the output (dropped), QUANTIZE between
layers (an int8 requantisation: tintin rescales at run time). Anything else raises
:class:`UnsupportedOpError` naming the operator and its output tensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import InteropError, UnsupportedOpError, require
from .graph import FloatGraph, FloatLayer
from .onnx_reader import _Reader


def _schema():
    require("flatbuffers", "flatbuffers", "reading TFLite files")
    return require("tflite_micro.tensorflow.lite.micro.python.schema_py_generated", "tflite-micro",
                   "reading TFLite files")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class _Node:
    op_type: str
    name: str
    input: list[str]
    output: list[str]
    options: object
    index: int


class _TFLiteReader(_Reader):
    """The ONNX reader's chain / residual walk over TFLite operators."""

    def __init__(self, data: bytes):
        s = _schema()
        self.s = s
        try:
            m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
            sub = m.subgraphs[0]
        except Exception as exc:
            raise InteropError(f"not a readable TFLite file ({type(exc).__name__})") from None
        if len(m.subgraphs) != 1:
            raise InteropError(f"the TFLite file has {len(m.subgraphs)} subgraphs (one is supported)")
        self.model, self.sub = m, sub
        names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        self.tname = [f"t{i}" for i in range(len(sub.tensors))]
        self.const: dict[str, object] = {}
        for i, t in enumerate(sub.tensors):
            buf = m.buffers[t.buffer] if t.buffer < len(m.buffers) else None
            if buf is not None and buf.data is not None and len(buf.data):
                self.const[self.tname[i]] = i
        self.nodes = []
        for k, op in enumerate(sub.operators or []):
            oc = m.operatorCodes[op.opcodeIndex]
            code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
            outs = [self.tname[i] for i in op.outputs]
            label = _text(sub.tensors[op.outputs[0]].name) if op.outputs is not None and len(op.outputs) else f"op{k}"
            self.nodes.append(_Node(names.get(code, f"builtin {code}"), label,
                                    [self.tname[i] if i >= 0 else "" for i in op.inputs], outs, op.builtinOptions, k))
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.const:
                    self.consumers.setdefault(name, []).append(node)
        if len(sub.inputs) != 1 or len(sub.outputs) != 1:
            raise InteropError("the TFLite model must have exactly one input and one output")
        self.input_name = self.tname[sub.inputs[0]]
        self.output_name = self.tname[sub.outputs[0]]
        self.dropped = []
        self.flat_from = None
        self.pending_pad = None
        self.one_d = False  # set by read(): a height-1 2-D graph read as a 1-D model
        #: flattened tensors in TFLite's (H, W, C) order: tensor name -> (H, W, C)
        self.hwc_flat: dict[str, tuple[int, ...]] = {}

    # -- tensors --------------------------------------------------------------------------------
    def tensor(self, name: str):
        return self.sub.tensors[int(name[1:])]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.tensor(name).shape)

    def value(self, name: str, node) -> np.ndarray:
        """The real values of a constant tensor (dequantised with its per-channel parameters)."""
        if name not in self.const:
            raise UnsupportedOpError(node.op_type, node.name, f"input {_text(self.tensor(name).name)!r} must be constant")
        t = self.tensor(name)
        raw = np.asarray(self.model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
        dtype = {self.s.TensorType.INT8: np.int8, self.s.TensorType.INT32: np.int32,
                 self.s.TensorType.FLOAT32: np.float32, self.s.TensorType.INT64: np.int64,
                 self.s.TensorType.UINT8: np.uint8}.get(t.type)
        if dtype is None:
            raise UnsupportedOpError(node.op_type, node.name, f"constant of TFLite type {t.type}")
        arr = np.frombuffer(raw, dtype=dtype).reshape(self.shape(name)).astype(np.float64)
        q = t.quantization
        if t.type in (self.s.TensorType.INT8, self.s.TensorType.UINT8, self.s.TensorType.INT32) \
                and q is not None and q.scale is not None and len(q.scale):
            scale = np.asarray(q.scale, dtype=np.float64)
            zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else np.zeros(len(scale)), dtype=np.float64)
            if len(scale) > 1:
                shape = [1] * arr.ndim
                shape[int(q.quantizedDimension)] = len(scale)
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            arr = (arr - zero) * scale
        return arr

    def dynamic_inputs(self, node) -> list[str]:
        return [n for n in node.input if n and n not in self.const]

    def is_merge(self, node) -> bool:
        return node.op_type == "ADD" and len(self.dynamic_inputs(node)) == 2

    def name_of(self, node) -> str:
        return node.name

    # -- the walk -------------------------------------------------------------------------------
    def read(self) -> FloatGraph:
        start = self.input_name
        cons = self.consumers.get(start, [])
        if len(cons) == 1 and cons[0].op_type == "QUANTIZE":  # float interface: real values in
            self.dropped.append(cons[0].name)
            start = cons[0].output[0]
        layers, tensor, _ = self.chain(start, inside_branch=False)
        shape = self.shape(self.input_name)
        if len(shape) == 4 and shape[1] == 1 and _height_one(layers):
            _to_1d(layers)  # a 1-D model stored as height-1 2-D convolutions (how TFLite holds Conv1d)
            self.one_d = True
            sample = (shape[3], shape[2])
        elif len(shape) == 4:
            sample = (shape[3], shape[1], shape[2])
        elif len(shape) == 2:
            sample = (shape[1],)
        else:
            raise InteropError(f"unsupported TFLite input shape {shape} (images (1, H, W, C) or vectors (1, N))")
        return FloatGraph(layers, self.input_name, sample, self.output_name, "tflite", self.dropped)

    def residual(self, tensor, cons, layers):
        out = super().residual(tensor, cons, layers)
        merge = [n for n in self.nodes if n.output and n.output[0] == out][0]
        return self._fused(merge, layers, out)

    def _fused(self, node, layers, out: str) -> str:
        act = getattr(node.options, "fusedActivationFunction", 0) or 0
        if act == self.s.ActivationFunctionType.RELU:
            layers.append(FloatLayer("ReLU", node.name, out, op=f"{node.op_type}(fused RELU)"))
        elif act != self.s.ActivationFunctionType.NONE:
            raise UnsupportedOpError(node.op_type, node.name, f"fused activation {act} (only RELU)")
        return out

    def _padding(self, node, k: tuple[int, int], stride: tuple[int, int], in_hw: tuple[int, int]) -> list[int]:
        opts = node.options
        pads = [0, 0]
        if self.pending_pad is not None:
            pads = list(self.pending_pad)
            self.pending_pad = None
        if opts.padding == self.s.Padding.SAME:
            same = []
            for size, kk, ss in zip(in_hw, k, stride):
                total = max((-(-size // ss) - 1) * ss + kk - size, 0)
                if total % 2:
                    raise UnsupportedOpError(node.op_type, node.name, "SAME padding that is not symmetric")
                same.append(total // 2)
            pads = [p + q for p, q in zip(pads, same)]
        return pads

    def convert(self, node, layers) -> str:
        op, name, out = node.op_type, node.name, node.output[0]
        if len(self.dynamic_inputs(node)) != 1:
            raise UnsupportedOpError(op, name, "expects exactly one computed input")
        x = self.dynamic_inputs(node)[0]
        if op == "PAD":
            p = self.value(node.input[1], node).astype(np.int64)
            if p.shape != (4, 2) or p[0].any() or p[3].any() or p[1, 0] != p[1, 1] or p[2, 0] != p[2, 1]:
                raise UnsupportedOpError(op, name, f"only symmetric spatial padding, got {p.tolist()}")
            nxt = self.sole_consumer(out)
            if nxt is None or nxt.op_type not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                raise UnsupportedOpError(op, name, "padding is supported only before a convolution")
            self.pending_pad = (int(p[1, 0]), int(p[2, 0]))
            return out
        if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = self.value(node.input[1], node)
            opts = node.options
            if (getattr(opts, "dilationHFactor", 1) or 1) != 1 or (getattr(opts, "dilationWFactor", 1) or 1) != 1:
                raise UnsupportedOpError(op, name, "dilation")
            in_shape = self.shape(x)
            stride = (int(opts.strideH), int(opts.strideW))
            if op == "CONV_2D":
                weight, groups = w.transpose(0, 3, 1, 2), 1
                if weight.shape[1] != in_shape[3]:
                    raise UnsupportedOpError(op, name, "grouped convolution")
            else:
                weight, groups = w.transpose(3, 0, 1, 2), in_shape[3]
            k = tuple(weight.shape[2:])
            pads = self._padding(node, k, stride, (in_shape[1], in_shape[2]))
            bias = self.value(node.input[2], node).reshape(-1) if len(node.input) > 2 and node.input[2] else None
            layers.append(FloatLayer("Conv", name, out, weight, bias,
                                     {"stride": list(stride), "padding": pads, "groups": groups, "kernel": list(k)},
                                     op=op))
            return self._fused(node, layers, out)
        if self.pending_pad is not None:
            raise UnsupportedOpError(op, name, "padding is supported only before a convolution")
        if op == "FULLY_CONNECTED":
            w = self.value(node.input[1], node)
            if self.flat_from is not None:  # columns in TFLite's (H, W, C) order -> tintin's (C, H, W)
                h, wd, c = self.flat_from
                idx = np.arange(w.shape[1]).reshape(h, wd, c).transpose(2, 0, 1).reshape(-1)
                w = w[:, idx]
                self.flat_from = None
            bias = self.value(node.input[2], node).reshape(-1) if len(node.input) > 2 and node.input[2] else None
            layers.append(FloatLayer("Linear", name, out, w, bias, op=op))
            return self._fused(node, layers, out)
        if op == "RELU":
            layers.append(FloatLayer("ReLU", name, out, op=op))
            return out
        if op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = node.options
            if o.padding != self.s.Padding.VALID:
                raise UnsupportedOpError(op, name, "SAME padding in pooling")
            kind = "MaxPool" if op == "MAX_POOL_2D" else "AvgPool"
            layers.append(FloatLayer(kind, name, out, attrs={"kernel": [int(o.filterHeight), int(o.filterWidth)],
                                                            "stride": [int(o.strideH), int(o.strideW)]}, op=op))
            return self._fused(node, layers, out)
        if op == "MEAN":
            axes = sorted(int(a) for a in self.value(node.input[1], node).reshape(-1))
            if axes != [1, 2]:
                raise UnsupportedOpError(op, name, f"mean over axes {axes} (only the spatial axes [1, 2])")
            layers.append(FloatLayer("GlobalAvgPool", name, out, op=op))
            return out
        if op == "RESHAPE":
            shp = self.shape(out)
            if len(shp) != 2:
                raise UnsupportedOpError(op, name, f"reshape to {shp} (only a flatten to (1, features))")
            src = self.shape(x)
            if layers and layers[-1].kind == "GlobalAvgPool":
                layers[-1].tensor = out
                return out
            if len(src) == 4:
                self.flat_from = src[1:]
                self.hwc_flat[out] = src[1:]
            layers.append(FloatLayer("Flatten", name, out, op=op))
            return out
        if op == "QUANTIZE" and layers:  # int8 -> int8 requantisation: tintin rescales at run time
            layers[-1].tensor = out
            return out
        if op in ("DEQUANTIZE", "SOFTMAX") and out == self.output_name:
            self.dropped.append(name)
            if layers:
                layers[-1].tensor = x if op == "SOFTMAX" else layers[-1].tensor
            return out
        raise UnsupportedOpError(op, name)


def _spatial(layers):
    for layer in layers:
        if layer.kind in ("Conv", "MaxPool", "AvgPool"):
            yield layer
        yield from _spatial(layer.body)
        yield from _spatial(layer.shortcut)


def _height_one(layers) -> bool:
    """Every convolution and pool works along the width only (kernel, stride and padding of height 1/1/0)."""
    return all(layer.attrs["kernel"][0] == 1 and layer.attrs["stride"][0] == 1
               and (layer.kind != "Conv" or layer.attrs["padding"][0] == 0) for layer in _spatial(layers))


def _to_1d(layers) -> None:
    """Height-1 2-D layers -> 1-D ones: (Cout, Cin/g, 1, k) weights -> (Cout, Cin/g, k)."""
    for layer in _spatial(layers):
        layer.attrs["kernel"] = layer.attrs["kernel"][1:]
        layer.attrs["stride"] = layer.attrs["stride"][1:]
        if layer.kind == "Conv":
            layer.attrs["padding"] = layer.attrs["padding"][1:]
            layer.weight = layer.weight[:, :, 0, :]


class TFLiteOracle:
    """The source TFLite int8 model in LiteRT (all tensors preserved) or, without LiteRT, in TFLite
    Micro (outputs only): inputs quantised with the file's own input scale and zero point."""

    def __init__(self, data: bytes, reader: _TFLiteReader):
        self.data, self.reader = data, reader
        t = reader.tensor(reader.input_name)
        q = t.quantization
        self.in_float = t.type == reader.s.TensorType.FLOAT32
        self.in_scale = float(q.scale[0]) if not self.in_float else 1.0
        self.in_zero = int(q.zeroPoint[0]) if not self.in_float else 0

    def _inputs(self, x_real: np.ndarray) -> np.ndarray:
        x = np.asarray(x_real, dtype=np.float64)
        if x.ndim == 3:  # a 1-D model: tintin (C, L) -> TFLite (1, L, C)
            x = x.transpose(0, 2, 1)[:, None]
        elif x.ndim == 4:  # images: (C, H, W) -> (H, W, C)
            x = x.transpose(0, 2, 3, 1)
        else:
            x = x.reshape(len(x), -1)
        if self.in_float:
            return x.astype(np.float32)
        return np.clip(np.floor(x / self.in_scale + 0.5) + self.in_zero, -128, 127).astype(np.int8)

    def _dequant(self, index: int, v: np.ndarray) -> np.ndarray:
        t = self.reader.sub.tensors[index]
        q = t.quantization
        v = v.astype(np.float64)
        if t.type in (self.reader.s.TensorType.INT8, self.reader.s.TensorType.UINT8) and q is not None \
                and q.scale is not None and len(q.scale):
            v = (v - float(q.zeroPoint[0])) * float(q.scale[0])
        hwc = self.reader.hwc_flat.get(self.reader.tname[index])
        if hwc is not None:  # a flatten of (H, W, C) -> tintin's (C, H, W) order
            return v.reshape((len(v),) + tuple(hwc)).transpose(0, 3, 1, 2).reshape(len(v), -1)
        if v.ndim == 4:  # tintin's channels-first layout (a 1-D model: (C, L))
            v = v.transpose(0, 3, 1, 2)
            return v[:, :, 0, :] if self.reader.one_d else v
        return v

    def run(self, x_real: np.ndarray, tensors: list[str]) -> dict[str, np.ndarray]:
        idx = [int(n[1:]) for n in tensors]
        xs = self._inputs(x_real)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            from .tflite_export import run_tflm

            out = self.reader.output_name
            return {out: self._dequant(int(out[1:]), run_tflm(self.data, xs)
                                       .reshape((len(xs),) + self.reader.shape(out)[1:]))}
        import warnings

        with warnings.catch_warnings():  # preserving all tensors is what we want here
            warnings.simplefilter("ignore")
            interp = Interpreter(model_content=self.data, num_threads=1, experimental_preserve_all_tensors=True)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]["index"]
        rows: dict[int, list] = {i: [] for i in idx}
        for sample in xs:
            interp.set_tensor(inp, sample[None])
            interp.invoke()
            for i in idx:
                rows[i].append(interp.get_tensor(i).copy())
        return {n: self._dequant(i, np.concatenate(rows[i])) for n, i in zip(tensors, idx)}


def read_tflite(source) -> tuple[FloatGraph, TFLiteOracle]:
    """Read a TFLite file (path or bytes) into a :class:`FloatGraph` and its runtime oracle."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise InteropError(f"model file not found: {path}")
        with open(path, "rb") as fh:
            data = fh.read()
    if data[4:8] != b"TFL3":
        raise InteropError("not a TFLite file (no TFL3 identifier)")
    reader = _TFLiteReader(data)
    graph = reader.read()
    return graph, TFLiteOracle(data, reader)
