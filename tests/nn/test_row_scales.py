"""Per-row weight scales in models: building, training (determinism, accuracy), model files,
training-state files, float twins, and the places that refuse them (compiled programs, momentum)."""

import json

import numpy as np
import pytest
from safetensors.numpy import load as st_load, save as st_save

from tintin.compile import CompileError, compile_program
from tintin.data import load
from tintin.io import ModelFileError, load_model, save_model
from tintin.nn import Context, QuantConfig, build_model
from tintin.numerics import RoundingStream
from tintin.numerics.scale_rows import RowScaleError, dequantize_rows
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import TrainConfig, fit
from tintin.train.checkpoint import CheckpointError, load_training_state, save_training_state


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def mlp(ds, config=None, seed=0, **kw):
    return build_model("mlp", ds.sample_shape, ds.num_classes, config or QuantConfig(row_scales=True), seed=seed,
                       input_exponent=ds.input_exponent, **kw)


def bits(model):
    return [(p.name, p.value.scale, p.value.m.tobytes(), None if p.row_exp is None else p.row_exp.tobytes())
            for p in model.parameters()]


def test_default_config_has_no_row_scales_and_keeps_its_file_bytes(digits):
    assert QuantConfig().row_scales is False and "row_scales" not in QuantConfig().to_dict()
    assert QuantConfig(row_scales=True).to_dict()["row_scales"] is True
    assert all(p.row_exp is None for p in mlp(digits, QuantConfig()).parameters())
    with pytest.raises(ValueError, match="row_scales"):
        QuantConfig(row_scales=1)


def test_int8_weights_get_row_exponents_and_wide_layers_do_not(digits):
    model = mlp(digits, QuantConfig(row_scales=True, wide_layers=("fc2",)), hidden=(32, 16))
    got = {p.name: p.row_exp for p in model.parameters()}
    assert got["fc1.weight"].shape == (32,) and got["fc2.weight"] is None and got["fc3.weight"].shape == (10,)
    assert got["fc1.bias"] is None
    # same draws as without row scales: the real initial weights agree within half a tensor step
    plain = mlp(digits, QuantConfig(wide_layers=("fc2",)), hidden=(32, 16))
    for p, q in zip(model.parameters(), plain.parameters()):
        if p.row_exp is not None:
            real = dequantize_rows(p.value.m, p.value.scale, p.row_exp)
            assert np.abs(real - q.value.dequantize()).max() <= q.value.scale.to_float()


def test_row_scaled_training_is_deterministic_and_learns(digits):
    config = TrainConfig(epochs=4, batch_size=16, seed=3)
    a, b = mlp(digits), mlp(digits)
    ra = fit(a, digits.x_train, digits.y_train, config, digits.x_test, digits.y_test, progress=False)
    fit(b, digits.x_train, digits.y_train, config, digits.x_test, digits.y_test, progress=False)
    assert bits(a) == bits(b)
    assert ra.test_accuracy > 0.85
    w = a.parameters()[0]
    assert w.row_exp.min() == 0 and w.row_exp.max() <= w.row_limit
    assert np.abs(w.value.m.astype(int)).max() <= 127


def test_conv_layers_get_row_exponents_and_train(digits):
    model = build_model("lenet5", (1, 28, 28), 10, QuantConfig(row_scales=True), seed=0)
    convs = [p for p in model.parameters() if p.kind == "weight" and p.value.m.ndim == 4]
    assert convs and all(p.row_exp is not None and p.row_exp.shape == p.value.m.shape[:1] for p in convs)
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(4, 1, 28, 28)).astype(np.int8)
    y = rng.integers(0, 10, size=4)
    fit(model, x, y, TrainConfig(epochs=2, batch_size=2, seed=0, eval_each_epoch=False), progress=False)
    assert all(p.row_exp.max() <= p.row_limit for p in convs)


