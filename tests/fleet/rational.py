"""The in-process references: the aggregation rule in exact rationals (``fractions.Fraction``),
and devices trained directly with the simulator, without Flower."""

from __future__ import annotations

import copy
from fractions import Fraction

from tintin.fleet.aggregation import scale_value
from tintin.fleet.local import device_seed, get_params, set_params, train_device
from tintin.numerics import Scale
from tintin.numerics.rescale import grid_steps


def ref_round(v: Fraction) -> int:
    """Round half away from zero of an exact rational."""
    mag = (2 * abs(v.numerator) + v.denominator) // (2 * v.denominator)
    return mag if v >= 0 else -mag


def ref_mean(tensors, weights) -> list[Fraction]:
    W = sum(weights)
    n = tensors[0][0].size
    return [sum(Fraction(int(m.ravel()[i])) * scale_value(s) * w for (m, s), w in zip(tensors, weights)) / W
            for i in range(n)]


def ref_weight_result(mean: list[Fraction], limit: int, mode, scales) -> tuple[list[int], Scale]:
    """The finest grid scale where every rounded value fits, found by brute force over S."""
    if all(v == 0 for v in mean):
        s = min(scales, key=scale_value)
        return [0] * len(mean), s
    best = None
    for a, b in grid_steps(mode):
        for S in range(-80, 80):
            t = Scale(S, a, b)
            q = [ref_round(v / scale_value(t)) for v in mean]
            if max(abs(x) for x in q) <= limit:
                if best is None or scale_value(t) < scale_value(best[1]):
                    best = (q, t)
                break
    return best


def device_models(spec, global_params, devices, server_round, target_exponent=None):
    """Each device of ``devices`` trained from ``global_params`` as in a round: ``(models, weights)``."""
    out, weights = [], []
    for d in devices:
        model = copy.deepcopy(spec.template)
        set_params(model, global_params)
        x, y = spec.source.device_train(d)
        train_device(model, x, y, spec.plan, device_seed(spec.seed, server_round, d), target_exponent)
        out.append(get_params(model))
        weights.append(len(x))
    return out, weights


def strategy_rounds(spec, node_ids, reverse: bool = False):
    """``spec.rounds`` rounds of ``spec``'s Flower strategy driven by hand (its configure_train
    messages trained on the simulator, the replies aggregated, reversed with ``reverse``): the
    final global model as ``{name: (mantissas, scale)}``."""
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from tintin.fleet.client import train_integer_devices
    from tintin.fleet.codec import arrays_model, from_record, to_record
    from tintin.fleet.strategies import initial_arrays, make_strategy

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = 1, 1, 1
    try:
        strategy = make_strategy(spec)
        strategy.node_ids = list(node_ids)
        arrays = initial_arrays(spec, "integer")
        for r in range(1, spec.rounds + 1):
            replies = []
            for msg in strategy.configure_train(r, arrays, None, grid=None):
                reply, metrics = train_integer_devices(spec, from_record(msg.content["arrays"]),
                                                       [int(d) for d in msg.content["config"]["devices"]], r)
                replies.append(Message(RecordDict({"arrays": to_record(reply), "metrics": MetricRecord(metrics)}),
                                       reply_to=msg))
            arrays, _ = strategy.aggregate_train(r, replies[::-1] if reverse else replies)
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved
    return arrays_model(from_record(arrays), spec.shared_names)
