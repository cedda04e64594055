"""Fixtures of the C runtime tests: the host build of the runtime (skipped without a C compiler)."""

import shutil

import pytest


@pytest.fixture(scope="session")
def rt():
    """:mod:`tintin.codegen.host` with the runtime library built and loaded."""
    from tintin.codegen import host

    try:
        host.load()
    except host.HostBuildError as exc:  # pragma: no cover - depends on the machine
        if shutil.which("gcc") is None:
            pytest.skip(f"no host C compiler: {exc}")
        raise
    return host
