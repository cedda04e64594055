"""``tintin plan``: compile a training program, plan its memory, check a device, estimate the cost."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import typer

from .app import CliError
from .common import InputExponentOption, LabelColumnOption, SeriesLengthOption, out_console, print_json

#: data set whose sample shape a zoo model is planned for when neither --dataset nor --input-shape
DEFAULT_DATASET = {"mlp": "digits", "lenet5": "mnist5k", "dscnn": "mnist5k", "rescnn": "mnist5k",
                   "cnn1d": "basicmotions"}


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,28,28"`` or ``"1x28x28"`` -> (1, 28, 28)."""
    text = text.strip()
    shape = tuple(int(p) for p in re.split(r"\s*[,x]\s*|\s+", text)) if re.fullmatch(r"\d+(\s*[,x]\s*\d+|\s+\d+)*", text) else ()
    if not shape or min(shape) < 1:
        raise CliError(f"bad --input-shape {text!r}: use positive integers like 1,28,28")
    return shape


def _load_model(spec: str, dataset, input_shape: str | None, classes: int | None, scale_mode: str,
                weight_bits: int, seed: int, data_options: dict | None = None):
    """A model file path, or a zoo model built for a data set's (or the given) sample shape.

    ``dataset``: a loaded :class:`tintin.data.Dataset`, a built-in name or data file (loaded with
    ``data_options``), or ``None`` (the zoo model's default data set)."""
    from ..nn import QuantConfig, UnknownModelError, build_model, model_names
    from ..nn.module import ShapeError

    if os.path.sep in spec or spec.endswith(".safetensors") or Path(spec).is_file():
        if not Path(spec).is_file():
            raise CliError(f"model file {spec} does not exist")
        from .common import load_model_file

        model, _ = load_model_file(spec)
        return model, f"model file {spec}"
    if spec not in model_names():
        raise CliError(f"unknown model {spec!r}: not a file and not a zoo model ({', '.join(model_names())})")
    if input_shape is not None:
        shape, num_classes, exponent, source = parse_shape(input_shape), classes or 10, -7, "--input-shape"
    else:
        from ..data import Dataset
        from .common import load_dataset

        ds = dataset if isinstance(dataset, Dataset) else \
            load_dataset(dataset or DEFAULT_DATASET.get(spec, "digits"), **(data_options or {}))
        name = ds.name
        shape, num_classes, exponent = tuple(ds.sample_shape), classes or ds.num_classes, ds.input_exponent
        source = f"data set {name}"
    try:
        config = QuantConfig(scale_mode=scale_mode, weight_bits=weight_bits)
        model = build_model(spec, shape, num_classes, config=config, seed=seed, input_exponent=exponent)
    except (UnknownModelError, ShapeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return model, f"{source}, input {shape}, {num_classes} classes"


def _load_device(name: str | None):
    if name is None:
        return None
    from ..targets import DeviceProfileError, UnknownDeviceError, load_device

    try:
        return load_device(name)
    except (UnknownDeviceError, DeviceProfileError) as exc:
        raise CliError(str(exc)) from None


def _kib(n: float) -> str:
    return f"{n:,.0f} B ({n / 1024:.1f} KiB)"


def plan_command(
    model_spec: str = typer.Argument(..., metavar="MODEL", help="zoo model name or model file"),
    device: Optional[str] = typer.Option(None, "--device", help="device profile (see `tintin devices`)"),
    update: str = typer.Option("full", "--update", "-u", help="full | bias | none | last:K | sparse:LAYER[a:b],... ('+' unites)"),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="samples per training step"),
    planner: str = typer.Option("greedy", "--planner", help="naive | greedy"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="data set or .csv/.npz/.ts file giving a "
                                          "zoo model's input shape and classes"),
    input_shape: Optional[str] = typer.Option(None, "--input-shape", help="per-sample input shape, e.g. 1,28,28"),
    classes: Optional[int] = typer.Option(None, "--classes", help="number of classes (default: the data set's, or 10)"),
    grad_tile: Optional[int] = typer.Option(1024, "--grad-tile", help="weight-gradient tile budget in bytes (0: whole gradients)"),
    acc_budget: Optional[int] = typer.Option(None, "--acc-budget", help="recompute int32 accumulators above this many bytes"),
    reserve: int = typer.Option(0, "--reserve", help="SRAM bytes to keep free (stack, runtime state)"),
    rule: str = typer.Option("aligned", "--rule", help="update rule: aligned | niti"),
    momentum_shift: int = typer.Option(0, "--momentum-shift", help="integer momentum (adds int64 state per trained weight)"),
    scale_mode: str = typer.Option("compound", "--scale-mode", help="zoo models: compound | pow2"),
    weight_bits: int = typer.Option(8, "--weight-bits", help="zoo models: 8 or 16"),
    seed: int = typer.Option(0, "--seed", help="zoo models: initialisation seed"),
    show_buffers: bool = typer.Option(True, "--buffers/--no-buffers", help="list every buffer"),
    show_schedule: bool = typer.Option(False, "--schedule", help="list every step with its MACs and traffic"),
    suggest: bool = typer.Option(True, "--suggest/--no-suggest", help="search fitting choices when it does not fit"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a PNG of the arena over the schedule"),
    label_column: LabelColumnOption = None,
    input_exponent: InputExponentOption = None,
    series_length: SeriesLengthOption = None,
):
    """Memory plan, device fit and cost estimate of one training step of MODEL."""
    from ..compile import CompileError, CompileOptions, PlanError, UpdateSelectionError
    from ..compile.report import analyze
    from ..optim import OptimConfig

    if batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {batch_size}")
    if reserve < 0:
        raise CliError(f"--reserve must be >= 0, got {reserve}")
    if grad_tile is not None and grad_tile < 0:
        raise CliError(f"--grad-tile must be >= 0, got {grad_tile}")
    profile = _load_device(device)
    model, source = _load_model(model_spec, dataset, input_shape, classes, scale_mode, weight_bits, seed,
                                dict(label_column=label_column, input_exponent=input_exponent,
                                     series_length=series_length))
    try:
        optim = OptimConfig(rule=rule, momentum_shift=momentum_shift)
        options = CompileOptions(grad_tile_bytes=grad_tile or None, accumulator_budget=acc_budget)
        report = analyze(model, update, batch_size, planner=planner, device=profile, optim=optim, options=options,
                         reserve_sram=reserve, suggest=suggest)
    except (UpdateSelectionError, CompileError, PlanError) as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:  # optimiser settings, malformed device fields
        raise CliError(str(exc)) from None
    if plot is not None:
        from ..compile.plot import plot_arena

        try:
            plot_arena(report.program, report.plan, plot)
        except (RuntimeError, OSError) as exc:
            raise CliError(f"cannot write {plot}: {exc}") from None
    if as_json:
        d = report.to_dict(buffers=show_buffers)
        d.setdefault("fits", None)
        d["source"] = source
        if plot is not None:
            d["plot"] = str(plot)
        print_json(d)
        return
    _print_report(report, source, show_buffers, show_schedule, plot)


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
            acc = "stored" if budget is None else "recomputed" if budget == 0 else f"recomputed > {budget} B"
            t.add_row(row["update"], acc, str(row["max_batch_size"] or "-"), f"{row['sram_bytes_at_batch_1']:,}",
                      f"{row['flash_bytes']:,}", f"{row['missing_sram']:,} / {row['missing_flash']:,}")
        console.print(t)
    if plot is not None:
        console.print(f"arena plot: {plot}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
