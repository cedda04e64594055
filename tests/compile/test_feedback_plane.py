"""Compiled error feedback: one packed L-bit plane per fed-back int8 weight (ceil(count * L / 8)
bytes, in the plan and in `tintin plan --json`), the executed program equals train_step bit for bit
(remainders included), and what it cannot compile is one clear CompileError."""

import json

import numpy as np
import pytest
from compile_helpers import compare_runs, make_mlp
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.cli import main
from tintin.compile import CompileError, compile_program, plan_memory
from tintin.compile.report import feedback_plane_bytes
from tintin.nn import QuantConfig, build_model
from tintin.numerics.bitplane import PlaneError, pack_plane, plane_bytes, unpack_plane
from tintin.optim import OptimConfig

MLP = dict(input_shape=(1, 28, 28), hidden=(200, 100, 50))


@pytest.mark.parametrize("bits, expected", [(2, 39200 + 5000 + 1250 + 125), (4, 2 * 45575), (8, 4 * 45575)])
def test_plane_bytes_of_the_mlp(bits, expected):
    model = build_model("mlp", MLP["input_shape"], 10, seed=0, hidden=MLP["hidden"])
    program = compile_program(model, "full", 1, optim=OptimConfig(error_feedback=("*",), feedback_bits=bits))
    planes = {n: b for n, b in program.buffers.items() if n.endswith(".remainder")}
    assert {n: b.nbytes for n, b in planes.items()} == {
        "fc1.weight.remainder": 784 * 200 * bits // 8, "fc2.weight.remainder": 200 * 100 * bits // 8,
        "fc3.weight.remainder": 100 * 50 * bits // 8, "fc4.weight.remainder": 50 * 10 * bits // 8}
    assert feedback_plane_bytes(program) == expected
    assert all(b.persistent and b.dtype == "uint8" and b.memory.value == "sram" for b in planes.values())
    plan = plan_memory(program)
    assert all(n in plan.offsets for n in planes)


def test_odd_counts_round_up_and_only_named_layers_get_a_plane():
    model = make_mlp((7, 3, 5))  # fc1: 21 weights, fc2: 15
    program = compile_program(model, "full", 1, optim=OptimConfig(error_feedback=("fc2",), feedback_bits=2))
    assert [n for n in program.buffers if n.endswith(".remainder")] == ["fc2.weight.remainder"]
    assert program.buffers["fc2.weight.remainder"].nbytes == 4  # ceil(15 * 2 / 8)
    assert compile_program(model, "full", 1, optim=OptimConfig(error_feedback=("*",), feedback_bits=4)) \
        .buffers["fc1.weight.remainder"].nbytes == 11  # ceil(21 * 4 / 8)
    frozen = compile_program(model, "last:1", 1, optim=OptimConfig(error_feedback=("*",), feedback_bits=2))
    assert [n for n in frozen.buffers if n.endswith(".remainder")] == ["fc2.weight.remainder"]


def test_fed_back_weights_take_the_tiled_update_no_whole_gradient():
    model = make_mlp((64, 48, 10))
    program = compile_program(model, "full", 1, optim=OptimConfig(error_feedback=("fc1",), feedback_bits=2),
                              grad_tile_bytes=256)
    steps = {s.attrs.get("param"): s for s in program.steps if s.phase.value == "update"}
    assert steps["fc1.weight"].op == "fused_weight_update" and steps["fc2.weight"].op == "fused_weight_update"
    assert steps["fc1.weight"].attrs["remainder"] == "fc1.weight.remainder"
    assert "remainder" not in steps["fc2.weight"].attrs
    assert "fc1.weight.grad" not in program.buffers  # the int32 gradient is never whole


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("update, batch, lr", [("full", 1, 2.0), ("full", 3, 24.0), ("sparse:fc1[1:9],fc2", 2, 8.0)])
@pytest.mark.parametrize("rescale", [True, False])
def test_tiled_feedback_program_equals_train_step(bits, update, batch, lr, rescale):
    """Gradient tiles of one or a few rows (grad_tile_bytes=64..160): tiles written as they fit, the
    second pass of a rescale, sparse rows."""
    model = make_mlp((16, 24, 12, 5), seed=5)
    optim = OptimConfig(lr=lr, error_feedback=("*",), feedback_bits=bits, weight_rescale=rescale)
    _, prog, program, scales = compare_runs(model, update, batch, 12, optim, grad_tile_bytes=64 * (1 + bits % 3))
    assert any(s.op == "fused_weight_update" and "remainder" in s.attrs for s in program.steps)
    assert any(p.remainder is not None and p.remainder.any() for p in prog.parameters())


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("update, batch", [("full", 1), ("full", 4), ("sparse:fc1[1:9],fc2", 3)])
def test_executed_program_equals_train_step(bits, update, batch):
    model = make_mlp((16, 24, 12, 5), seed=3)
    ref, prog, program, _ = compare_runs(model, update, batch, 12, OptimConfig(lr=2.0, error_feedback=("*",),
                                                                            feedback_bits=bits))
    assert any(p.remainder is not None and p.remainder.any() for p in prog.parameters())


def test_rescales_stay_bit_exact():
    model = make_mlp((16, 24, 5), seed=4)
    _, _, _, scales = compare_runs(model, "full", 2, 30, OptimConfig(lr=16.0, error_feedback=("*",), feedback_bits=2))
    assert scales[0]["fc1.weight"] != scales[-1]["fc1.weight"]  # the grid rescale ran


@pytest.mark.parametrize("kwargs, quant, match", [
    ({"error_feedback": ("*",), "momentum_shift": 3}, {}, "momentum"),
    ({"error_feedback": ("fc2",)}, {"wide_layers": ("fc2",)}, "int16"),
    ({"error_feedback": ("*",)}, {"row_scales": True}, "per-row"),
])
def test_what_cannot_compile_is_one_clear_error(kwargs, quant, match):
    model = make_mlp((8, 6, 3), config=QuantConfig(**quant))
    with pytest.raises(CompileError, match=match):
        compile_program(model, "full", 1, optim=OptimConfig(**kwargs))


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([2, 4, 8]), st.data())
def test_planes_round_trip(bits, data):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    values = np.asarray(data.draw(st.lists(st.integers(lo, hi), max_size=50)), dtype=np.int8)
    plane = pack_plane(values, bits)
    assert plane.dtype == np.uint8 and plane.size == plane_bytes(values.size, bits)
    assert np.array_equal(unpack_plane(plane, bits, values.size), values)
    if values.size:  # little-endian within the byte: field 0 in the low bits
        assert int(plane[0]) & ((1 << bits) - 1) == int(values[0]) & ((1 << bits) - 1)


