"""Execute a :class:`TrainingProgram` in the simulator, through a real byte arena.

Every SRAM buffer is a numpy view of one ``uint8`` arena at its planned offset; frozen parameters are
views of a read-only flash block. Kernels read their inputs from those bytes and write their results
back, calling the same :mod:`tintin.ops` functions and the same optimiser arithmetic as
:func:`tintin.train.train_step`, so a wrong plan corrupts data and the result stops being
bit-identical. To make such errors show at once, the executor *poisons* (fills with ``0xA5``)
every output and workspace of a step before the step runs (unless it shares its input's storage),
and every storage root when its lifetime ends.

Scales (three small integer exponents per tensor) are kept in a table next to the arena, as the
C runtime keeps them in its tensor descriptors.
"""

from __future__ import annotations

from tintin.errors import TintinError

from dataclasses import dataclass

import numpy as np

from ..nn.module import Context, Parameter
from ..numerics import QTensor, Scale
from ..ops import LossValue
from .ir import BufferKind, Memory, TrainingProgram
from .planner import MemoryPlan, plan_memory
from .registry import kernel_for

POISON = 0xA5


class ExecutionError(TintinError, RuntimeError):
    """A program cannot run on the given model or data."""


@dataclass(frozen=True)
class ProgramResult:
    """What one executed training step reports (as :class:`tintin.train.StepResult`), plus the
    predictions (cross-entropy models; None for MSE)."""

    loss: LossValue
    correct: int
    count: int
    predictions: np.ndarray | None


class _IO:
    """Typed views of the arena and flash for the kernels."""

    def __init__(self, ex: "ProgramExecutor"):
        self._ex = ex

    def shape(self, name: str) -> tuple[int, ...]:
        return self._ex.program.buffers[name].shape

    def array(self, name: str) -> np.ndarray:
        """Writable (SRAM) or read-only (flash) view of ``name``'s bytes."""
        return self._ex.view(name)

    def scale(self, name: str) -> Scale:
        try:
            return self._ex.scales[name]
        except KeyError:
            raise ExecutionError(f"buffer {name!r} is read before it is written") from None

    def set_scale(self, name: str, scale: Scale) -> None:
        self._ex.scales[name] = scale

    def read(self, name: str) -> QTensor:
        """A copy of the current contents with its scale."""
        return QTensor(self._ex.view(name).copy(), self.scale(name))

    def write(self, name: str, value: QTensor) -> None:
        view = self._ex.view(name)
        m = np.asarray(value.m)
        if m.shape != view.shape:
            raise ExecutionError(f"kernel wrote shape {m.shape} into {name} of shape {view.shape}")
        cast = m.astype(view.dtype)
        if not np.array_equal(cast, m):
            raise ExecutionError(f"kernel wrote values outside {view.dtype} into {name}")
        view[...] = cast
        self._ex.scales[name] = value.scale


class _Env:
    def __init__(self, ex: "ProgramExecutor", ctx: Context):
        self.ctx = ctx
        self.mode = ctx.mode
        self.optimizer = ex.optimizer
        self.program = ex.program
        self._ex = ex

    def shim(self, name: str) -> Parameter:
        return self._ex.shims[name]

    def site(self, name: str) -> int:
        return 4 * self._ex.param_index[name]


def pack_remainder(p, bits: int) -> np.ndarray:
    """The packed plane of ``p``'s error-feedback remainder (zeros when it has none yet)."""
    from ..numerics.bitplane import pack_plane

    if p.remainder is not None and p.feedback_bits != bits:
        raise ExecutionError(f"{p.name} holds a {p.feedback_bits}-bit remainder; the program keeps {bits} bits")
    return pack_plane(np.zeros(p.value.m.size, np.int8) if p.remainder is None else p.remainder, bits)


