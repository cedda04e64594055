"""Compiled training programs of models with per-row weight scales: the planner holds one byte per
row exponent, the executed program equals train_step bit for bit (materialised and row-tiled
updates, sparse rows; MLPs and LeNet-5), and the places that cannot run them refuse with one line."""

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


def lenet(ds, rows=True, seed=1):
    return build_model("lenet5", ds.sample_shape, ds.num_classes, QuantConfig(row_scales=rows), seed=seed,
                       input_exponent=ds.input_exponent)


@pytest.mark.parametrize("model,update,batch,tile", [
    ("mlp", "full", 8, None), ("mlp", "full", 5, 512), ("mlp", "last:2", 4, 256), ("mlp", "sparse:fc1[0:7]", 3, None),
    ("mlp", "sparse:fc1[2:20],fc2", 6, 300), ("lenet", "full", 4, None), ("lenet", "full", 3, 256),
    ("lenet", "sparse:conv1[0:3],conv2", 2, None)])
def test_executed_program_equals_train_step(digits, model, update, batch, tile):
    if model == "lenet":
        digits = load("mnist5k")
    build = {"mlp": mlp, "lenet": lenet}[model]
    a, b = build(digits), build(digits)
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
    from tintin.nn import Sequential
    from tintin.nn.layers import Flatten, Linear
    from tintin.nn.scaling_layers import ChannelScale

    rng = np.random.default_rng(0)
    scaled = ChannelScale(1, config=QuantConfig(), rng=rng, name="cs")
    scaled.weight.row_exp, scaled.weight.row_limit = np.zeros(1, np.int8), 8  # exponents on a layer without rows
    blocked = Sequential([scaled, Flatten("flat"), Linear(64, 10, config=QuantConfig(), rng=rng, name="fc")],
                         (1, 8, 8), QuantConfig(), name="blocked")
    with pytest.raises(CompileError, match="Linear and convolution layers only"):
        compile_program(blocked, "full", 1)
    from tintin.codegen.model_c import render_model_sources

    program = compile_program(model, "full", 1)  # generated programs keep them (tests/codegen/test_codegen_row_scales.py)
    assert "tt_linear_forward_rows_s8" in render_model_sources(model, program, plan_memory(program)).files["tt_model.c"]
