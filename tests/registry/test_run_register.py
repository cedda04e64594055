"""``tintin run --register`` records the measured count per step; ``match`` and the ready query
report it; exported C projects and model files are found by their hash."""

from __future__ import annotations

import json
import shutil

import pytest
from registry_helpers import require_registry_extra, run_cli

require_registry_extra()


@pytest.mark.emulator
def test_run_register_records_the_measured_instructions(tmp_path, capsys, monkeypatch):
    from tintin.targets import toolchain_status

    ok, reason = toolchain_status("cortex-m0")
    if not ok:
        pytest.skip(reason)
    reg = tmp_path / "r.ttl"
    monkeypatch.setenv("TINTIN_REGISTRY", str(reg))
    assert run_cli(capsys, "registry", "add", "rp2040")[0] == 0
    code, out, err = run_cli(capsys, "run", "mlp", "-d", "digits", "-t", "cortex-m0", "-n", "3", "--eval", "5",
                             "--register", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["registered"].startswith("urn:tintin:run:")
    code, out, err = run_cli(capsys, "registry", "match", "--model", "mlp", "--device", "rp2040", "-u", "full", "--json")
    (row,) = json.loads(out)["matches"]
    assert row["measured_per_step"] == result["instructions_per_step"] and row["measured_unit"] == "instructions"
    assert row["peak_sram_bytes"] == result["planned_arena_bytes"]
    # the ready query 4 of the docs reports it too
    from test_queries import ready_queries

    code, out, err = run_cli(capsys, "registry", "query", ready_queries()[3], "--json")
    (q,) = json.loads(out)["rows"]
    assert q["perStep"] == result["instructions_per_step"] and q["target"] == "cortex-m0"
    assert q["macs"] == result["macs_per_step"]
    # the same run registered again adds nothing; the saved result can be added by file too
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(result))
    code, out, err = run_cli(capsys, "registry", "add", saved, "--model", "mlp", "--json")
    assert code == 0, err
    assert json.loads(out)["artefacts"][0]["added"] is False


def test_export_dir_is_registered_and_matched_on_sram(tmp_path, capsys):
    reg = tmp_path / "r.ttl"
    code, out, err = run_cli(capsys, "export", "mlp", "--update", "bias", "--out", tmp_path / "proj", "--json")
    assert code == 0, err
    arena = json.loads(out)["arena_bytes"]
    code, out, err = run_cli(capsys, "registry", "add", tmp_path / "proj", "atmega328p", "--registry", reg, "--json")
    assert code == 0, err
    assert [a["kind"] for a in json.loads(out)["artefacts"]] == ["c-project", "device"]
    code, out, err = run_cli(capsys, "registry", "match", "--model", tmp_path / "proj", "--json", "--registry", reg)
    (row,) = json.loads(out)["matches"]
    assert row["update"] == "bias" and row["peak_sram_bytes"] == arena
    assert row["fits"] is None and row["flash_bytes"] is None  # an export has no flash estimate
    # a copy of the same project is the same artefact
    shutil.copytree(tmp_path / "proj", tmp_path / "copy")
    code, out, err = run_cli(capsys, "registry", "add", tmp_path / "copy", "--registry", reg, "--json")
    assert json.loads(out)["artefacts"][0]["added"] is False


def test_a_copied_model_file_is_the_same_artefact(tmp_path, capsys):
    from tintin.cli.common import model_from_spec
    from tintin.nn import QuantConfig
    from tintin.io import save_model

    model, _ = model_from_spec("mlp", None, None, None, QuantConfig(), 0)
    a = save_model(model, tmp_path / "a.safetensors")
    shutil.copy(a, tmp_path / "b.safetensors")
    reg = tmp_path / "r.ttl"
    code, out, err = run_cli(capsys, "registry", "add", a, tmp_path / "b.safetensors", "--registry", reg, "--json")
    assert code == 0, err
    assert [x["added"] for x in json.loads(out)["artefacts"]] == [True, False]
    code, out, err = run_cli(capsys, "registry", "show", tmp_path / "b.safetensors", "--json", "--registry", reg)
    assert code == 0 and "model-file" in out
