import numpy as np
import pytest
import torch

from tintin.nn import (AvgPool2d, ChannelScale, Context, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool1d,
                       MaxPool2d, QuantConfig, ReLU, Residual, Sequential)
from tintin.numerics import QTensor, Scale
from tintin.optim import OptimConfig
from tintin.reference import float_twin
from tintin.train import TrainConfig, fit
from tintin.train.step import loss_error


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.round(d.data / 16.0 * 127), 0, 127).astype(np.int8).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    return x[:1200], y[:1200], x[1200:], y[1200:]


def tiny_cnn(config, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2d(1, 8, 3, padding=1, config=config, rng=rng, name="c1"), ReLU("r1"),
                       MaxPool2d(2, name="p1"),
                       Conv2d(8, 16, 3, padding=1, config=config, rng=rng, name="c2"), ReLU("r2"),
                       MaxPool2d(2, name="p2"), Flatten("f"),
                       Linear(64, 10, config=config, rng=rng, name="fc")], (1, 8, 8), config, name="tiny")


def tiny_res(config, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential([Conv2d(1, 8, 3, padding=1, config=config, rng=rng, name="stem"), ReLU("r0"),
                       Residual([Conv2d(8, 8, 3, padding=1, config=config, rng=rng, name="b.c1"), ReLU("b.r"),
                                 Conv2d(8, 8, 3, padding=1, groups=8, config=config, rng=rng, name="b.dw")],
                                None, name="b"),
                       ChannelScale(8, config=config, name="s"), ReLU("r1"), AvgPool2d(2, name="ap"),
                       Residual([Conv2d(8, 16, 3, stride=2, padding=1, config=config, rng=rng, name="d.c1")],
                                [Conv2d(8, 16, 1, stride=2, config=config, rng=rng, name="d.proj")], name="d"),
                       ReLU("r2"), Flatten("f"), Linear(64, 10, config=config, rng=rng, name="fc")],
                      (1, 8, 8), config, name="tinyres")


@pytest.mark.parametrize("build", [tiny_cnn, tiny_res])
def test_tiny_cnn_learns_digits(digits, build):
    xtr, ytr, xte, yte = digits
    model = build(QuantConfig())
    before = fit(model, xtr[:64], ytr[:64], TrainConfig(epochs=1, batch_size=64, optim=OptimConfig(lr=1e-9)),
                 xte, yte).test_accuracy
    result = fit(model, xtr, ytr, TrainConfig(epochs=4, batch_size=16, optim=OptimConfig(lr=0.3)), xte, yte)
    assert before < 0.4 and result.test_accuracy >= 0.85  # float32 twin: about 0.9


def test_cnn1d_learns_a_synthetic_frequency_task():
    rng = np.random.default_rng(0)
    n, length = 240, 64
    y = rng.integers(0, 2, n)
    t = np.arange(length)
    freq = np.where(y == 0, 3, 7)[:, None]
    sig = np.sin(2 * np.pi * freq * t / length + rng.uniform(0, 2 * np.pi, (n, 1))) + 0.3 * rng.standard_normal((n, length))
    x = np.clip(np.round(sig * 40), -127, 127).astype(np.int8)[:, None, :]
    r = np.random.default_rng(1)
    model = Sequential([Conv1d(1, 8, 5, padding=2, rng=r, name="c1"), ReLU("r1"), MaxPool1d(2, name="p1"),
                        Conv1d(8, 8, 5, padding=2, rng=r, name="c2"), ReLU("r2"), GlobalAvgPool("gap"),
                        Linear(8, 2, rng=r, name="fc")], (1, length), QuantConfig())
    result = fit(model, x[:200], y[:200], TrainConfig(epochs=6, batch_size=8, optim=OptimConfig(lr=1.0)), x[200:], y[200:])
    assert result.history[0].test_accuracy < 0.7 and result.test_accuracy >= 0.9


def test_training_is_deterministic(digits):
    xtr, ytr, _, _ = digits
    runs = []
    for seed in (0, 0, 1):
        model = tiny_res(QuantConfig(), seed=0)
        fit(model, xtr[:96], ytr[:96], TrainConfig(epochs=1, batch_size=16, seed=seed))
        runs.append([(p.value.m.copy(), p.value.scale) for p in model.parameters()])
    same = all(np.array_equal(a, b) and sa == sb for (a, sa), (b, sb) in zip(runs[0], runs[1]))
    differ = any(not np.array_equal(a, b) for (a, _), (b, _) in zip(runs[0], runs[2]))
    assert same and differ


def cosine(a, b):
    a, b = a.reshape(-1), b.reshape(-1)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("build", [tiny_cnn, tiny_res])
def test_backward_chain_matches_torch_gradients(digits, build):
    """End to end through conv, pools, residual merges and channel scale: the integer gradients of
    every parameter point where PyTorch's do (same weights, same batch, summed cross-entropy)."""
    xtr, ytr, _, _ = digits
    model = build(QuantConfig())
    twin = float_twin(model).double()
    x, y = xtr[:32], ytr[:32]
    ctx = Context(mode=model.config.scale_mode, training=True)
    out = model.forward(QTensor(x, Scale(model.input_exponent)), ctx)
    err, _ = loss_error(model, out, y)
    grads = {}
    model.backward(err, ctx, on_gradient=lambda p: grads.__setitem__(p.name, p.grad.dequantize()))
    xt = torch.tensor(x.astype(np.float64) * 2.0**model.input_exponent)
    loss = torch.nn.functional.cross_entropy(twin(xt), torch.tensor(y), reduction="sum")
    loss.backward()
    torch_grads = [p.grad.numpy() for p in twin.parameters()]
    names = [p.name for p in model.parameters()]
    assert len(torch_grads) == len(names)
    for name, g in zip(names, torch_grads):
        assert grads[name].shape == g.shape
        assert cosine(grads[name], g) > 0.97, name
