"""The training-program IR: named buffers and an ordered list of steps.

A :class:`TrainingProgram` is one integer training step of a model, fully scheduled: forward steps,
the loss, backward steps (input error, weight gradient, bias gradient) and update steps, in the order
a device runs them. Every tensor the step touches is a named :class:`Buffer` with its dtype, shape,
size in bytes, kind, memory (SRAM or flash), the step that produces it and the last step that reads
it. Steps are data (an op name, input/output buffer names, attributes); executing them is the job of
:mod:`tintin.compile.executor`, placing them in memory the job of :mod:`tintin.compile.planner`.

Lifetimes use step indices: a buffer is live from its producer step to its last consumer step,
both inclusive. External buffers (the input batch and the labels, written by the application before
step 0) start at step 0; persistent buffers (trained parameters, optimiser state) and outputs
(loss, predictions, read by the application after the last step) live to the last step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

#: bytes per element of the dtypes the IR uses
DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8}


class BufferKind(str, Enum):
    """What a buffer holds (decides nothing by itself; reports and plots group by it)."""

    INPUT = "input"  #: the int8 input batch, written by the application
    LABEL = "label"  #: class indices (cross-entropy) or int8 targets (MSE)
    ACTIVATION = "activation"  #: a forward result read only by forward steps
    SAVED = "saved"  #: a forward result kept for the backward pass
    ERROR = "error"  #: int8 error of a tensor (backward pass)
    GRADIENT = "gradient"  #: int32 gradient of a parameter (or a row tile of it)
    PARAMETER = "parameter"  #: weights (int8 / int16) and biases (int32)
    OPTIMIZER_STATE = "optimizer_state"  #: integer momentum (int64)
    WORKSPACE = "workspace"  #: scratch of one step (int32 accumulators, weight views, im2col, ...)
    OUTPUT = "output"  #: results read by the application (loss total, predictions)


class Memory(str, Enum):
    SRAM = "sram"
    FLASH = "flash"


class Phase(str, Enum):
    FORWARD = "forward"
    LOSS = "loss"
    BACKWARD = "backward"
    UPDATE = "update"


@dataclass(frozen=True)
class Buffer:
    """One named tensor of a training program.

    Attributes:
        name: unique name, ``<layer>.<what>`` (e.g. ``fc1.out``, ``fc2.err_in``, ``fc1.weight``).
        kind: :class:`BufferKind`.
        dtype: one of :data:`DTYPE_BYTES`.
        shape: full shape including the batch dimension where there is one.
        memory: SRAM (planned in the arena) or flash (frozen parameters, read-only).
        layer: the layer that owns it (None for the input, labels and loss outputs).
        param: the parameter name for parameters, their gradients and optimiser state.
        alias_of: the buffer whose storage this one shares (same offset), or None. Set for views
            (Flatten) and in-place steps (ReLU, the loss error over the logits); the planner places
            only storage roots.
        producer: index of the step that writes it; None for external and persistent buffers.
        last_consumer: index of the last step that reads it; None if no step reads it.
        persistent: lives across training steps (trained parameters, optimiser state).
    """

    name: str
    kind: BufferKind
    dtype: str
    shape: tuple[int, ...]
    memory: Memory = Memory.SRAM
    layer: str | None = None
    param: str | None = None
    alias_of: str | None = None
    producer: int | None = None
    last_consumer: int | None = None
    persistent: bool = False

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES[self.dtype]

    @property
    def itemsize(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind.value, "dtype": self.dtype, "shape": list(self.shape),
                "bytes": self.nbytes, "memory": self.memory.value, "layer": self.layer, "param": self.param,
                "alias_of": self.alias_of, "producer": self.producer, "last_consumer": self.last_consumer,
                "persistent": self.persistent}


@dataclass(frozen=True)
class Step:
    """One kernel call of the schedule.

    Attributes:
        index: position in the schedule (0-based).
        phase: :class:`Phase`.
        op: kernel name (``linear_forward_s8``, ``sgd_update``, ...), looked up by the executor.
        layer: the layer it belongs to (None for the loss).
        inputs: buffers read (including parameters).
        outputs: buffers written (new values).
        workspace: scratch buffers used only inside this step.
        mutates: buffers updated in place (parameters and optimiser state in update steps).
        attrs: static arguments (rows of a sparse update, tile sizes, layer hyper-parameters).
        macs: int8 x int8 multiply-accumulates of the step (whole batch).
        elementwise: other per-element integer operations (rescaling, masking, update arithmetic),
            an order-of-magnitude count for the cost model.
    """

    index: int
    phase: Phase
    op: str
    layer: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    workspace: tuple[str, ...] = ()
    mutates: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    macs: int = 0
    elementwise: int = 0

    def reads(self) -> tuple[str, ...]:
        return self.inputs + self.mutates

    def to_dict(self) -> dict:
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.attrs.items()}
        return {"index": self.index, "phase": self.phase.value, "op": self.op, "layer": self.layer,
                "inputs": list(self.inputs), "outputs": list(self.outputs),
                "workspace": list(self.workspace), "mutates": list(self.mutates), "attrs": attrs,
                "macs": self.macs, "elementwise": self.elementwise}


@dataclass(frozen=True)
class TrainingProgram:
    """A compiled training step.

    Attributes:
        model_name: the model's name.
        batch_size: samples per step (activation scales are per tensor over the whole batch, so a
            program is compiled for one batch size).
        input_shape: per-sample input shape.
        update: the normalised update-selection text (``full``, ``bias``, ``last:2``, ...).
        trained: parameter name -> trained rows (None = all rows) for every trained parameter.
        param_order: every parameter name in ``model.parameters()`` order (stochastic-rounding
            sites are ``4 * index`` in this order).
        optim: the :class:`tintin.optim.OptimConfig` the update steps apply.
        scale_mode: the model's scale mode (``pow2`` / ``compound``).
        loss: ``cross_entropy`` or ``mse``.
        target_exponent: scale exponent of int8 MSE targets.
        input_exponent: scale exponent ``2**e`` of the int8 input batch.
        buffers: name -> :class:`Buffer`, in creation order.
        steps: the schedule.
        options: compile options (tiling budget, in-place switches).
    """

    model_name: str
    batch_size: int
    input_shape: tuple[int, ...]
    update: str
    trained: dict[str, np.ndarray | None]
    param_order: tuple[str, ...]
    optim: Any
    scale_mode: Any
    loss: str
    target_exponent: int
    input_exponent: int
    buffers: dict[str, Buffer]
    steps: tuple[Step, ...]
    options: dict[str, Any]

    # -- queries --------------------------------------------------------------------------------
    def buffer(self, name: str) -> Buffer:
        return self.buffers[name]

    def root(self, name: str) -> str:
        """The storage root of ``name`` (follows ``alias_of``)."""
        while self.buffers[name].alias_of is not None:
            name = self.buffers[name].alias_of
        return name

    def lifetime(self, name: str) -> tuple[int, int]:
        """``(first, last)`` step indices (inclusive) during which ``name`` itself holds data."""
        b = self.buffers[name]
        end = len(self.steps) - 1
        if b.persistent or b.kind is BufferKind.OUTPUT:
            first = 0 if b.persistent or b.producer is None else b.producer
            return first, end
        first = 0 if b.producer is None else b.producer
        last = b.last_consumer if b.last_consumer is not None else first
        return first, max(first, last)

    def storage_groups(self) -> dict[str, list[str]]:
        """SRAM storage root -> the buffers sharing its storage (root first)."""
        groups: dict[str, list[str]] = {}
        for name, b in self.buffers.items():
            if b.memory is Memory.SRAM:
                groups.setdefault(self.root(name), []).append(name)
        return {root: sorted(members, key=lambda m: m != root) for root, members in groups.items()}

    def group_lifetime(self, root: str) -> tuple[int, int]:
        spans = [self.lifetime(m) for m in self.storage_groups()[root]]
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def sram_buffers(self) -> list[Buffer]:
        return [b for b in self.buffers.values() if b.memory is Memory.SRAM]

    def flash_buffers(self) -> list[Buffer]:
        return [b for b in self.buffers.values() if b.memory is Memory.FLASH]

    def trained_parameter_buffers(self) -> list[Buffer]:
        """Parameters that live in SRAM because they are trained."""
        return [b for b in self.buffers.values() if b.kind is BufferKind.PARAMETER and b.memory is Memory.SRAM]

    def live_bytes(self) -> list[int]:
        """Bytes of SRAM storage live at each step (storage roots only): a lower bound of any
        arena that holds the program, up to alignment."""
        live = [0] * len(self.steps)
        for root, members in self.storage_groups().items():
            first, last = self.group_lifetime(root)
            size = max(self.buffers[m].nbytes for m in members)
            for s in range(first, last + 1):
                live[s] += size
        return live

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    def summary(self) -> str:
        lines = [f"{self.model_name}: batch {self.batch_size}, update {self.update}, {len(self.steps)} steps"]
        for s in self.steps:
            extra = f" ws={list(s.workspace)}" if s.workspace else ""
            mut = f" mut={list(s.mutates)}" if s.mutates else ""
            lines.append(f"{s.index:3d} {s.phase.value:8s} {s.op:32s} {list(s.inputs)} -> {list(s.outputs)}{mut}{extra}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"model": self.model_name, "batch_size": self.batch_size, "input_shape": list(self.input_shape),
                "update": self.update,
                "trained": {k: (None if v is None else [int(i) for i in v]) for k, v in self.trained.items()},
                "optim": self.optim.to_dict() if hasattr(self.optim, "to_dict") else None,
                "scale_mode": getattr(self.scale_mode, "value", str(self.scale_mode)), "loss": self.loss,
                "buffers": [b.to_dict() for b in self.buffers.values()],
                "steps": [s.to_dict() for s in self.steps], "options": dict(self.options)}
