"""Error feedback with an L-bit remainder (OptimConfig.feedback_bits in {2, 4, 8}): the update
against a plain int64 reference of the formula, the settings, the files."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.io import ModelFileError, load_model, save_model
from tintin.nn import Context, build_model
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, RoundingStream, Scale, ScaleMode, limit_for_bits
from tintin.numerics.rescale import apply_multiplier, choose_grid_rescale
from tintin.optim import IntegerSGD, OptimConfig
from tintin.optim.sgd import FeedbackBitsError

ROOT = Path(__file__).resolve().parents[2]


def reference_update(w, r, g, mult, L, key, rounding, rows, mode, scale, rescale):
    """The formula in plain int64: ``W = 2**L w + r``; ``fine = round(g M / 2**(n-L))``;
    ``w = (W + 2**(L-1)) >> L``; sparse rows saturate at ``(limit << L) + 2**(L-1) - 1``; a rescale
    rounds ``W`` (nearest) to the new grid scale and splits again. Returns ``(w, r, scale)``."""
    half, limit = 1 << (L - 1), limit_for_bits(8)
    wide = (limit << L) + half - 1
    m, n = mult
    w, r = w.astype(np.int64), r.astype(np.int64)
    gsel = g if rows is None else g[rows]
    fine = apply_multiplier(gsel.astype(np.int64), (m, n - L), rounding, key)
    if rows is not None:
        W = np.clip((w[rows] << L) + r[rows] - fine, -wide, wide)
        w, r = w.copy(), r.copy()
        w[rows] = (W + half) >> L
        r[rows] = W - (w[rows] << L)
        return w, r, scale
    W = (w << L) + r - fine
    top = int(np.abs((W + half) >> L).max())
    choice = choose_grid_rescale(top, scale, 8, mode) if rescale else None
    if choice is None:
        W = np.clip(W, -wide, wide)
    else:
        scale, mult2 = choice
        W = np.clip(apply_multiplier(W, mult2, "nearest"), -wide, wide)
    w = (W + half) >> L
    return w, W - (w << L), scale


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([2, 4, 8]), st.integers(1, 24), st.integers(0, 2**31 - 1), st.data())
def test_update_matches_the_int64_formula(L, size, seed, data):
    lo, hi = -(1 << (L - 1)), (1 << (L - 1)) - 1
    w0 = np.asarray(data.draw(st.lists(st.integers(-127, 127), min_size=size, max_size=size)), dtype=np.int8)
    r0 = np.asarray(data.draw(st.lists(st.integers(lo, hi), min_size=size, max_size=size)), dtype=np.int8)
    g = np.asarray(data.draw(st.lists(st.integers(-2**31 + 1, 2**31 - 1) | st.integers(-3000, 3000),
                                      min_size=size, max_size=size)), dtype=np.int32)
    rows = data.draw(st.none() | st.lists(st.integers(0, size - 1), unique=True, min_size=1))
    rows = None if rows is None else np.asarray(rows, dtype=np.int64)
    rounding = data.draw(st.sampled_from(["nearest", "stochastic"]))
    rescale = data.draw(st.booleans())
    grad_exp = data.draw(st.integers(-40, -8))
    lr = data.draw(st.sampled_from([0.5, 0.25, 0.03, 2.0]))
    p = Parameter("fc.weight", "weight", QTensor(w0.copy(), Scale(-7)), 8)
    p.remainder, p.feedback_bits = r0.copy(), L
    p.trainable_rows = rows
    opt = IntegerSGD([p], OptimConfig(lr=lr, rounding=rounding, error_feedback=("*",), feedback_bits=L,
                                      weight_rescale=rescale), ScaleMode.COMPOUND)
    mult = opt.aligned_multiplier(Scale(grad_exp), Scale(-7))
    key = RoundingStream(seed, 3).key(1)
    want_w, want_r, want_scale = reference_update(w0, r0, g, mult, L, key, rounding, rows, ScaleMode.COMPOUND,
                                                  Scale(-7), rescale)
    p.grad = QTensor(g, Scale(grad_exp))
    opt.update(p, Context(stream=RoundingStream(seed, 3)))
    assert p.value.scale == want_scale
    assert np.array_equal(p.value.m, want_w) and np.array_equal(p.remainder, want_r)
    assert p.remainder.min() >= lo and p.remainder.max() <= hi and np.abs(p.value.m).max() <= 127


def fixed8_sgd_module():
    """The optimiser module as it was before ``feedback_bits`` existed (fixed 8-bit remainder),
    loaded from the repository history."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", "b78632a:src/tintin/optim/sgd.py"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("the repository history is not available")
    mod = types.ModuleType("tintin.optim._sgd_fixed8")
    mod.__package__ = "tintin.optim"
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(src, "sgd_fixed8.py", "exec"), mod.__dict__)
    finally:
        del sys.modules[mod.__name__]
    return mod


