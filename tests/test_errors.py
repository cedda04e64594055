"""Every exception class that tintin defines derives from the one base, :class:`TintinError`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import tintin
from tintin.errors import TintinError


def _tintin_modules():
    for info in pkgutil.walk_packages(tintin.__path__, prefix="tintin."):
        try:
            yield importlib.import_module(info.name)
        except ImportError as exc:  # an optional extra that is not installed
            if "tintin" in (getattr(exc, "name", "") or ""):
                raise


def test_every_exception_class_derives_from_tintin_error():
    found, strays = set(), []
    for module in _tintin_modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__):
                found.add(obj)
                if not issubclass(obj, TintinError):
                    strays.append(f"{module.__name__}.{name}")
    assert len(found) >= 20  # the walk really reached the packages
    assert strays == []


def test_cli_turns_any_tintin_error_into_one_line(capsys, monkeypatch):
    cli_app = importlib.import_module("tintin.cli.app")  # the package re-exports the Typer object as `app`

    class Boom(TintinError):
        exit_code = 3

    def failing(*args, **kwargs):
        raise Boom("the model file is corrupt\nsecond line never shown")

    monkeypatch.setattr(cli_app.typer.main, "get_command", lambda app: type(
        "C", (), {"main": staticmethod(failing)})())
    assert cli_app.main(["anything"]) == 3
    err = capsys.readouterr().err
    assert err == "error: the model file is corrupt\n"
