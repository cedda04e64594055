"""Render the C sources of one compiled training program: ``tt_model.h``, ``tt_model.c`` and
``tt_model_params.c``.

How the program maps to C (details in ``docs/codegen.md``):

* **One arena.** ``uint8_t tt_arena[TT_ARENA_BYTES]`` (8-byte aligned) of exactly the planner's
  size; every SRAM buffer is a typed pointer at its planned offset (``TT_BUF_<name>``), aliases
  share their root's offset. Trained parameters and momentum live in it; their initial values
  are constant arrays in flash (``TT_ROM``: program memory on AVR) copied in by ``tt_init``.
  Frozen parameters are ``static const`` arrays read in place.
* **Scales** of step tensors are fields of a local struct (``tt_train_scales_t``), the persistent
  parameter scales a static struct (``tt_pscale``).
* **The schedule** is ``tt_train_step``: one runtime call per step in program order (see
  :mod:`tintin.codegen.steps`), stochastic-rounding keys from ``(seed, step, 4 * parameter)``.
* **Evaluation** (``tt_forward`` / ``tt_predict``) runs the forward steps of a batch-1 program:
  the training program itself when its batch is 1 (same offsets), otherwise a batch-1 program
  re-planned into a gap of the arena that no persistent buffer or output uses, or, when no gap is
  large enough, into a separate ``tt_eval_arena``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cgen import CTYPE, CodegenError, IdentTable, c_array, c_size, comment
from .steps import SUPPORTED_OPS, EmitContext, StepEmitter

#: dtype codes of tt_param_info_t
DTYPE_CODE = {"int8": 1, "int16": 2, "int32": 3, "int64": 4, "uint8": 5}
#: roles of tt_param_info_t entries (row exponents: the int8 per-row exponents of the weight before
#: them, in the arena and changed by training when that weight is trained, else constant in flash)
ROLE_FROZEN, ROLE_TRAINED, ROLE_MOMENTUM, ROLE_ROW_EXP = 0, 1, 2, 3
#: the packed error-feedback plane of the weight before it (uint8 bytes, tintin.numerics.bitplane)
ROLE_FEEDBACK = 4
#: role -> its name in reports (``tintin export --json``)
ROLE_NAMES = {ROLE_FROZEN: "frozen", ROLE_TRAINED: "trained", ROLE_MOMENTUM: "momentum", ROLE_ROW_EXP: "row_exp",
              ROLE_FEEDBACK: "feedback"}
_ROUNDING = {"nearest": 0, "stochastic": 1, "pseudo_stochastic": 2}


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _align(v: int, a: int) -> int:
    return -(-v // a) * a


@dataclass(frozen=True)
class ParamEntry:
    """One entry of the exported parameter table (``tt_param_get(index)``)."""

    index: int
    name: str  #: parameter name (``fc1.weight``), ``<param>.momentum`` or ``<param>.row_exp``
    dtype: str
    shape: tuple[int, ...]
    role: int  #: ROLE_FROZEN, ROLE_TRAINED, ROLE_MOMENTUM or ROLE_ROW_EXP
    param: str  #: the parameter it belongs to

    @property
    def count(self) -> int:
        return _size(self.shape)


def state_entries(entries) -> list:
    """The entries ``tt_train_step`` changes, in table order: trained parameters, momentum and the
    row exponents of trained weights (what a checkpoint saves and a host loads and reads back)."""
    trained = {e.name for e in entries if e.role == ROLE_TRAINED}
    return [e for e in entries if e.role in (ROLE_TRAINED, ROLE_MOMENTUM, ROLE_FEEDBACK)
            or (e.role == ROLE_ROW_EXP and e.param in trained)]


@dataclass(frozen=True)
class EvalLayout:
    """Where the batch-1 evaluation keeps its tensors.

    Attributes:
        mode: ``"training"`` (the batch-1 training program's own offsets), ``"gap"`` (re-planned
            into a free gap of the training arena at ``base``) or ``"separate"`` (its own
            ``tt_eval_arena`` of ``bytes`` bytes).
        base: offset of the evaluation tensors in the training arena (``gap``), else 0.
        bytes: bytes the evaluation tensors span.
        offsets: buffer name -> offset relative to ``base`` (``gap``/``separate``).
    """

    mode: str
    base: int
    bytes: int
    offsets: dict


@dataclass(frozen=True)
class ModelSources:
    """The rendered model files and what they contain."""

    files: dict  #: file name -> text
    params: tuple  #: ParamEntry, in table order
    arena_bytes: int
    eval_layout: EvalLayout
    label_ctype: str
    label_size: int  #: labels per sample
    input_size: int  #: int8 inputs per sample
    output_size: int  #: int8 outputs per sample (logits)
    classes: int | None


# -- evaluation layout -----------------------------------------------------------------------------

def eval_steps(program) -> list:
    """The steps that evaluate one batch: forward steps except ReLU masks (nothing reads them)."""
    return [s for s in program.steps if s.phase.value == "forward" and s.op != "relu_mask_u1"]


def logits_buffer(program) -> str:
    """The buffer holding the network output (the input of the loss step)."""
    for s in program.steps:
        if s.phase.value == "loss" and s.op in ("softmax_cross_entropy_error", "mse_error"):
            return s.inputs[0]
    raise CodegenError("the program has no loss step")


def plan_eval(eval_program, train_program, train_plan) -> EvalLayout:
    """Place the batch-1 evaluation of ``eval_program``'s forward steps (see the module doc)."""
    from ..compile.planner import AllocationRequest, GreedyPlanner, arena_size, check_placement

    if eval_program is train_program:
        return EvalLayout("training", 0, train_plan.arena_bytes, {})
    steps = eval_steps(eval_program)
    logits = logits_buffer(eval_program)
    # maxpool argmax outputs are not needed for evaluation (the kernel accepts NULL)
    used: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        outs = s.outputs[:1] if s.op == "maxpool_forward_s8" else s.outputs
        for name in (*s.inputs, *outs, *s.workspace):
            b = eval_program.buffers[name]
            if b.kind.value == "parameter":
                continue
            used.setdefault(name, []).append(i)
    used.setdefault("input", []).append(0)
    used.setdefault(logits, []).append(len(steps))
    groups: dict[str, dict] = {}
    for name, idx in used.items():
        root = eval_program.root(name)
        b = eval_program.buffers[name]
        g = groups.setdefault(root, {"first": min(idx), "last": max(idx), "size": 0, "align": 4})
        g["first"] = min(g["first"], min(idx))
        g["last"] = max(g["last"], max(idx))
        g["size"] = max(g["size"], b.nbytes)
        g["align"] = max(g["align"], min(b.itemsize, 8))
    g_input = groups[eval_program.root("input")]
    g_input["first"] = 0
    requests = [AllocationRequest(r, g["size"], g["first"], g["last"], g["align"]) for r, g in groups.items()]
    root_offsets = GreedyPlanner().place(requests)
    check_placement(requests, root_offsets)
    total = arena_size(requests, root_offsets)
    offsets = {name: root_offsets[eval_program.root(name)] for name in used}
    # a gap of the training arena that no persistent buffer or output ever uses
    busy = sorted((train_plan.offsets[b.name], train_plan.offsets[b.name] + b.nbytes)
                  for b in train_program.buffers.values()
                  if b.memory.value == "sram" and (b.persistent or b.kind.value == "output"))
    start = 0
    for lo, hi in busy + [(train_plan.arena_bytes, train_plan.arena_bytes)]:
        start = _align(start, 8)
        if lo - start >= total:
            return EvalLayout("gap", start, total, offsets)
        start = max(start, hi)
    return EvalLayout("separate", 0, _align(total, 8), offsets)


