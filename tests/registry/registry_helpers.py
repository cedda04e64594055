"""Helpers of the registry tests."""

from __future__ import annotations

import pytest

from tintin.cli.app import main

EXTRA_REASON = "the registry needs the 'registry' extra (pip install 'tintin[registry]': rdflib, pyshacl)"


def require_registry_extra() -> None:
    """Skip the calling test module, with the reason, when rdflib or pyshacl is not installed."""
    pytest.importorskip("rdflib", reason=EXTRA_REASON)
    pytest.importorskip("pyshacl", reason=EXTRA_REASON)


def run_cli(capsys, *args):
    """``tintin ARGS`` in-process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
