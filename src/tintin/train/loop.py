"""Mini-batch and online (batch size 1) training loops with seeded, deterministic data order."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..numerics import RoundingStream
from ..nn import Context, Sequential
from ..optim import IntegerSGD, OptimConfig
from .allocator import tune_allocator
from .checkpoint import FitPosition
from .progress import Progress, SilentProgress
from .step import check_batch_bounds, evaluate, train_step


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
        progress: Progress | None = None, update_kernel=None, checkpointer=None) -> TrainResult:
    """Train ``model`` in place. Same seed, same data -> the same bits.

    ``update_kernel``: an optional bit-identical native weight update (see
    :class:`tintin.optim.IntegerSGD`), e.g. ``tintin.codegen.fast_update.c_update_kernel()``.
    ``checkpointer``: a :class:`tintin.train.checkpoint.FitCheckpointer` that saves the training
    state during the run (and on Ctrl-C) or resumes from a saved one; the bits are those of an
    uninterrupted run."""
    model.check_input(x_train)
    if len(x_train) != len(y_train):
        raise ValueError(f"{len(x_train)} samples but {len(y_train)} labels")
    if len(x_train) == 0:
        raise ValueError("no training samples")
    if model.loss == "cross_entropy":
        classes = model.output_shape_[0]
        if y_train.min() < 0 or y_train.max() >= classes:
            raise ValueError(f"labels must be in [0, {classes}), got [{y_train.min()}, {y_train.max()}]")
    check_batch_bounds(model, config.batch_size)
    tune_allocator()
    progress = progress or SilentProgress()
    optimizer = IntegerSGD(model.parameters(), config.optim, model.config.scale_mode, update_kernel)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(config.seed))
    steps = -(-len(x_train) // config.batch_size)
    pos = (checkpointer.begin(model, optimizer, ctx, config) if checkpointer else None) or FitPosition()
    progress.start(config.epochs, steps, model.name)
    history, train_seconds, samples = pos.history, pos.train_seconds, pos.samples
    try:
        for epoch, order in enumerate(epoch_order(len(x_train), config.epochs, config.seed)):
            if epoch < pos.epoch:  # resumed: finished epochs only advance the data order
                continue
            optimizer.set_epoch(epoch)
            resumed = epoch == pos.epoch
            loss_sum, correct, seen, t_epoch = (pos.loss_sum, pos.correct, pos.seen, pos.epoch_seconds) if resumed \
                else (0.0, 0, 0, 0.0)
            for step, idx in enumerate(batches(order, config.batch_size)):
                if resumed and step < pos.step:
                    continue
                xb, yb = x_train[idx], y_train[idx]
                t0 = time.perf_counter()
                res = train_step(model, optimizer, xb, yb, ctx)
                t_epoch += time.perf_counter() - t0
                loss_sum += res.loss.to_float()
                correct += res.correct
                seen += res.count
                progress.step(epoch, step, loss_sum / seen, correct / seen)
                if checkpointer:
                    checkpointer.step_done(FitPosition(epoch, step + 1, loss_sum, correct, seen, t_epoch, history,
                                                       train_seconds, samples))
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
        if checkpointer:
            checkpointer.close()
    return TrainResult(history, train_seconds, samples)
