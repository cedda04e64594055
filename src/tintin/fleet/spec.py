"""The fixed description of a fleet run that the server and every client share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..nn import Sequential
from .local import LocalPlan

#: integer strategies and the float comparison
STRATEGIES = ("fedavg", "reptile", "fomaml", "fedavg-float")


@dataclass
class FleetSpec:
    """Everything a node needs to train any device (picklable: it travels to the Ray workers).

    ``template``: the initial model; ``personal``: parameter names that never leave a device;
    ``top_p``: percent of each shared tensor a device sends (None: dense), with a residual kept on
    the device when ``error_feedback``; ``meta_lr``: Reptile's
    ``eps``, also FOMAML's (``meta_anneal``: decayed linearly over the rounds, :meth:`meta_lr_at`); ``fraction``:
    devices sampled per round; ``nodes``: Flower SuperNodes, device ``d``
    lives on node ``d % nodes`` (a node trains its sampled devices one after the other);
    ``emulated``: ``(device, target)`` pairs whose local update runs as the generated C program on
    an emulated microcontroller (e.g. ``(0, "cortex-m0")`` in QEMU) instead of the simulator."""

    source: object
    template: Sequential
    plan: LocalPlan
    strategy: str = "fedavg"
    rounds: int = 3
    fraction: float = 1.0
    top_p: float | None = None
    error_feedback: bool = True
    personal: tuple[str, ...] = ()
    meta_lr: float = 0.5
    meta_anneal: bool = False
    seed: int = 0
    nodes: int = 1
    device_eval: bool = True
    float_plan: LocalPlan | None = None
    emulated: tuple[tuple[int, str], ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.source.task

    @property
    def target_exponent(self):
        return self.source.target_exponent

    @property
    def shared_names(self) -> list[str]:
        return [p.name for p in self.template.parameters() if p.name not in self.personal]

    def target_of(self, device: int) -> str | None:
        """The emulated target that trains ``device`` (None: the simulator)."""
        return dict(self.emulated).get(int(device))

    def meta_lr_at(self, server_round: int) -> float:
        """Reptile's step size in round ``server_round`` (1-based): ``meta_lr``, or with
        ``meta_anneal`` ``meta_lr * (1 - (round - 1) / rounds)`` (the Reptile paper's linear
        annealing; the last round steps ``meta_lr / rounds``)."""
        if not self.meta_anneal:
            return float(self.meta_lr)
        return float(self.meta_lr) * (1.0 - (int(server_round) - 1) / int(self.rounds))

    def sampled_devices(self, server_round: int) -> list[int]:
        """The devices that train in a round (seeded; all of them when ``fraction`` is 1)."""
        n = int(self.source.num_devices)
        k = max(1, int(round(self.fraction * n)))
        if k >= n:
            return list(range(n))
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 11, int(server_round)]))
        return sorted(int(d) for d in rng.choice(n, size=k, replace=False))
