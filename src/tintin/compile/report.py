"""One call from a model to everything ``tintin plan`` shows: program, plans, cost, flash, fit.

Two reference points for the planned arena:

* ``naive_sram_bytes``: what a straightforward implementation needs: the *unoptimised* program
  (whole int32 weight gradients, no in-place steps, int8 ReLU outputs kept for the backward pass)
  with every buffer in its own space (naive planner);
* ``naive_planner_sram_bytes``: the same program as planned, every buffer in its own space (what
  the lifetime-aware planner alone saves).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .compiler import CompileOptions, compile_program
from .cost import FlashEstimate, LatencyEstimate, ProgramCost, estimate_latency, flash_estimate, phase_summary, program_cost
from .fit import FitOption, FitReport, check_fit, fit_options, summarise_options
from .ir import BufferKind, TrainingProgram
from .planner import MemoryPlan, plan_memory


def unoptimised_options(options: CompileOptions | None = None) -> CompileOptions:
    """``options`` without the compiler's memory work: whole gradients, no in-place steps, no ReLU
    bit masks, every accumulator stored, no patch stage."""
    return replace(options or CompileOptions(), grad_tile_bytes=None, inplace=False, relu_mask=False,
                   accumulator_budget=None, recompute_bytes_per_mac=None, patch_size=None, patch_layers=None)


def recomputed_accumulators(program: TrainingProgram) -> list[dict]:
    """The int32 accumulators the program recomputes instead of storing (see
    :mod:`tintin.compile.compiler`): per step, the bytes it does not store and the MACs it adds
    (whole batch)."""
    out = []
    for s in program.steps:
        if s.attrs.get("accumulator_passes") == 2:
            elements = int(np.prod(program.buffers[s.outputs[0]].shape, dtype=np.int64))
            out.append({"step": s.index, "op": s.op, "layer": s.layer, "bytes_saved": 4 * elements,
                        "extra_macs": s.macs // 2})
    return out


def feedback_plane_bytes(program: TrainingProgram) -> int:
    """Bytes of the packed error-feedback planes of ``program`` (part of its SRAM arena; 0 without
    error feedback)."""
    return sum(b.nbytes for name, b in program.buffers.items()
               if b.kind is BufferKind.OPTIMIZER_STATE and name.endswith(".remainder"))


def patch_stage_summary(program: TrainingProgram) -> dict | None:
    """The patch stage of ``program`` (:mod:`tintin.compile.patch`), or None: its layers, patch
    size, MACs per sample, the MACs of one plain pass of its convolutions and the difference."""
    from .patch import OP

    for s in program.steps:
        if s.op == OP:
            b = program.batch_size
            return {"layers": [spec["layer"] for spec in s.attrs["layers"]], "patch": s.attrs["patch"],
                    "passes": s.attrs["passes"], "macs_per_sample": s.macs / b,
                    "plain_macs_per_sample": s.attrs["plain_macs"] / b,
                    "extra_macs_per_sample": (s.macs - s.attrs["plain_macs"]) / b}
    return None


@dataclass(frozen=True)
class PlanReport:
    program: TrainingProgram
    plan: MemoryPlan
    naive_planner_bytes: int
    naive_bytes: int
    cost: ProgramCost
    flash: FlashEstimate
    latency: LatencyEstimate | None
    fit: FitReport | None
    options: tuple[FitOption, ...]

    def to_dict(self, buffers: bool = True) -> dict:
        prog, plan = self.program, self.plan
        d = {
            "model": prog.model_name, "update": prog.update, "batch_size": prog.batch_size,
            "planner": plan.planner, "peak_sram_bytes": plan.arena_bytes, "naive_sram_bytes": self.naive_bytes,
            "naive_planner_sram_bytes": self.naive_planner_bytes, "lower_bound_sram_bytes": plan.lower_bound_bytes,
            "flash_bytes": self.flash.total, "flash": self.flash.to_dict(),
            "trained_parameters_in_sram": list(plan.trained_parameters),
            "feedback_plane_bytes": feedback_plane_bytes(prog),
            "macs_per_sample": self.cost.macs_per_sample,
            "phases_per_sample": {p: {"macs": m, "traffic_bytes": t} for p, m, t in phase_summary(self.cost)},
            "traffic_bytes_per_sample": self.cost.traffic_bytes / prog.batch_size,
            "steps": len(prog.steps),
        }
        recomputed = recomputed_accumulators(prog)
        d["recomputed_accumulators"] = recomputed
        d["recompute_extra_macs_per_sample"] = sum(r["extra_macs"] for r in recomputed) / prog.batch_size
        d["patch_stage"] = patch_stage_summary(prog)
        if self.latency is not None:
            d["estimate"] = self.latency.to_dict()
        if self.fit is not None:
            d.update(device=self.fit.device, fits=self.fit.fits, sram_margin=self.fit.sram_margin,
                     flash_margin=self.fit.flash_margin, missing_sram=self.fit.missing_sram,
                     missing_flash=self.fit.missing_flash, fit=self.fit.to_dict())
        if self.options:
            d["suggestions"] = summarise_options(list(self.options))
        if buffers:
            d["buffers"] = [{**b.to_dict(), "offset": plan.offsets.get(name, plan.flash_offsets.get(name))}
                            for name, b in prog.buffers.items()]
        return d


def analyze(model, update: str | None = "full", batch_size: int = 1, *, planner: str = "greedy", device=None,
            optim=None, options: CompileOptions | None = None, reserve_sram: int = 0,
            suggest: bool = True) -> PlanReport:
    """Compile, plan (with ``planner`` and both naive reference points), count, and check the fit
    on ``device`` (duck-typed profile; None skips the estimates and the fit). ``suggest`` searches
    other update choices and batch sizes when the program does not fit."""
    options = options or CompileOptions()
    program = compile_program(model, update, batch_size, optim=optim, options=options)
    plan = plan_memory(program, planner)
    naive_planner = plan_memory(program, "naive").arena_bytes
    baseline = compile_program(model, update, batch_size, optim=optim, options=unoptimised_options(options))
    naive = plan_memory(baseline, "naive").arena_bytes
    cost = program_cost(program)
    core = getattr(device, "core", None) if device is not None else None
    flash = flash_estimate(program, plan, core)
    latency = fit = None
    found: tuple[FitOption, ...] = ()
    if device is not None:
        latency = estimate_latency(cost, device)
        fit = check_fit(plan.arena_bytes, flash, device, reserve_sram)
        if suggest and not fit.fits:
            found = tuple(fit_options(model, device, planner=planner, optim=optim, options=options,
                                      reserve_sram=reserve_sram))
    return PlanReport(program, plan, naive_planner, naive, cost, flash, latency, fit, found)
