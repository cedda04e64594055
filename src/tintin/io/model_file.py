"""tintin model files.

A model file is a safetensors file (no pickle: safe to open when untrusted):

* tensors: for every parameter ``<name>`` its mantissas (int8 / int16 weights, int32 biases);
  optional ``<name>.momentum`` (int64) for optimiser state.
* metadata (``__metadata__``, strings): ``format`` = ``"tintin-model"``, ``format_version`` =
  :data:`FORMAT_VERSION`, and ``tintin`` = a JSON document with the model ``spec`` (layers, input
  shape, loss, quantisation config, input exponent), every parameter's scale ``[S, U, D]``,
  ``bits``, ``trainable`` and ``trainable_rows``, plus free-form ``info`` (data set, training
  settings, metrics).

Files are written atomically: to a temporary file in the same directory, flushed and fsynced, then
renamed over the destination, so a crash never leaves a half-written model and never destroys the
previous one.
"""

from __future__ import annotations

from tintin.errors import TintinError

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..numerics import QTensor, Scale
from ..nn import QuantConfig, Sequential, build_layer

FORMAT_NAME = "tintin-model"
FORMAT_VERSION = 1


class ModelFileError(TintinError, ValueError):
    """The file is missing, not a tintin model, of an unsupported version, or corrupt."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_model(model: Sequential, path: str | os.PathLike, info: dict | None = None,
               include_optimizer_state: bool = False) -> Path:
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {}
    params = {}
    for p in model.parameters():
        tensors[p.name] = np.ascontiguousarray(p.value.m)
        params[p.name] = {"scale": list(p.value.scale.as_tuple()), "bits": p.bits, "kind": p.kind,
                          "trainable": p.trainable,
                          "trainable_rows": None if p.trainable_rows is None else [int(r) for r in p.trainable_rows]}
        if include_optimizer_state and p.momentum is not None:
            tensors[f"{p.name}.momentum"] = np.ascontiguousarray(p.momentum.astype(np.int64))
    meta = {"spec": model.spec(), "parameters": params, "info": info or {}}
    blob = save(tensors, metadata={"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
                                   "tintin": json.dumps(meta)})
    atomic_write_bytes(path, blob)
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata of a model file (validated header)."""
    return _open(path)[0]


def _open(path):
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, json.JSONDecodeError, OverflowError) as exc:
        raise ModelFileError(f"{path} is not a valid model file (corrupt or truncated: {str(exc).splitlines()[0][:80]})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is a safetensors file but not a tintin model")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise ModelFileError(f"{path}: unreadable format version {meta.get('format_version')!r}") from None
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {version} is not supported (this tintin reads {FORMAT_VERSION})")
    try:
        doc = json.loads(meta["tintin"])
    except (KeyError, json.JSONDecodeError):
        raise ModelFileError(f"{path}: model metadata is missing or corrupt") from None
    return doc, tensors


def load_model(path: str | os.PathLike) -> tuple[Sequential, dict]:
    """Rebuild a model from a file: returns ``(model, info)``."""
    doc, tensors = _open(path)
    try:
        spec = doc["spec"]
        config = QuantConfig.from_dict(spec["config"])
        rng = np.random.default_rng(0)
        layers = [build_layer(s, config, rng) for s in spec["layers"]]
        model = Sequential(layers, tuple(spec["input_shape"]), config, loss=spec.get("loss", "cross_entropy"),
                           name=spec.get("name", "model"), input_exponent=spec.get("input_exponent", -7))
        for p in model.parameters():
            entry = doc["parameters"][p.name]
            m = tensors[p.name]
            if m.shape != p.value.m.shape or m.dtype != p.value.m.dtype:
                raise ModelFileError(f"{path}: tensor {p.name} has shape {m.shape} {m.dtype}, "
                                     f"the model needs {p.value.m.shape} {p.value.m.dtype}")
            p.assign(QTensor(m.copy(), Scale.from_tuple(entry["scale"])))
            p.trainable = bool(entry.get("trainable", True))
            rows = entry.get("trainable_rows")
            p.trainable_rows = None if rows is None else np.asarray(rows, dtype=np.int64)
            mom = tensors.get(f"{p.name}.momentum")
            p.momentum = None if mom is None else mom.copy()
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: model description is inconsistent ({type(exc).__name__}: {exc})") from None
    return model, doc.get("info", {})
