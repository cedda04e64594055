import json

from tintin.cli import main
from tintin.io import load_model

from tests.interrupted_training import train_then_interrupt

ARGS = ["-d", "digits", "-m", "mlp", "-e", "2", "-b", "4", "--lr", "0.1", "--seed", "3"]


def tensors(path):
    model, _ = load_model(path)
    return [(p.name, p.value.m.tobytes(), p.value.scale.as_tuple()) for p in model.parameters()]


def test_ctrl_c_saves_a_checkpoint_exits_130_and_resume_gives_the_uninterrupted_bits(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = train_then_interrupt(ARGS, run_dir, 20)
    assert code == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: training state saved to"), err
    assert (run_dir / "checkpoint.safetensors").is_file() and not (run_dir / "model.safetensors").exists()
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]

    assert main(["train", "--resume", str(run_dir), "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["resumed"] and resumed["epochs"] == 2 and resumed["seed"] == 3

    assert main(["train", *ARGS, "--out", str(tmp_path / "whole"), "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert tensors(run_dir / "model.safetensors") == tensors(tmp_path / "whole" / "model.safetensors")
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    h1 = json.loads((run_dir / "history.json").read_text())["integer"]
    h2 = json.loads((tmp_path / "whole" / "history.json").read_text())["integer"]
    assert [(h["train_loss"], h["test_accuracy"]) for h in h1] == [(h["train_loss"], h["test_accuracy"]) for h in h2]


def one_line(code, err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_resume_errors_are_one_line(tmp_path, capsys):
    assert "training state not found" in one_line(main(["train", "--resume", str(tmp_path)]), capsys.readouterr().err)
    assert main(["train", "-d", "digits", "-e", "1", "--checkpoint-every", "20", "--out", str(tmp_path), "-q"]) == 0
    capsys.readouterr()
    assert "differs" in one_line(main(["train", "--resume", str(tmp_path), "-d", "mnist5k"]), capsys.readouterr().err)
    assert "--dataset is required" in one_line(main(["train", "-e", "1"]), capsys.readouterr().err)
    assert "--checkpoint-every" in one_line(main(["train", "-d", "digits", "--checkpoint-every", "-1"]),
                                            capsys.readouterr().err)
