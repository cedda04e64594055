"""``tintin run``: train on an emulated microcontroller with real quantised data and prove it
bit-exact against the simulator."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from .app import CliError
from .common import check_dataset_fits_model, err_console, load_dataset, out_console, print_json
from .export import compile_options, optim_config, resolve_target


def training_order(n: int, steps: int, batch_size: int, seed: int):
    """``(order, epoch_starts)``: the trainer's seeded permutation per epoch
    (``tintin.train.loop.epoch_order``), concatenated until ``steps`` full batches are covered, and
    the step at which each epoch after the first starts."""
    import numpy as np

    from ..train.loop import epoch_order

    need = steps * batch_size
    epochs = max(1, -(-need // n))
    order = np.concatenate(list(epoch_order(n, epochs, seed)))[:need]
    starts = {}
    for e in range(1, epochs):
        step = (e * n) // batch_size
        if step < steps:
            starts[step] = e
    return order, starts


def _details(exc) -> str:
    return getattr(exc, "details", "") or ""


def run_command(
    model_spec: str = typer.Argument(..., metavar="MODEL_OR_ZOO_NAME", help="model file or zoo model name"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="data set (see `tintin datasets`)"),
    target: str = typer.Option(..., "--target", "-t", help="host | cortex-m0 | cortex-m3 | cortex-m4 | cortex-m4f | "
                               "atmega328p"),
    steps: int = typer.Option(100, "--steps", "-n", help="training steps on the device"),
    update: str = typer.Option("full", "--update", "-u", help="full | bias | last:K | sparse:LAYER\\[a:b],..."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="samples per training step"),
    eval_samples: int = typer.Option(100, "--eval", help="test samples evaluated one by one (batch 1) after training"),
    compare_float: bool = typer.Option(False, "--compare-float", help="also run the float32 reference C on the same "
                                       "core and data (soft float; hard float on cortex-m4f)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    lr: float = typer.Option(0.05, "--lr", help="learning rate (aligned rule; 0.05 suits batch 1)"),
    rule: str = typer.Option("aligned", "--rule", help="update rule: aligned | niti"),
    mu: int = typer.Option(4, "--mu", help="NITI rule: bits of the largest update"),
    rounding: str = typer.Option("stochastic", "--rounding", help="stochastic | pseudo_stochastic | nearest"),
    momentum_shift: int = typer.Option(0, "--momentum-shift", help="integer momentum beta = 1 - 2^-k (0: off)"),
    grad_tile: Optional[int] = typer.Option(1024, "--grad-tile", help="weight-gradient tile budget in bytes (0: whole)"),
    acc_budget: Optional[int] = typer.Option(None, "--acc-budget", help="recompute int32 accumulators above this"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of initial weights (zoo), data order and rounding"),
    scale_mode: str = typer.Option("compound", "--scale-mode", help="zoo models: compound | pow2"),
    weight_bits: int = typer.Option(8, "--weight-bits", help="zoo models: 8 or 16"),
    opt: str = typer.Option("-O2", "--opt", help="compiler optimisation flag"),
    timeout: float = typer.Option(600.0, "--timeout", help="emulator time limit in seconds"),
    profile: bool = typer.Option(False, "--profile", help="count every program step (per-kernel table)"),
    dump: bool = typer.Option(True, "--dump/--checksums", help="the device prints every final parameter in hex "
                              "(compared byte by byte), or only a checksum per parameter"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="keep the project and build here"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print tool output on errors"),
    register: bool = typer.Option(False, "--register", help="record the model and the measured count per step in "
                                  "the registry (`tintin registry`; $TINTIN_REGISTRY)"),
):
    """Train MODEL on an emulated microcontroller and prove it bit-exact against the simulator.

    Builds the training program for TARGET, trains --steps steps on real quantised samples of
    --dataset embedded in flash, evaluates test samples at batch 1, and compares every loss,
    prediction and final weight with the simulator; reports instructions (AVR: cycles) per step,
    memory and, with --compare-float, the float32 reference C on the same core."""
    from ..codegen import CodegenError
    from ..codegen.ondevice import DoesNotFitError, run_on_target, select_samples
    from ..compile import CompileError, PlanError, UpdateSelectionError
    from .. import targets as targets_api
    from .plan import _load_model

    if steps < 1:
        raise CliError(f"--steps must be at least 1, got {steps}")
    if batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {batch_size}")
    if eval_samples < 0:
        raise CliError(f"--eval must be >= 0, got {eval_samples}")
    if timeout <= 0:
        raise CliError(f"--timeout must be positive, got {timeout}")
    tgt = resolve_target(target)
    ok, reason = targets_api.toolchain_status(tgt.name)
    if not ok:
        raise CliError(reason if "make toolchains" in reason else f"{reason} (install with `make toolchains`)")
    ds = load_dataset(dataset)
    model, source = _load_model(model_spec, dataset, None, None, scale_mode, weight_bits, seed)
    check_dataset_fits_model(model, ds)
    optim = optim_config(lr, rule, mu, rounding, momentum_shift)
    options = compile_options(grad_tile, acc_budget)
    order, starts = training_order(len(ds.x_train), steps, batch_size, seed)
    x, y, o = select_samples(ds.x_train, ds.y_train, order, steps, batch_size)
    n_eval = min(eval_samples, len(ds.x_test))
    eval_x, eval_y = ds.x_test[:n_eval], ds.y_test[:n_eval]
    work = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="tintin-run-"))
    # progress only on a terminal: in a pipe an error stays one line
    progress = err_console if not as_json and err_console.is_terminal else None
    if progress is not None:
        progress.print(f"building {model.name} for {tgt.name}, {steps} steps of batch {batch_size} on {dataset} ...")
    report = ref = None
    try:
        report = run_on_target(model, targets_api, tgt.name, x_samples=x, y_samples=y, order=o, steps=steps,
                               work_dir=work, batch_size=batch_size, update=update, optim=optim, options=options,
                               seed=seed, eval_x=eval_x, eval_y=eval_y, epoch_starts=starts, opt=opt,
                               timeout_s=timeout, profile=profile, model_spec=model_spec, dump=dump)
        if compare_float:
            from ..codegen.float_ref import run_reference_on_target

            if progress is not None:
                progress.print("running the float32 reference ...")
            ref = run_reference_on_target(model, targets_api, tgt.name, x_samples=x, y_samples=y, order=o, steps=steps,
                                          work_dir=work, batch_size=batch_size, update=update, optim=optim, opt=opt,
                                          timeout_s=timeout)
    except DoesNotFitError as exc:
        raise CliError(str(exc)) from None
    except (UpdateSelectionError, CompileError, PlanError, CodegenError) as exc:
        raise CliError(str(exc)) from None
    except targets_api.TargetError as exc:
        if verbose and _details(exc):
            sys.stderr.write(_details(exc) + "\n")
        hint = "" if verbose else " (--verbose shows the tool output)"
        raise CliError(f"{exc}{hint}") from None
    result = _result(report, ref, tgt, source, dataset, work if out is not None else None)
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
