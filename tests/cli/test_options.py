"""Every command takes its shared options from one definition (``tintin.cli.options``)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tintin.cli.app import app
from tintin.targets import TARGETS, list_devices

COMMANDS = typer.main.get_command(app).commands

OPTIMISER = ("--lr", "--rule", "--mu", "--rounding", "--momentum-shift")
MODEL = ("--seed", "--scale-mode", "--weight-bits")
COMPILE = ("--update", "--grad-tile", "--acc-budget", "--batch-size")


def _params(command: str) -> dict:
    return {opt: p for p in COMMANDS[command].params for opt in getattr(p, "opts", ())}


def _same_everywhere(commands, options):
    for option in options:
        seen = {}
        for command in commands:
            params = _params(command)
            assert option in params, f"`tintin {command}` lacks {option}"
            p = params[option]
            seen[command] = (p.default, tuple(p.opts), p.help)
        assert len(set(seen.values())) == 1, f"{option} differs between commands: {seen}"


def test_train_run_export_plan_share_the_optimiser_options_and_defaults():
    _same_everywhere(("train", "run", "export", "plan"), OPTIMISER + MODEL + ("--json",))


def test_run_export_plan_share_the_compile_options_and_defaults():
    # train runs the simulator and compiles no program, so it has none of these
    _same_everywhere(("run", "export", "plan"), COMPILE)


def test_target_and_device_help_come_from_the_registries():
    for command in ("run", "export"):
        help_text = _params(command)["--target"].help
        assert all(name in help_text for name in TARGETS)
    assert all(name in _params("plan")["--device"].help for name in list_devices())


def _flat(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─┃]", " ", text).split())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_every_option_help_as_written(command):
    """rich markup must not eat ``[a:b]`` (or anything else) from a help text."""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = _flat(result.output)
    assert "\\[" not in shown
    for p in COMMANDS[command].params:
        if getattr(p, "help", None):
            assert _flat(p.help.replace("\\[", "[")) in shown, f"{command} --help: {p.help!r} not shown as written"
    if command in ("plan", "run", "export"):
        assert "sparse:LAYER[a:b]" in shown


def test_commands_do_not_rewrap_library_errors():
    """cli.app.main is the only place that turns a library error into an `error:` line."""
    from pathlib import Path

    import tintin.cli

    for path in Path(tintin.cli.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "CliError(str(exc))" not in text, path.name
        # the one conversion left: plain ValueErrors of configuration classes (options.config_values)
        rewraps = re.findall(r"except (.*) as exc:\n\s+raise \w*Error\(str\(exc\)\)", text)
        assert rewraps == (["ValueError"] if path.name == "options.py" else []), (path.name, rewraps)