def test_two_bits_equals_the_patched_constants_of_the_fixed_design(monkeypatch):
    """How the accuracy runs were made: FEEDBACK_FRAC_BITS = 2, FEEDBACK_HALF = 2 on the 8-bit code.
    A few steps of a small model give the same bits as feedback_bits=2."""
    from tintin import data
    from tintin.train import TrainConfig, fit

    old = fixed8_sgd_module()
    old.FEEDBACK_FRAC_BITS, old.FEEDBACK_HALF = 2, 2  # a private copy: nothing else sees it
    ds = data.load("digits")
    x, y = ds.x_train[:96], ds.y_train[:96]

    def run(cfg):
        model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
        fit(model, x, y, TrainConfig(epochs=2, batch_size=8, optim=cfg), progress=False)
        return model

    with monkeypatch.context() as mp:
        mp.setattr("tintin.train.loop.IntegerSGD", lambda params, c, mode, update_kernel=None:
                   old.IntegerSGD(params, old.OptimConfig(lr=c.lr, lr_schedule=c.lr_schedule,
                                                          error_feedback=c.error_feedback), mode))
        patched = run(OptimConfig(lr=0.5, error_feedback=("*",)))
    models = [patched, run(OptimConfig(lr=0.5, error_feedback=("*",), feedback_bits=2))]
    for a, b in zip(*(m.parameters() for m in models)):
        assert a.value.scale == b.value.scale and np.array_equal(a.value.m, b.value.m)
        assert (a.remainder is None) == (b.remainder is None)
        if a.remainder is not None:
            assert np.array_equal(a.remainder, b.remainder) and b.remainder.min() >= -2 and b.remainder.max() <= 1
    assert any(p.remainder is not None and p.remainder.any() for p in models[1].parameters())


def test_eight_bits_is_the_default_and_writes_as_before():
    assert OptimConfig().feedback_bits == 8
    d = OptimConfig(error_feedback=("*",)).to_dict()
    assert "feedback_bits" not in d
    d2 = OptimConfig(error_feedback=("*",), feedback_bits=2).to_dict()
    assert d2["feedback_bits"] == 2 and OptimConfig.from_dict(d2).feedback_bits == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"error_feedback": ("*",), "feedback_bits": 3}, "feedback_bits must be one of 2, 4, 8"),
    ({"error_feedback": ("*",), "feedback_bits": True}, "feedback_bits must be one of"),
    ({"feedback_bits": 2}, "name the layers"),
    ({"error_feedback": ("*",), "feedback_bits": 4, "momentum_shift": 3}, "momentum"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OptimConfig(**kwargs)


def test_a_remainder_of_another_width_is_refused():
    p = Parameter("fc.weight", "weight", QTensor(np.zeros(4, np.int8), Scale(-7)), 8)
    p.remainder = np.zeros(4, np.int8)  # 8-bit
    opt = IntegerSGD([p], OptimConfig(error_feedback=("*",), feedback_bits=2), ScaleMode.COMPOUND)
    p.grad = QTensor(np.ones(4, np.int32), Scale(-20))
    with pytest.raises(FeedbackBitsError, match="8-bit"):
        opt.update(p, Context(stream=RoundingStream(0, 0)))


def trained(L):
    from tintin import data
    from tintin.train import TrainConfig, fit

    ds = data.load("digits")
    model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
    fit(model, ds.x_train[:128], ds.y_train[:128],
        TrainConfig(epochs=1, batch_size=16, optim=OptimConfig(lr=0.5, error_feedback=("fc1",), feedback_bits=L)),
        progress=False)
    return model


def test_model_file_keeps_the_width_and_checks_the_range(tmp_path):
    import json

    model = trained(2)
    w = model.parameters()[0]
    assert w.feedback_bits == 2 and w.remainder.any()
    path = save_model(model, tmp_path / "m.safetensors", include_optimizer_state=True)
    loaded, _ = load_model(path)
    assert loaded.parameters()[0].feedback_bits == 2
    assert np.array_equal(loaded.parameters()[0].remainder, w.remainder)
    # hostile: a 2-bit remainder holding 5
    w.remainder = w.remainder.copy()
    w.remainder[0] = 5
    bad = save_model(model, tmp_path / "bad.safetensors", include_optimizer_state=True)
    with pytest.raises(ModelFileError, match=r"2-bit error-feedback remainders must lie in \[-2, 1\]"):
        load_model(bad)
    # hostile: an unknown width
    from safetensors import safe_open
    from safetensors.numpy import save

    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    doc = json.loads(meta["tintin"])
    doc["parameters"]["fc1.weight"]["feedback_bits"] = 3
    (tmp_path / "w.safetensors").write_bytes(save(tensors, {**meta, "tintin": json.dumps(doc)}))
    with pytest.raises(ModelFileError, match="feedback_bits must be one of 2, 4, 8"):
        load_model(tmp_path / "w.safetensors")


def test_eight_bit_files_keep_their_bytes(tmp_path):
    model = trained(8)
    blob = (save_model(model, tmp_path / "m.safetensors", include_optimizer_state=True)).read_bytes()
    assert b"feedback_bits" not in blob


def test_checkpoint_keeps_the_width_and_checks_the_range(tmp_path):
    from tintin.train.checkpoint import CheckpointError, load_training_state, save_training_state

    model = trained(4)
    path = save_training_state(tmp_path / "c.safetensors", model, {"kind": "test"})


    fresh = trained(8)
    for p in fresh.parameters():
        p.remainder = None
    load_training_state(path, fresh)
    assert fresh.parameters()[0].feedback_bits == 4
    assert np.array_equal(fresh.parameters()[0].remainder, model.parameters()[0].remainder)
    model.parameters()[0].remainder[0] = 8
    bad = save_training_state(tmp_path / "bad.safetensors", model, {"kind": "test"})
    with pytest.raises(CheckpointError, match=r"4-bit error-feedback remainders must lie in \[-8, 7\]"):
        load_training_state(bad, fresh)



def test_the_default_keeps_the_text_that_names_a_configuration():
    """A device checkpoint's model hash hashes repr(OptimConfig): the new field must not change it."""
    old = fixed8_sgd_module()
    for kwargs in ({}, {"error_feedback": ("fc1",), "momentum_shift": 2, "lr": 0.1}):
        assert repr(OptimConfig(**kwargs)) == repr(old.OptimConfig(**kwargs))
    assert "feedback_bits=2" in repr(OptimConfig(error_feedback=("*",), feedback_bits=2))
