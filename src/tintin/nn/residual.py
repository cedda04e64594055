"""Residual block: ``y = body(x) + shortcut(x)`` with integer scale alignment.

``body`` is a list of layers run in order; ``shortcut`` is another list (empty or ``None``: the
identity). The add aligns the two int8 results to a common scale in integers, sums in int32 and
rescales (:func:`tintin.ops.residual.residual_add_s8`). Backward: the output error goes unchanged
to both branches; each branch is back-propagated (body and shortcut layers compute their own
gradients) and the two input errors are added with the same aligned add. Parameters are listed
body first, then shortcut, each in layer order (the optimiser's order and rounding-site numbers).
"""

from __future__ import annotations

from ..numerics import QTensor
from ..ops.residual import residual_add_backward_s8, residual_add_s8
from .module import Context, Module, Parameter, ShapeError


class Residual(Module):
    """``body(x) + shortcut(x)`` (identity shortcut when ``shortcut`` is empty)."""

    def __init__(self, body: list[Module], shortcut: list[Module] | None = None, name: str = "res"):
        self.name = name
        self.body = list(body)
        self.shortcut = list(shortcut or [])
        if not self.body:
            raise ShapeError(f"{name}: a Residual block needs at least one body layer")
        names = [layer.name for layer in self.children()]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: layer names inside a Residual block must be unique, got {names}")

    def children(self) -> list[Module]:
        """Body layers then shortcut layers."""
        return self.body + self.shortcut

    # -- running --------------------------------------------------------------------------------
    def forward(self, x: QTensor, ctx: Context) -> QTensor:
        h = x
        for layer in self.body:
            h = layer.forward(h, ctx)
        s = x
        for layer in self.shortcut:
            s = layer.forward(s, ctx)
        return residual_add_s8(h, s, ctx.mode)

    @staticmethod
    def _backward_chain(layers: list[Module], err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        for i in range(len(layers) - 1, -1, -1):
            err = layers[i].backward(err, ctx, need_input_error=(i > 0) or need_input_error)
        return err

    def backward(self, err: QTensor, ctx: Context, need_input_error: bool) -> QTensor | None:
        e_body, e_short = residual_add_backward_s8(err)
        e_body = self._backward_chain(self.body, e_body, ctx, need_input_error)
        e_short = self._backward_chain(self.shortcut, e_short, ctx, need_input_error)
        if not need_input_error:
            return None
        return residual_add_s8(e_body, e_short, ctx.mode)

    def parameters(self) -> list[Parameter]:
        return [p for layer in self.children() for p in layer.parameters()]

    def clear_cache(self) -> None:
        for layer in self.children():
            layer.clear_cache()

    # -- shapes ----------------------------------------------------------------------------------
    def _chain_shapes(self, layers: list[Module], input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        shapes = [tuple(input_shape)]
        for layer in layers:
            shapes.append(tuple(layer.output_shape(shapes[-1])))
        return shapes

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        body = self._chain_shapes(self.body, input_shape)[-1]
        short = self._chain_shapes(self.shortcut, input_shape)[-1]
        if body != short:
            raise ShapeError(f"{self.name}: Residual body output {body} does not match the shortcut output {short}"
                             + (" (add a shortcut projection)" if not self.shortcut else ""))
        return body

    def _inner(self, input_shape: tuple[int, ...]):
        for layers in (self.body, self.shortcut):
            shapes = self._chain_shapes(layers, input_shape)
            yield from zip(layers, shapes)

    def gradient_positions(self, input_shape: tuple[int, ...]) -> int:
        """The largest weight-gradient sum (products per sample) of the layers inside."""
        best = 1
        for layer, shape in self._inner(input_shape):
            positions = getattr(layer, "gradient_positions", None)
            if positions is not None and layer.parameters():
                best = max(best, positions(shape))
        return best

    def macs(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of the layers inside (the add itself is not counted)."""
        return sum(layer.macs(shape) for layer, shape in self._inner(input_shape) if hasattr(layer, "macs"))

    def spec(self) -> dict:
        return {"type": "Residual", "name": self.name, "body": [layer.spec() for layer in self.body],
                "shortcut": [layer.spec() for layer in self.shortcut]}
