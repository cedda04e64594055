"""One integer training step and integer evaluation: the unit the simulator specifies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numerics import QTensor, Rounding, Scale, check_int8_domain, check_terms
from ..nn import Context, Sequential
from ..nn.config import LOSS_ERROR_SITE
from ..ops import LossValue, mse_error, predict_argmax, softmax_cross_entropy_error
from ..optim import IntegerSGD
from .errors import LabelError, TrainingDataError


@dataclass(frozen=True, slots=True)
class StepResult:
    loss: LossValue
    correct: int
    count: int


def loss_error(model: Sequential, out: QTensor, y: np.ndarray, target_exponent: int = 0,
               ctx: Context | None = None):
    """The output error and loss of a batch. A classifier with ``loss_error_rounding="stochastic"``
    rounds its error with the key of ``ctx``'s stream at :data:`~tintin.nn.config.LOSS_ERROR_SITE`."""
    if model.loss == "cross_entropy":
        rounding = model.config.loss_error_rounding
        if rounding is Rounding.NEAREST:
            return softmax_cross_entropy_error(out, y, model.config.scale_mode)
        if ctx is None or ctx.stream is None:
            raise ValueError("stochastic loss-error rounding needs the training context's rounding stream")
        return softmax_cross_entropy_error(out, y, model.config.scale_mode, rounding, ctx.stream.key(LOSS_ERROR_SITE))
    return mse_error(out, QTensor(y.reshape(out.shape).astype(np.int8), Scale(target_exponent)), model.config.scale_mode)


def check_samples(model: Sequential, x, what: str = "inputs") -> np.ndarray:
    """``x`` as int8 samples of the model's input shape: integers in the int8 domain [-127, 127]
    (else :class:`~tintin.numerics.bounds.InputDomainError` saying how to quantise) of shape
    ``(N,) + model.input_shape`` (else :class:`~tintin.nn.module.ShapeError`)."""
    x = check_int8_domain(x, what)
    if x.ndim == 0:
        raise TrainingDataError(f"{what} must be an array of samples (N, ...), got a scalar")
    model.check_input(x)
    return x


def check_labels(model: Sequential, y, count: int, what: str = "labels") -> np.ndarray:
    """Labels for ``count`` samples, checked against the model's head.

    Classifiers (``cross_entropy``): integer class indices in ``[0, classes)``, returned as int64.
    Regression (``mse``): int8 targets in [-127, 127] of shape ``(count,) + output shape``.
    Anything else raises :class:`~tintin.train.errors.LabelError` (one line with the fix)."""
    y = np.asarray(y)
    if y.ndim == 0 or len(y) != count:
        raise LabelError(f"{what}: {count} samples but {1 if y.ndim == 0 else len(y)} labels")
    if model.loss != "cross_entropy":
        targets = check_int8_domain(y, f"{what} (int8 regression targets)")
        if targets.size != count * int(np.prod(model.output_shape_)):
            raise LabelError(f"{what}: regression targets must have shape ({count}, "
                             f"{', '.join(map(str, model.output_shape_))}), got {y.shape}")
        return targets
    classes = model.output_shape_[0]
    if y.dtype.kind not in "iu":
        raise LabelError(f"{what} must be integer class indices in [0, {classes}), got {y.dtype} values: "
                         f"convert whole-number labels with y.astype(np.int64), map class names to indices first")
    if y.ndim != 1:
        raise LabelError(f"{what} must be one class index per sample (shape ({count},)), got shape {y.shape}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise LabelError(f"{what} must be class indices in [0, {classes}) (the model has {classes} outputs), "
                         f"got values in [{int(y.min())}, {int(y.max())}]")
    return y if y.dtype == np.int64 else y.astype(np.int64)


def check_batch_bounds(model: Sequential, batch_size: int) -> None:
    """Weight gradients sum ``batch x output positions`` products: keep it inside the bound."""
    for i, layer in enumerate(model.layers):
        positions = getattr(layer, "gradient_positions", None)
        per_sample = positions(model.shapes[i]) if positions else 1
        if layer.parameters():
            check_terms(batch_size * per_sample, f"{layer.name}: weight gradient (batch {batch_size})")


