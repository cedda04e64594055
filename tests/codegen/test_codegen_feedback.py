"""Generated programs with error feedback (a packed L-bit plane per fed-back int8 weight): built for
the host (and emulated Cortex-M cores) they train bit for bit as the simulator, remainders included,
for full and sparse updates, batch 1 and larger, L in {2, 4, 8}, next to layers that keep their fast
(fused, tiled) updates, fed-back gradients tiled above grad_tile_bytes; the planes are parameter-table entries, start from the model's remainders
and are part of the checkpointed state."""

import numpy as np
import pytest

from codegen_helpers import digits, order_for, require, small_cnn, random_data
from tintin.codegen import compile_for_codegen, generate_project
from tintin.codegen.checkpoint import state_regions
from tintin.codegen.model_c import ROLE_FEEDBACK
from tintin.compile import CompileOptions
from tintin.nn import build_model
from tintin.optim import OptimConfig
from tintin.targets import run_on_target, select_samples


def mlp(ds, hidden=(24, 16), seed=2):
    return build_model("mlp", ds.sample_shape, ds.num_classes, seed=seed, input_exponent=ds.input_exponent,
                       hidden=hidden)


def run(model, ds, target, tmp_path, steps, batch, update="full", optim=None, options=None, seed=0):
    x, y, o = select_samples(ds.x_train, ds.y_train, order_for(len(ds.x_train), steps, batch, seed), steps, batch)
    return run_on_target(model, target, x_samples=x, y_samples=y, order=o, steps=steps, batch_size=batch,
                         update=update, work_dir=tmp_path, optim=optim, options=options,
                         eval_x=ds.x_test[:12], eval_y=ds.y_test[:12], seed=seed, timeout_s=300)


@pytest.mark.parametrize("update,batch,bits,layers,options", [
    ("full", 1, 2, ("*",), None),
    ("full", 4, 2, ("*",), None),
    ("full", 3, 4, ("fc1",), None),  # fc2, fc3 keep their fast updates
    ("full", 1, 8, ("fc2",), CompileOptions(grad_tile_bytes=256)),  # fc1 stays tiled and fused
    ("sparse:fc1[0:5],fc2", 2, 2, ("*",), None),
    ("last:2", 1, 4, ("*",), None),
])
def test_fed_back_mlp_trains_bit_exactly_on_the_host(tmp_path, update, batch, bits, layers, options):
    require("host")
    ds = digits()
    model = mlp(ds)
    optim = OptimConfig(lr=1.0, error_feedback=layers, feedback_bits=bits, lr_schedule=((1, 0.5),))
    r = run(model, ds, "host", tmp_path, 40, batch, update, optim, options)
    assert r.bit_exact, r.mismatches


def test_a_cnn_with_fed_back_convolutions_on_the_host(tmp_path):
    require("host")
    model = small_cnn(seed=3)
    x, y = random_data(model, 16, seed=3)
    r = run_on_target(model, "host", x_samples=x, y_samples=y, order=order_for(16, 12, 2, 3), steps=12, batch_size=2,
                      optim=OptimConfig(lr=2.0, error_feedback=("*",), feedback_bits=2), work_dir=tmp_path,
                      eval_x=x[:3], seed=3)
    assert r.bit_exact, r.mismatches


def test_the_planes_are_table_entries_initialised_from_the_model_and_checkpointed(tmp_path):
    ds = digits()
    model = mlp(ds)
    w = model.parameters()[0]
    w.remainder = np.random.default_rng(0).integers(-2, 2, size=w.value.m.shape).astype(np.int8)
    w.feedback_bits = 2
    optim = OptimConfig(error_feedback=("*",), feedback_bits=2)
    program, plan, evalp = compile_for_codegen(model, "full", 1, optim)
    project = generate_project(model, tmp_path / "p", program=program, plan=plan, eval_program=evalp,
                               checkpoint=True, example=False)
    entries = {e.name: e for e in project.model.params}
    plane = entries["fc1.weight.remainder"]
    assert plane.role == ROLE_FEEDBACK and plane.dtype == "uint8" and plane.count == w.value.m.size * 2 // 8
    saved = [r.name for r in state_regions(project.model.params, str)]
    assert {"fc1.weight.remainder", "fc2.weight.remainder", "fc3.weight.remainder"} <= set(saved)
    params_c = (project.out_dir / "tt_model_params.c").read_text()
    assert "fc1.weight.remainder: initial error-feedback plane" in params_c
    assert "fc2.weight.remainder: initial" not in params_c  # zeros: tt_init clears the arena
    c = (project.out_dir / "tt_model.c").read_text()
    # fc1, fc2: gradients above grad_tile_bytes (1024) take the tiled update; fc3's is materialised
    assert c.count("tt_sgd_update_tiled_feedback_s8(") == 2 and c.count("tt_sgd_update_weight_feedback_s8(") == 1
    assert "tt_sgd_update_weight_skip0_s8" not in c and "tt_sgd_update_weight_outer_s8" not in c


def test_a_model_with_remainders_trains_on_from_them(tmp_path):
    require("host")
    ds = digits()
    model = mlp(ds, hidden=(16,))
    for p in model.parameters():
        if p.kind == "weight":
            p.remainder = np.random.default_rng(1).integers(-8, 8, size=p.value.m.shape).astype(np.int8)
            p.feedback_bits = 4
    r = run(model, ds, "host", tmp_path, 20, 2, optim=OptimConfig(lr=0.5, error_feedback=("*",), feedback_bits=4))
    assert r.bit_exact, r.mismatches


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m0", "cortex-m4"])
def test_fed_back_mlp_on_cortex_m(tmp_path, target):
    require(target)
    ds = digits()
    model = mlp(ds, hidden=(16,))
    r = run(model, ds, target, tmp_path, 40, 1, optim=OptimConfig(lr=0.5, error_feedback=("*",), feedback_bits=2))
    assert r.bit_exact, r.mismatches
    assert r.softfloat_symbols == []
    assert r.arena_bytes == r.planned_arena_bytes


@pytest.mark.emulator
def test_fed_back_tiny_mlp_on_the_atmega328p(tmp_path):
    """The AVR build: the fed-back layers leave the fused outer update for the general tiled loop."""
    from codegen_helpers import pooled_digits, tiny_mlp

    require("atmega328p")
    ds = digits()
    xtr, xte = pooled_digits(ds)
    model = tiny_mlp(ds.input_exponent)
    order = np.concatenate([np.random.default_rng(0).permutation(50)] * 2)
    r = run_on_target(model, "atmega328p", x_samples=xtr[:50], y_samples=ds.y_train[:50], order=order, steps=60,
                      work_dir=tmp_path, optim=OptimConfig(lr=0.25, error_feedback=("*",), feedback_bits=2),
                      eval_x=xte[:10], opt="-Os", timeout_s=180)
    assert r.bit_exact, r.mismatches
    assert r.softfloat_symbols == []
    assert r.bss_bytes + r.data_bytes < 2048
