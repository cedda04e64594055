"""A stream on a target (`tintin stream --target`, tintin.targets.stream, tintin.online.device): the
generated training program predicts and learns a stream at batch 1, bit for bit as the simulator's
OnlineLearner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tintin.codegen import CodegenError, compile_for_codegen, generate_project
from tintin.codegen.driver import render_stream_driver
from tintin.data import load
from tintin.nn import build_model
from tintin.online import make_stream
from tintin.online.device import stream_on_target
from tintin.online.stream import StreamError
from tintin.optim import OptimConfig
from tintin.targets import TargetError, toolchain_status
from tintin.targets.stream import run_stream_on_target
from test_stream_cli import one_line_error, run  # noqa: E402  (tests/online is on sys.path)


def require_toolchain(target: str) -> None:
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _mlp(ds, seed=0):
    return build_model("mlp", ds.sample_shape, ds.num_classes, seed=seed, input_exponent=ds.input_exponent)


def test_stream_cli_on_the_host_is_bit_exact_with_unlabelled_samples(capsys):
    require_toolchain("host")
    code, out, err = run(capsys, "stream", "mlp", "-d", "digits", "--drift", "new_class", "--length", "60",
                         "--update", "tinyol", "--pretrain-epochs", "1", "--window", "20", "--label-rate", "0.5",
                         "--lr", "0.05", "--momentum-shift", "2", "--no-river", "--no-float", "--target", "host",
                         "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["bit_exact"] is True, d["device"]["mismatches"]
    assert d["instructions_per_sample"] is None and d["count_unit"] is None  # the host counts nothing
    dev = d["device"]
    assert dev["samples"] == 60 and 15 < dev["labelled"] < 45  # unlabelled samples are only predicted
    assert "planned_sram_bytes" in d


@pytest.mark.parametrize("update,momentum", [("bias", 0), ("last:1", 3), ("full", 1)])
def test_stream_on_the_host_matches_the_online_learner(digits, tmp_path, update, momentum):
    require_toolchain("host")
    stream = make_stream("sensor_gain", digits, length=30, seed=5, label_rate=0.6)
    model = _mlp(digits, seed=2)
    d = stream_on_target(model, stream, "host", update=update, optim=OptimConfig(lr=0.1, momentum_shift=momentum),
                         seed=9, work_dir=tmp_path)
    assert d["bit_exact"], d["mismatches"]
    assert d["labelled"] == int(stream.labelled.sum()) < 30


def test_a_device_that_predicts_differently_is_not_bit_exact(digits, tmp_path):
    """The comparison with the online learner can fail: feed it other predictions."""
    require_toolchain("host")
    stream = make_stream("sensor_gain", digits, length=30, seed=1)
    model = _mlp(digits)
    wrong = np.full(30, 7, dtype=np.int64)
    d = stream_on_target(model, stream, "host", update="bias", optim=OptimConfig(lr=0.1), learner_predictions=wrong,
                         work_dir=tmp_path)
    assert not d["bit_exact"]
    assert any("differ from the online learner" in m for m in d["mismatches"])


def test_run_stream_on_target_leaves_the_model_unchanged_and_checks_its_input(digits, tmp_path):
    require_toolchain("host")
    model = _mlp(digits)
    before = [p.value.m.copy() for p in model.parameters()]
    labelled = np.array([True, False, True, True])
    r = run_stream_on_target(model, "host", x=digits.x_test[:4], labels=digits.y_test[:4], labelled=labelled,
                             update="full", optim=OptimConfig(lr=0.2), work_dir=tmp_path)
    assert r.bit_exact and r.labelled == 3 and len(r.predictions) == 4 and len(r.losses) == 3
    assert all(np.array_equal(a, p.value.m) for a, p in zip(before, model.parameters()))
    with pytest.raises(TargetError, match="int8"):
        run_stream_on_target(model, "host", x=digits.x_test[:4].astype(np.int16), labels=digits.y_test[:4],
                             labelled=labelled)
    with pytest.raises(TargetError, match="labels must be in"):
        run_stream_on_target(model, "host", x=digits.x_test[:2], labels=[0, 99], labelled=[True, True])


def test_the_stream_driver_refuses_inconsistent_input(digits, tmp_path):
    model = _mlp(digits)
    program, plan, eval_program = compile_for_codegen(model, "full", 1, None, None)
    project = generate_project(model, tmp_path, program=program, plan=plan, eval_program=eval_program, example=False)
    x = digits.x_test[:3]
    with pytest.raises(CodegenError, match="3 labels"):
        render_stream_driver(project.model, x_samples=x, labels=[1, 2], labelled=[True, True, True])
    with pytest.raises(CodegenError, match="known class"):
        render_stream_driver(project.model, x_samples=x, labels=[1, 2, 3], labelled=[True] * 3, known_classes=(10,))
    files = render_stream_driver(project.model, x_samples=x, labels=[1, 200, 3], labelled=[True, False, True])
    assert "#define TT_RUN_SAMPLES 3UL" in files["tt_driver_data.h"]
    assert "200" not in files["tt_driver_data.c"]  # an unlabelled sample's label is not embedded


def test_stream_cli_target_errors_are_one_line(capsys):
    code, _, err = run(capsys, "stream", "mlp", "-d", "digits", "--length", "40", "--window", "10",
                       "--target", "nosuch-mcu", "--json")
    assert "nosuch-mcu" in one_line_error(code, err)
    code, _, err = run(capsys, "stream", "mlp", "-d", "digits", "--length", "40", "--window", "10", "--replay", "4",
                       "--target", "host", "--json")
    assert "--replay" in one_line_error(code, err)


def test_replay_on_a_target_is_refused(digits):
    stream = make_stream("sensor_gain", digits, length=30, seed=0)
    with pytest.raises(StreamError, match="replay"):
        stream_on_target(_mlp(digits), stream, "host", replay=4)


@pytest.mark.emulator
def test_stream_on_cortex_m0_is_bit_exact_and_counts_instructions(capsys):
    require_toolchain("cortex-m0")
    code, out, err = run(capsys, "stream", "mlp", "-d", "digits", "--drift", "sensor_gain", "--length", "40",
                         "--update", "last:1", "--pretrain-epochs", "1", "--window", "10", "--label-rate", "0.5",
                         "--no-river", "--no-float", "--target", "cortex-m0", "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["bit_exact"] is True, d["device"]["mismatches"]
    assert d["count_unit"] == "instructions" and d["instructions_per_sample"] > 0
    dev = d["device"]
    assert dev["instructions_per_learn"] > dev["instructions_per_prediction"] > 0
    assert dev["softfloat_symbols"] == []
