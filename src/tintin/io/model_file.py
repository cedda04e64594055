"""tintin model files: write them deterministically and atomically, read them defensively.

A model file is a safetensors file (no pickle: safe to open when untrusted):

* tensors: for every parameter ``<name>`` its mantissas (int8 / int16 weights, int32 biases);
  optional ``<name>.momentum`` (int64) and ``<name>.remainder`` (int8, the error-feedback
  remainder of :mod:`tintin.optim.sgd`) for optimiser state; ``<name>.row_exp`` (int8, one per
  output row, in ``[0, the layer's row limit]``) for the weights of a model with per-row scales
  (``QuantConfig.row_scales``, :mod:`tintin.numerics.scale_rows`), required exactly for them.
* metadata (``__metadata__``, strings): ``format`` = ``"tintin-model"``, ``format_version`` =
  ``"1"`` (:data:`FORMAT_VERSION`), and ``tintin`` = a JSON document with the model ``spec``
  (layers, input shape, loss, quantisation config, input exponent), every parameter's scale
  ``[S, U, D]``, ``bits``, ``trainable`` and ``trainable_rows``, plus free-form ``info`` (data set,
  training settings, metrics).

Writing (:func:`save_model`): the header's JSON keys are sorted, so the same model and info give
the same bytes; the bytes go through :func:`tintin.io.atomic.atomic_write_bytes`.

Reading (:func:`load_model`) checks everything before it allocates anything that the file does not
pay for: the header layout against the file size, every tensor's dtype and shape, the model
description (types, ranges, nesting), the layers' parameter shapes (layers are built with
placeholder parameters, :data:`tintin.nn.init.PLACEHOLDER`, so a description of a huge layer costs
nothing), scales, trainable rows, momentum, and the values (weights in the symmetric range: no
-128). Only then are the tensor bytes read. Every problem raises :class:`ModelFileError` with one
line; a model that loads can train and evaluate. The rules are listed in ``docs/file-format.md``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from tintin.errors import TintinError

from ..nn import QuantConfig, Sequential, build_layer, layer_types
from ..nn.init import PLACEHOLDER
from ..nn.module import FEEDBACK_BITS_CHOICES, remainder_range
from ..numerics import QTensor, Scale, limit_for_bits
from ..numerics.bounds import SCALE_EXPONENT_MAX, SCALE_EXPONENT_MIN
from ..numerics.rescale import GRID_MAX_STEPS
from .atomic import atomic_write_bytes

FORMAT_NAME = "tintin-model"
FORMAT_VERSION = 1

#: safetensors' own limit on the JSON header
MAX_HEADER_BYTES = 100_000_000
#: layers in a model, and nesting of Residual blocks (guards recursion)
MAX_LAYERS = 4096
MAX_NESTING = 16
#: elements of one sample at any layer (input, activations); far above any microcontroller model
MAX_SAMPLE_ELEMENTS = 1 << 24
#: largest integer in a layer description (sizes, kernels, strides, padding, groups)
MAX_SPEC_INT = (1 << 31) - 1
#: largest |value| of stored biases and momentum (the optimiser's saturation limits)
BIAS_VALUE_LIMIT = 1 << 30
MOMENTUM_VALUE_LIMIT = 1 << 40

#: the tensor dtypes a tintin model file holds (safetensors names -> little-endian numpy dtypes)
TENSOR_DTYPES = {"I8": np.dtype("<i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"), "I64": np.dtype("<i8")}
_DTYPE_NAMES = {np.dtype(np.int8): "I8", np.dtype(np.int16): "I16", np.dtype(np.int32): "I32",
                np.dtype(np.int64): "I64"}

_CONFIG_KEYS = {"scale_mode": str, "weight_bits": int, "upscale_init": bool, "init_headroom_bits": int,
                "wide_layers": list, "row_scales": bool, "loss_error_rounding": str}
#: layer description keys holding text, flags or nested layers; every other key holds integers
_LAYER_TEXT_KEYS = ("type", "name", "init")
_LAYER_NESTED_KEYS = ("body", "shortcut")


class ModelFileError(TintinError, ValueError):
    """The file is missing, not a tintin model, of an unsupported version, or corrupt."""


# -- writing ---------------------------------------------------------------------------------------
def canonical_safetensors(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header keys sorted (the library writes the metadata
    map in hash order, which changes from run to run) and padded with spaces to 8 bytes."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def stored_value_range(param, momentum: bool = False) -> tuple[int, str]:
    """``(limit, what)``: values stored for ``param`` (its momentum with ``momentum``) must lie in
    ``[-limit, limit]`` -- the one rule the model loader and training-state files enforce."""
    if momentum:
        return MOMENTUM_VALUE_LIMIT, "momentum"
    if param.kind == "bias":
        return BIAS_VALUE_LIMIT, "biases"
    return limit_for_bits(param.bits), f"int{param.bits} weights (-{1 << (param.bits - 1)} excluded)"


def remainder_bits(entry: dict, has_remainder: bool, name: str, fail) -> int:
    """The width of a stored error-feedback remainder: the parameter entry's ``feedback_bits`` (2, 4
    or 8; absent: 8). ``fail(message)`` makes the error to raise."""
    bits = entry.get("feedback_bits", 8)
    if type(bits) is not int or bits not in FEEDBACK_BITS_CHOICES:
        raise fail(f"parameter {name}: feedback_bits must be one of {', '.join(map(str, FEEDBACK_BITS_CHOICES))}")
    if bits != 8 and not has_remainder:
        raise fail(f"parameter {name}: feedback_bits is given but there is no remainder tensor")
    return bits


def remainder_problem(name: str, arr: np.ndarray, bits: int) -> str | None:
    """Why the remainder tensor ``arr`` is not a ``bits``-bit error-feedback remainder (its values
    out of ``[-2**(bits-1), 2**(bits-1) - 1]``), or None."""
    lo, hi = remainder_range(bits)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        return (f"tensor {name} holds values in [{int(arr.min())}, {int(arr.max())}]; {bits}-bit error-feedback "
                f"remainders must lie in [{lo}, {hi}]")
    return None


def model_file_bytes(model: Sequential, info: dict | None = None, include_optimizer_state: bool = False) -> bytes:
    """The bytes :func:`save_model` writes (deterministic: same model and info, same bytes)."""
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
        if include_optimizer_state and p.remainder is not None:
            tensors[f"{p.name}.remainder"] = np.ascontiguousarray(p.remainder.astype(np.int8))
            if p.feedback_bits != 8:  # 8-bit remainders are written as before
                params[p.name]["feedback_bits"] = p.feedback_bits
        if p.row_exp is not None:
            tensors[f"{p.name}.row_exp"] = np.ascontiguousarray(p.row_exp.astype(np.int8))
    meta = {"spec": model.spec(), "parameters": params, "info": info or {}}
    try:
        doc = json.dumps(meta, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model info must be JSON data with text keys: {_first_line(exc)}") from None
    blob = save(tensors, metadata={"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "tintin": doc})
    return canonical_safetensors(blob)


def save_model(model: Sequential, path: str | os.PathLike, info: dict | None = None,
               include_optimizer_state: bool = False) -> Path:
    """Write ``model`` (and JSON-able ``info``) to ``path`` atomically; returns the path.

    ``include_optimizer_state`` also stores the momentum buffers. Raises
    :class:`tintin.io.atomic.OutputWriteError` when the file cannot be written.

    >>> from tintin.io import load_model, save_model
    >>> from tintin.nn import build_model
    >>> model = build_model("mlp", (64,), 10, seed=0)
    >>> path = save_model(model, "mlp.safetensors", info={"note": "zoo mlp, untrained"})
    >>> again, info = load_model(path)
    >>> info["note"], all((a.value.m == b.value.m).all() for a, b in zip(model.parameters(), again.parameters()))
    ('zoo mlp, untrained', True)
    """
    return atomic_write_bytes(path, model_file_bytes(model, info, include_optimizer_state))


# -- reading: small helpers ------------------------------------------------------------------------
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _is_int(v) -> bool:
    return type(v) is int  # bool is not an int here


def _parse_json(text, where: str):
    """``json.loads`` that turns every failure (syntax, nesting, huge numbers, memory) into one line."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply") from None
    except MemoryError:
        raise ModelFileError(f"{where} is too large to read") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{where} is not valid JSON ({_first_line(exc)})") from None


