"""A whole training step composed from the C kernels equals tintin.train.train_step bit for bit."""

import numpy as np
import pytest

from tintin.nn import Context, Linear, QuantConfig, ReLU, Sequential, build_model
from tintin.numerics import QTensor, RoundingStream, Scale
from tintin.ops import mse_error, softmax_cross_entropy_error
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import train_step


def state(model):
    return [(p.name, p.value.m.copy(), p.value.scale, None if p.momentum is None else p.momentum.copy())
            for p in model.parameters()]


def assert_same_state(a, b):
    for (n1, m1, s1, v1), (n2, m2, s2, v2) in zip(a, b, strict=True):
        assert n1 == n2
        assert s1 == s2, n1
        assert m1.dtype == m2.dtype and np.array_equal(m1, m2), n1
        assert (v1 is None) == (v2 is None), n1
        if v1 is not None:
            assert np.array_equal(v1, v2), n1


def run_both(rt, make_model, ocfg, x, y, steps, batch, target_exponent=0, prepare=None):
    """Train two identical models, one on the Python simulator and one on the C kernels."""
    models = [make_model(), make_model()]
    if prepare:
        for m in models:
            prepare(m)
    opts = [IntegerSGD(m.parameters(), ocfg, m.config.scale_mode) for m in models]
    ctxs = [Context(mode=m.config.scale_mode, stream=RoundingStream(seed=11)) for m in models]
    scales_seen = set()
    for step in range(steps):
        xb, yb = x[step * batch:(step + 1) * batch], y[step * batch:(step + 1) * batch]
        # forward output and loss error agree before the step
        py_out = models[0].forward(QTensor(xb, Scale(models[0].input_exponent)), Context(mode=models[0].config.scale_mode))
        c_out = rt.forward(models[1], xb)
        assert c_out.scale == py_out.scale and np.array_equal(c_out.m, py_out.m)
        if models[0].loss == "cross_entropy":
            pe, pl = softmax_cross_entropy_error(py_out, yb, models[0].config.scale_mode)
            ce, cl = rt.softmax_cross_entropy_error(c_out, yb, models[1].config.scale_mode)
        else:
            t = QTensor(yb.reshape(py_out.shape).astype(np.int8), Scale(target_exponent))
            pe, pl = mse_error(py_out, t, models[0].config.scale_mode)
            ce, cl = rt.mse_error(c_out, t, models[1].config.scale_mode)
        assert ce.scale == pe.scale and np.array_equal(ce.m, pe.m) and cl == pl
        # the step itself
        rp = train_step(models[0], opts[0], xb, yb, ctxs[0], target_exponent)
        rc = rt.train_step(models[1], opts[1], xb, yb, ctxs[1], target_exponent)
        assert (rc.loss, rc.correct, rc.count) == (rp.loss, rp.correct, rp.count)
        assert ctxs[1].stream.step == ctxs[0].stream.step
        assert_same_state(state(models[1]), state(models[0]))
        scales_seen.update(p.value.scale for p in models[0].parameters() if p.kind == "weight")
    return models, scales_seen


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    x = rng.integers(-127, 128, (96, 6, 4)).astype(np.int8)  # 2-D samples: exercises Flatten
    y = rng.integers(0, 5, 96)
    return x, y


CASES = [
    (QuantConfig(), OptimConfig(lr=0.5)),
    (QuantConfig(scale_mode="pow2", weight_bits=16), OptimConfig(lr=1.0, rounding="pseudo_stochastic", momentum_shift=3)),
    (QuantConfig(upscale_init=False), OptimConfig(rule="niti", mu=5)),
    (QuantConfig(weight_bits=16), OptimConfig(lr=2.0, rounding="nearest", weight_rescale=False)),
    (QuantConfig(scale_mode="pow2"), OptimConfig(lr=1.7, rounding="stochastic", momentum_shift=1)),
    (QuantConfig(wide_layers=("fc2",)), OptimConfig(lr=1.0)),  # mixed widths: int8 fc1, int16 master fc2
]


@pytest.mark.parametrize("qcfg,ocfg", CASES)
def test_mlp_training_steps_match(rt, data, qcfg, ocfg):
    x, y = data
    make = lambda: build_model("mlp", (6, 4), 5, qcfg, seed=2, hidden=16)  # noqa: E731
    run_both(rt, make, ocfg, x, y, steps=6, batch=16)


def test_weight_rescales_happen_and_match(rt, data):
    """A large learning rate drives weights out of range: the grid rescale runs on both sides."""
    x, y = data
    make = lambda: build_model("mlp", (6, 4), 5, QuantConfig(), seed=3, hidden=16)  # noqa: E731
    _, seen = run_both(rt, make, OptimConfig(lr=2.0, rounding="stochastic"), x, y, steps=6, batch=16)
    initial = {p.value.scale for p in make().parameters() if p.kind == "weight"}
    assert seen - initial  # some weight scale changed


def test_sparse_rows_and_frozen_first_layer(rt, data):
    x, y = data

    def prepare(model):
        fc1, fc2 = model.layers[1], model.layers[3]
        fc1.weight.trainable = False  # no input error is needed below fc1 ... but fc1's bias trains
        fc2.weight.trainable_rows = np.array([4, 0, 2])
        fc1.bias.trainable_rows = np.array([1, 3, 5, 7])

    make = lambda: build_model("mlp", (6, 4), 5, QuantConfig(), seed=4, hidden=16)  # noqa: E731
    models, _ = run_both(rt, make, OptimConfig(lr=1.0, momentum_shift=2), x, y, steps=5, batch=8, prepare=prepare)
    fresh = make()
    assert np.array_equal(models[1].layers[3].weight.value.m[[1, 3]], fresh.layers[3].weight.value.m[[1, 3]])


def test_batch_size_one_online_steps(rt, data):
    x, y = data
    make = lambda: build_model("mlp", (6, 4), 5, QuantConfig(weight_bits=16), seed=6, hidden=16)  # noqa: E731
    run_both(rt, make, OptimConfig(lr=0.25), x, y, steps=10, batch=1)


def test_mse_head_matches(rt):
    rng = np.random.default_rng(9)
    x = rng.integers(-127, 128, (40, 10)).astype(np.int8)
    y = rng.integers(-127, 128, (40, 3)).astype(np.int8)

    def make():
        cfg = QuantConfig()
        r = np.random.default_rng(1)
        layers = [Linear(10, 12, config=cfg, rng=r, name="fc1"), ReLU("relu"),
                  Linear(12, 3, config=cfg, rng=r, name="fc2")]
        return Sequential(layers, (10,), cfg, loss="mse", input_exponent=-7)

    run_both(rt, make, OptimConfig(lr=0.1), x, y, steps=5, batch=8, target_exponent=-7)


def test_unsupported_layer_is_a_clear_error(rt):
    from tintin.nn import MaxPool1d

    model = Sequential([MaxPool1d(2, name="pool")], (1, 8), QuantConfig())
    with pytest.raises(ValueError, match="Linear, ReLU and Flatten"):
        rt.forward(model, np.zeros((1, 1, 8), np.int8))
