"""Compiled training programs of models with per-row weight scales: the planner holds one byte per
row exponent, the executed program equals train_step bit for bit (materialised and row-tiled
updates, sparse rows), and the places that cannot run them refuse with one line."""

import numpy as np
import pytest

from tintin.compile import CompileError, compile_program, plan_memory
from tintin.compile.executor import ProgramExecutor
from tintin.data import load
from tintin.nn import Context, QuantConfig, build_model
from tintin.numerics import RoundingStream
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import train_step


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def mlp(ds, rows=True, hidden=(32, 16), seed=1):
    return build_model("mlp", ds.sample_shape, ds.num_classes, QuantConfig(row_scales=rows), seed=seed,
                       input_exponent=ds.input_exponent, hidden=hidden)


def test_the_plan_holds_one_byte_per_row_exponent():
    shape, hidden = (1, 28, 28), (200, 100, 50)
    plain = build_model("mlp", shape, 10, QuantConfig(), seed=0, hidden=hidden)
    rowed = build_model("mlp", shape, 10, QuantConfig(row_scales=True), seed=0, hidden=hidden)
    program = compile_program(rowed, "full", 1)
    exps = {n: b for n, b in program.buffers.items() if n.endswith(".row_exp")}
    assert {n: b.shape for n, b in exps.items()} == {"fc1.weight.row_exp": (200,), "fc2.weight.row_exp": (100,),
                                                   "fc3.weight.row_exp": (50,), "fc4.weight.row_exp": (10,)}
    assert all(b.persistent and b.dtype == "int8" for b in exps.values())
    extra = plan_memory(program).arena_bytes - plan_memory(compile_program(plain, "full", 1)).arena_bytes
    assert 360 <= extra < 360 + 8 * len(exps)  # the exponents, plus at most alignment
    # frozen weights keep their exponents in flash
    frozen = compile_program(rowed, "last:1", 1)
    assert frozen.buffers["fc1.weight.row_exp"].memory.value == "flash"
    assert frozen.buffers["fc4.weight.row_exp"].memory.value == "sram"


@pytest.mark.parametrize("update,batch,tile", [("full", 8, None), ("full", 5, 512), ("last:2", 4, 256),
                                               ("sparse:fc1[0:7]", 3, None), ("sparse:fc1[2:20],fc2", 6, 300)])
def test_executed_program_equals_train_step(digits, update, batch, tile):
    a, b = mlp(digits), mlp(digits)
    cfg = OptimConfig(lr=1.0)
    overrides = {} if tile is None else {"grad_tile_bytes": tile}
    program = compile_program(b, update, batch, optim=cfg, **overrides)
    ops = {s.op for s in program.steps}
    if tile is not None:
        assert "fused_weight_update" in ops
    from tintin.compile.selection import parse_update

    sel = parse_update(update).resolve(a)
    for p in a.parameters():
        p.trainable = p.name in sel
        p.trainable_rows = None if sel.get(p.name) is None else np.asarray(sel[p.name])
    ex = ProgramExecutor(program)
    ex.load(b)
    opt = IntegerSGD(a.parameters(), cfg, a.config.scale_mode)
    ca = Context(mode=a.config.scale_mode, stream=RoundingStream(5))
    cb = Context(mode=b.config.scale_mode, stream=RoundingStream(5))
    order = np.random.default_rng(2).permutation(len(digits.x_train))
    for i in range(25):
        idx = order[i * batch:(i + 1) * batch]
        ra = train_step(a, opt, digits.x_train[idx], digits.y_train[idx], ca)
        rb = ex.step(digits.x_train[idx], digits.y_train[idx], cb)
        assert (ra.loss, ra.correct) == (rb.loss, rb.correct)
    ex.store(b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.value.scale == q.value.scale and np.array_equal(p.value.m, q.value.m), p.name
        if p.row_exp is not None:
            assert np.array_equal(p.row_exp, q.row_exp), p.name


def test_what_refuses_row_scales(digits):
    model = mlp(digits)
    with pytest.raises(CompileError, match="aligned rule without momentum"):
        compile_program(model, "full", 1, optim=OptimConfig(momentum_shift=2))
    lenet = build_model("lenet5", (1, 28, 28), 10, QuantConfig(row_scales=True), seed=0)
    with pytest.raises(CompileError, match="Linear layers only"):
        compile_program(lenet, "full", 1)
    from tintin.codegen.model_c import render_model_sources

    program = compile_program(model, "full", 1)  # generated programs keep them (tests/codegen/test_codegen_row_scales.py)
    assert "tt_linear_forward_rows_s8" in render_model_sources(model, program, plan_memory(program)).files["tt_model.c"]
