"""Sequential model: layers in order, shapes checked at construction."""

from __future__ import annotations

from typing import Callable

from ..numerics import QTensor
from .config import QuantConfig
from .module import Context, Module, Parameter, ShapeError


class Sequential(Module):
    """A chain of layers with a per-sample ``input_shape`` and a loss head (``"cross_entropy"`` or
    ``"mse"``)."""

    def __init__(self, layers: list[Module], input_shape: tuple[int, ...], config: QuantConfig,
                 loss: str = "cross_entropy", name: str = "model", input_exponent: int = -7):
        if not layers:
            raise ShapeError("a model needs at least one layer")
        if loss not in ("cross_entropy", "mse"):
            raise ValueError(f"unknown loss {loss!r} (cross_entropy, mse)")
        self.layers = list(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.config = config
        self.loss = loss
        self.name = name
        self.input_exponent = int(input_exponent)
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        self.shapes = [self.input_shape]
        for layer in self.layers:
            self.shapes.append(tuple(layer.output_shape(self.shapes[-1])))
        self.output_shape_ = self.shapes[-1]

    # -- running --------------------------------------------------------------------------------
    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        for layer in self.layers:
            x = layer.forward(x, ctx)
        return x

    def first_trainable_layer(self) -> int:
        for i, layer in enumerate(self.layers):
            if any(p.trainable for p in layer.parameters()):
                return i
        return len(self.layers)

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool = False,
                 on_gradient: Callable[[Parameter], None] | None = None) -> QTensor | None:
        """Back-propagate ``err`` from the output. ``on_gradient(param)`` runs as soon as a layer has
        computed its gradients (after its input error): the optimiser updates there, so gradient
        buffers die at once (the same schedule a compiled training program uses). Layers before the
        first trainable one get no error at all."""
        stop = self.first_trainable_layer()
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            err = layer.backward(err, ctx, need_input_error=(i > stop) or need_input_error)
            if on_gradient is not None:
                for p in layer.parameters():
                    if p.trainable and p.grad is not None:
                        on_gradient(p)
        return err

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in layer.parameters()]

    def output_shape(self, input_shape):
        if tuple(input_shape) != self.input_shape:
            raise ShapeError(f"{self.name}: expects input shape {self.input_shape}, got {tuple(input_shape)}")
        return self.output_shape_

    def check_input(self, x) -> None:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"{self.name}: expects samples of shape {self.input_shape}, got {tuple(x.shape[1:])}")

    def clear_cache(self) -> None:
        for layer in self.layers:
            layer.clear_cache()

    def spec(self) -> dict:
        return {"type": "Sequential", "name": self.name, "input_shape": list(self.input_shape),
                "loss": self.loss, "input_exponent": self.input_exponent,
                "config": self.config.to_dict(), "layers": [layer.spec() for layer in self.layers]}

    def num_parameters(self) -> int:
        return sum(p.value.m.size for p in self.parameters())

    def summary(self) -> list[tuple[str, str, tuple[int, ...], int]]:
        """(name, type, output shape, parameter count) per layer."""
        return [(layer.name, layer.spec()["type"], self.shapes[i + 1],
                 sum(p.value.m.size for p in layer.parameters())) for i, layer in enumerate(self.layers)]
