"""Whole training steps of small CNNs (LeNet-5, 1-D CNN, depthwise-separable CNN, residual CNN with
channel scale) with every kernel executed by the C runtime equal the Python simulator bit for bit.

The layers of :mod:`tintin.nn` call the op functions they imported; here those names are bound to
the C kernels (through :mod:`tintin.codegen.host`), the optimiser's update to the C update, and the
step is run by ``tintin.train.train_step`` on one model and by the pure Python on an identical one.
"""

import numpy as np
import pytest

import tintin.nn.conv_layers as conv_layers
import tintin.nn.layers as dense_layers
import tintin.nn.pool_layers as pool_layers
import tintin.nn.residual as residual_layers
import tintin.nn.scaling_layers as scaling_layers
import tintin.train.step as step_module
from tintin.nn import ChannelScale, Context, QuantConfig, ReLU, Sequential, build_model
from tintin.numerics import QTensor, RoundingStream
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import train_step


def c_kernels(rt) -> dict:
    """Module attribute -> C-backed replacement (the Python signatures, im2col buffers ignored)."""
    def cols_free(fn, arity):
        return lambda *args: fn(*args[:arity])

    return {
        (conv_layers, "conv2d_forward_s8"): cols_free(rt.conv2d_forward_s8, 7),
        (conv_layers, "conv2d_backward_input_s8"): rt.conv2d_backward_input_s8,
        (conv_layers, "conv2d_backward_weight_s32"): cols_free(rt.conv2d_backward_weight_s32, 6),
        (conv_layers, "conv2d_backward_bias_s32"): rt.conv2d_backward_bias_s32,
        (conv_layers, "conv1d_forward_s8"): cols_free(rt.conv1d_forward_s8, 7),
        (conv_layers, "conv1d_backward_input_s8"): rt.conv1d_backward_input_s8,
        (conv_layers, "conv1d_backward_weight_s32"): cols_free(rt.conv1d_backward_weight_s32, 6),
        (conv_layers, "conv1d_backward_bias_s32"): rt.conv1d_backward_bias_s32,
        (pool_layers, "maxpool2d_forward_s8"): rt.maxpool2d_forward_s8,
        (pool_layers, "maxpool2d_backward_s8"): rt.maxpool2d_backward_s8,
        (pool_layers, "maxpool1d_forward_s8"): rt.maxpool1d_forward_s8,
        (pool_layers, "maxpool1d_backward_s8"): rt.maxpool1d_backward_s8,
        (pool_layers, "avgpool2d_forward_s8"): rt.avgpool2d_forward_s8,
        (pool_layers, "avgpool2d_backward_s8"): rt.avgpool2d_backward_s8,
        (pool_layers, "avgpool1d_forward_s8"): rt.avgpool1d_forward_s8,
        (pool_layers, "avgpool1d_backward_s8"): rt.avgpool1d_backward_s8,
        (pool_layers, "global_avgpool_forward_s8"): rt.global_avgpool_forward_s8,
        (pool_layers, "global_avgpool_backward_s8"): rt.global_avgpool_backward_s8,
        (residual_layers, "residual_add_s8"): rt.residual_add_s8,
        (scaling_layers, "channel_scale_forward_s8"): rt.channel_scale_forward_s8,
        (scaling_layers, "channel_scale_backward_input_s8"): rt.channel_scale_backward_input_s8,
        (scaling_layers, "channel_scale_backward_weight_s32"): rt.channel_scale_backward_weight_s32,
        (scaling_layers, "channel_scale_backward_bias_s32"): rt.channel_scale_backward_bias_s32,
        (dense_layers, "linear_forward_s8"): rt.linear_forward_s8,
        (dense_layers, "linear_backward_input_s8"): rt.linear_backward_input_s8,
        (dense_layers, "linear_backward_weight_s32"): rt.linear_backward_weight_s32,
        (dense_layers, "linear_backward_bias_s32"): rt.linear_backward_bias_s32,
        (dense_layers, "relu_forward_s8"): rt.relu_forward_s8,
        (dense_layers, "relu_backward_s8"): rt.relu_backward_s8,
        (step_module, "softmax_cross_entropy_error"): rt.softmax_cross_entropy_error,
        (step_module, "predict_argmax"): rt.predict_argmax,
    }


def c_update(rt, optimizer):
    """IntegerSGD.update executed by the C update kernels (same sites, keys and state)."""
    def update(p, ctx):
        if p.grad is None:
            return
        cfg = rt.SgdConfig.from_optimizer(optimizer)
        value, mom = rt.sgd_update(p.kind, p.value, p.grad, cfg, ctx.stream.key(optimizer.site[id(p)]), p.momentum,
                                   p.trainable_rows)
        if mom is not None:
            p.momentum = mom
        p.assign(value)
        p.grad = None
    return update


