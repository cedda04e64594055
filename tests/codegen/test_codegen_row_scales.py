"""Generated programs of models with per-row weight scales: built for the host (and an emulated
Cortex-M0) they train bit for bit as the simulator, row exponents included, for every update
selection (full, last layers with frozen row-scaled layers in flash, sparse rows), tiled and
materialised gradients, and accumulators recomputed instead of buffered, for MLPs and CNNs
(per-output-channel exponents of convolutions, depthwise ones included); the exponents are part
of the parameter table and of the checkpointed state."""

import numpy as np
import pytest

from codegen_helpers import digits, order_for, random_data, require, small_cnn
from tintin.codegen import compile_for_codegen, generate_project
from tintin.codegen.checkpoint import state_regions
from tintin.codegen.model_c import ROLE_ROW_EXP, ROLE_TRAINED
from tintin.compile import CompileOptions
from tintin.nn import QuantConfig, build_model
from tintin.optim import OptimConfig
from tintin.targets import run_on_target, select_samples


def rowed_mlp(ds, hidden=(24, 16), seed=2, **quant):
    return build_model("mlp", ds.sample_shape, ds.num_classes, QuantConfig(row_scales=True, **quant), seed=seed,
                       input_exponent=ds.input_exponent, hidden=hidden)


def run(model, ds, target, tmp_path, steps, batch, update="full", optim=None, options=None, seed=0):
    x, y, o = select_samples(ds.x_train, ds.y_train, order_for(len(ds.x_train), steps, batch, seed), steps, batch)
    return run_on_target(model, target, x_samples=x, y_samples=y, order=o, steps=steps, batch_size=batch,
                         update=update, work_dir=tmp_path, optim=optim or OptimConfig(lr=0.5), options=options,
                         eval_x=ds.x_test[:12], eval_y=ds.y_test[:12], seed=seed, timeout_s=300)


@pytest.mark.parametrize("update,batch,options,optim", [
    ("full", 4, None, OptimConfig(lr=2.0)),
    ("full", 3, CompileOptions(grad_tile_bytes=None), OptimConfig(lr=0.5, rounding="pseudo_stochastic")),
    ("full", 2, CompileOptions(accumulator_budget=0), OptimConfig(lr=1.0, rounding="nearest")),
    ("last:1", 4, None, OptimConfig(lr=0.5)),
    ("sparse:fc1[0:5],fc2", 5, None, OptimConfig(lr=4.0)),
    ("sparse:fc1[2:9]", 2, CompileOptions(grad_tile_bytes=None), OptimConfig(lr=4.0)),
])
def test_row_scaled_mlp_trains_bit_exactly_on_the_host(tmp_path, update, batch, options, optim):
    require("host")
    ds = digits()
    model = rowed_mlp(ds)
    r = run(model, ds, "host", tmp_path, 40, batch, update, optim, options)
    assert r.bit_exact, r.mismatches


def test_weight_view_layers_next_to_row_scaled_ones(tmp_path):
    """int16 master weights (wide layers, one scale per tensor) in the same program as row-scaled int8
    ones, in pow2 mode."""
    require("host")
    ds = digits()
    model = rowed_mlp(ds, hidden=(20, 12), wide_layers=("fc2", "fc3"), scale_mode="pow2")
    assert [p.row_exp is not None for p in model.parameters() if p.kind == "weight"] == [True, False, False]
    r = run(model, ds, "host", tmp_path, 30, 4, optim=OptimConfig(lr=0.5, lr_schedule=((1, 0.25),)))
    assert r.bit_exact, r.mismatches


def test_the_row_exponents_are_table_entries_and_checkpointed_state(tmp_path):
    ds = digits()
    model = rowed_mlp(ds)
    program, plan, evalp = compile_for_codegen(model, "last:1", 2)
    project = generate_project(model, tmp_path / "p", program=program, plan=plan, eval_program=evalp,
                               checkpoint=True, example=False)
    entries = {e.name: e for e in project.model.params}
    assert entries["fc1.weight.row_exp"].role == ROLE_ROW_EXP and entries["fc1.weight.row_exp"].shape == (24,)
    assert entries["fc3.weight"].role == ROLE_TRAINED and "fc3.weight.row_exp" in entries
    saved = [r.name for r in state_regions(project.model.params, str)]
    assert "fc3.weight.row_exp" in saved and "fc1.weight.row_exp" not in saved  # frozen: constant in flash
    c = (project.out_dir / "tt_model.c").read_text()
    assert "tt_sgd_update_weight_rows_scaled_select_s8" in c and "tt_linear_forward_rows_s8" in c
    full = generate_project(model, tmp_path / "full", batch_size=2, example=False)
    assert "tt_sgd_update_tiled_rows_scaled_s8" in (full.out_dir / "tt_model.c").read_text()  # fc1: 64 x 24 rows
    params_c = (project.out_dir / "tt_model_params.c").read_text()
    assert "fc1.weight.row_exp: frozen row exponents" in params_c


