"""Train a model on an emulated microcontroller and prove the result bit-exact against the simulator.

:func:`run_model` is the call a user makes: a model, a data set and a target in, a
:class:`DeviceReport` out. It trains ``steps`` steps in the trainer's seeded data order,
evaluates test samples one by one, and compares every bit with the simulator.

:func:`run_on_target` is the same run with the embedded samples, their order and the evaluation
samples chosen by the caller: it compiles the model's training program, generates the C project
(:mod:`tintin.codegen`) and a measurement driver with the samples embedded in flash, builds it for
the target, runs it in the target's emulator, and compares every step's loss and predictions, every
batch-1 evaluation and the final parameters (and momentum) with the simulator
(:mod:`tintin.targets.compare`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tintin.codegen import CodegenError, Project, compile_for_codegen, generate_project
from tintin.codegen.driver import render_driver
from tintin.codegen.project import EXTRA_CFLAGS, MAKE_TARGETS, TARGET_CFLAGS
from tintin.targets.build import build, check_no_softfloat
from tintin.targets.compare import compare, parse_output, simulate
from tintin.targets.errors import BuildError, DeviceRunError, DoesNotFitError, TargetError, ToolchainMissingError
from tintin.targets.registry import get_target
from tintin.targets.run import run
from tintin.targets.toolchain import toolchain_status

__all__ = ["DeviceReport", "check_fit", "run_model", "run_on_target", "select_samples", "symbol_size",
           "training_order"]


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
        frozen = sum(project.program.buffers[e.name].nbytes for e in project.model.params
                     if project.program.buffers[e.name].memory.value == "flash")  # frozen parameters, their row exponents
    total = need + frozen + stack + project.model.input_size
    if total > ram:
        spec = model_spec or project.program.model_name
        raise DoesNotFitError(
            f"{project.program.model_name} (update {project.program.update}, batch {project.program.batch_size}) needs "
            f"{total:,} B of RAM on {target.name} (arena {need:,} B"
            + (f", frozen parameters {frozen:,} B" if frozen else "") + f", stack {stack:,} B), which has {ram:,} B: "
            f"{total - ram:,} B missing; see `tintin plan {spec} --update bias` for what fits")


def prepare_project(model, target: str, work: Path, *, update, batch_size: int, optim, options,
                    stack_bytes: int | None = None, model_spec: str | None = None):
    """``(target, project)``: the model's training program compiled, generated as a C project under
    ``work/project`` and checked against the target's RAM (:func:`check_fit`)."""
    tgt = get_target(target)
    ok, reason = toolchain_status(target)
    if not ok:
        raise ToolchainMissingError(reason)
    program, plan, eval_program = compile_for_codegen(model, update, batch_size, optim, options)
    project = generate_project(model, work / "project", program=program, plan=plan, eval_program=eval_program,
                               target=target if target in MAKE_TARGETS else "host",
                               example=False)
    check_fit(project, tgt, stack_bytes=stack_bytes, model_spec=model_spec)
    return tgt, project


def build_driver_program(project: Project, target: str, driver_files: dict, work: Path, *, opt: str = "-O2",
                         extra_cflags=(), stack_bytes: int | None = None, sanitize: bool = False,
                         model_spec: str | None = None):
    """Write ``driver_files`` (a rendered driver of :mod:`tintin.codegen.driver`) beside the project and
    build both for ``target``; a program too large for the target raises :class:`DoesNotFitError`."""
    ddir = work / "project" / "driver"
    ddir.mkdir(parents=True, exist_ok=True)
    for name, text in driver_files.items():
        (ddir / name).write_text(text)
    sources = [*project.sources, ddir / "tt_driver.c", ddir / "tt_driver_data.c"]
    cflags = list(EXTRA_CFLAGS) + list(TARGET_CFLAGS.get(target, ())) + list(extra_cflags)
    kwargs = {}
    if stack_bytes is not None:
        kwargs["stack_bytes"] = stack_bytes
    if sanitize:
        kwargs["sanitize"] = True
    try:
        return build(target, sources, work / "build", include_dirs=[*project.include_dirs, ddir],
                     opt=opt, name="train", extra_cflags=cflags, **kwargs)
    except BuildError as exc:
        if "memory overflow" in str(exc) or "will not fit" in str(exc) or "overflowed" in str(exc):
            spec = model_spec or project.program.model_name
            raise DoesNotFitError(f"{project.program.model_name} does not fit {target}: {exc}; see `tintin plan "
                                  f"{spec}` (fewer trained layers, fewer embedded samples)") from exc
        raise


