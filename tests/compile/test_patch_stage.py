"""Patch-based inference of the frozen first stage: the same bits as train_step over random
convolution stacks, patch sizes and batches, in the executor and in the generated C (host and an
emulated Cortex-M0); the maps between its layers never exist in full; the
memory it saves and the MACs it costs are counted exactly."""

from __future__ import annotations

import json
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compile_helpers import compare_runs

from tintin.cli import main
from tintin.compile import CompileError, compile_program, plan_memory
from tintin.compile.patch import OP, stage_macs
from tintin.nn import QuantConfig, Sequential, build_model
from tintin.nn.conv_layers import Conv2d
from tintin.nn.layers import Flatten, Linear, ReLU
from tintin.nn.pool_layers import MaxPool2d


def _out(size: int, k: int, s: int, p: int = 0) -> int:
    return (size + 2 * p - k) // s + 1


@st.composite
def stacks(draw):
    """A random Conv2d/ReLU/MaxPool2d stack of one or two stages, then a Linear head."""
    mode = draw(st.sampled_from(["pow2", "compound"]))
    config = QuantConfig(scale_mode=mode)
    rng = np.random.default_rng(draw(st.integers(0, 10 ** 6)))
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(5, 13)), draw(st.integers(5, 13))
    shape = (c, h, w)
    layers = []
    for i in range(draw(st.integers(1, 2))):
        k, s, p = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
        cout = draw(st.integers(1, 4))
        groups = draw(st.sampled_from([g for g in (1, 2) if c % g == 0 and cout % g == 0]))
        h, w = _out(h, k, s, p), _out(w, k, s, p)
        assume(h >= 1 and w >= 1)
        layers += [Conv2d(c, cout, k, stride=s, padding=p, groups=groups, config=config, rng=rng, name=f"c{i}"),
                   ReLU(f"r{i}")]
        c = cout
        if draw(st.booleans()):
            pk, ps = draw(st.integers(2, 3)), draw(st.integers(1, 3))
            assume(h >= pk and w >= pk)
            h, w = _out(h, pk, ps), _out(w, pk, ps)
            layers.append(MaxPool2d(pk, stride=ps, name=f"p{i}"))
    layers += [Flatten("flat"), Linear(c * h * w, 3, config=config, rng=rng, name="head")]
    return Sequential(layers, shape, config, name="stack")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(stacks(), st.integers(1, 4), st.integers(1, 3), st.sampled_from(["last:1", "sparse:head[0:2]"]))
def test_patch_stage_is_bit_identical_to_train_step(model, patch, batch, update):
    _, _, program, _ = compare_runs(model, update, batch, steps=2, patch_size=patch)
    assert [s.op for s in program.steps][0] == OP
    stage = program.steps[0].attrs["layers"]
    # no map of the stage exists in full: only its output and patch-sized workspaces
    whole = {f"{s['layer']}.out" for s in stage[:-1]}
    assert not whole & set(program.buffers)


def test_lenet5_peak_falls_and_the_extra_macs_are_counted():
    model = build_model("lenet5", (1, 28, 28), 10, seed=0)
    plain = compile_program(model, "last:1", 1)
    patched = compile_program(model, "last:1", 1, patch_size=1)
    assert plan_memory(patched).arena_bytes < 0.4 * plan_memory(plain).arena_bytes
    step = patched.steps[0]
    assert step.op == OP and [s["layer"] for s in step.attrs["layers"]] == ["conv1", "relu1", "pool1", "conv2",
                                                                           "relu2", "pool2"]
    # one plain pass of both convolutions, and the count the schedule gives
    assert step.attrs["plain_macs"] == 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150
    assert step.macs == stage_macs(step.attrs["layers"], 1, 1) > 3 * step.attrs["plain_macs"]
    rest = sum(s.macs for s in patched.steps[1:])
    assert patched.macs == step.macs + rest
    for name in ("conv1.out", "pool1.out", "conv2.out", "conv2.acc"):
        assert name not in patched.buffers
    compare_runs(model, "last:1", 2, steps=2, patch_size=2)


