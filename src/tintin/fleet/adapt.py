"""Adaptation on unseen devices: K labelled local samples, then the device's held-out score.

    from tintin.fleet.adapt import AdaptConfig, adapt, adaptation_table
    from tintin.fleet.workloads import get_workload
    fleet = get_workload("sine", devices=100, seed=0)
    new = fleet.unseen(10)
    table = adaptation_table({"meta": meta_model, "fedavg": fedavg_model, "scratch": fleet.build_model},
                             new, shots=(5, 10, 20), seeds=(0, 1, 2))
    print(table.to_markdown())

The protocol (what a device does when it joins the fleet):

1. Start from a copy of the initial integer model (the meta model, the FedAvg model, or a random
   initialisation: *scratch*).
2. Take the device's K labelled samples: the first K of a seeded permutation of its training
   samples (``SeedSequence([seed, device, 3])``), so the K = 5 samples are among the K = 10 ones.
3. Learn them one at a time (batch 1) for ``passes`` passes, each pass in its own seeded order
   (:func:`tintin.train.epoch_order` with ``seed``), with the integer SGD of
   :class:`tintin.optim.OptimConfig` at learning rate ``lr`` and the ``update`` mode (``full``:
   every parameter; ``last:1``: the output layer only); with ``layer_shifts`` (Meta-SGD's
   per-layer rates as powers of two) layer ``L`` learns at ``lr * 2**shift[L]``
   (:class:`tintin.optim.layer_rates.LayerRateSGD`). Classifiers learn through
   :class:`tintin.online.OnlineLearner` (``learn_one``); regression models through the same step,
   :func:`tintin.train.train_step` at batch 1 with the workload's target exponent (the online
   learner serves classifiers only). The rounding stream is seeded with ``seed``.
4. Score the adapted model on the device's held-out samples one at a time (batch 1, as on the
   device): accuracy for classifiers, mean squared error of the real values
   (``mean((y_hat - y)**2)``, host-side float) for regression.

Defaults (:data:`DEFAULT_CONFIG`): classification 8 passes at ``lr = 0.05``; regression 8
passes at ``lr = 0.02``; update ``full``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..compile.selection import apply_update_selection, parse_update
from ..errors import TintinError
from ..nn import Context, Sequential
from ..numerics import QTensor, RoundingStream, Scale
from ..online import OnlineLearner
from ..online.learner import selection_of
from ..optim import IntegerSGD, OptimConfig
from ..optim.layer_rates import LayerRateSGD, check_shifts
from ..train import epoch_order, train_step
from ..train.step import predict_argmax

__all__ = ["AdaptError", "AdaptConfig", "DEFAULT_CONFIG", "DEFAULT_SHOTS", "adapt", "score", "adapt_and_score",
           "adaptation_table", "AdaptationTable", "shot_indices", "config_dict"]

DEFAULT_SHOTS = (5, 10, 20)
_SHOT_SALT = 3


class AdaptError(TintinError, ValueError):
    """Bad adaptation arguments (shots, passes, a model that does not fit the devices)."""


@dataclass(frozen=True)
class AdaptConfig:
    """How a device adapts: ``passes`` over its K samples at batch 1, integer SGD at ``lr``,
    ``update`` mode (``full``, ``last:1``, ``bias``, ...); ``layer_shifts``: ``((layer, s), ...)``
    (or a dict), layer ``layer`` learns at ``lr * 2**s`` (the others at ``lr``).

    >>> AdaptConfig(lr=0.05, layer_shifts={"fc1": 1}).layer_shifts
    (('fc1', 1),)
    """

    passes: int = 8
    lr: float = 0.05
    update: str = "full"
    layer_shifts: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 1:
            raise AdaptError(f"passes must be an integer >= 1, got {self.passes!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise AdaptError(f"lr must be a positive number, got {self.lr!r}")
        parse_update(selection_of(self.update))  # one-line UpdateSelectionError for a bad mode
        pairs = self.layer_shifts.items() if isinstance(self.layer_shifts, Mapping) else self.layer_shifts
        try:
            shifts = check_shifts(dict((name, shift) for name, shift in pairs))
        except (TypeError, ValueError) as exc:
            raise AdaptError(f"layer_shifts: {exc}") from None
        object.__setattr__(self, "layer_shifts", tuple(sorted((n, s) for n, s in shifts.items() if s)))

    def optimizer(self, model: Sequential) -> IntegerSGD:
        """The integer SGD this configuration adapts ``model`` with (per-layer rates when
        ``layer_shifts`` has any)."""
        optim = OptimConfig(lr=float(self.lr))
        if not self.layer_shifts:
            return IntegerSGD(model.parameters(), optim, model.config.scale_mode)
        try:
            return LayerRateSGD(model.parameters(), optim, model.config.scale_mode, dict(self.layer_shifts))
        except ValueError as exc:
            raise AdaptError(str(exc)) from None


#: per task: the adaptation settings used when none are given
DEFAULT_CONFIG = {"classification": AdaptConfig(passes=8, lr=0.05), "regression": AdaptConfig(passes=8, lr=0.02)}


def _check_fit(model: Sequential, devices) -> None:
    if tuple(model.input_shape) != tuple(devices.sample_shape):
        raise AdaptError(f"the model takes samples of shape {tuple(model.input_shape)}, the {devices.name} devices "
                         f"give {tuple(devices.sample_shape)}")
    if model.input_exponent != devices.input_exponent:
        raise AdaptError(f"the model takes inputs at 2^{model.input_exponent}, the {devices.name} devices give "
                         f"2^{devices.input_exponent}")
    want = "mse" if devices.task == "regression" else "cross_entropy"
    if model.loss != want:
        raise AdaptError(f"{devices.name} is a {devices.task} workload: the model needs a {want} head, "
                         f"it has {model.loss}")
    outputs = int(np.prod(model.output_shape_))
    if outputs != devices.num_classes:
        raise AdaptError(f"the model has {outputs} outputs, the {devices.name} devices need {devices.num_classes}")


def shot_indices(n: int, k: int, device: int, seed: int) -> np.ndarray:
    """Indices of the K labelled samples among a device's ``n`` training samples (the first K of
    a seeded permutation: nested in K)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise AdaptError(f"K (shots) must be a non-negative integer, got {k!r}")
    if k > n:
        raise AdaptError(f"K = {k} shots but the device has only {n} training samples")
    perm = np.random.default_rng(np.random.SeedSequence([seed, device, _SHOT_SALT])).permutation(n)
    return perm[:k]


