"""Seeded stratified split: a partition with exact test size and per-class proportions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.data import DataError
from tintin.data.split import stratified_split


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=300), st.floats(0.01, 0.99), st.integers(0, 2**32))
def test_split_is_a_stratified_partition(labels, fraction, seed):
    y = np.array(labels)
    n_test = min(max(1, round(fraction * len(y))), len(y) - 1)
    train, test = stratified_split(y, n_test, seed)
    assert len(test) == n_test and len(train) == len(y) - n_test
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
    for cls in np.unique(y):
        share = n_test * np.sum(y == cls) / len(y)
        assert abs(np.sum(y[test] == cls) - share) < 1.0 + 1e-9
    again = stratified_split(y, n_test, seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)


def test_split_depends_on_the_seed_and_rejects_bad_sizes():
    y = np.repeat(np.arange(3), 20)
    a, b = stratified_split(y, 15, 0), stratified_split(y, 15, 1)
    assert not np.array_equal(np.sort(a[1]), np.sort(b[1]))
    for bad in (0, 60, -1):
        with pytest.raises(DataError):
            stratified_split(y, bad, 0)
    with pytest.raises(DataError):
        stratified_split(y.astype(float), 10, 0)
