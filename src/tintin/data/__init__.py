"""Offline data sets, synthetic sensor generators and input quantisation (imports numpy only).

Quick use::

    from tintin import data
    ds = data.load("digits")              # Dataset: int8 x_train/x_test, int64 labels
    real = ds.real(ds.x_train)            # float64 values: x * 2**ds.input_exponent
    data.availability()                   # [(name, available, reason), ...]

All inputs are int8 mantissas in [-127, 127] with one power-of-two scale per data set; see
:mod:`tintin.data.quantize` and ``docs/datasets.md``.
"""

from .dataset import Dataset
from .errors import CorruptDataError, DataError, DatasetUnavailableError, UnknownDatasetError
from .quantize import dequantize, quantize_inputs, quantize_sensor
from .registry import availability, describe, load, names

__all__ = [
    "Dataset",
    "load",
    "names",
    "availability",
    "describe",
    "quantize_inputs",
    "dequantize",
    "quantize_sensor",
    "DataError",
    "UnknownDatasetError",
    "DatasetUnavailableError",
    "CorruptDataError",
]
