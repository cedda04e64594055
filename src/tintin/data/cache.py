"""On-disk cache of prepared data sets as ``.npz`` files (no pickle), written atomically.

A cache file is named ``<name>-<key>.npz`` where ``key`` is a hash of the data set name, its
options, a fingerprint of the source (file size and modification time, package version, or
generator version) and :data:`CACHE_FORMAT`. A file that cannot be read or fails validation is
treated as absent (the caller rebuilds and overwrites it), so a damaged cache is never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import Dataset
from .errors import DataError

__all__ = ["CACHE_FORMAT", "default_data_dir", "cache_key", "cache_path", "read_cache", "write_cache"]

#: Bump when the layout or the preparation of any data set changes: old files are then ignored.
CACHE_FORMAT = 1
_EXTRA_PREFIX = "extra__"
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def default_data_dir() -> Path:
    """``$TINTIN_DATA`` if set, else ``~/.cache/tintin/data``."""
    env = os.environ.get("TINTIN_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tintin" / "data"


def cache_key(name: str, options: dict[str, Any], fingerprint: str) -> str:
    """16 hex digits identifying one prepared data set (name, options, source, format)."""
    blob = json.dumps({"format": CACHE_FORMAT, "name": name, "options": options,
                       "source": fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(data_dir: Path, name: str, key: str) -> Path:
    return Path(data_dir) / f"{name}-{key}.npz"


def read_cache(path: Path, key: str) -> Dataset | None:
    """The cached data set at ``path``, or ``None`` if absent, unreadable or invalid (with a warning
    when the file exists but is damaged)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"][()]))
            if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
                raise DataError("cache key mismatch")
            arrays = {k: npz[k] for k in _ARRAYS}
            extras = {k[len(_EXTRA_PREFIX):]: npz[k] for k in npz.files if k.startswith(_EXTRA_PREFIX)}
        return Dataset(
            name=meta["name"], **arrays, input_exponent=int(meta["input_exponent"]),
            num_classes=int(meta["num_classes"]), class_names=tuple(meta["class_names"]),
            synthetic=bool(meta["synthetic"]), description=meta["description"],
            citation=meta["citation"], source=meta["source"], extras=extras)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile,
            json.JSONDecodeError, DataError) as exc:
        warnings.warn(f"ignoring damaged data cache {path} ({type(exc).__name__}: {exc}); rebuilding",
                      RuntimeWarning, stacklevel=3)
        return None


def write_cache(path: Path, key: str, dataset: Dataset) -> bool:
    """Write ``dataset`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    Returns ``False`` (with a warning) if the directory is not writable; the data set is still usable.
    """
    meta = {"format": CACHE_FORMAT, "key": key, "name": dataset.name,
            "input_exponent": dataset.input_exponent, "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names), "synthetic": dataset.synthetic,
            "description": dataset.description, "citation": dataset.citation,
            "source": dataset.source}
    arrays: dict[str, np.ndarray] = {k: np.ascontiguousarray(getattr(dataset, k)) for k in _ARRAYS}
    arrays.update({_EXTRA_PREFIX + k: np.ascontiguousarray(v) for k, v in dataset.extras.items()})
    arrays["meta"] = np.array(json.dumps(meta))
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o644)          # mkstemp creates 0600; caches may be shared read-only
        os.replace(tmp_name, path)
        tmp_name = None
        return True
    except OSError as exc:
        warnings.warn(f"cannot write data cache {path} ({exc.strerror or exc}); continuing without it",
                      RuntimeWarning, stacklevel=3)
        return False
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
