"""``tintin train``: Ctrl-C, existing and unwritable output directories, the training-curve plot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tintin.cli import main

SRC = Path(__file__).resolve().parents[2] / "src"


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _tintin(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", "import sys; from tintin.cli import main; sys.exit(main())", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


# enough epochs that neither backend is done 0.5 s after training starts (the native backend trains
# the digits MLP at batch 1 at hundreds of thousands of samples a second: 50 epochs took 0.3 s)
def _native():
    from tintin.targets.native import native_available

    ok, why = native_available()
    return pytest.param("native", "100000", marks=pytest.mark.skipif(not ok, reason=f"no host C compiler: {why}"))


@pytest.mark.parametrize("backend, epochs", [("numpy", "50"), _native()])
def test_sigint_during_training_exits_130_and_says_what_was_kept(tmp_path, backend, epochs):
    out = tmp_path / "run"
    proc = _tintin("train", "-d", "digits", "-e", epochs, "-b", "1", "--backend", backend, "--out", str(out))
    first = proc.stderr.readline()  # the backend chosen (auto), then the progress header: training has started
    assert first.startswith("backend: "), first
    first = proc.stderr.readline()
    assert "epochs" in first, first
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure too
        proc.kill()
        raise
    assert proc.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted:") and "--resume" in lines[-1], err  # what was kept, and how to go on
    assert "Traceback" not in err
    assert not (out / "model.safetensors").exists()
    assert (out / "checkpoint.safetensors").exists()


def test_existing_model_is_not_replaced_without_force(capsys, tmp_path):
    args = ("train", "-d", "digits", "-e", "1", "--out", str(tmp_path), "--json")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    model = tmp_path / "model.safetensors"
    before = model.read_bytes()
    code, out, err = run(capsys, *args, "--seed", "3")
    assert code == 1 and err.strip().splitlines() == [err.strip()]
    assert err.startswith("error:") and "already exists" in err and "--force" in err
    assert model.read_bytes() == before
    code, out, err = run(capsys, *args, "--seed", "3", "--force")
    assert code == 0, err
    assert model.read_bytes() != before


@pytest.mark.parametrize("make_bad", ["file", "readonly", "procfs"])
def test_unwritable_out_fails_before_training(capsys, tmp_path, monkeypatch, make_bad):
    if make_bad == "file":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("x")
        out = blocker / "run"
    elif make_bad == "procfs":  # not writable even for root
        if not Path("/proc/self").is_dir():
            pytest.skip("no Linux /proc here")
        out = Path("/proc/tintin-test/run")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "run"
    import tintin.train

    def no_training(*a, **k):  # pragma: no cover - reached only when the check is missing
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(tintin.train, "fit", no_training)
    code, _, err = run(capsys, "train", "-d", "digits", "-e", "1", "--out", str(out))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --out"), err
    assert "Error" not in lines[0]  # no raw exception names such as NotADirectoryError


def test_history_plot_is_written_beside_history(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "2", "--compare-float", "--out", str(tmp_path),
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["plot_path"] == str(tmp_path / "history.png")
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["integer"]) == 2 and len(history["float"]) == 2


def test_without_matplotlib_the_plot_is_skipped_with_a_note(capsys, tmp_path, without_module):
    without_module("matplotlib")
    code, out, err = run(capsys, "train", "-d", "digits", "-e", "1", "--out", str(tmp_path), "-q")
    assert code == 0, err
    assert "matplotlib is not installed" in err and "tintin[plot]" in err
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "history.png").exists()


def test_os_errors_are_one_line_without_exception_names(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, out, err = run(capsys, "plan", "mlp", "--input-shape", "16", "--no-buffers",
                         "--plot", str(tmp_path / "file" / "arena.png"))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'file'}"), err
    assert "Error" not in lines[0] and ("already exists" in lines[0] or "not a directory" in lines[0])


def test_os_error_lines_name_the_path_and_the_reason(tmp_path):
    from tintin.cli.app import _os_error_line

    (tmp_path / "f").write_text("x")
    caught = []
    for action in (lambda: os.mkdir(tmp_path / "f"), lambda: open(tmp_path / "f" / "x", "w"),
                   lambda: os.rmdir(tmp_path / "f")):
        try:
            action()
        except OSError as exc:
            caught.append(exc)
    lines = [_os_error_line(exc) for exc in caught]
    assert lines[0] == f"{tmp_path / 'f'}: already exists"
    assert lines[1] == f"{tmp_path / 'f' / 'x'}: not a directory"
    assert lines[2] == f"{tmp_path / 'f'}: not a directory"
    assert not any("Error" in line for line in lines)


@pytest.mark.parametrize("command", ["plan", "export"])
def test_ctrl_c_in_any_command_exits_130_with_one_line(capsys, tmp_path, monkeypatch, command):
    import tintin.compile.report
    import tintin.codegen

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(tintin.compile.report, "analyze", interrupted)
    monkeypatch.setattr(tintin.codegen, "generate_project", interrupted)
    args = {"plan": ["plan", "mlp", "--input-shape", "16"],
            "export": ["export", "mlp", "--out", str(tmp_path / "fw")]}[command]
    code, out, err = run(capsys, *args)
    assert code == 130
    expected = {"plan": "interrupted: nothing was written",
                "export": f"interrupted: {tmp_path / 'fw'} may hold a partial project"}[command]
    assert err.strip() == expected