# -- rendering --------------------------------------------------------------------------------------

class _Renderer:
    def __init__(self, model, program, plan, eval_program, checkpoint: bool = False):
        self.checkpoint = checkpoint
        unsupported = sorted({s.op for s in program.steps} - set(SUPPORTED_OPS))
        if unsupported:
            raise CodegenError(f"no C code generation for op(s) {', '.join(unsupported)}")
        if program.loss not in ("cross_entropy", "mse"):
            raise CodegenError(f"unsupported loss {program.loss!r}")
        self.model = model
        self.p = program
        self.plan = plan
        self.ep = eval_program
        self.ids = IdentTable()
        self.params = {p.name: p for p in model.parameters()}
        self._planes: dict[str, np.ndarray] = {}  # initial_plane, packed once per entry
        self.mode = getattr(program.scale_mode, "value", str(program.scale_mode))
        self.eval_layout = plan_eval(eval_program, program, plan)
        self.logits = logits_buffer(program)
        self.eval_logits = logits_buffer(eval_program)
        lab = program.buffers["labels"]
        self.label_ctype = CTYPE[lab.dtype]
        self.label_size = _size(lab.shape[1:]) if program.loss == "mse" else 1
        self.input_size = _size(program.input_shape)
        self.output_size = _size(program.buffers[self.logits].shape[1:])
        self.classes = program.buffers[self.logits].shape[1] if program.loss == "cross_entropy" else None

    # -- names ------------------------------------------------------------------------------------
    def bufmacro(self, name: str) -> str:
        return f"TT_BUF_{self.ids[name]}"

    def evalmacro(self, name: str) -> str:
        return f"TT_EBUF_{self.ids[name]}"

    def frozen(self, name: str) -> str:
        return f"tt_frozen_{self.ids[name]}"

    def init_array(self, name: str) -> str:
        return f"tt_init_{self.ids[name]}"

    def site(self, pname: str) -> int:
        return 4 * self.p.param_order.index(pname)

    def train_ptr(self, name: str) -> str:
        b = self.p.buffers[name]
        if b.memory.value == "flash":
            return self.frozen(name)
        return self.bufmacro(name)

    def pscale(self, name: str) -> str:
        return f"tt_pscale.{self.ids[name]}"

    def train_scale(self, name: str) -> str:
        b = self.p.buffers[name]
        if b.kind.value == "parameter":
            return self.pscale(name)
        return f"sc->{self.ids[name]}"

    def eval_ptr(self, name: str) -> str:
        if self.eval_layout.mode == "training":
            return self.train_ptr(name)
        b = self.ep.buffers[name]
        if b.kind.value == "parameter":
            if name not in self.p.buffers:
                raise CodegenError(f"evaluation reads parameter {name} that the training program lacks")
            return self.train_ptr(name)
        return self.evalmacro(name)

    def eval_scale(self, name: str) -> str:
        b = self.ep.buffers[name]
        if b.kind.value == "parameter":
            return self.pscale(name)
        return f"sc->{self.ids[name]}"

    # -- parameter table ------------------------------------------------------------------------
    def param_entries(self) -> list[ParamEntry]:
        out = []
        for pname in self.p.param_order:
            b = self.p.buffers.get(pname)
            if b is None:
                continue
            role = ROLE_TRAINED if b.memory.value == "sram" else ROLE_FROZEN
            out.append(ParamEntry(len(out), pname, b.dtype, tuple(b.shape), role, pname))
            mom = self.p.buffers.get(f"{pname}.momentum")
            if mom is not None:
                out.append(ParamEntry(len(out), mom.name, mom.dtype, tuple(mom.shape), ROLE_MOMENTUM, pname))
            rexp = self.p.buffers.get(f"{pname}.row_exp")
            if rexp is not None:
                out.append(ParamEntry(len(out), rexp.name, rexp.dtype, tuple(rexp.shape), ROLE_ROW_EXP, pname))
            plane = self.p.buffers.get(f"{pname}.remainder")
            if plane is not None:
                out.append(ParamEntry(len(out), plane.name, plane.dtype, tuple(plane.shape), ROLE_FEEDBACK, pname))
        return out

    def initial_plane(self, e) -> np.ndarray:
        """The packed error-feedback plane the program starts from (the model's remainders; zeros
        when it has none yet)."""
        from ..compile.executor import pack_remainder

        if e.name in self._planes:
            return self._planes[e.name]
        plane = pack_remainder(self.params[e.param], self.p.optim.feedback_bits)
        if plane.shape != tuple(e.shape):
            raise CodegenError(f"{e.name}: a plane of {plane.size} bytes, the program holds {e.count}")
        self._planes[e.name] = plane
        return plane

    def plane_init(self, e) -> bool:
        return e.role == ROLE_FEEDBACK and bool(np.any(self.initial_plane(e)))

    def rom_initialised(self, e) -> bool:
        """Whether ``tt_init`` copies entry ``e`` into the arena from an initial array in flash:
        trained parameters, and momentum, arena row exponents and feedback planes that are not all
        zero (the arena starts zeroed)."""
        return (e.role == ROLE_TRAINED or (e.role == ROLE_MOMENTUM and self.momentum_init(e))
                or (e.role == ROLE_ROW_EXP and self.in_arena(e.name)) or self.plane_init(e))

    def initial_row_exp(self, e) -> np.ndarray:
        """The row exponents the program starts from (int8, one per output row)."""
        e_val = getattr(self.params[e.param], "row_exp", None)
        if e_val is None or tuple(np.shape(e_val)) != tuple(e.shape):
            raise CodegenError(f"{e.name}: the model's row exponents do not match the program's {list(e.shape)}")
        return np.asarray(e_val, dtype=np.int8)

    def in_arena(self, name: str) -> bool:
        return self.p.buffers[name].memory.value == "sram"

    def initial_value(self, pname: str):
        """(mantissas, scale) the program starts from (frozen int16 weights as their int8 view)."""
        p = self.params[pname]
        b = self.p.buffers[pname]
        value = p.value
        if b.memory.value == "flash" and b.dtype == "int8" and value.m.dtype != np.int8:
            value = p.forward_view(self.p.scale_mode)
        m = np.asarray(value.m)
        if tuple(m.shape) != tuple(b.shape):
            raise CodegenError(f"parameter {pname} has shape {m.shape}, the program {b.shape}")
        dt = np.dtype(b.dtype)
        if m.size:
            lo, hi = int(m.min()), int(m.max())
            # int8 / int16 mantissas are symmetric: -2**(bits-1) lies outside the runtime's domain
            limit = np.iinfo(dt).max
            if lo < -limit or hi > limit:
                raise CodegenError(f"parameter {pname} holds mantissas in [{lo}, {hi}]; {b.dtype} parameters "
                                   f"must lie in [-{limit}, {limit}]")
        return m.astype(dt), value.scale

    # -- files ------------------------------------------------------------------------------------
    def render(self) -> ModelSources:
        entries = self.param_entries()
        files = {"tt_model.h": self.render_header(entries), "tt_model_params.c": self.render_params(entries),
                 "tt_model.c": self.render_model(entries)}
        return ModelSources(files, tuple(entries), self.plan.arena_bytes, self.eval_layout, self.label_ctype,
                            self.label_size, self.input_size, self.output_size, self.classes)

    def render_header(self, entries) -> str:
        p = self.p
        lines = [
            "/* tt_model.h - integer training of `%s` on the device (generated by tintin; do not edit).\n"
            " *\n"
            " *   tt_init(seed);                          once: parameters into SRAM, rounding stream\n"
            " *   tt_train_step(x, y);                    one training step on a batch\n"
            " *   tt_predict(x, &cls);                    class of one sample (batch 1)\n"
            " *   tt_param_get(i, &info);                 the parameters for export\n"
            " *\n"
            " * Every function returns TT_OK or a tt_status_t error; no allocation, no floating point.\n"
            " */" % p.model_name,
            "#ifndef TT_MODEL_H",
            "#define TT_MODEL_H",
            "",
            '#include "tt_runtime.h"',
            *(['#include "tt_checkpoint.h"'] if self.checkpoint else []),
            "",
            "#ifdef __cplusplus",
            'extern "C" {',
            "#endif",
            "",
            f'#define TT_MODEL_NAME "{p.model_name}"',
            f'#define TT_MODEL_UPDATE "{p.update}"',
            f"#define TT_BATCH_SIZE {p.batch_size}u            /* samples per training step */",
            f"#define TT_INPUT_SIZE {self.input_size}u            /* int8 inputs per sample */",
            f"#define TT_INPUT_EXPONENT ({int(p.input_exponent)}) /* input scale 2**TT_INPUT_EXPONENT */",
            f"#define TT_OUTPUT_SIZE {self.output_size}u           /* int8 outputs (logits) per sample */",
            f"#define TT_LABEL_SIZE {self.label_size}u            /* labels (or int8 targets) per sample */",
        ]
        if self.classes is not None:
            lines.append(f"#define TT_NUM_CLASSES {self.classes}u")
        lines += [
            f"#define TT_ARENA_BYTES {self.plan.arena_bytes}u      /* the planned arena (all training tensors) */",
            f"#define TT_EVAL_ARENA_BYTES {self.eval_layout.bytes if self.eval_layout.mode == 'separate' else 0}u"
            "  /* extra scratch of tt_predict (0: it uses tt_arena) */",
            f"#define TT_PARAM_COUNT {len(entries)}u           /* entries of the parameter table */",
            f"#define TT_LOSS_CROSS_ENTROPY {1 if p.loss == 'cross_entropy' else 0}",
            "",
            f"typedef {self.label_ctype} tt_label_t; /* class index (cross-entropy) or int8 target (MSE) */",
            "",
            "/* dtype of a table entry */",
            "#define TT_DTYPE_S8 1u",
            "#define TT_DTYPE_S16 2u",
            "#define TT_DTYPE_S32 3u",
            "#define TT_DTYPE_S64 4u",
            "#define TT_DTYPE_U8 5u  /* raw bytes (an error-feedback plane) */",
            "/* role of a table entry */",
            "#define TT_ROLE_FROZEN 0u   /* constant in flash */",
            "#define TT_ROLE_TRAINED 1u  /* in tt_arena, changed by tt_train_step */",
            "#define TT_ROLE_MOMENTUM 2u /* optimiser state of the parameter before it */",
            "#define TT_ROLE_ROW_EXP 3u  /* int8 per-row exponents of the weight before it: real value of",
            "                             * row r = mantissa * scale * 2**-row_exp[r] (scale NULL) */",
            "#define TT_ROLE_FEEDBACK 4u /* the packed error-feedback plane of the weight before it",
            "                             * (TT_DTYPE_U8, L-bit two's-complement fields, docs/c-runtime.md) */",
            "",
            "typedef struct {",
            "    const char *name;        /* e.g. \"fc1.weight\" */",
            "    uint8_t dtype;           /* TT_DTYPE_*: element type of data */",
            "    uint8_t role;            /* TT_ROLE_* */",
            "    size_t count;            /* elements */",
            "    const void *data;        /* row-major mantissas */",
            "    const tt_scale_t *scale; /* real value = mantissa * scale (NULL: momentum, row exponents) */",
            "} tt_param_info_t;",
            "",
            "/* The arena: every training tensor at its planned offset. */",
            "extern uint8_t tt_arena[TT_ARENA_BYTES];",
            "",
            "/* Copy the initial parameters into SRAM, zero the momentum, start the rounding stream at",
            " * (seed, step 0) and epoch 0. Call before anything else; calling again restarts training. */",
            "void tt_init(uint32_t seed);",
            "/* Learning-rate (or NITI mu) schedule: the settings of `epoch`. */",
            "void tt_set_epoch(uint32_t epoch);",
            "/* Resume the rounding stream at a given training step. */",
            "void tt_set_stream(uint32_t seed, uint32_t step);",
            "/* Where tt_train_step reads its batch: filling these and passing them saves the copy. */",
            "int8_t *tt_input_buffer(void);",
            "tt_label_t *tt_label_buffer(void);",
            "/* One training step on TT_BATCH_SIZE samples x (TT_BATCH_SIZE * TT_INPUT_SIZE int8 in [-127, 127],",
            " * scale 2**TT_INPUT_EXPONENT) and labels y (TT_BATCH_SIZE * TT_LABEL_SIZE). TT_ERR_ARG, and no",
            " * step, when an input is -128 (outside the symmetric domain) or a label is out of range.",
            " * TT_ERR_OVERFLOW: a value saturated (documented in docs/c-runtime.md); the step was still",
            " * completed. */",
            "tt_status_t tt_train_step(const int8_t *x, const tt_label_t *y);",
            "/* Loss of the last training step, summed over the batch: total * scale (nats for",
            " * cross-entropy). Read it before tt_forward / tt_predict, which may reuse its bytes. */",
            "void tt_last_loss(int64_t *total, tt_scale_t *scale);",
        ]
        if self.classes is not None:
            lines += ["/* Predicted classes of the last training step's batch (before its update). */",
                      "const uint16_t *tt_last_predictions(void);"]
        lines += [
            "/* The network output of one sample (batch 1, as evaluation on a device): TT_OUTPUT_SIZE",
            " * int8 mantissas into out (may be NULL) and their scale. Inputs in [-127, 127]: TT_ERR_ARG",
            " * for -128. */",
            "tt_status_t tt_forward(const int8_t *x, int8_t *out, tt_scale_t *out_scale);",
        ]
        if self.classes is not None:
            lines += ["/* The predicted class of one sample (batch 1): the first maximum of its logits. */",
                      "tt_status_t tt_predict(const int8_t *x, uint16_t *cls);"]
        lines += [
            "/* Parameter table for export: index in [0, TT_PARAM_COUNT). */",
            "tt_status_t tt_param_get(size_t index, tt_param_info_t *info);",
            "/* FNV-1a over every table entry's bytes (little-endian elements) and scale exponents. */",
            "uint32_t tt_params_checksum(void);",
            "/* Training steps done since tt_init (or the step given to tt_set_stream). */",
            "uint32_t tt_step_count(void);",
            *(self.checkpoint_api() if self.checkpoint else []),
            "",
            "#ifdef __cplusplus",
            "}",
            "#endif",
            "",
            "#endif /* TT_MODEL_H */",
            "",
        ]
        return "\n".join(lines)

    def render_params(self, entries) -> str:
        out = ["/* tt_model_params.c - initial parameters of `%s` (generated by tintin; do not edit).\n"
               " * Trained parameters: initial values in flash (TT_ROM: program memory on AVR), copied into\n"
               " * tt_arena by tt_init. Frozen parameters: read in place (on AVR, const data sits in RAM). */"
               % self.p.model_name,
               '#include "tt_model.h"', '#include "tt_model_internal.h"', '#include "tt_rom.h"', ""]
        for e in entries:
            if e.role == ROLE_MOMENTUM:
                p = self.params[e.param]
                if p.momentum is None or not np.any(p.momentum):
                    continue
                vals = np.asarray(p.momentum, dtype=np.int64)
                if vals.shape != e.shape:
                    raise CodegenError(f"{e.name}: momentum of shape {vals.shape}, the program {e.shape}")
                out.append(comment(f"{e.name}: initial momentum, int64 {list(e.shape)}"))
                out.append(c_array("int64_t", self.init_array(e.name), vals, static=False, rom=True, per_line=8))
                continue
            if e.role == ROLE_FEEDBACK:
                if self.plane_init(e):
                    out.append(comment(f"{e.name}: initial error-feedback plane, "
                                       f"{self.p.optim.feedback_bits} bits per weight, {e.count} bytes"))
                    out.append(c_array("uint8_t", self.init_array(e.name), self.initial_plane(e), static=False,
                                       rom=True, per_line=24))
                continue
            if e.role == ROLE_ROW_EXP:
                vals = self.initial_row_exp(e)
                if self.in_arena(e.name):
                    out.append(comment(f"{e.name}: initial row exponents, int8 {list(e.shape)}"))
                    out.append(c_array("int8_t", self.init_array(e.name), vals, static=False, rom=True, per_line=24))
                else:
                    out.append(comment(f"{e.name}: frozen row exponents, int8 {list(e.shape)}"))
                    out.append(c_array("int8_t", self.frozen(e.name), vals, static=False, per_line=24))
                continue
            m, scale = self.initial_value(e.name)
            ctype = CTYPE[e.dtype]
            per = 24 if e.dtype in ("int8", "int16") else 10
            if e.role == ROLE_TRAINED:
                out.append(comment(f"{e.name}: initial value, {e.dtype} {list(e.shape)}, scale {scale}"))
                out.append(c_array(ctype, self.init_array(e.name), m, static=False, rom=True, per_line=per))
            else:
                out.append(comment(f"{e.name}: frozen, {e.dtype} {list(e.shape)}, scale {scale}"))
                out.append(c_array(ctype, self.frozen(e.name), m, static=False, per_line=per))
        return "\n".join(out) + "\n"

    def momentum_init(self, e) -> bool:
        p = self.params[e.param]
        return p.momentum is not None and bool(np.any(p.momentum))

    # -- tt_model.c -------------------------------------------------------------------------------
    def render_model(self, entries) -> str:
        p, plan = self.p, self.plan
        train_ctx = EmitContext(program=p, ptr=self.train_ptr, scale=self.train_scale, mode=self.mode,
                                site=self.site, scales_type="tt_train_scales_t", prefix="train")
        em = StepEmitter(train_ctx)
        train_body = []
        for s in p.steps:
            train_body += em.emit(s)
        eval_ctx = EmitContext(program=self.ep, ptr=self.eval_ptr, scale=self.eval_scale, mode=self.mode,
                               site=self.site, scales_type="tt_eval_scales_t", prefix="eval")
        eem = StepEmitter(eval_ctx)
        esteps = eval_steps(self.ep)
        eval_body = []
        for s in esteps:
            if s.op == "maxpool_forward_s8" and len(s.outputs) > 1 and self.eval_layout.mode != "training":
                s = _without_argmax(s)
            eval_body += eem.emit(s)

        # internal header: buffer macros and the frozen / initial arrays
        internal = self.render_internal(entries)

        train_names = [n for n, b in p.buffers.items() if b.kind.value not in ("parameter", "optimizer_state")]
        eval_names = sorted({n for s in esteps for n in (*s.inputs, *s.outputs, *s.workspace)
                             if self.ep.buffers[n].kind.value != "parameter"} | {"input", self.eval_logits},
                            key=list(self.ep.buffers).index)
        trained = [e for e in entries if e.role in (ROLE_TRAINED, ROLE_FROZEN)]
        lines = [
            "/* tt_model.c - the training program of `%s` (generated by tintin; do not edit).\n"
            " * update %s, batch %d, %d steps, arena %d bytes (planner %s). */"
            % (p.model_name, p.update, p.batch_size, len(p.steps), plan.arena_bytes, plan.planner),
            '#include "tt_model.h"',
            '#include "tt_rom.h"',
            '#include "tt_model_internal.h"',
            "",
            "#if defined(__GNUC__)",
            "#define TT_ALIGN8 __attribute__((aligned(8)))",
            "#else",
            "#define TT_ALIGN8",
            "#endif",
            "",
            "/* Profiling hook: build with -DTT_STEP_HOOK=fn to call fn() after every program step. */",
            "#ifdef TT_STEP_HOOK",
            "void TT_STEP_HOOK(void);",
            "#define TT_AFTER_STEP() TT_STEP_HOOK()",
            "#else",
            "#define TT_AFTER_STEP() ((void)0)",
            "#endif",
            "",
            "/* A kernel status: errors end the step, TT_ERR_OVERFLOW (a saturated value) is reported at the end. */",
            "#define TT_CALL(expr)                      \\",
            "    do {                                   \\",
            "        tt_status_t st_ = (expr);          \\",
            "        if (st_ != TT_OK) {                \\",
            "            if (st_ != TT_ERR_OVERFLOW) {  \\",
            "                return st_;                \\",
            "            }                              \\",
            "            status = st_;                  \\",
            "        }                                  \\",
            "    } while (0)",
            "",
            "uint8_t tt_arena[TT_ARENA_BYTES] TT_ALIGN8;",
        ]
        if self.eval_layout.mode == "separate":
            lines.append("static uint8_t tt_eval_arena[TT_EVAL_ARENA_BYTES] TT_ALIGN8;")
        lines += ["", "/* scales of the parameters (persistent; a weight rescale changes them) */",
                  "static struct {"]
        lines += [f"    tt_scale_t {self.ids[e.name]};" for e in trained]
        lines += ["} tt_pscale;", "",
                  "/* scales of the step tensors (on the stack during a step) */", "typedef struct {"]
        lines += [f"    tt_scale_t {self.ids[n]};" for n in train_names]
        lines += ["} tt_train_scales_t;", "", "typedef struct {"]
        lines += [f"    tt_scale_t {self.ids[n]};" for n in eval_names]
        lines += ["} tt_eval_scales_t;", ""]
        # optimiser settings and schedule
        opt = p.optim
        from ..numerics import Scale, ScaleMode

        starts = sorted({0} | {int(e) for e, _ in opt.lr_schedule} | {int(e) for e, _ in opt.mu_schedule})
        sched = [(e, Scale.nearest(opt.lr_at(e), ScaleMode.COMPOUND), int(opt.mu_at(e))) for e in starts]
        lines += [
            "static tt_sgd_config_t tt_cfg;",
            "static tt_stream_t tt_stream;",
            "static uint32_t tt_steps_done;",
            *(["static uint32_t tt_epoch; /* the schedule position (tt_set_epoch), part of the saved state */"]
              if self.checkpoint else []),
            "static tt_scale_t tt_loss_scale;",
            "",
            comment("learning rate (as a scale) and NITI mu from each epoch on: "
                    + ", ".join(f"epoch {e}: lr {lr} mu {mu}" for e, lr, mu in sched)),
            "static void tt_schedule_at(uint32_t epoch)",
            "{",
            "    (void)epoch;",
        ]
        for e, lr, mu in sched:
            cond = "1" if e == 0 else f"epoch >= {e}UL"
            lines += [f"    if ({cond}) {{",
                      f"        tt_cfg.lr.S = {lr.S}; tt_cfg.lr.U = {lr.U}; tt_cfg.lr.D = {lr.D}; tt_cfg.mu = {mu};",
                      "    }"]
        lines += ["}", ""]
        # helpers (grad callbacks) and constants come after the struct types
        body_lines = []
        body_lines += train_ctx.constants + eval_ctx.constants
        body_lines += [""] + train_ctx.helpers + eval_ctx.helpers
        lines += body_lines
        rounding = _ROUNDING[getattr(opt.rounding, "value", str(opt.rounding))]
        lines += [
            "void tt_set_epoch(uint32_t epoch)",
            "{",
            "    tt_schedule_at(epoch);",
            *(["    tt_epoch = epoch;"] if self.checkpoint else []),
            "}",
            "",
            "void tt_set_stream(uint32_t seed, uint32_t step)",
            "{",
            "    tt_stream_init(&tt_stream, seed, step);",
            "    tt_steps_done = step;",
            "}",
            "",
        ]
        if any(self.rom_initialised(e) for e in entries):
            lines += [
                "static void tt_copy_rom(uint8_t *dst, const uint8_t *rom, size_t count)",
                "{",
                "    size_t i;",
                "    for (i = 0; i < count; ++i) {",
                "        dst[i] = tt_rom_u8(rom + i);",
                "    }",
                "}",
                "",
            ]
        lines += [
            "void tt_init(uint32_t seed)",
            "{",
            "    size_t i;",
            "    for (i = 0; i < TT_ARENA_BYTES; ++i) {",
            "        tt_arena[i] = 0;",
            "    }",
        ]
        for e in entries:
            if self.rom_initialised(e):
                nbytes = e.count * np.dtype(e.dtype).itemsize
                lines.append(f"    tt_copy_rom((uint8_t *)(void *){self.bufmacro(e.name)}, "
                             f"(const uint8_t *)(const void *){self.init_array(e.name)}, {c_size(nbytes)});")
            if e.role in (ROLE_TRAINED, ROLE_FROZEN):
                _, scale = self.initial_value(e.name)
                ident = self.ids[e.name]
                lines.append(f"    tt_pscale.{ident}.S = {scale.S}; tt_pscale.{ident}.U = {scale.U}; "
                             f"tt_pscale.{ident}.D = {scale.D};")
        lines += [
            f"    tt_cfg.batch_size = {p.batch_size}UL;",
            f"    tt_cfg.rule = {1 if opt.rule == 'niti' else 0};",
            f"    tt_cfg.rounding = {rounding};",
            f"    tt_cfg.mode = {1 if self.mode == 'compound' else 0};",
            f"    tt_cfg.momentum_shift = {int(opt.momentum_shift)};",
            f"    tt_cfg.weight_rescale = {1 if opt.weight_rescale else 0};",
            "    tt_schedule_at(0);",
            "    tt_loss_scale.S = 0; tt_loss_scale.U = 0; tt_loss_scale.D = 0;",
            "    tt_set_stream(seed, 0);",
            *(["    tt_epoch = 0;"] if self.checkpoint else []),
            "}",
            "",
            "uint32_t tt_step_count(void)",
            "{",
            "    return tt_steps_done;",
            "}",
            "",
            "int8_t *tt_input_buffer(void)",
            "{",
            f"    return {self.bufmacro('input')};",
            "}",
            "",
            "tt_label_t *tt_label_buffer(void)",
            "{",
            f"    return {self.bufmacro('labels')};",
            "}",
            "",
            "tt_status_t tt_train_step(const int8_t *x, const tt_label_t *y)",
            "{",
            "    tt_train_scales_t scales;",
            "    tt_train_scales_t *sc = &scales;",
            "    tt_status_t status = TT_OK;",
            "    size_t i;",
            "    if (x == NULL || y == NULL) {",
            "        return TT_ERR_ARG;",
            "    }",
            "    if (tt_check_domain_s8(x, TT_BATCH_SIZE * TT_INPUT_SIZE) != TT_OK) {",
            "        return TT_ERR_ARG; /* an input of -128: outside [-127, 127] */",
            "    }",
            f"    if (x != {self.bufmacro('input')}) {{",
            "        for (i = 0; i < TT_BATCH_SIZE * TT_INPUT_SIZE; ++i) {",
            f"            {self.bufmacro('input')}[i] = x[i];",
            "        }",
            "    }",
            f"    if (y != {self.bufmacro('labels')}) {{",
            "        for (i = 0; i < TT_BATCH_SIZE * TT_LABEL_SIZE; ++i) {",
            f"            {self.bufmacro('labels')}[i] = y[i];",
            "        }",
            "    }",
        ]
        if p.loss == "cross_entropy":
            lines += ["    for (i = 0; i < TT_BATCH_SIZE; ++i) {",
                      f"        if ((uint32_t){self.bufmacro('labels')}[i] >= TT_NUM_CLASSES) {{",
                      "            return TT_ERR_ARG;",
                      "        }",
                      "    }"]
        lines += ["    sc->input.S = TT_INPUT_EXPONENT; sc->input.U = 0; sc->input.D = 0;",
                  f"    sc->labels.S = {int(p.target_exponent) if p.loss == 'mse' else 0}; "
                  "sc->labels.U = 0; sc->labels.D = 0;"]
        for ln in train_body:
            lines.append("    " + ln)
            if ln.startswith("/* step"):
                pass
        lines = _insert_step_hooks(lines)
        lines += [
            f"    tt_loss_scale = {self.train_scale('loss.total')};",
            "    tt_stream_advance(&tt_stream);",
            "    ++tt_steps_done;",
            "    return status;",
            "}",
            "",
            "void tt_last_loss(int64_t *total, tt_scale_t *scale)",
            "{",
            "    if (total != NULL) {",
            f"        *total = {self.bufmacro('loss.total')}[0];",
            "    }",
            "    if (scale != NULL) {",
            "        *scale = tt_loss_scale;",
            "    }",
            "}",
            "",
        ]
        if self.classes is not None:
            lines += ["const uint16_t *tt_last_predictions(void)", "{",
                      f"    return (const uint16_t *)(const void *){self.bufmacro('predictions')};", "}", ""]
        # evaluation
        eval_in = self.eval_ptr("input")
        eval_out = self.eval_ptr(self.eval_logits)
        lines += [
            "/* forward steps of the batch-1 program; the logits stay in place */",
            "static tt_status_t tt_forward_core(const int8_t *x, tt_eval_scales_t *sc)",
            "{",
            "    tt_status_t status = TT_OK;",
            "    size_t i;",
            "    if (tt_check_domain_s8(x, TT_INPUT_SIZE) != TT_OK) {",
            "        return TT_ERR_ARG; /* an input of -128: outside [-127, 127] */",
            "    }",
            f"    if (x != {eval_in}) {{",
            "        for (i = 0; i < TT_INPUT_SIZE; ++i) {",
            f"            {eval_in}[i] = x[i];",
            "        }",
            "    }",
            "    sc->input.S = TT_INPUT_EXPONENT; sc->input.U = 0; sc->input.D = 0;",
        ]
        lines += ["    " + ln for ln in eval_body]
        lines += [
            "    return status;",
            "}",
            "",
            "tt_status_t tt_forward(const int8_t *x, int8_t *out, tt_scale_t *out_scale)",
            "{",
            "    tt_eval_scales_t scales;",
            "    tt_status_t status;",
            "    size_t i;",
            "    if (x == NULL) {",
            "        return TT_ERR_ARG;",
            "    }",
            "    status = tt_forward_core(x, &scales);",
            "    if (status != TT_OK && status != TT_ERR_OVERFLOW) {",
            "        return status;",
            "    }",
            "    if (out != NULL) {",
            "        for (i = 0; i < TT_OUTPUT_SIZE; ++i) {",
            f"            out[i] = {eval_out}[i];",
            "        }",
            "    }",
            "    if (out_scale != NULL) {",
            f"        *out_scale = scales.{self.ids[self.eval_logits]};",
            "    }",
            "    return status;",
            "}",
            "",
        ]
        if self.classes is not None:
            lines += [
                "tt_status_t tt_predict(const int8_t *x, uint16_t *cls)",
                "{",
                "    tt_eval_scales_t scales;",
                "    tt_status_t status;",
                "    if (x == NULL || cls == NULL) {",
                "        return TT_ERR_ARG;",
                "    }",
                "    status = tt_forward_core(x, &scales);",
                "    if (status != TT_OK && status != TT_ERR_OVERFLOW) {",
                "        return status;",
                "    }",
                f"    *cls = (uint16_t)tt_argmax_s8({eval_out}, TT_OUTPUT_SIZE);",
                "    return status;",
                "}",
                "",
            ]
        # parameter table
        lines += ["tt_status_t tt_param_get(size_t index, tt_param_info_t *info)", "{",
                  "    if (info == NULL) {", "        return TT_ERR_ARG;", "    }", "    switch (index) {"]
        for e in entries:
            data = self.train_ptr(e.name)
            scale = "NULL" if e.role in (ROLE_MOMENTUM, ROLE_ROW_EXP, ROLE_FEEDBACK) else f"&{self.pscale(e.name)}"
            lines += [f"    case {e.index}u:",
                      f'        info->name = "{e.name}";',
                      f"        info->dtype = {DTYPE_CODE[e.dtype]}u;",
                      f"        info->role = {e.role}u;",
                      f"        info->count = {c_size(e.count)};",
                      f"        info->data = (const void *){data};",
                      f"        info->scale = {scale};",
                      "        return TT_OK;"]
        lines += ["    default:", "        return TT_ERR_ARG;", "    }", "}", "",
                  "uint32_t tt_params_checksum(void)", "{", "    uint32_t h = 0x811C9DC5UL;", "    size_t i;",
                  "    tt_param_info_t info;",
                  "    static const uint8_t dtype_bytes[6] = {0, 1, 2, 4, 8, 1};",
                  "    for (i = 0; i < TT_PARAM_COUNT; ++i) {",
                  "        (void)tt_param_get(i, &info);",
                  "        h = tt_fnv1a_u32(h, (const uint8_t *)info.data, info.count * dtype_bytes[info.dtype]);",
                  "        if (info.scale != NULL) {",
                  "            uint8_t s[6];",
                  "            s[0] = (uint8_t)((uint16_t)info.scale->S & 0xFFu); s[1] = (uint8_t)((uint16_t)info.scale->S >> 8);",
                  "            s[2] = (uint8_t)((uint16_t)info.scale->U & 0xFFu); s[3] = (uint8_t)((uint16_t)info.scale->U >> 8);",
                  "            s[4] = (uint8_t)((uint16_t)info.scale->D & 0xFFu); s[5] = (uint8_t)((uint16_t)info.scale->D >> 8);",
                  "            h = tt_fnv1a_u32(h, s, 6u);",
                  "        }",
                  "    }",
                  "    return h;",
                  "}", ""]
        if self.checkpoint:
            lines += self.checkpoint_functions()
        text = "\n".join(lines)
        self._internal = internal
        return text

    # -- power-loss-safe checkpoints ---------------------------------------------------------------
    def checkpoint_regions(self) -> list:
        """The training state as the checkpoint saves it (:func:`tintin.codegen.checkpoint.state_regions`)."""
        from .checkpoint import state_regions

        return state_regions(self.param_entries(), lambda name: f"(void *){self.bufmacro(name)}")

    def checkpoint_hash(self) -> int:
        from .checkpoint import model_hash

        return model_hash(self.p, self.plan, self.checkpoint_regions())

    def checkpoint_api(self) -> list[str]:
        regions = self.checkpoint_regions()
        return [
            "",
            "/* Power-loss-safe training state in flash (tt_checkpoint.h, docs/field.md). The state: trained",
            " * parameters, momentum, parameter scales, rounding stream, step count and epoch. */",
            f"#define TT_MODEL_HASH 0x{self.checkpoint_hash():08X}UL /* architecture, plan and settings */",
            f"#define TT_CHECKPOINT_PAYLOAD_BYTES {sum(r.nbytes for r in regions)}UL",
            "/* Save the state into the newest slot of the region (copy-on-write: the previous state stays",
            " * valid until the commit record is written). TT_ERR_IO: a flash call failed. */",
            "tt_status_t tt_checkpoint_save(const tt_flash_ops_t *flash);",
            "/* Load the newest valid state of this model. TT_ERR_NO_STATE: none (nothing changed);",
            " * TT_ERR_IO: a read failed, the state may be partly loaded: call tt_init. */",
            "tt_status_t tt_checkpoint_restore(const tt_flash_ops_t *flash);",
            "/* The state's TT_CHECKPOINT_PAYLOAD_BYTES bytes, as a save writes them. */",
            "void tt_checkpoint_state(uint8_t *dst);",
            "/* The epoch last given to tt_set_epoch (0 after tt_init). */",
            "uint32_t tt_current_epoch(void);",
        ]

    def checkpoint_functions(self) -> list[str]:
        regions = self.checkpoint_regions()
        scales = next(r for r in regions if r.name == "scales")
        lines = ["/* the training state, in the order a checkpoint stores it */",
                 f"static const tt_ckpt_region_t tt_ckpt_regions[{len(regions)}] = {{"]
        lines += [f"    {{{r.c_expr}, {r.nbytes}UL}}, /* {r.name} */" for r in regions]
        lines += ["};", "/* the scales are packed int16 triples on every target */",
                  f"typedef char tt_ckpt_scales_packed[(sizeof(tt_pscale) == {scales.nbytes}u) ? 1 : -1];", "",
                  "tt_status_t tt_checkpoint_save(const tt_flash_ops_t *flash)", "{",
                  f"    return tt_ckpt_save(flash, TT_MODEL_HASH, tt_ckpt_regions, {len(regions)}u);", "}", "",
                  "tt_status_t tt_checkpoint_restore(const tt_flash_ops_t *flash)", "{",
                  f"    tt_status_t st = tt_ckpt_restore(flash, TT_MODEL_HASH, tt_ckpt_regions, {len(regions)}u);",
                  "    if (st == TT_OK) {", "        tt_schedule_at(tt_epoch);", "    }", "    return st;", "}", "",
                  "void tt_checkpoint_state(uint8_t *dst)", "{", "    uint32_t r, k;",
                  f"    for (r = 0; r < {len(regions)}u; ++r) {{",
                  "        const uint8_t *src = (const uint8_t *)tt_ckpt_regions[r].data;",
                  "        for (k = 0; k < tt_ckpt_regions[r].bytes; ++k) {", "            *dst++ = src[k];",
                  "        }", "    }", "}", "",
                  "uint32_t tt_current_epoch(void)", "{", "    return tt_epoch;", "}", ""]
        return lines

    def render_internal(self, entries) -> str:
        p, plan = self.p, self.plan
        lines = ["/* tt_model_internal.h - buffer placement of `%s` (generated by tintin; not API). */"
                 % p.model_name,
                 "#ifndef TT_MODEL_INTERNAL_H", "#define TT_MODEL_INTERNAL_H", "", '#include "tt_types.h"', "",
                 "extern uint8_t tt_arena[];", ""]
        lines.append("/* every SRAM buffer at its planned offset: kind, type[shape], bytes, steps alive */")
        for name, b in p.buffers.items():
            if b.memory.value != "sram":
                continue
            off = plan.offsets[name]
            first, last = p.lifetime(name)
            life = "always" if b.persistent else f"steps {first}-{last}"
            alias = f", shares {b.alias_of}" if b.alias_of else ""
            lines.append(f"#define {self.bufmacro(name)} (({CTYPE[b.dtype]} *)(void *)(tt_arena + {off}u)) "
                         + comment(f"{name}: {b.kind.value} {b.dtype}{list(b.shape)} {b.nbytes} B, {life}{alias}"))
        lay = self.eval_layout
        if lay.mode != "training":
            lines += ["", f"/* batch-1 evaluation tensors ({lay.mode}: {lay.bytes} bytes"
                          + (f" at arena offset {lay.base}" if lay.mode == 'gap' else " in tt_eval_arena") + ") */"]
            base = "tt_arena" if lay.mode == "gap" else "tt_eval_arena"
            for name, off in lay.offsets.items():
                b = self.ep.buffers[name]
                lines.append(f"#define {self.evalmacro(name)} (({CTYPE[b.dtype]} *)(void *)({base} + "
                             f"{lay.base + off if lay.mode == 'gap' else off}u)) " + comment(f"{name}: {b.dtype}{list(b.shape)}"))
        lines += ["", "/* constant parameter data (tt_model_params.c) */"]
        for e in entries:
            ctype = CTYPE[e.dtype]
            if self.rom_initialised(e):
                lines.append(f"extern const {ctype} {self.init_array(e.name)}[{max(e.count, 1)}];")
            elif e.role in (ROLE_FROZEN, ROLE_ROW_EXP):
                lines.append(f"extern const {ctype} {self.frozen(e.name)}[{max(e.count, 1)}];")
        lines += ["", "#endif /* TT_MODEL_INTERNAL_H */", ""]
        return "\n".join(lines)


