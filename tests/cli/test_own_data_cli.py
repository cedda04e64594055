"""``--dataset FILE`` in every command: train, eval, plan, export and run on the user's own files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test_cli import one_line_error
from tintin.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vibration" / "vibration_features.csv"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def require(target: str) -> None:
    """Skip, printing the reason, when the target's toolchain is not installed."""
    from tintin.targets import toolchain_status

    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)


def blobs(n_per_class=30, classes=3, width=6, seed=0):
    """Separable float features: class c is centred at c along every axis (a few units of scale)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    return rng.normal(size=(len(y), width)) * 0.4 + 3.0 * y[:, None] + 10.0, y


@pytest.fixture
def my_csv(tmp_path):
    x, y = blobs()
    names = np.array(["idle", "walk", "run"])[y]
    path = tmp_path / "my.csv"
    path.write_text("a,b,c,d,e,f,activity\n" +
                    "".join(",".join([*(f"{v:.5f}" for v in row), lab]) + "\n" for row, lab in zip(x, names)))
    return path


@pytest.fixture
def my_npz(tmp_path):
    x, y = blobs(seed=1)
    path = tmp_path / "my.npz"
    np.savez(path, x_train=x, y_train=y, class_names=np.array(["idle", "walk", "run"]))
    return path


def train_json(capsys, dataset, out, *extra):
    code, out_text, err = run(capsys, "train", "--dataset", dataset, "--epochs", "5", "--out", out, "--json", *extra)
    assert code == 0, err
    return json.loads(out_text)


def test_train_and_eval_on_a_csv(capsys, tmp_path, my_csv):
    result = train_json(capsys, my_csv, tmp_path / "run")
    assert result["test_accuracy"] > 0.9 and result["synthetic_data"] is False
    code, out, err = run(capsys, "eval", result["model_path"], "--dataset", my_csv, "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == result["test_accuracy"] and json.loads(out)["samples"] == 18
    from tintin.io import load_model

    _, info = load_model(result["model_path"])
    assert len(info["input_channel_mean"]) == 6 and len(info["input_channel_std"]) == 6
    # another split seed holds out other samples: the eval then sees another test set
    code, out, err = run(capsys, "eval", result["model_path"], "--dataset", my_csv, "--split-seed", "3",
                         "--test-fraction", "0.5", "--json")
    assert code == 0, err
    assert json.loads(out)["samples"] == 45


def test_train_on_an_npz(capsys, tmp_path, my_npz):
    result = train_json(capsys, my_npz, tmp_path / "run", "--test-fraction", "0.25")
    assert result["test_accuracy"] > 0.9


def test_default_output_directory_is_named_after_the_file(capsys, tmp_path, my_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train", "--dataset", my_csv, "--epochs", "1", "--json")
    assert code == 0, err
    assert Path(json.loads(out)["model_path"]) == Path("runs/my-mlp-s0/model.safetensors")


def test_label_column_by_name(capsys, tmp_path, my_csv):
    lines = my_csv.read_text().splitlines()
    moved = [",".join([ln.split(",")[-1], *ln.split(",")[:-1]]) for ln in lines]   # labels first
    path = tmp_path / "first.csv"
    path.write_text("\n".join(moved) + "\n")
    result = train_json(capsys, path, tmp_path / "run", "--label-column", "activity")
    assert result["test_accuracy"] > 0.9
    line = one_line_error(*run(capsys, "train", "--dataset", path, "--label-column", "label"))
    assert "no column named 'label'" in line


def test_synthetic_example_is_labelled(capsys, tmp_path):
    result = train_json(capsys, EXAMPLE, tmp_path / "run")
    assert result["synthetic_data"] is True and result["test_accuracy"] > 0.8


def test_plan_and_export_take_the_shape_from_a_file(capsys, tmp_path, my_csv):
    code, out, err = run(capsys, "plan", "mlp", "--dataset", my_csv, "--json", "--no-buffers")
    assert code == 0, err
    assert "data set my, input (6,), 3 classes" in json.loads(out)["source"]
    code, out, err = run(capsys, "export", "mlp", "--dataset", my_csv, "--out", tmp_path / "fw", "--json")
    assert code == 0, err
    assert "input (6,)" in json.loads(out)["source"]


def test_wrong_sample_shape_for_the_model(capsys, tmp_path, my_csv):
    line = one_line_error(*run(capsys, "train", "--dataset", my_csv, "--model", "cnn1d", "--epochs", "1"))
    assert "cnn1d" in line and "(6,)" in line
    result = train_json(capsys, my_csv, tmp_path / "run")
    x, y = blobs(width=5)
    other = tmp_path / "five.csv"
    other.write_text("".join(",".join([*map(str, row), str(lab)]) + "\n" for row, lab in zip(x, y)))
    line = one_line_error(*run(capsys, "eval", result["model_path"], "--dataset", other))
    assert "data set five has samples of shape (5,) but the model expects (6,)" in line


@pytest.mark.parametrize("name,body,needle", [
    ("nan.csv", "1,2,0\n3,nan,1\n" + "1,2,0\n3,4,1\n" * 5, "NaN and infinite values are not allowed"),
    ("range.csv", "1,2,0\n3,4,-2\n" + "1,2,0\n3,4,1\n" * 5, "label -2"),
    ("ragged.csv", "1,2,0\n3,4,1,7\n" + "1,2,0\n3,4,1\n" * 5, "4 fields, but the first row has 3"),
    ("empty.csv", "", "empty file"),
    ("few.csv", "1,2,0\n3,4,1\n5,6,1\n", "at least 2 per class"),
    ("corrupt.npz", "PK\x03\x04 not really a zip", "damaged .npz archive"),
    ("data.xlsx", "1,2,0\n", "unknown data file type '.xlsx'"),
])
def test_bad_files_give_one_line(capsys, tmp_path, name, body, needle):
    path = tmp_path / name
    path.write_text(body)
    line = one_line_error(*run(capsys, "train", "--dataset", path, "--epochs", "1"))
    assert needle in line


def test_option_errors_give_one_line(capsys, tmp_path, my_csv, my_npz):
    assert "CSV files only" in one_line_error(*run(capsys, "train", "--dataset", my_npz, "--label-column", "0"))
    assert "only for data files" in one_line_error(*run(capsys, "train", "--dataset", "digits",
                                                        "--test-fraction", "0.3"))
    assert "strictly between 0 and 1" in one_line_error(*run(capsys, "train", "--dataset", my_csv,
                                                             "--test-fraction", "1.5"))
    assert "no such data file" in one_line_error(*run(capsys, "train", "--dataset", tmp_path / "nope.csv"))


def test_ts_file_with_unequal_series(capsys, tmp_path):
    rng = np.random.default_rng(0)
    lines = ["@problemName Taps", "@univariate true", "@equalLength false", "@classLabel true soft hard", "@data"]
    for i in range(24):
        length = int(rng.integers(8, 14))
        level = 1.0 if i % 2 else 5.0
        lines.append(",".join(f"{v:.3f}" for v in rng.normal(level, 0.3, size=length)) + (":hard" if i % 2 else ":soft"))
    path = tmp_path / "taps.ts"
    path.write_text("\n".join(lines) + "\n")
    line = one_line_error(*run(capsys, "train", "--dataset", path, "--epochs", "1"))
    assert "unequal lengths" in line
    result = train_json(capsys, path, tmp_path / "run", "--series-length", "min", "--model", "mlp")
    assert result["test_accuracy"] > 0.7


def test_run_on_the_host_with_a_csv(capsys, tmp_path, my_csv):
    require("host")
    code, out, err = run(capsys, "run", "mlp", "--dataset", my_csv, "--target", "host", "--steps", "20",
                         "--eval", "10", "--json")
    assert code == 0, err
    assert json.loads(out)["bit_exact"] is True


@pytest.mark.emulator
def test_csv_model_trained_then_run_on_an_emulated_cortex_m0(capsys, tmp_path):
    """The walkthrough of docs/own-data.md: train on the CSV, then keep training on a Cortex-M0."""
    require("cortex-m0")
    result = train_json(capsys, EXAMPLE, tmp_path / "run")
    code, out, err = run(capsys, "run", result["model_path"], "--dataset", EXAMPLE, "--target", "cortex-m0",
                         "--steps", "20", "--eval", "8", "--update", "bias", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["bit_exact"] is True and report["machine"] != "host"
    assert report["instructions_per_step"] > 0 and report["device_eval_accuracy"] == report["simulator_eval_accuracy"]


@pytest.mark.emulator
def test_zoo_model_on_an_npz_run_on_an_emulated_cortex_m0(capsys, my_npz):
    require("cortex-m0")
    code, out, err = run(capsys, "run", "mlp", "--dataset", my_npz, "--target", "cortex-m0", "--steps", "12",
                         "--eval", "6", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["bit_exact"] is True and report["dataset"] == str(my_npz)


def test_int8_npz_with_an_input_exponent(capsys, tmp_path):
    x, y = blobs()
    q = np.clip(np.round((x - 13.0) * 8), -127, 127).astype(np.int8)   # centred int8 mantissas
    path = tmp_path / "q.npz"
    np.savez(path, x_train=q, y_train=y)
    assert "give their input exponent" in one_line_error(*run(capsys, "train", "--dataset", path, "-e", "1"))
    result = train_json(capsys, path, tmp_path / "run", "--input-exponent", "-2")
    assert result["test_accuracy"] > 0.9
    code, out, err = run(capsys, "plan", result["model_path"], "--json", "--no-buffers")
    assert code == 0, err
    line = one_line_error(*run(capsys, "eval", result["model_path"], "--dataset", path, "--input-exponent", "-3"))
    assert "2^-3" in line and "2^-2" in line                            # the model's input scale is checked