class ProgramExecutor:
    """Runs a program step after step on one arena that persists between steps (like the device:
    trained parameters and optimiser state stay in SRAM).

    ``load(model)`` copies the parameters (and momentum) in, ``step(x, y, ctx)`` runs one training
    step, ``store(model)`` copies trained parameters and momentum back into the model."""

    def __init__(self, program: TrainingProgram, plan: MemoryPlan | None = None, poison: bool = True):
        from ..optim import IntegerSGD

        self.program = program
        self.plan = plan if plan is not None else plan_memory(program)
        self.poison = poison
        self.arena = np.zeros(self.plan.arena_bytes, dtype=np.uint8)
        self._flash_rw = np.zeros(self.plan.flash_constant_bytes, dtype=np.uint8)
        self.flash = self._flash_rw.view()
        self.flash.flags.writeable = False  # kernels see flash read-only; only load() writes it
        self.scales: dict[str, Scale] = {}
        self._views: dict[str, np.ndarray] = {}
        self.param_index = {name: i for i, name in enumerate(program.param_order)}
        self.shims: dict[str, Parameter] = {}
        self.optimizer = None
        self._optim_cls = IntegerSGD
        self._loaded = False
        n = len(program.steps)
        self._dies: dict[int, list[str]] = {}
        for req in self.plan.requests:
            b = program.buffers[req.name]
            if not b.persistent and req.last < n - 1:
                self._dies.setdefault(req.last, []).append(req.name)

    # -- memory ---------------------------------------------------------------------------------
    def view(self, name: str) -> np.ndarray:
        v = self._views.get(name)
        if v is None:
            b = self.program.buffers[name]
            if b.memory is Memory.SRAM:
                off, block = self.plan.offsets[name], self.arena
            else:
                off, block = self.plan.flash_offsets[name], self.flash
            v = block[off:off + b.nbytes].view(np.dtype(b.dtype)).reshape(b.shape)
            self._views[name] = v
        return v

    def _fill(self, name: str) -> None:
        b = self.program.buffers[name]
        off = self.plan.offsets[name]
        self.arena[off:off + b.nbytes] = POISON

    # -- model state ----------------------------------------------------------------------------
    def load(self, model) -> None:
        """Copy ``model``'s parameters and momentum into SRAM / flash."""
        params = model.parameters()
        if tuple(p.name for p in params) != self.program.param_order:
            raise ExecutionError(f"model {model.name!r} does not match the program's parameters")
        if model.input_exponent != self.program.input_exponent:
            raise ExecutionError(f"model input exponent {model.input_exponent} differs from the program's "
                                 f"{self.program.input_exponent}")
        if tuple(model.input_shape) != self.program.input_shape:
            raise ExecutionError(f"model input shape {model.input_shape} differs from the program's "
                                 f"{self.program.input_shape}")
        for p in params:
            b = self.program.buffers.get(p.name)
            if b is None:
                continue  # a parameter no step reads (cannot happen for Sequential models)
            value = p.value
            if b.memory is Memory.FLASH and b.dtype == "int8" and value.m.dtype != np.int8:
                value = p.forward_view(self.program.scale_mode)
            if value.m.shape != b.shape:
                raise ExecutionError(f"parameter {p.name} has shape {value.m.shape}, the program {b.shape}")
            if b.memory is Memory.FLASH:
                off = self.plan.flash_offsets[p.name]
                self._flash_rw[off:off + b.nbytes].view(np.dtype(b.dtype)).reshape(b.shape)[...] = value.m
            else:
                self.view(p.name)[...] = value.m
            self.scales[p.name] = value.scale
            mom = self.program.buffers.get(f"{p.name}.momentum")
            if mom is not None:
                self.view(mom.name)[...] = 0 if p.momentum is None else p.momentum
            plane = self.program.buffers.get(f"{p.name}.remainder")
            if plane is not None:  # error feedback: the remainder packed (zeros before the first update)
                self.view(plane.name)[...] = pack_remainder(p, self.program.optim.feedback_bits)
            rexp = self.program.buffers.get(f"{p.name}.row_exp")
            if rexp is not None:  # per-row weight scales: persistent, beside the weights
                if rexp.memory is Memory.FLASH:
                    off = self.plan.flash_offsets[rexp.name]
                    self._flash_rw[off:off + rexp.nbytes].view(np.int8)[...] = p.row_exp
                else:
                    self.view(rexp.name)[...] = p.row_exp
        self.shims = {p.name: Parameter(p.name, p.kind, p.value, p.bits, trainable=p.name in self.program.trained)
                      for p in params}
        self.optimizer = self._optim_cls([self.shims[n] for n in self.program.param_order], self.program.optim,
                                         self.program.scale_mode)
        self._loaded = True

    def store(self, model) -> None:
        """Copy trained parameters (and momentum) back into ``model``; frozen ones are untouched."""
        for p in model.parameters():
            b = self.program.buffers.get(p.name)
            if b is None or b.memory is not Memory.SRAM:
                continue
            p.assign(QTensor(self.view(p.name).copy(), self.scales[p.name]))
            mom = self.program.buffers.get(f"{p.name}.momentum")
            if mom is not None:
                p.momentum = self.view(mom.name).copy()
            rexp = self.program.buffers.get(f"{p.name}.row_exp")
            if rexp is not None:
                p.row_exp = self.view(rexp.name).copy()
            plane = self.program.buffers.get(f"{p.name}.remainder")
            if plane is not None:
                from ..numerics.bitplane import unpack_plane

                bits = self.program.optim.feedback_bits
                p.remainder = unpack_plane(self.view(plane.name), bits, p.value.m.size).reshape(p.value.m.shape)
                p.feedback_bits = bits

    # -- running --------------------------------------------------------------------------------
    def step(self, x: np.ndarray, y: np.ndarray, ctx: Context, epoch: int = 0) -> ProgramResult:
        """One training step on int8 batch ``x`` with labels (or int8 targets) ``y``; advances the
        rounding stream like ``train_step``."""
        if not self._loaded:
            raise ExecutionError("load(model) before running steps")
        prog = self.program
        if ctx.mode != prog.scale_mode:
            raise ExecutionError(f"context scale mode {ctx.mode} differs from the program's {prog.scale_mode}")
        x = np.asarray(x)
        if x.shape != (prog.batch_size, *prog.input_shape):
            raise ExecutionError(f"program compiled for batches of shape {(prog.batch_size, *prog.input_shape)}, "
                                 f"got {x.shape}")
        self.optimizer.set_epoch(epoch)
        self.optimizer.batch_size = prog.batch_size
        io, env = _IO(self), _Env(self, ctx)
        if x.dtype != np.int8 and (x.min() < -128 or x.max() > 127):
            raise ExecutionError("inputs must be int8 mantissas")
        self._write_external("input", x.astype(np.int8), Scale(prog.input_exponent))
        labels = prog.buffers["labels"]
        y = np.asarray(y)
        if prog.loss == "cross_entropy":
            classes = prog.buffers["loss.err"].shape[1]
            if y.shape != (prog.batch_size,) or y.min() < 0 or y.max() >= classes:
                raise ExecutionError(f"labels must be {prog.batch_size} class indices in [0, {classes})")
            self._write_external("labels", y.astype(labels.dtype), Scale(0))
        else:
            self._write_external("labels", y.reshape(labels.shape).astype(np.int8), Scale(prog.target_exponent))
        for s in prog.steps:
            if self.poison:
                for name in s.workspace + s.outputs:
                    if prog.buffers[name].alias_of is None:
                        self._fill(name)
            kernel_for(s.op)(s, io, env)
            if self.poison:
                for name in self._dies.get(s.index, ()):
                    self._fill(name)
        ctx.stream.advance()
        total = self.view("loss.total")
        loss = LossValue(int(total[0]), self.scales["loss.total"])
        preds = None
        correct = 0
        if prog.loss == "cross_entropy":
            preds = self.view("predictions").astype(np.int64)
            correct = int((preds == y).sum())
        return ProgramResult(loss, correct, prog.batch_size, preds)

    def _write_external(self, name: str, value: np.ndarray, scale: Scale) -> None:
        b = self.program.buffers[name]
        if self.poison and b.alias_of is None:
            self._fill(name)
        self.view(name)[...] = value
        self.scales[name] = scale


def run_program(program: TrainingProgram, model, x: np.ndarray, y: np.ndarray, ctx: Context, *,
                plan: MemoryPlan | None = None, epoch: int = 0, poison: bool = True) -> ProgramResult:
    """Run one training step of ``program`` on ``model`` (parameters are read from the model and the
    trained ones written back), through an arena laid out by ``plan`` (default: the greedy plan).

    Bit-identical to ``tintin.train.train_step(model, IntegerSGD(model.parameters(), program.optim,
    mode), x, y, ctx)`` with the model's flags set by ``apply_update_selection`` (an optimiser at
    ``epoch``)."""
    ex = ProgramExecutor(program, plan, poison=poison)
    ex.load(model)
    result = ex.step(x, y, ctx, epoch=epoch)
    ex.store(model)
    return result


__all__ = ["ExecutionError", "ProgramExecutor", "ProgramResult", "run_program", "BufferKind"]
