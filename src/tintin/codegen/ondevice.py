"""Train on an emulated microcontroller and prove the result bit-exact against the simulator.

:func:`run_on_target` compiles the model's training program, generates the C project and a
measurement driver with real quantised samples embedded in flash, builds it for a target, runs
it in the target's emulator, and compares every step's loss and predictions, every batch-1
evaluation and the final parameters (and momentum) with :class:`tintin.compile.ProgramExecutor`
(the simulator executing the same program, bit-identical to ``tintin.train.train_step``) and
``model.forward`` at batch 1.

Building and running are done by the ``targets`` argument: the :mod:`tintin.targets` module or
any object with the same ``build``, ``run``, ``check_no_softfloat``, ``get_target`` and
``toolchain_status`` functions (``tintin.codegen`` does not import ``tintin.targets``: that
package sits above it).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cgen import CodegenError
from .driver import render_driver
from .model_c import ROLE_FROZEN, ROLE_MOMENTUM
from .project import EXTRA_CFLAGS, TARGET_CFLAGS, Project, compile_for_codegen, generate_project

_DTYPE_NP = {1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64}


class DoesNotFitError(CodegenError):
    """The program (arena, stack, code, data) needs more memory than the target has."""


class DeviceRunError(CodegenError):
    """The device output is missing records or reports a failing status."""


@dataclass
class DeviceReport:
    """What one emulated training run measured and how it compares with the simulator.

    Counts are instructions (Cortex-M, QEMU) or cycles (AVR, simavr); sizes in bytes."""

    target: str
    machine: str
    machine_description: str
    count_unit: str | None
    model: str
    update: str
    batch_size: int
    steps: int
    eval_samples: int
    bit_exact: bool | None
    mismatches: list
    step_counts: list
    eval_counts: list
    arena_bytes: int | None
    planned_arena_bytes: int
    eval_arena_bytes: int
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    stack_used_bytes: int | None
    softfloat_symbols: list
    macs_per_step: int
    device_eval_accuracy: object = None  #: fraction correct on the device (None without labels)
    simulator_eval_accuracy: object = None
    profile: dict | None = None
    build_seconds: object = 0.0
    run_seconds: object = 0.0
    reference_seconds: object = 0.0
    losses: list = field(default_factory=list)
    eval_predictions: list = field(default_factory=list)

    @property
    def per_step(self):
        """Mean instructions (or cycles) per training step, or None on the host."""
        return np.mean(self.step_counts).item() if self.step_counts else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_step"] = self.per_step
        return d


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
    """Records of the driver's output (see :mod:`tintin.codegen.driver`)."""
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
    from ..compile import ProgramExecutor
    from ..nn import Context
    from ..numerics import QTensor, RoundingStream, Scale

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
    entries = {}
    for e in project.model.params:
        if e.role == ROLE_MOMENTUM:
            arr = np.ascontiguousarray(ex.view(e.name)).astype(np.int64)
            entries[e.index] = (None, arr.astype("<i8").tobytes())
            continue
        b = program.buffers[e.name]
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


# -- sizes ------------------------------------------------------------------------------------------

