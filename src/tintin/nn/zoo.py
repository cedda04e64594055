"""Model zoo: named architectures built for a data set's sample shape and class count."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import QuantConfig
from .layers import Flatten, Linear, ReLU
from .module import ShapeError
from .sequential import Sequential


class UnknownModelError(ValueError):
    pass


def mlp(input_shape: tuple[int, ...], num_classes: int, config: QuantConfig, rng: np.random.Generator,
        hidden: int | None = None) -> Sequential:
    """Two-layer perceptron ``features -> hidden -> classes`` with ReLU.

    ``hidden`` defaults by input size: 64 for small inputs (<= 256 features, e.g. digits 8x8), 128
    otherwise (e.g. 28x28 images)."""
    features = int(np.prod(input_shape))
    hidden = hidden or (64 if features <= 256 else 128)
    layers = [Flatten("flatten")] if len(input_shape) > 1 else []
    layers += [Linear(features, hidden, config=config, rng=rng, name="fc1"), ReLU("relu1"),
               Linear(hidden, num_classes, config=config, rng=rng, name="fc2")]
    return Sequential(layers, input_shape, config, name="mlp")


ZOO: dict[str, Callable[..., Sequential]] = {"mlp": mlp}


def register_model(name: str, builder: Callable[..., Sequential]) -> None:
    ZOO[name] = builder


def model_names() -> list[str]:
    return sorted(ZOO)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, config: QuantConfig | None = None,
                seed: int = 0, input_exponent: int = -7, **options) -> Sequential:
    """Build zoo model ``name`` for samples of ``input_shape`` (seeded initialisation)."""
    if name not in ZOO:
        raise UnknownModelError(f"unknown model {name!r} (available: {', '.join(model_names())})")
    if num_classes < 2:
        raise ShapeError(f"a classifier needs at least 2 classes, got {num_classes}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    model = ZOO[name](tuple(input_shape), num_classes, config or QuantConfig(), rng, **options)
    model.input_exponent = int(input_exponent)
    return model
