"""Error feedback (OptimConfig.error_feedback): an int8 remainder per weight in 2**-8 weight steps,
so updates smaller than one step are delayed, not lost; its state in files; compiled programs
refuse it with momentum."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.compile import CompileError, compile_program
from tintin.io import load_model, save_model
from tintin.nn import Context, build_model
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, RoundingStream, Scale, ScaleMode
from tintin.optim import IntegerSGD, OptimConfig


def weight(m, scale=Scale(-7), bits=8, name="fc.weight"):
    return Parameter(name, "weight", QTensor(np.asarray(m, dtype=np.int8 if bits == 8 else np.int16), scale), bits)


def step(opt, p, grad_m, grad_scale, seed=0, step_no=0):
    p.grad = QTensor(np.asarray(grad_m, dtype=np.int32), grad_scale)
    opt.update(p, Context(stream=RoundingStream(seed, step_no)))


def test_small_updates_add_up_instead_of_being_lost():
    """A constant update of 1/10 of a step moves every weight by exactly one step in 10 updates
    (nearest rounding: without feedback it would never move)."""
    p = weight(np.zeros(50))
    opt = IntegerSGD([p], OptimConfig(lr=1.0, rounding="nearest", error_feedback=("fc",)), ScaleMode.COMPOUND)
    grad = np.full(50, -round(2**9 * 0.1))  # lr * g = 0.1 * 2**-7 at grad scale 2**-16
    for i in range(10):
        step(opt, p, grad, Scale(-16), step_no=i)
    assert (p.value.m == 1).all()
    plain = weight(np.zeros(50))
    opt2 = IntegerSGD([plain], OptimConfig(lr=1.0, rounding="nearest"), ScaleMode.COMPOUND)
    for i in range(10):
        step(opt2, plain, grad, Scale(-16), step_no=i)
    assert (plain.value.m == 0).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-100_000, 100_000), min_size=1, max_size=40), st.integers(0, 2**31 - 1),
       st.sampled_from(["nearest", "stochastic"]))
def test_master_is_the_exact_sum_of_the_fine_updates(grads, seed, rounding):
    """``256 * w + r`` moves by exactly the fine update each step while no rescale happens."""
    p = weight(np.zeros(len(grads)))
    opt = IntegerSGD([p], OptimConfig(lr=0.5, rounding=rounding, error_feedback=("*",)), ScaleMode.COMPOUND)
    total = np.zeros(len(grads), dtype=np.int64)
    for i in range(3):
        g = QTensor(np.asarray(grads, dtype=np.int32), Scale(-18))
        fine, _ = opt.feedback_fine(g.m, opt.aligned_multiplier(g.scale, p.value.scale),
                                    RoundingStream(seed, i).key(1))
        total -= fine
        step(opt, p, grads, Scale(-18), seed, i)
        if p.value.scale != Scale(-7):
            return  # rescaled: covered below
        master = (p.value.m.astype(np.int64) << 8) + p.remainder
        assert np.array_equal(master, total)
        assert p.remainder.dtype == np.int8 and p.remainder.min() >= -128 and p.remainder.max() <= 127


def test_rescale_keeps_the_master_value():
    p = weight(np.full(8, 120))
    p.remainder = np.full(8, 100, dtype=np.int8)
    opt = IntegerSGD([p], OptimConfig(lr=1.0, rounding="nearest", error_feedback=("*",)), ScaleMode.COMPOUND)
    step(opt, p, np.full(8, -20 * 2**9), Scale(-16))  # +20 steps: 140 > 127, the scale coarsens
    assert p.value.scale != Scale(-7)
    before = (120 * 256 + 100 + 20 * 256) / 256 * 2.0**-7
    after = (p.value.m.astype(np.float64) + p.remainder / 256) * p.value.scale.to_float()
    assert np.allclose(after, before, rtol=2e-3)
    assert np.abs(p.value.m).max() <= 127


def test_other_layers_and_biases_are_untouched_by_the_setting():
    cfg = OptimConfig(error_feedback=("fc2",))
    assert cfg.feeds_back("fc2.weight", "weight")
    assert not cfg.feeds_back("fc1.weight", "weight") and not cfg.feeds_back("fc2.bias", "bias")


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="error_feedback"):
        OptimConfig(error_feedback="fc1")
    with pytest.raises(ValueError, match="aligned rule"):
        OptimConfig(rule="niti", error_feedback=("*",))


def test_remainders_round_trip_through_a_model_file(tmp_path):
    from tintin import data
    from tintin.train import TrainConfig, fit

    ds = data.load("digits")
    model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
    fit(model, ds.x_train[:200], ds.y_train[:200],
        TrainConfig(epochs=1, batch_size=16, optim=OptimConfig(lr=0.5, error_feedback=("fc1",))), progress=False)
    w = model.parameters()[0]
    assert w.remainder is not None and w.remainder.any()
    loaded, _ = load_model(save_model(model, tmp_path / "m.safetensors", include_optimizer_state=True))
    assert np.array_equal(loaded.parameters()[0].remainder, w.remainder)
    assert loaded.parameters()[2].remainder is None


def test_compiled_programs_refuse_error_feedback_with_momentum():
    model = build_model("mlp", (8,), 3, seed=0)
    with pytest.raises(CompileError, match="momentum"):
        compile_program(model, "full", 1, optim=OptimConfig(error_feedback=("*",), momentum_shift=3))
