"""Mini-batch and online (batch size 1) training loops with seeded, deterministic data order."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..numerics import RoundingStream
from ..nn import Context, Sequential
from ..optim import IntegerSGD, OptimConfig
from .allocator import tune_allocator
from .errors import TrainingDataError
from .progress import ProgressSetting, resolve_progress
from .step import check_batch_bounds, check_labels, check_samples, evaluate, train_step


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_each_epoch: bool = True

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["optim"] = self.optim.to_dict()
        return d


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float | None
    test_loss: float | None
    seconds: float


@dataclass
class TrainResult:
    history: list[EpochRecord]
    train_seconds: float
    samples: int

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else float("inf")

    @property
    def final_test_accuracy(self) -> float | None:
        return self.history[-1].test_accuracy if self.history else None


def epoch_order(n: int, epochs: int, seed: int):
    """The sample order of every epoch: a seeded permutation per epoch (same for the float twin)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    for _ in range(epochs):
        yield rng.permutation(n)


def batches(order: np.ndarray, batch_size: int):
    for i in range(0, len(order), batch_size):
        yield order[i:i + batch_size]


def fit(model: Sequential, x_train: np.ndarray, y_train: np.ndarray, config: TrainConfig,
        x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
        progress: ProgressSetting = "auto", update_kernel=None) -> TrainResult:
    """Train ``model`` in place. Same seed, same data -> the same bits.

    ``progress``: ``"auto"`` shows a bar when stderr is a terminal and nothing otherwise; ``True``
    also prints a line at least every 10 s when it is not; ``False``/``None`` is silent; or a
    :class:`tintin.train.progress.Progress` (see that module).

    ``update_kernel``: an optional bit-identical native weight update (see
    :class:`tintin.optim.IntegerSGD`), e.g. ``tintin.codegen.fast_update.c_update_kernel()``."""
    x_train = check_samples(model, x_train, "training inputs")
    y_train = check_labels(model, y_train, len(x_train), "training labels")
    if len(x_train) == 0:
        raise TrainingDataError("no training samples")
    if x_test is not None:
        x_test = check_samples(model, x_test, "test inputs")
        y_test = check_labels(model, y_test, len(x_test), "test labels")
    check_batch_bounds(model, config.batch_size)
    tune_allocator()
    progress = resolve_progress(progress)
    optimizer = IntegerSGD(model.parameters(), config.optim, model.config.scale_mode, update_kernel)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(config.seed))
    steps = -(-len(x_train) // config.batch_size)
    progress.start(config.epochs, steps, model.name)
    history, train_seconds, samples = [], 0.0, 0
    try:
        for epoch, order in enumerate(epoch_order(len(x_train), config.epochs, config.seed)):
            optimizer.set_epoch(epoch)
            loss_sum, correct, seen, t_epoch = 0.0, 0, 0, 0.0
            for step, idx in enumerate(batches(order, config.batch_size)):
                xb, yb = x_train[idx], y_train[idx]
                t0 = time.perf_counter()
                res = train_step(model, optimizer, xb, yb, ctx)
                t_epoch += time.perf_counter() - t0
                loss_sum += res.loss.to_float()
                correct += res.correct
                seen += res.count
                progress.step(epoch, step, loss_sum / seen, correct / seen)
            train_seconds += t_epoch
            samples += seen
            test_acc = test_loss = None
            if x_test is not None and (config.eval_each_epoch or epoch == config.epochs - 1):
                test_acc, test_loss = evaluate(model, x_test, y_test)
            rec = EpochRecord(epoch, loss_sum / seen, correct / seen, test_acc, test_loss, t_epoch)
            history.append(rec)
            metrics = {"loss": rec.train_loss, "train_acc": rec.train_accuracy}
            if test_acc is not None:
                metrics["test_acc"] = test_acc
            progress.epoch_end(epoch, metrics)
    finally:
        progress.close()
    return TrainResult(history, train_seconds, samples)
