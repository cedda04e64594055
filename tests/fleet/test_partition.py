"""Partitions of a data set across devices: IID and Dirichlet label skew, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from tintin import data
from tintin.fleet import DeviceSource, FleetError, parse_scheme, partition_dataset


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


def test_iid_shards_are_disjoint_cover_the_training_set_and_are_balanced(digits):
    fleet = partition_dataset(digits, 7, "iid", seed=1)
    assert isinstance(fleet, DeviceSource)
    idx = np.concatenate(fleet.shards)
    assert sorted(idx.tolist()) == list(range(len(digits.y_train)))
    assert fleet.sizes().max() - fleet.sizes().min() <= 1
    x, y = fleet.device_train(3)
    assert x.dtype == np.int8 and y.dtype == np.int64 and x.shape[1:] == digits.sample_shape


def test_same_seed_same_partition_other_seed_other(digits):
    a = partition_dataset(digits, 10, "dirichlet:0.3", seed=5)
    b = partition_dataset(digits, 10, "dirichlet:0.3", seed=5)
    c = partition_dataset(digits, 10, "dirichlet:0.3", seed=6)
    assert all(np.array_equal(s, t) for s, t in zip(a.shards, b.shards))
    assert not all(np.array_equal(s, t) for s, t in zip(a.shards, c.shards))
    assert np.array_equal(a.device_test(2)[0], b.device_test(2)[0])


def test_small_alpha_skews_labels_more_than_iid(digits):
    def dominant_share(fleet):
        return np.mean([fleet.label_counts(i).max() / fleet.label_counts(i).sum() for i in range(fleet.num_devices)])

    iid = partition_dataset(digits, 20, "iid", seed=0)
    skew = partition_dataset(digits, 20, "dirichlet:0.1", seed=0)
    assert sorted(np.concatenate(skew.shards).tolist()) == list(range(len(digits.y_train)))
    assert dominant_share(skew) > 2 * dominant_share(iid)


def test_device_test_follows_the_device_labels(digits):
    fleet = partition_dataset(digits, 20, "dirichlet:0.1", seed=0, test_per_device=40)
    for i in range(5):
        _, y = fleet.device_test(i)
        assert len(y) == 40
        assert set(y.tolist()) <= set(np.flatnonzero(fleet.label_counts(i)).tolist())


def test_samples_per_device_allows_more_devices_than_samples(digits):
    fleet = partition_dataset(digits, 5000, "dirichlet:0.5", seed=0, samples_per_device=12)
    assert fleet.num_devices == 5000 and all(fleet.sizes() == 12)
    with pytest.raises(FleetError, match="--samples-per-device"):
        partition_dataset(digits, 5000, "iid", seed=0)


@pytest.mark.parametrize("text", ["", "dirichlet", "dirichlet:", "dirichlet:0", "dirichlet:-1", "dirichlet:x",
                                  "iid:3", "shards:2", "dirichlet:inf"])
def test_bad_scheme_strings_are_one_line_errors(text):
    with pytest.raises(FleetError, match="bad partition"):
        parse_scheme(text)


def test_parse_scheme_reads_alpha():
    assert parse_scheme("dirichlet:0.3").alpha == 0.3 and str(parse_scheme("dirichlet:0.3")) == "dirichlet:0.3"
    assert parse_scheme("iid").kind == "iid"


def test_clients_below_one_are_refused(digits):
    with pytest.raises(FleetError, match="at least 1"):
        partition_dataset(digits, 0)


def test_users_own_file_partitions(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] > 0).astype(int)
    path = tmp_path / "mine.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=",".join([f"f{i}" for i in range(6)] + ["label"]),
               comments="", fmt="%.5f")
    ds = data.resolve_dataset(str(path))
    fleet = partition_dataset(ds, 4, "dirichlet:1.0", seed=0)
    assert fleet.num_classes == 2 and sum(len(fleet.device_train(i)[1]) for i in range(4)) == len(ds.y_train)
