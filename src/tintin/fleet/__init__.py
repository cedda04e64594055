"""Fleets: integer federated learning and federated meta-learning across simulated devices, on
Flower (see docs/fleet.md).

Flower and Ray are imported only when a fleet runs (the ``fleet`` extra)."""

from .aggregation import ExactSum, aggregate, reptile_step
from .devices import DeviceSource, check_source
from .errors import AggregationError, FleetError
from .partition import PartitionedDataset, parse_scheme, partition_dataset
from .run import FleetConfig, FleetResult, run_fleet

__all__ = ["AggregationError", "DeviceSource", "ExactSum", "FleetConfig", "FleetError", "FleetResult",
           "PartitionedDataset", "aggregate", "check_source", "parse_scheme", "partition_dataset", "reptile_step",
           "run_fleet"]