def _without_argmax(step):
    from dataclasses import replace

    return replace(step, outputs=step.outputs[:1])


def _insert_step_hooks(lines: list[str]) -> list[str]:
    """Add ``TT_AFTER_STEP();`` before every step comment after the first one (and nothing else)."""
    out, seen = [], False
    for ln in lines:
        if ln.startswith("    /* step "):
            if seen:
                out.append("    TT_AFTER_STEP();")
            seen = True
        out.append(ln)
    if seen:
        out.append("    TT_AFTER_STEP();")
    return out


def render_model_sources(model, program, plan, eval_program=None, checkpoint: bool = False) -> ModelSources:
    """Render ``tt_model.h``, ``tt_model.c``, ``tt_model_params.c`` and ``tt_model_internal.h``.

    ``eval_program``: the batch-1 program whose forward steps ``tt_forward`` runs (default: the
    training program, which must then have batch size 1). ``checkpoint``: also emit
    ``tt_checkpoint_save`` / ``tt_checkpoint_restore`` (:mod:`tintin.codegen.checkpoint`)."""
    eval_program = eval_program if eval_program is not None else program
    if eval_program.batch_size != 1:
        raise CodegenError("the evaluation program must have batch size 1")
    r = _Renderer(model, program, plan, eval_program, checkpoint)
    src = r.render()
    files = dict(src.files)
    files["tt_model_internal.h"] = r._internal
    return ModelSources(files, src.params, src.arena_bytes, src.eval_layout, src.label_ctype, src.label_size,
                        src.input_size, src.output_size, src.classes)
