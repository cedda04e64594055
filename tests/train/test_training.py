import sys
from pathlib import Path

import numpy as np
import pytest

import tintin
from tintin.data import load
from tintin.nn import Context, Linear, QuantConfig, ReLU, Sequential, build_model
from tintin.numerics import RoundingStream, set_matmul_backend
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import TrainConfig, fit, predict, train_step

SRC = str(Path(tintin.__file__).parent)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def params_of(model):
    return [(p.name, p.value.m.copy(), p.value.scale) for p in model.parameters()]


def same_bits(a, b):
    return all(n1 == n2 and s1 == s2 and m1.dtype == m2.dtype and (m1 == m2).all()
               for (n1, m1, s1), (n2, m2, s2) in zip(a, b))


def test_digits_mlp_learns_above_90_percent(digits):
    model = build_model("mlp", digits.sample_shape, digits.num_classes, seed=0, input_exponent=digits.input_exponent)
    res = fit(model, digits.x_train, digits.y_train, TrainConfig(epochs=8, batch_size=32, seed=0, eval_each_epoch=False),
              digits.x_test, digits.y_test)
    assert res.test_accuracy > 0.90
    assert res.history[-1].train_loss < res.history[0].train_loss


@pytest.mark.parametrize("qconf,oconf", [
    (QuantConfig(), OptimConfig()),
    (QuantConfig(scale_mode="pow2", weight_bits=16), OptimConfig(rounding="pseudo_stochastic", momentum_shift=3)),
    (QuantConfig(upscale_init=False), OptimConfig(rule="niti", mu_schedule=((1, 3),))),
])
def test_same_seed_same_bits_and_different_seed_different_bits(digits, qconf, oconf):
    def run(seed):
        m = build_model("mlp", digits.sample_shape, digits.num_classes, qconf, seed=seed,
                        input_exponent=digits.input_exponent)
        fit(m, digits.x_train[:400], digits.y_train[:400],
            TrainConfig(epochs=2, batch_size=16, seed=seed, optim=oconf, eval_each_epoch=False))
        return params_of(m)

    a, b, c = run(3), run(3), run(4)
    assert same_bits(a, b)
    assert not same_bits(a, c)


def test_online_training_batch_size_one(digits):
    model = build_model("mlp", digits.sample_shape, digits.num_classes, seed=1, input_exponent=digits.input_exponent)
    fit(model, digits.x_train, digits.y_train,
        TrainConfig(epochs=1, batch_size=1, seed=1, optim=OptimConfig(lr=0.05), eval_each_epoch=False))
    acc = (predict(model, digits.x_test) == digits.y_test).mean()
    assert acc > 0.8


def _float_values(frame_locals, ret):
    out = []
    for name, v in list(frame_locals.items()) + [("<return>", ret)]:
        vals = v if isinstance(v, (list, tuple)) else (v,)
        for item in vals:
            if isinstance(item, (float, np.floating)) or (isinstance(item, np.ndarray) and item.dtype.kind in "fc"):
                out.append(name)
    return out


def trace_floats(fn, allowed=frozenset()):
    """Run ``fn`` and report every tintin function that held a float (Python float, numpy float
    scalar or float array) in a local variable or its return value."""
    found = []

    def profiler(frame, event, arg):
        if event == "return" and frame.f_code.co_filename.startswith(SRC) and frame.f_code.co_name not in allowed:
            names = _float_values(frame.f_locals, arg)
            if names:
                found.append((frame.f_code.co_filename.rsplit("/", 2)[-2:], frame.f_code.co_name, names))

    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return found


@pytest.mark.parametrize("qconf,oconf", [
    (QuantConfig(), OptimConfig()),
    (QuantConfig(scale_mode="pow2", weight_bits=16), OptimConfig(rounding="pseudo_stochastic", momentum_shift=2)),
    (QuantConfig(), OptimConfig(rule="niti", rounding="nearest")),
])
def test_no_float_inside_the_training_step(digits, qconf, oconf):
    model = build_model("mlp", digits.sample_shape, digits.num_classes, qconf, seed=0, input_exponent=digits.input_exponent)
    opt = IntegerSGD(model.parameters(), oconf, qconf.scale_mode)
    ctx = Context(mode=qconf.scale_mode, stream=RoundingStream(0))
    xb, yb = digits.x_train[:32], digits.y_train[:32]
    prev = set_matmul_backend("int")
    try:
        for _ in range(3):  # includes weight rescales on overflow after a few steps
            assert trace_floats(lambda: train_step(model, opt, xb, yb, ctx)) == []
    finally:
        set_matmul_backend(prev)
    # the BLAS fast path confines its float copies to int_matmul
    assert trace_floats(lambda: train_step(model, opt, xb, yb, ctx), allowed={"int_matmul"}) == []
    # and the instrument does see floats where they are (it can fail)
    assert trace_floats(lambda: train_step(model, opt, xb, yb, ctx)) != []


def test_fast_path_training_equals_integer_backend(digits):
    def run(backend):
        prev = set_matmul_backend(backend)
        try:
            m = build_model("mlp", digits.sample_shape, digits.num_classes, seed=2, input_exponent=digits.input_exponent)
            fit(m, digits.x_train[:300], digits.y_train[:300], TrainConfig(epochs=2, batch_size=32, seed=2,
                                                                            eval_each_epoch=False))
            return params_of(m)
        finally:
            set_matmul_backend(prev)

    assert same_bits(run("blas"), run("int"))


def test_mse_head_learns_a_regression():
    rng = np.random.default_rng(0)
    cfg = QuantConfig()
    model = Sequential([Linear(4, 16, config=cfg, rng=rng, name="a"), ReLU("r"), Linear(16, 2, config=cfg, rng=rng, name="b")],
                       (4,), cfg, loss="mse", input_exponent=-7)
    x = rng.integers(-127, 128, size=(256, 4)).astype(np.int8)
    target = np.stack([x[:, 0] // 2 + x[:, 1] // 4, -x[:, 2] // 2], axis=1).astype(np.int8)  # real = /128
    opt = IntegerSGD(model.parameters(), OptimConfig(lr=0.1), cfg.scale_mode)
    ctx = Context(mode=cfg.scale_mode, stream=RoundingStream(0))
    losses = []
    for epoch in range(30):
        total = 0.0
        for i in range(0, 256, 16):
            total += train_step(model, opt, x[i:i + 16], target[i:i + 16], ctx, target_exponent=-7).loss.to_float()
        losses.append(total)
    assert losses[-1] < 0.2 * losses[0]


def test_fit_rejects_bad_inputs(digits):
    model = build_model("mlp", digits.sample_shape, digits.num_classes, seed=0, input_exponent=digits.input_exponent)
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="labels"):
        fit(model, digits.x_train[:10], np.full(10, 12), cfg)
    with pytest.raises(ValueError, match="shape"):
        fit(model, np.zeros((10, 1, 7, 7), np.int8), digits.y_train[:10], cfg)
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        fit(model, digits.x_train[:10], digits.y_train[:9], cfg)
