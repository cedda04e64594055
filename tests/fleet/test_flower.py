"""A real Flower simulation (Ray backend): a few devices, 2 rounds, the integer result equal to the
in-process reference, the float comparison in the same simulation, no stray process left."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from tintin import data  # noqa: E402
from tintin.fleet import FleetConfig, aggregate, run_fleet  # noqa: E402
from tintin.fleet.codec import arrays_model  # noqa: E402
from tintin.fleet.local import get_params, tensor_specs  # noqa: E402
from tintin.fleet.run import build_spec  # noqa: E402

from .rational import device_models  # noqa: E402


def _descendants(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _no_stray_processes():
    deadline = time.monotonic() + 30
    while _descendants(os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return _descendants(os.getpid())


def test_a_small_flower_fleet_equals_the_reference_and_leaves_nothing_running():
    ds = data.load("digits")
    config = FleetConfig(dataset=ds, clients=3, rounds=2, strategy="fedavg", local_steps=3, batch_size=4, lr=0.1,
                         seed=1, nodes=2, compare_float=True)
    rounds_seen = []
    result = run_fleet(config, on_round=lambda kind, r: rounds_seen.append((kind, r["round"])))
    assert rounds_seen == [("integer", 1), ("integer", 2), ("float", 1), ("float", 2)]
    d = result.to_dict()
    for key in ("engine", "clients", "rounds", "strategy", "test_accuracy", "float_test_accuracy",
                "bytes_up_per_round", "bytes_down_per_round", "seconds_per_round", "history"):
        assert key in d
    assert d["engine"] == "flower" and d["clients"] == 3 and d["rounds"] == 2 and len(d["history"]) == 3
    assert 0 <= d["test_accuracy"] <= 1 and 0 <= d["float_test_accuracy"] <= 1
    assert all(v.dtype.kind == "i" for v in result.arrays.values())  # integers only, never floats

    # the same two rounds in-process: train each device directly, aggregate with the reference
    spec, _ = build_spec(config)
    specs = tensor_specs(spec.template)
    params = get_params(spec.template)
    for r in (1, 2):
        models, weights = device_models(spec, params, range(3), r)
        params = aggregate(models, weights, specs, "compound")
    got = arrays_model(result.arrays, [t.name for t in specs])
    for name, (m, s) in params.items():
        assert got[name][1] == s and np.array_equal(got[name][0], m)

    import ray

    assert not ray.is_initialized()
    assert _no_stray_processes() == []


def test_the_command_prints_one_json_object(capsys):
    from tintin.cli.app import main

    status = main(["fleet", "--clients", "2", "--rounds", "2", "--local-steps", "2", "--strategy", "reptile",
                   "--partition", "dirichlet:0.5", "--top-p", "5", "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    d = json.loads(out.out)
    assert d["engine"] == "flower" and d["strategy"] == "reptile" and d["clients"] == 2 and d["rounds"] == 2
    assert d["partition"] == "dirichlet:0.5" and d["top_p"] == 5.0
    assert d["bytes_up_per_round"] * 4 <= d["bytes_down_per_round"]
    assert "float_test_accuracy" not in d and [r["round"] for r in d["history"]] == [0, 1, 2]
    assert _no_stray_processes() == []


@pytest.mark.parametrize("args, message", [
    (["--strategy", "fedprox"], "unknown strategy"),
    (["--clients", "0"], "--clients must be at least 1"),
    (["--partition", "dirichlet:-2"], "bad partition"),
    (["--fraction", "0"], "--fraction"),
    (["--top-p", "150"], "--top-p"),
    (["--rounds", "0"], "--rounds"),
    (["--personal", "fc9"], "--personal fc9"),
    (["--model", "nope"], "unknown model"),
    (["--strategy", "fedavg-float", "--top-p", "5"], "integer strategies"),
])
def test_bad_input_is_one_line_before_ray_starts(capsys, args, message):
    from tintin.cli.app import main

    status = main(["fleet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_a_workload_fleet_writes_its_model_and_equals_the_in_process_rounds(tmp_path, capsys):
    from tintin.cli.app import main
    from tintin.fleet.inprocess import train_in_process
    from tintin.fleet.workloads import get_workload
    from tintin.io.model_file import load_model

    out = tmp_path / "meta.safetensors"
    status = main(["fleet", "--workload", "sine", "--clients", "3", "--rounds", "2", "--strategy", "reptile",
                   "--shots", "4", "--local-steps", "6", "--batch-size", "1", "--lr", "0.02", "--meta-lr", "0.7",
                   "--meta-anneal", "--nodes", "2", "--seed", "2", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    d = json.loads(captured.out)
    assert d["strategy"] == "reptile" and d["shots"] == 4 and d["meta_anneal"] is True and "test_mse" in d
    assert d["out"] == str(out)
    fleet = get_workload("sine", devices=3, seed=2)
    spec, _ = build_spec(FleetConfig(source=fleet, model=fleet.build_model(2), strategy="reptile", rounds=2,
                                     shots=4, local_steps=6, batch_size=1, lr=0.02, meta_lr=0.7, meta_anneal=True,
                                     seed=2))
    ref = train_in_process(spec)
    model = load_model(out)[0]
    for p in model.parameters():
        assert p.value.scale == ref[p.name][1] and np.array_equal(p.value.m, ref[p.name][0])
    assert _no_stray_processes() == []


def test_init_starts_the_fleet_from_a_model_file(tmp_path, capsys):
    """``--init FILE``: Reptile warm-started from a trained model (e.g. FedAvg) ends with the bits of
    the in-process rounds from that model, not from the random initialisation."""
    from tintin.cli.app import main
    from tintin.fleet.codec import model_arrays
    from tintin.fleet.inprocess import train_in_process
    from tintin.fleet.run import model_from_arrays
    from tintin.fleet.workloads import get_workload
    from tintin.io.model_file import load_model, save_model

    fleet = get_workload("sine", devices=3, seed=1)
    start = fleet.build_model(1)
    spec0, _ = build_spec(FleetConfig(source=fleet, model=start, strategy="fedavg", rounds=1, local_steps=3,
                                      batch_size=1, lr=0.02, seed=1))
    warm = tmp_path / "fedavg.safetensors"
    save_model(model_from_arrays(start, model_arrays(train_in_process(spec0))), warm)
    out = tmp_path / "meta.safetensors"
    status = main(["fleet", "--workload", "sine", "--clients", "3", "--rounds", "1", "--strategy", "reptile",
                   "--shots", "4", "--local-steps", "5", "--batch-size", "1", "--lr", "0.02", "--meta-lr", "1",
                   "--seed", "1", "--init", str(warm), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert json.loads(captured.out)["init"] == str(warm)
    spec, _ = build_spec(FleetConfig(source=fleet, model=load_model(warm)[0], strategy="reptile", rounds=1, shots=4,
                                     local_steps=5, batch_size=1, lr=0.02, meta_lr=1.0, seed=1))
    ref = train_in_process(spec)
    cold, _ = build_spec(FleetConfig(source=fleet, model=start, strategy="reptile", rounds=1, shots=4,
                                     local_steps=5, batch_size=1, lr=0.02, meta_lr=1.0, seed=1))
    other = train_in_process(cold)
    model = load_model(out)[0]
    for p in model.parameters():
        assert p.value.scale == ref[p.name][1] and np.array_equal(p.value.m, ref[p.name][0])
    assert any(not np.array_equal(p.value.m, other[p.name][0]) for p in model.parameters())
    assert _no_stray_processes() == []


def test_a_bad_init_is_one_line_before_ray_starts(tmp_path, capsys):
    from tintin.cli.app import main
    from tintin.fleet.workloads import get_workload
    from tintin.io.model_file import save_model

    bearing = tmp_path / "bearing.safetensors"
    save_model(get_workload("bearing-fleet", devices=1, seed=0).build_model(0), bearing)
    for args, message in ((["--workload", "sine", "--init", str(bearing)], "shape"),
                          (["--init", str(tmp_path / "none.safetensors")], "not found"),
                          (["--init", str(bearing), "--model", "lenet5"], "not both")):
        status = main(["fleet", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert status != 0 and len(err) == 1 and err[0].startswith("error:") and message in err[0], err
