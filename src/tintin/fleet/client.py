"""The Flower ClientApp of a fleet: one SuperNode trains the devices the server names.

Handlers (Flower 1.42 Message API):

``@app.train()``     content ``arrays`` (the global model, integer mantissas + ``.scale`` exponents,
                     or float32 for the float comparison) and ``config`` (``devices``, ``round``,
                     ``kind`` = ``integer`` | ``float``). Each named device starts from the global
                     model (and its own personal part, kept in the node's ``context.state``),
                     trains (:func:`tintin.fleet.local.train_device`, or for the emulated devices
                     of ``spec.emulated`` the generated C program in QEMU/simavr) and is encoded dense or
                     top-P% sparse (:mod:`tintin.fleet.codec`). The reply holds integers only
                     for integer runs.
``@app.evaluate()``  the same model evaluated on each named device's own test samples (with its
                     personal part): ``count`` and ``correct`` (or ``sse``).
"""

from __future__ import annotations

import copy

import numpy as np

from .codec import arrays_model, from_record, model_arrays, sparse_update, to_record, top_positions
from .local import (device_seed, evaluate_device, evaluate_float, float_arrays, get_params, load_float,
                    set_params, train_device, train_device_on_target, train_float_device)
from .spec import FleetSpec

_TWINS: dict[int, object] = {}


def _twin(spec: FleetSpec):
    key = id(spec.template)
    if key not in _TWINS:
        import torch

        from ..reference.twin import float_twin

        torch.set_num_threads(1)
        _TWINS[key] = float_twin(spec.template)
    return _TWINS[key]


def _personal_key(device: int) -> str:
    return f"personal.{device}"


def _residual_key(device: int) -> str:
    return f"residual.{device}"


def device_model(spec: FleetSpec, received: dict, device: int, state):
    """The model a device starts a round from: the received shared part, its own personal part."""
    model = copy.deepcopy(spec.template)
    set_params(model, received)
    if spec.personal and state is not None and _personal_key(device) in state:
        set_params(model, arrays_model(from_record(state[_personal_key(device)]), spec.personal))
    return model


def train_integer_devices(spec: FleetSpec, arrays: dict, devices: list[int], server_round: int, state=None):
    """Train ``devices`` from the global ``arrays``; the reply arrays and metrics (no Flower)."""
    received = arrays_model(arrays, spec.shared_names)
    params_by_name = {p.name: p for p in spec.template.parameters()}
    out: dict[str, list] = {}
    weights, losses = [], []
    for d in devices:
        model = device_model(spec, received, d, state)
        x, y = spec.source.device_train(d)
        target = spec.target_of(d)
        if target is None:
            info = train_device(model, x, y, spec.plan, device_seed(spec.seed, server_round, d), spec.target_exponent)
            losses.append(info["train_loss"])
        else:  # the generated program on an emulated MCU: the same bits, no loss reported
            train_device_on_target(model, x, y, spec.plan, device_seed(spec.seed, server_round, d), target,
                                   spec.target_exponent)
        weights.append(len(x))
        local = get_params(model)
        if spec.personal and state is not None:
            state[_personal_key(d)] = to_record(model_arrays({n: local[n] for n in spec.personal}))
        feedback = spec.top_p is not None and spec.error_feedback and state is not None
        residual = {}
        if feedback and _residual_key(d) in state:
            residual = arrays_model(from_record(state[_residual_key(d)]), spec.shared_names)
        new_residual = {}
        for name in spec.shared_names:
            m, s = local[name]
            if spec.top_p is None:
                out.setdefault(name, []).append(m)
            elif feedback:
                p = params_by_name[name]
                idx, val, s, new_residual[name] = sparse_update(
                    m, s, *received[name], residual.get(name), spec.top_p, p.kind, p.bits,
                    spec.template.config.scale_mode)
                out.setdefault(name + ".idx", []).append(idx)
                out.setdefault(name + ".val", []).append(np.asarray(val).astype(m.dtype))
                out.setdefault(name + ".count", []).append(np.int32(idx.size))
            else:
                idx = top_positions(m, s, *received[name], spec.top_p)
                out.setdefault(name + ".idx", []).append(idx)
                out.setdefault(name + ".val", []).append(m.ravel()[idx])
                out.setdefault(name + ".count", []).append(np.int32(idx.size))
            out.setdefault(name + ".scale", []).append(np.array(s.as_tuple(), dtype=np.int32))
        if feedback:
            state[_residual_key(d)] = to_record(model_arrays(new_residual))
    reply = {}
    for key, parts in out.items():
        reply[key] = np.concatenate(parts) if key.endswith((".idx", ".val")) else np.stack(parts)
    reply["devices"] = np.asarray(devices, dtype=np.int64)
    reply["weights"] = np.asarray(weights, dtype=np.int64)
    return reply, {"num-examples": int(sum(weights)), "train_loss": float(np.mean(losses)) if losses else 0.0,
                   "devices": len(devices)}


def train_float_devices(spec: FleetSpec, arrays: dict, devices: list[int], server_round: int):
    """The float32 twin's local training on ``devices`` (stacked float32 arrays, weights)."""
    net = _twin(spec)
    out: dict[str, list] = {}
    weights, losses = [], []
    plan = spec.float_plan or spec.plan
    for d in devices:
        load_float(net, arrays)
        x, y = spec.source.device_train(d)
        info = train_float_device(net, spec.template, x, y, plan, device_seed(spec.seed, server_round, d),
                                  spec.task, spec.target_exponent)
        losses.append(info["train_loss"])
        weights.append(len(x))
        for k, v in float_arrays(net).items():
            out.setdefault(k, []).append(v)
    reply = {k: np.stack(v) for k, v in out.items()}
    reply["devices"] = np.asarray(devices, dtype=np.int64)
    reply["weights"] = np.asarray(weights, dtype=np.int64)
    return reply, {"num-examples": int(sum(weights)), "train_loss": float(np.mean(losses)), "devices": len(devices)}


def evaluate_devices(spec: FleetSpec, arrays: dict, devices: list[int], kind: str, state=None) -> dict:
    """Each device's own test samples under the global model (plus its personal part)."""
    key = "correct" if spec.task == "classification" else "sse"
    total = {"count": 0, key: 0}
    if kind == "float":
        net = _twin(spec)
        load_float(net, arrays)
    else:
        received = arrays_model(arrays, spec.shared_names)
    for d in devices:
        x, y = spec.source.device_test(d)
        if kind == "float":
            r = evaluate_float(net, spec.template, x, y, spec.task, spec.target_exponent)
        else:
            r = evaluate_device(device_model(spec, received, d, state), x, y, spec.task, spec.target_exponent)
        total["count"] += r["count"]
        total[key] += r[key]
    return total


def make_client_app(spec: FleetSpec):
    """The ``flwr.clientapp.ClientApp`` of a fleet run."""
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context) -> Message:
        config = msg.content["config"]
        arrays = from_record(msg.content["arrays"])
        devices = [int(d) for d in config["devices"]]
        if config["kind"] == "float":
            reply, metrics = train_float_devices(spec, arrays, devices, int(config["round"]))
        else:
            reply, metrics = train_integer_devices(spec, arrays, devices, int(config["round"]), context.state)
        return Message(RecordDict({"arrays": to_record(reply), "metrics": MetricRecord(metrics)}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context) -> Message:
        config = msg.content["config"]
        arrays = from_record(msg.content["arrays"])
        devices = [int(d) for d in config["devices"]]
        metrics = evaluate_devices(spec, arrays, devices, str(config["kind"]), context.state)
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app
