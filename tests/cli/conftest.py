import builtins

import pytest


@pytest.fixture
def without_module(monkeypatch):
    """``without_module("torch")``: importing that package (or its submodules) fails from now on."""

    real_import = builtins.__import__

    def block(package: str) -> None:
        def blocked(name, *args, **kwargs):
            if name == package or name.startswith(package + "."):
                raise ImportError(f"No module named '{package}'")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", blocked)

    return block


@pytest.fixture
def run_cli(capsys):
    """``run_cli(*args)``: ``tintin ARGS`` in-process, ``(exit status, stdout, stderr)``."""
    from tintin.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def error_line():
    """``error_line(code, out, err)``: the one ``error:`` line of a failed command (asserted)."""

    def check(code, out, err) -> str:
        assert code != 0
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
        return lines[0]

    return check
