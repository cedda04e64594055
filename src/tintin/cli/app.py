"""Typer application and the error boundary of the ``tintin`` command."""

from __future__ import annotations

import importlib
import os
import sys

import click
import typer

from tintin.errors import TintinError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Integer-only neural-network training for microcontrollers.")

#: command modules of this package; each defines ``register(app)``
COMMAND_MODULES = ("train", "evaluate", "datasets", "plan", "devices", "export", "run", "stream")


class CliError(TintinError):
    """A user-facing failure of the command line itself: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
        self.exit_code = code


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue
            raise
        module.register(app)


_register_commands()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: no tracebacks for users (``TINTIN_DEBUG=1`` shows them)."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="tintin", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except TintinError as exc:  # every library error, CliError included: one line
        if os.environ.get("TINTIN_DEBUG"):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every other failure still gets one clear line
        if os.environ.get("TINTIN_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