def train_step(model: Sequential, optimizer: IntegerSGD, x: np.ndarray, y: np.ndarray, ctx: Context,
               target_exponent: int = 0) -> StepResult:
    """Forward, integer loss error, backward and update (each parameter as soon as its gradient
    exists) on one batch of int8 samples ``x`` with labels (or int8 targets) ``y``.

    ``x`` must be integers in the int8 domain [-127, 127] and ``y`` valid labels
    (:func:`check_samples`, :func:`check_labels`): bad data raises a one-line error before any
    arithmetic.

    The unit every backend (compiled programs, the C runtime) reproduces bit for bit. ``ctx``
    carries the scale mode and the rounding stream (seeded: same seed, same bits).

    >>> from tintin import data
    >>> from tintin.nn import Context, build_model
    >>> from tintin.numerics import RoundingStream
    >>> from tintin.optim import IntegerSGD, OptimConfig
    >>> from tintin.train import train_step
    >>> ds = data.load("digits")
    >>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0,
    ...                     input_exponent=ds.input_exponent)
    >>> sgd = IntegerSGD(model.parameters(), OptimConfig(lr=0.05), model.config.scale_mode)
    >>> ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(0))
    >>> res = train_step(model, sgd, ds.x_train[:8], ds.y_train[:8], ctx)
    >>> res.count, 0 <= res.correct <= 8, res.loss.total > 0
    (8, True, True)
    """
    x = check_samples(model, x)
    y = check_labels(model, y, len(x))
    ctx.training = True
    out = model.forward(QTensor(x, Scale(model.input_exponent)), ctx)
    err, loss = loss_error(model, out, y, target_exponent, ctx)
    correct = int((predict_argmax(out.m) == y).sum()) if model.loss == "cross_entropy" else 0
    optimizer.batch_size = len(x)
    model.backward(err, ctx, on_gradient=lambda p: optimizer.update(p, ctx))
    ctx.stream.advance()
    model.clear_cache()
    ctx.training = False
    return StepResult(loss, correct, len(x))


def predict(model: Sequential, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted classes. Activation scales are per tensor, so a prediction can depend on which
    samples share its batch: compare with a device (batch 1) using ``batch_size=1``."""
    x = check_samples(model, x)
    ctx = Context(mode=model.config.scale_mode, training=False)
    preds = [predict_argmax(model.forward(QTensor(x[i:i + batch_size], Scale(model.input_exponent)), ctx).m)
             for i in range(0, len(x), batch_size)]
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured on ``count`` samples.

    ``accuracy``: fraction of samples whose predicted class equals the label; ``loss``: mean integer
    softmax cross-entropy per sample, as a host-side float; ``predictions``: the predicted class of
    every sample (int64, shape ``(count,)``); ``correct``: how many predictions equal the label."""

    accuracy: float
    loss: float
    predictions: np.ndarray
    correct: int
    count: int


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> Evaluation:
    """Accuracy, mean loss and predictions of a classifier on int8 samples ``x`` with labels ``y``.

    The loss uses the integer softmax, summed per batch; accuracy and loss are host-side floats.
    Activation scales are per tensor, so use ``batch_size=1`` to evaluate as a device does.

    >>> from tintin import data
    >>> from tintin.nn import build_model
    >>> from tintin.train import evaluate
    >>> ds = data.load("digits")
    >>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0,
    ...                     input_exponent=ds.input_exponent)
    >>> result = evaluate(model, ds.x_test, ds.y_test)
    >>> result.count == len(ds.y_test) and 0.0 <= result.accuracy <= 1.0
    True
    >>> result.predictions.shape == ds.y_test.shape
    True
    """
    x = check_samples(model, x)
    y = check_labels(model, y, len(x))
    ctx = Context(mode=model.config.scale_mode, training=False)
    correct, total_loss, preds = 0, 0.0, []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        out = model.forward(QTensor(xb, Scale(model.input_exponent)), ctx)
        pred = predict_argmax(out.m)
        preds.append(pred)
        correct += int((pred == yb).sum())
        _, loss = softmax_cross_entropy_error(out, yb, model.config.scale_mode)
        total_loss += loss.to_float()
    n = max(len(x), 1)
    predictions = np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, dtype=np.int64)
    return Evaluation(correct / n, total_loss / n, predictions, correct, len(x))
