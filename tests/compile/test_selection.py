"""Update-selection strings: parsing, resolution against a model, errors, applying to flags."""

from __future__ import annotations

import numpy as np
import pytest
from compile_helpers import make_mlp

from tintin.compile import UpdateSelectionError, apply_update_selection, model_selection, parse_update


@pytest.fixture
def model():
    return make_mlp(widths=(16, 24, 12, 5))  # fc1 24x16, fc2 12x24, fc3 5x12


def names(sel):
    return {k: (None if v is None else v.tolist()) for k, v in sel.items()}


def test_full_bias_none_last(model):
    assert set(parse_update("full").resolve(model)) == {p.name for p in model.parameters()}
    assert names(parse_update("bias").resolve(model)) == {"fc1.bias": None, "fc2.bias": None, "fc3.bias": None}
    assert parse_update("none").resolve(model) == {}
    assert names(parse_update("last:1").resolve(model)) == {"fc3.weight": None, "fc3.bias": None}
    assert list(parse_update("last:2").resolve(model)) == ["fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    assert len(parse_update("last:3").resolve(model)) == 6


def test_sparse_rows_and_params(model):
    sel = parse_update("sparse:fc3,fc1[0:4]").resolve(model)
    assert names(sel) == {"fc1.weight": [0, 1, 2, 3], "fc1.bias": [0, 1, 2, 3], "fc3.weight": None,
                          "fc3.bias": None}
    sel = parse_update("sparse:fc2.weight[2:4,7],fc1.bias").resolve(model)
    assert names(sel) == {"fc1.bias": None, "fc2.weight": [2, 3, 7]}
    assert names(parse_update("sparse:fc2[1:3].weight").resolve(model)) == {"fc2.weight": [1, 2]}
    # union of terms: rows merge, a whole parameter wins over rows
    sel = parse_update("sparse:fc1[0:2],fc1[5]+bias").resolve(model)
    assert names(sel) == {"fc1.weight": [0, 1, 5], "fc1.bias": None, "fc2.bias": None, "fc3.bias": None}
    # explicit rows that cover the whole tensor stay row updates (saturating, never rescaled)
    assert names(parse_update("sparse:fc3[0:5]").resolve(model))["fc3.weight"] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("text,match", [
    ("", "empty"), ("   ", "empty"), ("all", "unknown update"), ("last:0", "positive integer"),
    ("last:x", "positive integer"), ("last:4", "only 3 parameterised layers"), ("sparse:", "at least one"),
    ("sparse:fc9", "no parameterised layer 'fc9'"), ("sparse:fc1[4:2]", "empty row range"),
    ("sparse:fc1[0:99]", "out of range"), ("sparse:fc1[a:b]", "bad row range"), ("sparse:fc1[0:2", "unbalanced"),
    ("sparse:fc1]", "unbalanced"), ("sparse:fc1,,fc2", "bad sparse item"), ("full+", "empty term"),
    ("none+bias", "cannot be combined"), ("sparse:relu1", "no parameterised layer"),
    ("sparse:fc1.weight[0:2].bias", "two parameter names"),
])
def test_errors_are_one_clear_line(model, text, match):
    with pytest.raises(UpdateSelectionError, match=match) as info:
        parse_update(text).resolve(model)
    assert "\n" not in str(info.value)


def test_bias_on_a_model_without_biases():
    with pytest.raises(UpdateSelectionError, match="no bias"):
        parse_update("bias").resolve(make_mlp(bias=False))


def test_apply_sets_flags_and_round_trips(model):
    chosen = apply_update_selection(model, "sparse:fc2.weight[1:3]+last:1")
    flags = {p.name: (p.trainable, None if p.trainable_rows is None else p.trainable_rows.tolist())
             for p in model.parameters()}
    assert flags == {"fc1.weight": (False, None), "fc1.bias": (False, None), "fc2.weight": (True, [1, 2]),
                     "fc2.bias": (False, None), "fc3.weight": (True, None), "fc3.bias": (True, None)}
    assert names(model_selection(model)) == names(chosen)
    apply_update_selection(model, "full")
    assert all(p.trainable and p.trainable_rows is None for p in model.parameters())


def test_selection_resolved_against_dotted_layer_names():
    pytest.importorskip("tintin.nn.residual")
    from tintin.nn import build_model

    model = build_model("rescnn", (1, 12, 12), 3)
    sel = parse_update("sparse:res1.conv2[0:2],res2.proj.bias").resolve(model)
    assert names(sel) == {"res1.conv2.weight": [0, 1], "res1.conv2.bias": [0, 1], "res2.proj.bias": None}
    assert isinstance(next(iter(sel.values())), np.ndarray)
