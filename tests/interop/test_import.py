"""Import of float models trained in PyTorch (through ONNX) with one calibration batch."""

from interop_needs import require

require()

import json

import numpy as np
import pytest

from tintin.interop import import_model
from tintin.io import load_model
from tintin.train import predict


@pytest.mark.parametrize("name", ["mlp", "lenet", "dscnn"])
def test_imported_integer_model_within_one_point_of_float(name, trained, digits):
    res = import_model(trained(name), digits, calib_samples=32)
    rep = res.report
    assert rep.format == "pytorch" and rep.calib_samples == 32
    assert rep.float_accuracy > 0.85, "the float source must have learned digits"
    assert abs(rep.float_accuracy - rep.int_accuracy) <= 0.01
    assert rep.agreement >= 0.97
    weighted = [row for row in rep.layers if row.weight_sqnr_db is not None]
    assert weighted and all(row.weight_sqnr_db > 30 for row in weighted)
    assert all(row.activation_sqnr_db is not None and row.activation_sqnr_db > 15 for row in rep.layers)


def test_batchnorm_is_folded_and_depthwise_recognised(trained, digits):
    rep = import_model(trained("dscnn"), digits, calib_samples=8).report
    names = [row.name for row in rep.layers]
    types = [row.type for row in rep.layers]
    assert "dw1" in names and "GlobalAvgPool" in types and "ChannelScale" not in types
    assert rep.calib_samples == 8


def test_residual_block_imported(trained, digits):
    res = import_model(trained("res"), digits, calib_samples=32)
    assert [layer.spec()["type"] for layer in res.model.layers] == [
        "Conv2d", "ReLU", "Residual", "ReLU", "GlobalAvgPool", "Linear"]
    block = res.model.layers[2]
    assert len(block.body) == 3 and block.shortcut == []
    assert res.report.agreement >= 0.95
    assert any(row.op == "Add" and row.activation_sqnr_db > 20 for row in res.report.layers)


def test_saved_model_is_a_normal_model_file(lenet_import, digits, tmp_path):
    from tintin.interop.importer import save_import

    path = save_import(lenet_import.model, lenet_import.report, tmp_path / "out")
    model, info = load_model(path)
    assert info["format"] == "pytorch"
    assert np.array_equal(predict(model, digits.x_test), predict(lenet_import.model, digits.x_test))
    doc = json.loads((tmp_path / "out" / "import.json").read_text())
    assert doc["model_path"] == str(path) and len(doc["layers"]) == len(lenet_import.report.layers)


def test_npz_float_data_without_test_split(trained, digits, tmp_path):
    """Float inputs from a user's file are quantised by tintin.data's exponent rule."""
    f = tmp_path / "mine.npz"
    np.savez(f, x_train=digits.real(digits.x_test), y_train=digits.y_test)
    rep = import_model(trained("mlp"), str(f), calib_samples=16).report
    assert rep.input_exponent == -7 and rep.eval_samples == len(digits.x_test)
    assert abs(rep.float_accuracy - rep.int_accuracy) <= 0.02


def test_labels_absent_gives_null_accuracy(trained, digits):
    rep = import_model(trained("mlp"), (digits.real(digits.x_test), None), calib_samples=16).report
    assert rep.float_accuracy is None and rep.int_accuracy is None and rep.agreement is not None
