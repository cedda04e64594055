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
    """What :func:`fit` did: one :class:`EpochRecord` per epoch, the time spent in training steps
    and the number of samples trained on. ``test_accuracy`` / ``test_loss`` / ``train_loss`` /
    ``train_accuracy`` are those of the last epoch (named as in :class:`EpochRecord` and in the
    float twin's result); ``final_test_accuracy`` is a deprecated alias of ``test_accuracy``."""

    history: list[EpochRecord]
    train_seconds: float
    samples: int

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else float("inf")

    def _last(self, what: str):
        return getattr(self.history[-1], what) if self.history else None

    @property
    def test_accuracy(self) -> float | None:
        """Test accuracy after the last epoch (None without test data)."""
        return self._last("test_accuracy")

    @property
    def test_loss(self) -> float | None:
        """Mean test loss after the last epoch (None without test data)."""
        return self._last("test_loss")

    @property
    def train_accuracy(self) -> float | None:
        """Accuracy on the training batches of the last epoch."""
        return self._last("train_accuracy")

    @property
    def train_loss(self) -> float | None:
        """Mean loss on the training batches of the last epoch."""
        return self._last("train_loss")

    @property
    def final_test_accuracy(self) -> float | None:
        """Deprecated alias of :attr:`test_accuracy`."""
        return self.test_accuracy


def epoch_order(n: int, epochs: int, seed: int):
    """The sample order of every epoch: a seeded permutation per epoch (same for the float twin)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    for _ in range(epochs):
        yield rng.permutation(n)


def batches(order: np.ndarray, batch_size: int):
    for i in range(0, len(order), batch_size):
        yield order[i:i + batch_size]


def check_fit_data(model: Sequential, x_train, y_train, x_test, y_test, batch_size: int):
    """``(x_train, y_train, x_test, y_test)`` checked for :func:`fit` (one-line errors for bad data,
    the batch against the accumulator bound)."""
    x_train = check_samples(model, x_train, "training inputs")
    y_train = check_labels(model, y_train, len(x_train), "training labels")
    if len(x_train) == 0:
        raise TrainingDataError("no training samples")
    if x_test is not None:
        x_test = check_samples(model, x_test, "test inputs")
        y_test = check_labels(model, y_test, len(x_test), "test labels")
    check_batch_bounds(model, batch_size)
    return x_train, y_train, x_test, y_test


def finish_epoch(model: Sequential, config: TrainConfig, epoch: int, loss_sum: float, correct: int, seen: int,
                 seconds: float, x_test, y_test, progress) -> EpochRecord:
    """The record of a finished epoch of :func:`fit`: the test set evaluated when due, progress told."""
    test_acc = test_loss = None
    if x_test is not None and (config.eval_each_epoch or epoch == config.epochs - 1):
        ev = evaluate(model, x_test, y_test)
        test_acc, test_loss = ev.accuracy, ev.loss
    rec = EpochRecord(epoch, loss_sum / seen, correct / seen, test_acc, test_loss, seconds)
    metrics = {"loss": rec.train_loss, "train_acc": rec.train_accuracy}
    if test_acc is not None:
        metrics["test_acc"] = test_acc
    progress.epoch_end(epoch, metrics)
    return rec


def fit(model: Sequential, x_train: np.ndarray, y_train: np.ndarray, config: TrainConfig,
        x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
        progress: ProgressSetting = "auto", update_kernel=None, checkpointer=None) -> TrainResult:
    """Train ``model`` in place. Same seed, same data -> the same bits.

    ``x_train``: int8 samples ``(N, *model.input_shape)`` in [-127, 127] at the model's input scale;
    ``y_train``: class indices (cross-entropy) or int8 targets (MSE). With ``x_test`` / ``y_test``
    every epoch (or the last, ``config.eval_each_epoch=False``) is evaluated. ``progress``:
    ``"auto"`` shows a bar when stderr is a terminal and nothing otherwise; ``True`` also prints a
    line at least every 10 s when it is not; ``False``/``None`` is silent; or a
    :class:`tintin.train.progress.Progress`.
    ``update_kernel``: an optional bit-identical native weight update (see
    :class:`tintin.optim.IntegerSGD`), e.g. ``tintin.codegen.fast_update.c_update_kernel()``.
    ``checkpointer``: a :class:`tintin.train.checkpoint.FitCheckpointer` that saves the training
    state during the run (and on Ctrl-C) or resumes from a saved one; the bits are those of an
    uninterrupted run.

    >>> from tintin import data
    >>> from tintin.nn import build_model
    >>> from tintin.optim import OptimConfig
    >>> from tintin.train import TrainConfig, fit
    >>> ds = data.load("digits")
    >>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0,
    ...                     input_exponent=ds.input_exponent)
    >>> config = TrainConfig(epochs=2, batch_size=32, seed=0, optim=OptimConfig(lr=0.5))
    >>> result = fit(model, ds.x_train, ds.y_train, config, ds.x_test, ds.y_test, progress=False)
    >>> len(result.history), result.test_accuracy > 0.8
    (2, True)
    """
    x_train, y_train, x_test, y_test = check_fit_data(model, x_train, y_train, x_test, y_test, config.batch_size)
    tune_allocator()
    progress = resolve_progress(progress)
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
            history.append(finish_epoch(model, config, epoch, loss_sum, correct, seen, t_epoch, x_test, y_test,
                                        progress))
    finally:
        progress.close()
        if checkpointer:
            checkpointer.close()
    return TrainResult(history, train_seconds, samples)
