"""Integer SGD with a learning rate per layer: the configured rate times a power of two.

Meta-SGD (Li et al. 2017) learns a learning rate per parameter; kept integer and simple here, a
layer's rate is the optimiser's rate ``lr`` times ``2**shift`` for that layer: its learning-rate
scale ``2**S*u**U*d**D`` becomes ``2**(S + shift)*u**U*d**D``, so the update of every other layer,
the rounding keys and the integer arithmetic are those of :class:`tintin.optim.IntegerSGD`
(a layer without a shift is updated exactly as there; all layers at shift ``s`` are
:class:`IntegerSGD` at ``lr * 2**s``, bit for bit).

    from tintin.optim import OptimConfig
    from tintin.optim.layer_rates import LayerRateSGD
    sgd = LayerRateSGD(model.parameters(), OptimConfig(lr=0.05), model.config.scale_mode, {"fc1": 1})
    # fc1 learns at 0.1, every other layer at 0.05

A parameter belongs to the layer named by its name up to the last dot (``fc1.weight`` -> ``fc1``).
"""

from __future__ import annotations

from typing import Callable, Mapping

from ..nn.module import Context, Parameter
from ..numerics import ScaleMode
from .sgd import IntegerSGD, OptimConfig

#: the largest power-of-two factor, either way, of a layer's rate
MAX_LAYER_SHIFT = 8


def layer_of(param_name: str) -> str:
    """The layer a parameter belongs to: ``fc1.weight`` -> ``fc1``."""
    return param_name.rsplit(".", 1)[0]


def check_shifts(shifts: Mapping[str, int]) -> dict[str, int]:
    """``shifts`` as a ``{layer: int}`` dict; ``ValueError`` (one line) for a shift that is not an
    integer in ``[-MAX_LAYER_SHIFT, MAX_LAYER_SHIFT]``."""
    out = {}
    for name, shift in dict(shifts).items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"a layer rate needs a layer name, got {name!r}")
        if isinstance(shift, bool) or not isinstance(shift, int) or abs(shift) > MAX_LAYER_SHIFT:
            raise ValueError(f"the rate shift of layer {name} must be an integer in "
                             f"[-{MAX_LAYER_SHIFT}, {MAX_LAYER_SHIFT}], got {shift!r}")
        out[name] = int(shift)
    return out


class LayerRateSGD(IntegerSGD):
    """:class:`IntegerSGD` whose layer ``name`` learns at ``lr * 2**shifts[name]`` (see the module
    docstring). Layers the model lacks raise ``ValueError``."""

    def __init__(self, params: list[Parameter], config: OptimConfig, mode: ScaleMode, shifts: Mapping[str, int],
                 update_kernel: Callable[[IntegerSGD, Parameter, int], None] | None = None):
        super().__init__(params, config, mode, update_kernel)
        self.shifts = check_shifts(shifts)
        layers = {layer_of(p.name) for p in self.params}
        unknown = sorted(set(self.shifts) - layers)
        if unknown:
            raise ValueError(f"no layer {', '.join(unknown)} to give a learning rate (layers: "
                             f"{', '.join(sorted(layers))})")

    def update(self, p: Parameter, ctx: Context) -> None:
        shift = self.shifts.get(layer_of(p.name), 0)
        if not shift:
            super().update(p, ctx)
            return
        base = self.lr_scale
        self.lr_scale = base.shifted(shift)
        try:
            super().update(p, ctx)
        finally:
            self.lr_scale = base
