"""Float32 twin: the same network, the same initial weights (dequantised), the same data order,
epochs, batch size and learning-rate schedule, trained with float32 SGD in PyTorch."""

from __future__ import annotations

from tintin.errors import TintinError

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..nn import Sequential
from ..numerics.scale_rows import dequantize_rows
from ..train.loop import TrainConfig, batches, epoch_order


class MissingExtraError(TintinError, RuntimeError):
    """An optional dependency is not installed."""


def _torch():
    try:
        import torch
    except ImportError:
        raise MissingExtraError("PyTorch is not installed: pip install 'torch==2.13.0' "
                                "(or pip install 'tintin[torch]')") from None
    return torch


_TORCH_BUILDERS: dict[str, Callable] = {}


def register_torch_layer(type_name: str, builder: Callable) -> None:
    """``builder(layer, torch) -> torch.nn.Module`` with the layer's weights dequantised."""
    _TORCH_BUILDERS[type_name] = builder


def weight_values(p) -> np.ndarray:
    """The real values (float64) of a weight parameter, per-row exponents included."""
    return dequantize_rows(p.value.m, p.value.scale, p.row_exp)


def _param(torch, p):
    return torch.nn.Parameter(torch.tensor(p.value.dequantize(), dtype=torch.float32))


def _linear(layer, torch):
    mod = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        mod.weight.copy_(torch.tensor(weight_values(layer.weight)))
        if layer.bias is not None:
            mod.bias.copy_(torch.tensor(layer.bias.value.dequantize()))
    mod.weight.requires_grad_(layer.weight.trainable)
    if layer.bias is not None:
        mod.bias.requires_grad_(layer.bias.trainable)
    return mod


register_torch_layer("Linear", _linear)
register_torch_layer("ReLU", lambda layer, torch: torch.nn.ReLU())
register_torch_layer("Flatten", lambda layer, torch: torch.nn.Flatten())


def float_twin(model: Sequential):
    """A ``torch.nn.Sequential`` with the model's structure and dequantised parameters."""
    torch = _torch()
    mods = []
    for layer in model.layers:
        typ = layer.spec()["type"]
        if typ not in _TORCH_BUILDERS:
            raise NotImplementedError(f"no float twin for layer type {typ}")
        mods.append(_TORCH_BUILDERS[typ](layer, torch))
    return torch.nn.Sequential(*mods)


@dataclass
class FloatResult:
    test_accuracy: float | None
    history: list[dict]
    train_seconds: float
    samples: int

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds > 0 else float("inf")


def _evaluate(torch, net, x, y, batch_size=1024):
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = net(x[i:i + batch_size])
            loss += float(torch.nn.functional.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
            correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    net.train()
    return correct / max(len(x), 1), loss / max(len(x), 1)


def train_float(model: Sequential, x_train: np.ndarray, y_train: np.ndarray, config: TrainConfig,
                x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                lr_of_epoch: Callable[[int], float] | None = None, threads: int | None = None,
                eval_each_epoch: bool | None = None) -> FloatResult:
    """Train the float32 twin of ``model`` (built from its *current* weights: call before integer
    training) on the dequantised int8 inputs. ``lr_of_epoch`` defaults to the configured schedule."""
    torch = _torch()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    net = float_twin(model)
    scale = 2.0 ** model.input_exponent
    xt = torch.tensor(x_train.astype(np.float32) * scale)
    yt = torch.tensor(y_train.astype(np.int64))
    xe = torch.tensor(x_test.astype(np.float32) * scale) if x_test is not None else None
    ye = torch.tensor(y_test.astype(np.int64)) if y_test is not None else None
    lr_of_epoch = lr_of_epoch or config.optim.lr_at
    momentum = 1.0 - 2.0 ** -config.optim.momentum_shift if config.optim.momentum_shift else 0.0
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr_of_epoch(0), momentum=momentum)
    loss_fn = torch.nn.CrossEntropyLoss() if model.loss == "cross_entropy" else torch.nn.MSELoss()
    eval_each = config.eval_each_epoch if eval_each_epoch is None else eval_each_epoch
    history, seconds, samples = [], 0.0, 0
    for epoch, order in enumerate(epoch_order(len(x_train), config.epochs, config.seed)):
        for group in opt.param_groups:
            group["lr"] = lr_of_epoch(epoch)
        t0 = time.perf_counter()
        total, correct = 0.0, 0
        for idx in batches(order, config.batch_size):
            ti = torch.from_numpy(idx)
            xb, yb = xt[ti], yt[ti]
            opt.zero_grad(set_to_none=True)
            out = net(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.detach().argmax(1) == yb).sum())
        seconds += time.perf_counter() - t0
        samples += len(order)
        rec = {"epoch": epoch, "train_loss": total / len(order), "train_accuracy": correct / len(order)}
        if xe is not None and (eval_each or epoch == config.epochs - 1):
            rec["test_accuracy"], rec["test_loss"] = _evaluate(torch, net, xe, ye)
        history.append(rec)
    final = history[-1].get("test_accuracy") if history else None
    return FloatResult(final, history, seconds, samples)
