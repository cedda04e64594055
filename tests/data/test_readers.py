"""IDX and .ts readers: valid files round-trip, malformed ones raise CorruptDataError (and nothing else)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.data import CorruptDataError
from tintin.data.readers import parse_ts, read_idx, read_idx_bytes, read_ts


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return header + arr.astype(dtype).tobytes()


@pytest.mark.parametrize("code", [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_idx_round_trip_of_every_type(code):
    arr = (np.arange(24).reshape(2, 3, 4) - (5 if code != 0x08 else 0))
    out = read_idx_bytes(idx_bytes(arr, code))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.byteorder in ("=", "|") or out.dtype.isnative


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_from_plain_and_gzip_files(tmp_path, compress):
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    raw = idx_bytes(arr)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "too short"),
    (b"\x00\x00", "too short"),
    (b"\x01" + GOOD[1:], "magic"),
    (GOOD[:2] + b"\x07" + GOOD[3:], "type code"),
    (GOOD[:3] + b"\x00" + GOOD[4:], "0 dimensions"),
    (GOOD[:3] + b"\x09" + GOOD[4:], "truncated"),
    (GOOD[:-1], "payload"),
    (GOOD + b"\x00", "payload"),
    (GOOD[:4] + struct.pack(">I", 4) + GOOD[8:], "payload"),
])
def test_idx_rejects_malformed_buffers(data, fragment):
    with pytest.raises(CorruptDataError, match=fragment):
        read_idx_bytes(data, "x.idx")


def test_read_idx_rejects_damaged_gzip_with_one_line(tmp_path):
    blob = bytearray(gzip.compress(GOOD))
    blob[len(blob) // 2] ^= 0xFF
    blob = bytes(blob[:-4])
    path = tmp_path / "bad.gz"
    path.write_bytes(blob)
    with pytest.raises(CorruptDataError) as info:
        read_idx(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.integers(0, 40), st.binary(max_size=4))
def test_idx_reader_never_fails_with_anything_but_corrupt_data(noise, cut, tail):
    for data in (noise, GOOD[:cut] + tail, GOOD[:4] + noise):
        try:
            out = read_idx_bytes(data)
        except CorruptDataError:
            continue
        assert isinstance(out, np.ndarray)


TS_GOOD = """# a comment
@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true up down
@data
1,2,3:4,5,6:up
-1,-2,-3.5:0,0,1e-3:down
7,8,9:1,1,1:up
"""


def test_parse_ts_rejects_text_without_data_section():
    with pytest.raises(CorruptDataError, match="no @data"):
        parse_ts(TS_GOOD[:TS_GOOD.index("@data")])


def test_parse_ts_reads_channels_labels_and_header():
    ts = parse_ts(TS_GOOD)
    assert ts.x.shape == (3, 2, 3) and ts.x.dtype == np.float64
    np.testing.assert_array_equal(ts.x[1], [[-1, -2, -3.5], [0, 0, 1e-3]])
    assert ts.y.tolist() == [0, 1, 0] and ts.y.dtype == np.int64
    assert ts.class_names == ("up", "down")
    assert ts.header["problemname"] == "Tiny"


def test_read_ts_file(tmp_path):
    path = tmp_path / "t.ts"
    path.write_text(TS_GOOD)
    assert read_ts(path).x.shape == (3, 2, 3)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CorruptDataError, match="UTF-8"):
        read_ts(path)


@pytest.mark.parametrize(("old", "new", "fragment"), [
    ("@data\n", "", "before @data"),
    ("7,8,9:1,1,1:up", "7,8,9:1,1,1:sideways", "not in @classLabel"),
    ("7,8,9:1,1,1:up", "7,8:1,1:up", "unequal lengths"),
    ("7,8,9:1,1,1:up", "7,8,9:up", "channels"),
    ("7,8,9:1,1,1:up", "7,x,9:1,1,1:up", "non-numeric"),
    ("7,8,9:1,1,1:up", "7,?,9:1,1,1:up", "missing values"),
    ("7,8,9:1,1,1:up", "7,8,9:1,1,nan:up", "NaN"),
    ("@dimensions 2", "@dimensions 3", "@dimensions 3"),
    ("@seriesLength 3", "@seriesLength 4", "@seriesLength 4"),
    ("@classLabel true up down", "@classLabel false", "@classLabel"),
    ("@classLabel true up down", "@classLabel true up up", "duplicate"),
    ("@timeStamps false", "@timeStamps true", "timestamped"),
    ("@timeStamps false", "@timeStamps maybe", "true or false"),
    ("@problemName Tiny", "problemName Tiny", "header"),
    ("1,2,3:4,5,6:up\n-1,-2,-3.5:0,0,1e-3:down\n7,8,9:1,1,1:up\n", "", "no cases"),
    ("7,8,9:1,1,1:up", "7,8,9", "channels and a class label"),
])
def test_parse_ts_rejects_malformed_text(old, new, fragment):
    assert old in TS_GOOD
    with pytest.raises(CorruptDataError, match=fragment) as info:
        parse_ts(TS_GOOD.replace(old, new), "bad.ts")
    assert "\n" not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(TS_GOOD) - 1), st.integers(0, 8),
       st.text(alphabet="0123456789,:.-@#?\n abcup", max_size=6))
def test_ts_parser_never_fails_with_anything_but_corrupt_data(start, width, insert):
    text = TS_GOOD[:start] + insert + TS_GOOD[start + width:]
    try:
        ts = parse_ts(text)
    except CorruptDataError:
        return
    assert ts.x.ndim == 3 and len(ts.y) == ts.x.shape[0]
    assert np.all(np.isfinite(ts.x))
