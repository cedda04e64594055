"""``tintin train``: integer training on a built-in data set, optionally beside its float32 twin."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .app import CliError, on_interrupt
from .common import err_console, load_dataset, out_console, print_json


def parse_schedule(text: str | None, kind=float) -> tuple:
    """``"10:0.25,20:0.125"`` -> ((10, 0.25), (20, 0.125))."""
    if not text:
        return ()
    out = []
    for part in text.split(","):
        try:
            epoch, value = part.split(":")
            out.append((int(epoch), kind(value)))
        except ValueError:
            raise CliError(f"bad schedule entry {part!r}: use EPOCH:VALUE[,EPOCH:VALUE...]") from None
    return tuple(out)


def update_backend(name: str):
    """``(update_kernel, name used)`` for ``--backend``: the C runtime's update (``c``) or numpy's;
    ``native`` and ``auto`` train in the compiled program (:mod:`tintin.targets.native`, chosen
    in :func:`train_command`: ``auto`` falls back to numpy where that does not work)."""
    if name not in ("auto", "numpy", "c", "native"):
        raise CliError(f"--backend must be auto, native, numpy or c, got {name!r}")
    if name == "numpy":
        return None, "numpy"
    if name in ("native", "auto"):
        if name == "native":
            from ..targets.native import host_compiler

            host_compiler()  # no compiler: one error line
        return None, "native"
    from ..codegen.fast_update import available, c_update_kernel

    ok, why = available()
    if not ok:
        raise CliError(f"the C update backend is not available here: {why}")
    return c_update_kernel(), "c"


def check_output_dir(out: Path, force: bool) -> None:
    """Before training: ``out`` must be a writable directory (or creatable), and must not hold a
    model or history already unless ``force``."""
    opt.check_writable_dir(out)
    existing = [out / n for n in ("model.safetensors", "history.json") if (out / n).exists()]
    if existing and not force:
        raise CliError(f"{existing[0]} already exists: choose another --out, or pass --force to replace it")


def write_history(out: Path, history: dict, title: str):
    """``(history.json, history.png or None, note)``: the per-epoch record and, when matplotlib is
    installed (the ``plot`` extra), a PNG of the curves; without it the note says why there is none."""
    import json as _json

    from ..io.model_file import atomic_write_bytes
    from ..train.plot import PlotUnavailableError, history_png

    history_path = out / "history.json"
    atomic_write_bytes(history_path, _json.dumps(history, indent=1).encode())
    plot_path = out / "history.png"
    try:
        png = history_png(history, title=title)
    except PlotUnavailableError as exc:
        plot_path.unlink(missing_ok=True)  # a plot of an earlier run (--force) would mislead
        return history_path, None, str(exc)
    atomic_write_bytes(plot_path, png)
    return history_path, plot_path, None


CHECKPOINT_NAME = "checkpoint.safetensors"


def _resume_settings(run_dir: Path, dataset: str | None, model: str | None) -> dict:
    """The command-line settings of the interrupted run in ``run_dir`` (stored in its checkpoint)."""
    from ..train.checkpoint import read_training_state

    state_file = run_dir / CHECKPOINT_NAME
    doc, _ = read_training_state(state_file)
    settings = doc["state"].get("info", {}).get("cli")
    if doc["state"].get("kind") != "fit" or not isinstance(settings, dict):
        raise CliError(f"{state_file} was not written by tintin train")
    for given, key in ((dataset, "dataset"), (model, "model")):
        if given is not None and given != settings.get(key):
            raise CliError(f"--{key} {given} differs from the resumed run's {settings.get(key)}")
    return settings


@opt.with_groups(opt.OPTIMISER, opt.QUANTISATION, opt.DATA_FILES)
def train_command(
    optimiser: opt.Optimiser, quantisation: opt.Quantisation, data_files: opt.DataFiles,
    dataset: Optional[str] = opt.dataset(required=False, help="data set name (see `tintin datasets`) or a .csv, .npz "
                                         "or .ts file (docs/own-data.md); required unless --resume"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=opt.zoo_model_help() + " (default: mlp)"),
    hidden: Optional[str] = opt.HIDDEN,
    init: Optional[Path] = typer.Option(None, "--init", help="fine-tune this model file (from `tintin import` or "
                                        "`tintin train`) instead of a new zoo model"),
    update: str = opt.UPDATE,
    wide_rule: bool = opt.WIDE_RULE,
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="training epochs (>= 1; default: the model's)"),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="mini-batch size (1 = online training)"),
    seed: int = opt.SEED,
    compare_float: bool = typer.Option(False, "--compare-float", help="also train the float32 PyTorch twin"),
    out: Optional[Path] = opt.out_dir("output directory: model.safetensors, history.json, history.png "
                                      "(default: runs/DATASET-MODEL-sSEED)"),
    force: bool = typer.Option(False, "--force", "-f", help="replace the model and history already in --out"),
    as_json: bool = opt.JSON,
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="EPOCH:LR,... changes of the learning rate "
                                              "(default: the model's decay steps, scaled to --epochs; with "
                                              "--init the fine-tuning rule: decays from 2 epochs on)"),
    mu_schedule: Optional[str] = typer.Option(None, "--mu-schedule", help="NITI rule: EPOCH:MU,... e.g. 10:3,20:2"),
    upscale_init: bool = typer.Option(True, "--upscale-init/--no-upscale-init", help="initial weight upscaling"),
    wide_layers: Optional[str] = typer.Option(None, "--wide-layers", help="LAYER,...: int16 master weights only for "
                                              "these layers (docs/learning-quality.md)"),
    error_feedback: Optional[str] = opt.ERROR_FEEDBACK,
    feedback_bits: Optional[int] = opt.FEEDBACK_BITS,
    row_scales: bool = typer.Option(False, "--row-scales", help="one power-of-two scale per output row of the "
                                    "int8 weights (docs/learning-quality.md)"),
    stochastic_loss_error: bool = typer.Option(False, "--stochastic-loss-error",
                                               help="round the loss error to int8 stochastically "
                                               "(docs/learning-quality.md)"),
    backend: str = typer.Option("auto", "--backend", help="auto (native when a host C compiler works and the "
                                "model and settings compile, else numpy; the choice is reported) | numpy (the "
                                "simulator) | native (the whole step in C built for this CPU: the same bits, "
                                "faster) | c (only the update in C)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the interrupted run in this directory "
                                          "(its settings come from its checkpoint)"),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="save the training state every N steps "
                                         "(0: only on Ctrl-C)"),
):
    """Train a zoo model, or fine-tune a model file (--init), with integer-only arithmetic on DATASET and save it."""
    from ..nn import build_model
    from ..train import TrainConfig, auto_progress, finetune_lr_schedule, fit

    from ..nn import QuantConfig
    from ..optim import OptimConfig
    from ..train.checkpoint import FitCheckpointer

    opt.check_positive("--checkpoint-every", checkpoint_every, minimum=0)
    resumed, widths = None, None
    if resume is not None:
        resumed = _resume_settings(resume, dataset, model)
        dataset, model, out, force = resumed["dataset"], None, resume, True
        data_files = opt.DataFiles(**resumed.get("data_files", {}))
        update = resumed.get("update", "full")
        wide_rule = bool(resumed.get("wide_rule", False))  # runs from before the rule trained int8 weights
        if resumed.get("init"):
            init = Path(resumed["init"])
        else:
            model = resumed["model"]
            stored = tuple(resumed["hidden"]) if resumed.get("hidden") else None
            if hidden is not None and opt.hidden_widths(hidden, model) != stored:
                raise CliError(f"--hidden {hidden} differs from the resumed run's "
                               f"{','.join(map(str, stored)) if stored else 'default widths'}")
            widths, hidden = stored, None
    elif dataset is None:
        raise opt.OptionError("--dataset is required (or --resume DIR)")
    if init is not None and model is not None:
        raise CliError("--model and --init exclude each other: --init fine-tunes the model file as it is")
    model = model or "mlp"
    if init is not None and hidden is not None:
        raise opt.OptionError("--hidden sets the widths of a new zoo mlp; --init keeps the file's")
    if resumed is None:
        widths = opt.hidden_widths(hidden, model)
    ds = load_dataset(dataset, data_files)
    parent = None
    if init is not None:  # the model file, checked against the data set; --update selects what trains
        from .init_model import load_init_model

        init_net, init_info, parent = load_init_model(init, ds)
        model = re.sub(r"[^\w.-]+", "_", str(init_info.get("model") or init.stem))
    defaults = opt._training_defaults(model)
    epochs = defaults.epochs if epochs is None else epochs
    opt.check_positive("--epochs", epochs)
    opt.check_positive("--batch-size", batch_size)
    out = out or Path("runs") / f"{ds.name}-{model}{'-finetune' if init is not None else ''}-s{seed}"
    check_output_dir(out, force)
    qconf = quantisation.config(upscale_init=upscale_init, wide_layers=opt.layer_names(wide_layers),
                                **({"row_scales": True} if row_scales else {}),
                                **({"loss_error_rounding": "stochastic"} if stochastic_loss_error else {}))
    oconf = optimiser.config(model, batch_size, **opt.feedback_settings(error_feedback, feedback_bits),
                             lr_schedule=parse_schedule(lr_schedule) if lr_schedule
                             else (finetune_lr_schedule if init is not None else defaults.lr_schedule)(
                                 epochs, opt.resolved_lr(optimiser.lr, model, batch_size)),
                             mu_schedule=parse_schedule(mu_schedule, int))
    with opt.config_values():
        tconf = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, optim=oconf)
    if resumed is not None:  # the interrupted run's settings, not this command line's
        try:
            qconf = QuantConfig.from_dict(resumed["quant"])
            t = resumed["train"]
            tconf = TrainConfig(epochs=t["epochs"], batch_size=t["batch_size"], seed=t["seed"],
                                optim=OptimConfig.from_dict(t["optim"]), eval_each_epoch=t["eval_each_epoch"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{resume / CHECKPOINT_NAME}: bad training settings ({exc})") from None
        epochs, batch_size, seed, oconf = tconf.epochs, tconf.batch_size, tconf.seed, tconf.optim
    if compare_float:  # fail before training if the extra is missing
        from ..reference.twin import _torch
        _torch()
    net = init_net if init is not None else \
        build_model(model, ds.sample_shape, ds.num_classes, qconf, seed=seed, input_exponent=ds.input_exponent,
                    **({"hidden": widths} if widths is not None else {}))
    if init is not None and wide_layers:
        raise opt.OptionError("--wide-layers sets the widths of a new zoo model; --init keeps the file's")
    if init is not None and row_scales:
        raise opt.OptionError("--row-scales sets the scales of a new zoo model; --init keeps the file's")
    if init is not None and stochastic_loss_error:
        raise opt.OptionError("--stochastic-loss-error sets the numerics of a new zoo model; --init keeps the file's")
    opt.check_weight_layers(net, wide_layers=qconf.wide_layers, error_feedback=oconf.error_feedback)
    from .init_model import select_update
    selection = select_update(net, update)
    from .init_model import apply_width_rule
    widened = apply_width_rule(net, update, wide_rule and init is not None)  # the fine-tuning width rule
    kernel, backend_used = update_backend(backend)

    on_interrupt(f"nothing was saved; {out} is unchanged")
    float_result = None
    if compare_float:
        from ..reference import train_float
        float_result = train_float(net, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test)
    from dataclasses import asdict

    cli_settings = {"dataset": dataset, "model": model, "quant": qconf.to_dict(), "train": tconf.to_dict(),
                    "data_files": asdict(data_files), "update": update, "wide_rule": wide_rule,
                    "init": str(Path(init).resolve()) if init is not None else None,
                    "hidden": list(widths) if widths is not None else None}
    checkpointer = FitCheckpointer(out / CHECKPOINT_NAME, every=checkpoint_every, resume=resumed is not None,
                                   info={"cli": cli_settings})
    fit_fn, backend_note = fit, f"{backend_used}: --backend {backend}"
    if backend_used == "native":
        from ..targets.native import choose_backend
        fit_fn, backend_used, backend_note = choose_backend(net, tconf, required=backend == "native")
    if not (quiet or as_json):
        err_console.print(f"backend: {backend_note}", markup=False)
    result = fit_fn(net, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test,
                    progress=auto_progress(not (quiet or as_json)), update_kernel=kernel, checkpointer=checkpointer)

    from ..io import save_model
    info = {"dataset": dataset, "model": model, "train": tconf.to_dict(), "test_accuracy": result.test_accuracy,
            "float_test_accuracy": float_result.test_accuracy if float_result else None,
            "synthetic_data": ds.synthetic, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "update": update, "parent": parent}
    if "channel_mean" in ds.extras:  # the mapping a device applies to live inputs: q = (x - mean) / std * 2^5
        info["input_channel_mean"] = ds.extras["channel_mean"].tolist()
        info["input_channel_std"] = ds.extras["channel_std"].tolist()
    on_interrupt(f"training finished but the model may not be saved: {out} may hold the previous files")
    model_path = save_model(net, out / "model.safetensors", info=info)
    on_interrupt(f"the model is saved in {model_path}; its history may be missing")
    history = {"integer": [vars(h) for h in result.history],
               "float": float_result.history if float_result else None}
    history_path, plot_path, plot_note = write_history(out, history, title=f"{model} on {ds.name}")
    on_interrupt(f"the model and its history are saved in {out}")
    schedule = oconf.lr_schedule

    summary = {
        "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size, "seed": seed,
        "lr": oconf.lr, "lr_schedule": [list(e) for e in schedule], "momentum_shift": oconf.momentum_shift,
        "test_accuracy": result.test_accuracy,
        "float_test_accuracy": float_result.test_accuracy if float_result else None,
        "train_seconds": round(result.train_seconds, 3),
        "samples_per_second": round(result.samples_per_second, 1),
        "float_train_seconds": round(float_result.train_seconds, 3) if float_result else None,
        "float_samples_per_second": round(float_result.samples_per_second, 1) if float_result else None,
        "hidden": list(widths) if widths is not None else None,
        "parameters": net.num_parameters(), "model_path": str(model_path), "synthetic_data": ds.synthetic,
        "update_backend": backend_used, "backend_note": backend_note, "resumed": resumed is not None, "history_path": str(history_path),
        "plot_path": str(plot_path) if plot_path else None,
        "update": update, "trained_parameters": selection, "parent": parent,
        "int16_master_layers": list(widened),
    }
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"{model} on {ds.name}{' (SYNTHETIC data)' if ds.synthetic else ''}: "
                        f"{epochs} epochs, batch {batch_size}, seed {seed}")
    table.add_column("training")
    table.add_column("test accuracy", justify="right")
    table.add_column("train time", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_row("integer (tintin)", f"{100 * result.test_accuracy:.2f}%", f"{result.train_seconds:.1f} s",
                  f"{result.samples_per_second:,.0f}")
    if float_result:
        table.add_row("float32 (PyTorch)", f"{100 * float_result.test_accuracy:.2f}%",
                      f"{float_result.train_seconds:.1f} s", f"{float_result.samples_per_second:,.0f}")
    out_console.print(table)
    out_console.print(f"model saved to {model_path}; history in {history_path}")
    if plot_path:
        out_console.print(f"training curves: {plot_path}")
    elif plot_note:
        err_console.print(f"note: {plot_note}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
