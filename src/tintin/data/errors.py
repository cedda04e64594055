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
]


class DataError(TintinError):
    """Base class of every error raised by :mod:`tintin.data` (also used for invalid options)."""


class UnknownDatasetError(DataError):
    """The requested data set name is not registered; the message lists the valid names."""


class DatasetUnavailableError(DataError):
    """The source files of a data set are not installed; the message names the install command."""


class CorruptDataError(DataError):
    """A source file (IDX, ``.ts``, CSV) exists but its content is malformed or inconsistent."""
