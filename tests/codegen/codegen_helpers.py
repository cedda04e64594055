"""Helpers of the code-generation tests (imported as a top-level module: pytest puts this directory
on sys.path): data, small models, emulator skips."""

from __future__ import annotations

import numpy as np
import pytest

from tintin.nn import QuantConfig, Sequential, build_model
from tintin.nn.conv_layers import Conv2d
from tintin.nn.layers import Flatten, Linear, ReLU
from tintin.nn.pool_layers import MaxPool2d
from tintin.optim import OptimConfig


def require(target: str) -> None:
    """Skip (with the reason printed) when the target's toolchain is not installed."""
    from tintin.targets import toolchain_status

    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)


def digits():
    from tintin.data import load

    return load("digits")


def mnist():
    from tintin.data import load

    return load("mnist5k")


def pooled_digits(ds):
    """Digits averaged over 2x2 blocks (16 features, nearest rounding): small enough for a float
    and an integer MLP on the 2 KB ATmega328P."""
    def pool(x):
        s = x.reshape(len(x), 4, 2, 4, 2).astype(np.int32).sum(axis=(2, 4))
        return np.clip(np.sign(s) * ((np.abs(s) + 2) // 4), -127, 127).astype(np.int8).reshape(len(x), 16)

    return pool(ds.x_train), pool(ds.x_test)


def tiny_mlp(input_exponent: int = -7, seed: int = 0):
    return build_model("mlp", (16,), 10, hidden=8, seed=seed, input_exponent=input_exponent)


def order_for(n: int, steps: int, batch_size: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    need = steps * batch_size
    return np.concatenate([rng.permutation(n) for _ in range(-(-need // n))])[:need]


def small_cnn(seed: int = 0, config: QuantConfig | None = None) -> Sequential:
    config = config or QuantConfig()
    rng = np.random.default_rng(seed)
    layers = [Conv2d(1, 3, 3, padding=1, config=config, rng=rng, name="conv1"), ReLU("relu1"), MaxPool2d(2, name="pool1"),
              Conv2d(3, 4, 3, config=config, rng=rng, name="conv2"), ReLU("relu2"), Flatten("flat"),
              Linear(4 * 2 * 2, 5, config=config, rng=rng, name="fc")]
    return Sequential(layers, (1, 8, 8), config, name="smallcnn")


def random_data(model, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(-127, 128, size=(n, *model.input_shape)).astype(np.int8)
    x[rng.random(x.shape) < 0.3] = 0
    if model.loss == "cross_entropy":
        y = rng.integers(0, model.output_shape_[0], size=n)
    else:
        # targets of a few units (scale 2**0): the outputs can follow them without updates 2**24
        # times the weight range, where the C saturates (docs/c-runtime.md, "Where the C and the
        # Python may differ")
        y = rng.integers(-16, 17, size=(n, *model.output_shape_)).astype(np.int8)
    return x, y


ONLINE = OptimConfig(lr=0.05)
