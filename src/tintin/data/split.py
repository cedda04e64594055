"""Seeded stratified train/test split (numpy only, reproducible across runs)."""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["stratified_split"]


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into train and test so that every class keeps its proportion.

    ``labels`` is a 1-D integer array of class indices (``N`` samples). Each class ``c`` with
    ``N_c`` samples gives ``round(n_test * N_c / N)`` samples to the test split, with the
    largest-remainder rule fixing the total to exactly ``n_test`` (ties to the smaller class index).
    Within a class the test samples are drawn by a permutation from
    ``np.random.default_rng(seed)``; classes are visited in increasing order. Both returned index
    arrays (int64) are shuffled with the same generator so classes are interleaved.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError("labels must be a 1-D integer array")
    total = len(y)
    if not 0 < n_test < total:
        raise DataError(f"n_test must be in (0, {total}), got {n_test}")
    classes, counts = np.unique(y, return_counts=True)
    exact = n_test * counts / total
    per_class = np.floor(exact).astype(np.int64)
    shortfall = n_test - int(per_class.sum())
    order = np.argsort(-(exact - per_class), kind="stable")
    per_class[order[:shortfall]] += 1

    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for cls, k in zip(classes, per_class):
        members = np.flatnonzero(y == cls)
        members = members[rng.permutation(len(members))]
        test_parts.append(members[:k])
        train_parts.append(members[k:])
    train_idx = np.concatenate(train_parts).astype(np.int64)
    test_idx = np.concatenate(test_parts).astype(np.int64)
    return train_idx[rng.permutation(len(train_idx))], test_idx[rng.permutation(len(test_idx))]
