"""Registries that let each layer type plug into the compiler and the program executor.

* a *lowering* turns one layer into steps and buffers (:class:`Lowering`, by layer class);
* a *kernel* executes one step op in the executor (by op name);
* a *gradient-rows* function computes the int32 weight gradient of a subset of output rows
  (by op name); the weight-update steps use it for row-sparse and row-tiled updates.

New layer types (convolution, pooling, residual blocks) register all three from their own module in
``tintin.compile``; nothing else in the compiler changes.
"""

from __future__ import annotations

from tintin.errors import TintinError

from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from .compiler import ProgramBuilder


class CompileError(TintinError, ValueError):
    """A model the compiler cannot lower, or inconsistent compile options."""


class Lowering(Protocol):
    """How one layer type becomes steps.

    ``forward(b, layer, x)`` adds the forward steps reading buffer ``x`` and returns the output
    buffer name. ``backward(b, layer, err, need_input_error)`` adds the backward and update steps
    (the error of the layer's output is buffer ``err``) and returns the input-error buffer name,
    or None when ``need_input_error`` is false. Both may keep names with ``b.remember``.
    """

    def forward(self, b: "ProgramBuilder", layer, x: str) -> str: ...

    def backward(self, b: "ProgramBuilder", layer, err: str, need_input_error: bool) -> str | None: ...


_LOWERINGS: dict[type, Lowering] = {}
_KERNELS: dict[str, Callable] = {}
_GRADIENT_ROWS: dict[str, Callable] = {}


def register_lowering(layer_type: type, lowering: Lowering) -> None:
    _LOWERINGS[layer_type] = lowering


def lowering_for(layer) -> Lowering:
    for cls in type(layer).__mro__:
        if cls in _LOWERINGS:
            return _LOWERINGS[cls]
    known = ", ".join(sorted(c.__name__ for c in _LOWERINGS))
    raise CompileError(f"no lowering for layer {getattr(layer, 'name', '?')!r} of type {type(layer).__name__} "
                       f"(lowered types: {known})")


def lowered_types() -> list[str]:
    return sorted(c.__name__ for c in _LOWERINGS)


def register_kernel(op: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fn(step, io, env)`` executes steps whose ``op`` is ``op``."""

    def deco(fn: Callable) -> Callable:
        _KERNELS[op] = fn
        return fn

    return deco


def kernel_for(op: str) -> Callable:
    try:
        return _KERNELS[op]
    except KeyError:
        raise CompileError(f"no executor kernel for op {op!r}") from None


def register_gradient_rows(op: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fn(err, x, rows, attrs) -> QTensor`` gives the int32 weight gradient of output
    rows ``rows`` (int64 indices) of the op ``op``, shape ``(len(rows), *weight.shape[1:])``,
    bit-identical to those rows of the full gradient."""

    def deco(fn: Callable) -> Callable:
        _GRADIENT_ROWS[op] = fn
        _KERNELS[op] = _gradient_kernel
        return fn

    return deco


def _gradient_kernel(step, io, env) -> None:
    """Executor kernel of a materialised gradient step: inputs ``(err[, x])``, output the int32
    gradient of ``step.attrs["rows"]`` (None = all rows)."""
    fn = _GRADIENT_ROWS[step.op]
    err = io.read(step.inputs[0])
    x = io.read(step.inputs[1]) if len(step.inputs) > 1 else None
    rows = step.attrs.get("rows")
    io.write(step.outputs[0], fn(err, x, slice(None) if rows is None else rows, step.attrs))


def gradient_rows_for(op: str) -> Callable:
    try:
        return _GRADIENT_ROWS[op]
    except KeyError:
        raise CompileError(f"no gradient-rows function for op {op!r}") from None
