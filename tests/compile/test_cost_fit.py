"""Cost counts, flash, latency estimates, the fit check and the search for fitting choices."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from compile_helpers import make_mlp

from tintin.compile import compile_program, plan_memory
from tintin.compile.cost import (DEFAULT_INSTRUCTIONS_PER_OP, INSTRUCTIONS_PER_OP, SOFTMAX_TABLE_BYTES,
                                 estimate_latency, flash_estimate, program_cost)
from tintin.compile.fit import candidate_updates, check_fit, fit_options, summarise_options
from tintin.compile.report import analyze
from tintin.optim import OptimConfig


@dataclass
class Core:
    average_cpi: float = 1.5


@dataclass
class Device:
    name: str = "toy"
    sram_bytes: int = 4096
    flash_bytes: int = 65536
    clock_hz: int = 48_000_000
    core: str = "cortex-m3"
    core_profile: Core = field(default_factory=Core)
    supply_voltage_v: float = 3.0
    active_current_ua_per_mhz: float = 100.0


def test_macs_match_the_layer_sizes():
    model = make_mlp(widths=(16, 24, 12, 5))
    forward = 16 * 24 + 24 * 12 + 12 * 5
    full = program_cost(compile_program(model, "full", batch_size=3))
    totals = full.totals()
    assert totals["forward"]["macs"] == 3 * forward
    # input errors of fc3 and fc2 (not fc1), weight gradients of all three
    assert totals["backward"]["macs"] + totals["update"]["macs"] == 3 * (24 * 12 + 12 * 5) + 3 * forward
    assert full.macs_per_sample == forward + (24 * 12 + 12 * 5) + forward
    bias = program_cost(compile_program(model, "bias", batch_size=3))
    assert bias.macs_per_sample == forward + (24 * 12 + 12 * 5)
    niti = program_cost(compile_program(model, "full", batch_size=3, optim=OptimConfig(rule="niti"),
                                        grad_tile_bytes=64))
    assert niti.macs_per_sample == full.macs_per_sample + forward  # NITI's max pass over every tiled gradient
    recompute = program_cost(compile_program(model, "none", batch_size=1, accumulator_budget=0))
    assert recompute.macs == 2 * forward


def test_traffic_counts_reads_and_writes():
    program = compile_program(make_mlp(widths=(4, 3)), "none", batch_size=1)
    cost = program_cost(program)
    fwd = [s for s in cost.steps if s.op == "linear_forward_s8"][0]
    # reads x (4) + W (12) + b (12), writes y (3); accumulator 12 bytes written and read
    assert (fwd.bytes_read, fwd.bytes_written) == (4 + 12 + 12 + 12, 3 + 12)


def test_flash_counts_every_parameter_once():
    model = make_mlp(widths=(16, 24, 12, 5))
    params = sum(p.value.m.nbytes for p in model.parameters())
    for update in ("full", "bias", "last:1", "none", "sparse:fc1[0:3]"):
        program = compile_program(model, update, batch_size=1)
        f = flash_estimate(program, plan_memory(program))
        assert f.frozen_parameters + f.trained_initial_values == params
        assert f.tables == SOFTMAX_TABLE_BYTES and f.code_estimate > 0
    avr = flash_estimate(program, plan_memory(program), core="avr8")
    assert avr.code_estimate == 2 * f.code_estimate


def test_latency_and_energy_estimates():
    program = compile_program(make_mlp(), "full", batch_size=2)
    cost = program_cost(program)
    lat = estimate_latency(cost, Device())
    per_mac, per_elem = INSTRUCTIONS_PER_OP["cortex-m3"]
    assert lat.instructions_per_sample == pytest.approx((cost.macs * per_mac + cost.elementwise * per_elem) / 2)
    assert lat.cycles_per_sample == pytest.approx(1.5 * lat.instructions_per_sample)
    assert lat.seconds_per_sample == pytest.approx(lat.cycles_per_sample / 48e6)
    assert lat.energy_j_per_sample == pytest.approx(lat.cycles_per_sample * 3.0 * 100e-12)
    bare = estimate_latency(cost, type("D", (), {"clock_hz": 1000})())
    assert bare.energy_j_per_sample is None and bare.cpi == 1.0
    per_mac, per_elem = DEFAULT_INSTRUCTIONS_PER_OP
    assert bare.instructions_per_sample == pytest.approx((cost.macs * per_mac + cost.elementwise * per_elem) / 2)


def test_fit_margins():
    report = check_fit(3000, 1000, Device(), reserve_sram=500)
    assert report.fits and report.sram_margin == 4096 - 3500 and report.flash_margin == 64536
    report = check_fit(5000, 70000, Device())
    assert not report.fits and report.missing_sram == 904 and report.missing_flash == 70000 - 65536
    with pytest.raises(ValueError, match="no valid sram_bytes"):
        check_fit(1, 1, Device(sram_bytes=0))


def test_fit_options_find_what_fits():
    model = make_mlp(widths=(64, 64, 32, 10))
    assert candidate_updates(model) == ["full", "last:2", "last:1", "bias+last:1", "bias"]
    device = Device(sram_bytes=3000)
    options = fit_options(model, device, batch_sizes=(1, 2, 4, 8))
    rows = {(r["update"], r["accumulator_budget"]): r for r in summarise_options(options)}
    assert not rows[("full", None)]["fits"] and rows[("full", None)]["missing_sram"] > 0
    assert rows[("bias", None)]["fits"]
    best = rows[("bias", None)]["max_batch_size"]
    # the largest fitting batch really fits and the next one does not
    assert plan_memory(compile_program(model, "bias", best)).arena_bytes <= 3000
    if best < 8:
        assert plan_memory(compile_program(model, "bias", best * 2)).arena_bytes > 3000
    for o in options:
        assert o.fits == (o.sram_bytes <= 3000 and o.flash_bytes <= 65536)


def test_analyze_reports_both_naive_references():
    report = analyze(make_mlp(widths=(64, 64, 32, 10)), "full", 1, device=Device(sram_bytes=1000))
    d = report.to_dict()
    assert d["peak_sram_bytes"] <= d["naive_planner_sram_bytes"] <= d["naive_sram_bytes"]
    assert d["lower_bound_sram_bytes"] <= d["peak_sram_bytes"]
    assert d["fits"] is False and d["missing_sram"] == d["peak_sram_bytes"] - 1000
    assert d["suggestions"] and d["estimate"]["estimate"] is True
    assert {b["name"] for b in d["buffers"]} == set(report.program.buffers)