def test_patch_layers_limits_the_stage():
    model = build_model("lenet5", (1, 16, 16), 3, seed=0)
    program = compile_program(model, "last:2", 1, patch_size=2, patch_layers=3)
    assert [s["layer"] for s in program.steps[0].attrs["layers"]] == ["conv1", "relu1", "pool1"]
    assert "pool1.out" in program.buffers and "conv2.out" in program.buffers
    # one convolution reading the stored input, pooled by disjoint 2x2 windows: no halo, so
    # exactly twice the convolution's MACs (what recomputing its accumulator costs)
    assert program.steps[0].macs == 2 * 6 * 16 * 16 * 25
    compare_runs(model, "last:2", 1, steps=2, patch_size=2, patch_layers=3)


def test_a_stage_a_backward_step_reaches_is_refused():
    model = build_model("lenet5", (1, 16, 16), 3, seed=0)
    with pytest.raises(CompileError, match="no patch stage"):
        compile_program(model, "bias", 1, patch_size=2)
    with pytest.raises(CompileError, match="patch_size"):
        compile_program(model, "last:1", 1, patch_size=0)
    mlp = build_model("mlp", (1, 8, 8), 10, seed=0)
    with pytest.raises(CompileError, match="no patch stage"):
        compile_program(mlp, "last:1", 1, patch_size=2)


def _c_run(model, target: str, update: str, batch: int, patch: int, work, steps: int = 2):
    """Train ``model``'s generated C program with a patch stage on ``target``; the report compares
    every loss, prediction and final weight with the simulator."""
    from tintin.compile import CompileOptions
    from tintin.targets import run_on_target, select_samples, toolchain_status

    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    rng = np.random.default_rng(batch + patch)
    x_all = rng.integers(-127, 128, size=(steps * batch + 3, *model.input_shape)).astype(np.int8)
    y_all = rng.integers(0, 3, size=len(x_all))
    order = np.arange(steps * batch)
    x, y, o = select_samples(x_all, y_all, order, steps, batch)
    report = run_on_target(model, target, x_samples=x, y_samples=y, order=o, steps=steps, work_dir=work,
                           batch_size=batch, update=update, options=CompileOptions(patch_size=patch),
                           eval_x=x_all[-3:], timeout_s=900)
    assert report.bit_exact, report.mismatches[:3]
    assert report.arena_bytes == report.planned_arena_bytes
    return report


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                                 HealthCheck.function_scoped_fixture])
@given(stacks(), st.integers(1, 3), st.integers(1, 2))
def test_the_generated_c_runs_the_patch_stage_bit_exactly(tmp_path, model, patch, batch):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        _c_run(model, "host", "last:1", batch, patch, Path(work))


@pytest.mark.emulator
def test_lenet5_patch_stage_on_an_emulated_cortex_m0(tmp_path):
    model = build_model("lenet5", (1, 20, 24), 3, seed=0)
    _c_run(model, "cortex-m0", "last:1", 1, 2, tmp_path)


def test_plan_cli_reports_the_patch_stage(capsys):
    assert main(["plan", "lenet5", "--update", "last:1", "--patch", "1", "--json", "--no-suggest"]) == 0
    patched = json.loads(capsys.readouterr().out)
    assert main(["plan", "lenet5", "--update", "last:1", "--json", "--no-suggest"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert patched["peak_sram_bytes"] < plain["peak_sram_bytes"]
    stage = patched["patch_stage"]
    assert stage["layers"] == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"] and stage["patch"] == 1
    assert stage["extra_macs_per_sample"] == stage["macs_per_sample"] - stage["plain_macs_per_sample"] > 0
    assert plain["patch_stage"] is None
    assert main(["plan", "lenet5", "--update", "bias", "--patch", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no patch stage" in err[0]
