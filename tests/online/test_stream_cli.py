import json

import pytest

from tintin.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_stream_json_has_every_figure(capsys, tmp_path):
    png = tmp_path / "acc.png"
    code, out, err = run(capsys, "stream", "mlp", "-d", "digits", "--drift", "recurring", "--length", "150",
                         "--update", "last:1", "--pretrain-epochs", "1", "--window", "25", "--label-rate", "0.5",
                         "--plot", str(png), "--json")
    assert code == 0, err
    d = json.loads(out)
    for key in ("prequential_accuracy", "frozen_accuracy", "float_prequential_accuracy", "river_prequential_accuracy",
                "recovery_samples", "forgetting", "planned_sram_bytes"):
        assert key in d, key
    assert all(0.0 <= d[k] <= 1.0 for k in ("prequential_accuracy", "frozen_accuracy", "float_prequential_accuracy",
                                            "river_prequential_accuracy"))
    assert len(d["recovery_samples"]) == 2 and isinstance(d["forgetting"], float)
    assert d["planned_sram_bytes"]["full"] > d["planned_sram_bytes"]["last:1"] > d["planned_sram_bytes"]["bias"] > 0
    assert d["stream"]["drift_points"] == [50, 100] and 0.3 < d["stream"]["label_rate"] < 0.7
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bit_exact" not in d  # only with a target


def test_stream_planned_sram_matches_tintin_plan(capsys, tmp_path):
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--out", str(tmp_path), "--json")
    assert code == 0, err
    model = json.loads(out)["model_path"]
    code, out, err = run(capsys, "stream", model, "-d", "digits", "--drift", "sensor_gain", "--length", "60",
                         "--update", "bias", "--no-float", "--no-river", "--window", "20", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["float_prequential_accuracy"] is None and d["river_prequential_accuracy"] is None
    code, out, err = run(capsys, "plan", model, "--update", "bias", "--json", "--no-suggest")
    assert code == 0, err
    assert d["planned_sram_bytes"]["bias"] == json.loads(out)["peak_sram_bytes"]


@pytest.mark.parametrize("args,needle", [
    (["--drift", "earthquake"], "unknown drift scenario"),
    (["--drift", "bearing_speed"], "bearing"),
    (["--update", "last:9"], "only 2 parameterised layers"),
    (["--window", "0"], "--window"),
    (["--label-rate", "1.5"], "label rate"),
])
def test_stream_bad_input_is_one_error_line(capsys, args, needle):
    code, out, err = run(capsys, "stream", "mlp", "-d", "digits", "--length", "60", "--pretrain-epochs", "1",
                         "--window", "20", "--no-float", "--no-river", *args)
    assert needle in one_line_error(code, err)


def test_stream_rejects_a_model_for_other_data(capsys, tmp_path):
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--out", str(tmp_path), "--json")
    model = json.loads(out)["model_path"]
    code, out, err = run(capsys, "stream", model, "-d", "mnist5k", "--length", "60", "-w", "10")
    assert "shape" in one_line_error(code, err)


def test_stream_default_lr_follows_the_documented_rule(capsys):
    """Zoo models learn online at their pretraining rate / batch size (the linear scaling rule)."""
    from tintin.nn import training_defaults
    from tintin.online import online_lr

    code, out, err = run(capsys, "stream", "mlp", "-d", "digits", "--drift", "sensor_gain", "--length", "40",
                         "--pretrain-epochs", "1", "--window", "10", "--no-float", "--no-river", "--json")
    assert code == 0, err
    d = training_defaults("mlp")
    assert json.loads(out)["lr"] == online_lr(d.lr, d.batch_size) == d.lr / d.batch_size


def test_online_lr_refuses_nonsense():
    from tintin.online import StreamError, online_lr

    with pytest.raises(StreamError):
        online_lr(0.0, 32)
    with pytest.raises(StreamError):
        online_lr(0.05, 0)
