"""``tintin export`` and ``tintin run``: output, JSON keys and one-line errors."""

import json

import pytest

import tintin.targets as targets
import tintin.targets.ondevice as ondevice
from codegen_helpers import require
from tintin.cli import main


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, out, err) -> str:
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err
    return lines[0]


def test_export_writes_a_project(capsys, tmp_path):
    code, out, err = run(capsys, "export", "mlp", "--target", "cortex-m0", "--out", str(tmp_path / "p"), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["arena_bytes"] == 6272 and info["target"] == "cortex-m0" and info["update"] == "full"
    assert {"tt_model.h", "tt_model.c", "Makefile", "README.md"} <= set(info["files"])
    assert "TARGET ?= cortex-m0" in (tmp_path / "p" / "Makefile").read_text()
    code, out, err = run(capsys, "export", "lenet5", "--update", "bias", "--out", str(tmp_path / "l"))
    assert code == 0, err
    assert "arena" in out and (tmp_path / "l" / "tt_model.c").is_file()


def test_export_errors(capsys, tmp_path):
    line = one_line_error(*run(capsys, "export", "mlp", "--target", "z80", "--out", str(tmp_path)))
    assert "unknown target 'z80'" in line and "cortex-m0" in line
    line = one_line_error(*run(capsys, "export", "lenet5", "--target", "atmega328p", "--out", str(tmp_path)))
    assert "missing" in line and "tintin plan lenet5" in line
    line = one_line_error(*run(capsys, "export", "nosuchnet", "--out", str(tmp_path)))
    assert "unknown model" in line
    line = one_line_error(*run(capsys, "export", "mlp", "--update", "last:9", "--out", str(tmp_path)))
    assert "last:9" in line or "K" in line


def test_run_on_the_host_json(capsys, tmp_path):
    require("host")
    code, out, err = run(capsys, "run", "mlp", "--dataset", "digits", "--target", "host", "--steps", "12",
                         "--eval", "5", "--json", "--out", str(tmp_path))
    assert code == 0, err
    r = json.loads(out)
    for key in ("bit_exact", "instructions_per_step", "cycles_per_step", "float_instructions_per_step",
                "arena_bytes", "planned_arena_bytes", "text_bytes", "data_bytes", "bss_bytes", "machine"):
        assert key in r
    assert r["bit_exact"] is True and r["arena_bytes"] == r["planned_arena_bytes"] == 6272
    assert r["instructions_per_step"] is None and r["machine"] == "host"  # the host counts nothing
    assert (tmp_path / "project" / "driver" / "tt_driver.c").is_file()


def test_run_errors(capsys, monkeypatch):
    line = one_line_error(*run(capsys, "run", "mlp", "--dataset", "digits", "--target", "vax"))
    assert "unknown target" in line
    line = one_line_error(*run(capsys, "run", "mlp", "--dataset", "nodata", "--target", "host"))
    assert "nodata" in line
    monkeypatch.setattr(targets, "toolchain_status",
                        lambda t: (False, "cortex-m3: missing qemu-system-arm; install with `make toolchains` (as root)"))
    line = one_line_error(*run(capsys, "run", "mlp", "--dataset", "digits", "--target", "cortex-m3"))
    assert "make toolchains" in line


def test_run_reports_build_and_emulator_failures_in_one_line(capsys, monkeypatch):
    require("host")

    def broken_build(*a, **k):
        raise targets.BuildError("host: building train.elf failed: tt_model.c:1: error: boom", details="FULL LOG")

    monkeypatch.setattr(ondevice, "build", broken_build)
    code, out, err = run(capsys, "run", "mlp", "--dataset", "digits", "--target", "host", "--steps", "2")
    line = one_line_error(code, out, err)
    assert "boom" in line and "--verbose" in line and "FULL LOG" not in err
    code, out, err = run(capsys, "run", "mlp", "--dataset", "digits", "--target", "host", "--steps", "2", "--verbose")
    assert code != 0 and "FULL LOG" in err


def test_run_times_out_with_one_line(capsys, monkeypatch):
    require("host")
    real_run = targets.run

    def hanging(target, build, timeout_s=60.0, **kw):
        assert timeout_s == 7.0  # the emulator always runs under the given limit
        raise targets.RunError(f"{target}: no exit within {timeout_s:g} s, killed (endless loop?)")

    monkeypatch.setattr(ondevice, "run", hanging)
    line = one_line_error(*run(capsys, "run", "mlp", "--dataset", "digits", "--target", "host", "--steps", "2",
                               "--timeout", "7"))
    assert "no exit within 7 s" in line
    assert real_run is not hanging


def test_atmega328p_too_small_for_the_digits_mlp(capsys):
    require("atmega328p")
    line = one_line_error(*run(capsys, "run", "mlp", "--dataset", "digits", "--target", "atmega328p"))
    assert "B missing" in line and "tintin plan" in line


@pytest.mark.emulator
def test_run_on_cortex_m3_with_the_reference(capsys):
    require("cortex-m3")
    code, out, err = run(capsys, "run", "mlp", "--dataset", "digits", "--target", "cortex-m3", "--steps", "20",
                         "--eval", "10", "--compare-float", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["bit_exact"] is True and r["machine"] == "mps2-an385"
    assert r["instructions_per_step"] > 0 and r["float_instructions_per_step"] > r["instructions_per_step"]
    assert r["float_softfloat_symbols"] > 0 and r["softfloat_symbols"] == []
    code, out, err = run(capsys, "run", "mlp", "--dataset", "digits", "--target", "cortex-m3", "--steps", "3",
                         "--eval", "0", "--profile")
    assert code == 0, err
    assert "bit-exact" in out and "fused_weight_u" in out
