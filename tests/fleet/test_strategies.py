"""The Flower strategies equal the in-process reference functions, bit for bit.

The replies are built by the ClientApp's own training function (real devices trained with the
simulator) and carried in real Flower messages; the strategies aggregate them; the reference
trains the same devices directly and calls :func:`tintin.fleet.aggregation` /
:func:`tintin.fleet.reptile_step` (or, for top-P% updates, the rational reference)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("flwr")

from flwr.app import Message, MetricRecord, RecordDict  # noqa: E402

from tintin import data  # noqa: E402
from tintin.fleet import FleetConfig, aggregate, reptile_step  # noqa: E402
from tintin.fleet.aggregation import scale_value  # noqa: E402
from tintin.fleet.client import train_integer_devices  # noqa: E402
from tintin.fleet.codec import arrays_model, dense_bytes, from_record, to_record, top_positions  # noqa: E402
from tintin.fleet.local import get_params, tensor_specs  # noqa: E402
from tintin.fleet.run import build_spec  # noqa: E402
from tintin.fleet.strategies import initial_arrays, make_strategy  # noqa: E402
from tintin.numerics import Scale  # noqa: E402

from .rational import device_models, ref_round  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture(autouse=True)
def flower_identity():
    """Outside a Flower process messages need the identity a ServerApp or node sets."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def _spec(digits, **kw):
    cfg = dict(dataset=digits, clients=5, rounds=2, local_steps=4, batch_size=4, lr=0.1, seed=3)
    cfg.update(kw)
    return build_spec(FleetConfig(**cfg))[0]


def _run_round(spec, strategy, arrays, server_round, nodes=(11, 22), states=None):
    """One round through the strategy with the ClientApp's training function on every node."""
    strategy.node_ids = list(nodes)
    messages = list(strategy.configure_train(server_round, arrays, None, grid=None))
    replies = []
    for msg in reversed(messages):  # arrival order must not matter
        config = msg.content["config"]
        state = None if states is None else states.setdefault(msg.metadata.dst_node_id, RecordDict())
        reply, metrics = train_integer_devices(spec, from_record(msg.content["arrays"]),
                                               [int(d) for d in config["devices"]], server_round, state)
        replies.append(Message(RecordDict({"arrays": to_record(reply), "metrics": MetricRecord(metrics)}),
                               reply_to=msg))
    return strategy.aggregate_train(server_round, replies)


@pytest.mark.parametrize("strategy_name", ["fedavg", "reptile"])
def test_strategy_equals_the_reference_over_two_rounds(digits, strategy_name):
    spec = _spec(digits, strategy=strategy_name, fraction=0.6, meta_lr=0.25)
    strategy = make_strategy(spec)
    specs = tensor_specs(spec.template)
    arrays = initial_arrays(spec, "integer")
    ref = get_params(spec.template)
    for r in (1, 2):
        arrays, metrics = _run_round(spec, strategy, arrays, r)
        devices = spec.sampled_devices(r)
        assert len(devices) == 3 and int(metrics["devices"]) == 3
        models, weights = device_models(spec, ref, devices, r)
        ref = (aggregate(models, weights, specs, "compound") if strategy_name == "fedavg"
               else reptile_step(ref, models, weights, specs, "compound", 0.25))
        got = arrays_model(from_record(arrays), [t.name for t in specs])
        for name in ref:
            assert got[name][1] == ref[name][1]
            assert got[name][0].dtype == ref[name][0].dtype
            assert np.array_equal(got[name][0], ref[name][0])
        assert int(metrics["bytes_up"]) == 3 * dense_bytes(get_params(spec.template))
        assert int(metrics["bytes_down"]) == int(metrics["bytes_up"])


