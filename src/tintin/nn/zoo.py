"""Model zoo: named architectures built for a data set's sample shape and class count."""

from __future__ import annotations

from tintin.errors import TintinError

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import QuantConfig
from .layers import Flatten, Linear, ReLU
from .module import ShapeError
from .sequential import Sequential


class UnknownModelError(TintinError, ValueError):
    pass


def mlp(input_shape: tuple[int, ...], num_classes: int, config: QuantConfig, rng: np.random.Generator,
        hidden: int | tuple[int, ...] | None = None) -> Sequential:
    """Multi-layer perceptron ``features -> hidden... -> classes`` with ReLU after every hidden layer.

    ``hidden``: one width or a tuple of widths (``(200, 100, 50)`` is the 784-200-100-50-10 network
    of NITRO-D's Fashion-MNIST runs). It defaults by input size to one layer of 64 for small inputs
    (<= 256 features, e.g. digits 8x8) and 128 otherwise (e.g. 28x28 images)."""
    features = int(np.prod(input_shape))
    widths = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden or ())
    widths = widths or ((64 if features <= 256 else 128),)
    if any(int(w) < 1 for w in widths):
        raise ShapeError(f"hidden widths must be positive, got {widths}")
    layers = [Flatten("flatten")] if len(input_shape) > 1 else []
    dims = (features, *(int(w) for w in widths), num_classes)
    for i in range(len(dims) - 1):
        layers.append(Linear(dims[i], dims[i + 1], config=config, rng=rng, name=f"fc{i + 1}"))
        if i < len(dims) - 2:
            layers.append(ReLU(f"relu{i + 1}"))
    return Sequential(layers, input_shape, config, name="mlp")


#: the one decay rule of every zoo model: the learning rate is multiplied by DECAY_FACTOR after
#: these fractions of the run (30 epochs: at epochs 15 and 24). Chosen by rule, not per data set:
#: late small steps are what long runs need, in float and even more in int8 (bench/results/
#: int8_diagnostics.md, accuracy_long.md)
DECAY_AT = (0.5, 0.8)
DECAY_FACTOR = 0.2
#: runs shorter than this keep a constant rate: they stop before converging, where a decay only slows
#: them down (a 5-epoch run on a small set loses accuracy to it)
DECAY_MIN_EPOCHS = 10


@dataclass(frozen=True)
class TrainingDefaults:
    """Optimiser settings a zoo model trains well with (used when the user gives none).

    ``decay_at``: fractions of the run after which the learning rate is multiplied by
    ``decay_factor`` (the default :data:`DECAY_AT` with 30 epochs: epochs 15 and 24); ``()`` keeps it
    constant, and so do runs of fewer than ``decay_min_epochs`` epochs."""

    lr: float = 0.5
    momentum_shift: int = 0
    decay_at: tuple[float, ...] = DECAY_AT
    decay_factor: float = DECAY_FACTOR
    decay_min_epochs: int = DECAY_MIN_EPOCHS
    epochs: int = 30
    batch_size: int = 32

    def lr_schedule(self, epochs: int, lr: float | None = None) -> tuple[tuple[int, float], ...]:
        base = self.lr if lr is None else lr
        if epochs < self.decay_min_epochs:
            return ()
        out, value = [], base
        for frac in self.decay_at:
            value *= self.decay_factor
            epoch = int(round(frac * epochs))
            if 0 < epoch < epochs:
                out.append((epoch, value))
        return tuple(out)


ZOO: dict[str, Callable[..., Sequential]] = {"mlp": mlp}
TRAINING_DEFAULTS: dict[str, TrainingDefaults] = {"mlp": TrainingDefaults(lr=0.5)}


def register_model(name: str, builder: Callable[..., Sequential], training: TrainingDefaults | None = None) -> None:
    ZOO[name] = builder
    TRAINING_DEFAULTS[name] = training or TrainingDefaults()


def training_defaults(name: str) -> TrainingDefaults:
    if name not in ZOO:
        raise UnknownModelError(f"unknown model {name!r} (available: {', '.join(model_names())})")
    return TRAINING_DEFAULTS.get(name, TrainingDefaults())


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
