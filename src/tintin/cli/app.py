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


def literal(text: str) -> str:
    """``text`` shown as written in ``--help``, which renders rich markup (``[a:b]`` would vanish)."""
    return text.replace("[", "\\[")

#: command modules of this package; each defines ``register(app)``
COMMAND_MODULES = ("train", "evaluate", "datasets", "plan", "devices", "export", "run", "stream", "import_",
                   "convert", "registry", "fleet")


class CliError(TintinError):
    """A user-facing failure of the command line itself: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code
        self.exit_code = code


#: exit status of a command stopped by Ctrl-C (SIGINT), as shells report 128 + 2
INTERRUPTED = 130

_kept_on_interrupt: list[str] = []


def on_interrupt(what_is_kept: str) -> None:
    """Say what stays on disk if the running command is stopped by Ctrl-C now (the latest call
    wins); :func:`main` prints it as its one ``interrupted:`` line."""
    _kept_on_interrupt[:] = [what_is_kept]


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
    _kept_on_interrupt[:] = ["nothing was written"]
    try:
        # typer turns Ctrl-C into an exit status of 130 that it returns (standalone_mode=False)
        status = command.main(args=argv, prog_name="tintin", standalone_mode=False)
    except click.exceptions.Exit as exc:
        status = exc.exit_code
    except click.exceptions.Abort:
        status = INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except TintinError as exc:  # every library error, CliError included: one line
        if os.environ.get("TINTIN_DEBUG"):
            raise
        line = _one_line(exc)
        if exc.exit_code == INTERRUPTED:  # e.g. training stopped on Ctrl-C after saving its state
            print(line if line.startswith("interrupted:") else f"interrupted: {line}", file=sys.stderr)
        else:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        status = INTERRUPTED
    except OSError as exc:  # a file or directory the command could not write or read
        if os.environ.get("TINTIN_DEBUG"):
            raise
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # every other failure still gets one clear line
        if os.environ.get("TINTIN_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1
    if status == INTERRUPTED:
        print(f"interrupted: {_kept_on_interrupt[0]}", file=sys.stderr)
        return INTERRUPTED
    return status if isinstance(status, int) else 0


_OS_ERROR_TEXT = {"FileExistsError": "already exists", "PermissionError": "permission denied"}


def _os_error_line(exc: OSError) -> str:
    """``runs/x/model.safetensors: permission denied`` rather than a raw exception name."""
    what = _OS_ERROR_TEXT.get(type(exc).__name__) or (exc.strerror or _one_line(exc)).lower()
    if exc.filename is None:
        return what
    extra = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"{exc.filename}{extra}: {what}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
