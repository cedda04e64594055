"""Power cuts during checkpoint saves, swept on a target and checked against the simulator.

:func:`run_power_cuts` generates the model's C project with checkpoints
(``generate_project(checkpoint=True)``), builds the sweep program ``files/tt_ckpt_sweep.c`` with
the flash simulator ``files/tt_flashsim.c`` and the run's samples, and runs it on the target (the
host, or an emulated core). The program trains ``saves * every + tail`` steps and saves the
training state after every ``every`` steps; for each save it cuts power before, after, and in
the middle of (a torn write) every ``stride``-th flash operation of the save, boots afresh and
restores; then it flips single bits in the stored slots. The fault model is written out in
``docs/field.md`` ("Power cuts").

Every restore must give byte for byte the state being saved or the last committed one (never a
corrupt, mixed or older state); training on from the last committed one must reach the state
being saved; and the run, which goes on from a restored state after every save, must end with
exactly the simulator's parameters.

>>> from tintin import data
>>> from tintin.nn import build_model
>>> from tintin.targets.power_cuts import run_power_cuts
>>> ds = data.load("digits")
>>> model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
>>> r = run_power_cuts(model, ds, target="host", saves=2, update="last:1")
>>> r.corrupt_restores, r.lost_commits, r.resume_bit_exact, r.cut_points > 0
(0, 0, True, True)
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tintin.codegen import compile_for_codegen, generate_project
from tintin.codegen.checkpoint import layout, state_payload, state_regions
from tintin.codegen.driver import render_driver
from tintin.codegen.project import EXTRA_CFLAGS, MAKE_TARGETS, TARGET_CFLAGS
from tintin.targets.build import build
from tintin.targets.compare import compare, parse_output, simulate
from tintin.targets.errors import DeviceRunError, TargetError, ToolchainMissingError
from tintin.targets.registry import FILES_DIR, get_target
from tintin.targets.run import run
from tintin.targets.toolchain import toolchain_status

__all__ = ["PowerCutReport", "run_power_cuts", "SWEEP_SOURCES"]

#: the sweep program and the flash simulator (``tintin.targets`` files)
SWEEP_SOURCES = ("tt_flashsim.c", "tt_ckpt_sweep.c")


@dataclass
class PowerCutReport:
    """What a power-cut sweep found (see the module docstring); sizes in bytes."""

    target: str
    machine: str
    model: str
    update: str
    saves: int
    steps: int
    stride: int
    cut_points: int = 0
    restores_new: int = 0  #: restores that gave the state being saved (the cut came after its commit)
    restores_previous: int = 0  #: restores that gave the last committed state
    restores_none: int = 0  #: first save cut before its commit: nothing committed yet (allowed)
    corrupt_restores: int = 0
    lost_commits: int = 0
    resumes: int = 0
    resumes_exact: int = 0
    bit_flips: int = 0
    bit_flip_corrupt: int = 0
    bit_flip_lost: int = 0
    final_bit_exact: bool = False
    resume_bit_exact: bool = False
    mismatches: list = field(default_factory=list)
    payload_bytes: int = 0
    slot_bytes: int = 0
    slots: int = 0
    region_bytes: int = 0
    page_size: int = 0
    write_align: int = 0
    operations_per_save: float = 0.0
    page_erases_per_save: float = 0.0
    programs_per_save: float = 0.0
    bytes_programmed_per_save: float = 0.0
    instructions_per_save: float | None = None
    instructions_per_restore: float | None = None
    count_unit: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(text: str, report: PowerCutReport) -> list[list[int]]:
    saves = []
    for line in text.splitlines():
        f = line.split()
        if not f or f[0] not in "KXF":
            continue
        try:
            vals = [int(v) for v in f[1:]]
        except ValueError:
            raise DeviceRunError(f"malformed sweep output line: {line[:80]!r}") from None
        if f[0] == "K":
            saves.append(vals)
            if vals[6] != 0 or vals[7] != 1:
                report.mismatches.append(f"save {vals[0]}: status {vals[6]}, clean restore "
                                         f"{'ok' if vals[7] else 'failed'}")
        elif f[0] == "X":
            _, points, new, prev, none, corrupt, lost, resumes, exact = vals
            report.cut_points += points
            report.restores_new += new
            report.restores_previous += prev
            report.restores_none += none
            report.corrupt_restores += corrupt
            report.lost_commits += lost
            report.resumes += resumes
            report.resumes_exact += exact
        else:
            _, flips, new, prev, none, corrupt, lost = vals
            report.bit_flips += flips
            report.bit_flip_corrupt += corrupt
            report.bit_flip_lost += lost
    return saves


def sweep_ram_bytes(arena_bytes: int, region_bytes: int, payload_bytes: int) -> int:
    """RAM the sweep program needs beyond the stack: the arena, the simulated flash and two
    images of it, and three copies of the state."""
    return arena_bytes + 3 * region_bytes + 3 * payload_bytes


def _sweep_machines(tgt) -> list:
    """The boards that may run the sweep program: every machine of the target except those that run
    float reference programs only (``Machine.reference_only``)."""
    return [m for m in tgt.machines if not m.reference_only]


def _sweep_ram(tgt) -> int | None:
    """RAM the sweep program may use: the largest board's that may run it (the program is a test,
    not firmware: it may need more RAM than the part, e.g. the mps2-an385 board for Cortex-M0)."""
    rams = [m.ram_bytes for m in _sweep_machines(tgt) if m.ram_bytes]
    return max(rams) if rams else tgt.ram_bytes


def _check_sweep_fits(project, tgt, region: int, payload: int) -> None:
    from tintin.targets.errors import DoesNotFitError

    if tgt.family == "host":
        return
    ram = _sweep_ram(tgt)
    if not ram:
        return
    stack = tgt.default_stack_bytes or 0
    need = sweep_ram_bytes(project.plan.arena_bytes, region, payload) + stack
    if need > ram:
        raise DoesNotFitError(f"the power-cut sweep of {project.program.model_name} (update {project.program.update}) "
                              f"needs {need:,} B of RAM on {tgt.name} (arena, simulated flash {region:,} B and its "
                              f"images, state copies, stack), which has {ram:,} B; try --update last:1 or "
                              "--target host")


def run_power_cuts(model, dataset, *, target: str = "host", saves: int = 4, every: int = 2, tail: int = 2,
                   stride: int = 1, flips: int = 16, page_size: int = 1024, write_align: int = 4, slots: int = 2,
                   update: str | None = "full", batch_size: int = 1, optim=None, options=None, seed: int = 0,
                   work_dir=None, timeout_s: float = 600.0, opt: str = "-O2") -> PowerCutReport:
    """Sweep power cuts over ``saves`` checkpoint saves of ``model`` training on ``dataset`` on
    ``target`` (see the module docstring). ``stride``: cut at every ``stride``-th flash operation
    of a save (and its last); ``flips``: bit flips per save; ``page_size``, ``write_align``,
    ``slots``: the simulated flash. Raises :class:`TargetError` (a ``TintinError``) for bad
    arguments, a missing toolchain, a failed build or run."""
    for name, v, lo in (("saves", saves, 1), ("every", every, 1), ("tail", tail, 0), ("stride", stride, 1),
                        ("flips", flips, 0), ("slots", slots, 2), ("page_size", page_size, 32),
                        ("write_align", write_align, 1)):
        if int(v) < lo:
            raise TargetError(f"{name} must be at least {lo}, got {v}")
    if write_align & (write_align - 1) or write_align > 64 or page_size % 32 or page_size % write_align:
        raise TargetError(f"write alignment {write_align} must be a power of two up to 64 dividing the page size "
                          f"{page_size} (a multiple of 32)")
    tgt = get_target(target)
    ok, reason = toolchain_status(target)
    if not ok:
        raise ToolchainMissingError(reason)
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="tintin-power-cuts-") as tmp:
            return _sweep(model, dataset, tgt, Path(tmp), saves, every, tail, stride, flips, page_size, write_align,
                          slots, update, batch_size, optim, options, seed, timeout_s, opt)
    return _sweep(model, dataset, tgt, Path(work_dir), saves, every, tail, stride, flips, page_size, write_align,
                  slots, update, batch_size, optim, options, seed, timeout_s, opt)


def _sweep(model, dataset, tgt, work: Path, saves, every, tail, stride, flips, page_size, write_align, slots,
           update, batch_size, optim, options, seed, timeout_s, opt) -> PowerCutReport:
    from tintin.targets.ondevice import check_fit, select_samples, training_order

    t0 = time.perf_counter()
    steps = saves * every + tail
    program, plan, eval_program = compile_for_codegen(model, update, batch_size, optim, options)
    project = generate_project(model, work / "project", program=program, plan=plan, eval_program=eval_program,
                               target=tgt.name if tgt.name in MAKE_TARGETS else "host", example=False,
                               checkpoint=True)
    check_fit(project, tgt)
    payload = sum(r.nbytes for r in state_regions(project.model.params, str))
    lay = layout(0, page_size, write_align, payload)
    region = slots * lay.slot_bytes
    _check_sweep_fits(project, tgt, region, payload)
    order, starts = training_order(len(dataset.x_train), steps, batch_size, seed)
    x, y, o = select_samples(dataset.x_train, dataset.y_train, order, steps, batch_size)
    drv = render_driver(project.model, x_samples=x, y_samples=y, order=o, steps=steps, batch_size=batch_size,
                        epoch_starts=starts, eval_x=None, seed=seed)
    ddir = work / "project" / "sweep"
    ddir.mkdir(parents=True, exist_ok=True)
    for name in ("tt_driver_data.c", "tt_driver_data.h"):
        (ddir / name).write_text(drv[name])
    sources = [*project.sources, ddir / "tt_driver_data.c", *(FILES_DIR / f for f in SWEEP_SOURCES)]
    defines = {"TT_SWEEP_SAVES": f"{saves}UL", "TT_SWEEP_EVERY": f"{every}UL", "TT_SWEEP_STRIDE": f"{stride}UL",
               "TT_SWEEP_FLIPS": f"{flips}UL", "TT_SWEEP_PAGE": f"{page_size}UL", "TT_SWEEP_ALIGN": f"{write_align}UL",
               "TT_SWEEP_REGION": f"{region}UL"}
    cflags = list(EXTRA_CFLAGS) + list(TARGET_CFLAGS.get(tgt.name, ()))
    limits = {}
    if tgt.family != "host" and _sweep_ram(tgt):
        limits = {"ram_bytes": _sweep_ram(tgt),
                  "flash_bytes": max([m.flash_bytes for m in _sweep_machines(tgt) if m.flash_bytes]
                                     or [tgt.flash_bytes])}
    built = build(tgt.name, sources, work / "build", include_dirs=[*project.include_dirs, ddir], defines=defines,
                  opt=opt, name="power_cuts", extra_cflags=cflags, **limits)
    res = run(tgt.name, built, timeout_s=timeout_s)
    report = PowerCutReport(target=tgt.name, machine=res.machine, model=program.model_name, update=program.update,
                            saves=saves, steps=steps, stride=stride, payload_bytes=payload,
                            slot_bytes=lay.slot_bytes, slots=slots, region_bytes=region, page_size=page_size,
                            write_align=write_align, count_unit=res.count_unit)
    per_save = _parse(res.stdout, report)
    dev = parse_output(res.stdout, program.loss == "cross_entropy")
    if len(per_save) != saves or not dev.complete:
        raise DeviceRunError(f"{tgt.name}: the sweep program stopped early (exit status {res.exit_code}): "
                             + (res.stdout.strip().splitlines() or ["no output"])[-1][:120])
    n = len(per_save)
    report.operations_per_save = sum(v[2] for v in per_save) / n
    report.page_erases_per_save = sum(v[3] for v in per_save) / n
    report.programs_per_save = sum(v[4] for v in per_save) / n
    report.bytes_programmed_per_save = sum(v[5] for v in per_save) / n
    counts = list(res.counts)
    if len(counts) >= 4 * saves - 1:
        report.instructions_per_save = sum(counts[4 * i] for i in range(saves)) / saves
        report.instructions_per_restore = sum(counts[4 * i + 2] for i in range(saves)) / saves
    ref = simulate(model, project, x_samples=x, y_samples=y, order=o, steps=steps, seed=seed, epoch_starts=starts,
                   eval_x=None)
    report.mismatches += compare(dev, ref, project, steps=steps, n_eval=0, classifier=program.loss == "cross_entropy")
    # the state the device saves is the host's training state, byte for byte
    epoch = max([e for s, e in starts.items() if s < steps] or [0])
    want = state_payload(project.model.params, ref.entries, seed=seed, steps=steps, epoch=epoch)
    got = bytes.fromhex("".join(line.split()[2] for line in res.stdout.splitlines()
                                if line.startswith("T ") and len(line.split()) == 3))
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        report.mismatches.append(f"the saved state differs from the simulator's at byte {first} "
                                 f"({len(got)} bytes on the device, {len(want)} expected)")
    report.final_bit_exact = not report.mismatches
    report.resume_bit_exact = report.final_bit_exact and report.resumes_exact == report.resumes
    report.seconds = time.perf_counter() - t0
    return report