class _Reader:
    """One file being read; every method raises :class:`ModelFileError` naming the file."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    # -- the safetensors header ------------------------------------------------------------------
    def header(self, fh, size: int) -> tuple[dict, dict, int]:
        """``(metadata, tensor entries, data start)`` after checking the layout against the size."""
        if size < 8:
            raise self.fail("not a valid model file (shorter than a safetensors header)")
        n = int.from_bytes(fh.read(8), "little")
        if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
            raise self.fail(f"not a valid model file (corrupt or truncated: header of {n} bytes in a "
                            f"file of {size})")
        header = _parse_json(fh.read(n), f"{self.path}: the safetensors header")
        if not isinstance(header, dict):
            raise self.fail("not a valid model file (the header is not a JSON object)")
        meta = header.pop("__metadata__", None)
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise self.fail("is a safetensors file but not a tintin model (no text metadata)")
        data_size = size - 8 - n
        entries = {}
        spans = []
        for name, entry in header.items():
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                raise self.fail(f"tensor {name!r} has a malformed header entry")
            dtype = entry["dtype"]
            if dtype not in TENSOR_DTYPES:
                raise self.fail(f"tensor {name!r} has dtype {str(dtype)[:16]!r}; tintin model files hold only "
                                f"{', '.join(TENSOR_DTYPES)} tensors")
            shape, offsets = entry["shape"], entry["data_offsets"]
            if (not isinstance(shape, list) or len(shape) > 8
                    or not all(_is_int(d) and 0 <= d <= MAX_SPEC_INT for d in shape)):
                raise self.fail(f"tensor {name!r} has an invalid shape")
            if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                    or not 0 <= offsets[0] <= offsets[1] <= data_size):
                raise self.fail(f"tensor {name!r} lies outside the file (corrupt or truncated)")
            if offsets[1] - offsets[0] != math.prod(shape) * TENSOR_DTYPES[dtype].itemsize:
                raise self.fail(f"tensor {name!r}: {offsets[1] - offsets[0]} bytes stored for shape {shape} {dtype}")
            entries[name] = (TENSOR_DTYPES[dtype], tuple(shape), offsets[0], offsets[1])
            spans.append((offsets[0], offsets[1]))
        end = 0
        for start, stop in sorted(spans):
            if start != end:
                raise self.fail("tensor data overlaps or has gaps (corrupt file)")
            end = stop
        if end != data_size:
            raise self.fail(f"{data_size - end} bytes after the last tensor (corrupt or truncated file)")
        return meta, entries, 8 + n

    def document(self, meta: dict) -> dict:
        if meta.get("format") != FORMAT_NAME:
            raise self.fail("is a safetensors file but not a tintin model")
        version = meta.get("format_version")
        if version != str(FORMAT_VERSION):
            if isinstance(version, str) and re.fullmatch(r"[1-9][0-9]{0,8}", version, flags=re.ASCII):
                raise self.fail(f"model format version {version} is not supported (this tintin reads "
                                f"{FORMAT_VERSION})")
            raise self.fail(f"unreadable format version {str(version)[:20]!r} (expected \"{FORMAT_VERSION}\")")
        if "tintin" not in meta:
            raise self.fail("model metadata is missing")
        doc = _parse_json(meta["tintin"], f"{self.path}: the model metadata")
        if not isinstance(doc, dict) or not isinstance(doc.get("spec"), dict) \
                or not isinstance(doc.get("parameters"), dict):
            raise self.fail("model metadata is corrupt (needs the objects 'spec' and 'parameters')")
        if not isinstance(doc.get("info", {}), dict):
            raise self.fail("model metadata is corrupt ('info' must be an object)")
        return doc

    # -- the model description ---------------------------------------------------------------------
    def int_in(self, value, lo: int, hi: int, what: str) -> int:
        if not _is_int(value) or not lo <= value <= hi:
            raise self.fail(f"{what} must be an integer in [{lo}, {hi}], got {str(value)[:40]}")
        return value

    def layer_spec(self, spec, depth: int, count: list[int]) -> None:
        """Types and ranges of one layer description (recursively for Residual blocks)."""
        if depth > MAX_NESTING:
            raise self.fail(f"layers are nested deeper than {MAX_NESTING} levels")
        count[0] += 1
        if count[0] > MAX_LAYERS:
            raise self.fail(f"the model has more than {MAX_LAYERS} layers")
        if not isinstance(spec, dict):
            raise self.fail("a layer description is not a JSON object")
        kind = spec.get("type")
        if kind not in layer_types():
            raise self.fail(f"unknown layer type {str(kind)[:40]!r}")
        name = spec.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise self.fail(f"a {kind} layer needs a name of 1 to 200 characters")
        for key, value in spec.items():
            what = f"layer {name!r}: {key!r}"
            if key in _LAYER_TEXT_KEYS:
                if not isinstance(value, str):
                    raise self.fail(f"{what} must be text")
            elif key == "bias":
                if not isinstance(value, bool):
                    raise self.fail(f"{what} must be true or false")
            elif key in _LAYER_NESTED_KEYS:
                if value is None and key == "shortcut":
                    continue
                if not isinstance(value, list):
                    raise self.fail(f"{what} must be a list of layers")
                for inner in value:
                    self.layer_spec(inner, depth + 1, count)
            elif isinstance(value, list):
                if not 1 <= len(value) <= 3:
                    raise self.fail(f"{what} must list 1 to 3 integers")
                for v in value:
                    self.int_in(v, 0, MAX_SPEC_INT, what)
            elif value is not None:
                self.int_in(value, 0, MAX_SPEC_INT, what)

    def build(self, spec: dict) -> Sequential:
        """The model with placeholder parameters (no memory per parameter), after checking the
        description; the layer classes then check their own sizes and the shapes between layers."""
        layers = spec.get("layers")
        if not isinstance(layers, list) or not layers:
            raise self.fail("the model has no layers")
        count = [0]
        for s in layers:
            self.layer_spec(s, 0, count)
        shape = spec.get("input_shape")
        if not isinstance(shape, list) or not 1 <= len(shape) <= 4:
            raise self.fail("input_shape must list 1 to 4 sizes")
        for v in shape:
            self.int_in(v, 1, MAX_SAMPLE_ELEMENTS, "input_shape")
        loss = spec.get("loss", "cross_entropy")
        if loss not in ("cross_entropy", "mse"):
            raise self.fail(f"unknown loss {str(loss)[:40]!r} (cross_entropy, mse)")
        exponent = self.int_in(spec.get("input_exponent", -7), SCALE_EXPONENT_MIN, SCALE_EXPONENT_MAX,
                               "input_exponent")
        name = spec.get("name", "model")
        if not isinstance(name, str) or len(name) > 200:
            raise self.fail("the model name must be text of at most 200 characters")
        config = spec.get("config")
        if not isinstance(config, dict) or not set(config) <= set(_CONFIG_KEYS) or not all(
                type(config[k]) is t for k, t in _CONFIG_KEYS.items() if k in config):
            raise self.fail(f"config must be an object with the keys {', '.join(_CONFIG_KEYS)} "
                            f"(text, integer, true/false, integer, list of layer names, true/false, text)")
        wide = config.get("wide_layers", [])
        if len(wide) > MAX_LAYERS or not all(isinstance(n, str) and 0 < len(n) <= 200 for n in wide):
            raise self.fail("config wide_layers must list layer names of 1 to 200 characters")
        try:
            qconf = QuantConfig.from_dict(config)
            model = Sequential([build_layer(s, qconf, PLACEHOLDER) for s in layers], tuple(shape), qconf,
                               loss=loss, name=name, input_exponent=exponent)
        except (TintinError, ValueError, TypeError, KeyError, OverflowError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else _first_line(exc)
            raise self.fail(f"the model description is invalid: {what}") from None
        for i, s in enumerate(model.shapes):
            if math.prod(s) > MAX_SAMPLE_ELEMENTS:
                raise self.fail(f"{'the input' if i == 0 else model.layers[i - 1].name} has {math.prod(s)} "
                                f"elements per sample (limit {MAX_SAMPLE_ELEMENTS})")
        if model.loss == "cross_entropy" and (len(model.output_shape_) != 1 or model.output_shape_[0] < 2):
            raise self.fail(f"a classifier needs an output of shape (classes >= 2,), got {model.output_shape_}")
        return model

    # -- parameters --------------------------------------------------------------------------------
    def parameter_entry(self, p, entry) -> tuple[Scale, bool, np.ndarray | None]:
        if not isinstance(entry, dict):
            raise self.fail(f"parameter {p.name}: its description is not an object")
        scale = entry.get("scale")
        if not isinstance(scale, list) or len(scale) != 3:
            raise self.fail(f"parameter {p.name}: scale must be [S, U, D]")
        S = self.int_in(scale[0], SCALE_EXPONENT_MIN, SCALE_EXPONENT_MAX, f"parameter {p.name}: scale exponent S")
        top = GRID_MAX_STEPS if p.kind == "weight" else 0
        U = self.int_in(scale[1], 0, top, f"parameter {p.name}: scale exponent U")
        D = self.int_in(scale[2], 0, top, f"parameter {p.name}: scale exponent D")
        if entry.get("bits", p.bits) != p.bits or type(entry.get("bits", p.bits)) is not int:
            raise self.fail(f"parameter {p.name}: bits must be {p.bits} for this model")
        if entry.get("kind", p.kind) != p.kind:
            raise self.fail(f"parameter {p.name}: kind must be {p.kind!r}")
        trainable = entry.get("trainable", True)
        if not isinstance(trainable, bool):
            raise self.fail(f"parameter {p.name}: trainable must be true or false")
        rows = entry.get("trainable_rows")
        if rows is not None:
            n = p.value.m.shape[0]
            if not isinstance(rows, list) or len(rows) > n:
                raise self.fail(f"parameter {p.name}: trainable_rows must be null or a list of at most {n} rows")
            for r in rows:
                self.int_in(r, 0, n - 1, f"parameter {p.name}: a trainable row")
            if len(set(rows)) != len(rows):
                raise self.fail(f"parameter {p.name}: trainable_rows repeats a row")
            rows = np.asarray(rows, dtype=np.int64)
        return Scale(S, U, D), trainable, rows

    def values(self, name: str, arr: np.ndarray, limit: int, what: str) -> None:
        if arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < -limit or hi > limit:
                raise self.fail(f"tensor {name} holds values in [{lo}, {hi}]; {what} must lie in "
                                f"[{-limit}, {limit}]")


def _open_file(path: Path):
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def _size(fh) -> int:
    size = fh.seek(0, os.SEEK_END)
    fh.seek(0)
    return size


def read_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata document of a model file (header and document checked; no tensor read)."""
    path = Path(path)
    reader = _Reader(path)
    with _open_file(path) as fh:
        meta, _, _ = reader.header(fh, _size(fh))
    return reader.document(meta)


