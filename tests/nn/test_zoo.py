"""The MLP zoo builder (one or several hidden layers), mixed per-layer weight widths and the zoo's
one learning-rate decay rule."""

import numpy as np
import pytest

from tintin.io import load_model, save_model
from tintin.io.model_file import ModelFileError, model_file_bytes
from tintin.nn import QuantConfig, build_model, model_names, training_defaults
from tintin.nn.zoo import DECAY_AT, DECAY_FACTOR, DECAY_MIN_EPOCHS


def test_mlp_with_several_hidden_layers():
    model = build_model("mlp", (1, 28, 28), 10, seed=0, hidden=(200, 100, 50))
    shapes = [p.value.m.shape for p in model.parameters() if p.kind == "weight"]
    assert shapes == [(200, 784), (100, 200), (50, 100), (10, 50)]
    assert [layer.name for layer in model.layers] == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "fc4"]


def test_one_hidden_width_builds_the_same_model_as_before():
    a = build_model("mlp", (1, 28, 28), 10, seed=3)
    b = build_model("mlp", (1, 28, 28), 10, seed=3, hidden=(128,))
    assert all(np.array_equal(p.value.m, q.value.m) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_hidden_width_is_a_clear_error():
    with pytest.raises(ValueError, match="hidden widths must be positive"):
        build_model("mlp", (8,), 3, hidden=(4, 0))


def test_wide_layers_keep_int16_masters_and_the_rest_int8():
    cfg = QuantConfig(wide_layers=("fc3", "fc4"))
    model = build_model("mlp", (1, 28, 28), 10, cfg, seed=0, hidden=(20, 10, 5))
    bits = {p.name: (p.bits, p.value.m.dtype) for p in model.parameters() if p.kind == "weight"}
    assert bits == {"fc1.weight": (8, np.int8), "fc2.weight": (8, np.int8),
                    "fc3.weight": (16, np.int16), "fc4.weight": (16, np.int16)}
    # the int8 layers are those of the plain int8 model (same draws)
    plain = build_model("mlp", (1, 28, 28), 10, QuantConfig(), seed=0, hidden=(20, 10, 5))
    assert np.array_equal(model.parameters()[0].value.m, plain.parameters()[0].value.m)


def test_wide_layers_round_trip_through_a_model_file(tmp_path):
    model = build_model("lenet5", (1, 28, 28), 10, QuantConfig(wide_layers=("conv1", "fc3")), seed=1)
    loaded, _ = load_model(save_model(model, tmp_path / "m.safetensors"))
    assert loaded.config.wide_layers == ("conv1", "fc3")
    assert [p.bits for p in loaded.parameters()] == [p.bits for p in model.parameters()]
    assert 16 in [p.bits for p in loaded.parameters()] and 8 in [p.bits for p in loaded.parameters()]


def test_models_without_wide_layers_keep_their_file_bytes():
    """The config of a model without mixed widths is written as before (no new key)."""
    model = build_model("mlp", (8,), 3, seed=0)
    assert b"wide_layers" not in model_file_bytes(model)


def test_wide_layers_must_be_names():
    with pytest.raises(ValueError, match="wide_layers"):
        QuantConfig(wide_layers="fc1")
    with pytest.raises(ValueError, match="wide_layers"):
        QuantConfig(wide_layers=(1,))


def test_hostile_wide_layers_in_a_file_is_one_clear_error(tmp_path):
    import json

    model = build_model("mlp", (8,), 3, QuantConfig(wide_layers=("fc2",)), seed=0)
    blob = bytearray(model_file_bytes(model))
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    doc = json.loads(header["__metadata__"]["tintin"])
    doc["spec"]["config"]["wide_layers"] = [7]
    header["__metadata__"]["tintin"] = json.dumps(doc)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(blob[8 + n:]))
    with pytest.raises(ModelFileError, match="wide_layers"):
        load_model(path)


@pytest.mark.parametrize("name", model_names())
def test_every_zoo_model_decays_by_the_one_rule(name):
    d = training_defaults(name)
    assert d.decay_at == DECAY_AT and d.decay_factor == DECAY_FACTOR
    sched = d.lr_schedule(30, 0.5)
    assert [e for e, _ in sched] == [15, 24]
    assert [round(v, 6) for _, v in sched] == [0.1, 0.02]
    assert d.lr_schedule(10, 0.5) == ((5, 0.1), (8, 0.1 * DECAY_FACTOR))
    assert d.lr_schedule(DECAY_MIN_EPOCHS - 1, 0.5) == ()  # short runs keep a constant rate
