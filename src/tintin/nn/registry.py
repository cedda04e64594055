"""Layer types by name, for model files and compiled programs (``spec()`` -> layer)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import QuantConfig
from .module import Module

_BUILDERS: dict[str, Callable[[dict, QuantConfig, np.random.Generator], Module]] = {}


def register_layer(type_name: str, builder: Callable[[dict, QuantConfig, np.random.Generator], Module]) -> None:
    _BUILDERS[type_name] = builder


def build_layer(spec: dict, config: QuantConfig, rng: np.random.Generator) -> Module:
    try:
        builder = _BUILDERS[spec["type"]]
    except KeyError:
        raise ValueError(f"unknown layer type {spec.get('type')!r} (known: {', '.join(sorted(_BUILDERS))})") from None
    return builder(spec, config, rng)


def layer_types() -> list[str]:
    return sorted(_BUILDERS)


def _register_builtin() -> None:
    from .layers import Flatten, Linear, ReLU

    register_layer("Linear", lambda s, c, r: Linear(s["in_features"], s["out_features"], s.get("bias", True),
                                                     config=c, rng=r, name=s["name"]))
    register_layer("ReLU", lambda s, c, r: ReLU(name=s["name"]))
    register_layer("Flatten", lambda s, c, r: Flatten(name=s["name"]))
    _register_conv()


def _register_conv() -> None:
    """Convolution, pooling, residual and channel-scale layers (nested specs for Residual)."""
    from .conv_layers import Conv1d, Conv2d
    from .pool_layers import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d
    from .residual import Residual
    from .scaling_layers import ChannelScale

    for conv in (Conv2d, Conv1d):
        register_layer(conv.type_name, lambda s, c, r, conv=conv: conv(
            s["in_channels"], s["out_channels"], s["kernel_size"], s.get("stride", 1), s.get("padding", 0),
            s.get("groups", 1), s.get("bias", True), config=c, rng=r, name=s["name"], init=s.get("init", "pytorch")))
    for pool in (MaxPool2d, MaxPool1d, AvgPool2d, AvgPool1d):
        register_layer(pool.type_name, lambda s, c, r, pool=pool: pool(s["kernel_size"], s.get("stride"),
                                                                       name=s["name"]))
    register_layer("GlobalAvgPool", lambda s, c, r: GlobalAvgPool(name=s["name"]))
    register_layer("ChannelScale", lambda s, c, r: ChannelScale(s["channels"], s.get("bias", True), config=c,
                                                                name=s["name"], rng=r))
    register_layer("Residual", lambda s, c, r: Residual([build_layer(b, c, r) for b in s["body"]],
                                                         [build_layer(b, c, r) for b in s.get("shortcut") or []],
                                                         name=s["name"]))


_register_builtin()
