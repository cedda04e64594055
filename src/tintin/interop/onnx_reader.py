"""ONNX float graph -> :class:`FloatGraph`.

Supported operators (opset 9 and later):

* ``Gemm`` (``transA = 0``; ``alpha``, ``beta`` and ``transB`` folded), ``MatMul`` with a constant
  right-hand side, optionally followed by ``Add`` of a constant vector -> ``Linear``;
* ``Conv`` 1-D / 2-D with groups (depthwise included), symmetric explicit padding, no dilation
  -> ``Conv``;
* ``BatchNormalization`` (inference form) folded into the ``Conv`` / ``Linear`` before it, or a
  ``ChannelScale`` when nothing precedes it;
* ``Relu``; ``MaxPool`` and ``AveragePool`` without padding or ``ceil_mode``;
  ``GlobalAveragePool`` (and ``ReduceMean`` over all spatial axes);
* ``Flatten`` (``axis = 1``) and ``Reshape`` to ``(batch, -1)``; ``Squeeze`` / ``Flatten`` right
  after a global pool are no-ops;
* ``Add`` of two computed tensors: a residual block (one branch is the body, the other the
  shortcut: identity or its own layers);
* ``Softmax`` / ``LogSoftmax`` producing the graph output: dropped (tintin trains on logits);
  ``Dropout`` and ``Identity``: dropped.

Anything else raises :class:`UnsupportedOpError` naming the operator and its node.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import InteropError, UnsupportedOpError, require
from .graph import FloatGraph, FloatLayer


def _onnx():
    return require("onnx", "onnx", "reading ONNX models")


def load_onnx(source) -> "object":
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto (checked)."""
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        try:
            if isinstance(source, (bytes, bytearray)):
                model = onnx.load_from_string(bytes(source))
            else:
                path = os.fspath(source)
                if not os.path.isfile(path):
                    raise InteropError(f"model file not found: {path}")
                model = onnx.load(path)
        except InteropError:
            raise
        except Exception as exc:  # protobuf DecodeError and friends: a corrupt file
            raise InteropError(f"not a readable ONNX model ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:100] if str(exc) else 'corrupt'})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise InteropError(f"invalid ONNX model: {str(exc).splitlines()[0][:160]}") from None
    return model


def _attrs(node) -> dict:
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _as_text(v):
    return v.decode() if isinstance(v, bytes) else v


class _Reader:
    def __init__(self, model):
        onnx = _onnx()
        self.onnx = onnx
        graph = model.graph
        self.nodes = list(graph.node)
        self.const: dict[str, np.ndarray] = {i.name: onnx.numpy_helper.to_array(i).astype(np.float64)
                                             if i.data_type in (1, 10, 11) else onnx.numpy_helper.to_array(i)
                                             for i in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant":
                a = _attrs(node)
                if "value" not in a:
                    raise UnsupportedOpError("Constant", node.name or node.output[0], "only tensor constants")
                arr = onnx.numpy_helper.to_array(a["value"])
                self.const[node.output[0]] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        self.nodes = [n for n in self.nodes if n.op_type != "Constant"]
        if len(graph.output) != 1:
            raise InteropError(f"the model must have exactly one output, it has {len(graph.output)}")
        self.output_name = graph.output[0].name
        #: QDQ graphs: a layer tensor -> the source tensor holding its int8 value (dequantised)
        self.reference: dict[str, str] = {}
        self.quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in self.nodes)
        if self.quantized:
            self.fold_qdq(graph)
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                if name and name not in self.const:
                    self.consumers.setdefault(name, []).append(node)
        inputs = [i for i in graph.input if i.name not in self.const]
        if len(inputs) != 1:
            raise InteropError(f"the model must have exactly one input, it has {len(inputs)} "
                               f"({', '.join(i.name for i in inputs)})")
        self.input = inputs[0]
        self.dropped: list[str] = []

    # -- QDQ graphs -----------------------------------------------------------------------------
    def qparams(self, node) -> tuple[np.ndarray, np.ndarray, int]:
        a = _attrs(node)
        if int(a.get("block_size", 0)):
            raise UnsupportedOpError(node.op_type, self.name_of(node), "blocked quantisation")
        scale = np.asarray(self.constant(node, 1, "the scale"), dtype=np.float64)
        zero = (np.asarray(self.constant(node, 2, "the zero point"), dtype=np.float64)
                if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
        return scale, zero, int(a.get("axis", 1))

    @staticmethod
    def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
        if v.ndim == 0 or ndim == 0:
            return v
        shape = [1] * ndim
        shape[axis % ndim] = v.size
        return v.reshape(shape)

    def fold_qdq(self, graph) -> None:
        """Fold a QDQ graph into its float form, keeping what its quantisation says:

        * ``DequantizeLinear`` of a constant (int8 weights, int32 biases, per tensor or per channel
          along ``axis``) becomes the dequantised constant ``(q - zero) * scale`` (a ``QuantizeLinear``
          of a constant first is applied as well);
        * a ``QuantizeLinear`` -> ``DequantizeLinear`` pair on a computed tensor is removed; where its
          int8 range clamps negative values (``(qmin - zero) * scale >= 0``, how quantisers fold a
          ReLU into the activation range) and the tensor may be negative, a ``Relu`` takes its place.
          The pair's output is kept as the reference of the layer tensor (the source model's int8
          activation, to report what tintin's scales cost against it). A pair on the graph input (or
          on the input only flattened or pooled) adds no ``Relu``: tintin quantises inputs by its own
          rule."""
        onnx = self.onnx
        copies = []
        for node in self.nodes:  # the caller's ModelProto stays as it is
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copies.append(copy)
        self.nodes = copies
        consumers: dict[str, list] = {}
        for n in self.nodes:
            for name in n.input:
                consumers.setdefault(name, []).append(n)
        nonneg = set()
        from_input = {self.input_name(graph)}  # the input, reshaped or pooled
        rename: dict[str, str] = {}
        kept = []
        removed = set()
        for node in self.nodes:
            if id(node) in removed:
                continue
            for i, name in enumerate(node.input):
                if name in rename:
                    node.input[i] = rename[name]
            if node.op_type == "DequantizeLinear" and node.input[0] in self.const:
                q = np.asarray(self.const[node.input[0]], dtype=np.float64)
                scale, zero, axis = self.qparams(node)
                self.const[node.output[0]] = (q - self._along(zero, axis, q.ndim)) * self._along(scale, axis, q.ndim)
                continue
            if node.op_type == "QuantizeLinear" and node.input[0] in self.const:
                x = np.asarray(self.const[node.input[0]], dtype=np.float64)
                scale, zero, axis = self.qparams(node)
                z = self._along(zero, axis, x.ndim)
                info = np.iinfo(np.int8 if self.zero_is_int8(node) else np.uint8)
                q = np.clip(np.round(x / self._along(scale, axis, x.ndim)) + z, info.min, info.max)
                self.const[node.output[0]] = q
                continue
            if node.op_type == "QuantizeLinear":
                outs = consumers.get(node.output[0], [])
                if not outs or any(c.op_type != "DequantizeLinear" for c in outs):
                    raise UnsupportedOpError(node.op_type, self.name_of(node), "a QuantizeLinear not followed by "
                                             "DequantizeLinear (only QDQ graphs are supported)")
                scale, zero, axis = self.qparams(node)
                if scale.size != 1:
                    raise UnsupportedOpError(node.op_type, self.name_of(node), "per-channel activation quantisation")
                qmin = -128 if self.zero_is_int8(node) else 0
                x = node.input[0]
                clamps = (qmin - float(zero.reshape(-1)[0])) * float(scale.reshape(-1)[0]) >= 0
                target = x
                if clamps and x not in nonneg and x not in from_input:
                    target = f"{x}_clamp"
                    relu = onnx.helper.make_node("Relu", [x], [target], name=f"{self.name_of(node)}_relu")
                    kept.append(relu)
                if x in from_input:
                    from_input.add(target)
                for dq in outs:
                    removed.add(id(dq))
                    rename[dq.output[0]] = target
                    self.reference[target] = dq.output[0]
                    if dq.output[0] == self.output_name:
                        self.output_name = target
                if clamps or x in nonneg:  # the input's own range is left to tintin's input quantisation
                    nonneg.add(target)
                continue
            if node.op_type == "DequantizeLinear":
                raise UnsupportedOpError(node.op_type, self.name_of(node), "a DequantizeLinear of a computed tensor "
                                         "without its QuantizeLinear")
            reshaping = node.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Squeeze")
            if node.op_type == "Relu" or (reshaping and node.input and node.input[0] in nonneg):
                nonneg.add(node.output[0])
            if reshaping and node.input and node.input[0] in from_input:
                from_input.add(node.output[0])
            kept.append(node)
        self.nodes = kept

    @staticmethod
    def input_name(graph) -> str:
        names = {i.name for i in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in names]
        return inputs[0] if inputs else ""

    def zero_is_int8(self, node) -> bool:
        """Whether a QuantizeLinear produces int8 (its zero point's type; uint8 without one)."""
        name = node.input[2] if len(node.input) > 2 else ""
        return bool(name) and name in self.const and self.const[name].dtype == np.int8

    # -- helpers --------------------------------------------------------------------------------
    def name_of(self, node) -> str:
        return node.name or node.output[0]

    def constant(self, node, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.const:
            raise UnsupportedOpError(node.op_type, self.name_of(node), f"{what} must be a constant (initializer)")
        return self.const[name]

    def dynamic_inputs(self, node) -> list[str]:
        return [n for n in node.input if n and n not in self.const]

    def is_merge(self, node) -> bool:
        return node.op_type in ("Add", "Sum") and len(self.dynamic_inputs(node)) == 2

    def sole_consumer(self, tensor: str):
        cons = self.consumers.get(tensor, [])
        return cons[0] if len(cons) == 1 and tensor != self.output_name else None

    # -- the walk -------------------------------------------------------------------------------
    def read(self) -> FloatGraph:
        layers, tensor, merge = self.chain(self.input.name, inside_branch=False)
        if tensor != self.output_name:
            raise InteropError(f"the graph does not end at its output {self.output_name!r} (stopped at {tensor!r})")
        shape = None
        dims = self.input.type.tensor_type.shape.dim
        if len(dims) >= 2 and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
            shape = tuple(int(d.dim_value) for d in dims[1:])
        return FloatGraph(layers, self.input.name, shape, self.output_name, "onnx", self.dropped,
                          reference_tensors=dict(self.reference), quantized=self.quantized)

    def chain(self, tensor: str, inside_branch: bool):
        """Layers from ``tensor`` on until the graph output or (in a branch) a residual merge."""
        layers: list[FloatLayer] = []
        while tensor != self.output_name:
            cons = self.consumers.get(tensor, [])
            if not cons:
                raise InteropError(f"tensor {tensor!r} is computed but never used and is not the output")
            if len(cons) == 1:
                node = cons[0]
                if self.is_merge(node):
                    if inside_branch:
                        return layers, tensor, node
                    raise UnsupportedOpError(node.op_type, self.name_of(node), "an add that closes no residual branch")
                tensor = self.convert(node, layers)
            elif len(cons) == 2:
                tensor = self.residual(tensor, cons, layers)
            else:
                raise UnsupportedOpError(cons[0].op_type, self.name_of(cons[0]),
                                         f"tensor {tensor!r} feeds {len(cons)} nodes (only chains and two-branch "
                                         f"residual blocks are supported)")
        if inside_branch:
            raise InteropError(f"a branch from the graph never merges back (it reaches the output {tensor!r})")
        return layers, tensor, None

    def residual(self, tensor: str, cons: list, layers: list[FloatLayer]) -> str:
        branches = []
        for node in cons:
            if self.is_merge(node):
                branches.append(([], node))
                continue
            sub: list[FloatLayer] = []
            out = self.convert(node, sub)
            more, _, merge = self.chain(out, inside_branch=True)
            branches.append((sub + more, merge))
        (a, ma), (b, mb) = branches
        if ma is not mb:
            raise UnsupportedOpError(ma.op_type, self.name_of(ma), "the two branches of a residual block do not meet "
                                     "at the same add")
        body, shortcut = (a, b) if len(a) >= len(b) else (b, a)
        if not body:
            raise UnsupportedOpError(ma.op_type, self.name_of(ma), "x + x is not a residual block")
        if any(layer.kind == "Residual" for layer in body + shortcut):
            raise UnsupportedOpError(ma.op_type, self.name_of(ma), "nested residual blocks are not supported")
        layers.append(FloatLayer("Residual", self.name_of(ma), ma.output[0], body=body, shortcut=shortcut, op="Add"))
        return ma.output[0]

    # -- one node -------------------------------------------------------------------------------
    def convert(self, node, layers: list[FloatLayer]) -> str:
        op, name, out = node.op_type, self.name_of(node), node.output[0]
        a = _attrs(node)
        if len(self.dynamic_inputs(node)) != 1:
            raise UnsupportedOpError(op, name, "expects exactly one computed input")
        if op == "Gemm":
            if a.get("transA", 0):
                raise UnsupportedOpError(op, name, "transA=1")
            w = self.constant(node, 1, "the weight") * float(a.get("alpha", 1.0))
            w = w if a.get("transB", 0) else w.T
            bias = None
            if len(node.input) > 2 and node.input[2]:
                c = np.asarray(self.constant(node, 2, "the bias"), dtype=np.float64).reshape(-1)
                if c.size not in (1, w.shape[0]):
                    raise UnsupportedOpError(op, name, f"a bias of {c.size} values for {w.shape[0]} outputs")
                bias = np.broadcast_to(c * float(a.get("beta", 1.0)), (w.shape[0],)).copy()
            layers.append(FloatLayer("Linear", name, out, w, bias, op="Gemm"))
            return out
        if op == "MatMul":
            w = self.constant(node, 1, "the right-hand side").T
            if w.ndim != 2:
                raise UnsupportedOpError(op, name, "the constant operand must be 2-D")
            layer = FloatLayer("Linear", name, out, w, None, op="MatMul")
            nxt = self.sole_consumer(out)
            if nxt is not None and nxt.op_type == "Add" and len(self.dynamic_inputs(nxt)) == 1:
                const = [n for n in nxt.input if n in self.const]
                b = np.asarray(self.const[const[0]], dtype=np.float64).reshape(-1)
                if b.size in (1, w.shape[0]):
                    layer.bias = np.broadcast_to(b, (w.shape[0],)).copy()
                    layer.tensor, layer.op = nxt.output[0], "MatMul+Add"
                    out = nxt.output[0]
            layers.append(layer)
            return out
        if op == "Conv":
            return self.conv(node, a, layers)
        if op == "BatchNormalization":
            return self.batchnorm(node, a, layers)
        if op == "Relu":
            layers.append(FloatLayer("ReLU", name, out, op=op))
            return out
        if op in ("MaxPool", "AveragePool"):
            k = list(a["kernel_shape"])
            pads = list(a.get("pads", [0] * 2 * len(k)))
            if any(pads) or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1] * len(k))) \
                    or _as_text(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
                raise UnsupportedOpError(op, name, "padding, ceil_mode and dilation are not supported in pooling")
            if len(node.output) > 1 and node.output[1]:
                raise UnsupportedOpError(op, name, "the indices output is not supported")
            kind = "MaxPool" if op == "MaxPool" else "AvgPool"
            layers.append(FloatLayer(kind, name, out, attrs={"kernel": k, "stride": list(a.get("strides", k))}, op=op))
            return out
        if op == "GlobalAveragePool":
            layers.append(FloatLayer("GlobalAvgPool", name, out, op=op))
            return out
        if op == "ReduceMean":
            axes = a.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = self.constant(node, 1, "axes").astype(np.int64).tolist()
            if axes is None or sorted(int(x) for x in axes) not in ([2], [2, 3]):
                raise UnsupportedOpError(op, name, "only a mean over all spatial axes (a global average pool)")
            layers.append(FloatLayer("GlobalAvgPool", name, out, op=op))
            return out
        if op in ("Flatten", "Reshape", "Squeeze"):
            return self.flatten(node, a, layers)
        if op in ("Dropout", "Identity"):
            self.dropped.append(name)
            if layers:
                layers[-1].tensor = out
            return out
        if op in ("Softmax", "LogSoftmax"):
            if out != self.output_name:
                raise UnsupportedOpError(op, name, "a softmax is only supported as the last node (it is dropped)")
            self.dropped.append(name)
            return out
        raise UnsupportedOpError(op, name)

    def conv(self, node, a: dict, layers: list[FloatLayer]) -> str:
        op, name, out = node.op_type, self.name_of(node), node.output[0]
        w = self.constant(node, 1, "the weight")
        dims = w.ndim - 2
        if dims not in (1, 2):
            raise UnsupportedOpError(op, name, f"{dims}-D convolution (1-D and 2-D are supported)")
        if any(d != 1 for d in a.get("dilations", [1] * dims)):
            raise UnsupportedOpError(op, name, "dilation")
        if _as_text(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
            raise UnsupportedOpError(op, name, f"auto_pad={_as_text(a['auto_pad'])} (export with explicit pads)")
        pads = list(a.get("pads", [0] * 2 * dims))
        if pads[:dims] != pads[dims:]:
            raise UnsupportedOpError(op, name, f"asymmetric padding {pads}")
        bias = self.constant(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        layers.append(FloatLayer("Conv", name, out, w, bias,
                                 {"stride": list(a.get("strides", [1] * dims)), "padding": pads[:dims],
                                  "groups": int(a.get("group", 1)), "kernel": list(w.shape[2:])}, op=op))
        return out

    def batchnorm(self, node, a: dict, layers: list[FloatLayer]) -> str:
        name, out = self.name_of(node), node.output[0]
        if len([o for o in node.output if o]) > 1:
            raise UnsupportedOpError(node.op_type, name, "training-mode BatchNormalization")
        gamma, beta, mean, var = (self.constant(node, i, what).reshape(-1).astype(np.float64)
                                  for i, what in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        eps = float(a.get("epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        shift = beta - mean * scale
        prev = layers[-1] if layers else None
        if prev is not None and prev.kind in ("Conv", "Linear") and prev.tensor == node.input[0]:
            if prev.weight.shape[0] != scale.size:
                raise InteropError(f"{name}: BatchNormalization has {scale.size} channels, the layer before has "
                                   f"{prev.weight.shape[0]}")
            prev.weight = prev.weight * scale.reshape((-1,) + (1,) * (prev.weight.ndim - 1))
            b = prev.bias if prev.bias is not None else np.zeros(scale.size)
            prev.bias = b * scale + shift
            prev.tensor, prev.op = out, prev.op + "+BatchNormalization"
            return out
        layers.append(FloatLayer("ChannelScale", name, out, scale, shift, op="BatchNormalization"))
        return out

    def flatten(self, node, a: dict, layers: list[FloatLayer]) -> str:
        op, name, out = node.op_type, self.name_of(node), node.output[0]
        after_pool = bool(layers) and layers[-1].kind == "GlobalAvgPool"
        if op == "Flatten":
            if int(a.get("axis", 1)) != 1:
                raise UnsupportedOpError(op, name, f"axis={a.get('axis')} (only 1)")
        elif op == "Reshape":
            shape = self.constant(node, 1, "the target shape").astype(np.int64).reshape(-1).tolist()
            if len(shape) != 2:
                raise UnsupportedOpError(op, name, f"reshape to {shape} (only a flatten to (batch, features))")
        elif not after_pool:
            raise UnsupportedOpError(op, name, "only after a global average pool")
        if after_pool:  # tintin's global pool already gives (B, C)
            layers[-1].tensor = out
            return out
        layers.append(FloatLayer("Flatten", name, out, op=op))
        return out


def read_onnx(source) -> FloatGraph:
    """Read an ONNX model (path, bytes or ``onnx.ModelProto``) into a :class:`FloatGraph`."""
    return _Reader(load_onnx(source)).read()