def run_on_target(model, target: str, *, x_samples, y_samples, order, steps: int, work_dir,
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
    build / run / toolchain errors of :mod:`tintin.targets` (every one a ``TintinError``)."""
    work = Path(work_dir)
    t0 = time.perf_counter()
    tgt, project = prepare_project(model, target, work, update=update, batch_size=batch_size, optim=optim,
                                   options=options, stack_bytes=stack_bytes, model_spec=model_spec)
    program, plan = project.program, project.plan
    n_eval = 0 if eval_x is None else len(eval_x)
    drv = render_driver(project.model, x_samples=x_samples, y_samples=y_samples, order=order, steps=steps,
                        batch_size=program.batch_size, epoch_starts=epoch_starts, eval_x=eval_x, seed=seed,
                        dump=dump)
    cflags = ["-DTT_STEP_HOOK=tt_bench_mark"] if profile else []
    built = build_driver_program(project, target, drv, work, opt=opt, extra_cflags=[*cflags, *extra_cflags],
                                 stack_bytes=stack_bytes, sanitize=sanitize, model_spec=model_spec)
    build_s = time.perf_counter() - t0
    softfloat = check_no_softfloat(built) if tgt.family != "host" else []
    arena = symbol_size(built.elf_path, "tt_arena", getattr(tgt, "nm", None))
    t1 = time.perf_counter()
    run_kwargs = {"machine": machine} if machine else {}
    res = run(target, built, timeout_s=timeout_s, **run_kwargs)
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
        text_bytes=built.text_bytes, data_bytes=built.data_bytes, bss_bytes=built.bss_bytes,
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



def training_order(n: int, steps: int, batch_size: int, seed: int):
    """``(order, epoch_starts)``: the trainer's seeded permutation per epoch
    (:func:`tintin.train.epoch_order`), concatenated until ``steps`` full batches are covered, and
    the step at which each epoch after the first starts."""
    from tintin.train import epoch_order

    need = steps * batch_size
    epochs = max(1, -(-need // n))
    order = np.concatenate(list(epoch_order(n, epochs, seed)))[:need]
    starts = {}
    for e in range(1, epochs):
        step = (e * n) // batch_size
        if step < steps:
            starts[step] = e
    return order, starts


def _check_dataset(model, dataset) -> None:
    if tuple(dataset.sample_shape) != tuple(model.input_shape):
        raise TargetError(f"data set {dataset.name} has samples of shape {tuple(dataset.sample_shape)} but the model "
                          f"expects {tuple(model.input_shape)}")
    if model.loss == "cross_entropy" and model.output_shape_[0] != dataset.num_classes:
        raise TargetError(f"data set {dataset.name} has {dataset.num_classes} classes but the model predicts "
                          f"{model.output_shape_[0]}")
    if model.input_exponent != dataset.input_exponent:
        raise TargetError(f"data set {dataset.name} is quantised with scale 2^{dataset.input_exponent} but the model "
                          f"takes inputs at 2^{model.input_exponent}")


def run_model(model, dataset, *, target: str = "host", steps: int = 100, batch_size: int = 1,
              update: str | None = "full", eval_samples: int = 100, optim=None, options=None, seed: int = 0,
              work_dir=None, opt: str = "-O2", timeout_s: float = 600.0, profile: bool = False,
              dump: bool = True) -> DeviceReport:
    """Train ``model`` on ``target`` (``"host"``, ``"cortex-m0"``, ... see ``tintin devices``) and
    compare every bit with the simulator.

    The device trains ``steps`` steps of ``batch_size`` samples of ``dataset``'s training split in
    the order :func:`tintin.train.fit` uses for ``seed``, with the ``update`` selection (``"full"``,
    ``"bias"``, ``"last:K"``, ``"sparse:..."``), the optimiser ``optim``
    (:class:`tintin.optim.OptimConfig`) and compile ``options``
    (:class:`tintin.compile.CompileOptions`); it then evaluates the first ``eval_samples`` test
    samples one by one. ``model`` itself is not changed. The project and build go to ``work_dir``
    (a temporary directory, removed afterwards, when None).

    Returns a :class:`DeviceReport`: ``bit_exact`` (every loss, prediction, evaluation and final
    parameter byte equal to the simulator's), ``mismatches``, instructions (AVR: cycles) per step,
    memory sizes and the device's accuracy. Raises :class:`TargetError` (a ``TintinError``) when
    the data set does not fit the model, the toolchain is missing, the program does not fit the
    target (:class:`DoesNotFitError`) or a build or run fails.

    >>> from tintin import data
    >>> from tintin.nn import build_model
    >>> from tintin.targets import run_model
    >>> ds = data.load("digits")
    >>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0,
    ...                     input_exponent=ds.input_exponent)
    >>> report = run_model(model, ds, target="host", steps=3, eval_samples=5)
    >>> report.bit_exact, report.steps, report.eval_samples
    (True, 3, 5)
    """
    if steps < 1:
        raise TargetError(f"steps must be at least 1, got {steps}")
    if batch_size < 1:
        raise TargetError(f"batch size must be at least 1, got {batch_size}")
    if eval_samples < 0:
        raise TargetError(f"eval_samples must be >= 0, got {eval_samples}")
    _check_dataset(model, dataset)
    order, starts = training_order(len(dataset.x_train), steps, batch_size, seed)
    x, y, o = select_samples(dataset.x_train, dataset.y_train, order, steps, batch_size)
    n_eval = min(eval_samples, len(dataset.x_test))
    kwargs = dict(x_samples=x, y_samples=y, order=o, steps=steps, batch_size=batch_size, update=update, optim=optim,
                  options=options, seed=seed, eval_x=dataset.x_test[:n_eval], eval_y=dataset.y_test[:n_eval],
                  epoch_starts=starts, opt=opt, timeout_s=timeout_s, profile=profile, dump=dump)
    if work_dir is not None:
        return run_on_target(model, target, work_dir=work_dir, **kwargs)
    with tempfile.TemporaryDirectory(prefix="tintin-run-") as tmp:
        return run_on_target(model, target, work_dir=tmp, **kwargs)
