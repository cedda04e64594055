"""Mixed per-layer weight widths (``QuantConfig.wide_layers``) in the generated C: int8 and int16
master weights in one program train bit-exactly against the simulator, on the host and on an
emulated Cortex-M (``emulator`` marked), and the planner counts the int16 masters."""

import pytest

from codegen_helpers import digits, require
from tintin.compile import compile_program, plan_memory
from tintin.nn import QuantConfig, build_model
from tintin.optim import OptimConfig
from tintin.targets import run_model

WIDE = QuantConfig(wide_layers=("fc2", "fc3"))


def _model(ds, config=WIDE):
    return build_model("mlp", ds.sample_shape, ds.num_classes, config, seed=2, input_exponent=ds.input_exponent,
                       hidden=(24, 16))


def test_mixed_widths_train_bit_exactly_on_the_host(tmp_path):
    require("host")
    ds = digits()
    model = _model(ds)
    assert [p.bits for p in model.parameters() if p.kind == "weight"] == [8, 16, 16]
    report = run_model(model, ds, target="host", steps=12, batch_size=4, eval_samples=8,
                       optim=OptimConfig(lr=0.5), seed=1, work_dir=tmp_path)
    assert report.bit_exact, report.mismatches


def test_planner_counts_the_int16_masters():
    ds = digits()
    plain = plan_memory(compile_program(_model(ds, QuantConfig()), "full", 1))
    mixed = plan_memory(compile_program(_model(ds), "full", 1))
    wide = sum(p.value.m.size for p in _model(ds).parameters() if p.kind == "weight" and p.bits == 16)
    # one more byte per int16 master weight, plus at most the int8 views while they are used
    assert wide <= mixed.arena_bytes - plain.arena_bytes <= 2 * wide


@pytest.mark.emulator
def test_mixed_widths_train_bit_exactly_on_a_cortex_m3(tmp_path):
    require("cortex-m3")
    ds = digits()
    report = run_model(_model(ds), ds, target="cortex-m3", steps=20, batch_size=1, eval_samples=5,
                       optim=OptimConfig(lr=0.25), seed=4, work_dir=tmp_path)
    assert report.bit_exact, report.mismatches
