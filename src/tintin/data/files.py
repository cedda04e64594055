"""The user's data files (``.csv``, ``.csv.gz``, ``.npz``, ``.ts``) and :func:`resolve_dataset`,
which takes a built-in data-set name or a file path: what every ``--dataset`` option calls.

Formats (details in ``docs/own-data.md``):

* ``.npz`` (``np.savez``): ``x_train``, ``y_train`` and optionally ``x_test``, ``y_test``,
  ``class_names`` (strings) and ``description`` (a string). Loaded with ``allow_pickle=False``.
* ``.csv`` / ``.csv.gz``: one sample per row, feature columns and a label column
  (``label_column``: name or index, default the last); header row detected; leading ``#`` lines
  are comments, the first of them becomes the description. See :func:`tintin.data.readers.parse_csv`.
* ``.ts`` (sktime/aeon): series of unequal length need ``series_length`` (``"max"``, ``"min"`` or a
  number: truncate, or pad by repeating the last value). A file named ``<stem>_TRAIN.ts`` with a
  ``<stem>_TEST.ts`` beside it takes that file as its test split.

Everything then goes through :func:`tintin.data.arrays.dataset_from_arrays` (labels, the seeded
stratified test split, quantisation).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import dataset_from_arrays
from .dataset import Dataset
from .errors import (DataError, DataFileNotFoundError, LabelError, ModelMismatchError, SampleShapeError,
                     UnknownDatasetError, UnsupportedFileError)
from .readers import read_csv, read_npz, read_ts, read_ts_pair
from .registry import load, names

__all__ = ["FILE_SUFFIXES", "is_data_file", "load_file", "resolve_dataset", "check_sample_shape", "check_model_fits"]

#: File name endings that :func:`load_file` reads.
FILE_SUFFIXES = (".csv", ".csv.gz", ".npz", ".ts")
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names", "description")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in sorted(FILE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), path.suffix.lower())


def is_data_file(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether ``name_or_path`` means a file rather than a built-in name: it is not a registered
    name and it has a path separator, a data-file suffix, or names an existing file."""
    text = os.fspath(name_or_path)
    if text in names():
        return False
    return (os.sep in text or "/" in text or _suffix(Path(text)) in FILE_SUFFIXES
            or Path(text).suffix != "" or Path(text).exists())


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(FILE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len("_TRAIN")] if name.upper().endswith("_TRAIN") else name


def _npz(path: Path, options: dict[str, Any]) -> Dataset:
    arrays = read_npz(path)
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise DataError(f"{path}: needs arrays x_train and y_train (optional x_test, y_test, class_names, "
                        f"description); found {found}")
    description = None
    if "description" in arrays:
        value = arrays["description"]
        if value.dtype.kind not in "US" or value.size != 1:
            raise DataError(f"{path}: 'description' must be one string")
        description = str(value.reshape(-1)[0])
    names_ = arrays.get("class_names")
    if names_ is not None and (names_.dtype.kind not in "US" or names_.ndim != 1):
        raise LabelError(f"{path}: 'class_names' must be a 1-D array of strings, got {names_.dtype} {names_.shape}")
    return dataset_from_arrays(arrays["x_train"], arrays["y_train"], arrays.get("x_test"), arrays.get("y_test"),
                               class_names=None if names_ is None else names_.astype(str).tolist(),
                               description=description, **options)


def _csv(path: Path, label_column: str | int | None, options: dict[str, Any]) -> Dataset:
    table = read_csv(path, label_column)
    description = table.comments[0] if table.comments and table.comments[0] else None
    return dataset_from_arrays(table.features, table.labels, description=description, **options)


def _ts(path: Path, series_length: int | str | None, options: dict[str, Any]) -> Dataset:
    stem = path.name[: -len(".ts")]
    test_path = path.with_name(stem[: -len("TRAIN")] + ("TEST" if stem.endswith("TRAIN") else "test") + ".ts") \
        if stem.upper().endswith("_TRAIN") else None
    if test_path is None or not test_path.is_file():
        train = read_ts(path, series_length)
        return dataset_from_arrays(train.x, train.y, class_names=train.class_names,
                                   description=train.header.get("problemname"), **options)
    train, test = read_ts_pair(path, test_path, series_length)
    options = {**options, "source": f"{options['source']} + {test_path}"}
    return dataset_from_arrays(train.x, train.y, test.x, test.y, class_names=train.class_names,
                               description=train.header.get("problemname"), **options)


