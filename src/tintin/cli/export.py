"""``tintin export``: the training program of a model as a self-contained C99 project."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import CliError
from .common import InputExponentOption, LabelColumnOption, SeriesLengthOption, out_console, print_json


def optim_config(lr: float, rule: str, mu: int, rounding: str, momentum_shift: int):
    from ..optim import OptimConfig

    try:
        return OptimConfig(rule=rule, lr=lr, mu=mu, rounding=rounding, momentum_shift=momentum_shift)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def compile_options(grad_tile: Optional[int], acc_budget: Optional[int]):
    from ..compile import CompileError, CompileOptions

    if grad_tile is not None and grad_tile < 0:
        raise CliError(f"--grad-tile must be >= 0, got {grad_tile}")
    try:
        return CompileOptions(grad_tile_bytes=grad_tile or None, accumulator_budget=acc_budget)
    except CompileError as exc:
        raise CliError(str(exc)) from None


def resolve_target(name: str):
    """The :class:`tintin.targets.Target` called ``name`` (one-line error listing the valid ones)."""
    from ..targets import TARGETS, UnknownTargetError, get_target

    try:
        return get_target(name)
    except UnknownTargetError:
        raise CliError(f"unknown target {name!r} (targets: {', '.join(TARGETS)})") from None


def export_command(
    model_spec: str = typer.Argument(..., metavar="MODEL", help="model file or zoo model name"),
    target: str = typer.Option("host", "--target", "-t", help="default build target of the Makefile; also "
                               "checks that the arena fits its RAM (host, cortex-m0, cortex-m3, cortex-m4, "
                               "cortex-m4f, atmega328p)"),
    out: Path = typer.Option(..., "--out", "-o", help="project directory (created)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="zoo models: data set or .csv/.npz/.ts "
                                          "file giving the input shape and classes (default per model: mlp -> "
                                          "digits, lenet5 -> mnist5k)"),
    update: str = typer.Option("full", "--update", "-u", help="full | bias | none | last:K | sparse:LAYER\\[a:b],..."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="samples per training step"),
    lr: float = typer.Option(0.05, "--lr", help="learning rate (aligned rule; an integer scale on the device; "
                             "0.05 suits batch 1, as in `tintin run`)"),
    rule: str = typer.Option("aligned", "--rule", help="update rule: aligned | niti"),
    mu: int = typer.Option(4, "--mu", help="NITI rule: bits of the largest update"),
    rounding: str = typer.Option("stochastic", "--rounding", help="stochastic | pseudo_stochastic | nearest"),
    momentum_shift: int = typer.Option(0, "--momentum-shift", help="integer momentum beta = 1 - 2^-k (0: off)"),
    grad_tile: Optional[int] = typer.Option(1024, "--grad-tile", help="weight-gradient tile budget in bytes (0: whole)"),
    acc_budget: Optional[int] = typer.Option(None, "--acc-budget", help="recompute int32 accumulators above this"),
    scale_mode: str = typer.Option("compound", "--scale-mode", help="zoo models: compound | pow2"),
    weight_bits: int = typer.Option(8, "--weight-bits", help="zoo models: 8 or 16"),
    seed: int = typer.Option(0, "--seed", help="zoo models: initialisation seed"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    label_column: LabelColumnOption = None,
    input_exponent: InputExponentOption = None,
    series_length: SeriesLengthOption = None,
):
    """Write the C99 training project of MODEL (sources, runtime, Makefile, README) into --out."""
    from ..codegen import CodegenError, generate_project
    from ..codegen.ondevice import DoesNotFitError, check_fit
    from ..compile import CompileError, PlanError, UpdateSelectionError
    from .plan import _load_model

    if batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {batch_size}")
    tgt = resolve_target(target)
    model, source = _load_model(model_spec, dataset, None, None, scale_mode, weight_bits, seed,
                                dict(label_column=label_column, input_exponent=input_exponent,
                                     series_length=series_length))
    optim = optim_config(lr, rule, mu, rounding, momentum_shift)
    options = compile_options(grad_tile, acc_budget)
    try:
        project = generate_project(model, out, update=update, batch_size=batch_size, optim=optim, options=options,
                                   target=tgt.name)
        check_fit(project, tgt, model_spec=model_spec)
    except DoesNotFitError as exc:
        raise CliError(str(exc)) from None
    except (UpdateSelectionError, CompileError, PlanError, CodegenError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc}") from None
    files = sorted(str(p.relative_to(project.out_dir)) for p in project.out_dir.rglob("*") if p.is_file()
                   and "build" not in p.relative_to(project.out_dir).parts)
    info = {"out_dir": str(project.out_dir), "model": project.program.model_name, "source": source,
            "target": tgt.name, "update": project.program.update, "batch_size": project.program.batch_size,
            "steps": len(project.program.steps), "arena_bytes": project.plan.arena_bytes,
            "eval_layout": project.model.eval_layout.mode,
            "eval_arena_bytes": project.model.eval_layout.bytes if project.model.eval_layout.mode == "separate" else 0,
            "parameters": [{"name": e.name, "dtype": e.dtype, "count": e.count,
                            "role": ("frozen", "trained", "momentum")[e.role]} for e in project.model.params],
            "runtime_files": list(project.runtime_files), "files": files}
    if as_json:
        print_json(info)
        return
    out_console.print(f"[bold]{info['model']}[/bold] ({source}): update {info['update']}, batch "
                      f"{info['batch_size']}, {info['steps']} program steps")
    out_console.print(f"arena: {info['arena_bytes']:,} bytes (TT_ARENA_BYTES); evaluation: {info['eval_layout']}")
    out_console.print(f"wrote {len(files)} files to {project.out_dir}")
    out_console.print(f"build: make -C {project.out_dir}   (TARGET={tgt.name} by default; `make example` runs on the host)")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
