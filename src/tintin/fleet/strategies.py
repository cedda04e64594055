"""Flower strategies of a fleet: integer FedAvg, federated Reptile (TinyReptile) and, for
comparison, float FedAvg of the PyTorch twin.

All are :class:`flwr.serverapp.strategy.Strategy` subclasses, so they run under Flower's own
``strategy.start(...)`` as well as under the fleet's ServerApp loop. Each round:

``configure_train``   samples the round's devices (:meth:`FleetSpec.sampled_devices`), groups
                      them by SuperNode (device ``d`` on the ``d % nodes``-th node in node-id
                      order) and sends every node the global model and its device list;
``aggregate_train``   decodes every device's tensors from the replies and aggregates them with
                      :class:`tintin.fleet.aggregation.ExactSum`:

- ``fedavg``: the exact weighted mean (weights: the devices' sample counts);
- ``reptile``: ``meta + eps * (mean - meta)`` (:func:`tintin.fleet.aggregation.reptile_sum`);
- ``fomaml``: Reptile's server step on the devices' first-order MAML replies (``meta`` moved by
  their query steps' displacement at the adapted weights: :class:`FederatedFOMAML`);
- top-P% replies are rebuilt exactly on the received model (:func:`tintin.fleet.codec.add_sparse`);
- personal parameters are never sent and keep their global value.

``fedavg-float`` averages float32 arrays in float64 (Flower's FedAvg rule) and is only the
comparison: integer models never pass through it.

Bytes per round are exact (:mod:`tintin.fleet.codec`): ``bytes_down`` = the dense shared model
to every sampled device; ``bytes_up`` = every device's dense or sparse message.
"""

from __future__ import annotations

import logging

import numpy as np

from ..numerics import Scale
from .aggregation import ExactSum, eps_fraction, reptile_sum
from .codec import (add_sparse, arrays_model, dense_bytes, from_record, model_arrays, sparse_bytes, to_record)
from .errors import FleetError
from .local import get_params, tensor_specs
from .spec import FleetSpec

log = logging.getLogger("tintin.fleet")


def _strategy_base():
    from flwr.serverapp.strategy import Strategy

    return Strategy


def _reply_error(reply) -> str | None:
    if reply.has_error():
        reason = str(reply.error.reason).strip().splitlines()
        tail = [line for line in reason if line.strip()]
        return tail[-1] if tail else f"code {reply.error.code}"
    return None


class _Common:
    kind = "integer"

    def __init__(self, spec: FleetSpec):
        self.spec = spec
        self.specs = {t.name: t for t in tensor_specs(spec.template)}
        self.received: dict[str, np.ndarray] = {}
        self.last_devices: list[int] = []
        self.bytes_up = 0
        self.bytes_down = 0
        self.node_ids: list[int] = []

    # -- shared by every kind ---------------------------------------------------------------------
    def _nodes(self, grid) -> list[int]:
        if not self.node_ids:
            self.node_ids = sorted(int(n) for n in grid.get_node_ids())
            if not self.node_ids:
                raise FleetError("no Flower SuperNode is connected")
        return self.node_ids

    def _messages(self, server_round: int, arrays, grid, message_type: str, devices: list[int]):
        from flwr.app import ConfigRecord, Message, RecordDict

        nodes = self._nodes(grid)
        groups: dict[int, list[int]] = {}
        for d in devices:
            groups.setdefault(nodes[d % len(nodes)], []).append(d)
        out = []
        for node, devs in sorted(groups.items()):
            config = ConfigRecord({"devices": devs, "round": int(server_round), "kind": self.kind})
            out.append(Message(RecordDict({"arrays": arrays, "config": config}), message_type=message_type,
                               dst_node_id=node))
        return out

    def configure_train(self, server_round, arrays, config, grid):
        self.received = from_record(arrays)
        self.last_devices = self.spec.sampled_devices(server_round)
        self.bytes_down = self.down_bytes_per_device() * len(self.last_devices)
        return self._messages(server_round, arrays, grid, "train", self.last_devices)

    def configure_evaluate(self, server_round, arrays, config, grid):
        if not self.spec.device_eval or server_round != self.spec.rounds:
            return []
        return self._messages(server_round, arrays, grid, "evaluate", list(range(int(self.spec.source.num_devices))))

    def aggregate_evaluate(self, server_round, replies):
        from flwr.app import MetricRecord

        key = "correct" if self.spec.task == "classification" else "sse"
        count, total = 0, 0
        for reply in replies:
            err = _reply_error(reply)
            if err:
                raise FleetError(f"device evaluation failed on a Flower node: {err}")
            m = reply.content["metrics"]
            count += int(m["count"])
            total += m[key]
        if count == 0:
            return None
        value = total / count
        return MetricRecord({"device_test_accuracy" if key == "correct" else "device_test_mse": float(value),
                             "count": count})

    def summary(self) -> None:
        log.info("%s: %d devices, %d rounds, fraction %g", type(self).__name__, self.spec.source.num_devices,
                 self.spec.rounds, self.spec.fraction)

    def _replies(self, replies):
        out = []
        for reply in replies:
            err = _reply_error(reply)
            if err:
                raise FleetError(f"device training failed on a Flower node: {err}")
            out.append((from_record(reply.content["arrays"]), reply.content["metrics"]))
        if not out:
            raise FleetError("no Flower node replied in this round")
        return out

    @staticmethod
    def _metrics(parsed, up: int, down: int):
        from flwr.app import MetricRecord

        n = sum(int(m["num-examples"]) for _, m in parsed)
        loss = sum(float(m["train_loss"]) * int(m["devices"]) for _, m in parsed)
        devices = sum(int(m["devices"]) for _, m in parsed)
        return MetricRecord({"num-examples": n, "train_loss": loss / max(devices, 1), "devices": devices,
                             "bytes_up": up, "bytes_down": down})


