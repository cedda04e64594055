"""Federated Reptile's inner task and meta step: a fresh few-shot draw per round (as an unseen
device adapts on K samples), the annealed meta step size, and the in-process rounds that equal
the Flower strategy bit for bit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tintin import data
from tintin.fleet import FleetConfig, FleetError
from tintin.fleet.aggregation import eps_fraction
from tintin.fleet.inprocess import train_in_process
from tintin.fleet.local import LocalPlan, get_params, round_samples, train_device
from tintin.fleet.run import build_spec
from tintin.fleet.workloads import get_workload
from tintin.optim import OptimConfig


def _same(a: dict, b: dict) -> bool:
    return all(a[n][1] == b[n][1] and np.array_equal(a[n][0], b[n][0]) for n in a)


@given(n=st.integers(1, 80), shots=st.integers(1, 100), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_round_samples_are_a_seeded_few_shot_draw(n, shots, seed):
    plan = LocalPlan(shots=shots)
    pick = round_samples(n, plan, seed)
    assert len(pick) == min(n, shots) and len(set(pick.tolist())) == len(pick)
    assert pick.min() >= 0 and pick.max() < n
    assert np.array_equal(pick, round_samples(n, plan, seed))
    assert np.array_equal(round_samples(n, LocalPlan(), seed), np.arange(n))


def test_a_device_trains_on_its_few_shot_draw_only():
    fleet = get_workload("bearing-fleet", devices=1, seed=0, samples_per_device=40, test_per_device=4)
    x, y = fleet.device_train(0)
    plan = LocalPlan(batch_size=1, local_steps=12, optim=OptimConfig(lr=0.05), shots=5)
    a = fleet.build_model(0)
    train_device(a, x, y, plan, seed=99)
    pick = round_samples(len(x), plan, 99)
    b = fleet.build_model(0)
    train_device(b, x[pick], y[pick], LocalPlan(batch_size=1, local_steps=12, optim=OptimConfig(lr=0.05)), seed=99)
    assert _same(get_params(a), get_params(b))
    # another round's seed draws other samples: the meta model sees many few-shot tasks per device
    assert not np.array_equal(pick, round_samples(len(x), plan, 100))


def test_the_meta_step_is_annealed_linearly():
    fleet = get_workload("sine", devices=4, seed=0, samples_per_device=10, test_per_device=4)
    spec, _ = build_spec(FleetConfig(source=fleet, model=fleet.build_model(0), strategy="reptile", rounds=4,
                                     meta_lr=0.8, meta_anneal=True))
    assert [spec.meta_lr_at(r) for r in (1, 2, 3, 4)] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert all(eps_fraction(spec.meta_lr_at(r)) >= 1 for r in (1, 2, 3, 4))
    spec.meta_anneal = False
    assert spec.meta_lr_at(4) == 0.8


def test_shots_below_one_is_a_one_line_error():
    with pytest.raises(FleetError, match="--shots must be at least 1"):
        build_spec(FleetConfig(dataset=data.load("digits"), clients=2, shots=0))


def test_in_process_rounds_refuse_what_needs_node_state():
    with pytest.raises(FleetError, match="run_fleet"):
        train_in_process(build_spec(FleetConfig(dataset=data.load("digits"), clients=2, top_p=5))[0])


def test_in_process_reptile_equals_the_flower_strategy():
    pytest.importorskip("flwr")
    from .rational import strategy_rounds

    fleet = get_workload("sine", devices=6, seed=1, samples_per_device=20, test_per_device=4)
    spec, _ = build_spec(FleetConfig(source=fleet, model=fleet.build_model(1), strategy="reptile", rounds=3,
                                     fraction=0.5, batch_size=1, local_steps=8, lr=0.02, shots=5, meta_lr=0.9,
                                     meta_anneal=True, seed=1))
    flower = strategy_rounds(spec, [5, 7])
    seen = []
    ref = train_in_process(spec, on_round=lambda r, p: seen.append(r))
    assert seen == [1, 2, 3] and _same(ref, flower)
    # the annealed step is not the constant one
    const = copy.deepcopy(spec)
    const.meta_anneal = False
    assert not _same(train_in_process(const), ref)


def test_emulated_devices_are_checked_before_anything_runs():
    from tintin.errors import TintinError

    digits = data.load("digits")
    for emulated, message in (({5: "cortex-m0"}, "not one of the 2 devices"), ({0: "host"}, "MCU target"),
                              ({0: "pdp11"}, "pdp11")):
        with pytest.raises(TintinError, match=message):
            build_spec(FleetConfig(dataset=digits, clients=2, emulated=emulated))
    with pytest.raises(FleetError, match="fedavg-float"):
        build_spec(FleetConfig(dataset=digits, clients=2, strategy="fedavg-float", emulated={0: "cortex-m0"}))