def test_plane_errors():
    with pytest.raises(PlaneError, match="2-bit fields"):
        pack_plane(np.array([2], np.int8), 2)
    with pytest.raises(PlaneError, match="2, 4 or 8"):
        plane_bytes(10, 3)


def test_plan_json_counts_the_planes(capsys):
    def plan(*extra):
        assert main(["plan", "mlp", "--json", "--no-buffers", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    plain, fed = plan(), plan("--error-feedback", "*", "--feedback-bits", "2")
    assert plain["feedback_plane_bytes"] == 0
    model = build_model("mlp", (64,), 10, seed=0)
    weights = sum(p.value.m.size for p in model.parameters() if p.kind == "weight")
    assert fed["feedback_plane_bytes"] == sum(-(-p.value.m.size * 2 // 8) for p in model.parameters()
                                              if p.kind == "weight") and weights > 0
    assert fed["peak_sram_bytes"] > plain["peak_sram_bytes"] + fed["feedback_plane_bytes"] - 8
    for args in (["--feedback-bits", "2"], ["--error-feedback", "fc9"], ["--error-feedback", "*", "--feedback-bits", "3"]):
        assert main(["plan", "mlp", *args]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), err


@settings(max_examples=60, deadline=None)
@given(widths=st.lists(st.integers(2, 14), min_size=2, max_size=3), tile=st.integers(8, 200),
       bits=st.sampled_from([2, 4, 8]), lr=st.sampled_from([0.25, 2.0, 16.0, 64.0]), rescale=st.booleans(),
       sparse=st.booleans(), batch=st.integers(1, 3), seed=st.integers(0, 1000))
def test_tiled_feedback_equals_the_simulator_over_random_shapes(widths, tile, bits, lr, rescale, sparse, batch, seed):
    """The compiled tiled update (compile.update._fused_feedback) equals IntegerSGD.update bit for bit:
    random layer widths, gradient tile sizes (one row to the whole tensor), L, learning rates that
    do and do not rescale, sparse rows."""
    model = make_mlp(tuple(widths), seed=seed)
    update = f"sparse:fc1[0:{max(1, widths[1] // 2)}]{',fc2' if len(widths) > 2 else ''}" if sparse else "full"
    optim = OptimConfig(lr=lr, error_feedback=("*",), feedback_bits=bits, weight_rescale=rescale)
    _, _, program, _ = compare_runs(model, update, batch, 3, optim, seed=seed, grad_tile_bytes=tile)
    for s in program.steps:  # a fed-back gradient above the tile budget is never whole
        if "remainder" in s.attrs:
            w = program.buffers[s.attrs["param"]]
            rows = w.shape[0] if s.attrs["rows"] is None else len(s.attrs["rows"])
            assert (s.op == "fused_weight_update") == (4 * rows * int(np.prod(w.shape[1:])) > tile)


@pytest.mark.parametrize("bits", [2, 4])
def test_the_mlp_plan_is_the_int8_plan_plus_the_planes(bits):
    """Fed-back weights are tiled: batch 1, every layer, the 784-200-100-50-10 MLP needs the int8
    program's SRAM plus its planes (not the 857,514 B of whole int32 gradients at L = 2)."""
    model = build_model("mlp", MLP["input_shape"], 10, seed=0, hidden=MLP["hidden"])
    plain = plan_memory(compile_program(model, "full", 1)).arena_bytes
    fed = compile_program(model, "full", 1, optim=OptimConfig(error_feedback=("*",), feedback_bits=bits))
    assert not any(n.endswith("weight.grad") for n in fed.buffers)  # tiles only
    assert plain + feedback_plane_bytes(fed) <= plan_memory(fed).arena_bytes <= plain + feedback_plane_bytes(fed) + 8
