"""The user's own data: CSV, npz and .ts files and ``Dataset.from_arrays`` (tintin.data.files, .arrays)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from tintin.data import (CorruptDataError, DataError, DataFileNotFoundError, Dataset, EmptyDataError,
                         LabelColumnError, LabelError, NonFiniteValueError, RaggedDataError, SampleShapeError,
                         SplitError, UnknownDatasetError, UnsupportedFileError, check_sample_shape,
                         resolve_dataset)
from tintin.data.quantize import quantize_inputs
from tintin.errors import TintinError


def features(n_per_class=10, classes=3, width=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.normal(size=(len(y), width)) * np.arange(1, width + 1) + 5.0 + y[:, None]
    return x, y


def write_csv(path, x, labels, header=None, comments=(), delimiter=","):
    lines = [f"# {c}" for c in comments]
    if header is not None:
        lines.append(delimiter.join(header))
    lines += [delimiter.join([*(repr(float(v)) for v in row), str(lab)]) for row, lab in zip(x, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text
    assert isinstance(exc_info.value, TintinError)
    return text


# --------------------------------------------------------------------------------------- CSV
def test_csv_with_header_and_named_labels(tmp_path):
    x, y = features()
    names = np.array(["cat", "ant", "bee"])[y]
    path = write_csv(tmp_path / "my.csv", x, names, header=["a", "b", "c", "d", "kind"])
    ds = resolve_dataset(str(path))
    assert ds.name == "my" and ds.class_names == ("ant", "bee", "cat")   # sorted names give the indices
    assert ds.sample_shape == (4,) and ds.x_train.dtype == np.int8 and ds.input_exponent == -5
    assert len(ds.x_train) == 24 and len(ds.x_test) == 6                 # default test fraction 0.2
    assert ds.class_counts("test").tolist() == [2, 2, 2]                  # stratified
    assert not ds.synthetic and "30 samples" in ds.description


def test_csv_without_header_label_column_by_index_and_name(tmp_path):
    x, y = features()
    path = tmp_path / "plain.csv"
    path.write_text("".join(f"{lab},{','.join(map(str, row))}\n" for row, lab in zip(x, y)))
    ds = resolve_dataset(str(path), label_column="0")
    assert ds.sample_shape == (4,) and ds.class_names == ("0", "1", "2")
    with pytest.raises(LabelColumnError) as exc:
        resolve_dataset(str(path), label_column="kind")
    assert "no header row" in one_line(exc)
    named = write_csv(tmp_path / "named.csv", x, y, header=["a", "b", "c", "d", "kind"])
    by_name = resolve_dataset(str(named), label_column="kind")
    by_index = resolve_dataset(str(named), label_column=-1)
    assert np.array_equal(by_name.x_train, by_index.x_train)


def test_header_detection_with_text_labels_in_every_row(tmp_path):
    x, y = features()
    path = write_csv(tmp_path / "nohead.csv", x, np.array(["lo", "mid", "hi"])[y])
    ds = resolve_dataset(str(path))
    assert len(ds.x_train) + len(ds.x_test) == 30                      # the first row is data, not a header


def test_semicolon_delimiter_gzip_and_comments(tmp_path):
    x, y = features()
    text_path = write_csv(tmp_path / "t.csv", x, y, header=list("abcd") + ["y"], delimiter=";",
                          comments=["SYNTHETIC test rows", "second comment"])
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(text_path.read_bytes()))
    a, b = resolve_dataset(str(text_path)), resolve_dataset(str(gz))
    assert np.array_equal(a.x_train, b.x_train) and b.name == "t"
    assert b.synthetic and b.description == "SYNTHETIC test rows"


def test_split_is_seeded_and_stats_come_from_the_training_split(tmp_path):
    x, y = features(n_per_class=20)
    path = write_csv(tmp_path / "s.csv", x, y)
    a, b = resolve_dataset(str(path)), resolve_dataset(str(path))
    c = resolve_dataset(str(path), split_seed=7)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.x_train, c.x_train)
    # reproduce the documented rule: z = (x - mean_train) / std_train per column, int8 at 2^-5
    direct = Dataset.from_arrays(x, y)
    assert np.array_equal(direct.x_train, a.x_train) and np.array_equal(direct.y_test, a.y_test)
    mean, std = a.extras["channel_mean"], a.extras["channel_std"]
    assert mean.shape == (4,) and std.shape == (4,)
    # the statistics are those of the 48 training rows, not of all 60
    from tintin.data.split import stratified_split

    tr, te = stratified_split(y, 12, 0)
    assert np.allclose(mean, x[tr].mean(axis=0)) and np.allclose(std, x[tr].std(axis=0))
    assert not np.allclose(mean, x.mean(axis=0))
    expected, _ = quantize_inputs((x[te] - mean) / std, -5)
    assert np.array_equal(a.x_test, expected)


def test_test_fraction(tmp_path):
    x, y = features(n_per_class=10)
    ds = resolve_dataset(str(write_csv(tmp_path / "f.csv", x, y)), test_fraction=0.5)
    assert len(ds.x_test) == 15 and ds.class_counts("test").tolist() == [5, 5, 5]


def test_int8_mantissas_with_an_input_exponent(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(-127, 128, size=(40, 5))
    y = np.arange(40) % 2
    path = tmp_path / "q.csv"
    path.write_text("".join(",".join(map(str, [*row, lab])) + "\n" for row, lab in zip(x, y)))
    ds = resolve_dataset(str(path), input_exponent=-7)
    assert ds.input_exponent == -7 and "channel_mean" not in ds.extras
    both = np.concatenate([ds.x_train, ds.x_test])
    assert sorted(map(tuple, both.tolist())) == sorted(map(tuple, x.tolist()))   # taken as they are
    x[3, 2] = 200
    path.write_text("".join(",".join(map(str, [*row, lab])) + "\n" for row, lab in zip(x, y)))
    with pytest.raises(DataError) as exc:
        resolve_dataset(str(path), input_exponent=-7)
    assert "[-127, 127]" in one_line(exc) and "200" in str(exc.value)


# --------------------------------------------------------------------------------------- npz
def test_npz_with_test_split_and_class_names(tmp_path):
    x, y = features()
    xt, yt = features(n_per_class=4, seed=5)
    path = tmp_path / "my.npz"
    np.savez(path, x_train=x.reshape(30, 2, 2), y_train=y, x_test=xt.reshape(12, 2, 2), y_test=yt,
             class_names=np.array(["a", "b", "c"]))
    ds = resolve_dataset(str(path))
    assert ds.sample_shape == (2, 2) and len(ds.x_train) == 30 and len(ds.x_test) == 12
    assert ds.class_names == ("a", "b", "c") and ds.extras["channel_mean"].shape == (2,)
    with pytest.raises(SplitError):
        resolve_dataset(str(path), test_fraction=0.3)       # the file has a test split already


def test_npz_int8_needs_an_exponent(tmp_path):
    x = np.random.default_rng(0).integers(-127, 128, size=(20, 1, 4, 4)).astype(np.int8)
    y = np.arange(20) % 2
    path = tmp_path / "i8.npz"
    np.savez(path, x_train=x, y_train=y)
    with pytest.raises(DataError) as exc:
        resolve_dataset(str(path))
    assert "input exponent" in one_line(exc)
    ds = resolve_dataset(str(path), input_exponent=-7)
    assert ds.input_exponent == -7 and ds.sample_shape == (1, 4, 4)


# --------------------------------------------------------------------------------------- .ts
def ts_text(cases, names=("up", "down")):
    head = "@problemName Wiggles\n@timeStamps false\n@univariate false\n@equalLength false\n"
    head += f"@classLabel true {' '.join(names)}\n@data\n"
    return head + "".join(":".join(",".join(map(str, ch)) for ch in chans) + f":{lab}\n" for chans, lab in cases)


def test_ts_variable_length_pad_and_truncate(tmp_path):
    cases = [([[1, 2, 3], [4, 5, 6]], "up"), ([[1, 2], [3, 4]], "down"), ([[7, 8, 9, 10], [1, 1, 1, 1]], "up"),
             ([[2, 2, 2], [3, 3, 3]], "down")] * 3
    path = tmp_path / "w.ts"
    path.write_text(ts_text(cases))
    with pytest.raises(RaggedDataError) as exc:
        resolve_dataset(str(path))
    assert "series length" in one_line(exc)
    from tintin.data.readers import read_ts

    padded = read_ts(path, "max")
    assert padded.x.shape == (12, 2, 4)
    assert padded.x[1, 0].tolist() == [1, 2, 2, 2]           # padded by repeating the last value
    assert read_ts(path, "min").x[2, 0].tolist() == [7, 8]   # truncated to the first values
    assert read_ts(path, 3).x.shape == (12, 2, 3)
    ds = resolve_dataset(str(path), series_length="max", test_fraction=0.25)
    assert ds.sample_shape == (2, 4) and ds.class_names == ("up", "down") and ds.description == "Wiggles"
    with pytest.raises(CorruptDataError):
        resolve_dataset(str(path), series_length="longest")


def test_ts_train_and_test_pair(tmp_path):
    train = [([[1, 2, 3]], "up"), ([[3, 2, 1]], "down")] * 4
    test = [([[1, 2, 3, 4, 5]], "up"), ([[3, 2]], "down")]
    (tmp_path / "G_TRAIN.ts").write_text(ts_text(train))
    (tmp_path / "G_TEST.ts").write_text(ts_text(test))
    ds = resolve_dataset(str(tmp_path / "G_TRAIN.ts"), series_length="max")
    assert ds.name == "G" and len(ds.x_train) == 8 and len(ds.x_test) == 2 and ds.sample_shape == (1, 3)


# --------------------------------------------------------------------------------------- from_arrays
def test_from_arrays_matches_the_file_path_and_validates(tmp_path):
    x, y = features()
    via_api = Dataset.from_arrays(x, [["p", "q", "r"][v] for v in y], name="my")
    via_csv = resolve_dataset(str(write_csv(tmp_path / "my.csv", x, np.array(["p", "q", "r"])[y])))
    assert np.array_equal(via_api.x_train, via_csv.x_train) and np.array_equal(via_api.y_test, via_csv.y_test)
    assert via_api.class_names == via_csv.class_names
    with pytest.raises(LabelError):
        Dataset.from_arrays(x, y[:-1])
    with pytest.raises(DataError):
        Dataset.from_arrays(x[:, 0], y)                     # no sample axis
    with pytest.raises(DataError):
        Dataset.from_arrays(x, y, x_test=x)                  # x_test without y_test
    ds = Dataset.from_arrays(x, y.astype(np.float64), class_names=["a", "b", "c", "d"])
    assert ds.num_classes == 4                               # class_names fix the class count


# --------------------------------------------------------------------------------------- bad files
def rows_csv(tmp_path, body: str, name="bad.csv"):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


GOOD_ROWS = "".join(f"{i % 3}.5,{i}.25,{i % 2}\n" for i in range(12))


@pytest.mark.parametrize("body,error,needle", [
    ("a,b,y\n1,2,0\n3,nan,1\n" + GOOD_ROWS, NonFiniteValueError, ":3: column 'b'"),
    ("1,2,0\n3,inf,1\n" + GOOD_ROWS, NonFiniteValueError, ":2: feature 1"),
    ("1,2,0\n3,4,-1\n" + GOOD_ROWS, LabelError, "label -1"),
    ("1,2,0\n3,4,1.5\n" + GOOD_ROWS, LabelError, "whole class indices"),
    ("1,2,0\n3,4,99999\n" + GOOD_ROWS, LabelError, "out of range"),
    ("1,2,0\n3,4\n" + GOOD_ROWS, RaggedDataError, ":2: 2 fields, but the first row has 3"),
    ("1,2,0\n3,abc,1\n" + GOOD_ROWS, CorruptDataError, "'abc', not a number"),
    ("1,,0\n" + GOOD_ROWS, CorruptDataError, "is empty"),
    ("", EmptyDataError, "empty file"),
    ("# only a comment\n\n", EmptyDataError, "no data rows"),
    ("a,b,y\n", EmptyDataError, "no data rows"),
    ("1,2,0\n3,4,1\n5,6,1\n7,8,1\n", SplitError, "at least 2 per class"),
    ("1,2,0\n3,4,0\n5,6,0\n", LabelError, "at least 2 classes"),
    ("5\n6\n", LabelColumnError, "feature columns and a label column"),
])
def test_bad_csv_files_give_one_line(tmp_path, body, error, needle):
    with pytest.raises(error) as exc:
        resolve_dataset(rows_csv(tmp_path, body))
    assert needle in one_line(exc)


def test_missing_label_column(tmp_path):
    path = rows_csv(tmp_path, "a,b,y\n" + GOOD_ROWS)
    with pytest.raises(LabelColumnError) as exc:
        resolve_dataset(path, label_column="label")
    assert "no column named 'label' (columns: a, b, y)" in one_line(exc)
    with pytest.raises(LabelColumnError) as exc:
        resolve_dataset(path, label_column="7")
    assert "does not exist" in one_line(exc)


def test_bad_npz_files_give_one_line(tmp_path):
    x, y = features()
    cases = {}
    (tmp_path / "empty.npz").write_bytes(b"")
    cases["empty.npz"] = (EmptyDataError, "empty file")
    (tmp_path / "text.npz").write_text("x_train,y_train\n1,2\n")
    cases["text.npz"] = (CorruptDataError, "not an .npz archive")
    np.savez(tmp_path / "whole.npz", x_train=x, y_train=y)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:200])
    cases["cut.npz"] = (CorruptDataError, "damaged .npz archive")
    np.savez(tmp_path / "pickled.npz", x_train=np.array([{"a": 1}] * 30, dtype=object), y_train=y)
    cases["pickled.npz"] = (CorruptDataError, "pickled Python objects, which are refused")
    np.savez(tmp_path / "nokeys.npz", features=x, labels=y)
    cases["nokeys.npz"] = (DataError, "needs arrays x_train and y_train")
    bad = x.copy()
    bad[4, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=bad, y_train=y)
    cases["nan.npz"] = (NonFiniteValueError, "x_train[4, 1] is nan")
    np.savez(tmp_path / "range.npz", x_train=x, y_train=y, class_names=np.array(["a", "b"]))
    cases["range.npz"] = (LabelError, "out of range (2 class names are given)")
    np.savez(tmp_path / "shape.npz", x_train=x, y_train=y, x_test=x[:, :3], y_test=y)
    cases["shape.npz"] = (DataError, "x_test samples have shape (3,)")
    np.savez(tmp_path / "zero.npz", x_train=x[:0], y_train=y[:0])
    cases["zero.npz"] = (EmptyDataError, "no samples")
    for name, (error, needle) in cases.items():
        with pytest.raises(error) as exc:
            resolve_dataset(str(tmp_path / name))
        assert needle in one_line(exc), name


def test_paths_names_and_options(tmp_path):
    (tmp_path / "data.txt").write_text("1,2,0\n")
    with pytest.raises(UnsupportedFileError) as exc:
        resolve_dataset(str(tmp_path / "data.txt"))
    assert "use .csv, .csv.gz, .npz or .ts" in one_line(exc)
    with pytest.raises(DataFileNotFoundError):
        resolve_dataset(str(tmp_path / "absent.csv"))
    with pytest.raises(DataFileNotFoundError):
        resolve_dataset(str(tmp_path))
    with pytest.raises(UnknownDatasetError) as exc:
        resolve_dataset("digts")
    assert "did you mean 'digits'" in one_line(exc) and ".csv" in str(exc.value)
    with pytest.raises(DataError) as exc:
        resolve_dataset("digits", label_column="y")
    assert "only for data files" in one_line(exc)
    x, y = features()
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y)
    with pytest.raises(DataError) as exc:
        resolve_dataset(str(tmp_path / "a.npz"), label_column="y")
    assert "CSV files only" in one_line(exc)
    with pytest.raises(SplitError):
        resolve_dataset(str(tmp_path / "a.npz"), test_fraction=1.0)


def test_check_sample_shape(tmp_path):
    x, y = features()
    ds = Dataset.from_arrays(x, y)
    check_sample_shape(ds, (4,))
    with pytest.raises(SampleShapeError) as exc:
        check_sample_shape(ds, (64,), "mlp")
    assert "(4,) but mlp expects (64,) (4 features per sample, 64 expected)" in one_line(exc)


def test_npz_member_claiming_a_huge_shape_is_refused_before_loading(tmp_path):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12, 4)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x_train.npy", header.getvalue() + b"\0" * 64)
        buf = io.BytesIO()
        np.save(buf, np.arange(4))
        archive.writestr("y_train.npy", buf.getvalue())
    with pytest.raises(CorruptDataError) as exc:
        resolve_dataset(str(tmp_path / "huge.npz"))
    assert "declares shape (1000000000000, 4)" in one_line(exc)


def test_quoted_csv_fields(tmp_path):
    x, y = features()
    names = np.array(['"slow, steady"', '"fast"', '"stop"'])[y]
    path = tmp_path / "q.csv"
    path.write_text('"a","b","c","d","state"\n' + "".join(
        ",".join([*(f'"{v}"' for v in row), lab]) + "\n" for row, lab in zip(x, names)))
    ds = resolve_dataset(str(path))
    assert ds.class_names == ("fast", "slow, steady", "stop") and ds.sample_shape == (4,)
    same = Dataset.from_arrays(x, np.array(["slow, steady", "fast", "stop"])[y], name="q")
    assert np.array_equal(ds.x_train, same.x_train) and np.array_equal(ds.y_train, same.y_train)


def test_from_arrays_with_ragged_samples():
    with pytest.raises(RaggedDataError):
        Dataset.from_arrays([[1.0, 2.0], [3.0]], [0, 1])
