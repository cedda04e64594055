"""``tintin registry match`` gives the answer of ``tintin plan`` for every zoo model x every device
profile x update modes full / bias / last:1."""

from __future__ import annotations

import json

import pytest

from tintin.cli.common import model_from_spec
from tintin.cli.options import default_optimiser

from tintin.nn import QuantConfig
from tintin.compile.cost import flash_estimate
from tintin.compile.fit import check_fit
from tintin.compile.report import analyze
from tintin.nn import model_names
from tintin.targets import list_devices, load_device

from registry_helpers import require_registry_extra, run_cli

require_registry_extra()

UPDATES = ("full", "bias", "last:1")


@pytest.fixture(scope="module")
def plan_answers():
    """(model, device, update) -> (fits, peak SRAM) by the functions of `tintin plan`, each program
    compiled once and checked against every device."""
    answers = {}
    for name in model_names():
        model, _ = model_from_spec(name, None, None, None, QuantConfig(), 0)
        for update in UPDATES:
            report = analyze(model, update, 1, suggest=False, optim=default_optimiser(name))
            for dev in list_devices():
                profile = load_device(dev)
                fit = check_fit(report.plan.arena_bytes, flash_estimate(report.program, report.plan, profile.core),
                                profile)
                answers[(name, dev, update)] = (fit.fits, report.plan.arena_bytes)
    return answers


def test_whole_matrix(zoo_registry, plan_answers, capsys):
    code, out, err = run_cli(capsys, "registry", "match", "--json", "--registry", zoo_registry)
    assert code == 0, err
    rows = json.loads(out)["matches"]
    got = {(r["model"], r["device"], r["update"]): (r["fits"], r["peak_sram_bytes"]) for r in rows
           if r["update"] in UPDATES}
    assert len(plan_answers) == len(model_names()) * len(list_devices()) * len(UPDATES)
    assert got == plan_answers
    # both answers occur: the matrix is not trivially all-fit or all-not-fit
    assert {fits for fits, _ in plan_answers.values()} == {True, False}


@pytest.mark.parametrize("update", UPDATES)
def test_filtered_match_equals_the_plan_command(zoo_registry, capsys, update):
    """The plan command itself (not only its functions), one device per model, rotating."""
    code, out, err = run_cli(capsys, "registry", "match", "--update", update, "--json", "--registry", zoo_registry)
    assert code == 0, err
    rows = {(r["model"], r["device"]): r for r in json.loads(out)["matches"]}
    assert {u for u in (r["update"] for r in rows.values())} == {update}
    devices = list_devices()
    for i, name in enumerate(model_names()):
        dev = devices[(i + UPDATES.index(update)) % len(devices)]
        code, out, err = run_cli(capsys, "plan", name, "--device", dev, "--update", update, "--json", "--no-buffers",
                                 "--no-suggest")
        plan = json.loads(out)
        assert code == (0 if plan["fits"] else 3), err  # plan exits 3 when the program does not fit
        row = rows[(name, dev)]
        assert (row["fits"], row["peak_sram_bytes"], row["flash_bytes"], row["sram_margin"], row["flash_margin"]) == \
            (plan["fits"], plan["peak_sram_bytes"], plan["flash_bytes"], plan["sram_margin"], plan["flash_margin"]), \
            (name, dev, update)


def test_model_and_device_filters(zoo_registry, capsys):
    code, out, err = run_cli(capsys, "registry", "match", "--model", "lenet5", "--device", "stm32f103c8", "--json",
                             "--registry", zoo_registry)
    assert code == 0, err
    rows = json.loads(out)["matches"]
    assert {(r["model"], r["device"]) for r in rows} == {("lenet5", "stm32f103c8")}
    assert {"full", "bias", "last:1"} <= {r["update"] for r in rows}


def test_reserve_is_added_like_plan_reserve(zoo_registry, capsys):
    code, out, err = run_cli(capsys, "plan", "mlp", "--device", "atmega328p", "--update", "full", "--reserve", "100",
                             "--json", "--no-buffers", "--no-suggest")
    plan = json.loads(out)
    code, out, err = run_cli(capsys, "registry", "match", "--model", "mlp", "--device", "atmega328p", "--update",
                             "full", "--reserve", "100", "--json", "--registry", zoo_registry)
    (row,) = json.loads(out)["matches"]
    assert row["fits"] == plan["fits"] and row["sram_margin"] == plan["sram_margin"]
