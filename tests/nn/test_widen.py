"""Widening trained layers to int16 master weights (:func:`tintin.nn.widen.widen_layers`): the same
values, eight more bits below the int8 step, and every backend trains the result as any wide layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.errors import TintinError
from tintin.io import load_model, save_model
from tintin.nn import QuantConfig, build_model
from tintin.nn.module import Parameter
from tintin.nn.widen import WidenError, widen_layers
from tintin.numerics import QTensor, Scale, ScaleMode
from tintin.train import evaluate

scales = st.builds(Scale, st.integers(-12, 2), st.integers(0, 2), st.integers(0, 2))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 127), scales, st.sampled_from(list(ScaleMode)),
       st.integers(0, 2**32 - 1))
def test_widening_keeps_every_value_and_the_full_range_view(rows, cols, amax, scale, mode, seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(-amax, amax + 1, size=(rows, cols)).astype(np.int8)
    m.flat[0] = amax
    p = Parameter("fc.weight", "weight", QTensor(m, scale), 8)
    model = build_model("mlp", (1, 1, 4), 3, seed=0, hidden=4)
    model.layers[-1].weight = p  # a weight of any shape and scale (widen reads model.parameters())
    model.layers[-1].name = "fc"
    widen_layers(model, ["fc"])
    assert p.bits == 16 and p.value.m.dtype == np.int16
    assert np.array_equal(p.value.m, m.astype(np.int16) * 256)
    assert np.array_equal(p.value.dequantize(), QTensor(m, scale).dequantize())  # the same reals, exactly
    view = p.forward_view(mode)
    if amax == 127:  # a full-range int8 tensor is its own view
        assert np.array_equal(view.m, m) and view.scale == scale
    # otherwise the view is at least as fine as the int8 weights were
    assert view.scale.to_float() <= scale.to_float() * (1 + 1e-12)
    assert np.abs(view.dequantize() - QTensor(m, scale).dequantize()).max() <= view.scale.to_float()


def test_a_widened_model_predicts_as_before_and_survives_a_file(tmp_path):
    model = build_model("dscnn", (1, 8, 8), 10, seed=2)
    from tintin import data

    ds = data.load("digits")
    before = evaluate(model, ds.x_test[:64], ds.y_test[:64], batch_size=1).predictions
    assert widen_layers(model, ["fc", "pw3"]) == ("fc", "pw3")
    wide = model.config.wide_layers
    assert np.array_equal(evaluate(model, ds.x_test[:64], ds.y_test[:64], batch_size=1).predictions, before)
    assert widen_layers(model, list(wide)) == ()  # already wide: unchanged
    path = save_model(model, tmp_path / "m.safetensors")
    loaded, _ = load_model(path)
    assert loaded.config.wide_layers == wide
    for p, q in zip(model.parameters(), loaded.parameters()):
        assert p.bits == q.bits and p.value.scale == q.value.scale and np.array_equal(p.value.m, q.value.m), p.name


def test_what_cannot_be_widened_is_one_clear_error():
    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    with pytest.raises(WidenError, match="no weight layer 'fc9'"):
        widen_layers(model, ["fc9"])
    assert issubclass(WidenError, TintinError)
    model.layers[-1].weight.momentum = np.zeros(model.layers[-1].weight.value.m.shape, np.int64)
    with pytest.raises(WidenError, match="before training"):
        widen_layers(model, ["fc2"])
    rowed = build_model("mlp", (1, 8, 8), 10, QuantConfig(row_scales=True), seed=0)
    with pytest.raises(WidenError, match="per-row scales"):
        widen_layers(rowed, ["fc2"])
    assert all(p.bits == 8 for p in rowed.parameters() if p.kind == "weight")


@settings(max_examples=100, deadline=None)
@given(st.integers(9, 16), st.integers(1, 8), st.integers(1, 8), scales, st.sampled_from(list(ScaleMode)),
       st.integers(0, 2**32 - 1))
def test_any_master_wider_than_int8_is_read_through_its_int8_view(bits, rows, cols, scale, mode, seed):
    from tintin.numerics import rescale

    limit = (1 << (bits - 1)) - 1
    m = np.random.default_rng(seed).integers(-limit, limit + 1, size=(rows, cols)).astype(np.int16)
    p = Parameter("fc.weight", "weight", QTensor(m, scale), bits)
    q, s = rescale(m, scale, 8, mode)
    view = p.forward_view(mode)
    assert view.m.dtype == np.int8 and np.array_equal(view.m, q) and view.scale == s
    bias = Parameter("fc.bias", "bias", QTensor(m.astype(np.int32), scale), 32)
    assert bias.forward_view(mode) is bias.value  # int32 biases are used as they are
