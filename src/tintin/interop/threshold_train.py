"""Threshold training at import (``--threshold-train STEPS``): ALT / Graffitist-style fine-tuning of
the log2 clipping thresholds of the weights on the host, before the integer model is fixed.

The static rule (:mod:`tintin.interop.calibrate`) picks each weight tensor's scale alone, by the
smallest weight MSE. Threshold training picks them together, by what the network outputs:

* a float PyTorch copy of the imported model (the source's float weights, BatchNorm folded) runs
  with fake quantisation: every weight tensor as ``clip(round(w / s), -L, L) * s`` with
  ``s = 2**t / L`` (one trainable log2 threshold ``t`` per tensor, started at the static scale),
  every rescaled activation rounded on its own dynamic int8 grid (``max|x| / 127``, as tintin's
  run-time rescale), rounding passed through by the straight-through estimator;
* loss: the mean squared error between its logits and the float model's on the calibration batch
  (no labels needed); Adam on the thresholds only, ``steps`` full-batch steps, fixed seed;
* each learned scale ``2**t / L`` is then snapped to the nearest scale of the model's weight grid
  (log distance) and the weights quantised at it (half away from zero, clipped).

Only weight scales move: tintin has no static activation scales (every rescale picks its scale at
run time) and biases sit at the fixed ``2**-20``. Needs PyTorch (``tintin[torch]``).
"""

from __future__ import annotations

import math

import numpy as np

from ..nn import (AvgPool1d, AvgPool2d, ChannelScale, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool1d,
                  MaxPool2d, ReLU, Residual, Sequential)
from ..numerics import QTensor, Scale, limit_for_bits
from .calibrate import quantize_with
from .errors import InteropError, require

#: Adam learning rate of the log2 thresholds (ALT uses about 1e-2 for thresholds)
THRESHOLD_LR = 0.01


def _snap(scale: float, mode) -> Scale:
    """The weight-grid scale nearest to ``scale`` in log distance (grid: U, D in 0..2)."""
    return Scale.nearest(scale, mode, max_steps=2)


class _FakeQuantNet:
    def __init__(self, torch, model: Sequential, origin: dict):
        self.torch, self.model = torch, model
        self.limit = limit_for_bits(model.config.weight_bits)
        self.weights, self.biases, self.thresholds = {}, {}, {}
        for layer in _walk(model.layers):
            fl = origin[layer.name]
            if fl.weight is not None:
                shape = layer.weight.value.m.shape
                self.weights[layer.name] = torch.tensor(np.asarray(fl.weight, dtype=np.float64).reshape(shape),
                                                        dtype=torch.float64)
                start = layer.weight.value.scale.to_float() * self.limit
                self.thresholds[layer.name] = torch.tensor(math.log2(start), dtype=torch.float64, requires_grad=True)
            if fl.bias is not None:
                self.biases[layer.name] = torch.tensor(np.asarray(fl.bias, dtype=np.float64).reshape(-1),
                                                       dtype=torch.float64)

    def ste_round(self, x):
        return x + (self.torch.round(x) - x).detach()

    def weight(self, name: str, quantized: bool):
        w = self.weights[name]
        if not quantized:
            return w
        s = 2.0 ** self.thresholds[name] / self.limit
        return self.torch.clamp(self.ste_round(w / s), -self.limit, self.limit) * s

    def act(self, x, quantized: bool):
        if not quantized:
            return x
        s = (x.detach().abs().max() / 127.0).clamp_min(1e-30)
        return self.ste_round(x / s) * s

    def run(self, layers, x, q: bool):
        F = self.torch.nn.functional
        for layer in layers:
            n = layer.name
            if isinstance(layer, Linear):
                x = self.act(F.linear(x, self.weight(n, q), self.biases.get(n)), q)
            elif isinstance(layer, (Conv1d, Conv2d)):
                conv = F.conv1d if isinstance(layer, Conv1d) else F.conv2d
                x = self.act(conv(x, self.weight(n, q), self.biases.get(n), stride=tuple(layer.stride),
                                  padding=tuple(layer.padding), groups=layer.groups), q)
            elif isinstance(layer, ChannelScale):
                shape = (1, -1) + (1,) * (x.dim() - 2)
                y = x * self.weight(n, q).reshape(shape)
                if n in self.biases:
                    y = y + self.biases[n].reshape(shape)
                x = self.act(y, q)
            elif isinstance(layer, ReLU):
                x = self.torch.relu(x)
            elif isinstance(layer, (MaxPool1d, MaxPool2d)):
                pool = F.max_pool1d if isinstance(layer, MaxPool1d) else F.max_pool2d
                x = pool(x, tuple(layer.kernel_size), tuple(layer.stride))
            elif isinstance(layer, (AvgPool1d, AvgPool2d)):
                pool = F.avg_pool1d if isinstance(layer, AvgPool1d) else F.avg_pool2d
                x = self.act(pool(x, tuple(layer.kernel_size), tuple(layer.stride)), q)
            elif isinstance(layer, GlobalAvgPool):
                x = self.act(x.mean(dim=tuple(range(2, x.dim()))), q)
            elif isinstance(layer, Flatten):
                x = x.reshape(len(x), -1)
            elif isinstance(layer, Residual):
                body = self.run(layer.body, x, q)
                short = self.run(layer.shortcut, x, q) if layer.shortcut else x
                x = self.act(body + short, q)
            else:  # pragma: no cover - the importer builds only the layers above
                raise InteropError(f"threshold training: no float form of layer {n}")
        return x


