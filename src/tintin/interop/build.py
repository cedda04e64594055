""":class:`FloatGraph` -> a tintin :class:`Sequential` with calibrated integer parameters.

Layer names are tintin's own (``fc1``, ``conv1``, ``dw1`` for a depthwise conv, ``relu1``,
``pool1``, ``gap``, ``flatten``, ``res1`` with ``res1.conv1`` ... inside); the report keeps the
source node of each.
"""

from __future__ import annotations

import numpy as np

from ..nn import (AvgPool1d, AvgPool2d, ChannelScale, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear,
                  MaxPool1d, MaxPool2d, QuantConfig, ReLU, Residual, Sequential, ShapeError)
from ..nn.module import Module
from ..numerics import AccumulatorBoundError
from .calibrate import calibrate_bias, calibrate_weight
from .errors import InteropError
from .graph import FloatGraph, FloatLayer


class _Namer:
    def __init__(self):
        self.counts: dict[str, int] = {}

    def __call__(self, stem: str, prefix: str = "") -> str:
        key = prefix + stem
        self.counts[key] = self.counts.get(key, 0) + 1
        return f"{prefix}{stem}{self.counts[key]}"


def _layer(fl: FloatLayer, config: QuantConfig, namer: _Namer, rng, prefix: str, origin: dict) -> Module:
    k = fl.kind
    if k == "Linear":
        out_f, in_f = fl.weight.shape
        layer = Linear(in_f, out_f, bias=fl.bias is not None, config=config, rng=rng, name=namer("fc", prefix))
    elif k == "Conv":
        cout, cin_g = fl.weight.shape[:2]
        groups = fl.attrs["groups"]
        cls = Conv2d if len(fl.attrs["kernel"]) == 2 else Conv1d
        depthwise = groups > 1 and groups == cin_g * groups == cout
        kernel = fl.attrs["kernel"] if cls is Conv2d else fl.attrs["kernel"][0]
        layer = cls(cin_g * groups, cout, kernel, stride=fl.attrs["stride"], padding=fl.attrs["padding"],
                    groups=groups, bias=fl.bias is not None, config=config, rng=rng,
                    name=namer("dw" if depthwise else "conv", prefix))
    elif k == "ChannelScale":
        layer = ChannelScale(fl.weight.size, True, config=config, name=namer("scale", prefix))
    elif k == "ReLU":
        layer = ReLU(namer("relu", prefix))
    elif k in ("MaxPool", "AvgPool"):
        dims = len(fl.attrs["kernel"])
        cls = {("MaxPool", 2): MaxPool2d, ("MaxPool", 1): MaxPool1d, ("AvgPool", 2): AvgPool2d,
               ("AvgPool", 1): AvgPool1d}.get((k, dims))
        if cls is None:
            raise InteropError(f"{fl.node}: {dims}-D pooling is not supported")
        kern, stride = fl.attrs["kernel"], fl.attrs["stride"]
        layer = cls(kern if dims == 2 else kern[0], stride if dims == 2 else stride[0],
                    name=namer("pool" if k == "MaxPool" else "avgpool", prefix))
    elif k == "GlobalAvgPool":
        layer = GlobalAvgPool(namer("gap", prefix))
    elif k == "Flatten":
        layer = Flatten(namer("flatten", prefix))
    elif k == "Residual":
        name = namer("res", prefix)
        inner = _Namer()
        body = [_layer(c, config, inner, rng, name + ".", origin) for c in fl.body]
        short = [_layer(c, config, inner, rng, name + ".", origin) for c in fl.shortcut]
        layer = Residual(body, short, name=name)
    else:  # pragma: no cover - FloatGraph kinds are closed
        raise InteropError(f"{fl.node}: no tintin layer for {k}")
    if fl.weight is not None:
        layer.weight.assign(calibrate_weight(fl.weight.reshape(layer.weight.value.m.shape), config,
                                             f"{layer.name}.weight"))
    if fl.bias is not None:
        layer.bias.assign(calibrate_bias(fl.bias, f"{layer.name}.bias"))
    origin[layer.name] = fl
    return layer


def build_model(graph: FloatGraph, input_shape: tuple[int, ...], config: QuantConfig, input_exponent: int,
                name: str = "imported") -> tuple[Sequential, dict[str, FloatLayer]]:
    """The tintin model of ``graph`` and, per tintin layer name, the float layer it came from."""
    rng = np.random.default_rng(0)
    origin: dict[str, FloatLayer] = {}
    namer = _Namer()
    try:
        layers = [_layer(fl, config, namer, rng, "", origin) for fl in graph.layers]
        model = Sequential(layers, tuple(input_shape), config, name=name, input_exponent=input_exponent)
    except (ShapeError, AccumulatorBoundError) as exc:
        raise InteropError(f"the imported graph does not fit tintin's layers: {exc}") from None
    return model, origin
