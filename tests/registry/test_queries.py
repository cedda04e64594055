"""The five ready queries of docs/registry.md run, and the first gives the right devices."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from registry_helpers import require_registry_extra, run_cli

require_registry_extra()

from tintin.cli.common import model_from_spec

from tintin.nn import QuantConfig
from tintin.compile.cost import flash_estimate
from tintin.compile.fit import check_fit
from tintin.compile.report import analyze
from tintin.targets import list_devices, load_device

DOC = Path(__file__).resolve().parents[2] / "docs" / "registry.md"


def ready_queries() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Five ready queries", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sparql\n(.*?)```", section, re.S)


def test_the_docs_have_five_ready_queries():
    assert len(ready_queries()) == 5


@pytest.mark.parametrize("index", range(5))
def test_every_ready_query_runs(zoo_registry, capsys, index):
    code, out, err = run_cli(capsys, "registry", "query", ready_queries()[index], "--json", "--registry", zoo_registry)
    assert code == 0, err
    result = json.loads(out)
    if index != 3:  # no run is registered in this registry
        assert result["rows"], index


def test_bias_fine_tuning_within_32_kb_returns_the_right_devices(zoo_registry, capsys):
    """Devices that can fine-tune cnn1d with a bias-only update within 32 KB of SRAM, against
    the planner and the fit check of `tintin plan`."""
    model, _ = model_from_spec("cnn1d", None, None, None, QuantConfig(), 0)
    report = analyze(model, "bias", 1, suggest=False)
    expected = set()
    for name in list_devices():
        device = load_device(name)
        fit = check_fit(report.plan.arena_bytes, flash_estimate(report.program, report.plan, device.core), device)
        if fit.fits and report.plan.arena_bytes <= 32 * 1024:
            expected.add(name)
    code, out, err = run_cli(capsys, "registry", "query", ready_queries()[0], "--json", "--registry", zoo_registry)
    assert code == 0, err
    got = {row["device"] for row in json.loads(out)["rows"]}
    assert got == expected
    assert expected and expected != set(list_devices())  # some parts can, some cannot


def test_a_query_from_a_file_and_ask(zoo_registry, tmp_path, capsys):
    q = tmp_path / "q.rq"
    q.write_text('ASK { ?d tt:deviceName "atmega328p" ; tt:hasFPU false }')
    code, out, err = run_cli(capsys, "registry", "query", f"@{q}", "--json", "--registry", zoo_registry)
    assert code == 0 and json.loads(out) == {"boolean": True}


def test_min_accuracy_keeps_models_with_a_recorded_accuracy(registry_copy, tmp_path, capsys):
    from tintin.io import save_model

    model, _ = model_from_spec("mlp", None, None, None, QuantConfig(), 0)
    good = save_model(model, tmp_path / "good.safetensors", info={"dataset": "digits", "test_accuracy": 0.95})
    code, _, err = run_cli(capsys, "registry", "add", good, "--registry", registry_copy)
    assert code == 0, err
    code, out, err = run_cli(capsys, "registry", "match", "--min-accuracy", "90%", "--json", "--registry", registry_copy)
    rows = json.loads(out)["matches"]
    assert rows and {r["kind"] for r in rows} == {"model-file"} and all(r["accuracy"] == 0.95 for r in rows)
    code, out, err = run_cli(capsys, "registry", "match", "--min-accuracy", "0.96", "--json", "--registry", registry_copy)
    assert json.loads(out)["matches"] == []
