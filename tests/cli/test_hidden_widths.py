"""``--hidden``: the zoo mlp's hidden widths from the command line (``tintin train``, ``tintin plan``)."""

import json

import pytest

from tintin.cli import main
from tintin.compile import compile_program, plan_memory
from tintin.io import load_model
from tintin.nn import build_model
from tintin.optim import OptimConfig

from tests.interrupted_training import train_then_interrupt


def one_line(code, err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def shapes(path):
    model, _ = load_model(path)
    return {p.name: tuple(p.value.m.shape) for p in model.parameters()}


def test_plan_of_the_long_run_mlp_is_the_python_apis(capsys):
    """The recipe's 784-200-100-50-10 MLP with a 4-bit feedback plane, planned from the command
    line, is the program docs/learning-quality.md plans through the Python API."""
    assert main(["plan", "mlp", "--input-shape", "1,28,28", "--classes", "10", "--hidden", "200,100,50",
                 "--batch-size", "1", "--error-feedback", "*", "--feedback-bits", "4", "--json", "--no-buffers"]) == 0
    report = json.loads(capsys.readouterr().out)
    model = build_model("mlp", (1, 28, 28), 10, seed=0, hidden=(200, 100, 50))
    recipe = OptimConfig(lr=0.25, error_feedback=("*",), feedback_bits=4)
    assert report["peak_sram_bytes"] == plan_memory(compile_program(model, "full", 1, optim=recipe)).arena_bytes
    assert report["peak_sram_bytes"] == 279_024
    assert report["feedback_plane_bytes"] == (784 * 200 + 200 * 100 + 100 * 50 + 50 * 10) * 4 // 8


def test_train_builds_and_saves_the_given_widths(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "-d", "digits", "--hidden", "32,16", "-e", "1", "--out", str(out), "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["hidden"] == [32, 16]
    assert summary["parameters"] == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert shapes(out / "model.safetensors") == {"fc1.weight": (32, 64), "fc1.bias": (32,), "fc2.weight": (16, 32),
                                                 "fc2.bias": (16,), "fc3.weight": (10, 16), "fc3.bias": (10,)}
    assert main(["train", "-d", "digits", "-e", "1", "--out", str(tmp_path / "default"), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["hidden"] is None
    assert shapes(tmp_path / "default" / "model.safetensors")["fc1.weight"] == (64, 64)


def test_an_interrupted_run_resumes_with_its_widths(tmp_path, capsys):
    args = ["-d", "digits", "--hidden", "24,12", "-e", "2", "-b", "4", "--lr", "0.1", "--seed", "1"]
    run_dir = tmp_path / "run"
    code, out, err = train_then_interrupt(args, run_dir, 20)
    assert code == 130, (out, err)
    assert main(["train", "--resume", str(run_dir), "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["resumed"] and resumed["hidden"] == [24, 12]
    assert main(["train", "--resume", str(run_dir), "--hidden", "24, 12", "--json"]) == 0  # the same widths
    capsys.readouterr()
    assert "differs from the resumed run's 24,12" in one_line(
        main(["train", "--resume", str(run_dir), "--hidden", "32"]), capsys.readouterr().err)
    assert main(["train", *args, "--out", str(tmp_path / "whole"), "--json", "-q"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    a, _ = load_model(run_dir / "model.safetensors")
    b, _ = load_model(tmp_path / "whole" / "model.safetensors")
    assert [p.value.m.tobytes() for p in a.parameters()] == [p.value.m.tobytes() for p in b.parameters()]


@pytest.mark.parametrize("argv, message", [
    (["plan", "lenet5", "--hidden", "8"], "widths of the zoo mlp"),
    (["plan", "mlp", "--hidden", "8,x"], "positive integer widths"),
    (["plan", "mlp", "--hidden", "0"], "positive integer widths"),
    (["plan", "mlp", "--hidden", ""], "positive integer widths"),
    (["train", "-d", "digits", "-m", "lenet5", "--hidden", "8"], "widths of the zoo mlp"),
    (["train", "-d", "digits", "--hidden", "-3"], "positive integer widths"),
])
def test_bad_widths_are_one_line(argv, message, capsys):
    assert message in one_line(main(argv), capsys.readouterr().err)


def test_a_model_file_keeps_its_widths(tmp_path, capsys):
    assert main(["train", "-d", "digits", "--hidden", "16", "-e", "1", "--out", str(tmp_path / "m"), "-q"]) == 0
    capsys.readouterr()
    path = str(tmp_path / "m" / "model.safetensors")
    assert "keeps its own" in one_line(main(["plan", path, "--hidden", "8"]), capsys.readouterr().err)
    assert "keeps the file's" in one_line(main(["train", "-d", "digits", "--init", path, "--hidden", "8"]),
                                          capsys.readouterr().err)
