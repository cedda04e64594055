import json
import os

import numpy as np
import pytest

from tintin.io import FORMAT_VERSION, ModelFileError, load_model, save_model
from tintin.nn import QuantConfig, build_model


def params_equal(a, b):
    return all(p.name == q.name and p.value.scale == q.value.scale and (p.value.m == q.value.m).all()
               and p.value.m.dtype == q.value.m.dtype for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("qconf", [QuantConfig(), QuantConfig(scale_mode="pow2", weight_bits=16),
                                   QuantConfig(wide_layers=("fc2",))])
def test_round_trip(tmp_path, qconf):
    model = build_model("mlp", (1, 8, 8), 10, qconf, seed=5, input_exponent=-7)
    model.parameters()[0].trainable = False
    model.parameters()[1].trainable_rows = np.array([0, 3])
    path = save_model(model, tmp_path / "m.safetensors", info={"dataset": "digits"})
    loaded, info = load_model(path)
    assert info == {"dataset": "digits"}
    assert params_equal(model, loaded)
    assert loaded.spec() == model.spec()
    assert loaded.parameters()[0].trainable is False
    assert loaded.parameters()[1].trainable_rows.tolist() == [0, 3]


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    with pytest.raises(ModelFileError, match="not a valid model file"):
        load_model(bad)
    good = save_model(build_model("mlp", (8,), 3), tmp_path / "good.safetensors")
    data = good.read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        load_model(trunc)


def _rewrite_metadata(path, out, change):
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    change(header["__metadata__"])
    blob = json.dumps(header).encode()
    blob += b" " * ((8 - len(blob) % 8) % 8)
    out.write_bytes(len(blob).to_bytes(8, "little") + blob + data[8 + n:])


def test_version_and_foreign_files(tmp_path):
    good = save_model(build_model("mlp", (8,), 3), tmp_path / "good.safetensors")
    future = tmp_path / "future.safetensors"
    _rewrite_metadata(good, future, lambda m: m.update(format_version=str(FORMAT_VERSION + 1)))
    with pytest.raises(ModelFileError, match="version"):
        load_model(future)
    foreign = tmp_path / "foreign.safetensors"
    _rewrite_metadata(good, foreign, lambda m: m.update(format="something-else"))
    with pytest.raises(ModelFileError, match="not a tintin model"):
        load_model(foreign)
    broken = tmp_path / "broken.safetensors"
    _rewrite_metadata(good, broken, lambda m: m.update(tintin="{not json"))
    with pytest.raises(ModelFileError, match="metadata"):
        load_model(broken)


def test_tensor_shape_mismatch_is_reported(tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    good = save_model(build_model("mlp", (8,), 3), tmp_path / "good.safetensors")
    with safe_open(str(good), "np") as f:
        meta = f.metadata()
    tensors = load_file(str(good))
    tensors["fc1.weight"] = tensors["fc1.weight"][:, :4].copy()
    save_file(tensors, str(tmp_path / "shape.safetensors"), metadata=meta)
    with pytest.raises(ModelFileError, match="fc1.weight"):
        load_model(tmp_path / "shape.safetensors")


def test_atomic_write_keeps_the_old_model_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    first = build_model("mlp", (8,), 3, seed=1)
    save_model(first, path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        save_model(build_model("mlp", (8,), 3, seed=2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind
