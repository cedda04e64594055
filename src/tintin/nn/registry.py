"""Layer types by name, for model files and compiled programs (``spec()`` -> layer)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import QuantConfig
from .module import Module

_BUILDERS: dict[str, Callable[[dict, QuantConfig, np.random.Generator], Module]] = {}
_EXAMPLES: dict[str, tuple[dict, tuple[int, ...]]] = {}


def register_layer(type_name: str, builder: Callable[[dict, QuantConfig, np.random.Generator], Module]) -> None:
    """Make ``spec["type"] == type_name`` buildable by ``builder(spec, config, rng)``. Register a
    small example too (:func:`register_layer_example`): ``tintin.checks`` checks every type by it."""
    _BUILDERS[type_name] = builder


def register_layer_example(type_name: str, spec: dict, input_shape: tuple[int, ...]) -> None:
    """A small instance of ``type_name`` for the checks every registered layer type must pass
    (:mod:`tintin.checks`): ``spec`` without ``type`` and ``name``, and the per-sample shape of
    its input (without the batch axis)."""
    _EXAMPLES[type_name] = (dict(spec), tuple(int(v) for v in input_shape))


def layer_example(type_name: str) -> tuple[dict, tuple[int, ...]] | None:
    """``(spec, input_shape)`` registered for ``type_name``, or None."""
    example = _EXAMPLES.get(type_name)
    return None if example is None else (dict(example[0]), example[1])


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


def _register_examples() -> None:
    conv1d = {"kernel_size": [3], "stride": [1], "padding": [1], "groups": 1, "bias": True}
    for type_name, spec, shape in [
        ("Linear", {"in_features": 12, "out_features": 7, "bias": True}, (12,)),
        ("ReLU", {}, (9,)),
        ("Flatten", {}, (2, 3, 4)),
        ("Conv2d", {"in_channels": 2, "out_channels": 4, "kernel_size": [3, 3], "stride": [1, 1],
                    "padding": [1, 1], "groups": 1, "bias": True}, (2, 6, 6)),
        ("Conv1d", {"in_channels": 4, "out_channels": 6, "kernel_size": [3], "stride": [2], "padding": [1],
                    "groups": 2, "bias": True}, (4, 11)),
        ("MaxPool2d", {"kernel_size": [2, 2], "stride": [2, 2]}, (3, 6, 6)),
        ("MaxPool1d", {"kernel_size": [3], "stride": [2]}, (3, 11)),
        ("AvgPool2d", {"kernel_size": [2, 2], "stride": [2, 2]}, (3, 6, 6)),
        ("AvgPool1d", {"kernel_size": [2], "stride": [2]}, (3, 10)),
        ("GlobalAvgPool", {}, (3, 4, 4)),
        ("ChannelScale", {"channels": 3, "bias": True}, (3, 8)),
        ("Residual", {"body": [{"type": "Conv1d", "name": "body1", "in_channels": 3, "out_channels": 3, **conv1d},
                               {"type": "ReLU", "name": "body_relu"},
                               {"type": "Conv1d", "name": "body2", "in_channels": 3, "out_channels": 5, **conv1d}],
                      "shortcut": [{"type": "Conv1d", "name": "proj", "in_channels": 3, "out_channels": 5,
                                    "kernel_size": [1], "stride": [1], "padding": [0], "groups": 1, "bias": True}]},
         (3, 8)),
    ]:
        register_layer_example(type_name, spec, shape)


_register_builtin()
_register_examples()
