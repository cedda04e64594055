"""``compile_program``: a model and an update selection become a :class:`TrainingProgram`.

How a program is built:

1. *Lowering.* Forward steps layer by layer (each layer type through its registered lowering),
   the loss (prediction, integer loss error), then backward steps from the last layer down to the
   first layer with a trained parameter, exactly as :meth:`tintin.nn.Sequential.backward` does:
   a layer propagates an input error only if a trained layer lies below it. Each parameter update
   follows its gradient at once, so gradient buffers die immediately.
2. *Dead-step elimination.* Steps whose results nothing needs are dropped (e.g. ReLU masks when
   the ReLU output is kept anyway).
3. *Lifetimes and kinds.* Producer and last consumer of every buffer; forward results read by a
   backward or update step become ``saved``.
4. *In-place decisions.* Views (Flatten) always share their input's storage; in-place steps (ReLU
   forward and backward, the loss error over the logits) share it only when nothing reads the
   input afterwards.

Weight gradients larger than ``grad_tile_bytes`` are not materialised: a fused step computes them
in tiles of output rows and updates each tile at once (see :mod:`tintin.compile.update`).

Accumulators (memory by default). The int32 accumulator of a rescaled product (forward, input
error) is stored in a workspace, or *recomputed*: the products are computed twice, once for the
maximum that decides the rescale and once to quantise, so the int32 map never exists. The rule:

* ``accumulator_budget=B`` (bytes): every accumulator larger than ``B`` is recomputed;
* otherwise, for a **sparse update** (any selection that does not train every row of every
  parameter: ``bias``, ``last:K``, ``sparse:...``), an accumulator is recomputed when it has at
  least :data:`RECOMPUTE_MIN_BYTES` (4 KiB) and holds at least ``recompute_bytes_per_mac`` bytes
  per MAC its recomputation adds (default :data:`RECOMPUTE_BYTES_PER_MAC` = 1/16: a byte of SRAM
  saved is worth 16 extra MACs; small accumulators never set the peak and stay stored). Sparse
  updates are chosen to save memory, and their peak is the forward pass's largest map: LeNet-5's
  18.8 KB conv1 accumulator (117,600 MACs, 0.16 B/MAC) is recomputed, conv2's 6.4 KB (240,000
  MACs, 0.027 B/MAC) is stored; the bias-only plan falls from 25.9 KB to 13.4 KB for 16 % more MACs.
  The ``full`` update stores every accumulator (its peak is the weight gradients and saved maps);
* ``recompute_bytes_per_mac=None`` stores every accumulator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..nn.config import LOSS_ERROR_SITE
from ..numerics import Rounding
from .ir import DTYPE_BYTES, Buffer, BufferKind, Memory, Phase, Step, TrainingProgram
from .registry import CompileError, lowering_for
from .selection import model_selection, parse_update


#: sparse updates recompute an int32 accumulator that holds at least this many bytes per extra MAC ...
RECOMPUTE_BYTES_PER_MAC = 1 / 16
#: ... and at least this many bytes
RECOMPUTE_MIN_BYTES = 4096


@dataclass(frozen=True)
class CompileOptions:
    """Compiler switches.

    Attributes:
        grad_tile_bytes: weight gradients of more than this many bytes (int32) are computed in tiles
            of output rows, each tile at most this size (but at least one row), fused with the
            update; ``None`` always materialises the whole gradient.
        inplace: allow in-place steps (ReLU, ReLU backward, the loss error over the logits).
        relu_mask: keep a 1-bit mask instead of the int8 ReLU output when the backward pass needs
            only the sign of the output.
        target_exponent: scale exponent ``2**e`` of int8 MSE targets (as ``train_step``).
        accumulator_budget: the int32 accumulator of a rescaled product (forward, input error) is
            kept in a workspace when it has at most this many bytes (None: always); a larger one is
            not stored: the products are computed twice (once for the maximum that decides the
            rescale, once to quantise), trading twice the MACs of that step for no int32 workspace.
        recompute_bytes_per_mac: with ``accumulator_budget=None`` and a sparse update (not every
            row of every parameter trained), an accumulator of at least ``RECOMPUTE_MIN_BYTES`` and
            at least this many bytes per MAC of its product is recomputed (see the module
            docstring); None stores every accumulator.
        patch_size: compute the frozen first stage (2-D convolutions, ReLUs and max pools from the
            first layer on, below every backward step) patch by patch, ``P x P`` positions of the
            stage output at a time, so that its maps never exist in full (one
            ``patch_stage_forward_s8`` step, :mod:`tintin.compile.patch`); None: off.
        patch_layers: at most this many layers in the patch stage (None: the longest stage).
    """

    grad_tile_bytes: int | None = 1024
    inplace: bool = True
    relu_mask: bool = True
    target_exponent: int = 0
    accumulator_budget: int | None = None
    recompute_bytes_per_mac: float | None = RECOMPUTE_BYTES_PER_MAC
    patch_size: int | None = None
    patch_layers: int | None = None

    def __post_init__(self):
        if self.patch_size is not None and self.patch_size < 1:
            raise CompileError(f"patch_size must be at least 1, got {self.patch_size}")
        if self.patch_layers is not None and self.patch_layers < 1:
            raise CompileError(f"patch_layers must be at least 1, got {self.patch_layers}")
        if self.recompute_bytes_per_mac is not None and not self.recompute_bytes_per_mac > 0:
            raise CompileError(f"recompute_bytes_per_mac must be positive or None, got {self.recompute_bytes_per_mac}")
        if self.accumulator_budget is not None and self.accumulator_budget < 0:
            raise CompileError(f"accumulator_budget must be >= 0 bytes, got {self.accumulator_budget}")
        if self.grad_tile_bytes is not None and self.grad_tile_bytes < 4:
            raise CompileError(f"grad_tile_bytes must be at least 4 (one int32), got {self.grad_tile_bytes}")


def _np_dtype_name(arr: np.ndarray) -> str:
    name = np.dtype(arr.dtype).name
    if name not in DTYPE_BYTES:
        raise CompileError(f"unsupported parameter dtype {name}")
    return name


class ProgramBuilder:
    """Collects buffers and steps while layers are lowered (used by lowerings)."""

    def __init__(self, model, trained: dict[str, np.ndarray | None], batch_size: int, optim,
                 options: CompileOptions):
        self.model = model
        self.trained_rows = trained
        self.batch_size = batch_size
        self.optim = optim
        self.options = options
        self.mode = model.config.scale_mode
        self.params = {p.name: p for p in model.parameters()}
        #: not every row of every parameter is trained (the recompute rule applies)
        self.sparse = any(name not in trained or trained[name] is not None for name in self.params)
        self._buffers: dict[str, dict] = {}
        self._steps: list[dict] = []
        self._views: dict[str, str] = {}  # out -> in, always aliased
        self._memo: dict[tuple[str, str], object] = {}

    # -- buffers --------------------------------------------------------------------------------
    def add_buffer(self, name: str, kind: BufferKind, dtype: str, shape: tuple[int, ...], *,
                   layer: str | None = None, param: str | None = None, memory: Memory = Memory.SRAM,
                   persistent: bool = False) -> str:
        if name in self._buffers:
            raise CompileError(f"duplicate buffer name {name!r} (layer names must be unique)")
        if dtype not in DTYPE_BYTES:
            raise CompileError(f"unknown dtype {dtype!r} for buffer {name!r}")
        self._buffers[name] = dict(name=name, kind=kind, dtype=dtype, shape=tuple(int(s) for s in shape),
                                   memory=memory, layer=layer, param=param, persistent=persistent)
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        return self._buffers[name]["shape"]

    def dtype(self, name: str) -> str:
        return self._buffers[name]["dtype"]

    # -- steps ----------------------------------------------------------------------------------
    def add_step(self, phase: Phase, op: str, layer: str | None, inputs=(), outputs=(), *, workspace=(),
                 mutates=(), attrs: dict | None = None, macs: int = 0, elementwise: int = 0,
                 inplace: dict[str, str] | None = None, view: dict[str, str] | None = None,
                 optional: tuple[str, ...] = ()) -> None:
        """Append a step. ``view``: outputs that are reinterpretations of an input (always share
        storage); ``inplace``: outputs that may overwrite an input when nothing reads it later;
        ``optional``: outputs dropped from the step when no step reads them (e.g. max-pool argmax)."""
        for name in (*inputs, *outputs, *workspace, *mutates):
            if name not in self._buffers:
                raise CompileError(f"step {op}: unknown buffer {name!r}")
        for out, src in (view or {}).items():
            self._views[out] = src
        self._steps.append(dict(phase=Phase(phase), op=op, layer=layer, inputs=tuple(inputs),
                                outputs=tuple(outputs), workspace=tuple(workspace), mutates=tuple(mutates),
                                attrs=dict(attrs or {}), macs=int(macs), elementwise=int(elementwise),
                                inplace=dict(inplace or {}), view=dict(view or {}), optional=tuple(optional)))

    def read_by_backward(self, name: str) -> bool:
        """True if a backward or update step added so far reads ``name`` or a view of it."""
        names = {name}
        grew = True
        while grew:
            new = {out for out, src in self._views.items() if src in names} - names
            grew = bool(new)
            names |= new
        return any(s["phase"] in (Phase.BACKWARD, Phase.UPDATE) and names & set(s["inputs"] + s["mutates"])
                   for s in self._steps)

    # -- memo -----------------------------------------------------------------------------------
    def remember(self, layer, key: str, value) -> None:
        self._memo[(layer.name, key)] = value

    def recall(self, layer, key: str):
        return self._memo[(layer.name, key)]

    # -- parameters -----------------------------------------------------------------------------
    def trained(self, p) -> bool:
        return p is not None and p.name in self.trained_rows

    def param(self, p) -> str:
        """The buffer of parameter ``p``: SRAM if trained, else flash (read-only). Frozen int16
        weights are stored in flash as their int8 forward view (constant, half the bytes)."""
        if p.name not in self._buffers:
            if self.trained(p):
                self.add_buffer(p.name, BufferKind.PARAMETER, _np_dtype_name(p.value.m), p.value.m.shape,
                                layer=p.name.rsplit(".", 1)[0], param=p.name, persistent=True)
            else:
                dtype = "int8" if p.kind == "weight" and p.bits == 16 else _np_dtype_name(p.value.m)
                self.add_buffer(p.name, BufferKind.PARAMETER, dtype, p.value.m.shape,
                                layer=p.name.rsplit(".", 1)[0], param=p.name, memory=Memory.FLASH,
                                persistent=True)
        return p.name

    def row_exp(self, p) -> str | None:
        """The buffer of the per-row exponents of weight ``p`` (``None`` without row scales): int8,
        one per output row, persistent, in SRAM when ``p`` is trained (the update changes it), else
        in flash."""
        if getattr(p, "row_exp", None) is None:
            return None
        name = f"{p.name}.row_exp"
        if name not in self._buffers:
            self.add_buffer(name, BufferKind.PARAMETER, "int8", (p.value.m.shape[0],), layer=p.name.rsplit(".", 1)[0],
                            param=p.name, memory=Memory.SRAM if self.trained(p) else Memory.FLASH, persistent=True)
        return name

    def kernel_weight(self, p, layer: str, phase: Phase, tag: str) -> str:
        """The buffer holding the int8 weights the kernels read. For trained int16 weights a
        ``weight_view_s8`` step recomputes the int8 view (nearest rescale) right before its use."""
        name = self.param(p)
        if not (self.trained(p) and p.bits == 16):
            return name
        view = self.add_buffer(f"{p.name}.view8@{tag}", BufferKind.WORKSPACE, "int8", p.value.m.shape,
                               layer=layer, param=p.name)
        self.add_step(phase, "weight_view_s8", layer, (name,), (view,), elementwise=p.value.m.size)
        return view

    def _momentum(self, p) -> str | None:
        cfg = self.optim
        if not cfg.momentum_shift or (cfg.rule == "niti" and p.kind == "weight"):
            return None
        rows = self.trained_rows[p.name]
        shape = p.value.m.shape if rows is None else (len(rows), *p.value.m.shape[1:])
        return self.add_buffer(f"{p.name}.momentum", BufferKind.OPTIMIZER_STATE, "int64", shape,
                               layer=p.name.rsplit(".", 1)[0], param=p.name, persistent=True)

    def remainder_plane(self, p) -> str | None:
        """The packed error-feedback plane of trained weight ``p`` (``None`` unless the optimiser
        feeds it back): ``ceil(count * L / 8)`` bytes, ``L = feedback_bits``, the layout of
        :mod:`tintin.numerics.bitplane`; persistent, in SRAM, over the whole tensor (frozen rows keep
        their remainders)."""
        if not self.optim.feeds_back(p.name, p.kind):
            return None
        from ..numerics.bitplane import plane_bytes

        return self.add_buffer(f"{p.name}.remainder", BufferKind.OPTIMIZER_STATE, "uint8",
                               (plane_bytes(p.value.m.size, self.optim.feedback_bits),),
                               layer=p.name.rsplit(".", 1)[0], param=p.name, persistent=True)

    def update_parameter(self, p, layer: str, grad_op: str, grad_inputs: tuple[str, ...], grad_macs: int,
                         attrs: dict | None = None) -> None:
        """Gradient and update of trained parameter ``p``.

        ``grad_op`` is a registered gradient-rows op computing the int32 gradient from
        ``grad_inputs``; ``grad_macs`` is its MAC count for all rows. Small gradients (and every
        bias) are materialised (a ``grad_op`` step, then ``sgd_update``); weight gradients above
        ``grad_tile_bytes`` are computed in row tiles fused with the update (``fused_weight_update``)."""
        attrs = dict(attrs or {})
        scratch = attrs.pop("scratch", ())
        rows = self.trained_rows[p.name]
        n = p.value.m.shape[0]
        r = n if rows is None else len(rows)
        row_len = int(np.prod(p.value.m.shape[1:], dtype=np.int64))
        pbuf = self.param(p)
        mom = self._momentum(p)
        rexp = self.row_exp(p)
        plane = self.remainder_plane(p)
        mutates = (pbuf,) + ((mom,) if mom else ()) + ((rexp,) if rexp else ()) + ((plane,) if plane else ())
        if rexp:  # per-row weight scales: the update kernels find the exponents by name
            attrs.update(row_exp=rexp, row_limit=int(p.row_limit))
        macs = grad_macs * r // n
        grad_bytes = r * row_len * 4
        tile = self.options.grad_tile_bytes
        update_ops = r * row_len * 6
        if p.kind != "weight" or tile is None or grad_bytes <= tile:
            g = self.add_buffer(f"{p.name}.grad", BufferKind.GRADIENT, "int32", (r, *p.value.m.shape[1:]),
                                layer=layer, param=p.name)
            ws = self._scratch(p, scratch, "grad")
            self.add_step(Phase.BACKWARD, grad_op, layer, grad_inputs, (g,), workspace=ws, attrs={**attrs, "rows": rows},
                          macs=macs, elementwise=r * row_len)
            self.add_step(Phase.UPDATE, "sgd_update", layer, (g,), (), mutates=mutates,
                          attrs={"param": p.name, "rows": rows,
                                 **({"row_exp": rexp, "row_limit": int(p.row_limit)} if rexp else {}),
                                 **({"remainder": plane, "feedback_bits": self.optim.feedback_bits} if plane else {})},
                          elementwise=update_ops)
            return
        tile_rows = max(1, tile // (row_len * 4))
        n_tiles = -(-r // tile_rows)
        passes = 2 if self.optim.rule == "niti" and n_tiles > 1 else 1
        ws = self.add_buffer(f"{p.name}.grad_tile", BufferKind.GRADIENT, "int32", (min(tile_rows, r), *p.value.m.shape[1:]),
                             layer=layer, param=p.name)
        self.add_step(Phase.UPDATE, "fused_weight_update", layer, grad_inputs, (),
                      workspace=(ws,) + self._scratch(p, scratch, "grad"), mutates=mutates,
                      attrs={**attrs, "param": p.name, "rows": rows, "grad_op": grad_op, "tile_rows": tile_rows,
                             "tiles": n_tiles, "gradient_passes": passes,
                             **({"remainder": plane, "feedback_bits": self.optim.feedback_bits} if plane else {})},
                      macs=macs * passes, elementwise=update_ops + r * row_len * passes)

    def accumulator(self, name: str, shape: tuple[int, ...], layer: str, macs: int) -> tuple[tuple[str, ...], int]:
        """Workspace of an int32 accumulator that is rescaled as a whole, and the MAC passes it
        costs: ``((name,), 1)``, or ``((), 2)`` when it is recomputed (the rule of the module
        docstring; ``macs``: the MACs of one pass of its product)."""
        if self.recomputes(4 * int(np.prod(shape, dtype=np.int64)), macs):
            return (), 2
        return (self.add_buffer(name, BufferKind.WORKSPACE, "int32", shape, layer=layer),), 1

    def recomputes(self, nbytes: int, macs: int) -> bool:
        """Whether an int32 accumulator of ``nbytes`` whose product costs ``macs`` is recomputed."""
        budget = self.options.accumulator_budget
        if budget is not None:
            return nbytes > budget
        ratio = self.options.recompute_bytes_per_mac
        return (self.sparse and ratio is not None and nbytes >= RECOMPUTE_MIN_BYTES and macs > 0
                and nbytes >= ratio * macs)

    def _scratch(self, p, scratch, tag: str) -> tuple[str, ...]:
        """Workspace buffers ``(suffix, dtype, shape)`` of a gradient step (e.g. an im2col block)."""
        return tuple(self.add_buffer(f"{p.name}.{suffix}@{tag}", BufferKind.WORKSPACE, dtype, shape,
                                     layer=p.name.rsplit(".", 1)[0], param=p.name)
                     for suffix, dtype, shape in scratch)

    # -- dispatch -------------------------------------------------------------------------------
    def forward(self, layer, x: str) -> str:
        return lowering_for(layer).forward(self, layer, x)

    def backward(self, layer, err: str, need_input_error: bool) -> str | None:
        return lowering_for(layer).backward(self, layer, err, need_input_error)

    def layer_trained(self, layer) -> bool:
        return any(self.trained(p) for p in layer.parameters())

    # -- finishing ------------------------------------------------------------------------------
    def finish(self, meta: dict) -> TrainingProgram:
        steps = self._eliminate_dead_steps()
        producer: dict[str, int] = {}
        last: dict[str, int] = {}
        for i, s in enumerate(steps):
            for name in s["inputs"] + s["mutates"]:
                last[name] = i
            for name in s["outputs"] + s["workspace"]:
                if name in producer:
                    raise CompileError(f"buffer {name!r} is written by two steps")
                producer[name] = i
                if name in s["workspace"]:
                    last[name] = max(last.get(name, i), i)
        used = set(producer) | set(last)
        backward_read = {n for s in steps if s["phase"] in (Phase.BACKWARD, Phase.UPDATE) for n in s["inputs"]}
        alias = self._decide_aliases(steps, last)
        buffers: dict[str, Buffer] = {}
        for name, d in self._buffers.items():
            if name not in used and not d["persistent"]:
                continue
            kind = d["kind"]
            if kind is BufferKind.ACTIVATION and name in backward_read:
                kind = BufferKind.SAVED
            buffers[name] = Buffer(name=name, kind=kind, dtype=d["dtype"], shape=d["shape"], memory=d["memory"],
                                   layer=d["layer"], param=d["param"], alias_of=alias.get(name),
                                   producer=producer.get(name), last_consumer=last.get(name),
                                   persistent=d["persistent"])
        final = tuple(Step(index=i, phase=s["phase"], op=s["op"], layer=s["layer"], inputs=s["inputs"],
                           outputs=s["outputs"], workspace=s["workspace"], mutates=s["mutates"], attrs=s["attrs"],
                           macs=s["macs"], elementwise=s["elementwise"]) for i, s in enumerate(steps))
        return TrainingProgram(buffers=buffers, steps=final, **meta)

    def _eliminate_dead_steps(self) -> list[dict]:
        needed: set[str] = set()
        kept = []
        for s in reversed(self._steps):
            required = bool(s["mutates"]) or any(self._buffers[o]["kind"] is BufferKind.OUTPUT for o in s["outputs"])
            if required or needed & set(s["outputs"]):
                dropped = {o for o in s["optional"] if o not in needed}
                if dropped:
                    s = {**s, "outputs": tuple(o for o in s["outputs"] if o not in dropped)}
                kept.append(s)
                needed |= set(s["inputs"]) | set(s["mutates"])
        return kept[::-1]

    def _decide_aliases(self, steps: list[dict], last: dict[str, int]) -> dict[str, str]:
        alias: dict[str, str] = {}

        def root(n: str) -> str:
            while n in alias:
                n = alias[n]
            return n

        for i, s in enumerate(steps):
            for out, src in s["view"].items():
                alias[out] = src
            if not self.options.inplace:
                continue
            for out, src in s["inplace"].items():
                r = root(src)
                members = [n for n in set(self._buffers) if root(n) == r]
                rb = self._buffers[r]
                ob = self._buffers[out]
                nbytes = lambda d: int(np.prod(d["shape"], dtype=np.int64)) * DTYPE_BYTES[d["dtype"]]  # noqa: E731
                ok = (rb["memory"] is Memory.SRAM and not rb["persistent"]
                      and all(self._buffers[m]["kind"] is not BufferKind.OUTPUT for m in members)
                      and all(last.get(m, -1) <= i for m in members)
                      and nbytes(ob) <= nbytes(rb))
                if ok:
                    alias[out] = src
        return alias


def _all_layers(model) -> list:
    """Every layer of ``model``, those inside residual blocks included."""
    out, todo = [], list(model.layers)
    while todo:
        layer = todo.pop(0)
        out.append(layer)
        todo[:0] = list(getattr(layer, "children", lambda: [])())
    return out


def check_row_scales(model, optim) -> None:
    """Per-row weight scales compile for fully connected and convolution layers with the aligned
    rule, without momentum or error feedback (what the simulator trains them with)."""
    from ..nn.conv_layers import Conv1d, Conv2d
    from ..nn.layers import Linear

    rowed = {p.name for p in model.parameters() if getattr(p, "row_exp", None) is not None}
    if not rowed:
        return
    kept = {layer.weight.name for layer in _all_layers(model) if isinstance(layer, (Linear, Conv1d, Conv2d))}
    other = sorted(rowed - kept)
    if other:
        raise CompileError(f"{other[0]}: compiled programs keep per-row weight scales for Linear and "
                           "convolution layers only")
    if optim.rule != "aligned" or optim.momentum_shift:
        raise CompileError("per-row weight scales train with the aligned rule without momentum")


def check_error_feedback(model, optim, trained) -> None:
    """Error feedback compiles for trained int8 weights with one scale, the aligned rule, no momentum:
    a packed remainder plane per weight (:meth:`ProgramBuilder.remainder_plane`)."""
    if not optim.error_feedback:
        return
    if optim.momentum_shift:
        raise CompileError("error feedback with momentum trains in the simulator only: compiled programs keep "
                           "the remainder without momentum (momentum_shift=0)")
    for p in model.parameters():
        if p.name not in trained or not optim.feeds_back(p.name, p.kind):
            continue
        if p.bits != 8:
            raise CompileError(f"{p.name}: compiled error feedback keeps a remainder beside int8 weights; this "
                               f"weight has int{p.bits} masters (drop it from --error-feedback or --wide-layers)")
        if getattr(p, "row_exp", None) is not None:
            raise CompileError(f"{p.name}: compiled error feedback needs one weight scale per tensor (no per-row "
                               "scales)")
        if p.remainder is not None and p.feedback_bits != optim.feedback_bits:
            raise CompileError(f"{p.name} holds a {p.feedback_bits}-bit remainder; the program keeps "
                               f"{optim.feedback_bits} bits (feedback_bits)")


def compile_program(model, update: str | None = "full", batch_size: int = 1, optim=None,
                    options: CompileOptions | None = None, **option_overrides) -> TrainingProgram:
    """Compile one integer training step of ``model`` (a :class:`tintin.nn.Sequential`).

    ``update``: an update string (see :mod:`tintin.compile.selection`), or None to use the model's
    current ``trainable`` / ``trainable_rows`` flags. The model is not modified (use
    :func:`tintin.compile.apply_update_selection` so that ``train_step`` trains the same thing).
    ``optim``: the :class:`tintin.optim.OptimConfig` of the update steps (default settings if None).
    Keyword overrides set fields of :class:`CompileOptions`.

    >>> from tintin.compile import compile_program, plan_memory
    >>> from tintin.nn import build_model
    >>> model = build_model("mlp", (1, 8, 8), 10, seed=0)
    >>> program = compile_program(model, update="bias", batch_size=1)
    >>> sorted(program.trained)
    ['fc1.bias', 'fc2.bias']
    >>> plan_memory(program, "greedy").arena_bytes < plan_memory(program, "naive").arena_bytes
    True
    """
    from ..optim import OptimConfig

    if not hasattr(model, "layers") or not hasattr(model, "input_shape"):
        raise CompileError(f"compile_program needs a Sequential model, got {type(model).__name__}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise CompileError(f"batch size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    optim = optim if optim is not None else OptimConfig()
    check_row_scales(model, optim)
    options = options or CompileOptions()
    if option_overrides:
        options = CompileOptions(**{**asdict(options), **option_overrides})
    if update is None:
        trained, update_text = model_selection(model), "model"
    else:
        selection = parse_update(update)
        trained, update_text = selection.resolve(model), selection.text
    for name, rows in trained.items():
        if rows is not None and len(rows) == 0:
            raise CompileError(f"parameter {name} is trained with an empty row set")
    check_error_feedback(model, optim, trained)
    _check_batch_bounds(model, batch_size)
    b = ProgramBuilder(model, trained, batch_size, optim, options)
    B = batch_size
    x = b.add_buffer("input", BufferKind.INPUT, "int8", (B, *model.input_shape))
    stop = next((i for i, layer in enumerate(model.layers) if b.layer_trained(layer)), len(model.layers))
    first = 0
    if options.patch_size is not None:
        from .patch import lower_patch_stage, stage_layers

        stage = stage_layers(model, stop, options.patch_layers)
        if not stage:
            raise CompileError(f"no patch stage: the model must start with a frozen 2-D convolution that no "
                               f"backward step reaches (update {update_text!r} trains "
                               f"{model.layers[stop].name if stop < len(model.layers) else 'nothing'})")
        x = lower_patch_stage(b, stage, x, options.patch_size)
        first = len(stage)
    for layer in model.layers[first:]:
        x = b.forward(layer, x)
    err = _lower_loss(b, model, x)
    for i in range(len(model.layers) - 1, stop - 1, -1):
        err = b.backward(model.layers[i], err, need_input_error=i > stop)
    meta = dict(model_name=model.name, batch_size=B, input_shape=tuple(model.input_shape), update=update_text,
                trained=trained, param_order=tuple(p.name for p in model.parameters()), optim=optim,
                scale_mode=model.config.scale_mode, loss=model.loss, target_exponent=options.target_exponent,
                input_exponent=int(model.input_exponent), options=asdict(options))
    return b.finish(meta)


def _check_batch_bounds(model, batch_size: int) -> None:
    from ..numerics import AccumulatorBoundError, check_terms

    for i, layer in enumerate(model.layers):
        positions = getattr(layer, "gradient_positions", None)
        per_sample = positions(model.shapes[i]) if positions else 1
        if layer.parameters():
            try:
                check_terms(batch_size * per_sample, f"{layer.name}: weight gradient (batch {batch_size})")
            except AccumulatorBoundError as exc:
                raise CompileError(str(exc)) from None


def _lower_loss(b: ProgramBuilder, model, logits: str) -> str:
    B = b.batch_size
    out_shape = b.shape(logits)
    n_out = int(np.prod(out_shape[1:], dtype=np.int64))
    err = b.add_buffer("loss.err", BufferKind.ERROR, "int8", out_shape)
    total = b.add_buffer("loss.total", BufferKind.OUTPUT, "int64", (1,))
    if model.loss == "cross_entropy":
        classes = out_shape[1]
        labels = b.add_buffer("labels", BufferKind.LABEL, "uint8" if classes <= 256 else "int16", (B,))
        preds = b.add_buffer("predictions", BufferKind.OUTPUT, "int16", (B,))
        b.add_step(Phase.LOSS, "predict_argmax", None, (logits,), (preds,), elementwise=B * classes)
        ws = b.add_buffer("loss.workspace", BufferKind.WORKSPACE, "int32", (3, B, classes))
        rounding = model.config.loss_error_rounding
        attrs = {} if rounding is Rounding.NEAREST else {"rounding": rounding.value, "site": LOSS_ERROR_SITE}
        b.add_step(Phase.LOSS, "softmax_cross_entropy_error", None, (logits, labels), (err, total), workspace=(ws,),
                   attrs=attrs, inplace={err: logits}, elementwise=B * classes * 12)
    else:
        labels = b.add_buffer("labels", BufferKind.LABEL, "int8", out_shape)
        ws = b.add_buffer("loss.workspace", BufferKind.WORKSPACE, "int32", out_shape)
        b.add_step(Phase.LOSS, "mse_error", None, (logits, labels), (err, total), workspace=(ws,),
                   attrs={"target_exponent": b.options.target_exponent}, inplace={err: logits},
                   elementwise=B * n_out * 4)
    return err