class IntegerFedAvg(_Common, _strategy_base()):
    """Integer FedAvg: the exact weighted mean of the devices' integer models."""

    def down_bytes_per_device(self) -> int:
        params = arrays_model(self.received, self.spec.shared_names)
        return dense_bytes(params)

    def up_bytes_per_device(self) -> int:
        params = {n: self.specs[n] for n in self.spec.shared_names}
        if self.spec.top_p is None:
            return sum(int(np.prod(t.shape)) * _itemsize(t) + 3 for t in params.values()) + 4
        return sparse_bytes({n: int(np.prod(t.shape)) for n, t in params.items()},
                            {n: _itemsize(t) for n, t in params.items()}, self.spec.top_p)

    def combine(self, name: str, acc: ExactSum):
        t = self.specs[name]
        return acc.result(t.kind, t.bits, self.spec.template.config.scale_mode)

    def aggregate_train(self, server_round, replies):
        parsed = self._replies(replies)
        received = arrays_model(self.received, self.spec.shared_names)
        out = {}
        devices = 0
        for name in self.spec.shared_names:
            acc = ExactSum(self.specs[name].shape)
            for arrays, _ in parsed:
                weights = arrays["weights"]
                scales = arrays[name + ".scale"]
                if self.spec.top_p is None:
                    for j, w in enumerate(weights):
                        acc.add(arrays[name][j], Scale.from_tuple(scales[j]), int(w))
                else:
                    counts = arrays[name + ".count"]
                    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
                    for j, w in enumerate(weights):
                        sl = slice(starts[j], starts[j + 1])
                        add_sparse(acc, *received[name], arrays[name + ".idx"][sl], arrays[name + ".val"][sl],
                                   Scale.from_tuple(scales[j]), int(w))
            out[name] = self.combine(name, acc)
        devices = sum(len(a["weights"]) for a, _ in parsed)
        self.bytes_up = self.up_bytes_per_device() * devices
        full = {**{n: (self.received[n], Scale.from_tuple(self.received[n + ".scale"]))
                   for n in self.spec.personal}, **out}
        return to_record(model_arrays(full)), self._metrics(parsed, self.bytes_up, self.bytes_down)


def _itemsize(t) -> int:
    if t.kind == "bias":
        return 4
    return 1 if t.bits <= 8 else 2


class FederatedReptile(IntegerFedAvg):
    """Federated Reptile (TinyReptile): ``meta += eps * (mean(devices) - meta)``, exactly, with
    ``eps = spec.meta_lr_at(round)``."""

    server_round = 1

    def aggregate_train(self, server_round, replies):
        self.server_round = int(server_round)
        return super().aggregate_train(server_round, replies)

    def combine(self, name: str, acc: ExactSum):
        t = self.specs[name]
        meta = (self.received[name], Scale.from_tuple(self.received[name + ".scale"]))
        return reptile_sum(meta, acc, eps_fraction(self.spec.meta_lr_at(self.server_round))).result(
            t.kind, t.bits, self.spec.template.config.scale_mode)


class FederatedFOMAML(FederatedReptile):
    """First-order MAML across devices (FOMAML, the Per-FedAvg first-order meta step): every
    device adapts on a K-sample support draw as an unseen device would, then takes
    ``plan.query_steps`` steps on a disjoint query draw and returns ``meta + (its query-step
    displacement)`` (:func:`tintin.fleet.local.train_device`), an integer model; the server step
    is Reptile's, so ``meta += eps * mean(query displacements)``, exactly."""


class FloatFedAvg(_Common, _strategy_base()):
    """FedAvg of the float32 twin (float64 weighted mean), the comparison for integer FedAvg."""

    kind = "float"

    def down_bytes_per_device(self) -> int:
        return dense_bytes(self.received, floating=True)

    def aggregate_train(self, server_round, replies):
        parsed = self._replies(replies)
        names = [k for k in self.received]
        out = {}
        total = sum(int(a["weights"].sum()) for a, _ in parsed)
        for name in names:
            acc = np.zeros(self.received[name].shape, dtype=np.float64)
            for arrays, _ in parsed:
                w = arrays["weights"].astype(np.float64)
                acc += np.tensordot(w, arrays[name].astype(np.float64), axes=1)
            out[name] = (acc / total).astype(np.float32)
        devices = sum(len(a["weights"]) for a, _ in parsed)
        self.bytes_up = dense_bytes(self.received, floating=True) * devices
        return to_record(out), self._metrics(parsed, self.bytes_up, self.bytes_down)


def make_strategy(spec: FleetSpec, kind: str | None = None):
    """The strategy object of ``spec.strategy`` (or of ``kind``)."""
    name = kind or spec.strategy
    if name == "fedavg":
        return IntegerFedAvg(spec)
    if name == "reptile":
        return FederatedReptile(spec)
    if name == "fomaml":
        return FederatedFOMAML(spec)
    if name == "fedavg-float":
        return FloatFedAvg(spec)
    raise FleetError(f"unknown strategy {name!r} (fedavg, reptile, fomaml, fedavg-float)")


def initial_arrays(spec: FleetSpec, kind: str):
    """The global model of round 0 as a Flower ArrayRecord."""
    if kind == "float":
        from ..reference.twin import float_twin
        from .local import float_arrays

        return to_record(float_arrays(float_twin(spec.template)))
    return to_record(model_arrays(get_params(spec.template)))