def load_model(path: str | os.PathLike) -> tuple[Sequential, dict]:
    """Rebuild a model from a file: returns ``(model, info)``. Raises :class:`ModelFileError`
    (one line) for any file that is not a valid tintin model; see the module docstring."""
    path = Path(path)
    with _open_file(path) as fh:
        return _guarded_load(fh, path)


def load_model_bytes(data: bytes, name: str = "model bytes") -> tuple[Sequential, dict]:
    """:func:`load_model` of a model file's content held in memory (a message, an archive
    member); ``name`` labels the errors."""
    return _guarded_load(io.BytesIO(data), name)


def _guarded_load(fh, label) -> tuple[Sequential, dict]:
    try:
        return _load(fh, label)
    except ModelFileError:
        raise
    except RecursionError:
        raise ModelFileError(f"{label}: the model description is nested too deeply") from None
    except MemoryError:
        raise ModelFileError(f"{label}: the model is too large to load") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read {label}: {exc.strerror or type(exc).__name__}") from None


def _load(fh, label) -> tuple[Sequential, dict]:
    reader = _Reader(label)
    size = _size(fh)
    meta, entries, data_start = reader.header(fh, size)
    doc = reader.document(meta)
    model = reader.build(doc["spec"])
    params = model.parameters()
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise reader.fail("two parameters share a name (layer names repeat across blocks)")
    described = doc["parameters"]
    for name in described:
        if name not in names:
            raise reader.fail(f"describes a parameter {str(name)[:60]!r} that the model does not have")
    plan = []
    expected = set()
    for p in params:
        if p.name not in described:
            raise reader.fail(f"parameter {p.name} is not described in the metadata")
        scale, trainable, rows = reader.parameter_entry(p, described[p.name])
        dtype, shape = np.dtype(p.value.m.dtype), tuple(p.value.m.shape)
        if p.name not in entries:
            raise reader.fail(f"tensor {p.name} is missing")
        stored_dtype, stored_shape = entries[p.name][:2]
        if stored_shape != shape or stored_dtype != dtype:
            raise reader.fail(f"tensor {p.name} has shape {stored_shape} {_DTYPE_NAMES.get(stored_dtype)}, "
                              f"the model needs {shape} {_DTYPE_NAMES[dtype]}")
        expected.add(p.name)
        momentum = f"{p.name}.momentum"
        if momentum in entries:
            want = shape if rows is None else (len(rows),) + shape[1:]
            m_dtype, m_shape = entries[momentum][:2]
            if m_dtype != np.dtype(np.int64) or m_shape != want:
                raise reader.fail(f"tensor {momentum} has shape {m_shape} {_DTYPE_NAMES.get(m_dtype)}, "
                                  f"the optimiser needs {want} I64")
            expected.add(momentum)
        remainder = f"{p.name}.remainder"
        if remainder in entries:
            r_dtype, r_shape = entries[remainder][:2]
            if p.kind != "weight" or r_dtype != np.dtype(np.int8) or r_shape != shape:
                raise reader.fail(f"tensor {remainder} has shape {r_shape} {_DTYPE_NAMES.get(r_dtype)}, "
                                  f"the error feedback needs {shape} I8 (weights only)")
            expected.add(remainder)
        feedback_bits = remainder_bits(described[p.name], remainder in entries, p.name, reader.fail)
        row_exp = f"{p.name}.row_exp"
        if p.row_exp is not None:  # the model's config gives this weight per-row exponents
            if row_exp not in entries:
                raise reader.fail(f"tensor {row_exp} is missing (the model has per-row weight scales)")
            e_dtype, e_shape = entries[row_exp][:2]
            if e_dtype != np.dtype(np.int8) or e_shape != shape[:1]:
                raise reader.fail(f"tensor {row_exp} has shape {e_shape} {_DTYPE_NAMES.get(e_dtype)}, "
                                  f"the per-row scales need {shape[:1]} I8")
            expected.add(row_exp)
        plan.append((p, scale, trainable, rows, momentum if momentum in entries else None,
                     remainder if remainder in entries else None, row_exp if p.row_exp is not None else None,
                     feedback_bits))
    extra = sorted(set(entries) - expected)
    if extra:
        raise reader.fail(f"holds a tensor {extra[0][:60]!r} that the model does not have")
    fh.seek(data_start)
    data = bytearray(size - data_start)
    if fh.readinto(data) != len(data):
        raise reader.fail("is truncated (the file changed while it was read)")

    def tensor(name: str) -> np.ndarray:
        dtype, shape, start, stop = entries[name]
        arr = np.frombuffer(data, dtype=dtype, count=(stop - start) // dtype.itemsize, offset=start).reshape(shape)
        arr = arr if arr.flags.aligned else arr.copy()
        return arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder not in "=|" else arr

    for p, scale, trainable, rows, momentum, remainder, row_exp, feedback_bits in plan:
        m = tensor(p.name)
        if row_exp is not None:
            e = tensor(row_exp)
            if e.size and (int(e.min()) < 0 or int(e.max()) > p.row_limit):
                raise reader.fail(f"tensor {row_exp} holds values in [{int(e.min())}, {int(e.max())}]; row "
                                  f"exponents of {p.name} must lie in [0, {p.row_limit}]")
            p.row_exp = e.copy()
        reader.values(p.name, m, *stored_value_range(p))
        p.assign(QTensor(m, scale))
        p.trainable = trainable
        p.trainable_rows = rows
        p.momentum = None
        if momentum is not None:
            v = tensor(momentum)
            reader.values(momentum, v, *stored_value_range(p, momentum=True))
            p.momentum = v
        p.remainder = None
        if remainder is not None:
            r = tensor(remainder)
            problem = remainder_problem(remainder, r, feedback_bits)
            if problem:
                raise reader.fail(problem)
            p.remainder = r.copy()
        p.feedback_bits = feedback_bits
    return model, doc.get("info", {})
