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
