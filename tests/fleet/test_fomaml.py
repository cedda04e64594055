"""Federated first-order MAML (``fomaml``): a device adapts on its K-sample support draw as an
unseen device would, takes query steps on a disjoint draw, and returns the received model moved by
the query steps alone, exactly in integers; the server step is Reptile's. The in-process rounds,
the Flower strategy and a real Flower simulation give the same bits, in any reply order."""

from __future__ import annotations

import copy
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tintin import data
from tintin.fleet import FleetConfig, FleetError
from tintin.fleet.aggregation import TensorSpec, aggregate, displaced, scale_value
from tintin.fleet.inprocess import train_in_process
from tintin.fleet.local import (LocalPlan, get_params, query_plan, query_samples, query_seed, round_samples,
                                tensor_specs, train_device)
from tintin.fleet.run import build_spec
from tintin.fleet.workloads import get_workload
from tintin.numerics import Scale, limit_for_bits
from tintin.optim import OptimConfig


def _same(a: dict, b: dict) -> bool:
    return all(a[n][1] == b[n][1] and np.array_equal(a[n][0], b[n][0]) for n in a)


def _value(m, scale) -> list[Fraction]:
    v = scale_value(scale)
    return [int(x) * v for x in np.asarray(m).ravel()]


@given(n=st.integers(2, 80), shots=st.integers(1, 60), query_shots=st.none() | st.integers(1, 90),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_the_query_draw_is_disjoint_from_the_support_draw(n, shots, query_shots, seed):
    """``query_shots`` None: as many as the support draw; larger: up to every other sample. The
    draws come from one permutation, so they are nested and the support draw does not change."""
    plan = LocalPlan(shots=shots, query_shots=query_shots)
    if n <= shots:
        with pytest.raises(FleetError, match="none left for a query draw"):
            query_samples(n, plan, seed)
        return
    support, query = round_samples(n, plan, seed), query_samples(n, plan, seed)
    assert len(query) == min(shots if query_shots is None else query_shots, n - shots)
    assert not set(support.tolist()) & set(query.tolist())
    assert query.min() >= 0 and query.max() < n and np.array_equal(query, query_samples(n, plan, seed))
    default = query_samples(n, LocalPlan(shots=shots), seed)
    small, large = sorted((set(default.tolist()), set(query.tolist())), key=len)
    assert small <= large
    assert np.array_equal(support, round_samples(n, LocalPlan(shots=shots), seed))


def test_query_steps_need_a_support_draw():
    with pytest.raises(FleetError, match="few-shot support draw"):
        query_samples(10, LocalPlan(), 0)


_SCALES = st.builds(Scale, st.integers(-12, -2), st.integers(0, 2), st.integers(0, 2))


@given(data=st.data(), kind=st.sampled_from(["weight", "bias"]), shape=st.sampled_from([(3,), (2, 4)]))
@settings(max_examples=80, deadline=None)
def test_displaced_is_base_plus_end_minus_start_rounded_once(data, kind, shape):
    bits, dtype, lim = (8, np.int8, 127) if kind == "weight" else (32, np.int32, 1 << 20)
    tensors = []
    for _ in range(3):
        m = np.asarray(data.draw(st.lists(st.integers(-lim, lim), min_size=int(np.prod(shape)),
                                          max_size=int(np.prod(shape)))), dtype=dtype).reshape(shape)
        tensors.append((m, data.draw(_SCALES) if kind == "weight" else Scale(-20)))
    base, start, end = tensors
    spec = TensorSpec("t", kind, bits, shape)
    q, scale = displaced(base, start, end, spec, "compound")
    assert q.dtype == dtype and q.shape == shape
    want = [b + e - s for b, s, e in zip(_value(*base), _value(*start), _value(*end))]
    got = _value(q, scale)
    step = scale_value(scale)
    if kind == "weight":
        assert np.abs(q.astype(np.int64)).max() <= limit_for_bits(8)
    for g, w in zip(got, want):  # the exact value, rounded once to the output grid (half away from 0)
        assert abs(g - w) <= step / 2
    # no displacement: the base requantised by the aggregation's own rule (FedAvg of the base alone)
    q0, s0 = displaced(base, start, start, spec, "compound")
    a0, t0 = aggregate([{"t": base}], [1], [spec], "compound")["t"]
    assert s0 == t0 and np.array_equal(q0, a0)


def _fleet():
    return get_workload("sine", devices=4, seed=3, samples_per_device=24, test_per_device=4)


def test_a_device_returns_the_received_model_moved_by_its_query_steps():
    fleet = _fleet()
    x, y = fleet.device_train(1)
    plan = LocalPlan(batch_size=1, local_steps=12, optim=OptimConfig(lr=0.02), shots=5, query_steps=7)
    model = fleet.build_model(3)
    received = get_params(model)
    info = train_device(model, x, y, plan, seed=41, target_exponent=fleet.target_exponent)
    assert info["steps"] == 12 and info["query_steps"] == 7 and np.isfinite(info["query_loss"])

    # by hand: the support steps are Reptile's device, the query steps their own run from there
    adapted_model = fleet.build_model(3)
    train_device(adapted_model, x, y, LocalPlan(batch_size=1, local_steps=12, optim=OptimConfig(lr=0.02), shots=5),
                 seed=41, target_exponent=fleet.target_exponent)
    adapted = get_params(adapted_model)
    q = query_samples(len(x), plan, 41)
    train_device(adapted_model, x[q], y[q], query_plan(plan), query_seed(41), fleet.target_exponent)
    queried = get_params(adapted_model)
    mode = model.config.scale_mode
    want = {t.name: displaced(received[t.name], adapted[t.name], queried[t.name], t, mode)
            for t in tensor_specs(model)}
    assert _same(get_params(model), want)
    # it is neither the received model nor the adapted one, and the same seed gives the same bits
    assert not _same(get_params(model), received) and not _same(get_params(model), adapted)
    again = fleet.build_model(3)
    train_device(again, x, y, plan, seed=41, target_exponent=fleet.target_exponent)
    assert _same(get_params(again), get_params(model))


def _spec(**kw):
    fleet = _fleet()
    base = dict(source=fleet, model=fleet.build_model(3), strategy="fomaml", rounds=3, fraction=0.75, batch_size=1,
                local_steps=8, lr=0.02, shots=5, query_steps=4, meta_lr=0.9, meta_anneal=True, seed=3)
    return build_spec(FleetConfig(**{**base, **kw}))[0]


def test_in_process_fomaml_equals_the_flower_strategy_in_any_reply_order():
    pytest.importorskip("flwr")
    from tintin.fleet.strategies import FederatedFOMAML, make_strategy

    from .rational import strategy_rounds

    spec = _spec()
    assert isinstance(make_strategy(spec), FederatedFOMAML)
    results = [strategy_rounds(spec, [5, 7, 9], reverse) for reverse in (False, True)]
    ref = train_in_process(spec)
    assert _same(ref, results[0]) and _same(ref, results[1])
    # the query steps matter: Reptile with the same support steps ends elsewhere
    reptile = copy.deepcopy(spec)
    reptile.strategy = "reptile"
    reptile.plan = LocalPlan(batch_size=1, local_steps=8, optim=spec.plan.optim, shots=5)
    assert not _same(train_in_process(reptile), ref)


def test_the_meta_model_moves_by_the_mean_query_displacement_at_meta_step_one():
    spec = _spec(rounds=1, meta_anneal=False, meta_lr=1.0, fraction=1.0)
    got = train_in_process(spec)
    # one round at eps = 1: the weighted mean of the devices' replies
    from tintin.fleet.local import device_seed

    replies, weights = [], []
    for d in range(spec.source.num_devices):
        m = copy.deepcopy(spec.template)
        x, y = spec.source.device_train(d)
        train_device(m, x, y, spec.plan, device_seed(spec.seed, 1, d), spec.target_exponent)
        replies.append(get_params(m))
        weights.append(len(x))
    assert _same(got, aggregate(replies, weights, tensor_specs(spec.template), spec.template.config.scale_mode))


@pytest.mark.parametrize("kw, message", [
    (dict(shots=None), "fomaml needs --shots"),
    (dict(query_steps=0), "fomaml needs --query-steps"),
    (dict(query_steps=-1), "--query-steps must be a non-negative integer"),
    (dict(strategy="reptile"), "--query-steps applies to --strategy fomaml only"),
    (dict(query_shots=0), "--query-shots must be an integer >= 1"),
    (dict(query_shots=2.5), "--query-shots must be an integer >= 1"),
    (dict(strategy="reptile", query_steps=0, query_shots=5), "--query-shots applies to --strategy fomaml only"),
])
def test_bad_fomaml_settings_are_one_line_errors(kw, message):
    with pytest.raises(FleetError, match=message):
        _spec(**kw)


def test_emulated_devices_do_not_run_query_steps():
    with pytest.raises(FleetError, match="not fomaml"):
        build_spec(FleetConfig(dataset=data.load("digits"), clients=2, strategy="fomaml", shots=3, query_steps=2,
                               emulated={0: "cortex-m0"}))
    fleet = _fleet()
    x, y = fleet.device_train(0)
    from tintin.fleet.local import train_device_on_target

    with pytest.raises(FleetError, match="query steps"):
        train_device_on_target(fleet.build_model(0), x, y, LocalPlan(shots=3, query_steps=2), 0, "cortex-m0",
                               fleet.target_exponent)


def test_a_device_without_query_samples_is_a_one_line_error():
    fleet = get_workload("sine", devices=2, seed=0, samples_per_device=5, test_per_device=2)
    spec, _ = build_spec(FleetConfig(source=fleet, model=fleet.build_model(0), strategy="fomaml", rounds=1,
                                     shots=5, query_steps=2, local_steps=2, batch_size=1))
    with pytest.raises(FleetError, match="none left for a query draw"):
        train_in_process(spec)


def test_a_flower_fomaml_fleet_equals_the_in_process_rounds(tmp_path, capsys):
    pytest.importorskip("flwr")
    pytest.importorskip("ray")
    from tintin.cli.app import main
    from tintin.io.model_file import load_model

    out = tmp_path / "meta.safetensors"
    status = main(["fleet", "--workload", "sine", "--clients", "3", "--rounds", "2", "--strategy", "fomaml",
                   "--shots", "4", "--query-steps", "3", "--local-steps", "6", "--batch-size", "1", "--lr", "0.02",
                   "--meta-lr", "0.7", "--meta-anneal", "--nodes", "2", "--seed", "2", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    d = json.loads(captured.out)
    assert d["strategy"] == "fomaml" and d["query_steps"] == 3 and d["meta_lr"] == 0.7 and "test_mse" in d
    fleet = get_workload("sine", devices=3, seed=2)
    spec, _ = build_spec(FleetConfig(source=fleet, model=fleet.build_model(2), strategy="fomaml", rounds=2,
                                     shots=4, query_steps=3, local_steps=6, batch_size=1, lr=0.02, meta_lr=0.7,
                                     meta_anneal=True, seed=2))
    ref = train_in_process(spec)
    model = load_model(out)[0]
    for p in model.parameters():
        assert p.value.scale == ref[p.name][1] and np.array_equal(p.value.m, ref[p.name][0])


def test_the_command_refuses_query_steps_without_fomaml(capsys):
    from tintin.cli.app import main

    status = main(["fleet", "--workload", "sine", "--clients", "2", "--strategy", "reptile", "--query-steps", "3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0 and len(err) == 1 and err[0].startswith("error:") and "--query-steps" in err[0]
