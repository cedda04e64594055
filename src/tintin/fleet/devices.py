"""What a fleet trains on: a :class:`DeviceSource`, the data of ``num_devices`` simulated devices.

Any object with these attributes and methods is a source (a structural ``Protocol``): a partition
of a data set (:func:`tintin.fleet.partition_dataset`), or a workload whose devices differ by
physics or style. Samples are int8 mantissas at scale ``2**input_exponent``; labels are int64
class indices (classification) or int8 target mantissas at ``2**target_exponent`` (regression).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .errors import FleetError

TASKS = ("classification", "regression")


@runtime_checkable
class DeviceSource(Protocol):
    name: str
    task: str                      # "classification" or "regression"
    num_classes: int               # 1 for regression
    sample_shape: tuple[int, ...]
    input_exponent: int            # x mantissas are int8 at scale 2**input_exponent
    target_exponent: int | None    # regression targets are int8 mantissas at 2**target_exponent; None for classification
    num_devices: int
    synthetic: bool

    def device_train(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...  # device i's local samples (int8 x, int64 labels or int8 targets)

    def device_test(self, i: int) -> tuple[np.ndarray, np.ndarray]: ...   # device i's own held-out samples

    def global_test(self) -> tuple[np.ndarray, np.ndarray]: ...           # pooled test set for the global model


def check_source(source) -> None:
    """Refuse, with one line, an object that is not a usable :class:`DeviceSource`."""
    missing = [a for a in ("name", "task", "num_classes", "sample_shape", "input_exponent", "target_exponent",
                           "num_devices", "synthetic", "device_train", "device_test", "global_test")
               if not hasattr(source, a)]
    if missing:
        raise FleetError(f"{type(source).__name__} is not a device source: it lacks {', '.join(missing)}")
    if source.task not in TASKS:
        raise FleetError(f"device source {source.name}: task must be one of {', '.join(TASKS)}, got {source.task!r}")
    if int(source.num_devices) < 1:
        raise FleetError(f"device source {source.name} has no devices")
    if source.task == "regression" and source.target_exponent is None:
        raise FleetError(f"device source {source.name}: a regression source needs a target exponent")
    if source.task == "classification" and int(source.num_classes) < 2:
        raise FleetError(f"device source {source.name}: a classifier needs at least 2 classes")


def device_index(source, i: int) -> int:
    """``i`` checked against the source's device count."""
    i = int(i)
    if not 0 <= i < int(source.num_devices):
        raise FleetError(f"device {i} outside [0, {source.num_devices})")
    return i