def _walk(layers):
    for layer in layers:
        if isinstance(layer, Residual):
            yield from _walk(layer.body)
            yield from _walk(layer.shortcut)
        yield layer


def train_thresholds(model: Sequential, origin: dict, x_real: np.ndarray, steps: int, seed: int = 0) -> list[dict]:
    """Fine-tune the log2 weight thresholds of ``model`` (built by the importer; ``origin``: its float
    layers) on the calibration batch ``x_real`` for ``steps`` Adam steps, then assign every weight
    tensor at its learned scale. Returns per weight tensor ``{"layer", "static_scale",
    "trained_scale", "static_clipped", "trained_clipped"}`` (scales as ``[S, U, D]``)."""
    if not isinstance(steps, int) or steps < 0:
        raise InteropError(f"--threshold-train must be a non-negative number of steps, got {steps!r}")
    if steps == 0:
        return []
    torch = require("torch", "torch", "threshold training (--threshold-train)")
    torch.manual_seed(seed)
    net = _FakeQuantNet(torch, model, origin)
    x = torch.tensor(np.asarray(x_real, dtype=np.float64))
    with torch.no_grad():
        target = net.run(model.layers, x, False)
    params = list(net.thresholds.values())
    if not params:
        return []
    opt = torch.optim.Adam(params, lr=THRESHOLD_LR)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((net.run(model.layers, x, True) - target) ** 2)
        loss.backward()
        opt.step()
    out = []
    mode, bits = model.config.scale_mode, model.config.weight_bits
    dtype = np.int8 if bits == 8 else np.int16
    for layer in _walk(model.layers):
        if layer.name not in net.thresholds:
            continue
        w = net.weights[layer.name].numpy()
        before = layer.weight.value
        scale = _snap(2.0 ** float(net.thresholds[layer.name].detach()) / net.limit, mode)
        m = quantize_with(w, scale, bits).astype(dtype)
        layer.weight.assign(QTensor(m, scale))
        out.append({"layer": layer.name, "static_scale": list(before.scale.as_tuple()),
                    "trained_scale": list(scale.as_tuple()),
                    "static_clipped": int(np.sum(np.abs(before.m.astype(np.int64)) == net.limit)),
                    "trained_clipped": int(np.sum(np.abs(m.astype(np.int64)) == net.limit))})
    return out
