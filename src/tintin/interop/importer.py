"""``import_model``: an ONNX model, a PyTorch module or a TFLite int8 file in, a calibrated tintin model and its report out."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io import save_model
from ..io.model_file import atomic_write_bytes
from ..nn import QuantConfig, Residual, Sequential
from ..train import evaluate, predict
from .build import build_model
from .calib_data import CalibrationData, calibration_data
from .calibrate import sqnr_db
from .errors import InteropError
from .graph import FloatGraph
from .oracle import float_activations, ort_session, run_session, trace

FORMATS = ("onnx", "pytorch", "tflite")


@dataclass
class LayerReport:
    name: str            #: tintin layer name
    type: str            #: tintin layer type
    op: str              #: source operator(s), e.g. "Conv+BatchNormalization"
    node: str            #: source node name
    weight_sqnr_db: float | None
    activation_sqnr_db: float | None
    weight_scale: list[int] | None = None  #: chosen [S, U, D]
    weight_clipped: int | None = None      #: weights saturated at +-L by the chosen scale


@dataclass
class ImportReport:
    model_path: str | None
    source_path: str | None
    format: str
    calibration_data: str
    calib_samples: int
    input_shape: list[int]
    input_exponent: int
    scale_mode: str
    weight_bits: int
    layers: list[LayerReport]
    float_accuracy: float | None
    int_accuracy: float | None
    agreement: float | None        #: fraction of evaluation samples where integer and float argmax agree
    eval_samples: int
    dropped_nodes: list[str]
    seconds: float = 0.0
    threshold_train_steps: int = 0  #: Adam steps of log2 threshold training (0: the static rule only)
    thresholds: list[dict] | None = None  #: per weight tensor: static and trained scale, clipped weights

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImportResult:
    model: Sequential
    report: ImportReport
    data: CalibrationData


def detect_format(source) -> str:
    if type(source).__module__.startswith("torch") or _is_torch_module(source):
        return "pytorch"
    if isinstance(source, (bytes, bytearray)):
        return "tflite" if bytes(source[4:8]) == b"TFL3" else "onnx"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() == ".tflite":
            return "tflite"
        if path.suffix.lower() == ".onnx":
            return "onnx"
        if path.is_file():
            with open(path, "rb") as fh:
                head = fh.read(8)
            return "tflite" if head[4:8] == b"TFL3" else "onnx"
        raise InteropError(f"model file not found: {path}")
    if type(source).__name__ == "ModelProto":
        return "onnx"
    raise InteropError(f"cannot import a {type(source).__name__}: give an .onnx or .tflite path, bytes, an "
                       f"onnx.ModelProto or a torch.nn.Module")


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


def _flat_layers(layers, out=None):
    """(layer, container) in execution order, the layers of a residual block before the block."""
    out = [] if out is None else out
    for layer in layers:
        if isinstance(layer, Residual):
            _flat_layers(layer.body, out)
            _flat_layers(layer.shortcut, out)
        out.append(layer)
    return out


def _layer_rows(model: Sequential, origin: dict, float_acts: dict | None, int_acts: dict) -> list[LayerReport]:
    from ..numerics import limit_for_bits

    rows = []
    for layer in _flat_layers(model.layers):
        fl = origin[layer.name]
        w_sqnr, w_scale, clipped = None, None, None
        if fl.weight is not None:
            q = layer.weight.value
            w_sqnr = round(sqnr_db(fl.weight.reshape(q.m.shape), q.dequantize()), 2)
            w_scale = list(q.scale.as_tuple())
            clipped = int(np.sum(np.abs(q.m.astype(np.int64)) == limit_for_bits(layer.weight.bits)))
        a_sqnr = None
        if float_acts is not None and fl.tensor in float_acts:
            ref = float_acts[fl.tensor]
            got = int_acts[layer.name].dequantize()
            if ref.size == got.size:
                a_sqnr = round(sqnr_db(ref, got), 2)
        rows.append(LayerReport(layer.name, layer.spec()["type"], fl.op, fl.node, w_sqnr, a_sqnr, w_scale, clipped))
    return rows


def _onnx_model_of(source, fmt: str, sample_shape: tuple[int, ...]):
    if fmt == "pytorch":
        from .torch_export import torch_to_onnx

        return torch_to_onnx(source, sample_shape)
    from .onnx_reader import load_onnx

    return load_onnx(source)


def import_model(source, calib, *, calib_samples: int = 32, out: str | os.PathLike | None = None,
                 config: QuantConfig | None = None, input_exponent: int | None = None, seed: int = 0,
                 name: str = "imported", threshold_train: int = 0) -> ImportResult:
    """Import a float ONNX model (path, bytes, ``onnx.ModelProto``), a PyTorch ``nn.Module`` or a TFLite
    int8 file (path or bytes) into tintin. For TFLite the "float" reference is the source int8 model
    in LiteRT (TFLite Micro when LiteRT is missing): ``float_accuracy`` is the source model's accuracy.

    ``calib``: a built-in data set name, a ``.npz`` path, a :class:`tintin.data.Dataset` or ``(x, y)``
    arrays (see :mod:`tintin.interop.calib_data`); ``calib_samples`` of its training samples form the
    one calibration batch. ``config``: the model's :class:`QuantConfig` (default: compound scales,
    int8 weights). ``out``: a directory; ``model.safetensors`` (a normal tintin model file) and
    ``import.json`` (the report) are written there atomically. ``threshold_train``: Adam steps of
    log2 weight-threshold training on the calibration batch after the static rule
    (:mod:`tintin.interop.threshold_train`; 0: none).

    Returns an :class:`ImportResult` (the model, the :class:`ImportReport`, the data used).

    >>> import torch
    >>> from tintin.interop import import_model
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
    ...                           torch.nn.Linear(32, 10))             # a float model of your own
    >>> res = import_model(net, "digits", calib_samples=32)            # one calibration batch
    >>> [row.op for row in res.report.layers if row.weight_sqnr_db is not None]
    ['Gemm', 'Gemm']
    >>> res.report.calib_samples, res.model.input_shape
    (32, (1, 8, 8))
    """
    t0 = time.perf_counter()
    if not isinstance(calib_samples, int) or calib_samples < 1:
        raise InteropError(f"--calib-samples must be a positive integer, got {calib_samples!r}")
    fmt = detect_format(source)
    config = config or QuantConfig()
    data = calibration_data(calib, calib_samples, seed, input_exponent)
    sample_shape = tuple(int(v) for v in data.calib_q.shape[1:])
    proto = oracle = None
    if fmt == "tflite":
        from .tflite_reader import read_tflite

        graph, oracle = read_tflite(source)
    else:
        proto = _onnx_model_of(source, fmt, sample_shape)
        from .onnx_reader import read_onnx

        graph = read_onnx(proto)
        graph.format = fmt
    if graph.input_shape is not None and tuple(graph.input_shape) != sample_shape:
        raise InteropError(f"the model expects samples of shape {tuple(graph.input_shape)}, the calibration data has "
                           f"{sample_shape}")
    model, origin = build_model(graph, sample_shape, config, data.input_exponent, name=name)
    classes = model.output_shape_[0] if len(model.output_shape_) == 1 else None
    if data.eval_labels is not None and data.num_classes is not None and classes is not None \
            and data.num_classes > classes:
        raise InteropError(f"the data has labels up to {data.num_classes - 1} but the model predicts {classes} classes")

    thresholds = None
    if threshold_train:
        from .threshold_train import train_thresholds

        thresholds = train_thresholds(model, origin, data.calib_real, threshold_train, seed)
    int_acts = trace(model, data.calib_q)
    tensors = sorted({fl.tensor for fl in origin.values()} | {graph.output_name})
    if proto is not None:  # onnxruntime is the float oracle (a QDQ source: its int8 activations)
        ref = {t: graph.reference_tensors.get(t, t) for t in tensors}
        acts = float_activations(proto, sorted(set(ref.values())), data.calib_real, qdq_fusion=not graph.quantized)
        float_acts = {t: acts[r] for t, r in ref.items()}
        float_out = run_session(ort_session(proto.SerializeToString(), qdq_fusion=not graph.quantized),
                                data.eval_real)[0]
    else:  # the source int8 model in its own runtime
        float_acts = oracle.run(data.calib_real, tensors)
        float_out = oracle.run(data.eval_real, [graph.output_name])[graph.output_name]
    rows = _layer_rows(model, origin, float_acts, int_acts)

    float_pred = np.argmax(float_out.reshape(len(float_out), -1), axis=1)
    int_pred = predict(model, data.eval_q)
    float_acc = int_acc = None
    if data.eval_labels is not None:
        float_acc = float(np.mean(float_pred == data.eval_labels))
        int_acc = evaluate(model, data.eval_q, data.eval_labels).accuracy
    agreement = float(np.mean(float_pred == int_pred)) if len(int_pred) else None

    report = ImportReport(
        model_path=None, source_path=os.fspath(source) if isinstance(source, (str, os.PathLike)) else None,
        format=fmt, calibration_data=data.name, calib_samples=int(len(data.calib_q)),
        input_shape=list(sample_shape), input_exponent=data.input_exponent,
        scale_mode=config.scale_mode.value, weight_bits=config.weight_bits, layers=rows,
        float_accuracy=float_acc, int_accuracy=int_acc, agreement=agreement, eval_samples=int(len(data.eval_q)),
        dropped_nodes=list(graph.dropped), threshold_train_steps=int(threshold_train), thresholds=thresholds)
    report.seconds = round(time.perf_counter() - t0, 3)
    if out is not None:
        save_import(model, report, out)
    return ImportResult(model, report, data)


def save_import(model: Sequential, report: ImportReport, out: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``import.json`` into directory ``out`` (atomically)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "model.safetensors"
        report.model_path = str(path)
        info = {"imported_from": report.source_path, "format": report.format, "dataset": report.calibration_data,
                "test_accuracy": report.int_accuracy, "float_test_accuracy": report.float_accuracy,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        save_model(model, path, info=info)
        atomic_write_bytes(out / "import.json", (json.dumps(report.to_dict(), indent=1) + "\n").encode())
    except OSError as exc:
        raise InteropError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return path
