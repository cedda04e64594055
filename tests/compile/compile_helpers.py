"""Helpers of the tintin.compile tests: small models and a reference run with train_step
(imported as a top-level module: pytest puts this directory on sys.path)."""

from __future__ import annotations

import numpy as np
from tintin.checks import assert_program_matches_train_step, random_batch  # noqa: F401  (used by the tests)
from tintin.nn import QuantConfig, Sequential
from tintin.nn.layers import Flatten, Linear, ReLU
from tintin.optim import OptimConfig


def make_mlp(widths=(16, 24, 12, 5), input_shape=None, config: QuantConfig | None = None, seed: int = 0,
             loss: str = "cross_entropy", bias: bool = True) -> Sequential:
    """Flatten (if the input has several axes) then Linear/ReLU layers of the given widths."""
    config = config or QuantConfig()
    rng = np.random.default_rng(seed)
    input_shape = input_shape or (widths[0],)
    layers = [Flatten("flat")] if len(input_shape) > 1 else []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(Linear(a, b, bias=bias, config=config, rng=rng, name=f"fc{i + 1}"))
        if i < len(widths) - 2:
            layers.append(ReLU(f"relu{i + 1}"))
    return Sequential(layers, input_shape, config, loss=loss, name="testmlp")


def compare_runs(model, update: str, batch_size: int, steps: int, optim: OptimConfig | None = None,
                 planner: str = "greedy", seed: int = 0, epoch: int = 0, **options):
    """Train a copy of ``model`` with train_step and another copy with the compiled program;
    assert bit-identical losses, predictions, parameters, scales and momentum after every step
    (:func:`tintin.checks.assert_program_matches_train_step`).
    Returns (reference model, program model, program, list of reference weight scales)."""
    return assert_program_matches_train_step(model, update, batch_size, steps, optim, planner, seed, epoch, **options)
