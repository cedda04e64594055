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
