"""The training-program IR: schedule, lifetimes, kinds, pruning, in-place decisions, and every plan
replayed byte by byte on random models."""

from __future__ import annotations

import numpy as np
import pytest
from compile_helpers import compare_runs, make_mlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.compile import BufferKind, CompileError, Memory, Phase, compile_program, plan_memory
from tintin.nn import QuantConfig, Sequential
from tintin.nn.layers import Flatten, Linear, ReLU
from tintin.optim import OptimConfig


def replay(program, plan) -> None:
    """Independent check of a plan: walk the schedule with a byte-ownership map of the arena and
    assert that no byte is owned by two storage roots live at the same step, that every buffer a
    step reads is live then, and that aliases sit at their root's offset."""
    groups = program.storage_groups()
    spans = {root: program.group_lifetime(root) for root in groups}
    size = {root: max(program.buffers[m].nbytes for m in members) for root, members in groups.items()}
    for s in program.steps:
        owner = np.full(plan.arena_bytes, -1, dtype=np.int64)
        for k, root in enumerate(groups):
            first, last = spans[root]
            if first <= s.index <= last and size[root]:
                off = plan.offsets[root]
                region = owner[off:off + size[root]]
                assert off + size[root] <= plan.arena_bytes
                assert (region == -1).all(), f"step {s.index}: {root} overlaps a live buffer"
                region[...] = k
        for name in s.inputs + s.outputs + s.workspace + s.mutates:
            b = program.buffers[name]
            if b.memory is Memory.FLASH:
                assert name not in s.outputs + s.mutates + s.workspace, f"step {s.index} writes flash {name}"
                continue
            root = program.root(name)
            first, last = spans[root]
            assert first <= s.index <= last, f"step {s.index} uses {name} outside its lifetime"
            assert plan.offsets[name] == plan.offsets[root]


def check_ir(program) -> None:
    produced = set()
    external = {n for n, b in program.buffers.items() if b.producer is None}
    for s in program.steps:
        for name in s.inputs + s.mutates:
            assert name in produced or name in external, f"step {s.index} reads {name} before it is written"
        produced |= set(s.outputs) | set(s.workspace)
    for name, b in program.buffers.items():
        if b.kind is BufferKind.PARAMETER:
            assert (b.memory is Memory.SRAM) == (name in program.trained)
        if b.kind is BufferKind.GRADIENT and b.producer is not None and not b.name.endswith("grad_tile"):
            assert b.last_consumer == b.producer + 1, f"{name} does not die at its update"
            assert program.steps[b.last_consumer].phase is Phase.UPDATE
        if b.kind is BufferKind.SAVED:
            assert any(program.steps[i].phase in (Phase.BACKWARD, Phase.UPDATE) and name in program.steps[i].inputs
                       for i in range(len(program.steps)))


UPDATES = ["full", "bias", "none", "last:1", "last:2", "sparse:fc1[0:1]"]


@st.composite
def mlp_cases(draw):
    depth = draw(st.integers(1, 4))
    widths = [draw(st.integers(1, 20)) for _ in range(depth + 1)]
    widths[-1] = max(widths[-1], 2)
    update = draw(st.sampled_from(UPDATES[:4] + (["last:2"] if depth >= 2 else []) + ["sparse:fc1[0:1]"]))
    return (tuple(widths), update, draw(st.integers(1, 4)), draw(st.sampled_from([None, 4, 64, 512])),
            draw(st.booleans()), draw(st.sampled_from(["pow2", "compound"])), draw(st.sampled_from([8, 16])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mlp_cases())
def test_random_mlps_plan_and_run(case):
    widths, update, batch, tile, two_d, mode, bits = case
    input_shape = (1, widths[0]) if two_d else (widths[0],)
    model = make_mlp(widths=widths, input_shape=input_shape, config=QuantConfig(scale_mode=mode, weight_bits=bits))
    program = compile_program(model, update, batch, grad_tile_bytes=tile)
    check_ir(program)
    for planner in ("naive", "greedy"):
        plan = plan_memory(program, planner)
        plan.check(program)
        replay(program, plan)
    greedy, naive = plan_memory(program), plan_memory(program, "naive")
    assert greedy.lower_bound_bytes <= greedy.arena_bytes <= naive.arena_bytes
    compare_runs(model, update, batch, steps=2, grad_tile_bytes=tile, optim=OptimConfig(lr=2.0))


@st.composite
def cnn_cases(draw):
    cin = draw(st.integers(1, 3))
    c1 = draw(st.integers(1, 5))
    k = draw(st.sampled_from([1, 3]))
    size = draw(st.integers(4, 9))
    groups = draw(st.sampled_from([1, c1])) if cin == c1 else 1
    update = draw(st.sampled_from(["full", "bias", "last:1", "sparse:conv[0:1]"]))
    return cin, c1, k, size, groups, update, draw(st.integers(1, 3))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cnn_cases())