def state(model):
    return [(p.name, p.value.m.copy(), p.value.scale, None if p.momentum is None else p.momentum.copy())
            for p in model.parameters()]


def rescnn_with_channel_scale(shape, classes, qcfg, seed):
    base = build_model("rescnn", shape, classes, qcfg, seed=seed, channels=(4, 6))
    layers = list(base.layers)
    layers.insert(3, ChannelScale(4, config=qcfg, name="cs"))
    return Sequential(layers, shape, qcfg, name="rescnn_cs")


MODELS = {
    "lenet5": lambda q, s: build_model("lenet5", (1, 12, 12), 4, q, seed=s, channels=(3, 4), hidden=(12, 8)),
    "cnn1d": lambda q, s: build_model("cnn1d", (3, 40), 3, q, seed=s, channels=(4, 6, 6)),
    "dscnn": lambda q, s: build_model("dscnn", (1, 10, 10), 3, q, seed=s, channels=4, blocks=((6, 1), (6, 2))),
    "rescnn": lambda q, s: rescnn_with_channel_scale((2, 10, 10), 3, q, s),
    "rescnn1d": lambda q, s: build_model("rescnn", (2, 24), 3, q, seed=s, channels=(4, 6)),
}
CONFIGS = [
    (QuantConfig(), OptimConfig(lr=0.5)),
    (QuantConfig(scale_mode="pow2", weight_bits=16), OptimConfig(lr=1.0, rounding="pseudo_stochastic", momentum_shift=2)),
    (QuantConfig(), OptimConfig(rule="niti", mu=4, rounding="nearest")),
]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_cnn_training_steps_on_c_kernels(rt, monkeypatch, name, config):
    qcfg, ocfg = CONFIGS[config]
    make = MODELS[name]
    py_model, c_model = make(qcfg, 1), make(qcfg, 1)
    assert [l.name for l in py_model.layers] == [l.name for l in c_model.layers]
    rng = np.random.default_rng(config)
    x = rng.integers(-127, 128, (12,) + py_model.input_shape).astype(np.int8)
    y = rng.integers(0, py_model.output_shape_[0], 12)
    py_opt = IntegerSGD(py_model.parameters(), ocfg, qcfg.scale_mode)
    c_opt = IntegerSGD(c_model.parameters(), ocfg, qcfg.scale_mode)
    py_ctx = Context(mode=qcfg.scale_mode, stream=RoundingStream(seed=3))
    c_ctx = Context(mode=qcfg.scale_mode, stream=RoundingStream(seed=3))
    for step in range(3):
        xb, yb = x[4 * step:4 * step + 4], y[4 * step:4 * step + 4]
        want = train_step(py_model, py_opt, xb, yb, py_ctx)
        with monkeypatch.context() as mp:
            for (module, attr), fn in c_kernels(rt).items():
                if hasattr(module, attr):
                    mp.setattr(module, attr, fn)
            mp.setattr(c_opt, "update", c_update(rt, c_opt))
            got = train_step(c_model, c_opt, xb, yb, c_ctx)
        assert (got.loss, got.correct) == (want.loss, want.correct), step
        for (n1, m1, s1, v1), (n2, m2, s2, v2) in zip(state(c_model), state(py_model), strict=True):
            assert s1 == s2 and m1.dtype == m2.dtype and np.array_equal(m1, m2), (step, n1)
            assert (v1 is None and v2 is None) or np.array_equal(v1, v2), (step, n1)


def test_the_substitution_really_runs_c(rt, monkeypatch):
    """Guard against a vacuous test: a broken C-backed kernel makes the step differ."""
    qcfg, ocfg = CONFIGS[0]
    models = [MODELS["lenet5"](qcfg, 1) for _ in range(2)]
    x = np.random.default_rng(0).integers(-127, 128, (4, 1, 12, 12)).astype(np.int8)
    y = np.array([0, 1, 2, 3])
    opts = [IntegerSGD(m.parameters(), ocfg, qcfg.scale_mode) for m in models]
    train_step(models[0], opts[0], x, y, Context(mode=qcfg.scale_mode))
    with monkeypatch.context() as mp:
        def broken(*args):
            out = rt.conv2d_forward_s8(*args[:7])
            return QTensor(out.m // 2, out.scale)
        mp.setattr(conv_layers, "conv2d_forward_s8", broken)
        train_step(models[1], opts[1], x, y, Context(mode=qcfg.scale_mode))
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(state(models[0]), state(models[1])))
