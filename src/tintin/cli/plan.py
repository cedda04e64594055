"""``tintin plan``: compile a training program, plan its memory, check a device, estimate the cost."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .app import CliError
from .common import model_from_spec, out_console, print_json, zoo_name

def _kib(n: float) -> str:
    return f"{n:,.0f} B ({n / 1024:.1f} KiB)"


#: exit status of ``tintin plan --device D`` when the training program does not fit D
DOES_NOT_FIT = 3


@opt.with_groups(opt.COMPILATION, opt.OPTIMISER, opt.QUANTISATION, opt.DATA_FILES)
def plan_command(
    optimiser: opt.Optimiser, quantisation: opt.Quantisation, compilation: opt.Compilation,
    data_files: opt.DataFiles,
    model_spec: str = typer.Argument(..., metavar="MODEL", help="zoo model name or model file"),
    device: Optional[str] = opt.DEVICE,
    batch_size: int = opt.DEVICE_BATCH_SIZE,
    planner: str = opt.PLANNER,
    dataset: Optional[str] = opt.dataset(required=False, help="zoo models: data set giving the input shape and "
                                         "classes (default per model: mlp -> digits, lenet5 -> mnist5k)"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="per-sample input shape, e.g. 1,28,28"),
    classes: Optional[int] = typer.Option(None, "--classes", help="number of classes (default: the data set's, or 10)"),
    hidden: Optional[str] = opt.HIDDEN,
    reserve: int = typer.Option(0, "--reserve", help="SRAM bytes to keep free (stack, runtime state)"),
    seed: int = opt.SEED,
    show_buffers: bool = typer.Option(True, "--buffers/--no-buffers", help="list every buffer"),
    show_schedule: bool = typer.Option(False, "--schedule", help="list every step with its MACs and traffic"),
    suggest: bool = typer.Option(True, "--suggest/--no-suggest", help="search fitting choices when it does not fit"),
    as_json: bool = opt.JSON,
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a PNG of the arena over the schedule"),
    patch: Optional[int] = typer.Option(None, "--patch", help="compute the frozen first convolution stage P x P "
                                        "output positions at a time (its maps never exist in full; more MACs)"),
    patch_layers: Optional[int] = typer.Option(None, "--patch-layers", help="at most this many layers in the "
                                               "--patch stage (default: the longest frozen stage)"),
    error_feedback: Optional[str] = opt.ERROR_FEEDBACK,
    feedback_bits: Optional[int] = opt.FEEDBACK_BITS,
):
    """Memory plan, device fit and cost estimate of one training step of MODEL.

    Exit status: 0 when the program fits --device (or no device is given), 3 when it does not
    (the report, or the JSON object, is printed first)."""
    from ..compile.report import analyze

    opt.check_positive("--batch-size", batch_size)
    opt.check_positive("--reserve", reserve, minimum=0)
    profile = opt.resolve_device(device)
    options = compilation.options()
    if patch is not None or patch_layers is not None:
        from dataclasses import replace

        if patch is None:
            raise opt.OptionError("--patch-layers needs --patch P")
        opt.check_positive("--patch", patch)
        if patch_layers is not None:
            opt.check_positive("--patch-layers", patch_layers)
        options = replace(options, patch_size=patch, patch_layers=patch_layers)
    model, source = model_from_spec(model_spec, dataset, input_shape, classes, quantisation.config(), seed,
                                    data_files, hidden=opt.hidden_widths(hidden, zoo_name(model_spec)))
    feedback = opt.feedback_settings(error_feedback, feedback_bits)
    optim = optimiser.config(zoo_name(model_spec), batch_size, **feedback)
    opt.check_weight_layers(model, error_feedback=feedback.get("error_feedback", ()))
    with opt.config_values():  # malformed device fields
        report = analyze(model, compilation.update, batch_size, planner=planner, device=profile, optim=optim,
                         options=options, reserve_sram=reserve, suggest=suggest)
    if plot is not None:
        from ..compile.plot import plot_arena

        try:
            plot_arena(report.program, report.plan, plot)
        except RuntimeError as exc:  # matplotlib missing
            raise CliError(f"cannot write {plot}: {exc}") from None
    if as_json:
        d = report.to_dict(buffers=show_buffers)
        d.setdefault("fits", None)
        d["source"] = source
        if plot is not None:
            d["plot"] = str(plot)
        print_json(d)
    else:
        _print_report(report, source, show_buffers, show_schedule, plot)
    if report.fit is not None and not report.fit.fits:
        raise CliError(f"{report.program.model_name} does not fit {report.fit.device} "
                       f"(SRAM margin {report.fit.sram_margin:,} B, flash margin {report.fit.flash_margin:,} B)",
                       code=DOES_NOT_FIT)


def _print_report(report, source: str, show_buffers: bool, show_schedule: bool, plot) -> None:
    from rich.console import Console
    from rich.table import Table

    # piped output: wide enough for the buffer table instead of rich's 80-column default
    console = out_console if out_console.is_terminal else Console(width=140)

    prog, plan = report.program, report.plan
    console.print(f"[bold]{prog.model_name}[/bold] ({source}): update [bold]{prog.update}[/bold], batch "
                      f"{prog.batch_size}, {len(prog.steps)} steps, planner {plan.planner}")
    if show_buffers:
        t = Table(title="buffers", show_lines=False)
        for col in ("buffer", "kind", "type", "bytes", "memory", "offset", "steps", "shares storage of"):
            t.add_column(col, justify="right" if col in ("bytes", "offset") else "left", overflow="fold")
        for name, b in prog.buffers.items():
            first, last = prog.lifetime(name)
            offset = plan.offsets.get(name, plan.flash_offsets.get(name))
            t.add_row(name, b.kind.value, f"{b.dtype}[{'x'.join(map(str, b.shape))}]", f"{b.nbytes:,}",
                      b.memory.value, f"{offset:,}", "always" if b.persistent else f"{first}-{last}", b.alias_of or "")
        console.print(t)
    if show_schedule:
        t = Table(title="schedule (whole batch)")
        for col in ("step", "phase", "op", "layer", "reads", "writes", "MACs", "traffic B"):
            t.add_column(col, justify="right" if col in ("step", "MACs", "traffic B") else "left", overflow="fold")
        for step, c in zip(prog.steps, report.cost.steps):
            t.add_row(str(step.index), step.phase.value, step.op, step.layer or "", ", ".join(step.inputs),
                      ", ".join(step.outputs + step.mutates), f"{c.macs:,}", f"{c.bytes_read + c.bytes_written:,}")
        console.print(t)
    s = Table(title="memory and cost", show_header=False)
    s.add_column("what")
    s.add_column("value", justify="right")
    s.add_row("peak SRAM (planned arena)", _kib(plan.arena_bytes))
    s.add_row("naive: whole gradients, no reuse", _kib(report.naive_bytes)
              + f"  x{plan.arena_bytes / max(report.naive_bytes, 1):.2f}")
    s.add_row("same program, naive planner", _kib(report.naive_planner_bytes))
    s.add_row("lower bound (largest live sum)", _kib(plan.lower_bound_bytes))
    trained = sum(prog.buffers[n].nbytes for n in plan.trained_parameters)
    names = ", ".join(plan.trained_parameters) if len(plan.trained_parameters) <= 6 else \
        f"{len(plan.trained_parameters)} tensors"
    s.add_row("trained parameters in SRAM", f"{names}: {trained:,} B" if names else "none")
    f = report.flash
    s.add_row("flash", _kib(f.total))
    s.add_row("  frozen / trained initial / tables", f"{f.frozen_parameters:,} / {f.trained_initial_values:,} / {f.tables:,} B")
    s.add_row("  code (estimate)", f"{f.code_estimate:,} B")
    s.add_row("MACs per sample", f"{report.cost.macs_per_sample:,.0f}")
    from ..compile.report import recomputed_accumulators

    from ..compile.report import patch_stage_summary

    stage = patch_stage_summary(prog)
    if stage:
        s.add_row(f"  patch stage ({stage['patch']}x{stage['patch']})",
                  f"{', '.join(stage['layers'])}: +{stage['extra_macs_per_sample']:,.0f} MACs")
    recomputed = recomputed_accumulators(prog)
    if recomputed:
        s.add_row("  recomputed accumulators", ", ".join(f"{r['layer']} {r['bytes_saved']:,} B" for r in recomputed)
                  + f": +{sum(r['extra_macs'] for r in recomputed) / prog.batch_size:,.0f} MACs")
    from ..compile.cost import phase_summary

    for phase, macs, traffic in phase_summary(report.cost):
        s.add_row(f"  {phase}", f"{macs:,} MACs, {traffic:,} B traffic")
    if report.latency is not None:
        lat = report.latency
        s.add_row("latency per sample (estimate)", f"{lat.seconds_per_sample * 1e3:,.2f} ms "
                                                  f"({lat.cycles_per_sample:,.0f} cycles, CPI {lat.cpi:.2f})")
        if lat.energy_j_per_sample is not None:
            s.add_row("energy per sample (estimate)", f"{lat.energy_j_per_sample * 1e3:,.3f} mJ")
    if report.fit is not None:
        fit = report.fit
        verdict = "[green]yes[/green]" if fit.fits else "[red]no[/red]"
        s.add_row(f"fits {fit.device}", verdict)
        s.add_row("  SRAM margin", f"{fit.sram_margin:,} B of {fit.sram_capacity:,}")
        s.add_row("  flash margin", f"{fit.flash_margin:,} B of {fit.flash_capacity:,}")
    console.print(s)
    if report.options:
        from ..compile.fit import summarise_options

        t = Table(title="what would fit")
        for col in ("update", "accumulators", "largest batch", "SRAM at batch 1", "flash", "missing SRAM / flash"):
            t.add_column(col)
        for row in summarise_options(list(report.options)):
            budget = row["accumulator_budget"]
            acc = "default rule" if budget is None else "recomputed" if budget == 0 else f"recomputed > {budget} B"
            t.add_row(row["update"], acc, str(row["max_batch_size"] or "-"), f"{row['sram_bytes_at_batch_1']:,}",
                      f"{row['flash_bytes']:,}", f"{row['missing_sram']:,} / {row['missing_flash']:,}")
        console.print(t)
    if plot is not None:
        console.print(f"arena plot: {plot}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
