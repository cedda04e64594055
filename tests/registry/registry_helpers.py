"""Helpers of the registry tests."""

from __future__ import annotations

from tintin.cli.app import main


def run_cli(capsys, *args):
    """``tintin ARGS`` in-process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
