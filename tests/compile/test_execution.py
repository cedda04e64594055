"""Executing a compiled program is bit-identical to train_step, for every update choice."""

from __future__ import annotations

import numpy as np
import pytest

from tintin.compile import (ExecutionError, ProgramExecutor, compile_program, plan_memory, run_program)
from tintin.compile.planner import MemoryPlan
from tintin.nn import Context, QuantConfig
from tintin.numerics import Rounding, RoundingStream
from tintin.optim import OptimConfig

from compile_helpers import compare_runs, make_mlp, random_batch

UPDATES = ["full", "bias", "last:1", "last:2", "none", "sparse:fc3,fc1[0:8]", "sparse:fc2.weight[2:5,9]",
           "bias+last:1"]


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("update", UPDATES)
def test_bit_identical_every_update(update, batch_size):
    compare_runs(make_mlp(), update, batch_size, steps=6, seed=batch_size)


@pytest.mark.parametrize("tile", [None, 4, 64, 200, 100_000])
@pytest.mark.parametrize("update", ["full", "sparse:fc1[1:20]"])
def test_bit_identical_any_tiling(update, tile):
    compare_runs(make_mlp(), update, 3, steps=5, grad_tile_bytes=tile)


OPTIMS = {
    "niti": OptimConfig(rule="niti", mu=4),
    "niti_nearest": OptimConfig(rule="niti", mu=3, rounding=Rounding.NEAREST),
    "momentum": OptimConfig(momentum_shift=3),
    "niti_momentum": OptimConfig(rule="niti", momentum_shift=2),
    "pseudo": OptimConfig(rounding=Rounding.PSEUDO_STOCHASTIC),
    "no_rescale_big_lr": OptimConfig(lr=8.0, weight_rescale=False),
    "big_lr": OptimConfig(lr=8.0),
    "big_lr_momentum": OptimConfig(lr=8.0, momentum_shift=1),
}


@pytest.mark.parametrize("update", ["full", "sparse:fc2,fc1[0:8]"])
@pytest.mark.parametrize("name", list(OPTIMS))
def test_bit_identical_optimiser_variants(name, update):
    compare_runs(make_mlp(), update, 2, steps=6, optim=OPTIMS[name], grad_tile_bytes=128)


@pytest.mark.parametrize("config", [QuantConfig(weight_bits=16), QuantConfig(scale_mode="pow2"),
                                    QuantConfig(scale_mode="pow2", weight_bits=16, upscale_init=False)])
@pytest.mark.parametrize("update", ["full", "last:1", "bias"])
def test_bit_identical_numerics_variants(config, update):
    compare_runs(make_mlp(config=config), update, 3, steps=5, optim=OptimConfig(lr=2.0), grad_tile_bytes=128)


def test_weight_rescale_happens_in_tiled_updates():
    """The large learning rate makes the weights outgrow int8: the rescale pass of the tiled update
    (and the recomputation of uncommitted tiles) is exercised, and still bit-identical."""
    _, _, program, scales = compare_runs(make_mlp(), "full", 2, steps=6, optim=OptimConfig(lr=8.0),
                                         grad_tile_bytes=64)
    assert any(s.op == "fused_weight_update" and s.attrs["tiles"] > 1 for s in program.steps)
    assert scales[0]["fc1.weight"] != scales[-1]["fc1.weight"]


def test_mse_and_image_inputs():
    model = make_mlp(widths=(12, 10, 4), input_shape=(3, 4), loss="mse")
    compare_runs(model, "full", 2, steps=5)
    compare_runs(model, "bias", 1, steps=5)


def test_no_bias_model():
    compare_runs(make_mlp(bias=False), "full", 2, steps=4)
    compare_runs(make_mlp(bias=False), "last:2", 2, steps=4)


def test_epoch_schedule_is_honoured():
    optim = OptimConfig(lr=0.5, lr_schedule=((1, 0.125),), rule="niti", mu_schedule=((1, 2),))
    compare_runs(make_mlp(), "full", 2, steps=3, optim=optim, epoch=1)


def test_naive_plan_gives_the_same_bits():
    compare_runs(make_mlp(), "full", 2, steps=3, planner="naive")


def test_persistent_executor_over_many_steps():
    """One arena for the whole run (parameters stay in SRAM between steps), 30 steps."""
    import copy

    from tintin.compile import apply_update_selection
    from tintin.optim import IntegerSGD
    from tintin.train.step import train_step

    model = make_mlp()
    ref = copy.deepcopy(model)
    optim = OptimConfig(momentum_shift=2)
    program = compile_program(model, "last:2", batch_size=2, optim=optim, grad_tile_bytes=96)
    apply_update_selection(ref, "last:2")
    ex = ProgramExecutor(program)
    ex.load(model)
    opt = IntegerSGD(ref.parameters(), optim, ref.config.scale_mode)
    c1 = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(7))
    c2 = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(7))
    rng = np.random.default_rng(0)
    for _ in range(30):
        x, y = random_batch(rng, model, 2)
        assert train_step(ref, opt, x, y, c1).loss == ex.step(x, y, c2).loss
    ex.store(model)
    for a, b in zip(ref.parameters(), model.parameters()):
        assert np.array_equal(a.value.m, b.value.m) and a.value.scale == b.value.scale


def _corrupt(plan: MemoryPlan, a: str, b: str) -> MemoryPlan:
    offsets = dict(plan.offsets)
    offsets[a] = offsets[b]
    return MemoryPlan(plan.planner, plan.alignment, plan.arena_bytes, offsets, plan.requests, plan.flash_offsets,
                      plan.flash_constant_bytes, plan.lower_bound_bytes)


def test_a_wrong_plan_corrupts_the_result():
    """Put a saved activation on top of a buffer that is live at the same time: the arena really is
    where the data lives, so the step is no longer bit-identical (or fails outright)."""
    import copy

    model = make_mlp()
    program = compile_program(model, "full", batch_size=2)
    plan = plan_memory(program)
    x, y = random_batch(np.random.default_rng(0), model, 2)
    good = copy.deepcopy(model)
    ctx = lambda: Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(0))  # noqa: E731
    r_good = run_program(program, good, x, y, ctx(), plan=plan)
    bad = copy.deepcopy(model)
    saved = program.root("relu1.out")
    wrong = _corrupt(plan, saved, "fc2.acc")
    try:
        r_bad = run_program(program, bad, x, y, ctx(), plan=wrong)
    except ExecutionError:
        return
    differs = r_bad.loss != r_good.loss or any(
        not np.array_equal(p.value.m, q.value.m) for p, q in zip(good.parameters(), bad.parameters()))
    assert differs


def test_flash_parameters_are_read_only():
    model = make_mlp()
    program = compile_program(model, "bias", batch_size=1)
    ex = ProgramExecutor(program)
    ex.load(model)
    with pytest.raises(ValueError):
        ex.view("fc1.weight")[0, 0] = 1


def test_bad_inputs_are_reported():
    model = make_mlp()
    program = compile_program(model, "full", batch_size=2)
    ctx = Context(mode=model.config.scale_mode, training=True)
    x, y = random_batch(np.random.default_rng(0), model, 3)
    with pytest.raises(ExecutionError, match="batches of shape"):
        run_program(program, model, x, y, ctx)
    with pytest.raises(ExecutionError, match="class indices"):
        run_program(program, model, x[:2], np.array([0, 99]), ctx)
    with pytest.raises(ExecutionError, match="parameters"):
        run_program(program, make_mlp(widths=(16, 8, 5)), x[:2], y[:2], ctx)
