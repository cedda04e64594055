"""Readers for the two file formats the offline data sets ship in: IDX (MNIST family) and ``.ts``.

Both are small, dependency-free (numpy only) and strict: anything malformed raises
:class:`~tintin.data.errors.CorruptDataError` with a one-line message naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CorruptDataError

__all__ = ["read_idx", "read_idx_bytes", "TsData", "read_ts", "parse_ts"]

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


def parse_ts(text: str, where: str = "<text>") -> TsData:
    """Parse the text of a ``.ts`` file (sktime/aeon time-series format) for classification.

    Supported: ``#`` comment lines, ``@key value`` header lines up to ``@data``, then one case per
    line with channels separated by ``:`` and comma-separated values, the class label last.
    Requires ``@classLabel true <names...>``, equal-length series and no timestamps; missing values
    (``?``) are rejected. Checks ``@dimensions`` and ``@seriesLength`` when present.
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
        raise CorruptDataError(f"{where}: no cases after @data")
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
    if len(lengths) != 1:
        raise CorruptDataError(f"{where}: series have unequal lengths {sorted(lengths)[:5]}")
    length = lengths.pop()
    if "serieslength" in header:
        try:
            declared = int(header["serieslength"])
        except ValueError:
            raise CorruptDataError(f"{where}: @seriesLength is not an integer") from None
        if declared != length:
            raise CorruptDataError(f"{where}: @seriesLength {declared} but series have length {length}")

    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({lab for lab in labels if lab not in index})
    if unknown:
        raise CorruptDataError(f"{where}: labels {unknown[:3]} are not in @classLabel {list(class_names)}")
    x = np.array(rows, dtype=np.float64).reshape(len(rows), channels, length)
    if not np.all(np.isfinite(x)):
        raise CorruptDataError(f"{where}: series contain NaN or infinite values")
    y = np.array([index[lab] for lab in labels], dtype=np.int64)
    return TsData(x, y, class_names, header)


def read_ts(path: str | os.PathLike[str]) -> TsData:
    """Read a ``.ts`` file (UTF-8 text; see :func:`parse_ts`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorruptDataError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise CorruptDataError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_ts(text, str(p))
