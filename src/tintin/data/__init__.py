"""Offline data sets, synthetic sensor generators and input quantisation (imports numpy only).

Quick use::

    from tintin import data
    ds = data.load("digits")              # Dataset: int8 x_train/x_test, int64 labels
    real = ds.real(ds.x_train)            # float64 values: x * 2**ds.input_exponent
    data.availability()                   # [(name, available, reason), ...]
    mine = data.resolve_dataset("my.csv") # a built-in name or a .csv / .npz / .ts file
    arr = data.Dataset.from_arrays(x, y)  # the user's arrays: split, quantised (docs/own-data.md)

All inputs are int8 mantissas in [-127, 127] with one power-of-two scale per data set; see
:mod:`tintin.data.quantize` and ``docs/datasets.md``.
"""

from . import errors
from .arrays import DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION, dataset_from_arrays
from .dataset import Dataset
from .errors import (CorruptDataError, DataError, DataFileNotFoundError, DatasetUnavailableError, EmptyDataError,
                     LabelColumnError, LabelError, ModelMismatchError, NonFiniteValueError, RaggedDataError,
                     SampleShapeError,
                     SplitError, UnknownDatasetError, UnsupportedFileError)
from .files import check_model_fits, check_sample_shape, load_file, resolve_dataset
from .quantize import dequantize, quantize_inputs, quantize_sensor
from .registry import availability, describe, load, names

__all__ = [
    "Dataset",
    "load",
    "names",
    "availability",
    "describe",
    "resolve_dataset",
    "load_file",
    "dataset_from_arrays",
    "check_sample_shape",
    "check_model_fits",
    "DEFAULT_TEST_FRACTION",
    "DEFAULT_SPLIT_SEED",
    "quantize_inputs",
    "dequantize",
    "quantize_sensor",
    *errors.__all__,
]
