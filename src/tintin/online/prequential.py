"""Test-then-train (prequential) evaluation on a drifting stream.

Every sample is first predicted, then (when its label arrives) learnt, as in river's
``progressive_val_score``. Accuracy counts every sample against its true label, labelled or not.

Metrics (``W`` = window, default 100 samples):

* **prequential accuracy**: the fraction of correct predictions over the whole stream, and over
  trailing windows (``windowed[i]`` = accuracy of samples ``i-W+1..i``);
* **recovery samples** of drift point ``d``: the pre-drift level is the accuracy over the ``W``
  samples before ``d``; recovery is the smallest ``k >= W`` such that the window ``d+k-W..d+k-1`` is
  back within 2 points of that level (``W`` therefore means "no visible drop"). ``None`` if it never
  recovers before the next drift point or the end of the stream;
* **forgetting**: for each drift point where an earlier concept returns, the accuracy over the last
  ``W`` samples of its previous appearance minus the accuracy over the first ``W`` samples after
  its return (positive: forgotten); the mean over returns, ``None`` without recurring concepts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .stream import Stream

RECOVERY_TOLERANCE = 0.02


def prequential(stream: Stream, predict_one: Callable, learn_one: Callable | None,
                progress: Callable[[int], None] | None = None, predictions: np.ndarray | None = None) -> np.ndarray:
    """Test-then-train over ``stream``: bool ``(N,)`` of correct predictions. ``learn_one=None``
    only predicts (a frozen model). ``predictions`` (int ``(N,)``, optional) receives every prediction."""
    correct = np.zeros(len(stream), dtype=bool)
    for i, (x, label) in enumerate(stream):
        p = predict_one(x)
        correct[i] = p == stream.y[i]
        if predictions is not None:
            predictions[i] = p
        if learn_one is not None and label is not None:
            learn_one(x, label)
        if progress is not None:
            progress(i)
    return correct


def windowed(correct: np.ndarray, window: int) -> np.ndarray:
    """Trailing-window accuracy at every sample (shorter windows at the start)."""
    c = np.concatenate([[0], np.cumsum(correct, dtype=np.int64)])
    i = np.arange(1, len(correct) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def recovery_samples(correct: np.ndarray, drift_points, window: int,
                     tolerance: float = RECOVERY_TOLERANCE) -> list[int | None]:
    out = []
    bounds = list(drift_points) + [len(correct)]
    for j, d in enumerate(drift_points):
        pre = correct[max(d - window, 0 if j == 0 else bounds[j - 1]):d].mean()
        end = bounds[j + 1]
        found = None
        for k in range(window, end - d + 1):
            if correct[d + k - window:d + k].mean() >= pre - tolerance:
                found = k
                break
        out.append(found)
    return out


def forgetting(correct: np.ndarray, concept: np.ndarray, drift_points, window: int) -> float | None:
    values = []
    for d in drift_points:
        c = concept[d]
        earlier = np.flatnonzero(concept[:d] == c)
        if len(earlier) == 0:
            continue
        last = earlier[-window:]
        values.append(float(correct[last].mean() - correct[d:d + window].mean()))
    return float(np.mean(values)) if values else None


@dataclass
class LearnerScore:
    """Prequential results of one learner on one stream."""

    name: str
    correct: np.ndarray
    window: int
    drift_points: tuple[int, ...]
    concept: np.ndarray
    seconds: float = 0.0
    predictions: np.ndarray | None = None  #: every prediction (the integer learner's)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def windowed(self) -> np.ndarray:
        return windowed(self.correct, self.window)

    def to_dict(self) -> dict:
        return {"prequential_accuracy": self.accuracy,
                "recovery_samples": recovery_samples(self.correct, self.drift_points, self.window),
                "forgetting": forgetting(self.correct, self.concept, self.drift_points, self.window),
                "window_accuracy": [round(float(v), 4) for v in self.windowed[self.window - 1::self.window]],
                "seconds": round(self.seconds, 3)}


@dataclass
class StreamComparison:
    """Frozen, integer online, float32 online and river on the same stream."""

    stream: Stream
    update: str
    window: int
    scores: dict[str, LearnerScore] = field(default_factory=dict)

    def to_dict(self) -> dict:
        s = self.scores
        integer = s["integer"].to_dict()
        d = {"stream": self.stream.summary(), "update": self.update, "window": self.window,
             "prequential_accuracy": integer["prequential_accuracy"],
             "frozen_accuracy": s["frozen"].accuracy,
             "float_prequential_accuracy": s["float"].accuracy if "float" in s else None,
             "river_prequential_accuracy": s["river"].accuracy if "river" in s else None,
             "recovery_samples": integer["recovery_samples"], "forgetting": integer["forgetting"],
             "learners": {name: score.to_dict() for name, score in s.items()}}
        return d


def compare_on_stream(model, stream: Stream, update: str = "full", optim=None, seed: int = 0, replay: int = 0,
                      window: int = 100, learners=("frozen", "integer", "float", "river"),
                      progress: Callable[[str, int], None] | None = None) -> StreamComparison:
    """Run ``learners`` test-then-train on ``stream``, each from a copy of the (pretrained)
    ``model``: ``frozen`` never learns; ``integer`` is :class:`OnlineLearner` with ``update``;
    ``float`` its float32 PyTorch twin with the same update mode and learning rate; ``river``
    river's softmax regression, given one pass over the stream's pretraining data first."""
    import time

    from .float_learner import FloatOnlineLearner, river_features, river_learner
    from .learner import OnlineLearner

    known = stream.initial_classes
    result = StreamComparison(stream, update, window)
    for name in learners:
        tick = (lambda i, name=name: progress(name, i)) if progress else None
        t0 = time.perf_counter()
        if name == "frozen":
            frozen = OnlineLearner(copy.deepcopy(model), "full", optim, seed)
            correct = prequential(stream, frozen.predict_one, None, tick)
        elif name == "integer":
            learner = OnlineLearner(copy.deepcopy(model), update, optim, seed, replay, known_classes=known)
            predictions = np.zeros(len(stream), dtype=np.int64)
            correct = prequential(stream, learner.predict_one, learner.learn_one, tick, predictions)
        elif name == "float":
            twin_of = copy.deepcopy(model)
            from ..compile.selection import apply_update_selection
            from .learner import selection_of
            apply_update_selection(twin_of, selection_of(update))
            flt = FloatOnlineLearner(twin_of, optim, seed, tinyol=update == "tinyol", known_classes=known)
            correct = prequential(stream, flt.predict_one, flt.learn_one, tick)
        elif name == "river":
            scale = 2.0 ** stream.input_exponent
            rv = river_learner()
            for x, y in zip(stream.x_pretrain, stream.y_pretrain):
                rv.learn_one(river_features(x, scale), int(y))

            def predict(x, rv=rv):
                p = rv.predict_one(river_features(x, scale))
                return -1 if p is None else int(p)

            correct = prequential(stream, predict, lambda x, y, rv=rv: rv.learn_one(river_features(x, scale), y), tick)
        else:
            raise ValueError(f"unknown learner {name!r}")
        result.scores[name] = LearnerScore(name, correct, window, stream.drift_points, stream.concept,
                                           time.perf_counter() - t0, predictions if name == "integer" else None)
    return result
