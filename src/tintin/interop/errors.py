"""Errors of model import and conversion (all :class:`tintin.errors.TintinError`, one line each)."""

from __future__ import annotations

from tintin.errors import TintinError


class InteropError(TintinError, ValueError):
    """A model file cannot be imported or converted (corrupt file, unsupported structure, bad data)."""


class UnsupportedOpError(InteropError):
    """The source graph uses an operator (or an operator setting) tintin has no layer for.

    ``op`` is the operator type, ``node`` the node's name in the source graph."""

    def __init__(self, op: str, node: str, why: str = ""):
        self.op, self.node = op, node
        detail = f": {why}" if why else ""
        super().__init__(f"unsupported operator {op} at node {node!r}{detail}")


class MissingPackageError(InteropError, RuntimeError):
    """An optional package of the ``interop`` extra is not installed."""

    def __init__(self, package: str, purpose: str):
        super().__init__(f"{purpose} needs the Python package {package!r}: pip install 'tintin[interop]'")


def require(module: str, package: str, purpose: str):
    """Import ``module`` or raise :class:`MissingPackageError` naming ``package``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(package, purpose) from None
