"""Training and evaluation entry points take only int8-domain samples and valid labels, and say
how to fix anything else in one line (a TintinError, never a raw numpy error)."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tintin.errors import TintinError
from tintin.nn import Context, Linear, QuantConfig, ReLU, Sequential, build_model
from tintin.numerics import RoundingStream
from tintin.numerics.bounds import INT8_DOMAIN_MAX, INT8_DOMAIN_MIN, InputDomainError, check_int8_domain
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import TrainConfig, evaluate, fit, predict, train_step
from tintin.train.errors import LabelError, TrainingDataError


def small_model(loss="cross_entropy"):
    layers = [Linear(6, 5, name="fc1"), ReLU(name="r"), Linear(5, 3, name="fc2")]
    return Sequential(layers, (6,), QuantConfig(), loss=loss)


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-127, 128, (n, 6)).astype(np.int8), rng.integers(0, 3, n)


def one_line(exc):
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_float_inputs_to_fit_say_how_to_quantise():
    x, y = data()
    with pytest.raises(InputDomainError) as info:
        fit(small_model(), x.astype(np.float32) / 127, y, TrainConfig(epochs=1, batch_size=4))
    text = one_line(info.value)
    assert "float32" in text and "quantize_inputs" in text and isinstance(info.value, TintinError)


@pytest.mark.parametrize("entry", ["fit", "train_step", "evaluate", "predict"])
def test_minus_128_is_rejected_at_every_entry(entry):
    x, y = data()
    x[3, 2] = -128
    model = small_model()
    with pytest.raises(InputDomainError, match=r"-128.*np\.clip"):
        if entry == "fit":
            fit(model, x, y, TrainConfig(epochs=1, batch_size=4))
        elif entry == "train_step":
            opt = IntegerSGD(model.parameters(), OptimConfig(), model.config.scale_mode)
            train_step(model, opt, x[:4], y[:4], Context(training=True, stream=RoundingStream(0)))
        elif entry == "evaluate":
            evaluate(model, x, y)
        else:
            predict(model, x)


def test_wide_integer_inputs_outside_int8_are_rejected_and_inside_accepted():
    x, y = data()
    model = small_model()
    wide = x.astype(np.int32)
    wide[0, 0] = 300
    with pytest.raises(InputDomainError, match=r"\[-127, 127\].*got values in \[.*, 300\]"):
        fit(model, wide, y, TrainConfig(epochs=1, batch_size=4))
    a, b = small_model(), small_model()
    fit(a, x, y, TrainConfig(epochs=1, batch_size=4))
    fit(b, x.astype(np.int64), y.astype(np.int32), TrainConfig(epochs=1, batch_size=4))
    assert all((p.value.m == q.value.m).all() for p, q in zip(a.parameters(), b.parameters()))


def test_float_labels_in_fit_give_one_line():
    x, y = data()
    with pytest.raises(LabelError) as info:
        fit(small_model(), x, y.astype(np.float64), TrainConfig(epochs=1, batch_size=4))
    assert "astype(np.int64)" in one_line(info.value)


@pytest.mark.parametrize("bad", [3, -1, 7])
def test_out_of_range_labels_in_evaluate_and_fit(bad):
    x, y = data()
    y[5] = bad
    with pytest.raises(LabelError, match=r"class indices in \[0, 3\)"):
        evaluate(small_model(), x, y)
    with pytest.raises(LabelError, match=r"class indices in \[0, 3\)"):
        fit(small_model(), x, y, TrainConfig(epochs=1, batch_size=4))
    with pytest.raises(LabelError, match="test labels"):
        fit(small_model(), x, np.zeros(12, np.int64), TrainConfig(epochs=1, batch_size=4), x, y)


def test_label_count_and_empty_data():
    x, y = data()
    with pytest.raises(LabelError, match="12 samples but 11 labels"):
        fit(small_model(), x, y[:11], TrainConfig(epochs=1, batch_size=4))
    with pytest.raises(TrainingDataError, match="no training samples"):
        fit(small_model(), x[:0], y[:0], TrainConfig(epochs=1, batch_size=4))


def test_regression_targets_must_be_int8_domain():
    x, _ = data()
    model = small_model("mse")
    with pytest.raises(InputDomainError, match="targets"):
        fit(model, x, np.full((12, 3), 200), TrainConfig(epochs=1, batch_size=4))
    with pytest.raises(LabelError, match=r"shape \(12, 3\)"):
        fit(model, x, np.zeros((12, 2), np.int8), TrainConfig(epochs=1, batch_size=4))
    fit(model, x, np.ones((12, 3), np.int8), TrainConfig(epochs=1, batch_size=4))


def test_a_real_model_trains_on_quantised_data_unchanged():
    from tintin.data.quantize import quantize_inputs

    rng = np.random.default_rng(1)
    xq, e = quantize_inputs(rng.normal(size=(16, 1, 8, 8)))
    model = build_model("mlp", (1, 8, 8), 4, input_exponent=e)
    res = fit(model, xq, rng.integers(0, 4, 16), TrainConfig(epochs=1, batch_size=8))
    assert res.samples == 16


@given(st.integers(-2**40, 2**40), st.integers(-2**40, 2**40))
def test_domain_check_accepts_exactly_the_int8_domain(a, b):
    arr = np.array([a, b], dtype=np.int64)
    inside = INT8_DOMAIN_MIN <= min(a, b) and max(a, b) <= INT8_DOMAIN_MAX
    if inside:
        out = check_int8_domain(arr)
        assert out.dtype == np.int8 and out.tolist() == [a, b]
    else:
        with pytest.raises(InputDomainError):
            check_int8_domain(arr)
