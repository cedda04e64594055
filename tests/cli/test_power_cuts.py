"""``tintin run MODEL --target T --power-cuts N``: the JSON contract and one-line errors."""

import json

import pytest

from tintin.targets import toolchain_status


def require(target):
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)


def test_the_default_sweep_on_the_host_cuts_at_least_1000_points(run_cli, tmp_path):
    require("host")
    code, out, err = run_cli("run", "mlp", "-d", "digits", "--target", "host", "--power-cuts", 4, "--json",
                             "--out", tmp_path)
    assert code == 0, err
    r = json.loads(out)
    assert r["cut_points"] >= 1000
    assert r["corrupt_restores"] == 0 and r["lost_commits"] == 0 and r["resume_bit_exact"] is True
    for key in ("flash_bytes", "slot_bytes", "state_bytes", "page_erases_per_save", "bytes_programmed_per_save",
                "instructions_per_save", "instructions_per_restore", "bit_flips", "saves", "cut_stride"):
        assert key in r
    assert r["saves"] == 4 and r["cut_stride"] == 1 and r["instructions_per_save"] is None  # the host counts nothing
    assert r["page_erases_per_save"] * r["page_size"] == r["slot_bytes"]


def test_a_table_without_json(run_cli, tmp_path):
    require("host")
    code, out, err = run_cli("run", "mlp", "-d", "digits", "-t", "host", "--power-cuts", 1, "--update", "bias",
                             "--out", tmp_path)
    assert code == 0, err
    assert "cut points" in out and "corrupt restores" in out


@pytest.mark.parametrize("args, words", [
    (["--power-cuts", "0"], "--power-cuts must be at least 1"),
    (["--power-cuts", "-3"], "--power-cuts must be at least 1"),
    (["--power-cuts", "2", "--save-every", "0"], "--save-every must be at least 1"),
    (["--power-cuts", "2", "--cut-stride", "0"], "--cut-stride must be at least 1"),
    (["--power-cuts", "2", "--profile"], "cannot be combined"),
    (["--power-cuts", "2", "--target", "z80"], "unknown target"),
])
def test_one_line_errors(run_cli, error_line, args, words):
    argv = ["run", "mlp", "-d", "digits"] + (["--target", "host"] if "--target" not in args else []) + args
    assert words in error_line(*run_cli(*argv))


def test_a_target_that_cannot_run_the_sweep(run_cli, error_line):
    require("atmega328p")
    line = error_line(*run_cli("run", "mlp", "-d", "digits", "-t", "atmega328p", "--power-cuts", 2))
    assert "atmega328p" in line and "RAM" in line
