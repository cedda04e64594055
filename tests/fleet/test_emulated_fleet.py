"""Emulated Cortex-M0 devices inside a fleet: their local update is the generated C program run in
QEMU, and the fleet's bits are those of the simulated fleet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tintin.fleet import FleetConfig
from tintin.fleet.inprocess import train_in_process
from tintin.fleet.local import LocalPlan, get_params, train_device, train_device_on_target
from tintin.fleet.run import build_spec
from tintin.fleet.workloads import get_workload
from tintin.optim import OptimConfig
from tintin.targets import toolchain_status

pytestmark = pytest.mark.emulator


@pytest.fixture(autouse=True)
def _needs_qemu():
    ok, reason = toolchain_status("cortex-m0")
    if not ok:
        pytest.skip(reason)


def test_a_device_trained_on_cortex_m0_equals_the_simulated_device():
    fleet = get_workload("bearing-fleet", devices=1, seed=3, samples_per_device=12, test_per_device=2)
    x, y = fleet.device_train(0)
    plan = LocalPlan(batch_size=2, local_steps=3, optim=OptimConfig(lr=0.05), shots=5)
    sim, emu = fleet.build_model(3), fleet.build_model(3)
    train_device(sim, x, y, plan, seed=1234)
    train_device_on_target(emu, x, y, plan, 1234, "cortex-m0")
    a, b = get_params(sim), get_params(emu)
    for name in a:
        assert a[name][1] == b[name][1] and np.array_equal(a[name][0], b[name][0]), name


def test_a_flower_fleet_with_an_emulated_cortex_m0_device_equals_the_simulated_fleet(tmp_path, capsys):
    pytest.importorskip("flwr")
    from tintin.cli.app import main
    from tintin.io.model_file import load_model

    out = tmp_path / "fleet.safetensors"
    args = ["--workload", "sine", "--clients", "3", "--rounds", "2", "--strategy", "reptile", "--local-steps", "3",
            "--batch-size", "1", "--lr", "0.02", "--meta-lr", "0.5", "--nodes", "2", "--seed", "4",
            "--samples-per-device", "8"]
    status = main(["fleet", *args, "--emulate", "1:cortex-m0", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    d = json.loads(captured.out)
    assert d["emulated"] == {"1": "cortex-m0"}
    fleet = get_workload("sine", devices=3, seed=4, samples_per_device=8)
    spec, _ = build_spec(FleetConfig(source=fleet, model=fleet.build_model(4), strategy="reptile", rounds=2,
                                     local_steps=3, batch_size=1, lr=0.02, meta_lr=0.5, seed=4))
    ref = train_in_process(spec)  # every device on the simulator
    for p in load_model(out)[0].parameters():
        assert p.value.scale == ref[p.name][1] and np.array_equal(p.value.m, ref[p.name][0]), p.name
