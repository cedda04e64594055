"""Calibration and evaluation data for an import: a built-in data set, a ``.npz`` file or arrays.

* a built-in data set name (``digits``, ``mnist5k``, ...) or a :class:`tintin.data.Dataset`: the
  calibration batch comes from its training split, accuracy is measured on its test split; inputs
  are its int8 mantissas, the float model sees their real values ``x * 2**input_exponent``;
* a ``.npz`` file with ``x_train`` (float, or int8 with an ``input_exponent`` entry), optional
  ``y_train``, ``x_test``, ``y_test`` (or just ``x`` and optional ``y``): float inputs are quantised
  with :func:`tintin.data.quantize_inputs`'s exponent rule over the calibration batch; accuracy is
  measured on the test split when there is one, else on all of ``x_train``;
* ``(x, y)`` arrays in Python (``y`` may be ``None``), like a ``.npz`` with ``x_train`` only.

The calibration batch is ``calib_samples`` samples drawn without replacement from the training
split with a seeded generator (``seed``), the same ones for the same seed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import data as tdata
from .errors import InteropError


@dataclass(frozen=True)
class CalibrationData:
    name: str
    input_exponent: int
    calib_q: np.ndarray          #: int8 calibration batch
    calib_real: np.ndarray       #: what the float model sees for it
    eval_q: np.ndarray           #: int8 evaluation samples
    eval_real: np.ndarray
    eval_labels: np.ndarray | None
    num_classes: int | None
    dataset: object | None = None  #: the tintin Dataset when one was given


def _pick(n: int, k: int, seed: int) -> np.ndarray:
    if k < 1:
        raise InteropError(f"calibration needs at least 1 sample, got {k}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    return np.sort(rng.permutation(n)[:min(k, n)])


def _from_dataset(ds, k: int, seed: int) -> CalibrationData:
    idx = _pick(len(ds.x_train), k, seed)
    cq = np.ascontiguousarray(ds.x_train[idx])
    return CalibrationData(ds.name, ds.input_exponent, cq, ds.real(cq), np.ascontiguousarray(ds.x_test),
                           ds.real(ds.x_test), np.asarray(ds.y_test), ds.num_classes, ds)


def _labels(y, n: int, what: str) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise InteropError(f"{what}: labels must be {n} integers, got {y.dtype} {y.shape}")
    if n and y.min() < 0:
        raise InteropError(f"{what}: labels must be >= 0")
    return y.astype(np.int64)


def _from_arrays(name: str, x_train, y_train, x_test, y_test, k: int, seed: int,
                 input_exponent: int | None) -> CalibrationData:
    x_train = np.asarray(x_train)
    if x_train.ndim < 2 or len(x_train) == 0:
        raise InteropError(f"{name}: x_train must be a non-empty array (N, ...), got shape {x_train.shape}")
    y_train = _labels(y_train, len(x_train), name)
    has_test = x_test is not None
    x_eval = np.asarray(x_test) if has_test else x_train
    y_eval = _labels(y_test, len(x_eval), name) if has_test else y_train
    if x_eval.shape[1:] != x_train.shape[1:]:
        raise InteropError(f"{name}: test samples {x_eval.shape[1:]} differ from training samples {x_train.shape[1:]}")
    idx = _pick(len(x_train), k, seed)
    if x_train.dtype == np.int8:
        if input_exponent is None:
            raise InteropError(f"{name}: int8 inputs need their input exponent (an 'input_exponent' entry)")
        e = int(input_exponent)
        cq, eq = x_train[idx], x_eval.astype(np.int8)
        if min(int(cq.min()), int(eq.min())) < -127:
            raise InteropError(f"{name}: int8 inputs must be in [-127, 127]")
        cr, er = tdata.dequantize(cq, e), tdata.dequantize(eq, e)
    else:
        if x_train.dtype.kind not in "fiu":
            raise InteropError(f"{name}: inputs must be numeric, got {x_train.dtype}")
        cr = x_train[idx].astype(np.float64)
        er = x_eval.astype(np.float64)
        if not (np.all(np.isfinite(cr)) and np.all(np.isfinite(er))):
            raise InteropError(f"{name}: inputs contain NaN or infinite values")
        try:
            cq, e = tdata.quantize_inputs(cr, input_exponent)
            eq, _ = tdata.quantize_inputs(er, e)
        except tdata.DataError as exc:
            raise InteropError(f"{name}: {exc}") from None
    labels = [y for y in (y_train, y_eval) if y is not None]
    classes = int(max(int(y.max()) for y in labels) + 1) if labels and any(len(y) for y in labels) else None
    return CalibrationData(name, e, np.ascontiguousarray(cq), cr, np.ascontiguousarray(eq), er, y_eval, classes)


def _from_npz(path: Path, k: int, seed: int, input_exponent: int | None) -> CalibrationData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InteropError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0][:100]})") from None
    x = arrays.get("x_train", arrays.get("x"))
    if x is None:
        raise InteropError(f"{path}: needs an array 'x_train' (or 'x'); it has {', '.join(sorted(arrays)) or 'none'}")
    y = arrays.get("y_train", arrays.get("y"))
    if input_exponent is None and "input_exponent" in arrays:
        input_exponent = int(arrays["input_exponent"])
    return _from_arrays(path.name, x, y, arrays.get("x_test"), arrays.get("y_test"), k, seed, input_exponent)


def calibration_data(source, calib_samples: int = 32, seed: int = 0,
                     input_exponent: int | None = None) -> CalibrationData:
    """Resolve ``source`` (see the module docstring) into calibration and evaluation data."""
    if isinstance(source, tdata.Dataset):
        return _from_dataset(source, calib_samples, seed)
    if isinstance(source, tuple) and len(source) == 2:
        return _from_arrays("arrays", source[0], source[1], None, None, calib_samples, seed, input_exponent)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.endswith(".npz"):
            path = Path(text)
            if not path.is_file():
                raise InteropError(f"calibration file not found: {path}")
            return _from_npz(path, calib_samples, seed, input_exponent)
        try:
            ds = tdata.load(text)
        except tdata.DataError as exc:
            raise InteropError(f"calibration data: {exc}") from None
        return _from_dataset(ds, calib_samples, seed)
    raise InteropError(f"calibration data must be a data set name, a .npz path, a Dataset or (x, y) arrays, "
                       f"got {type(source).__name__}")
