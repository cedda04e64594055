"""Split a data set across simulated devices: IID shards or Dirichlet(alpha) label skew, seeded.

``partition_dataset(dataset, clients, scheme, seed)`` returns a :class:`PartitionedDataset`, a
:class:`tintin.fleet.DeviceSource`. It works for every :class:`tintin.data.Dataset`, built-in or
the user's own files (:func:`tintin.data.resolve_dataset`).

``iid``
    the training set in a seeded random order, cut into ``clients`` shards whose sizes differ by
    at most one sample (disjoint).
``dirichlet:A``
    label skew (the usual federated benchmark split): for every class ``c`` the proportions
    ``p_c ~ Dirichlet(A * 1_clients)`` cut that class's samples (in seeded random order) among the
    devices (disjoint). Small ``A`` (0.1, 0.3) gives devices dominated by one or two classes; large
    ``A`` approaches IID. Draws repeat (at most 100 times) until every device has a sample.

``samples_per_device=K`` instead gives every device ``K`` samples drawn with replacement from the
whole training set (uniformly for ``iid``, by per-device class proportions ``q_i ~
Dirichlet(A * 1_classes)`` for ``dirichlet:A``): shards then overlap, which lets a fleet have more
devices than the data set has samples (the scale runs).

A device's own test samples (``device_test``) are ``test_per_device`` samples of the test split
drawn with replacement following the device's training label distribution; ``global_test`` is the
whole test split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .devices import device_index
from .errors import FleetError

_DIRICHLET = re.compile(r"^dirichlet:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)$")
MAX_REDRAWS = 100


@dataclass(frozen=True)
class Scheme:
    """A parsed partition scheme: ``kind`` is ``iid`` or ``dirichlet``; ``alpha`` for the latter."""

    kind: str
    alpha: float | None = None

    def __str__(self) -> str:
        return self.kind if self.alpha is None else f"dirichlet:{self.alpha:g}"


def parse_scheme(text: str) -> Scheme:
    """``iid`` or ``dirichlet:A`` (``A > 0``), else a one-line :class:`FleetError`."""
    text = str(text).strip()
    if text == "iid":
        return Scheme("iid")
    m = _DIRICHLET.match(text)
    if m:
        alpha = float(m.group(1))
        if alpha > 0 and np.isfinite(alpha):
            return Scheme("dirichlet", alpha)
    raise FleetError(f"bad partition {text!r}: use iid or dirichlet:A with A > 0 (e.g. dirichlet:0.3)")


class PartitionedDataset:
    """A data set split across ``num_devices`` devices (a :class:`tintin.fleet.DeviceSource`)."""

    task = "classification"
    target_exponent = None

    def __init__(self, dataset, clients: int, scheme: Scheme, seed: int, shards: list[np.ndarray],
                 test_per_device: int):
        self.dataset = dataset
        self.name = f"{dataset.name}/{scheme}"
        self.scheme = scheme
        self.seed = int(seed)
        self.num_classes = int(dataset.num_classes)
        self.sample_shape = tuple(dataset.sample_shape)
        self.input_exponent = int(dataset.input_exponent)
        self.num_devices = int(clients)
        self.synthetic = bool(dataset.synthetic)
        self.shards = shards
        self.test_per_device = int(test_per_device)
        y_test = np.asarray(dataset.y_test)
        self._test_by_class = [np.flatnonzero(y_test == c) for c in range(self.num_classes)]

    def device_train(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.shards[device_index(self, i)]
        return np.asarray(self.dataset.x_train)[idx], np.asarray(self.dataset.y_train)[idx]

    def label_counts(self, i: int) -> np.ndarray:
        """Training samples of device ``i`` per class."""
        y = np.asarray(self.dataset.y_train)[self.shards[device_index(self, i)]]
        return np.bincount(y, minlength=self.num_classes)

    def device_test(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        i = device_index(self, i)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7, i]))
        counts = self.label_counts(i).astype(np.float64)
        available = np.array([len(t) > 0 for t in self._test_by_class])
        p = counts * available
        if p.sum() == 0:
            p = available.astype(np.float64)
        classes = rng.choice(self.num_classes, size=self.test_per_device, p=p / p.sum())
        idx = np.array([self._test_by_class[c][rng.integers(len(self._test_by_class[c]))] for c in classes],
                       dtype=np.int64)
        return np.asarray(self.dataset.x_test)[idx], np.asarray(self.dataset.y_test)[idx]

    def global_test(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.dataset.x_test), np.asarray(self.dataset.y_test)

    def sizes(self) -> np.ndarray:
        """Training samples per device."""
        return np.array([len(s) for s in self.shards], dtype=np.int64)


def _disjoint_iid(n: int, clients: int, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [np.sort(part) for part in np.array_split(order, clients)]


def _disjoint_dirichlet(y: np.ndarray, num_classes: int, clients: int, alpha: float, rng) -> list[np.ndarray]:
    for _ in range(MAX_REDRAWS):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for c in range(num_classes):
            idx = rng.permutation(np.flatnonzero(y == c))
            p = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(p)[:-1] * len(idx)).astype(np.int64)
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].append(piece)
        shards = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(s) for s in shards) > 0:
            return shards
    raise FleetError(f"dirichlet:{alpha:g} left a device without samples in {MAX_REDRAWS} draws: use fewer "
                     f"clients, a larger alpha or --samples-per-device")


def _sampled(y: np.ndarray, num_classes: int, clients: int, per_device: int, scheme: Scheme, rng) -> list[np.ndarray]:
    n = len(y)
    if scheme.kind == "iid":
        return [np.sort(rng.integers(0, n, size=per_device)) for _ in range(clients)]
    by_class = [np.flatnonzero(y == c) for c in range(num_classes)]
    present = np.array([len(b) > 0 for b in by_class])
    shards = []
    for _ in range(clients):
        q = rng.dirichlet(np.full(num_classes, scheme.alpha)) * present
        q = q / q.sum() if q.sum() > 0 else present / present.sum()
        classes = rng.choice(num_classes, size=per_device, p=q)
        shards.append(np.sort(np.array([by_class[c][rng.integers(len(by_class[c]))] for c in classes],
                                       dtype=np.int64)))
    return shards


def partition_dataset(dataset, clients: int, scheme: str = "iid", seed: int = 0, *,
                      samples_per_device: int | None = None, test_per_device: int = 20) -> PartitionedDataset:
    """Split ``dataset`` (a :class:`tintin.data.Dataset`) across ``clients`` devices.

    >>> from tintin import data
    >>> from tintin.fleet import partition_dataset
    >>> fleet = partition_dataset(data.load("digits"), 10, "dirichlet:0.3", seed=0)
    >>> x, y = fleet.device_train(3)
    >>> fleet.num_devices, x.dtype.name, int(fleet.sizes().sum()) == len(data.load("digits").y_train)
    (10, 'int8', True)
    """
    parsed = scheme if isinstance(scheme, Scheme) else parse_scheme(scheme)
    clients = int(clients)
    if clients < 1:
        raise FleetError(f"a fleet needs at least 1 client, got {clients}")
    if test_per_device < 1:
        raise FleetError(f"test_per_device must be at least 1, got {test_per_device}")
    y = np.asarray(dataset.y_train)
    if len(y) == 0 or len(dataset.y_test) == 0:
        raise FleetError(f"data set {dataset.name} has an empty training or test split")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3, clients]))
    if samples_per_device is not None:
        if samples_per_device < 1:
            raise FleetError(f"samples_per_device must be at least 1, got {samples_per_device}")
        shards = _sampled(y, dataset.num_classes, clients, int(samples_per_device), parsed, rng)
    else:
        if clients > len(y):
            raise FleetError(f"{clients} clients but only {len(y)} training samples in {dataset.name}: use fewer "
                             f"clients or draw samples per device (--samples-per-device)")
        if parsed.kind == "iid":
            shards = _disjoint_iid(len(y), clients, rng)
        else:
            shards = _disjoint_dirichlet(y, dataset.num_classes, clients, parsed.alpha, rng)
    return PartitionedDataset(dataset, clients, parsed, seed, shards, test_per_device)