def test_top_p_with_a_personal_layer_equals_the_rational_reference(digits):
    spec = _spec(digits, strategy="fedavg", top_p=10.0, personal=("fc2",), clients=3, error_feedback=False)
    strategy = make_strategy(spec)
    arrays = initial_arrays(spec, "integer")
    received = get_params(spec.template)
    new, metrics = _run_round(spec, strategy, arrays, 1, states={})
    got = arrays_model(from_record(new), [t.name for t in tensor_specs(spec.template)])
    models, weights = device_models(spec, received, range(3), 1)
    # the personal layer never left the devices: the global copy is unchanged
    for name in ("fc2.weight", "fc2.bias"):
        assert np.array_equal(got[name][0], received[name][0]) and got[name][1] == received[name][1]
    name = "fc1.bias"
    rm, rs = received[name]
    rebuilt = []
    for model in models:
        m, s = model[name]
        vals = [Fraction(int(v)) * scale_value(rs) for v in rm.ravel()]
        for i in top_positions(m, s, rm, rs, 10.0):
            vals[i] = Fraction(int(m.ravel()[i])) * scale_value(s)
        rebuilt.append(vals)
    W = sum(weights)
    mean = [sum(v[i] * w for v, w in zip(rebuilt, weights)) / W for i in range(rm.size)]
    finest = min([rs] + [m[name][1] for m in models], key=scale_value)
    want = [ref_round(v / scale_value(finest)) for v in mean]
    assert got[name][1] == finest and got[name][0].tolist() == want
    # exact bytes per device: fc1.weight 4096 int8 -> 410 positions of 2-byte index + 1-byte value,
    # fc1.bias 64 int32 -> 7 positions of 1 + 4 bytes; a 4-byte count and 3 scale bytes per tensor;
    # 4 bytes of sample count per message
    assert int(metrics["bytes_up"]) == 3 * ((4 + 410 * 3 + 3) + (4 + 7 * 5 + 3) + 4)
    dense = dense_bytes({k: v for k, v in received.items() if not k.startswith("fc2")})
    assert int(metrics["bytes_down"]) == 3 * dense


def test_personal_parts_stay_in_the_node_state(digits):
    spec = _spec(digits, strategy="fedavg", personal=("fc2",), clients=2)
    strategy = make_strategy(spec)
    states = {}
    arrays = initial_arrays(spec, "integer")
    _run_round(spec, strategy, arrays, 1, nodes=(5,), states=states)
    state = states[5]
    assert set(state.keys()) == {"personal.0", "personal.1"}
    kept = from_record(state["personal.0"])
    assert set(kept) == {"fc2.weight", "fc2.weight.scale", "fc2.bias", "fc2.bias.scale"}
    assert not np.array_equal(kept["fc2.weight"], get_params(spec.template)["fc2.weight"][0])


def test_a_failed_device_is_one_line(digits):
    from flwr.app import Error

    from tintin.fleet import FleetError

    spec = _spec(digits)
    strategy = make_strategy(spec)
    strategy.node_ids = [1]
    sent = list(strategy.configure_train(1, initial_arrays(spec, "integer"), None, grid=None))
    failed = Message(Error(code=0, reason="Traceback (most recent call last):\n  ...\nValueError: boom\n"),
                     reply_to=sent[0])
    with pytest.raises(FleetError, match="ValueError: boom"):
        strategy.aggregate_train(1, [failed])