def test_random_small_cnns_plan_and_run(case):
    pytest.importorskip("tintin.nn.conv_layers")
    from tintin.nn.conv_layers import Conv2d
    from tintin.nn.pool_layers import MaxPool2d

    cin, c1, k, size, groups, update, batch = case
    config = QuantConfig()
    rng = np.random.default_rng(0)
    layers = [Conv2d(cin, c1, k, padding=k // 2, groups=groups, config=config, rng=rng, name="conv"), ReLU("relu"),
              MaxPool2d(2, name="pool"), Flatten("flat"),
              Linear(c1 * (size // 2) ** 2, 3, config=config, rng=rng, name="fc")]
    model = Sequential(layers, (cin, size, size), config, name="smallcnn")
    program = compile_program(model, update, batch, grad_tile_bytes=32)
    check_ir(program)
    for planner in ("naive", "greedy"):
        replay(program, plan_memory(program, planner))
    compare_runs(model, update, batch, steps=2, grad_tile_bytes=32)


def test_bias_only_keeps_masks_not_activations():
    model = make_mlp(widths=(16, 24, 12, 5))
    program = compile_program(model, "bias", batch_size=2)
    saved = {n for n, b in program.buffers.items() if b.kind is BufferKind.SAVED}
    # the bias gradients need only errors; the errors still flow back through fc3 and fc2 weights
    # (read from flash) and through the ReLUs, which need only the sign of their outputs
    assert saved == {"relu1.mask", "relu2.mask"}
    assert program.buffers["relu1.mask"].nbytes == (2 * 24 + 7) // 8
    assert "input" not in {n for s in program.steps if s.phase is not Phase.FORWARD for n in s.inputs}
    assert {s.op for s in program.steps if s.phase is Phase.BACKWARD} == {
        "linear_backward_input_s8", "relu_backward_s8", "linear_backward_bias_s32"}
    assert [b.memory for n, b in program.buffers.items() if n.endswith(".weight")] == [Memory.FLASH] * 3
    assert not any(s.op == "linear_backward_input_s8" and s.layer == "fc1" for s in program.steps)


def test_last_layer_only_needs_no_backward_through_the_rest():
    program = compile_program(make_mlp(), "last:1", batch_size=1)
    backward = [s for s in program.steps if s.phase in (Phase.BACKWARD, Phase.UPDATE)]
    assert {s.layer for s in backward} == {"fc3"}
    assert not any(s.op == "linear_backward_input_s8" for s in backward)
    assert program.buffers["relu2.out"].kind is BufferKind.SAVED  # fc3's input, for its weight gradient
    assert "relu1.mask" not in program.buffers and "relu2.mask" not in program.buffers


def test_sparse_rows_shrink_gradients_and_momentum():
    program = compile_program(make_mlp(), "sparse:fc2[3:7]", batch_size=1, optim=OptimConfig(momentum_shift=2),
                              grad_tile_bytes=None)
    assert program.buffers["fc2.weight.grad"].shape == (4, 24)
    assert program.buffers["fc2.bias.grad"].shape == (4,)
    assert program.buffers["fc2.weight.momentum"].shape == (4, 24)
    assert program.buffers["fc2.weight"].memory is Memory.SRAM
    assert program.buffers["fc1.weight"].memory is Memory.FLASH


def test_in_place_and_views():
    model = make_mlp(widths=(12, 10, 4), input_shape=(3, 4))
    program = compile_program(model, "full", batch_size=2)
    assert program.buffers["flat.out"].alias_of == "input"
    assert program.buffers["relu1.out"].alias_of == "fc1.out"
    assert program.buffers["relu1.err_in"].alias_of == "fc2.err_in"
    assert program.buffers["loss.err"].alias_of == "fc2.out"
    plain = compile_program(model, "full", batch_size=2, inplace=False)
    assert plain.buffers["relu1.out"].alias_of is None and plain.buffers["flat.out"].alias_of == "input"
    assert plan_memory(plain).arena_bytes >= plan_memory(program).arena_bytes


def test_relu_output_saved_elsewhere_is_not_overwritten():
    """fc1 -> relu1 -> relu2 -> fc2: relu2 runs in place over relu1's output (nothing reads it
    later), and its own output, fc2's saved input, is never overwritten."""
    config = QuantConfig()
    rng = np.random.default_rng(0)
    model = Sequential([Linear(6, 5, config=config, rng=rng, name="fc1"), ReLU("relu1"), ReLU("relu2"),
                        Linear(5, 3, config=config, rng=rng, name="fc2")], (6,), config)
    program = compile_program(model, "full", batch_size=1)
    assert program.buffers["relu2.out"].alias_of == "relu1.out"  # relu1.out is not needed after relu2
    compare_runs(model, "full", 1, steps=3)


def test_replay_catches_a_bad_plan():
    from tintin.compile.planner import MemoryPlan

    program = compile_program(make_mlp(), "full", batch_size=1)
    plan = plan_memory(program)
    zero = {name: 0 for name in plan.offsets}
    bad = MemoryPlan(plan.planner, plan.alignment, plan.arena_bytes, zero, plan.requests, plan.flash_offsets,
                     plan.flash_constant_bytes, plan.lower_bound_bytes)
    with pytest.raises(AssertionError, match="overlaps a live buffer"):
        replay(program, bad)
    with pytest.raises(Exception, match="overlap while both are live"):
        bad.check(program)


def test_gradient_tiles():
    program = compile_program(make_mlp(widths=(16, 24, 12, 5)), "full", batch_size=1, grad_tile_bytes=256)
    fused = {s.layer: s for s in program.steps if s.op == "fused_weight_update"}
    assert set(fused) == {"fc1", "fc2"}  # fc3's gradient (5 x 12 int32 = 240 bytes) is materialised
    assert fused["fc1"].attrs["tile_rows"] == 4 and fused["fc1"].attrs["tiles"] == 6
    assert fused["fc2"].attrs["tile_rows"] == 2 and fused["fc2"].attrs["tiles"] == 6
    assert program.buffers["fc1.weight.grad_tile"].nbytes == 256
    assert program.buffers["fc3.weight.grad"].nbytes == 240
    assert "fc1.weight.grad" not in program.buffers


def test_compile_errors():
    model = make_mlp()
    with pytest.raises(CompileError, match="batch size"):
        compile_program(model, "full", batch_size=0)
    with pytest.raises(CompileError, match="grad_tile_bytes"):
        compile_program(model, "full", grad_tile_bytes=2)
    with pytest.raises(CompileError, match="Sequential"):
        compile_program(object(), "full")

    class Odd(ReLU):
        pass

    from tintin.compile.registry import lowering_for
    assert lowering_for(Odd("x")) is not None  # subclasses use their base class's lowering

    class Unknown:
        name = "u"

        def parameters(self):
            return []

        def output_shape(self, s):
            return s

    seq = Sequential([Unknown()], (4,), QuantConfig())
    with pytest.raises(CompileError, match="no lowering for layer 'u' of type Unknown"):
        compile_program(seq, "none")


def test_program_serialises():
    import json

    program = compile_program(make_mlp(), "sparse:fc1[0:3]", batch_size=2)
    d = json.loads(json.dumps(program.to_dict()))
    assert d["trained"]["fc1.weight"] == [0, 1, 2]
    assert len(d["steps"]) == len(program.steps)
    assert all("bytes" in b for b in d["buffers"])
