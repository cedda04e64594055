"""``tintin train --init MODEL_FILE --update MODE``: host fine-tuning of a model file trains exactly
what the compiled program of the same update mode trains, bit for bit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from test_cli import one_line_error
from tintin import data
from tintin.cli import main
from tintin.cli.options import DataFiles
from tintin.compile import apply_update_selection, compile_program, plan_memory, run_program
from tintin.io import load_model, save_model
from tintin.nn import Context, build_model
from tintin.numerics import RoundingStream
from tintin.optim import OptimConfig
from tintin.train import widen_finetuned_layers
from tintin.train.loop import batches, epoch_order


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture
def small_npz(tmp_path, digits):
    """48 training and 40 test samples of digits as int8 mantissas (taken as they are)."""
    path = tmp_path / "small.npz"
    np.savez(path, x_train=digits.x_train[:48], y_train=digits.y_train[:48],
             x_test=digits.x_test[:40], y_test=digits.y_test[:40])
    return path


@pytest.fixture
def base_file(tmp_path, digits):
    model = build_model("mlp", digits.sample_shape, digits.num_classes, seed=1,
                        input_exponent=digits.input_exponent)
    return save_model(model, tmp_path / "base" / "model.safetensors", info={"model": "mlp"})


def compiled_fine_tune(init_file, update, ds, optim, seed, epochs, wide_rule=True):
    """The compiled training program of ``update`` (with the fine-tuning width rule) run over the
    samples in the order ``fit`` uses."""
    model, _ = load_model(init_file)
    apply_update_selection(model, update)
    if wide_rule:
        widen_finetuned_layers(model)
    program = compile_program(model, update=update, batch_size=1, optim=optim)
    plan = plan_memory(program, "greedy")
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed))
    for epoch, order in enumerate(epoch_order(len(ds.x_train), epochs, seed)):
        for idx in batches(order, 1):
            run_program(program, model, ds.x_train[idx], ds.y_train[idx], ctx, plan=plan, epoch=epoch)
    return model


@pytest.mark.parametrize("update, rule, wide", [("bias", "--wide-rule", []), ("last:1", "--wide-rule", ["fc2"]),
                                               ("last:1", "--no-wide-rule", []),
                                               ("sparse:fc2[0:3]", "--wide-rule", [])])
def test_host_fine_tuning_equals_the_compiled_program(capsys, tmp_path, small_npz, base_file, digits, update, rule,
                                                      wide):
    out = tmp_path / "tuned"
    code, text, err = run(capsys, "train", "--init", base_file, "--update", update, "--dataset", small_npz,
                          "--input-exponent", digits.input_exponent, "--epochs", 2, "--batch-size", 1,
                          "--seed", 3, "--out", out, "--json", rule)
    assert code == 0, err
    summary = json.loads(text)
    assert summary["int16_master_layers"] == wide
    tuned, info = load_model(out / "model.safetensors")
    base, _ = load_model(base_file)
    ds = DataFiles(None, digits.input_exponent, None, None, None).load(str(small_npz))
    assert np.array_equal(ds.x_train, digits.x_train[:48])
    expected = compiled_fine_tune(base_file, update, ds, OptimConfig.from_dict(info["train"]["optim"]), 3, 2,
                                  wide_rule=rule == "--wide-rule")
    assert list(tuned.config.wide_layers) == wide
    assert [p.name for p in tuned.parameters() if p.bits == 16] == [f"{n}.weight" for n in wide]

    trained = set(summary["trained_parameters"])
    changed = 0
    for p, q, b in zip(tuned.parameters(), expected.parameters(), base.parameters()):
        assert np.array_equal(p.value.m, q.value.m) and p.value.m.dtype == q.value.m.dtype, p.name
        assert p.value.scale == q.value.scale, p.name
        if p.name not in trained:  # frozen: byte-identical to the init file
            assert p.value.m.tobytes() == b.value.m.tobytes() and p.value.scale == b.value.scale, p.name
        else:
            changed += not np.array_equal(p.value.dequantize(), b.value.dequantize())
    assert changed, "fine-tuning changed no trained parameter"
    assert info["update"] == update
    assert info["parent"] == {"sha256": hashlib.sha256(base_file.read_bytes()).hexdigest(), "path": str(base_file)}


def test_fine_tuning_decays_its_learning_rate_by_the_fine_tuning_rule(capsys, tmp_path, small_npz, base_file,
                                                                     digits):
    code, text, err = run(capsys, "train", "--init", base_file, "--update", "last:1", "--dataset", small_npz,
                          "--input-exponent", digits.input_exponent, "--epochs", 2, "--batch-size", 1,
                          "--lr", 0.05, "--out", tmp_path / "t", "--json")
    assert code == 0, err
    assert json.loads(text)["lr_schedule"] == [[1, 0.01]]
    _, info = load_model(tmp_path / "t" / "model.safetensors")
    assert info["train"]["optim"]["lr_schedule"] == [[1, 0.01]]
    # a new zoo model of the same length keeps a constant rate (full training's rule)
    code, text, err = run(capsys, "train", "--model", "mlp", "--dataset", small_npz, "--input-exponent",
                          digits.input_exponent, "--epochs", 2, "--batch-size", 1, "--lr", 0.05,
                          "--out", tmp_path / "z", "--json")
    assert code == 0, err
    assert json.loads(text)["lr_schedule"] == []


def test_bias_selection_trains_biases_only(capsys, tmp_path, base_file):
    code, text, err = run(capsys, "train", "--init", base_file, "--update", "bias", "--dataset", "digits",
                          "--epochs", 1, "--out", tmp_path / "b", "--json")
    assert code == 0, err
    summary = json.loads(text)
    assert summary["trained_parameters"] == {"fc1.bias": None, "fc2.bias": None}
    tuned, _ = load_model(tmp_path / "b" / "model.safetensors")
    base, _ = load_model(base_file)
    for p, b in zip(tuned.parameters(), base.parameters()):
        same = p.value.m.tobytes() == b.value.m.tobytes()
        assert same == (p.kind == "weight"), p.name


def test_update_applies_to_zoo_models(capsys, tmp_path):
    code, text, err = run(capsys, "train", "--dataset", "digits", "--update", "last:1", "--epochs", 1,
                          "--out", tmp_path / "z", "--json")
    assert code == 0, err
    summary = json.loads(text)
    assert summary["trained_parameters"] == {"fc2.weight": None, "fc2.bias": None}
    assert summary["parent"] is None


@pytest.mark.parametrize("args, needle", [
    (["--update", "sparse:conv1"], "no parameterised layer 'conv1'"),
    (["--update", "last:5"], "has only 2 parameterised layers"),
    (["--update", "sideways"], "unknown update"),
    (["--model", "mlp"], "--model and --init exclude each other"),
])
def test_bad_update_or_model_is_one_error_line(capsys, tmp_path, base_file, args, needle):
    code, out, err = run(capsys, "train", "--init", base_file, "--dataset", "digits", "--epochs", 1,
                         "--out", tmp_path / "x", *args)
    assert needle in one_line_error(code, out, err)
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_data_set_must_fit_the_init_model(capsys, tmp_path, base_file):
    code, out, err = run(capsys, "train", "--init", base_file, "--dataset", "basicmotions", "--epochs", 1,
                         "--out", tmp_path / "x")
    one_line_error(code, out, err)


def test_missing_or_corrupt_init_file(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--init", tmp_path / "nope.safetensors", "--dataset", "digits",
                         "--out", tmp_path / "x")
    assert "does not exist" in one_line_error(code, out, err)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    code, out, err = run(capsys, "train", "--init", bad, "--dataset", "digits", "--out", tmp_path / "x")
    one_line_error(code, out, err)


def test_run_on_a_device_applies_the_same_width_rule(capsys, tmp_path, base_file):
    from tintin.targets import toolchain_status

    ok, why = toolchain_status("cortex-m0")
    if not ok:
        pytest.skip(why)
    for args, wide in (([base_file], ["fc2"]), ([base_file, "--no-wide-rule"], []), (["mlp"], [])):
        code, text, err = run(capsys, "run", *args, "--dataset", "digits", "--update", "last:1", "--target",
                              "cortex-m0", "--steps", 3, "--eval", 4, "--json")
        assert code == 0, err
        result = json.loads(text)
        assert result["bit_exact"] and result["int16_master_layers"] == wide


def test_an_interrupted_fine_tune_resumes_with_its_width_rule(capsys, tmp_path, base_file):
    from tests.interrupted_training import train_then_interrupt

    args = ["--init", str(base_file), "--update", "last:1", "-d", "digits", "-e", "2", "-b", "1", "--lr", "0.05",
            "--seed", "2"]
    run_dir = tmp_path / "run"
    code, out, err = train_then_interrupt(args, run_dir, 50)
    assert code == 130, (out, err)
    code, text, err = run(capsys, "train", "--resume", run_dir, "--json")
    assert code == 0, err
    assert json.loads(text)["int16_master_layers"] == ["fc2"]
    code, text, err = run(capsys, "train", *args, "--out", tmp_path / "whole", "--json")
    assert code == 0, err
    resumed, _ = load_model(run_dir / "model.safetensors")
    whole, _ = load_model(tmp_path / "whole" / "model.safetensors")
    assert resumed.config.wide_layers == whole.config.wide_layers == ("fc2",)
    for p, q in zip(resumed.parameters(), whole.parameters()):
        assert p.value.m.tobytes() == q.value.m.tobytes() and p.value.scale == q.value.scale, p.name


def test_export_of_a_model_file_applies_the_width_rule(capsys, tmp_path, base_file):
    for i, (args, wide) in enumerate((([base_file], ["fc2"]), ([base_file, "--no-wide-rule"], []), (["mlp"], []))):
        code, text, err = run(capsys, "export", *args, "--update", "last:1", "--out", tmp_path / f"fw{i}",
                              "--json")
        assert code == 0, err
        result = json.loads(text)
        assert result["int16_master_layers"] == wide
        dtypes = {p["name"]: p["dtype"] for p in result["parameters"]}
        assert any("int16" in d for d in dtypes.values()) == bool(wide), dtypes
