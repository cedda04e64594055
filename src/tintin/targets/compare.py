"""Compare what a device printed with the simulator, bit for bit.

:func:`parse_output` reads the records of the measurement driver (:mod:`tintin.codegen.driver`),
:func:`simulate` runs the same training steps and batch-1 evaluations on the simulator
(:class:`tintin.compile.ProgramExecutor`, bit-identical to :func:`tintin.train.train_step`), and
:func:`compare` lists every difference (empty: bit-exact).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from tintin.codegen import Project
from tintin.codegen.model_c import DTYPE_CODE, ROLE_FEEDBACK, ROLE_MOMENTUM, ROLE_ROW_EXP
from tintin.targets.errors import DeviceRunError

#: tt_param_info_t dtype code -> numpy dtype (every code the generated tables use)
_DTYPE_NP = {code: np.dtype(name) for name, code in DTYPE_CODE.items()}


# -- parsing ---------------------------------------------------------------------------------------

@dataclass
class DeviceOutput:
    steps: list = field(default_factory=list)  #: (status, loss, (S, U, D), predictions)
    evals: list = field(default_factory=list)  #: (status, class) or (status, (S, U, D), outputs)
    params: dict = field(default_factory=dict)  #: entry -> dict(role, dtype, count, scale, fnv)
    dumps: dict = field(default_factory=dict)  #: entry -> bytes
    checksum: int | None = None
    complete: bool = False


def _scale(text: str) -> tuple[int, int, int]:
    s, u, d = (int(v) for v in text.split(","))
    return s, u, d


def parse_output(text: str, classifier: bool) -> DeviceOutput:
    """Records of the driver's output (see :mod:`tintin.codegen.driver`); ``classifier``: the model
    is trained with cross-entropy (steps carry predictions, evaluations a class)."""
    out = DeviceOutput()
    hexparts: dict[int, list[str]] = {}
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        tag = f[0]
        try:
            if tag == "S":
                hi, lo = int(f[3], 16), int(f[4], 16)
                loss = (hi << 32) | lo
                if loss >= 1 << 63:
                    loss -= 1 << 64
                preds = [int(v) for v in f[6:]] if classifier else []
                out.steps.append((int(f[2]), loss, _scale(f[5]), preds))
            elif tag == "E" and len(f) >= 4:
                if classifier:
                    out.evals.append((int(f[2]), int(f[3])))
                else:
                    out.evals.append((int(f[2]), _scale(f[3]), [int(v) for v in f[4:]]))
            elif tag == "P":
                out.params[int(f[1])] = {"role": int(f[2]), "dtype": int(f[3]), "count": int(f[4]),
                                         "scale": _scale(f[5]), "fnv": int(f[6], 16)}
            elif tag == "H":
                hexparts.setdefault(int(f[1]), []).append(f[2] if len(f) > 2 else "")
            elif tag == "C":
                out.checksum = int(f[1], 16)
            elif tag == "END":
                out.complete = True
        except (IndexError, ValueError):
            raise DeviceRunError(f"malformed device output line: {line[:80]!r}") from None
    out.dumps = {k: bytes.fromhex("".join(v)) for k, v in hexparts.items()}
    return out


def fnv1a(data: bytes, h: int = 0x811C9DC5) -> int:
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


# -- the simulator side ------------------------------------------------------------------------------

@dataclass
class Reference:
    steps: list  #: (loss total, (S, U, D), predictions)
    evals: list  #: class, or ((S, U, D), outputs)
    entries: dict  #: table entry -> (scale or None, little-endian bytes)
    macs_per_step: int


def simulate(model, project: Project, *, x_samples, y_samples, order, steps: int, seed: int,
             epoch_starts: dict | None, eval_x) -> Reference:
    """The same run on the simulator: :class:`tintin.compile.ProgramExecutor` on a copy of the
    model, then ``model.forward`` at batch 1 for every evaluation sample."""
    from tintin.compile import ProgramExecutor
    from tintin.nn import Context
    from tintin.numerics import QTensor, RoundingStream, Scale

    program, plan = project.program, project.plan
    B = program.batch_size
    m = copy.deepcopy(model)
    ex = ProgramExecutor(program, plan, poison=False)
    ex.load(m)
    ctx = Context(mode=program.scale_mode, training=True, stream=RoundingStream(seed))
    epoch = 0
    starts = dict(epoch_starts or {})
    ref_steps = []
    x_samples = np.asarray(x_samples)
    y_samples = np.asarray(y_samples)
    for i in range(steps):
        epoch = starts.get(i, epoch)
        idx = np.asarray(order[i * B:(i + 1) * B], dtype=np.int64)
        res = ex.step(x_samples[idx], y_samples[idx], ctx, epoch=epoch)
        preds = [] if res.predictions is None else [int(v) for v in res.predictions]
        ref_steps.append((int(res.loss.total), res.loss.scale.as_tuple(), preds))
    ex.store(m)
    entries = reference_entries(ex, m, project)
    evals = []
    if eval_x is not None and len(eval_x):
        ctx_eval = Context(mode=program.scale_mode, training=False)
        for j in range(len(eval_x)):
            out = m.forward(QTensor(np.asarray(eval_x[j:j + 1], dtype=np.int8), Scale(m.input_exponent)), ctx_eval)
            if program.loss == "cross_entropy":
                evals.append(int(np.argmax(out.m[0])))
            else:
                evals.append((out.scale.as_tuple(), [int(v) for v in np.asarray(out.m).ravel()]))
    return Reference(ref_steps, evals, entries, program.macs)


def reference_entries(ex, m, project: Project) -> dict:
    """Every parameter-table entry of ``project`` as the simulator holds it after a run: ``{index:
    (scale or None, little-endian bytes)}`` (trained buffers from the executor ``ex``, frozen ones
    from the model ``m``)."""
    program = project.program
    entries = {}
    for e in project.model.params:
        if e.role == ROLE_MOMENTUM:
            arr = np.ascontiguousarray(ex.view(e.name)).astype(np.int64)
            entries[e.index] = (None, arr.astype("<i8").tobytes())
            continue
        if e.role == ROLE_FEEDBACK:  # the packed plane: bytes as they are
            entries[e.index] = (None, np.ascontiguousarray(ex.view(e.name), dtype=np.uint8).tobytes())
            continue
        b = program.buffers[e.name]
        if e.role == ROLE_ROW_EXP:
            arr = ex.view(e.name) if b.memory.value == "sram" else \
                {q.name: q for q in m.parameters()}[e.param].row_exp
            entries[e.index] = (None, np.ascontiguousarray(arr, dtype=np.int8).tobytes())
            continue
        if b.memory.value == "sram":
            arr = np.ascontiguousarray(ex.view(e.name))
            scale = ex.scales[e.name].as_tuple()
        else:
            p = {q.name: q for q in m.parameters()}[e.name]
            value = p.value
            if b.dtype == "int8" and value.m.dtype != np.int8:
                value = p.forward_view(program.scale_mode)
            arr, scale = np.ascontiguousarray(value.m), value.scale.as_tuple()
        entries[e.index] = (scale, arr.astype(np.dtype(b.dtype).newbyteorder("<")).tobytes())
    return entries


def compare(dev: DeviceOutput, ref: Reference, project: Project, *, steps: int, n_eval: int,
            classifier: bool, limit: int = 20) -> list[str]:
    """Every difference between the device output and the simulator (empty: bit-exact)."""
    bad: list[str] = []
    if not dev.complete:
        bad.append("device output ends before END (the run stopped early)")
    if len(dev.steps) != steps:
        bad.append(f"device reported {len(dev.steps)} training steps, expected {steps}")
    for i, (d, r) in enumerate(zip(dev.steps, ref.steps)):
        status, loss, scale, preds = d
        if status != 0:
            bad.append(f"step {i}: device status {status}")
        if loss != r[0] or scale != tuple(r[1]):
            bad.append(f"step {i}: loss {loss} at {scale} on the device, {r[0]} at {tuple(r[1])} in the simulator")
        if classifier and list(preds) != list(r[2]):
            bad.append(f"step {i}: predictions {preds} on the device, {r[2]} in the simulator")
    if len(dev.evals) != n_eval:
        bad.append(f"device evaluated {len(dev.evals)} samples, expected {n_eval}")
    for j, (d, r) in enumerate(zip(dev.evals, ref.evals)):
        if d[0] != 0:
            bad.append(f"evaluation {j}: device status {d[0]}")
        got = d[1] if classifier else (d[1], d[2])
        want = r if classifier else (tuple(r[0]), r[1])
        if got != want:
            bad.append(f"evaluation {j}: {got} on the device, {want} in the simulator")
    for e in project.model.params:
        rec = dev.params.get(e.index)
        scale, data = ref.entries[e.index]
        if rec is None:
            bad.append(f"{e.name}: missing from the device output")
            continue
        if scale is not None and rec["scale"] != tuple(scale):
            bad.append(f"{e.name}: scale {rec['scale']} on the device, {tuple(scale)} in the simulator")
        dump = dev.dumps.get(e.index)
        if dump is not None:
            if dump != data:
                a = np.frombuffer(dump, dtype=np.dtype(_DTYPE_NP[rec["dtype"]]).newbyteorder("<")) \
                    if len(dump) == len(data) else None
                b = np.frombuffer(data, dtype=np.dtype(_DTYPE_NP[rec["dtype"]]).newbyteorder("<"))
                if a is None:
                    bad.append(f"{e.name}: {len(dump)} bytes on the device, {len(data)} in the simulator")
                else:
                    diff = np.nonzero(a != b)[0]
                    bad.append(f"{e.name}: {diff.size} of {b.size} values differ (first at {int(diff[0])}: "
                               f"{int(a[diff[0]])} on the device, {int(b[diff[0]])} in the simulator)")
        elif rec["fnv"] != fnv1a(data):
            bad.append(f"{e.name}: checksum {rec['fnv']:#010x} on the device, {fnv1a(data):#010x} in the simulator")
    return bad[:limit] + ([f"... {len(bad) - limit} more"] if len(bad) > limit else [])
