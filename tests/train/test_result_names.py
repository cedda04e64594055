"""The public result types name what they hold as a user expects: ``evaluate`` returns an
:class:`Evaluation` (no bare tuple) and :class:`TrainResult` says ``test_accuracy`` like every
epoch record, the float twin's result and the ``tintin train --json`` output."""

from __future__ import annotations

import numpy as np

from tintin.data import load
from tintin.nn import Context, build_model
from tintin.numerics import QTensor, Scale
from tintin.train import Evaluation, TrainConfig, evaluate, fit, predict


def _digits_model(ds):
    return build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)


def test_evaluate_returns_accuracy_loss_and_predictions_of_every_sample():
    ds = load("digits")
    model = _digits_model(ds)
    ev = evaluate(model, ds.x_test, ds.y_test, batch_size=64)
    assert isinstance(ev, Evaluation) and not isinstance(ev, tuple)
    assert ev.count == len(ds.y_test)
    np.testing.assert_array_equal(ev.predictions, predict(model, ds.x_test, batch_size=64))
    assert ev.predictions.dtype == np.int64
    assert ev.correct == int((ev.predictions == ds.y_test).sum())
    assert ev.accuracy == ev.correct / ev.count
    # the loss is the mean integer softmax cross-entropy over the batches
    from tintin.ops import softmax_cross_entropy_error
    total = 0.0
    ctx = Context(mode=model.config.scale_mode, training=False)
    for i in range(0, len(ds.x_test), 64):
        out = model.forward(QTensor(ds.x_test[i:i + 64], Scale(model.input_exponent)), ctx)
        total += softmax_cross_entropy_error(out, ds.y_test[i:i + 64], model.config.scale_mode)[1].to_float()
    assert ev.loss == total / len(ds.y_test)


def test_train_result_names_the_last_epoch_like_its_records():
    ds = load("digits")
    model = _digits_model(ds)
    res = fit(model, ds.x_train[:256], ds.y_train[:256], TrainConfig(epochs=2, batch_size=32, seed=0),
              ds.x_test, ds.y_test)
    last = res.history[-1]
    assert (res.test_accuracy, res.test_loss) == (last.test_accuracy, last.test_loss)
    assert (res.train_accuracy, res.train_loss) == (last.train_accuracy, last.train_loss)
    assert res.final_test_accuracy == res.test_accuracy  # deprecated alias
    ev = evaluate(model, ds.x_test, ds.y_test)
    assert (ev.accuracy, ev.loss) == (res.test_accuracy, res.test_loss)
