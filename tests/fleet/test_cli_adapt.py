"""``tintin fleet adapt``: initial models adapting on unseen devices, JSON and one-line errors."""

from __future__ import annotations

import json

import pytest

from tintin.cli.app import main
from tintin.fleet.adapt import AdaptConfig, adaptation_table
from tintin.fleet.workloads import get_workload
from tintin.io.model_file import save_model


@pytest.fixture
def sine_model(tmp_path):
    fleet = get_workload("sine", devices=1, seed=0)
    path = tmp_path / "meta.safetensors"
    save_model(fleet.build_model(7), path)
    return path


def test_json_reports_every_initial_model(sine_model, capsys):
    status = main(["fleet", "adapt", "-w", "sine", "--model", str(sine_model), "--devices", "2", "--shots", "3,5",
                   "--seeds", "0,1", "--passes", "2", "--lr", "0.03", "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    d = json.loads(out.out)
    assert d["metric"] == "mse" and d["shots"] == [3, 5] and d["seeds"] == [0, 1] and d["synthetic"] is True
    assert set(d["scores"]) == {"meta", "scratch"} and d["models"]["meta"] == str(sine_model)
    assert d["adapt"] == {"passes": 2, "lr": 0.03, "update": "full"}
    # the same numbers as the library's table on the same unseen devices
    fleet = get_workload("sine", devices=1, seed=0)
    table = adaptation_table({"meta": fleet.build_model(7), "scratch": fleet.build_model}, fleet.unseen(2),
                             shots=(3, 5), seeds=(0, 1), config=AdaptConfig(passes=2, lr=0.03))
    assert d["scores"]["meta"]["5"]["per_seed"] == table.scores["meta"][5]
    assert d["scores"]["scratch"]["3"]["mean"] == table.mean("scratch", 3)


def test_layer_shift_option(sine_model, capsys):
    status = main(["fleet", "adapt", "-w", "sine", "--model", str(sine_model), "--no-scratch", "--devices", "2",
                   "--shots", "4", "--passes", "2", "--layer-shift", "fc3=2", "--layer-shift", "fc1=-1", "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    d = json.loads(out.out)
    assert d["adapt"]["layer_shifts"] == {"fc1": -1, "fc3": 2}
    fleet = get_workload("sine", devices=1, seed=0)
    table = adaptation_table({"meta": fleet.build_model(7)}, fleet.unseen(2), shots=(4,), seeds=(0,),
                             config=AdaptConfig(passes=2, lr=0.02, layer_shifts={"fc1": -1, "fc3": 2}))
    assert d["scores"]["meta"]["4"]["per_seed"] == table.scores["meta"][4]


def test_text_output_is_a_table(sine_model, capsys):
    assert main(["fleet", "adapt", "-w", "sine", "-m", str(sine_model), "--no-scratch", "--devices", "1",
                 "--shots", "2", "--passes", "1", "-q"]) == 0
    out = capsys.readouterr().out
    assert "| meta |" in out and "K = 2" in out and "scratch" not in out


@pytest.mark.parametrize("args, message", [
    (["-w", "nope"], "unknown workload"),
    (["-w", "sine", "--model", "/no/such/model.safetensors"], "not found"),
    (["-w", "sine", "--shots", "5,x"], "--shots"),
    (["-w", "sine", "--shots", "500", "--devices", "1"], "K = 500"),
    (["-w", "sine", "--no-scratch"], "nothing to adapt"),
    (["-w", "sine", "--passes", "0"], "passes"),
    (["-w", "sine", "--lr", "-1"], "lr"),
    (["-w", "sine", "--devices", "0"], "unseen devices"),
    (["-w", "sine", "--layer-shift", "fc1"], "LAYER=S"),
    (["-w", "sine", "--layer-shift", "fc1=x"], "LAYER=S"),
    (["-w", "sine", "--layer-shift", "fc1=12"], "must be an integer in"),
    (["-w", "sine", "--layer-shift", "fc7=1"], "no layer fc7"),
])
def test_bad_input_is_one_line(args, message, capsys):
    status = main(["fleet", "adapt", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and err and err[-1].startswith("error:") and message in err[-1]
    assert sum(line.startswith("error:") for line in err) == 1


def test_a_model_of_another_workload_is_one_line(tmp_path, capsys):
    path = tmp_path / "bearing.safetensors"
    save_model(get_workload("bearing-fleet", devices=1, seed=0).build_model(0), path)
    status = main(["fleet", "adapt", "-w", "sine", "--model", str(path), "--devices", "1", "--shots", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and err[-1].startswith("error:") and "shape" in err[-1]


def test_a_corrupt_model_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x00" * 40)
    status = main(["fleet", "adapt", "-w", "sine", "--model", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and err[0].startswith("error:")


@pytest.mark.parametrize("args, message", [
    (["--workload", "sine", "--dataset", "digits"], "not both"),
    (["--workload", "nope"], "unknown workload"),
    (["--out", "/no/such/dir/m.safetensors"], "does not exist"),
    (["--strategy", "fedavg-float", "--out", "m.safetensors"], "fedavg-float"),
    (["--shots", "0"], "--shots"),
])
def test_fleet_bad_input_is_one_line_before_ray_starts(args, message, capsys):
    status = main(["fleet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and err[0].startswith("error:") and message in err[0]