def adapt(model: Sequential, x: np.ndarray, y: np.ndarray, config: AdaptConfig, *, seed: int = 0,
          target_exponent: int | None = None) -> Sequential:
    """A copy of ``model`` after learning the samples ``(x, y)`` one at a time for
    ``config.passes`` passes (see the module docstring). ``model`` is not changed. Regression
    models need ``target_exponent`` (the int8 targets' scale exponent)."""
    m = copy.deepcopy(model)
    if len(x) == 0:
        return m
    optim = OptimConfig(lr=float(config.lr))
    if m.loss == "cross_entropy":
        learner = OnlineLearner(m, update=config.update, optim=optim, seed=seed)
        if config.layer_shifts:
            learner.optimizer = config.optimizer(m)
        for order in epoch_order(len(x), config.passes, seed):
            for j in order:
                learner.learn_one(x[j], int(y[j]))
        return m
    if target_exponent is None:
        raise AdaptError("a regression model adapts with int8 targets: give target_exponent")
    apply_update_selection(m, parse_update(selection_of(config.update)))
    sgd = config.optimizer(m)
    ctx = Context(mode=m.config.scale_mode, training=True, stream=RoundingStream(seed))
    for order in epoch_order(len(x), config.passes, seed):
        for j in order:
            train_step(m, sgd, x[j:j + 1], y[j:j + 1], ctx, target_exponent=target_exponent)
    return m


def score(model: Sequential, x: np.ndarray, y: np.ndarray, *, target_exponent: int | None = None) -> float:
    """The device's score on held-out samples, each at batch 1: accuracy (classifiers) or the mean
    squared error of real values (regression; needs ``target_exponent``)."""
    ctx = Context(mode=model.config.scale_mode, training=False)
    if model.loss == "cross_entropy":
        correct = 0
        for j in range(len(x)):
            out = model.forward(QTensor(x[j:j + 1], Scale(model.input_exponent)), ctx)
            correct += int(predict_argmax(out.m)[0] == y[j])
        return correct / max(len(x), 1)
    if target_exponent is None:
        raise AdaptError("a regression score needs target_exponent")
    err = 0.0
    for j in range(len(x)):
        out = model.forward(QTensor(x[j:j + 1], Scale(model.input_exponent)), ctx)
        pred = out.m.astype(np.float64).ravel() * out.scale.to_float()
        err += float(np.sum((pred - y[j].astype(np.float64).ravel() * 2.0 ** target_exponent) ** 2))
    return err / max(len(x), 1)


def adapt_and_score(model: Sequential, devices, device: int, k: int, config: AdaptConfig | None = None,
                    *, seed: int = 0) -> float:
    """Adapt ``model`` on device ``device`` of ``devices`` (a device source) with K = ``k`` of its
    training samples, then score it on the device's held-out samples."""
    _check_fit(model, devices)
    config = config or DEFAULT_CONFIG[devices.task]
    x, y = devices.device_train(device)
    xt, yt = devices.device_test(device)
    idx = shot_indices(len(x), k, device, seed)
    adapted = adapt(model, x[idx], y[idx], config, seed=seed, target_exponent=devices.target_exponent)
    return score(adapted, xt, yt, target_exponent=devices.target_exponent)