def test_model_file_round_trip_and_validation(digits, tmp_path):
    model = mlp(digits)
    fit(model, digits.x_train[:200], digits.y_train[:200], TrainConfig(epochs=1, batch_size=16), progress=False)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded, _ = load_model(path)
    assert bits(loaded) == bits(model)
    assert loaded.spec()["config"]["row_scales"] is True

    blob = path.read_bytes()
    meta = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")])["__metadata__"]
    tensors = st_load(blob)

    def write(ts, name):
        p = tmp_path / name
        p.write_bytes(st_save(ts, metadata=meta))
        return p

    bad = dict(tensors)
    bad["fc1.weight.row_exp"] = np.full_like(tensors["fc1.weight.row_exp"], 16)
    with pytest.raises(ModelFileError, match=r"row exponents of fc1.weight must lie in \[0, 10\]"):
        load_model(write(bad, "range.safetensors"))
    bad["fc1.weight.row_exp"] = np.full_like(tensors["fc1.weight.row_exp"], -1)
    with pytest.raises(ModelFileError, match="row exponents"):
        load_model(write(bad, "negative.safetensors"))
    bad = {k: v for k, v in tensors.items() if k != "fc2.weight.row_exp"}
    with pytest.raises(ModelFileError, match="fc2.weight.row_exp is missing"):
        load_model(write(bad, "missing.safetensors"))
    bad = dict(tensors)
    bad["fc2.weight.row_exp"] = tensors["fc2.weight.row_exp"].astype(np.int16)
    with pytest.raises(ModelFileError, match="fc2.weight.row_exp has shape"):
        load_model(write(bad, "dtype.safetensors"))
    # a model without row scales refuses row exponents
    plain = save_model(mlp(digits, QuantConfig()), tmp_path / "plain.safetensors")
    pblob = plain.read_bytes()
    pmeta = json.loads(pblob[8:8 + int.from_bytes(pblob[:8], "little")])["__metadata__"]
    pt = dict(st_load(pblob))
    pt["fc1.weight.row_exp"] = np.zeros(64, np.int8)
    (tmp_path / "extra.safetensors").write_bytes(st_save(pt, metadata=pmeta))
    with pytest.raises(ModelFileError, match="does not have"):
        load_model(tmp_path / "extra.safetensors")


def test_training_state_keeps_row_exponents(digits, tmp_path):
    model = mlp(digits)
    fit(model, digits.x_train[:200], digits.y_train[:200], TrainConfig(epochs=1, batch_size=16), progress=False)
    path = save_training_state(tmp_path / "s.safetensors", model, {"epoch": 1})
    other = mlp(digits, seed=7)
    load_training_state(path, other)
    assert bits(other) == bits(model)
    model.parameters()[0].row_exp[0] = 99
    save_training_state(path, model, {})
    with pytest.raises(CheckpointError, match="per-row exponents of fc1.weight"):
        load_training_state(path, other)


def test_float_twin_starts_from_the_row_scaled_values(digits):
    pytest.importorskip("torch")
    from tintin.reference import float_twin

    model = mlp(digits)
    w = model.parameters()[0]
    w.row_exp[:5] = [1, 2, 3, 0, 4]
    twin = float_twin(model)
    first = [m for m in twin.modules() if hasattr(m, "weight") and m.weight is not None][0]
    assert np.allclose(first.weight.detach().numpy(), dequantize_rows(w.value.m, w.value.scale, w.row_exp))


def test_momentum_refuses_row_scales(digits):
    model = mlp(digits)
    with pytest.raises(CompileError, match="per-row weight scales"):
        compile_program(model, "full", 1, optim=OptimConfig(momentum_shift=3))
    sgd = IntegerSGD(model.parameters(), OptimConfig(momentum_shift=3), model.config.scale_mode)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(0, 0))
    w = model.parameters()[0]
    w.grad = type(w.value)(np.ones(w.value.m.shape, np.int32), w.value.scale)
    with pytest.raises(RowScaleError, match="aligned rule without momentum"):
        sgd.update(w, ctx)


def test_sparse_rows_saturate_and_frozen_rows_keep_their_bits(digits):
    model = mlp(digits)
    w = model.parameters()[0]
    w.trainable_rows = np.array([2, 5])
    before = w.value.m.copy(), w.row_exp.copy(), w.value.scale
    sgd = IntegerSGD(model.parameters(), OptimConfig(lr=4.0), model.config.scale_mode)
    sgd.batch_size = 1
    w.grad = type(w.value)(np.full(w.value.m.shape, -(2**20), np.int32), w.value.scale)
    sgd.update(w, Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(0, 0)))
    frozen = np.setdiff1d(np.arange(w.value.m.shape[0]), [2, 5])
    assert np.array_equal(w.value.m[frozen], before[0][frozen])
    assert np.array_equal(w.row_exp, before[1]) and w.value.scale == before[2]
    assert np.all(w.value.m[[2, 5]] == 127)


def test_exports_and_fleets_refuse_row_scales(digits):
    from tintin.fleet.local import fleet_model
    from tintin.interop.errors import InteropError
    from tintin.interop.onnx_export import to_onnx
    from tintin.interop.tflite_export import to_tflite

    model = mlp(digits)
    with pytest.raises(InteropError, match="per-row weight scales"):
        to_onnx(model)
    with pytest.raises(InteropError, match="per-row weight scales"):
        to_tflite(model, float_model=True)
    from tintin.fleet.errors import FleetError

    with pytest.raises(FleetError, match="per-row weight scales"):
        fleet_model(model, digits)
