"""Per-layer learning rates: a layer at ``lr * 2**s`` is IntegerSGD at that rate, bit for bit."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.nn import Context, build_model
from tintin.numerics import RoundingStream
from tintin.optim import IntegerSGD, OptimConfig
from tintin.optim.layer_rates import MAX_LAYER_SHIFT, LayerRateSGD, check_shifts, layer_of
from tintin.train.step import train_step


def _model(seed):
    return build_model("mlp", (16,), 4, seed=seed, input_exponent=-7)


def _step(model, sgd, x, y, seed):
    train_step(model, sgd, x, y, Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed)))
    return {p.name: (p.value.m.copy(), p.value.scale) for p in model.parameters()}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), lr=st.sampled_from([0.01, 0.05, 0.1, 0.3]), s1=st.integers(-3, 3),
       s2=st.integers(-3, 3), batch=st.integers(1, 4))
def test_each_layer_steps_as_integer_sgd_at_its_own_rate(seed, lr, s1, s2, batch):
    """One step: fc1 changes exactly as IntegerSGD at lr * 2**s1 changes it, fc2 as at lr * 2**s2
    (the gradients of one step do not depend on the rates; the rounding keys are the same)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-127, 128, (batch, 16)).astype(np.int8)
    y = rng.integers(0, 4, batch)
    base = _model(seed % 7)
    mode = base.config.scale_mode
    got = copy.deepcopy(base)
    after = _step(got, LayerRateSGD(got.parameters(), OptimConfig(lr=lr), mode, {"fc1": s1, "fc2": s2}), x, y, seed)
    for layer, s in (("fc1", s1), ("fc2", s2)):
        ref = copy.deepcopy(base)
        sgd = IntegerSGD(ref.parameters(), OptimConfig(lr=lr), mode)
        sgd.lr_scale = sgd.lr_scale.shifted(s)
        want = _step(ref, sgd, x, y, seed)
        for name in (f"{layer}.weight", f"{layer}.bias"):
            assert np.array_equal(after[name][0], want[name][0]) and after[name][1] == want[name][1], name


def test_no_shift_is_integer_sgd_and_a_uniform_shift_is_a_scaled_rate():
    rng = np.random.default_rng(3)
    x = rng.integers(-127, 128, (6, 16)).astype(np.int8)
    y = rng.integers(0, 4, 6)
    a, b, c = _model(1), _model(1), _model(1)
    mode = a.config.scale_mode
    sgds = [LayerRateSGD(a.parameters(), OptimConfig(lr=0.05), mode, {"fc1": 1, "fc2": 1}),
            IntegerSGD(b.parameters(), OptimConfig(lr=0.1), mode),
            LayerRateSGD(c.parameters(), OptimConfig(lr=0.1), mode, {})]
    for i in range(6):  # several steps: the rates compound through the forward pass
        outs = [_step(m, sgd, x[i:i + 1], y[i:i + 1], i) for m, sgd in zip((a, b, c), sgds)]
    for name in outs[0]:
        assert all(np.array_equal(outs[0][name][0], o[name][0]) and outs[0][name][1] == o[name][1] for o in outs)
    assert sgds[0].lr_scale == sgds[1].lr_scale.shifted(-1)  # the configured rate is left as it was


def test_only_the_named_layer_moves_faster():
    rng = np.random.default_rng(5)
    x = rng.integers(-127, 128, (1, 16)).astype(np.int8)
    y = np.array([2])
    a, b = _model(2), _model(2)
    mode = a.config.scale_mode
    fast = _step(a, LayerRateSGD(a.parameters(), OptimConfig(lr=0.05), mode, {"fc2": 2}), x, y, 0)
    plain = _step(b, IntegerSGD(b.parameters(), OptimConfig(lr=0.05), mode), x, y, 0)
    assert np.array_equal(fast["fc1.weight"][0], plain["fc1.weight"][0])
    assert not np.array_equal(fast["fc2.weight"][0], plain["fc2.weight"][0])


@pytest.mark.parametrize("shifts, message", [
    ({"fc9": 1}, "no layer fc9"),
    ({"fc1": MAX_LAYER_SHIFT + 1}, "must be an integer in"),
    ({"fc1": 1.0}, "must be an integer in"),
    ({"fc1": True}, "must be an integer in"),
    ({"": 1}, "needs a layer name"),
])
def test_bad_shifts_are_one_line_errors(shifts, message):
    model = _model(0)
    with pytest.raises(ValueError, match=message) as err:
        LayerRateSGD(model.parameters(), OptimConfig(lr=0.05), model.config.scale_mode, shifts)
    assert "\n" not in str(err.value)


def test_layer_names():
    assert layer_of("fc1.weight") == "fc1" and layer_of("block.conv.bias") == "block.conv"
    assert check_shifts({"fc1": -2}) == {"fc1": -2}