def symbol_size(elf: Path, name: str, nm: str | None = None) -> int | None:
    """``st_size`` of symbol ``name`` in ``elf`` (pyelftools, else ``nm -S``), or None."""
    try:
        from elftools.elf.elffile import ELFFile

        with open(elf, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            if symtab is not None:
                for sym in symtab.iter_symbols():
                    if sym.name == name:
                        return int(sym["st_size"])
        return None
    except ImportError:  # pragma: no cover - pyelftools is installed with the emu extra
        pass
    tool = nm or "nm"
    if shutil.which(tool) is None:
        return None
    proc = subprocess.run([tool, "-S", str(elf)], capture_output=True, text=True, timeout=30)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    return None


# -- the whole run -------------------------------------------------------------------------------

def _stack_estimate(family: str) -> int:
    return {"avr": 256, "cortex-m": 2048}.get(family, 0)


def check_fit(project: Project, target, *, ram_bytes: int | None = None, stack_bytes: int | None = None,
              model_spec: str | None = None) -> None:
    """Raise :class:`DoesNotFitError` when the arena, evaluation scratch, frozen data (AVR) and
    stack cannot fit the target's RAM."""
    if target.family == "host":
        return
    ram = ram_bytes if ram_bytes is not None else target.ram_bytes
    if ram is None:
        return
    stack = stack_bytes if stack_bytes is not None else (target.default_stack_bytes or 0)
    if target.family == "avr":
        stack = _stack_estimate("avr") if stack_bytes is None else stack_bytes
    need = project.plan.arena_bytes + (project.model.eval_layout.bytes
                                       if project.model.eval_layout.mode == "separate" else 0)
    frozen = 0
    if target.family == "avr":  # const data sits in SRAM on AVR
        frozen = sum(project.program.buffers[e.name].nbytes for e in project.model.params if e.role == ROLE_FROZEN)
    total = need + frozen + stack + project.model.input_size
    if total > ram:
        spec = model_spec or project.program.model_name
        raise DoesNotFitError(
            f"{project.program.model_name} (update {project.program.update}, batch {project.program.batch_size}) needs "
            f"{total:,} B of RAM on {target.name} (arena {need:,} B"
            + (f", frozen parameters {frozen:,} B" if frozen else "") + f", stack {stack:,} B), which has {ram:,} B: "
            f"{total - ram:,} B missing; see `tintin plan {spec} --update bias` for what fits")


def run_on_target(model, targets, target: str, *, x_samples, y_samples, order, steps: int, work_dir,
                  batch_size: int = 1, update: str | None = "full", optim=None, options=None, seed: int = 0,
                  eval_x=None, eval_y=None, epoch_starts: dict | None = None, opt: str = "-O2",
                  timeout_s=300.0, dump: bool = True, compare_results: bool = True,
                  profile: bool = False, stack_bytes: int | None = None, machine: str | None = None,
                  model_spec: str | None = None, sanitize: bool = False, extra_cflags=()) -> DeviceReport:
    """Build, run and compare one training run (see the module docstring).

    ``x_samples`` / ``y_samples``: the samples to embed; step ``i`` trains on
    ``order[i*B:(i+1)*B]``. ``eval_x`` (and optionally ``eval_y`` for the accuracy) are evaluated
    one by one after training. ``profile`` adds a mark after every program step (per-kernel counts
    in ``report.profile``). Raises :class:`DoesNotFitError`, :class:`CodegenError`, and the
    ``targets`` module's build / run / toolchain errors."""
    tgt = targets.get_target(target)
    ok, reason = targets.toolchain_status(target)
    if not ok:
        raise targets.ToolchainMissingError(reason)
    work = Path(work_dir)
    t0 = time.perf_counter()
    program, plan, eval_program = compile_for_codegen(model, update, batch_size, optim, options)
    project = generate_project(model, work / "project", program=program, plan=plan, eval_program=eval_program,
                               target=target if target in targets.TARGETS else "host",
                               example=False)
    check_fit(project, tgt, stack_bytes=stack_bytes, model_spec=model_spec)
    n_eval = 0 if eval_x is None else len(eval_x)
    drv = render_driver(project.model, x_samples=x_samples, y_samples=y_samples, order=order, steps=steps,
                        batch_size=program.batch_size, epoch_starts=epoch_starts, eval_x=eval_x, seed=seed,
                        dump=dump)
    ddir = work / "project" / "driver"
    ddir.mkdir(parents=True, exist_ok=True)
    for name, text in drv.items():
        (ddir / name).write_text(text)
    sources = [*project.sources, ddir / "tt_driver.c", ddir / "tt_driver_data.c"]
    cflags = list(EXTRA_CFLAGS) + list(TARGET_CFLAGS.get(target, ())) + list(extra_cflags)
    if profile:
        cflags.append("-DTT_STEP_HOOK=tt_bench_mark")
    kwargs = {}
    if stack_bytes is not None:
        kwargs["stack_bytes"] = stack_bytes
    if sanitize:
        kwargs["sanitize"] = True
    try:
        build = targets.build(target, sources, work / "build", include_dirs=[*project.include_dirs, ddir],
                              opt=opt, name="train", extra_cflags=cflags, **kwargs)
    except targets.BuildError as exc:
        if "memory overflow" in str(exc) or "will not fit" in str(exc) or "overflowed" in str(exc):
            spec = model_spec or program.model_name
            raise DoesNotFitError(f"{program.model_name} does not fit {target}: {exc}; see `tintin plan {spec}` "
                                  "(fewer trained layers, fewer embedded steps)") from exc
        raise
    build_s = time.perf_counter() - t0
    softfloat = targets.check_no_softfloat(build) if tgt.family != "host" else []
    arena = symbol_size(build.elf_path, "tt_arena", getattr(tgt, "nm", None))
    t1 = time.perf_counter()
    run_kwargs = {"machine": machine} if machine else {}
    res = targets.run(target, build, timeout_s=timeout_s, **run_kwargs)
    run_s = time.perf_counter() - t1
    classifier = program.loss == "cross_entropy"
    dev = parse_output(res.stdout, classifier)
    # counts: around every training step (and, profiling, after every program step), then evaluations
    counts = list(res.counts)
    S = len(program.steps)
    per = (S + 2) if profile else 2
    step_counts, prof = [], None
    if counts:
        if profile:
            blocks = [counts[i * per:i * per + S + 1] for i in range(steps)]
            step_counts = [sum(b) for b in blocks]
            if blocks:
                last = blocks[-1]
                mean = np.mean(np.asarray(blocks, dtype=np.float64), axis=0)
                prof = {"steps": [{"index": s.index, "phase": s.phase.value, "op": s.op, "layer": s.layer,
                                   "macs": s.macs, "count": int(last[k]), "mean_count": mean[k].item()}
                                  for k, s in enumerate(program.steps)],
                        "overhead": int(last[S]), "training_steps": len(blocks)}
        else:
            step_counts = [counts[2 * i] for i in range(steps) if 2 * i < len(counts)]
        base = steps * per
        eval_counts = [counts[base + 2 * j] for j in range(n_eval) if base + 2 * j < len(counts)]
    else:
        eval_counts = []
    mismatches: list[str] = []
    bit_exact = None
    ref_s = 0.0
    ref = None
    if compare_results:
        t2 = time.perf_counter()
        ref = simulate(model, project, x_samples=x_samples, y_samples=y_samples, order=order, steps=steps,
                       seed=seed, epoch_starts=epoch_starts, eval_x=eval_x)
        ref_s = time.perf_counter() - t2
        mismatches = compare(dev, ref, project, steps=steps, n_eval=n_eval, classifier=classifier)
        bit_exact = not mismatches
    else:
        if not dev.complete:
            raise DeviceRunError(f"{target}: the device output ends before END")
    acc_dev = acc_ref = None
    if eval_y is not None and classifier and n_eval:
        y = np.asarray(eval_y)[:n_eval]
        acc_dev = np.mean([c == yy for (_, c), yy in zip(dev.evals, y)]).item() if dev.evals else None
        if ref is not None:
            acc_ref = np.mean(np.asarray(ref.evals) == y).item()
    return DeviceReport(
        target=target, machine=res.machine, machine_description=res.machine_description,
        count_unit=res.count_unit, model=program.model_name, update=program.update, batch_size=program.batch_size,
        steps=steps, eval_samples=n_eval, bit_exact=bit_exact, mismatches=mismatches, step_counts=step_counts,
        eval_counts=eval_counts, arena_bytes=arena, planned_arena_bytes=plan.arena_bytes,
        eval_arena_bytes=project.model.eval_layout.bytes if project.model.eval_layout.mode == "separate" else 0,
        text_bytes=build.text_bytes, data_bytes=build.data_bytes, bss_bytes=build.bss_bytes,
        stack_used_bytes=res.stack_used_bytes, softfloat_symbols=list(softfloat), macs_per_step=program.macs,
        device_eval_accuracy=acc_dev, simulator_eval_accuracy=acc_ref, profile=prof, build_seconds=build_s,
        run_seconds=run_s, reference_seconds=ref_s, losses=[s[1] for s in dev.steps],
        eval_predictions=[e[1] for e in dev.evals] if classifier else [])


def select_samples(x, y, order, steps: int, batch_size: int):
    """Embed only the samples a run reads: ``(x_used, y_used, order_in_used)``."""
    order = np.asarray(order, dtype=np.int64).ravel()[:steps * batch_size]
    if len(order) < steps * batch_size:
        raise CodegenError(f"{steps} steps of batch {batch_size} need {steps * batch_size} samples, "
                           f"the order has {len(order)}")
    used, inverse = np.unique(order, return_inverse=True)
    return np.asarray(x)[used], np.asarray(y)[used], inverse.astype(np.int64)