def config_dict(config: AdaptConfig) -> dict:
    """``config`` as JSON-ready settings (``layer_shifts`` as ``{layer: shift}``, left out when empty)."""
    d = asdict(config)
    if config.layer_shifts:
        d["layer_shifts"] = dict(config.layer_shifts)
    else:
        del d["layer_shifts"]
    return d


@dataclass
class AdaptationTable:
    """Scores per (initialisation, K): ``scores[init][k]`` is a list, one entry per seed, of the
    mean over the unseen devices. ``metric``: ``"accuracy"`` or ``"mse"``."""

    workload: str
    metric: str
    shots: tuple
    seeds: tuple
    devices: int
    config: AdaptConfig
    scores: dict = field(default_factory=dict)
    #: per initial model, the settings it adapted with when they differ from ``config``
    configs: dict = field(default_factory=dict)

    def config_of(self, init: str) -> AdaptConfig:
        return self.configs.get(init, self.config)

    def mean(self, init: str, k: int) -> float:
        return float(np.mean(self.scores[init][k]))

    def std(self, init: str, k: int) -> float:
        return float(np.std(self.scores[init][k]))

    def best(self, k: int) -> str:
        """The initialisation with the best mean score at K = ``k``."""
        key = (lambda name: -self.mean(name, k)) if self.metric == "accuracy" else (lambda name: self.mean(name, k))
        return min(self.scores, key=key)

    def to_dict(self) -> dict:
        return {"workload": self.workload, "metric": self.metric, "shots": list(self.shots),
                "seeds": list(self.seeds), "unseen_devices": self.devices, "adapt": config_dict(self.config),
                "adapt_per_model": {init: config_dict(self.config_of(init)) for init in self.scores},
                "scores": {init: {str(k): {"per_seed": [float(v) for v in ks[k]], "mean": self.mean(init, k),
                                           "std": self.std(init, k)} for k in self.shots}
                           for init, ks in self.scores.items()}}

    def to_markdown(self) -> str:
        pct = self.metric == "accuracy"
        head = "| initial model | " + " | ".join(f"K = {k}" for k in self.shots) + " |"
        lines = [head, "|---|" + "---|" * len(self.shots)]
        for init in self.scores:
            cells = []
            for k in self.shots:
                m, s = self.mean(init, k), self.std(init, k)
                cell = f"{100 * m:.2f} ± {100 * s:.2f}" if pct else f"{m:.3f} ± {s:.3f}"
                cells.append(f"**{cell}**" if self.best(k) == init else cell)
            lines.append(f"| {init} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


InitialModel = Sequential | Callable[[int], Sequential]


def adaptation_table(initial_models: Mapping[str, InitialModel], devices, *, shots=DEFAULT_SHOTS,
                     seeds=(0, 1, 2), config: AdaptConfig | None = None,
                     configs: Mapping[str, AdaptConfig] | None = None,
                     progress: Callable[[str], None] | None = None) -> AdaptationTable:
    """Adapt every initial model on every device of ``devices`` (unseen devices: a device source)
    with K in ``shots`` samples, for every seed; average over the devices per seed.

    ``initial_models``: name -> a model (the same for every seed) or a callable ``seed -> model``
    (e.g. the meta model trained with that seed, or ``workload.build_model`` for scratch).
    ``configs``: name -> the settings that initial model adapts with (e.g. a learning rate chosen
    for it on validation devices; the others use ``config``). ``progress(line)`` is called once
    per (seed, initial model)."""
    if not initial_models:
        raise AdaptError("no initial models to compare")
    shots = tuple(shots)
    seeds = tuple(seeds)
    if not shots or not seeds:
        raise AdaptError("shots and seeds must not be empty")
    config = config or DEFAULT_CONFIG[devices.task]
    metric = "accuracy" if devices.task == "classification" else "mse"
    configs = dict(configs or {})
    unknown = set(configs) - set(initial_models)
    if unknown:
        raise AdaptError(f"adaptation settings for unknown initial models: {', '.join(sorted(unknown))}")
    table = AdaptationTable(devices.name, metric, shots, seeds, int(devices.num_devices), config,
                            {name: {k: [] for k in shots} for name in initial_models}, configs)
    for seed in seeds:
        for name, init in initial_models.items():
            model = init(seed) if callable(init) and not isinstance(init, Sequential) else init
            if not isinstance(model, Sequential):
                raise AdaptError(f"initial model {name!r} is not a tintin Sequential")
            _check_fit(model, devices)
            for k in shots:
                per_device = [adapt_and_score(model, devices, i, k, table.config_of(name), seed=seed)
                              for i in range(devices.num_devices)]
                table.scores[name][k].append(float(np.mean(per_device)))
            if progress is not None:
                progress(f"seed {seed}, {name}: " + ", ".join(
                    f"K={k} {table.scores[name][k][-1]:.4g}" for k in shots))
    return table
