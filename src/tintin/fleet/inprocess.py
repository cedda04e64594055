"""The rounds of a fleet run without Flower: the in-process specification of ``run_fleet``.

    from tintin.fleet import FleetConfig
    from tintin.fleet.inprocess import train_in_process
    from tintin.fleet.run import build_spec
    spec, _ = build_spec(FleetConfig(dataset="digits", clients=4, rounds=2, local_steps=2))
    params = train_in_process(spec)      # {name: (mantissas, scale)}: the bits run_fleet ends with

Every round trains the round's sampled devices (:meth:`FleetSpec.sampled_devices`) from the global
model with :func:`tintin.fleet.local.train_device`, seeded by ``(seed, round, device)``, and
aggregates them with the reference :func:`tintin.fleet.aggregation.aggregate` (``fedavg``) or
:func:`tintin.fleet.aggregation.reptile_step` at ``spec.meta_lr_at(round)`` (``reptile``, and
``fomaml`` whose devices return their first-order MAML models): the
arithmetic of the Flower strategies, so the result is the same bits as a Flower run of the same
spec (tested). Dense updates of the whole model only: top-P% updates and personal parts keep
state on Flower's nodes and run through :func:`tintin.fleet.run_fleet`. No Ray, no processes:
the loop to sweep settings with.
"""

from __future__ import annotations

import copy
from typing import Callable

from .aggregation import ClientTensors, aggregate, reptile_step
from .errors import FleetError
from .local import device_seed, get_params, set_params, tensor_specs, train_device
from .spec import FleetSpec


def train_in_process(spec: FleetSpec, on_round: Callable[[int, ClientTensors], None] | None = None,
                     params: ClientTensors | None = None) -> ClientTensors:
    """``spec.rounds`` rounds of ``spec.strategy`` (``fedavg``, ``reptile`` or ``fomaml``) from ``params``
    (default: the template's); ``on_round(round, params)`` after every round."""
    if spec.strategy not in ("fedavg", "reptile", "fomaml"):
        raise FleetError(f"the in-process rounds run the integer strategies fedavg, reptile and fomaml, "
                         f"not {spec.strategy}")
    if spec.top_p is not None or spec.personal:
        raise FleetError("top-P% updates and personal parts run through run_fleet (Flower), not in-process")
    specs = tensor_specs(spec.template)
    mode = spec.template.config.scale_mode
    params = get_params(spec.template) if params is None else dict(params)
    for r in range(1, spec.rounds + 1):
        models, weights = [], []
        for d in spec.sampled_devices(r):
            model = copy.deepcopy(spec.template)
            set_params(model, params)
            x, y = spec.source.device_train(d)
            train_device(model, x, y, spec.plan, device_seed(spec.seed, r, d), spec.target_exponent)
            models.append(get_params(model))
            weights.append(len(x))
        if spec.strategy == "fedavg":
            params = aggregate(models, weights, specs, mode)
        else:
            params = reptile_step(params, models, weights, specs, mode, spec.meta_lr_at(r))
        if on_round is not None:
            on_round(r, params)
    return params
