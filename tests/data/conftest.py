"""Shared fixtures of the tintin.data tests: one cache directory per test module."""

from __future__ import annotations

import pytest

from tintin import data


@pytest.fixture(scope="module")
def shared_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tintin-data")


@pytest.fixture(scope="module")
def load_real(shared_data_dir):
    """Load a real data set once per test module, or skip with the printed reason if its source is absent."""
    loaded = {}
    status = {name: (ok, reason) for name, ok, reason in data.availability()}

    def get(name: str) -> data.Dataset:
        ok, reason = status[name]
        if not ok:
            pytest.skip(f"{name} source not installed here: {reason}")
        if name not in loaded:
            loaded[name] = data.load(name, data_dir=shared_data_dir)
        return loaded[name]

    return get
