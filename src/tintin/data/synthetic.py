"""What the seeded synthetic sensor sets (``bearing``, ``spectrum``) share: balanced shuffled labels,
independent train/test streams from one seed, train-statistics quantisation and per-sample extras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .quantize import quantize_sensor

#: ``simulate(rng, labels, snr_choices) -> (x float (N, C, L), per-sample metadata arrays)``
Simulator = Callable[[np.random.Generator, np.ndarray, list[float]], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class SensorSplits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_exponent: int
    extras: dict
    snr_text: str


def describe_snr(values: list[float]) -> str:
    return f"{values[0]:g} dB" if len(values) == 1 else "{" + ", ".join(f"{v:g}" for v in values) + "} dB"


def _split(seed_seq, num_classes: int, n_per_class: int, snr_choices: list[float], simulate: Simulator):
    rng = np.random.default_rng(seed_seq)
    labels = rng.permutation(np.repeat(np.arange(num_classes, dtype=np.int64), n_per_class))
    x, meta = simulate(rng, labels, snr_choices)
    return x, labels, meta


def sensor_splits(simulate: Simulator, num_classes: int, n_per_class: int, n_test_per_class: int,
                  snr_db: list[float], test_snr_db: list[float] | None, seed: int) -> SensorSplits:
    """Train and test splits from two child streams of ``seed``, quantised with train statistics
    (:func:`tintin.data.quantize.quantize_sensor`); extras hold the channel statistics and each
    split's per-sample metadata as ``train_<key>`` / ``test_<key>``."""
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    test_snr = snr_db if test_snr_db is None else test_snr_db
    x_train, y_train, meta_train = _split(train_seq, num_classes, n_per_class, snr_db, simulate)
    x_test, y_test, meta_test = _split(test_seq, num_classes, n_test_per_class, test_snr, simulate)
    quant = quantize_sensor(x_train, x_test)
    extras = {"channel_mean": quant.channel_mean, "channel_std": quant.channel_std}
    extras.update({f"train_{k}": v for k, v in meta_train.items()})
    extras.update({f"test_{k}": v for k, v in meta_test.items()})
    snr_text = describe_snr(snr_db) + ("" if test_snr_db is None else f" (test {describe_snr(test_snr)})")
    return SensorSplits(quant.x_train, y_train, quant.x_test, y_test, quant.exponent, extras, snr_text)