@pytest.mark.emulator
def test_row_scaled_mlp_on_cortex_m0(tmp_path):
    require("cortex-m0")
    ds = digits()
    model = rowed_mlp(ds, hidden=(16,))
    r = run(model, ds, "cortex-m0", tmp_path, 60, 2, optim=OptimConfig(lr=1.0))
    assert r.bit_exact, r.mismatches
    assert r.softfloat_symbols == []
    assert r.arena_bytes == r.planned_arena_bytes


@pytest.mark.parametrize("update,batch,options", [
    ("full", 3, None),
    ("full", 2, CompileOptions(accumulator_budget=0, grad_tile_bytes=None)),
    ("sparse:conv2[1:3],fc", 2, None),
    ("last:2", 1, None),
])
def test_row_scaled_cnn_trains_bit_exactly_on_the_host(tmp_path, update, batch, options):
    require("host")
    model = small_cnn(seed=3, config=QuantConfig(row_scales=True))
    x, y = random_data(model, 16, seed=3)
    r = run_on_target(model, "host", x_samples=x, y_samples=y, order=order_for(16, 12, batch, 3), steps=12,
                      batch_size=batch, update=update, optim=OptimConfig(lr=2.0), options=options,
                      work_dir=tmp_path, eval_x=x[:3], seed=3)
    assert r.bit_exact, r.mismatches


def test_row_scaled_depthwise_cnn_trains_bit_exactly_on_the_host(tmp_path):
    require("host")
    from tintin.data import load

    ds = load("mnist5k")
    model = build_model("dscnn", ds.sample_shape, ds.num_classes, QuantConfig(row_scales=True), seed=0,
                        input_exponent=ds.input_exponent)
    assert any(p.row_exp is not None and p.value.m.shape[1] == 1 for p in model.parameters())  # a depthwise one
    r = run(model, ds, "host", tmp_path, 6, 2, optim=OptimConfig(lr=1.0))
    assert r.bit_exact, r.mismatches


@pytest.mark.emulator
def test_row_scaled_cnn_on_cortex_m0(tmp_path):
    require("cortex-m0")
    model = small_cnn(seed=5, config=QuantConfig(row_scales=True))
    x, y = random_data(model, 16, seed=5)
    r = run_on_target(model, "cortex-m0", x_samples=x, y_samples=y, order=order_for(16, 20, 2, 5), steps=20,
                      batch_size=2, optim=OptimConfig(lr=2.0), work_dir=tmp_path, eval_x=x[:3], seed=5,
                      timeout_s=300)
    assert r.bit_exact, r.mismatches


def test_tintin_run_row_scales(tmp_path, capsys):
    """``tintin run ZOO --row-scales``: a row-scaled zoo model trained on the target, bit-exact; a
    model file keeps its own scales (one error line)."""
    import json

    from tintin.cli import main

    require("host")
    code = main(["run", "mlp", "--dataset", "digits", "--target", "host", "--row-scales", "--steps", "8",
                 "--batch-size", "2", "--eval", "4", "--json", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["bit_exact"] is True
    assert "tt_linear_forward_rows_s8" in (tmp_path / "run" / "project" / "tt_model.c").read_text()
    ds = digits()
    from tintin.io import save_model

    save_model(rowed_mlp(ds), tmp_path / "m.tintin")
    code = main(["run", str(tmp_path / "m.tintin"), "--dataset", "digits", "--target", "host", "--row-scales"])
    _, err = capsys.readouterr()
    assert code != 0 and err.strip().startswith("error:") and "--row-scales" in err and len(err.strip().splitlines()) == 1


def test_avr_memory_check_counts_frozen_row_exponents(tmp_path):
    """On AVR const data sits in RAM: the exponents of frozen row-scaled weights count with them."""
    from tintin.targets import DoesNotFitError, get_target
    from tintin.targets.ondevice import check_fit

    ds = digits()
    model = rowed_mlp(ds, hidden=(24, 16))
    project = generate_project(model, tmp_path / "p", update="last:1", example=False)
    flash = sum(project.program.buffers[e.name].nbytes for e in project.model.params
                if project.program.buffers[e.name].memory.value == "flash")
    exps = project.program.buffers["fc1.weight.row_exp"].nbytes + project.program.buffers["fc2.weight.row_exp"].nbytes
    assert exps == 40 and project.program.buffers["fc1.weight.row_exp"].memory.value == "flash"
    avr = get_target("atmega328p")
    need = project.plan.arena_bytes + flash + 256 + project.model.input_size
    check_fit(project, avr, ram_bytes=need)
    with pytest.raises(DoesNotFitError, match=f"frozen parameters {flash:,} B"):
        check_fit(project, avr, ram_bytes=need - 1)


def test_power_cut_sweep_restores_row_exponents(capsys):
    """Device checkpoints hold the trained row exponents: every cut restores and resumes bit-exactly."""
    import json

    from tintin.cli import main

    require("host")
    code = main(["run", "mlp", "-d", "digits", "--target", "host", "--power-cuts", "2", "--row-scales", "--json"])
    out, err = capsys.readouterr()
    res = json.loads(out)
    assert code == 0, err
    assert res["resume_bit_exact"] and res["final_bit_exact"] and res["corrupt_restores"] == 0
