"""Memory by default: sparse updates recompute large int32 accumulators under the documented rule
(at least RECOMPUTE_MIN_BYTES and RECOMPUTE_BYTES_PER_MAC bytes per extra MAC); the full update
stores them; the bits do not change."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.cli import main
from tintin.compile import CompileOptions, compile_program, plan_memory
from tintin.compile.compiler import RECOMPUTE_BYTES_PER_MAC, RECOMPUTE_MIN_BYTES, CompileError
from tintin.compile.report import recomputed_accumulators
from tintin.nn import build_model

from compile_helpers import compare_runs


@pytest.fixture(scope="module")
def lenet():
    return build_model("lenet5", (1, 28, 28), 10, seed=0)


def test_lenet5_bias_plan_is_a_quarter_of_the_full_one_by_default(capsys):
    peaks = {}
    for update in ("full", "bias"):
        assert main(["plan", "lenet5", "--update", update, "--json", "--no-suggest"]) == 0
        d = json.loads(capsys.readouterr().out)
        peaks[update] = d
    assert peaks["bias"]["peak_sram_bytes"] <= 0.25 * peaks["full"]["peak_sram_bytes"]
    recomputed = peaks["bias"]["recomputed_accumulators"]
    assert [r["layer"] for r in recomputed] == ["conv1"]
    assert recomputed[0]["bytes_saved"] == 6 * 28 * 28 * 4 and recomputed[0]["extra_macs"] == 6 * 28 * 28 * 25
    assert peaks["bias"]["recompute_extra_macs_per_sample"] == 6 * 28 * 28 * 25
    assert peaks["full"]["recomputed_accumulators"] == [] and peaks["full"]["recompute_extra_macs_per_sample"] == 0


def test_the_rule_follows_its_two_thresholds(lenet):
    program = compile_program(lenet, "bias", 1)
    for r in recomputed_accumulators(program):
        assert r["bytes_saved"] >= RECOMPUTE_MIN_BYTES and r["bytes_saved"] >= RECOMPUTE_BYTES_PER_MAC * r["extra_macs"]
    # conv2's 6.4 KB accumulator costs 240,000 MACs to recompute (0.027 B/MAC): stored
    assert "conv2.acc" in program.buffers and "conv1.acc" not in program.buffers
    # a looser ratio recomputes conv2 too; None stores everything
    loose = compile_program(lenet, "bias", 1, recompute_bytes_per_mac=0.02)
    assert "conv2.acc" not in loose.buffers
    stored = compile_program(lenet, "bias", 1, recompute_bytes_per_mac=None)
    assert "conv1.acc" in stored.buffers and recomputed_accumulators(stored) == []
    assert plan_memory(program).arena_bytes < plan_memory(stored).arena_bytes
    # an explicit budget overrides the rule
    budget = compile_program(lenet, "bias", 1, accumulator_budget=10 ** 6)
    assert "conv1.acc" in budget.buffers


def test_full_updates_store_every_accumulator(lenet):
    assert recomputed_accumulators(compile_program(lenet, "full", 1)) == []
    assert recomputed_accumulators(compile_program(lenet, "last:1", 1))  # sparse: the rule applies


def test_a_bad_ratio_is_refused():
    with pytest.raises(CompileError, match="recompute_bytes_per_mac"):
        CompileOptions(recompute_bytes_per_mac=0)


@settings(max_examples=6, deadline=None)
@given(update=st.sampled_from(["bias", "last:1", "last:2", "sparse:conv1[0:2],fc3.bias"]),
       ratio=st.sampled_from([RECOMPUTE_BYTES_PER_MAC, 0.001]), seed=st.integers(0, 3))
def test_the_default_recompute_changes_memory_not_bits(update, ratio, seed):
    """Programs the default rule compiles train bit for bit like train_step (random sparse
    updates, thresholds and initialisations, a 32x32 LeNet-5 whose conv1 accumulator is 18 KB)."""
    model = build_model("lenet5", (1, 32, 32), 4, seed=seed)
    program = compile_program(model, update, 1, recompute_bytes_per_mac=ratio)
    assert recomputed_accumulators(program)
    compare_runs(model, update, 1, steps=2, recompute_bytes_per_mac=ratio, seed=seed)
    assert np.isfinite(plan_memory(program).arena_bytes)


def test_the_generated_c_of_a_recomputing_program_matches_the_simulator(tmp_path):
    """LeNet-5 28x28 bias-only, default options (conv1's accumulator recomputed), on the host."""
    from tintin.targets import run_on_target, toolchain_status

    ok, reason = toolchain_status("host")
    if not ok:
        pytest.skip(reason)
    model = build_model("lenet5", (1, 28, 28), 10, seed=0)
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(3, 1, 28, 28), dtype=np.int8)
    y = np.array([1, 7, 3])
    report = run_on_target(model, "host", x_samples=x, y_samples=y, order=np.array([0, 1, 2]), steps=3,
                           update="bias", eval_x=x[:2], work_dir=tmp_path)
    assert report.bit_exact, report.mismatches
    assert report.planned_arena_bytes < 0.25 * 87421
