"""Give layers of a trained model int16 master weights, keeping every value exactly.

An int8 weight ``m * s`` becomes the int16 master ``(m * 2**8) * (s * 2**-8)``: the same real
values, with eight more bits below the last int8 step, so updates smaller than one int8 step add
up in the master instead of being rounded to zero or to a whole step at random. The forward and
backward kernels keep reading an int8 view rescaled from the master
(:meth:`tintin.nn.Parameter.forward_view`): for weights that use the full int8 range (imported and
upscaled weights do) the view is the int8 tensor the layer had; otherwise it is the same values on
a finer int8 grid, rounded to nearest. The layer names join ``QuantConfig.wide_layers``, so
model files, checkpoints, compiled programs and the C runtime treat them as any wide layer.

Costs one byte per weight of the widened layers (the master's high byte), plus the int8 view while
it is in use.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..numerics import QTensor
from ..errors import TintinError
from .sequential import Sequential

class WidenError(TintinError, ValueError):
    """A layer cannot be given int16 master weights (unknown layer, per-row scales, training state)."""


#: the bits an int8 weight gains below its last step when it becomes an int16 master
WIDEN_BITS = 8


def widen_layers(model: Sequential, names) -> tuple[str, ...]:
    """Turn the int8 weights of the layers ``names`` of ``model`` into int16 masters in place, with
    the same real values; layers already wide are left as they are. Returns the layer names
    widened now.

    >>> from tintin.nn import build_model
    >>> from tintin.nn.widen import widen_layers
    >>> model = build_model("mlp", (1, 8, 8), 10, seed=0)
    >>> before = model.layers[-1].weight.value.dequantize()
    >>> widen_layers(model, ["fc2"])
    ('fc2',)
    >>> w = model.layers[-1].weight
    >>> w.bits, w.value.m.dtype.name, bool((w.value.dequantize() == before).all()), model.config.wide_layers
    (16, 'int16', True, ('fc2',))
    """
    names = list(dict.fromkeys(names))
    weights = {p.name.rsplit(".", 1)[0]: p for p in model.parameters() if p.kind == "weight"}
    unknown = [n for n in names if n not in weights]
    if unknown:
        raise WidenError(f"the model has no weight layer {unknown[0]!r} (its weight layers: "
                         f"{', '.join(sorted(weights))})")
    widened = []
    for name in names:
        p = weights[name]
        if p.bits == 16:
            continue
        if p.row_exp is not None:
            raise WidenError(f"{name}: a weight with per-row scales cannot become an int16 master")
        if p.momentum is not None or p.remainder is not None:
            raise WidenError(f"{name}: widen a weight before training it (it holds momentum or a remainder)")
        value = p.value
        p.bits = 16
        p.assign(QTensor(value.m.astype(np.int16) << WIDEN_BITS, value.scale.shifted(-WIDEN_BITS)))
        widened.append(name)
    if widened and model.config.weight_bits != 16:
        model.config = replace(model.config, wide_layers=tuple(dict.fromkeys(
            list(model.config.wide_layers) + widened)))
    return tuple(widened)