class SineDevices:
    """SYNTHETIC: device i samples y = a_i sin(x + p_i) (a small regression source for the tests)."""

    name = "sine-test"
    task = "regression"
    num_classes = 1
    sample_shape = (1,)
    input_exponent = -5
    target_exponent = -5
    synthetic = True

    def __init__(self, n: int = 4, seed: int = 0):
        self.num_devices = n
        rng = np.random.default_rng(seed)
        self.amp = rng.uniform(0.5, 2.0, n)
        self.phase = rng.uniform(0, np.pi, n)

    def _draw(self, i, k, salt):
        rng = np.random.default_rng([i, salt])
        x = rng.uniform(-3.5, 3.5, k)
        y = self.amp[i] * np.sin(x + self.phase[i])
        q = lambda v: np.clip(np.round(v * 2 ** 5), -127, 127).astype(np.int8)  # noqa: E731
        return q(x).reshape(k, 1), q(y).reshape(k, 1)

    def device_train(self, i):
        return self._draw(i, 20, 0)

    def device_test(self, i):
        return self._draw(i, 10, 1)

    def global_test(self):
        parts = [self._draw(i, 10, 2) for i in range(self.num_devices)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_a_regression_source_trains_an_mse_model_and_aggregates_exactly():
    from tintin.fleet import DeviceSource
    from tintin.fleet.server import evaluate_global

    source = SineDevices()
    assert isinstance(source, DeviceSource)
    spec = build_spec(FleetConfig(source=source, strategy="reptile", rounds=1, local_steps=5, batch_size=4,
                                  lr=0.05, meta_lr=0.5))[0]
    assert spec.template.loss == "mse" and spec.template.output_shape_ == (1,)
    strategy = make_strategy(spec)
    arrays, _ = _run_round(spec, strategy, initial_arrays(spec, "integer"), 1)
    specs = tensor_specs(spec.template)
    models, weights = device_models(spec, get_params(spec.template), range(4), 1, source.target_exponent)
    ref = reptile_step(get_params(spec.template), models, weights, specs, "compound", 0.5)
    got = arrays_model(from_record(arrays), [t.name for t in specs])
    for name in ref:
        assert got[name][1] == ref[name][1] and np.array_equal(got[name][0], ref[name][0])
    mse = evaluate_global(spec, from_record(arrays), "integer")["mse"]
    assert np.isfinite(mse) and mse >= 0


def test_a_source_that_is_not_one_is_refused():
    from tintin.fleet import FleetError

    class Half:
        name = "half"

    with pytest.raises(FleetError, match="not a device source"):
        build_spec(FleetConfig(source=Half()))
    with pytest.raises(FleetError, match="either a data set"):
        build_spec(FleetConfig())


def test_fleet_docstring_examples_run():
    import doctest

    import tintin.fleet.aggregation
    import tintin.fleet.partition

    for module in (tintin.fleet.aggregation, tintin.fleet.partition):
        assert doctest.testmod(module).failed == 0


@given(st.integers(0, 2**31 - 1), st.floats(1.0, 60.0), st.booleans())
@settings(max_examples=25)
def test_error_feedback_keeps_exactly_what_was_not_sent(seed, top_p, with_residual):
    from tintin.fleet.codec import sparse_update

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    local = rng.integers(-127, 128, shape).astype(np.int8)
    recv = rng.integers(-127, 128, shape).astype(np.int8)
    ls, rs = Scale(int(rng.integers(-9, -5)), int(rng.integers(0, 3)), 0), Scale(int(rng.integers(-9, -5)))
    residual = (rng.integers(-300, 300, shape).astype(np.int16), Scale(-12, 0, 1)) if with_residual else None
    idx, val, vs, (em, es) = sparse_update(local, ls, recv, rs, residual, top_p, "weight", 8, "compound")
    assert np.abs(np.asarray(val, dtype=np.int64)).max() <= 127 and em.dtype == np.int16
    v = [Fraction(int(a)) * scale_value(ls) - Fraction(int(b)) * scale_value(rs)
         + (Fraction(int(residual[0].ravel()[i])) * scale_value(residual[1]) if residual else 0)
         for i, (a, b) in enumerate(zip(local.ravel(), recv.ravel()))]
    sent_delta = [Fraction(0)] * len(v)
    for j, i in enumerate(idx):
        sent_delta[i] = Fraction(int(val[j])) * scale_value(vs) - Fraction(int(recv.ravel()[i])) * scale_value(rs)
    # what is kept is what was not sent, up to the int16 storage rounding (half a step of its scale)
    for i in range(len(v)):
        kept = Fraction(int(em.ravel()[i])) * scale_value(es)
        assert abs(kept - (v[i] - sent_delta[i])) <= scale_value(es) / 2
    # the sent positions are the largest |v| (ties: lower index first)
    order = sorted(range(len(v)), key=lambda i: (-abs(v[i]), i))
    assert sorted(idx.tolist()) == sorted(order[:len(idx)])
