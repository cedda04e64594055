"""A :class:`~tintin.data.Dataset` from the user's own arrays: validation, labels, an optional seeded
stratified test split, and the one host-side quantisation of float inputs.

:func:`dataset_from_arrays` is the single implementation behind ``Dataset.from_arrays`` and behind
every data file (``.csv``, ``.npz``, ``.ts``) that the command line accepts. Its rules:

* ``x`` arrays have shape ``(N, *sample_shape)`` with at least one sample axis: ``(N, F)`` feature
  vectors, ``(N, C, L)`` series, ``(N, C, H, W)`` images. Axis 1 is the *channel* axis.
* Labels are integer class indices in ``[0, num_classes)`` (floats are accepted when they hold whole
  numbers), or class names (strings): names are sorted to give the indices, unless ``class_names``
  fixes the order. ``num_classes`` is ``len(class_names)`` when given, else the largest label + 1.
* Without a test split, ``test_fraction`` (default :data:`DEFAULT_TEST_FRACTION`) of the samples
  go to the test split, class by class (:func:`tintin.data.split.stratified_split`, seeded).
* Float inputs (``input_exponent=None``) are standardised per channel with the mean and standard
  deviation of the *training split* (over samples and every axis after the channel axis), then
  quantised to int8 with exponent -5 (:func:`tintin.data.quantize.quantize_sensor`): one standard
  deviation is 32 steps, values beyond 3.97 standard deviations saturate. The statistics are kept
  in ``extras['channel_mean']`` and ``extras['channel_std']``.
* With ``input_exponent=e`` the inputs are int8 mantissas already (whole numbers in
  ``[-127, 127]``) with real value ``x * 2**e``, and are taken as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .dataset import Dataset
from .errors import DataError, EmptyDataError, LabelError, NonFiniteValueError, RaggedDataError, SplitError
from .quantize import EXPONENT_MAX, EXPONENT_MIN, INT8_LIMIT, quantize_sensor
from .split import stratified_split

__all__ = ["DEFAULT_TEST_FRACTION", "DEFAULT_SPLIT_SEED", "MAX_CLASSES", "dataset_from_arrays"]

#: Share of the samples that goes to the test split when the data has none.
DEFAULT_TEST_FRACTION = 0.2
#: Seed of that split (independent of the training seed, so every run tests on the same samples).
DEFAULT_SPLIT_SEED = 0
#: Integer labels must be below this (a guard against a wrong column taken for labels).
MAX_CLASSES = 4096


def _features(x: Any, what: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(x)
    except ValueError:  # nested sequences of different lengths
        raise RaggedDataError(f"{where}: {what} has samples of different shapes") from None
    if arr.dtype == object or arr.dtype.kind in "USVMmc":
        raise DataError(f"{where}: {what} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise DataError(f"{where}: {what} must have shape (N, ...) with one sample per row, got {arr.shape}")
    if arr.shape[0] == 0:
        raise EmptyDataError(f"{where}: {what} has no samples")
    if 0 in arr.shape[1:]:
        raise EmptyDataError(f"{where}: {what} samples are empty (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise NonFiniteValueError(f"{where}: {what}[{', '.join(map(str, index))}] is {arr[index]} "
                                  f"(NaN and infinite values are not allowed)")
    return arr


def _labels_text(y: np.ndarray) -> np.ndarray:
    return y.astype(str) if y.dtype.kind in "SU" else y


def _as_integers(y: np.ndarray, what: str, where: str) -> np.ndarray | None:
    """Integer view of numeric labels, or of text labels that all spell integers; ``None`` for names."""
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LabelError(f"{where}: {what}[{i}] is {y[i]!r}: labels must be whole class indices")
        return y.astype(np.int64)
    if y.dtype.kind == "U":
        text = np.char.strip(y)
        numeric = [_number(v) for v in text]
        if all(v is not None for v in numeric):
            values = np.array(numeric, dtype=np.float64)
            return _as_integers(values, what, where)
        return None
    raise LabelError(f"{where}: {what} must hold class indices or class names, got dtype {y.dtype}")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _class_indices(y_parts: list[tuple[str, np.ndarray]], class_names: Sequence[str] | None,
                   where: str) -> tuple[list[np.ndarray], tuple[str, ...]]:
    names = None if class_names is None else tuple(str(n) for n in np.asarray(class_names).reshape(-1))
    if names is not None and (not names or len(set(names)) != len(names)):
        raise LabelError(f"{where}: class_names must be distinct and non-empty, got {list(names)[:5]}")
    integers = [_as_integers(_labels_text(y), what, where) for what, y in y_parts]
    if all(i is not None for i in integers):
        top = max(int(i.max()) for i in integers)
        for (what, _), ints in zip(y_parts, integers):
            low = int(ints.min())
            if low < 0:
                raise LabelError(f"{where}: {what} has label {low}: class indices start at 0")
            limit = len(names) if names is not None else MAX_CLASSES
            if int(ints.max()) >= limit:
                i = int(np.argmax(ints))
                why = (f"{len(names)} class names are given" if names is not None
                       else f"at most {MAX_CLASSES} classes are supported")
                raise LabelError(f"{where}: {what}[{i}] is {int(ints[i])}, out of range ({why})")
        num_classes = len(names) if names is not None else top + 1
        if num_classes < 2:
            raise LabelError(f"{where}: every label is {top}: a classifier needs at least 2 classes")
        return [i for i in integers], names or tuple(str(c) for c in range(num_classes))
    texts = [np.char.strip(_labels_text(y).astype(str)) for _, y in y_parts]
    if names is None:
        names = tuple(sorted(set().union(*(set(t.tolist()) for t in texts))))
        if len(names) < 2:
            raise LabelError(f"{where}: every label is {names[0]!r}: a classifier needs at least 2 classes")
        if len(names) > MAX_CLASSES:
            raise LabelError(f"{where}: {len(names)} distinct labels: at most {MAX_CLASSES} classes are "
                             f"supported (is the label column right?)")
    index = {n: i for i, n in enumerate(names)}
    out = []
    for (what, _), t in zip(y_parts, texts):
        unknown = sorted(set(t.tolist()) - set(index))
        if unknown:
            raise LabelError(f"{where}: {what} has labels {unknown[:3]} that are not in class_names "
                             f"{list(names)[:10]}")
        out.append(np.array([index[v] for v in t.tolist()], dtype=np.int64))
    return out, names


def _labels(y: Any, n: int, what: str, where: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise LabelError(f"{where}: {what} must hold one label per sample ({n}), got shape {arr.shape}")
    if arr.dtype == object:
        raise LabelError(f"{where}: {what} must hold class indices or class names, got Python objects")
    return arr


def _split(y: np.ndarray, fraction: float | None, seed: int, names: tuple[str, ...],
           where: str) -> tuple[np.ndarray, np.ndarray]:
    f = DEFAULT_TEST_FRACTION if fraction is None else fraction
    if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) or \
            not (math.isfinite(float(f)) and 0 < float(f) < 1):
        raise SplitError(f"test fraction must be a number strictly between 0 and 1, got {f!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
        raise SplitError(f"split seed must be an integer in [0, 2**63), got {seed!r}")
    classes, counts = np.unique(y, return_counts=True)
    few = counts < 2
    if few.any():
        c = int(classes[np.argmax(few)])
        raise SplitError(f"{where}: class {names[c]!r} has {int(counts[np.argmax(few)])} sample; a stratified "
                         f"test split needs at least 2 per class (add samples or give a test split)")
    n_test = int(round(float(f) * len(y)))
    if not 0 < n_test < len(y):
        raise SplitError(f"{where}: a test fraction of {float(f):g} of {len(y)} samples leaves an empty split")
    train, test = stratified_split(y, n_test, int(seed))
    in_train = np.bincount(y[train], minlength=len(names))
    lost = [int(c) for c in classes if in_train[c] == 0]
    if lost:
        raise SplitError(f"{where}: a test fraction of {float(f):g} leaves class {names[lost[0]]!r} without "
                         f"training samples (add samples or lower the test fraction)")
    return train, test


def _check_exponent(e: Any) -> int:
    if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not EXPONENT_MIN <= int(e) <= EXPONENT_MAX:
        raise DataError(f"input exponent must be an integer in [{EXPONENT_MIN}, {EXPONENT_MAX}], got {e!r}")
    return int(e)


def _mantissas(x: np.ndarray, what: str, where: str) -> np.ndarray:
    values = x.astype(np.float64) if x.dtype.kind == "f" else x
    bad = (values != np.round(values)) | (values < -INT8_LIMIT) | (values > INT8_LIMIT)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{where}: {what}[{', '.join(map(str, index))}] is {x[index]}: with an input exponent "
                        f"the inputs must be int8 mantissas, whole numbers in [-127, 127]")
    return values.astype(np.int8)


def _standardise(x_train: np.ndarray, x_test: np.ndarray):
    """Per-channel standardisation with train statistics and int8 quantisation (exponent -5)."""
    def channels(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), x.shape[1], -1)

    quant = quantize_sensor(channels(x_train.astype(np.float64)), channels(x_test.astype(np.float64)))
    return (quant.train.reshape(x_train.shape), quant.test.reshape(x_test.shape), quant.exponent,
            {"channel_mean": quant.channel_mean, "channel_std": quant.channel_std})


def dataset_from_arrays(x_train: Any, y_train: Any, x_test: Any = None, y_test: Any = None, *,
                        class_names: Sequence[str] | None = None, input_exponent: int | None = None,
                        test_fraction: float | None = None, split_seed: int | None = None,
                        name: str = "arrays", description: str | None = None, source: str = "arrays",
                        synthetic: bool = False, citation: str = "the user's own data") -> Dataset:
    """A quantised :class:`Dataset` from real-valued (or int8) arrays; see the module docstring.

    Parameters
    ----------
    x_train, y_train:
        Samples ``(N, *sample_shape)`` and their labels ``(N,)`` (class indices or names).
    x_test, y_test:
        An optional test split (both or neither). Without it, a seeded stratified split is made.
    class_names:
        Names of the classes in index order (optional; with integer labels it fixes
        ``num_classes``, with text labels the order of the indices).
    input_exponent:
        ``None``: float inputs, standardised per channel and quantised. An integer ``e``: the inputs
        are int8 mantissas with real value ``x * 2**e``, taken as they are.
    test_fraction, split_seed:
        Share of the samples in the test split (default 0.2) and its seed (default 0) when there is
        no test split; giving ``test_fraction`` together with a test split is an error.
    name, description, source, synthetic, citation:
        What the data is. ``synthetic=True`` prefixes the description with ``SYNTHETIC``; a
        description that starts with ``SYNTHETIC`` marks the data synthetic.

    Raises
    ------
    DataError and its subclasses (EmptyDataError, NonFiniteValueError, LabelError, SplitError), each
    with a one-line message.
    """
    where = name
    xtr = _features(x_train, "x_train", where)
    ytr = _labels(y_train, len(xtr), "y_train", where)
    if (x_test is None) != (y_test is None):
        raise DataError(f"{where}: give both x_test and y_test, or neither")
    if x_test is not None:
        if test_fraction is not None:
            raise SplitError(f"{where}: the data has a test split, so a test fraction does not apply")
        xte = _features(x_test, "x_test", where)
        if xte.shape[1:] != xtr.shape[1:]:
            raise DataError(f"{where}: x_test samples have shape {xte.shape[1:]} but x_train samples "
                            f"{xtr.shape[1:]}")
        yte = _labels(y_test, len(xte), "y_test", where)
        (ytr, yte), names = _class_indices([("y_train", ytr), ("y_test", yte)], class_names, where)
    else:
        (y_all,), names = _class_indices([("y_train", ytr)], class_names, where)
        seed = DEFAULT_SPLIT_SEED if split_seed is None else split_seed
        train, test = _split(y_all, test_fraction, seed, names, where)
        xtr, xte, ytr, yte = xtr[train], xtr[test], y_all[train], y_all[test]
    extras: dict[str, np.ndarray] = {}
    if input_exponent is None:
        if xtr.dtype == np.int8:
            raise DataError(f"{where}: the inputs are int8 already: give their input exponent e (real value "
                            f"x * 2**e) to take them as they are, or store real values to have them quantised")
        qtr, qte, exponent, extras = _standardise(xtr, xte)
        how = "standardised per channel with train statistics, int8 at 2^-5"
    else:
        exponent = _check_exponent(input_exponent)
        qtr, qte = _mantissas(xtr, "x_train", where), _mantissas(xte, "x_test", where)
        how = f"int8 mantissas taken as given, scale 2^{exponent}"
    n = len(qtr) + len(qte)
    text = description or f"{name}: {n} samples of shape {qtr.shape[1:]}, {len(names)} classes ({how})"
    if synthetic and not text.startswith("SYNTHETIC"):
        text = f"SYNTHETIC {text}"
    synthetic = synthetic or text.startswith("SYNTHETIC")
    return Dataset(name=name, x_train=qtr, y_train=ytr, x_test=qte, y_test=yte, input_exponent=exponent,
                   num_classes=len(names), class_names=names, synthetic=synthetic,
                   description=" ".join(text.split()), citation=citation, source=source, extras=extras)
