"""The :class:`Dataset` container: quantised train/test splits plus what they are and where from."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import DataError
from .quantize import INT8_LIMIT, dequantize

__all__ = ["Dataset"]


def _read_only(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A prepared, quantised classification data set (immutable; arrays are read-only views).

    Attributes
    ----------
    name:
        Registry name, e.g. ``"digits"``.
    x_train, x_test:
        ``np.int8`` mantissas in ``[-127, 127]`` of shape ``(N, *sample_shape)``. Images are
        ``(N, 1, H, W)`` (channels first), time series ``(N, C, L)``. Real value: ``x * 2**input_exponent``.
    y_train, y_test:
        ``np.int64`` class indices in ``[0, num_classes)``, shape ``(N,)``.
    input_exponent:
        Power-of-two exponent of the input scale (one per data set, shared by both splits).
    num_classes, class_names:
        Number of classes and their names (``len(class_names) == num_classes``).
    synthetic:
        ``True`` for generated data (the description then starts with ``"SYNTHETIC"``).
    description:
        One line saying what the data is.
    citation:
        How to cite the data / its licence.
    source:
        Where the bytes came from (file path, package, or generator and seed).
    extras:
        Optional read-only numpy arrays: per-sample metadata named ``train_<what>`` / ``test_<what>``
        (e.g. ``train_snr_db``) and preprocessing constants (e.g. ``channel_mean``, ``channel_std``).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_exponent: int
    num_classes: int
    class_names: tuple[str, ...]
    synthetic: bool
    description: str
    citation: str
    source: str
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.ndim < 2:
                raise DataError(f"{self.name}: x_{split} must be an int8 array (N, ...), got "
                                f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
            if x.size and int(x.min()) < -INT8_LIMIT:
                raise DataError(f"{self.name}: x_{split} contains -128 (range is [-127, 127])")
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise DataError(f"{self.name}: y_{split} must be int64 of shape ({x.shape[0]},), got "
                                f"{getattr(y, 'dtype', type(y).__name__)} {getattr(y, 'shape', '')}")
            if y.size and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(f"{self.name}: y_{split} has labels outside [0, {self.num_classes})")
            set_(self, f"x_{split}", _read_only(x))
            set_(self, f"y_{split}", _read_only(y))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{self.name}: train sample shape {self.x_train.shape[1:]} differs from "
                            f"test {self.x_test.shape[1:]}")
        if isinstance(self.input_exponent, bool) or not isinstance(self.input_exponent, (int, np.integer)):
            raise DataError(f"{self.name}: input_exponent must be an integer")
        set_(self, "input_exponent", int(self.input_exponent))
        set_(self, "num_classes", int(self.num_classes))
        names = tuple(str(n) for n in self.class_names)
        if len(names) != self.num_classes:
            raise DataError(f"{self.name}: {len(names)} class names for {self.num_classes} classes")
        set_(self, "class_names", names)
        if self.synthetic and not self.description.startswith("SYNTHETIC"):
            raise DataError(f"{self.name}: a synthetic data set's description must start with SYNTHETIC")
        if "\n" in self.description:
            raise DataError(f"{self.name}: description must be one line")
        extras = {}
        for key, value in dict(self.extras).items():
            if not isinstance(value, np.ndarray):
                raise DataError(f"{self.name}: extras[{key!r}] must be a numpy array")
            extras[str(key)] = _read_only(value)
        set_(self, "extras", types.MappingProxyType(extras))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 28, 28)`` or ``(6, 100)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def input_scale(self) -> float:
        """Real value of one mantissa step: ``2.0 ** input_exponent``."""
        return float(2.0**self.input_exponent)

    @property
    def num_features(self) -> int:
        """Number of int8 values per sample (product of :attr:`sample_shape`)."""
        return int(np.prod(self.sample_shape))

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_train, x_test)`` as read-only ``(N, num_features)`` int8 views (for MLPs)."""
        return (self.x_train.reshape(len(self.x_train), -1),
                self.x_test.reshape(len(self.x_test), -1))

    def real(self, x: np.ndarray) -> np.ndarray:
        """Real values of mantissas ``x`` of this data set as float64 (``x * 2**input_exponent``)."""
        return dequantize(x, self.input_exponent)

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Number of samples per class in ``split`` (``"train"`` or ``"test"``), int64 ``(num_classes,)``."""
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        y = self.y_train if split == "train" else self.y_test
        return np.bincount(y, minlength=self.num_classes).astype(np.int64)

    def summary(self) -> str:
        """One line: name, sizes, sample shape, classes and scale."""
        return (f"{self.name}: {len(self.x_train)} train / {len(self.x_test)} test, sample "
                f"{self.sample_shape}, {self.num_classes} classes, int8 x 2^{self.input_exponent}"
                f"{' (SYNTHETIC)' if self.synthetic else ''}")

    @classmethod
    def from_arrays(cls, x_train, y_train, x_test=None, y_test=None, **options) -> "Dataset":
        """A quantised data set from the user's arrays: labels checked, a seeded stratified test split
        when none is given, float inputs standardised per channel and quantised once.

        Keywords: ``class_names``, ``input_exponent`` (inputs already int8), ``test_fraction``
        (default 0.2), ``split_seed`` (default 0), ``name``, ``description``, ``source``,
        ``synthetic``, ``citation``. See :func:`tintin.data.arrays.dataset_from_arrays`, which this
        calls (as do the ``.csv``, ``.npz`` and ``.ts`` readers of the command line)::

            ds = Dataset.from_arrays(x, y, test_fraction=0.25, class_names=["ok", "fault"])

        >>> import numpy as np
        >>> from tintin.data import Dataset
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(100, 6)).astype(np.float32)       # 100 recordings, 6 features
        >>> y = (x[:, 0] > 0).astype(np.int64)                     # 2 classes
        >>> ds = Dataset.from_arrays(x, y, class_names=["ok", "fault"])
        >>> ds.x_train.dtype, ds.sample_shape, ds.num_classes, len(ds.x_train) + len(ds.x_test)
        (dtype('int8'), (6,), 2, 100)
        """
        from .arrays import dataset_from_arrays

        return dataset_from_arrays(x_train, y_train, x_test, y_test, **options)

    def __repr__(self) -> str:
        return f"Dataset({self.summary()})"
