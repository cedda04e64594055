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


_register_builtin()
