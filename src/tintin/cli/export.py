"""``tintin export``: the training program of a model as a self-contained C99 project."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .app import on_interrupt
from .common import is_model_file, model_from_spec, out_console, print_json, zoo_name



@opt.with_groups(opt.COMPILATION, opt.OPTIMISER, opt.QUANTISATION, opt.DATA_FILES)
def export_command(
    optimiser: opt.Optimiser, quantisation: opt.Quantisation, compilation: opt.Compilation,
    data_files: opt.DataFiles,
    model_spec: str = typer.Argument(..., metavar="MODEL", help="model file or zoo model name"),
    target: str = opt.target("host"),
    out: Path = opt.out_dir("project directory (created)", required=True),
    dataset: Optional[str] = opt.dataset(required=False, help="zoo models: data set giving the input shape and "
                                         "classes (default per model: mlp -> digits, lenet5 -> mnist5k)"),
    batch_size: int = opt.DEVICE_BATCH_SIZE,
    wide_rule: bool = opt.WIDE_RULE,
    seed: int = opt.SEED,
    as_json: bool = opt.JSON,
    checkpoint: bool = typer.Option(False, "--checkpoint", help="add tt_checkpoint_save / tt_checkpoint_restore: "
                                    "power-loss-safe training state in flash (docs/field.md)"),
):
    """Write the C99 training project of MODEL (sources, runtime, Makefile, README) into --out.

    --target is the Makefile's default TARGET; the arena must fit its RAM."""
    from ..codegen import generate_project
    from ..codegen.model_c import ROLE_NAMES
    from ..targets import check_fit

    opt.check_positive("--batch-size", batch_size)
    tgt = opt.resolve_target(target)
    opt.check_writable_dir(out)
    options = compilation.options()
    model, source = model_from_spec(model_spec, dataset, None, None, quantisation.config(), seed, data_files)
    from .init_model import apply_width_rule
    widened = apply_width_rule(model, compilation.update, wide_rule and is_model_file(model_spec))
    optim = optimiser.config(zoo_name(model_spec), batch_size)
    on_interrupt(f"{out} may hold a partial project")
    project = generate_project(model, out, update=compilation.update, batch_size=batch_size, optim=optim, options=options,
                               target=tgt.name, checkpoint=checkpoint)
    check_fit(project, tgt, model_spec=model_spec)
    on_interrupt(f"the project is complete in {out}")
    files = sorted(str(p.relative_to(project.out_dir)) for p in project.out_dir.rglob("*") if p.is_file()
                   and "build" not in p.relative_to(project.out_dir).parts)
    info = {"out_dir": str(project.out_dir), "model": project.program.model_name, "source": source,
            "target": tgt.name, "update": project.program.update, "batch_size": project.program.batch_size,
            "steps": len(project.program.steps), "arena_bytes": project.plan.arena_bytes,
            "eval_layout": project.model.eval_layout.mode,
            "eval_arena_bytes": project.model.eval_layout.bytes if project.model.eval_layout.mode == "separate" else 0,
            "parameters": [{"name": e.name, "dtype": e.dtype, "count": e.count,
                            "role": ROLE_NAMES[e.role]} for e in project.model.params],
            "runtime_files": list(project.runtime_files), "files": files, "checkpoint": project.checkpoint,
            "int16_master_layers": list(widened)}
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
