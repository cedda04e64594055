"""The README's usage block works top to bottom: each command only reads what an earlier one wrote."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tintin.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def usage_commands() -> list[list[str]]:
    text = README.read_text().split("## Using it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "tintin", line
            commands.append(words[1:])
    return commands


def _train_out(args: list[str]) -> str:
    def value(*names, default=None):
        for i, a in enumerate(args):
            if a in names:
                return args[i + 1]
        return default

    return value("--out", "-o") or f"runs/{value('--dataset', '-d')}-{value('--model', '-m', default='mlp')}-s" \
                                   f"{value('--seed', '-s', default='0')}"


def test_every_model_file_is_trained_before_it_is_used():
    written: set[str] = set()
    for args in usage_commands():
        for word in args:
            if word.endswith(".safetensors"):
                assert word in written, f"`tintin {' '.join(args)}` reads {word} before any command writes it"
        if args[0] == "train":
            written.add(f"{_train_out(args)}/model.safetensors")


@pytest.mark.slow  # about 2 minutes: 30 epochs beside PyTorch, LeNet-5 planning, a Cortex-M3 run
def test_the_usage_block_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in usage_commands():
        if args[0] == "run":
            from tintin.targets import toolchain_status

            target = args[args.index("--target") + 1]
            ok, why = toolchain_status(target)
            if not ok:
                print(f"skipping `tintin {' '.join(args)}`: {why}")
                continue
            args = [*args[:args.index("--steps") + 1], "5", *args[args.index("--steps") + 2:]]  # fewer steps
        code = main(args)
        out, err = capsys.readouterr()
        assert code == 0, f"`tintin {' '.join(args)}` exited {code}: {err}"
    assert (tmp_path / "build" / "fw" / "Makefile").is_file()
    assert (tmp_path / "runs" / "digits-mlp-s0" / "history.json").is_file()
