"""Float and integer activations side by side: onnxruntime as the float oracle, the simulator traced
layer by layer."""

from __future__ import annotations

import numpy as np

from ..nn import Context, Residual, Sequential
from ..numerics import QTensor, Scale
from ..ops.residual import residual_add_s8
from .errors import InteropError, require


def _ort():
    return require("onnxruntime", "onnxruntime", "running ONNX models (the float oracle)")


def ort_session(model_bytes: bytes, qdq_fusion: bool = True):
    """An onnxruntime CPU session (one thread). ``qdq_fusion=False`` keeps QuantizeLinear /
    DequantizeLinear as they are instead of fusing them into onnxruntime's integer kernels: on x86
    CPUs without VNNI those kernels (u8 x s8) saturate 16-bit pair sums when weights use the full
    int8 range, which is onnxruntime's behaviour, not the graph's meaning."""
    ort = _ort()
    opts = ort.SessionOptions()
    if not qdq_fusion:
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InteropError(f"onnxruntime cannot load the model: {str(exc).splitlines()[0][:160]}") from None


def run_session(session, x: np.ndarray, outputs: list[str] | None = None, batch: int = 512) -> list[np.ndarray]:
    """Run ``session`` on ``x`` (float32) in batches (sample by sample when the batch size is fixed)."""
    inp = session.get_inputs()[0]
    dim0 = inp.shape[0] if inp.shape else None
    step = dim0 if isinstance(dim0, int) and dim0 > 0 else batch
    parts: list[list[np.ndarray]] = []
    for i in range(0, len(x), step):
        xb = np.ascontiguousarray(x[i:i + step], dtype=np.float32)
        try:
            parts.append(session.run(outputs, {inp.name: xb}))
        except Exception as exc:
            raise InteropError(f"onnxruntime failed on the data: {str(exc).splitlines()[0][:160]}") from None
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))] if parts else []


def float_activations(model_proto, tensors: list[str], x: np.ndarray, qdq_fusion: bool = True) -> dict[str, np.ndarray]:
    """Values of the named tensors of an ONNX model on ``x`` (onnxruntime; ``qdq_fusion`` as for
    :func:`ort_session`)."""
    onnx = require("onnx", "onnx", "reading ONNX models")
    m = onnx.ModelProto()
    m.CopyFrom(model_proto)
    have = {o.name for o in m.graph.output}
    for name in tensors:
        if name not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            have.add(name)
    session = ort_session(m.SerializeToString(), qdq_fusion)
    values = run_session(session, x, list(tensors))
    return dict(zip(tensors, values))


def trace(model: Sequential, x: np.ndarray) -> dict[str, QTensor]:
    """Every layer's int8 output (layers inside residual blocks too) on one batch ``x`` (int8)."""
    ctx = Context(mode=model.config.scale_mode, training=False)
    out: dict[str, QTensor] = {}

    def run(layers, h):
        for layer in layers:
            if isinstance(layer, Residual):
                a = run(layer.body, h)
                s = run(layer.shortcut, h) if layer.shortcut else h
                h = residual_add_s8(a, s, ctx.mode)
            else:
                h = layer.forward(h, ctx)
            out[layer.name] = h
        return h

    run(model.layers, QTensor(np.ascontiguousarray(x), Scale(model.input_exponent)))
    return out
