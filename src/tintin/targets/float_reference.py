"""Build and run the float32 reference of a training step (:mod:`tintin.codegen.float_ref`) on a
target, with the same data and order as the integer run.

:func:`run_reference_on_target` returns the instructions (or cycles) of every float training step,
the program sizes and the soft-float helpers the binary calls (expected on cores without an FPU)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tintin.codegen import RUNTIME_DIR
from tintin.codegen.float_ref import render_reference, render_reference_driver
from tintin.codegen.project import TARGET_CFLAGS
from tintin.targets.build import build, check_no_softfloat
from tintin.targets.errors import BuildError, DeviceRunError, ToolchainMissingError
from tintin.targets.registry import get_target
from tintin.targets.run import run
from tintin.targets.toolchain import toolchain_status


@dataclass
class ReferenceReport:
    """One float reference run: counts per training step (instructions, AVR cycles), sizes in bytes."""

    target: str
    machine: str
    count_unit: str | None
    steps: int
    step_counts: list
    text_bytes: int
    data_bytes: int
    bss_bytes: int
    softfloat_symbols: list
    losses: list = field(default_factory=list)  #: summed loss per step (nats)
    predictions: list = field(default_factory=list)
    checksum: int | None = None
    fits_target_ram: bool = True  #: False: linked for a bigger emulated memory (Cortex-M0: 4 MB; ATmega328P: an ATmega1284P's 16 KB) because the target's SRAM is too small
    build_seconds: float = 0.0
    run_seconds: float = 0.0

    @property
    def per_step(self) -> float | None:
        return float(np.mean(self.step_counts)) if self.step_counts else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["per_step"] = self.per_step
        return d


def effective_lr(optim) -> float:
    """The learning rate the integer optimiser applies at epoch 0 (``IntegerSGD.effective_lr``)."""
    from tintin.numerics import Scale, ScaleMode
    from tintin.optim import OptimConfig

    optim = optim or OptimConfig()
    return Scale.nearest(optim.lr_at(0), ScaleMode.COMPOUND).to_float()


def run_reference_on_target(model, target: str, *, x_samples, y_samples, order, steps: int, work_dir,
                            batch_size: int = 1, update: str | None = "full", optim=None, opt: str = "-O2",
                            timeout_s: float = 600.0, target_exponent: int = 0) -> ReferenceReport:
    """Build the reference for ``target`` (use ``cortex-m4f`` for the FPU), run ``steps`` steps."""
    from tintin.compile.selection import model_selection, parse_update

    ok, reason = toolchain_status(target)
    if not ok:
        raise ToolchainMissingError(reason)
    trained = model_selection(model) if update is None else parse_update(update).resolve(model)
    t0 = time.perf_counter()
    src = render_reference(model, batch_size=batch_size, trained=trained, lr=effective_lr(optim))
    classifier = model.loss == "cross_entropy"
    drv = render_reference_driver(x_samples=x_samples, y_samples=y_samples, order=order, steps=steps,
                                  batch_size=batch_size, input_exponent=model.input_exponent, classifier=classifier,
                                  target_exponent=target_exponent)
    work = Path(work_dir)
    pdir = work / "reference"
    pdir.mkdir(parents=True, exist_ok=True)
    for name, text in {**src.files, **drv}.items():
        (pdir / name).write_text(text)
    srcs = [pdir / "tt_ref_model.c", pdir / "tt_ref_driver.c", pdir / "tt_ref_data.c"]
    flags = list(TARGET_CFLAGS.get(target, ()))
    fits = True
    try:
        built = build(target, srcs, work / "reference-build", include_dirs=[pdir, RUNTIME_DIR], opt=opt,
                              name="reference", extra_cflags=flags)
    except BuildError as exc:
        if "memory overflow" not in str(exc) or target not in ("cortex-m0", "atmega328p"):
            raise
        # the float model does not fit the target's SRAM (RP2040 class: 264 KB); count its
        # instructions anyway, linked for the 4 MB of the emulated mps2-an385 board
        # (ATmega328P: linked for the 16 KB of an ATmega1284P, the same core under simavr, with
        # the stack at that part's RAMEND 0x40FF)
        fits = False
        big = get_target(target).machines[-1]
        extra = ["-Wl,--defsym=__stack=0x40FF"] if target == "atmega328p" else []
        built = build(target, srcs, work / "reference-build", include_dirs=[pdir, RUNTIME_DIR], opt=opt,
                              name="reference", ram_bytes=big.ram_bytes, flash_bytes=big.flash_bytes,
                              extra_cflags=flags + extra)
    build_s = time.perf_counter() - t0
    tgt = get_target(target)
    soft = check_no_softfloat(built) if tgt.family != "host" else []
    t1 = time.perf_counter()
    res = run(target, built, timeout_s=timeout_s)
    run_s = time.perf_counter() - t1
    losses, preds, checksum, done = [], [], None, False
    for line in res.stdout.splitlines():
        f = line.split()
        if f and f[0] == "F":
            losses.append(int(f[2]) / 65536.0)
            preds.append([int(v) for v in f[3:]])
        elif f and f[0] == "W":
            checksum = int(f[1], 16)
        elif f and f[0] == "END":
            done = True
    if not done or len(losses) != steps:
        raise DeviceRunError(f"{target}: the reference run stopped after {len(losses)} of {steps} steps")
    counts = list(res.counts)
    step_counts = [counts[2 * i] for i in range(steps) if 2 * i < len(counts)]
    return ReferenceReport(target=target, machine=res.machine, count_unit=res.count_unit, steps=steps,
                           step_counts=step_counts, text_bytes=built.text_bytes, data_bytes=built.data_bytes,
                           bss_bytes=built.bss_bytes, softfloat_symbols=list(soft), losses=losses, predictions=preds,
                           checksum=checksum, fits_target_ram=fits, build_seconds=build_s, run_seconds=run_s)