def load_file(path: str | os.PathLike[str], *, label_column: str | int | None = None,
              input_exponent: int | None = None, test_fraction: float | None = None,
              split_seed: int | None = None, series_length: int | str | None = None) -> Dataset:
    """A :class:`Dataset` from a ``.csv``, ``.csv.gz``, ``.npz`` or ``.ts`` file (see the module
    docstring and :func:`tintin.data.arrays.dataset_from_arrays`).

    ``label_column`` applies to CSV files only, ``series_length`` to ``.ts`` files only. The data
    set's name is the file name without its suffix (and without ``_TRAIN``); a description
    starting with ``SYNTHETIC`` marks the data as synthetic.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataFileNotFoundError(f"{p}: no such data file")
    if not p.is_file():
        raise DataFileNotFoundError(f"{p}: not a file")
    suffix = _suffix(p)
    if suffix not in FILE_SUFFIXES:
        raise UnsupportedFileError(f"{p}: unknown data file type {suffix or '(no suffix)'!r}; use .csv, "
                                   f".csv.gz, .npz or .ts")
    if label_column is not None and suffix not in (".csv", ".csv.gz"):
        raise DataError(f"{p}: a label column applies to CSV files only")
    if series_length is not None and suffix != ".ts":
        raise DataError(f"{p}: a series length applies to .ts files only")
    options = dict(name=_stem(p), source=str(p), input_exponent=input_exponent, test_fraction=test_fraction,
                   split_seed=split_seed)
    if suffix == ".npz":
        ds = _npz(p, options)
    elif suffix == ".ts":
        ds = _ts(p, series_length, options)
    else:
        ds = _csv(p, label_column, options)
    return ds


def resolve_dataset(name_or_path: str | os.PathLike[str], *, label_column: str | int | None = None,
                    input_exponent: int | None = None, test_fraction: float | None = None,
                    split_seed: int | None = None, series_length: int | str | None = None,
                    data_dir: str | os.PathLike[str] | None = None, **options: Any) -> Dataset:
    """A built-in data set by name (:func:`tintin.data.load`) or a data file by path (:func:`load_file`).

    A registered name always means the built-in set (write ``./digits.csv`` for a file of that name).
    The file options (``label_column``, ``input_exponent``, ``test_fraction``, ``split_seed``,
    ``series_length``) do not apply to built-in sets; ``data_dir`` and generator ``options`` apply to
    built-in sets only.

    >>> from tintin.data import resolve_dataset
    >>> ds = resolve_dataset("examples/vibration/vibration_features.csv")     # doctest: +SKIP
    >>> ds = resolve_dataset("my.npz", input_exponent=-7)                       # doctest: +SKIP
    """
    text = os.fspath(name_or_path)
    file_options = dict(label_column=label_column, input_exponent=input_exponent, test_fraction=test_fraction,
                        split_seed=split_seed, series_length=series_length)
    if not is_data_file(text):
        given = [k.replace("_", " ") for k, v in file_options.items() if v is not None]
        if given:
            raise DataError(f"{', '.join(given)}: only for data files, not the built-in data set {text!r}")
        try:
            return load(text, data_dir=data_dir, **options)
        except UnknownDatasetError as exc:
            raise UnknownDatasetError(f"{exc}; or a .csv, .npz or .ts file") from None
    if options or data_dir is not None:
        raise DataError(f"{text}: data-set options {', '.join(sorted(options)) or 'data_dir'} apply to built-in "
                        f"data sets only")
    return load_file(text, **file_options)


def check_sample_shape(dataset: Dataset, input_shape: tuple[int, ...], model: str = "the model") -> None:
    """Raise :class:`SampleShapeError` unless the samples of ``dataset`` have shape ``input_shape``."""
    have, want = tuple(dataset.sample_shape), tuple(int(s) for s in input_shape)
    if have == want:
        return
    hint = ""
    if len(have) == 1 and int(np.prod(want)) != have[0]:
        hint = f" ({have[0]} features per sample, {int(np.prod(want))} expected)"
    raise SampleShapeError(f"data set {dataset.name} has samples of shape {have} but {model} expects "
                           f"{want}{hint}")


def check_model_fits(source, model, what: str = "the model") -> None:
    """Raise :class:`ModelMismatchError` (:class:`SampleShapeError` for the shape) unless ``model``
    takes the samples of ``source`` (a :class:`Dataset`, a stream or a fleet source: anything with
    ``name``, ``sample_shape``, ``input_exponent``, ``num_classes`` and optionally ``task``) as they
    are: the same sample shape, a cross-entropy head with one output per class (an MSE head for a
    regression task), and the same input scale.

    >>> from tintin.data import load
    >>> from tintin.nn import build_model
    >>> ds = load("digits")
    >>> check_model_fits(ds, build_model("mlp", ds.sample_shape, 5, input_exponent=ds.input_exponent))
    Traceback (most recent call last):
    ...
    tintin.data.errors.ModelMismatchError: data set digits has 10 classes but the model predicts 5 outputs
    """
    check_sample_shape(source, tuple(model.input_shape), what)
    task = getattr(source, "task", "classification")
    want = "mse" if task == "regression" else "cross_entropy"
    if model.loss != want:
        raise ModelMismatchError(f"{source.name} is a {task} task but the loss of {what} is {model.loss}")
    if task == "classification" and model.output_shape_[0] != source.num_classes:
        raise ModelMismatchError(f"data set {source.name} has {source.num_classes} classes but {what} predicts "
                                 f"{model.output_shape_[0]} outputs")
    if model.input_exponent != source.input_exponent:
        raise ModelMismatchError(f"data set {source.name} is quantised with scale 2^{source.input_exponent} but {what} "
                                 f"takes inputs at 2^{model.input_exponent}")
