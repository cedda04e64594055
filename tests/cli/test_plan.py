"""``tintin plan``: output, JSON fields, plot and one-line errors."""

from __future__ import annotations

import json

import pytest

from tintin.cli.app import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_promised_fields(capsys):
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "1,8,8", "--device", "stm32f103c8", "--json")
    assert code == 0, err
    d = json.loads(out)
    for key in ("peak_sram_bytes", "naive_sram_bytes", "flash_bytes", "fits", "macs_per_sample", "sram_margin",
                "buffers", "estimate"):
        assert key in d
    assert d["fits"] is True and d["peak_sram_bytes"] < d["naive_sram_bytes"]
    assert d["macs_per_sample"] == 64 * 64 + 64 * 10 + 64 * 10 + 64 * 64 + 64 * 10


def test_does_not_fit_gives_missing_bytes_and_suggestions(capsys):
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "1,28,28", "--device", "atmega328p", "--json",
                         "--no-buffers")
    assert code == 3, err  # does not fit: documented exit status 3, the JSON object still on stdout
    assert err.strip().splitlines() == [err.strip()] and "does not fit atmega328p" in err
    d = json.loads(out)
    assert d["fits"] is False and d["missing_sram"] == d["peak_sram_bytes"] - 2048
    assert any(row["update"] == "bias" for row in d["suggestions"])
    assert "buffers" not in d


def test_table_output_and_plot(capsys, tmp_path):
    png = tmp_path / "arena.png"
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "64", "--update", "sparse:fc2,fc1[0:8]",
                         "--batch-size", "4", "--planner", "naive", "--device", "rp2040", "--plot", str(png))
    assert code == 0, err
    assert "peak SRAM" in out and "fits rp2040" in out and "fc1.weight.grad" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schedule_table(capsys):
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "16", "--update", "bias", "--schedule", "--no-buffers")
    assert code == 0, err
    assert "schedule" in out and "linear_backward_bias_s32" in out and "sgd_update" in out
    assert "fc1.bias, fc2.bias: 296 B" in out  # (64 + 10) int32 biases


def test_without_device(capsys):
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "16", "--classes", "3", "--json", "--no-buffers")
    assert code == 0, err
    d = json.loads(out)
    assert d["fits"] is None and "estimate" not in d


def test_model_file(capsys, tmp_path):
    from tintin.io import save_model
    from tintin.nn import build_model

    path = tmp_path / "m.safetensors"
    save_model(build_model("mlp", (12,), 3), path)
    code, out, err = run(capsys, "plan", str(path), "--update", "bias", "--json", "--no-buffers")
    assert code == 0, err
    assert json.loads(out)["update"] == "bias"


@pytest.mark.parametrize("args,message", [
    (["--device", "nosuch"], "unknown device 'nosuch'"),
    (["--update", "last:7"], "has only 2 parameterised layers"),
    (["--update", "sparse:fc1[0:999]"], "out of range"),
    (["--update", "bogus"], "unknown update 'bogus'"),
    (["--planner", "best"], "unknown planner 'best'"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--input-shape", "1,x"], "bad --input-shape"),
    (["--rule", "adam"], "unknown update rule"),
])
def test_errors_are_one_line(capsys, args, message):
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "16", *args)
    assert code == 1
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unknown_model_and_missing_file(capsys):
    code, _, err = run(capsys, "plan", "nomodel")
    assert code == 1 and "unknown model 'nomodel'" in err
    code, _, err = run(capsys, "plan", "/nonexistent/m.safetensors")
    assert code == 1 and "does not exist" in err


def test_malformed_device_profile(capsys, monkeypatch):
    import tintin.targets as targets
    from tintin.targets import DeviceProfileError

    def broken(name):
        raise DeviceProfileError(f"{name}.toml: field 'sram_bytes' must be a positive integer")

    monkeypatch.setattr(targets, "load_device", broken)
    code, _, err = run(capsys, "plan", "mlp", "--input-shape", "16", "--device", "x")
    assert code == 1 and "field 'sram_bytes'" in err
