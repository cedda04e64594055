"""Streams: int8 samples arriving one at a time, each with its label or ``None``.

A :class:`Stream` is an iterable of ``(sample, label)`` pairs: ``sample`` is an int8 array of the
data set's sample shape, ``label`` an ``int`` or ``None`` when no label arrives for that sample.
Streams are materialised arrays (seeded, so the same arguments give the same bits) and carry what
an evaluation needs: where the drift points are, which concept every sample belongs to, which
classes the model could know beforehand and the data to pretrain it on.

    from tintin.online import make_stream
    stream = make_stream("sensor_gain", "bearing", length=1200, seed=0, label_rate=0.5)
    for x, y in stream:        # x: int8 (1, 256); y: int or None
        ...
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tintin.errors import TintinError


class StreamError(TintinError, ValueError):
    """A stream or drift scenario cannot be built from the given arguments."""


def label_mask(length: int, label_rate: float, seed: int) -> np.ndarray:
    """Which samples of a stream carry a label: each independently with probability
    ``label_rate`` (seeded; ``1.0`` labels every sample)."""
    if not 0.0 < label_rate <= 1.0:
        raise StreamError(f"label rate must be in (0, 1], got {label_rate}")
    if label_rate == 1.0:
        return np.ones(length, dtype=bool)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    return rng.random(length) < label_rate


@dataclass(frozen=True, eq=False)
class Stream:
    """A seeded stream of int8 samples with labels, drift points and concept ids.

    Attributes
    ----------
    name, description:
        The scenario and one line saying what happens in it.
    x, y:
        int8 samples ``(N, *sample_shape)`` and int64 true labels ``(N,)`` (the evaluation sees
        every true label; a learner only gets those in :attr:`labelled`).
    labelled:
        bool ``(N,)``: whether the label of sample ``i`` arrives (``--label-rate``).
    concept:
        int ``(N,)``: the concept (data distribution) sample ``i`` comes from; 0 is the one the
        model was pretrained on. Recurring concepts reuse an id.
    drift_points:
        Indices where a drift starts (the first sample of the new concept, or the start of a ramp).
    num_classes, input_exponent, sample_shape:
        What a model for this stream must accept and predict.
    x_pretrain, y_pretrain:
        Training data of concept 0 (classes that appear later are absent) to pretrain a model.
    initial_classes:
        Classes present before the first drift point.
    synthetic:
        Whether the samples are generated (SYNTHETIC) data.
    """

    name: str
    description: str
    x: np.ndarray
    y: np.ndarray
    labelled: np.ndarray
    concept: np.ndarray
    drift_points: tuple[int, ...]
    num_classes: int
    input_exponent: int
    x_pretrain: np.ndarray
    y_pretrain: np.ndarray
    initial_classes: tuple[int, ...]
    synthetic: bool = False
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.x)
        if self.x.dtype != np.int8 or self.y.shape != (n,) or self.labelled.shape != (n,) or self.concept.shape != (n,):
            raise StreamError(f"{self.name}: inconsistent stream arrays")
        if any(not 0 < d < n for d in self.drift_points):
            raise StreamError(f"{self.name}: drift points {self.drift_points} outside the stream (length {n})")

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self):
        for i in range(len(self.x)):
            yield self.x[i], (int(self.y[i]) if self.labelled[i] else None)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def label_rate(self) -> float:
        return float(self.labelled.mean()) if len(self.labelled) else 0.0

    def summary(self) -> dict:
        """JSON-able description (no arrays)."""
        return {"name": self.name, "description": self.description, "length": len(self),
                "drift_points": list(self.drift_points), "num_classes": self.num_classes,
                "initial_classes": list(self.initial_classes), "label_rate": round(self.label_rate, 4),
                "sample_shape": list(self.sample_shape), "synthetic": self.synthetic, **self.info}
