"""``tintin run``: train on an emulated microcontroller with real quantised data and prove it
bit-exact against the simulator."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .app import CliError, on_interrupt
from .common import (check_dataset_fits_model, err_console, is_model_file, load_dataset, model_from_spec, out_console,
                     print_json, zoo_name)
from ..targets.ondevice import training_order


def _details(exc) -> str:
    return getattr(exc, "details", "") or ""


@opt.with_groups(opt.COMPILATION, opt.OPTIMISER, opt.QUANTISATION, opt.DATA_FILES)
def run_command(
    optimiser: opt.Optimiser, quantisation: opt.Quantisation, compilation: opt.Compilation,
    data_files: opt.DataFiles,
    model_spec: str = typer.Argument(..., metavar="MODEL_OR_ZOO_NAME", help="model file or zoo model name"),
    dataset: str = opt.dataset(required=True),
    target: str = opt.target(None),
    row_scales: bool = typer.Option(False, "--row-scales", help="a zoo model with one power-of-two scale per output "
                                    "row (channel) of its int8 weights (docs/learning-quality.md)"),
    steps: int = typer.Option(100, "--steps", "-n", help="training steps on the device"),
    batch_size: int = opt.DEVICE_BATCH_SIZE,
    wide_rule: bool = opt.WIDE_RULE,
    eval_samples: int = typer.Option(100, "--eval", help="test samples evaluated one by one (batch 1) after training"),
    compare_float: bool = typer.Option(False, "--compare-float", help="also run the float32 reference C on the same "
                                       "core and data (soft float; hard float on cortex-m4f)"),
    as_json: bool = opt.JSON,
    seed: int = opt.SEED,
    opt_flag: str = typer.Option("-O2", "--opt", help="compiler optimisation flag"),
    timeout: float = typer.Option(600.0, "--timeout", help="emulator time limit in seconds"),
    profile: bool = typer.Option(False, "--profile", help="count every program step (per-kernel table)"),
    dump: bool = typer.Option(True, "--dump/--checksums", help="the device prints every final parameter in hex "
                              "(compared byte by byte), or only a checksum per parameter"),
    out: Optional[Path] = opt.out_dir("keep the project and build here (default: a temporary directory)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print tool output on errors"),
    register: bool = typer.Option(False, "--register", help="record the model and the measured count per step in "
                                  "the registry (`tintin registry`; $TINTIN_REGISTRY)"),
    power_cuts: Optional[int] = typer.Option(None, "--power-cuts", help="instead: sweep power cuts over N checkpoint "
                                             "saves (every flash operation cut before, after and torn; docs/field.md)"),
    save_every: int = typer.Option(2, "--save-every", help="with --power-cuts: training steps between saves"),
    cut_stride: Optional[int] = typer.Option(None, "--cut-stride", help="with --power-cuts: cut every K-th flash "
                                             "operation of a save (default 1 on the host, 4 on an emulator)"),
):
    """Train MODEL on an emulated microcontroller and prove it bit-exact against the simulator.

    Builds the training program for TARGET, trains --steps steps on real quantised samples of
    --dataset embedded in flash, evaluates test samples at batch 1, and compares every loss,
    prediction and final weight with the simulator; reports instructions (AVR: cycles) per step,
    memory and, with --compare-float, the float32 reference C on the same core.

    With --power-cuts N: save the training state to a simulated flash every --save-every steps, N
    times, cut power at the flash operations of every save, restore and train on (docs/field.md).

    Exit status: 0 when bit-exact, 2 when not."""
    from ..targets import run_on_target, select_samples
    from .. import targets as targets_api

    opt.check_positive("--steps", steps)
    opt.check_positive("--batch-size", batch_size)
    opt.check_positive("--eval", eval_samples, minimum=0)
    if timeout <= 0:
        raise opt.OptionError(f"--timeout must be positive, got {timeout}")
    tgt = opt.resolve_target(target)
    if power_cuts is not None:
        opt.check_positive("--power-cuts", power_cuts)
        opt.check_positive("--save-every", save_every)
        if cut_stride is not None:
            opt.check_positive("--cut-stride", cut_stride)
        if compare_float or profile or register:
            raise opt.OptionError("--power-cuts cannot be combined with --compare-float, --profile or --register")
    ok, reason = targets_api.toolchain_status(tgt.name)
    if not ok:
        raise CliError(reason if "make toolchains" in reason else f"{reason} (install with `make toolchains`)")
    if out is not None:
        opt.check_writable_dir(out)
    ds = load_dataset(dataset, data_files)
    if row_scales and zoo_name(model_spec) is None:
        raise opt.OptionError("--row-scales sets the scales of a new zoo model; a model file keeps its own")
    model, source = model_from_spec(model_spec, ds, None, None,
                                    quantisation.config(**({"row_scales": True} if row_scales else {})), seed)
    check_dataset_fits_model(model, ds)
    optim = optimiser.config(zoo_name(model_spec), batch_size)
    options = compilation.options()
    update = compilation.update
    from .init_model import apply_width_rule
    widened = apply_width_rule(model, update, wide_rule and is_model_file(model_spec))  # as `train --init`
    order, starts = training_order(len(ds.x_train), steps, batch_size, seed)
    x, y, o = select_samples(ds.x_train, ds.y_train, order, steps, batch_size)
    n_eval = min(eval_samples, len(ds.x_test))
    eval_x, eval_y = ds.x_test[:n_eval], ds.y_test[:n_eval]
    work = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="tintin-run-"))
    on_interrupt(f"the partial project and build are in {work}")
    # progress only on a terminal: in a pipe an error stays one line
    progress = err_console if not as_json and err_console.is_terminal else None
    if progress is not None:
        progress.print(f"building {model.name} for {tgt.name}, {steps} steps of batch {batch_size} on {ds.name} ...")
    report = ref = None
    if power_cuts is not None:
        from .power_cuts import run_power_cut_sweep

        return run_power_cut_sweep(model, ds, tgt, saves=power_cuts, every=save_every, stride=cut_stride,
                                   update=update, batch_size=batch_size, optim=optim, options=options, seed=seed,
                                   work=work, timeout=timeout, opt_flag=opt_flag,
                                   as_json=as_json, source=source)
    try:
        report = run_on_target(model, tgt.name, x_samples=x, y_samples=y, order=o, steps=steps,
                               work_dir=work, batch_size=batch_size, update=update, optim=optim, options=options,
                               seed=seed, eval_x=eval_x, eval_y=eval_y, epoch_starts=starts, opt=opt_flag,
                               timeout_s=timeout, profile=profile, model_spec=model_spec, dump=dump)
        if compare_float:
            from ..targets.float_reference import run_reference_on_target

            if progress is not None:
                progress.print("running the float32 reference ...")
            ref = run_reference_on_target(model, tgt.name, x_samples=x, y_samples=y, order=o, steps=steps,
                                          work_dir=work, batch_size=batch_size, update=update, optim=optim,
                                          opt=opt_flag, timeout_s=timeout)
    except targets_api.TargetError as exc:
        if not _details(exc):
            raise
        if verbose:
            sys.stderr.write(_details(exc) + "\n")
            raise
        raise CliError(f"{exc} (--verbose shows the tool output)", code=exc.exit_code) from None
    result = _result(report, ref, tgt, source, dataset, work if out is not None else None)
    result["int16_master_layers"] = list(widened)
    if register:
        from .registry import register_run

        result["registered"] = register_run(model, model_spec, result)
    if as_json:
        print_json(result)
    else:
        _print(result, report, ref)
    if not report.bit_exact:
        raise CliError(f"{tgt.name}: not bit-exact: {report.mismatches[0] if report.mismatches else '?'}", code=2)


def _result(report, ref, tgt, source: str, dataset: str, kept) -> dict:
    unit = "cycles" if report.count_unit == "cycles" else "instructions"
    per = report.per_step
    d = {
        "bit_exact": report.bit_exact,
        "mismatches": report.mismatches,
        "target": tgt.name,
        "machine": report.machine,
        "machine_description": report.machine_description,
        "count_unit": report.count_unit,
        "model": report.model,
        "source": source,
        "dataset": dataset,
        "update": report.update,
        "batch_size": report.batch_size,
        "steps": report.steps,
        f"{unit}_per_step": per,
        f"{unit}_first_step": report.step_counts[0] if report.step_counts else None,
        f"{unit}_per_prediction": (sum(report.eval_counts) / len(report.eval_counts)) if report.eval_counts else None,
        "macs_per_step": report.macs_per_step,
        "arena_bytes": report.arena_bytes,
        "planned_arena_bytes": report.planned_arena_bytes,
        "eval_arena_bytes": report.eval_arena_bytes,
        "text_bytes": report.text_bytes,
        "data_bytes": report.data_bytes,
        "bss_bytes": report.bss_bytes,
        "stack_used_bytes": report.stack_used_bytes,
        "softfloat_symbols": report.softfloat_symbols,
        "eval_samples": report.eval_samples,
        "device_eval_accuracy": report.device_eval_accuracy,
        "simulator_eval_accuracy": report.simulator_eval_accuracy,
        "first_loss": report.losses[0] if report.losses else None,
        "last_loss": report.losses[-1] if report.losses else None,
        "build_seconds": report.build_seconds,
        "run_seconds": report.run_seconds,
        f"float_{unit}_per_step": ref.per_step if ref is not None else None,
    }
    if unit == "cycles":
        d.setdefault("instructions_per_step", None)
        d.setdefault("float_instructions_per_step", None)
    else:
        d.setdefault("cycles_per_step", None)
        d.setdefault("float_cycles_per_step", None)
    if ref is not None:
        d["float_machine"] = ref.machine
        d["float_text_bytes"], d["float_data_bytes"], d["float_bss_bytes"] = ref.text_bytes, ref.data_bytes, ref.bss_bytes
        d["float_fits_target_ram"] = ref.fits_target_ram
        d["float_softfloat_symbols"] = len(ref.softfloat_symbols)
        d["float_over_integer"] = (ref.per_step / per) if (per and ref.per_step) else None
    if report.profile is not None:
        d["profile"] = report.profile
    if kept is not None:
        d["out_dir"] = str(kept)
    return d


def _print(result: dict, report, ref) -> None:
    from rich.table import Table

    unit = "cycles" if report.count_unit == "cycles" else "instructions"
    verdict = "[green]bit-exact[/green]" if report.bit_exact else "[red]NOT bit-exact[/red]"
    out_console.print(f"[bold]{result['model']}[/bold] on {result['machine_description']}: {result['steps']} steps of "
                      f"batch {result['batch_size']}, update {result['update']}: {verdict} against the simulator")
    for m in report.mismatches[:5]:
        out_console.print(f"  {m}")
    t = Table(show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    if result[f"{unit}_per_step"] is not None:
        t.add_row(f"{unit} per training step", f"{result[f'{unit}_per_step']:,.0f}")
        t.add_row("MACs per step", f"{result['macs_per_step']:,}")
        if result[f"{unit}_per_prediction"] is not None:
            t.add_row(f"{unit} per prediction (batch 1)", f"{result[f'{unit}_per_prediction']:,.0f}")
    if ref is not None and ref.per_step is not None:
        t.add_row(f"float32 reference, {unit} per step", f"{ref.per_step:,.0f}")
        t.add_row("float / integer", f"{result['float_over_integer']:.2f}x")
    t.add_row("arena (ELF symbol / planned)", f"{result['arena_bytes']:,} / {result['planned_arena_bytes']:,} B")
    t.add_row("text / data / bss", f"{result['text_bytes']:,} / {result['data_bytes']:,} / {result['bss_bytes']:,} B")
    if result["stack_used_bytes"] is not None:
        t.add_row("stack used", f"{result['stack_used_bytes']:,} B")
    if result["device_eval_accuracy"] is not None:
        t.add_row(f"accuracy on {result['eval_samples']} test samples (device / simulator)",
                  f"{result['device_eval_accuracy']:.3f} / {result['simulator_eval_accuracy']:.3f}")
    t.add_row("soft-float helpers in the integer ELF", str(len(result["softfloat_symbols"])))
    out_console.print(t)
    if report.profile is not None:
        p = Table(title="last training step, per program step")
        for col in ("step", "phase", "op", "layer", "MACs", unit, "per MAC"):
            p.add_column(col, justify="right" if col in ("step", "MACs", unit, "per MAC") else "left")
        for s in report.profile["steps"]:
            per_mac = f"{s['count'] / s['macs']:.2f}" if s["macs"] else ""
            p.add_row(str(s["index"]), s["phase"], s["op"], s["layer"] or "", f"{s['macs']:,}", f"{s['count']:,}", per_mac)
        out_console.print(p)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
