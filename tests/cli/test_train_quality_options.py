"""tintin train --wide-layers / --error-feedback / --stochastic-loss-error: the model file keeps the widths and the remainders'
setting; unknown layers are one-line errors."""

import json

from tintin.cli import main
from tintin.io import load_model


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_wide_layers_and_error_feedback(capsys, tmp_path):
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--wide-layers", "fc2", "--error-feedback", "fc1",
                         "--out", str(tmp_path), "--json", "-q")
    assert code == 0, err
    model, info = load_model(json.loads(out)["model_path"])
    assert [p.bits for p in model.parameters() if p.kind == "weight"] == [8, 16]
    assert model.config.wide_layers == ("fc2",)
    assert json.loads(out)["test_accuracy"] > 0.5


def test_unknown_layer_is_one_line(capsys, tmp_path):
    for option in ("--wide-layers", "--error-feedback"):
        code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", option, "fc9", "--out", str(tmp_path / option))
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code != 0 and len(lines) == 1 and lines[0].startswith("error:") and "fc9" in lines[0], err


def test_stochastic_loss_error(capsys, tmp_path):
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--stochastic-loss-error", "--backend", "numpy",
                         "--out", str(tmp_path / "a"), "--json", "-q")
    assert code == 0, err
    model, _ = load_model(json.loads(out)["model_path"])
    assert model.config.loss_error_rounding == "stochastic"
    assert json.loads(out)["test_accuracy"] > 0.5
    code, _, err = run(capsys, "train", "-d", "digits", "--init", json.loads(out)["model_path"],
                       "--stochastic-loss-error", "--out", str(tmp_path / "b"))
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and "--stochastic-loss-error" in lines[0], err


def test_feedback_bits(capsys, tmp_path):
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--error-feedback", "*", "--feedback-bits", "2",
                         "--backend", "numpy", "--out", str(tmp_path / "a"), "--json", "-q")
    assert code == 0, err
    _, info = load_model(json.loads(out)["model_path"])
    assert info["train"]["optim"]["feedback_bits"] == 2
    for args in (["--feedback-bits", "2"], ["--error-feedback", "*", "--feedback-bits", "3"]):
        code, _, err = run(capsys, "train", "-d", "digits", "-e", "1", *args, "--out", str(tmp_path / "b"))
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code != 0 and len(lines) == 1 and lines[0].startswith("error:") and "feedback" in lines[0], err
