"""Threshold training at import: log2 weight thresholds fine-tuned on the calibration batch (PyTorch,
straight-through estimator, Adam), then fixed on tintin's weight grid."""

from interop_needs import require

require()

import json

import numpy as np
import pytest

from tintin.cli.app import main
from tintin.interop import InteropError, import_model
from tintin.interop.threshold_train import train_thresholds


@pytest.fixture(scope="module")
def pow2_dscnn(trained, digits):
    from tintin.nn import QuantConfig

    return trained("dscnn"), QuantConfig(scale_mode="pow2")


def test_trained_scales_are_on_the_grid_and_deterministic(pow2_dscnn, digits):
    net, cfg = pow2_dscnn
    a = import_model(net, digits, calib_samples=16, config=cfg, threshold_train=60)
    b = import_model(net, digits, calib_samples=16, config=cfg, threshold_train=60)
    rep = a.report
    assert rep.threshold_train_steps == 60 and len(rep.thresholds) == 4
    for row in rep.thresholds:
        assert row["trained_scale"][1:] == [0, 0]  # pow2 mode: powers of two only
    for p, q in zip(a.model.parameters(), b.model.parameters()):  # same seed, same bits
        assert np.array_equal(p.value.m, q.value.m) and p.value.scale == q.value.scale
    # the weights are quantised at the reported scales
    weights = [p for p in a.model.parameters() if p.kind == "weight"]
    assert [list(p.value.scale.as_tuple()) for p in weights] == [row["trained_scale"] for row in rep.thresholds]
    assert rep.int_accuracy is not None and abs(rep.int_accuracy - rep.float_accuracy) <= 0.03


def test_zero_steps_is_the_static_rule(trained, digits):
    static = import_model(trained("mlp"), digits, calib_samples=16)
    zero = import_model(trained("mlp"), digits, calib_samples=16, threshold_train=0)
    assert zero.report.thresholds is None
    for p, q in zip(static.model.parameters(), zero.model.parameters()):
        assert np.array_equal(p.value.m, q.value.m)


def test_bad_step_count_is_refused(trained, digits):
    res = import_model(trained("mlp"), digits, calib_samples=8)
    with pytest.raises(InteropError, match="threshold-train"):
        train_thresholds(res.model, {}, res.data.calib_real, -1)


def test_cli_threshold_train_json(trained, digits, tmp_path, capsys):
    import torch

    path = tmp_path / "mlp.onnx"
    torch.onnx.export(trained("mlp"), (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}})
    capsys.readouterr()
    assert main(["import", str(path), "--calib", "digits", "--calib-samples", "16", "--threshold-train", "20",
                 "--out", str(tmp_path / "imp"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["threshold_train_steps"] == 20 and len(rep["thresholds"]) == 2
    assert main(["import", str(path), "--calib", "digits", "--threshold-train", "-3", "--out",
                 str(tmp_path / "bad")]) != 0
