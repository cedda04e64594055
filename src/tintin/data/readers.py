"""Readers of the file formats tintin takes data from: IDX (MNIST family), ``.ts`` (sktime/aeon time
series), CSV tables and NumPy ``.npz`` archives.

All are small, dependency-free (numpy only) and strict: anything malformed raises
:class:`~tintin.data.errors.CorruptDataError` (or one of its subclasses) with a one-line message
naming the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import (CorruptDataError, EmptyDataError, LabelColumnError, LabelError,
                     NonFiniteValueError, RaggedDataError)

__all__ = ["read_idx", "read_idx_bytes", "TsData", "read_ts", "read_ts_pair", "parse_ts", "fit_series_length",
           "CsvTable", "parse_csv", "read_csv", "read_npz"]

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/ "file formats").
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise CorruptDataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptDataError(f"{path}: damaged gzip stream: {exc}") from None
    return raw


def read_idx_bytes(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Decode an IDX buffer: 2 zero bytes, a type code, the number of dimensions ``d``, then ``d``
    big-endian uint32 sizes and exactly ``prod(sizes)`` items. Returns a native-endian array."""
    if len(data) < 4:
        raise CorruptDataError(f"{where}: IDX file too short ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise CorruptDataError(f"{where}: bad IDX magic number {data[:4].hex()}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise CorruptDataError(f"{where}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise CorruptDataError(f"{where}: IDX file declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDataError(f"{where}: IDX header truncated")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        raise CorruptDataError(
            f"{where}: IDX payload is {actual} bytes but shape {shape} needs {expected}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array of its declared shape."""
    p = Path(path)
    return read_idx_bytes(_read_maybe_gzip(p), str(p))


@dataclass(frozen=True)
class TsData:
    """Content of a ``.ts`` file: ``x`` float64 ``(N, C, L)``, ``y`` int64 ``(N,)`` indices into
    ``class_names`` (the order of the ``@classLabel`` header), and the header as a dict."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    header: dict[str, str]


def _header_bool(header: dict[str, str], key: str, where: str, default: bool) -> bool:
    if key not in header:
        return default
    value = header[key].split()[0].lower() if header[key].split() else ""
    if value not in ("true", "false"):
        raise CorruptDataError(f"{where}: @{key} must be true or false, got {header[key]!r}")
    return value == "true"


def parse_ts(text: str, where: str = "<text>", series_length: int | str | None = None) -> TsData:
    """Parse the text of a ``.ts`` file (sktime/aeon time-series format) for classification.

    Supported: ``#`` comment lines, ``@key value`` header lines up to ``@data``, then one case per
    line with channels separated by ``:`` and comma-separated values, the class label last.
    Requires ``@classLabel true <names...>`` and no timestamps; missing values (``?``) are rejected.
    Checks ``@dimensions`` and ``@seriesLength`` when present.

    ``series_length`` is ``None`` (every series must have the same length, else
    :class:`RaggedDataError`), or ``"max"``, ``"min"`` or a positive integer: each series (each
    channel of each case) is then brought to that length by :func:`fit_series_length` (truncated
    to its first values, or padded at the end by repeating its last value).
    """
    header: dict[str, str] = {}
    rows: list[list[np.ndarray]] = []
    labels: list[str] = []
    in_data = False
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise CorruptDataError(f"{where}:{lineno}: expected a @header line before @data")
            key, _, value = line[1:].partition(" ")
            key = key.strip()
            if key.lower() == "data":
                in_data = True
                continue
            header[key.lower()] = value.strip()
            continue
        fields = line.split(":")
        if len(fields) < 2:
            raise CorruptDataError(f"{where}:{lineno}: a case needs channels and a class label")
        labels.append(fields[-1].strip())
        channels = []
        for ch in fields[:-1]:
            if "?" in ch or "(" in ch:
                raise CorruptDataError(
                    f"{where}:{lineno}: missing values and timestamps are not supported")
            try:
                channels.append(np.array([float(v) for v in ch.split(",")], dtype=np.float64))
            except ValueError:
                raise CorruptDataError(f"{where}:{lineno}: non-numeric value in a series") from None
        rows.append(channels)

    if not in_data:
        raise CorruptDataError(f"{where}: no @data section")
    if not rows:
        raise EmptyDataError(f"{where}: no cases after @data")
    if _header_bool(header, "timestamps", where, False):
        raise CorruptDataError(f"{where}: timestamped series are not supported")
    label_spec = header.get("classlabel", "").split()
    if not label_spec or label_spec[0].lower() != "true" or len(label_spec) < 2:
        raise CorruptDataError(f"{where}: @classLabel true <class names> is required")
    class_names = tuple(label_spec[1:])
    if len(set(class_names)) != len(class_names):
        raise CorruptDataError(f"{where}: duplicate class names in @classLabel")

    n_channels = {len(r) for r in rows}
    if len(n_channels) != 1:
        raise CorruptDataError(f"{where}: cases have different numbers of channels {sorted(n_channels)}")
    channels = n_channels.pop()
    if "dimensions" in header:
        try:
            declared = int(header["dimensions"])
        except ValueError:
            raise CorruptDataError(f"{where}: @dimensions is not an integer") from None
        if declared != channels:
            raise CorruptDataError(f"{where}: @dimensions {declared} but cases have {channels} channels")
    lengths = {len(ch) for r in rows for ch in r}
    if len(lengths) != 1 and series_length is None:
        raise RaggedDataError(f"{where}: series have unequal lengths {sorted(lengths)[:5]}; choose a "
                              f"series length (max, min or a number) to pad or truncate them")
    if series_length is not None:
        length = _target_length(series_length, lengths, where)
        rows = [[fit_series_length(ch, length) for ch in r] for r in rows]
    else:
        length = next(iter(lengths))
    if "serieslength" in header and len(lengths) == 1:
        try:
            declared = int(header["serieslength"])
        except ValueError:
            raise CorruptDataError(f"{where}: @seriesLength is not an integer") from None
        if declared != next(iter(lengths)):
            raise CorruptDataError(f"{where}: @seriesLength {declared} but series have length "
                                   f"{next(iter(lengths))}")

    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({lab for lab in labels if lab not in index})
    if unknown:
        raise LabelError(f"{where}: labels {unknown[:3]} are not in @classLabel {list(class_names)}")
    x = np.array(rows, dtype=np.float64).reshape(len(rows), channels, length)
    if not np.all(np.isfinite(x)):
        case = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))[0])
        raise NonFiniteValueError(f"{where}: case {case + 1} contains NaN or infinite values")
    y = np.array([index[lab] for lab in labels], dtype=np.int64)
    return TsData(x, y, class_names, header)


def read_ts(path: str | os.PathLike[str], series_length: int | str | None = None) -> TsData:
    """Read a ``.ts`` file (UTF-8 text; see :func:`parse_ts`)."""
    p = Path(path)
    return parse_ts(_read_text(p), str(p), series_length)


def read_ts_pair(train_path: str | os.PathLike[str], test_path: str | os.PathLike[str],
                 series_length: int | str | None = None) -> tuple[TsData, TsData]:
    """A training and a test ``.ts`` file that must agree on class names and series shape.

    With ``series_length``, the training series are brought to it (see :func:`parse_ts`) and the
    test series to the resulting training length.
    """
    train = read_ts(train_path, series_length)
    test = read_ts(test_path, None if series_length is None else train.x.shape[2])
    if train.class_names != test.class_names:
        raise LabelError(f"{test_path}: class names {list(test.class_names)} differ from the training "
                         f"file's {list(train.class_names)}")
    if train.x.shape[1:] != test.x.shape[1:]:
        raise CorruptDataError(f"{test_path}: series shape {test.x.shape[1:]} differs from the training "
                               f"file's {train.x.shape[1:]}")
    return train, test


def _read_text(p: Path) -> str:
    raw = _read_maybe_gzip(p)
    if not raw.strip():
        raise EmptyDataError(f"{p}: empty file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CorruptDataError(f"{p}: not UTF-8 text") from None


def _target_length(series_length: int | str, lengths: set[int], where: str) -> int:
    if isinstance(series_length, str) and series_length.strip().lower() in ("max", "min"):
        return max(lengths) if series_length.strip().lower() == "max" else min(lengths)
    try:
        value = int(series_length)
    except (TypeError, ValueError):
        value = 0
    if isinstance(series_length, bool) or value < 1 or str(value) != str(series_length).strip():
        raise CorruptDataError(f"{where}: series length must be max, min or a positive integer, "
                               f"got {series_length!r}")
    return value


def fit_series_length(series: np.ndarray, length: int) -> np.ndarray:
    """``series`` (1-D) truncated to its first ``length`` values, or padded at the end by repeating
    its last value (an empty series is padded with zeros)."""
    if len(series) >= length:
        return series[:length]
    fill = series[-1] if len(series) else 0.0
    return np.concatenate([series, np.full(length - len(series), fill, dtype=series.dtype)])


# --------------------------------------------------------------------------------------- CSV
@dataclass(frozen=True)
class CsvTable:
    """Content of a CSV file: ``features`` float64 ``(N, F)``, ``labels`` the label column's text
    ``(N,)``, the column names (``None`` without a header row), the label column's name or index,
    and the leading ``#`` comment lines."""

    features: np.ndarray
    labels: np.ndarray
    feature_names: tuple[str, ...] | None
    label_name: str
    comments: tuple[str, ...]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _delimiter(line: str) -> str:
    for candidate in (",", ";", "\t"):
        if candidate in line:
            return candidate
    return ","


def _label_index(label_column: str | int | None, header: list[str] | None, width: int, where: str) -> int:
    if label_column is None:
        return width - 1
    text = str(label_column).strip()
    if header is not None and text in header:
        if header.count(text) > 1:
            raise LabelColumnError(f"{where}: the label column name {text!r} occurs {header.count(text)} times")
        return header.index(text)
    if isinstance(label_column, (int, np.integer)) and not isinstance(label_column, bool) or \
            re.fullmatch(r"[+-]?\d+", text):
        index = int(text)
        if not -width <= index < width:
            raise LabelColumnError(f"{where}: label column {index} does not exist: the file has {width} "
                                   f"columns (0..{width - 1}, or -1 for the last)")
        return index % width
    if header is None:
        raise LabelColumnError(f"{where}: no column named {text!r}: the file has no header row, so give "
                               f"the label column by index (0..{width - 1}, or -1 for the last)")
    shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    raise LabelColumnError(f"{where}: no column named {text!r} (columns: {shown})")


def parse_csv(text: str, where: str = "<text>", label_column: str | int | None = None) -> CsvTable:
    """Parse a CSV table: one sample per row, numeric feature columns and one label column.

    * Lines starting with ``#`` are comments (kept in :attr:`CsvTable.comments`); blank lines are
      skipped. Fields may be quoted; surrounding spaces are ignored.
    * Delimiter: the first of ``,`` ``;`` and tab that occurs in the first row.
    * Header: the first row is a header when one of its fields is text (not empty, not a number)
      while the same column of the second row is a number (or it is the only row). A header whose
      every name is a number is therefore read as data.
    * ``label_column``: a column name (needs a header) or an index (``-1`` = last, the default);
      a name wins over an index when a header has a column named e.g. ``"3"``.
    * Every row must have as many fields as the first (:class:`RaggedDataError`), every feature must
      be a finite number (:class:`CorruptDataError`, :class:`NonFiniteValueError`).
    """
    comments, lines = [], []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if not lines:
                comments.append(stripped.lstrip("#").strip())
            continue
        lines.append((lineno, raw))
    if not lines:
        raise EmptyDataError(f"{where}: no data rows")
    delimiter = _delimiter(lines[0][1])
    quoted = any('"' in raw for _, raw in lines)
    if quoted:
        try:
            rows = list(csv.reader((raw for _, raw in lines), delimiter=delimiter, strict=True))
        except csv.Error as exc:
            raise CorruptDataError(f"{where}: malformed CSV: {exc}") from None
        if len(rows) != len(lines):
            raise CorruptDataError(f"{where}: a quoted field spans several lines")
    else:  # no quoting: a plain split is ten times faster
        rows = [raw.split(delimiter) for _, raw in lines]
    width = len(rows[0])
    if width < 2:
        raise LabelColumnError(f"{where}: the first row has {width} column; a CSV needs feature columns "
                               f"and a label column")
    for (lineno, _), fields in zip(lines, rows):
        if len(fields) != width:
            raise RaggedDataError(f"{where}:{lineno}: {len(fields)} fields, but the first row has {width}")
    first = [f.strip() for f in rows[0]]
    second = [f.strip() for f in rows[1]] if len(rows) > 1 else None
    has_header = any(f != "" and not _is_number(f) and (second is None or _is_number(second[j]))
                     for j, f in enumerate(first))
    header = first if has_header else None
    data, numbers = (rows[1:], [n for n, _ in lines[1:]]) if has_header else (rows, [n for n, _ in lines])
    label = _label_index(label_column, header, width, where)
    if not data:
        raise EmptyDataError(f"{where}: no data rows after the header")
    labels = np.array([r[label].strip() for r in data], dtype=str)
    feature_names = tuple(f for j, f in enumerate(header) if j != label) if header else None
    try:
        if quoted:
            features = np.array([list(map(float, r[:label] + r[label + 1:])) for r in data], dtype=np.float64)
        else:  # numpy's C parser
            features = np.loadtxt([raw for _, raw in lines[len(lines) - len(data):]], delimiter=delimiter,
                                  usecols=[j for j in range(width) if j != label], dtype=np.float64,
                                  comments=None, ndmin=2)
    except ValueError:
        features = None
    if features is None or not np.all(np.isfinite(features)):
        _locate_bad_value([r[:label] + r[label + 1:] for r in data], numbers, feature_names, where)
    label_name = header[label] if header else str(label)
    return CsvTable(features, labels, feature_names, label_name, tuple(comments))


def _locate_bad_value(fields: list[list[str]], line_numbers: list[int], names, where: str) -> None:
    for i, row in enumerate(fields):
        for j, value in enumerate(f.strip() for f in row):
            column = f"column {names[j]!r}" if names else f"feature {j}"
            if value == "":
                raise CorruptDataError(f"{where}:{line_numbers[i]}: {column} is empty (missing values "
                                       f"are not supported)")
            try:
                number = float(value)
            except ValueError:
                raise CorruptDataError(f"{where}:{line_numbers[i]}: {column} is {value!r}, not a number") from None
            if not math.isfinite(number):
                raise NonFiniteValueError(f"{where}:{line_numbers[i]}: {column} is {value!r} (NaN and "
                                          f"infinite values are not allowed)")
    raise CorruptDataError(f"{where}: unreadable values")  # pragma: no cover (caller saw one)


def read_csv(path: str | os.PathLike[str], label_column: str | int | None = None) -> CsvTable:
    """Read a CSV file (UTF-8, optionally gzip-compressed; see :func:`parse_csv`)."""
    p = Path(path)
    return parse_csv(_read_text(p), str(p), label_column)


# --------------------------------------------------------------------------------------- npz
def _check_npz_members(p: Path) -> None:
    """Refuse, before anything is loaded, members that declare more data than they hold (a few
    bytes claiming a huge shape would otherwise make numpy allocate it) and object arrays."""
    try:
        with zipfile.ZipFile(p) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(member)
                    header_bytes = member.tell()
                key = info.filename[: -len(".npy")]
                if dtype.hasobject:
                    raise CorruptDataError(f"{p}: array {key!r} holds pickled Python objects, which are "
                                           f"refused; store plain numeric or string arrays")
                need = math.prod(shape) * dtype.itemsize
                if info.file_size - header_bytes < need:
                    raise CorruptDataError(f"{p}: array {key!r} declares shape {shape} ({need} bytes) but "
                                           f"holds {info.file_size - header_bytes}")
    except CorruptDataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise CorruptDataError(f"{p}: damaged .npz archive ({type(exc).__name__}: {exc})") from None


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of a NumPy ``.npz`` archive, loaded with ``allow_pickle=False``.

    A file that is not a zip archive, a damaged archive, and an archive holding pickled object
    arrays (which could run code when loaded) all raise :class:`CorruptDataError` naming the file.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise CorruptDataError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if not magic:
        raise EmptyDataError(f"{p}: empty file")
    if magic != b"PK\x03\x04":
        raise CorruptDataError(f"{p}: not an .npz archive (np.savez writes a zip file)")
    _check_npz_members(p)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(p, allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as exc:
                    if "pickle" in str(exc):
                        raise CorruptDataError(f"{p}: array {key!r} holds pickled Python objects, which are "
                                               f"refused; store plain numeric or string arrays") from None
                    raise
    except CorruptDataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise CorruptDataError(f"{p}: damaged .npz archive ({type(exc).__name__}: {exc})") from None
    return arrays
