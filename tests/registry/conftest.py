"""Shared registry fixtures: one registry with every device profile and every zoo model, built once."""

from __future__ import annotations

import pytest

from registry_helpers import main


@pytest.fixture(scope="session")
def zoo_registry(tmp_path_factory):
    """The graph file with every bundled device and every zoo model registered through the CLI."""
    from tintin.nn import model_names

    path = tmp_path_factory.mktemp("registry") / "registry.ttl"
    code = main(["registry", "add", "--all-devices", *model_names(), "--registry", str(path), "--json"])
    assert code == 0
    return path


@pytest.fixture
def registry_copy(zoo_registry, tmp_path):
    """A private copy of the zoo registry a test may change."""
    path = tmp_path / "registry.ttl"
    path.write_bytes(zoo_registry.read_bytes())
    return path
