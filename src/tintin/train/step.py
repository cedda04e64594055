"""One integer training step and integer evaluation: the unit the simulator specifies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numerics import QTensor, Scale, check_terms
from ..nn import Context, Sequential
from ..ops import LossValue, mse_error, softmax_cross_entropy_error
from ..optim import IntegerSGD


@dataclass(frozen=True, slots=True)
class StepResult:
    loss: LossValue
    correct: int
    count: int


def predict_argmax(logits: np.ndarray) -> np.ndarray:
    """Class prediction from int8 logits: the first index of the row maximum (as the C runtime)."""
    return np.argmax(logits, axis=1)


def loss_error(model: Sequential, out: QTensor, y: np.ndarray, target_exponent: int = 0):
    if model.loss == "cross_entropy":
        return softmax_cross_entropy_error(out, y, model.config.scale_mode)
    return mse_error(out, QTensor(y.reshape(out.shape).astype(np.int8), Scale(target_exponent)), model.config.scale_mode)


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
    ctx.training = True
    out = model.forward(QTensor(x, Scale(model.input_exponent)), ctx)
    err, loss = loss_error(model, out, y, target_exponent)
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
