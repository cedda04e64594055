"""Exceptions of :mod:`tintin.data`.

Every message is a single line meant to be shown to a user as is (the command-line interface prints
it without a traceback).
"""

from __future__ import annotations

from tintin.errors import TintinError

__all__ = [
    "DataError",
    "UnknownDatasetError",
    "DatasetUnavailableError",
    "CorruptDataError",
    "DataFileNotFoundError",
    "UnsupportedFileError",
    "EmptyDataError",
    "NonFiniteValueError",
    "LabelError",
    "RaggedDataError",
    "LabelColumnError",
    "SplitError",
    "ModelMismatchError",
    "SampleShapeError",
]


class DataError(TintinError):
    """Base class of every error raised by :mod:`tintin.data` (also used for invalid options)."""


class UnknownDatasetError(DataError):
    """The requested data set name is not registered; the message lists the valid names."""


class DatasetUnavailableError(DataError):
    """The source files of a data set are not installed; the message names the install command."""


class CorruptDataError(DataError):
    """A source file (IDX, ``.ts``, CSV, ``.npz``) exists but its content is malformed or inconsistent
    (including an unreadable archive and pickled object arrays, which are refused)."""


class DataFileNotFoundError(DataError):
    """A data file given by path does not exist (or is not a regular file)."""


class UnsupportedFileError(DataError):
    """A data file's extension is none of ``.csv``, ``.csv.gz``, ``.npz`` and ``.ts``."""


class EmptyDataError(CorruptDataError):
    """A data file or array holds no samples."""


class NonFiniteValueError(CorruptDataError):
    """An input value is NaN or infinite; the message says where."""


class LabelError(CorruptDataError):
    """A label is not an integer class index, is outside ``[0, num_classes)``, or is not a known class name."""


class RaggedDataError(CorruptDataError):
    """Rows (CSV) or series (``.ts``) differ in length; the message names the first offending one."""


class LabelColumnError(DataError):
    """The ``label_column`` of a CSV file does not name or index one of its columns."""


class SplitError(DataError):
    """A stratified test split cannot be made (too few samples of a class, a bad fraction)."""


class ModelMismatchError(DataError):
    """A data set (or stream, or fleet source) does not fit a model: its sample shape, task, number
    of classes or input scale differs from what the model takes."""


class SampleShapeError(ModelMismatchError):
    """The samples of a data set do not have the shape a model expects."""
