"""``tintin train``: integer training on a built-in data set, optionally beside its float32 twin."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .app import CliError
from .common import load_dataset, out_console, print_json


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
    """``(update_kernel, name used)`` for ``--backend``: the C runtime's update or numpy's."""
    if name not in ("auto", "numpy", "c"):
        raise CliError(f"--backend must be auto, numpy or c, got {name!r}")
    if name == "numpy":
        return None, "numpy"
    from ..codegen.fast_update import available, c_update_kernel

    ok, why = available()
    if not ok:
        if name == "c":
            raise CliError(f"the C update backend is not available here: {why}")
        return None, "numpy"
    return c_update_kernel(), "c"


def _resume_settings(run_dir: Path, dataset: str | None, model: str | None):
    """``(state file, settings)`` of an interrupted run in ``run_dir`` (its command line settings)."""
    from ..train.checkpoint import read_training_state

    state_file = run_dir / CHECKPOINT_NAME
    doc, _ = read_training_state(state_file)
    settings = doc["state"].get("info", {}).get("cli")
    if doc["state"].get("kind") != "fit" or not isinstance(settings, dict):
        raise CliError(f"{state_file} was not written by tintin train")
    for given, key in ((dataset, "dataset"), (model, "model")):
        if given is not None and given != settings.get(key):
            raise CliError(f"--{key} {given} differs from the resumed run's {settings.get(key)}")
    return state_file, settings


CHECKPOINT_NAME = "checkpoint.safetensors"


def train_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="data set name (see `tintin datasets`)"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="zoo model name (default: mlp)"),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="training epochs (>= 1; default: the model's)"),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="mini-batch size (1 = online training)"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of initial weights, data order and stochastic rounding"),
    compare_float: bool = typer.Option(False, "--compare-float", help="also train the float32 PyTorch twin"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output directory (model.safetensors, history.json)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    lr: Optional[float] = typer.Option(None, "--lr", help="learning rate (aligned rule), stored as an integer scale "
                                       "(default: the model's, e.g. mlp 0.5, lenet5 0.1)"),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="EPOCH:LR,... changes of the learning rate "
                                              "(default: the model's decay steps, scaled to --epochs)"),
    rule: str = typer.Option("aligned", "--rule", help="update rule: aligned | niti"),
    mu: int = typer.Option(4, "--mu", help="NITI rule: bits of the largest update"),
    mu_schedule: Optional[str] = typer.Option(None, "--mu-schedule", help="NITI rule: EPOCH:MU,... e.g. 10:3,20:2"),
    scale_mode: str = typer.Option("compound", "--scale-mode", help="compound (2^S u^U d^D) | pow2"),
    weight_bits: int = typer.Option(8, "--weight-bits", help="8 or 16 (int16 master weights)"),
    upscale_init: bool = typer.Option(True, "--upscale-init/--no-upscale-init", help="initial weight upscaling"),
    rounding: str = typer.Option("stochastic", "--rounding", help="update rounding: stochastic | pseudo_stochastic | nearest"),
    momentum_shift: Optional[int] = typer.Option(None, "--momentum-shift",
                                                 help="integer momentum beta = 1 - 2^-k (0: off; default: the model's)"),
    backend: str = typer.Option("numpy", "--backend", help="weight-update backend: numpy | c (the C "
                                "runtime's update through ctypes: the same bits) | auto (c when a C compiler works)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the interrupted run in this directory "
                                          "(its settings come from its checkpoint)"),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="save the training state every N steps "
                                         "(0: only on Ctrl-C)"),
):
    """Train a zoo model with integer-only arithmetic on DATASET and save it."""
    from ..nn import QuantConfig, UnknownModelError, build_model
    from ..nn.module import ShapeError
    from ..numerics import AccumulatorBoundError
    from ..optim import OptimConfig
    from ..train import TrainConfig, auto_progress, fit

    from ..nn import training_defaults
    from ..train.checkpoint import FitCheckpointer

    if checkpoint_every < 0:
        raise CliError(f"--checkpoint-every must be >= 0, got {checkpoint_every}")
    resumed = None
    if resume is not None:
        _, resumed = _resume_settings(resume, dataset, model)
        dataset, model, out = resumed["dataset"], resumed["model"], resume
    elif dataset is None:
        raise CliError("--dataset is required (or --resume DIR)")
    model = model or "mlp"
    try:
        defaults = training_defaults(model)
    except UnknownModelError as exc:
        raise CliError(str(exc)) from None
    epochs = defaults.epochs if epochs is None else epochs
    if epochs < 1:
        raise CliError(f"--epochs must be at least 1, got {epochs}")
    schedule = parse_schedule(lr_schedule) if lr_schedule else defaults.lr_schedule(epochs, lr)
    lr = defaults.lr if lr is None else lr
    momentum_shift = defaults.momentum_shift if momentum_shift is None else momentum_shift
    if batch_size < 1:
        raise CliError(f"--batch-size must be at least 1, got {batch_size}")
    try:
        qconf = QuantConfig(scale_mode=scale_mode, weight_bits=weight_bits, upscale_init=upscale_init)
        oconf = OptimConfig(rule=rule, lr=lr, lr_schedule=schedule, mu=mu,
                            mu_schedule=parse_schedule(mu_schedule, int), rounding=rounding,
                            momentum_shift=momentum_shift)
        tconf = TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, optim=oconf)
        if resumed is not None:  # the interrupted run's settings
            qconf = QuantConfig.from_dict(resumed["quant"])
            t = resumed["train"]
            tconf = TrainConfig(epochs=t["epochs"], batch_size=t["batch_size"], seed=t["seed"],
                                optim=OptimConfig.from_dict(t["optim"]), eval_each_epoch=t["eval_each_epoch"])
            epochs, batch_size, seed, oconf = tconf.epochs, tconf.batch_size, tconf.seed, tconf.optim
            lr, schedule, momentum_shift = oconf.lr, oconf.lr_schedule, oconf.momentum_shift
    except (ValueError, KeyError, TypeError) as exc:
        raise CliError(f"bad training settings: {exc}") from None
    if compare_float:  # fail before training if the extra is missing
        from ..reference.twin import _torch
        from ..reference import MissingExtraError
        try:
            _torch()
        except MissingExtraError as exc:
            raise CliError(str(exc)) from None
    ds = load_dataset(dataset)
    try:
        net = build_model(model, ds.sample_shape, ds.num_classes, qconf, seed=seed, input_exponent=ds.input_exponent)
    except (UnknownModelError, ShapeError, AccumulatorBoundError) as exc:
        raise CliError(str(exc)) from None

    float_result = None
    if compare_float:
        from ..reference import train_float
        float_result = train_float(net, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test)
    kernel, backend_used = update_backend(backend)
    out = out or Path("runs") / f"{dataset}-{model}-s{seed}"
    cli_settings = {"dataset": dataset, "model": model, "quant": qconf.to_dict(), "train": tconf.to_dict()}
    checkpointer = FitCheckpointer(out / CHECKPOINT_NAME, every=checkpoint_every, resume=resumed is not None,
                                   info={"cli": cli_settings})
    try:
        result = fit(net, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test,
                     progress=auto_progress(not (quiet or as_json)), update_kernel=kernel, checkpointer=checkpointer)
    except AccumulatorBoundError as exc:
        raise CliError(str(exc)) from None

    from ..io import save_model
    info = {"dataset": dataset, "model": model, "train": tconf.to_dict(), "test_accuracy": result.final_test_accuracy,
            "float_test_accuracy": float_result.test_accuracy if float_result else None,
            "synthetic_data": ds.synthetic, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    model_path = save_model(net, out / "model.safetensors", info=info)
    import json as _json
    from ..io.model_file import atomic_write_bytes
    history = {"integer": [vars(h) for h in result.history],
               "float": float_result.history if float_result else None}
    atomic_write_bytes(out / "history.json", _json.dumps(history, indent=1).encode())

    summary = {
        "dataset": dataset, "model": model, "epochs": epochs, "batch_size": batch_size, "seed": seed,
        "lr": lr, "lr_schedule": [list(e) for e in schedule], "momentum_shift": momentum_shift,
        "test_accuracy": result.final_test_accuracy,
        "float_test_accuracy": float_result.test_accuracy if float_result else None,
        "train_seconds": round(result.train_seconds, 3),
        "samples_per_second": round(result.samples_per_second, 1),
        "float_train_seconds": round(float_result.train_seconds, 3) if float_result else None,
        "float_samples_per_second": round(float_result.samples_per_second, 1) if float_result else None,
        "parameters": net.num_parameters(), "model_path": str(model_path), "synthetic_data": ds.synthetic,
        "update_backend": backend_used, "resumed": resumed is not None,
    }
    if as_json:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"{model} on {dataset}{' (SYNTHETIC data)' if ds.synthetic else ''}: "
                        f"{epochs} epochs, batch {batch_size}, seed {seed}")
    table.add_column("training")
    table.add_column("test accuracy", justify="right")
    table.add_column("train time", justify="right")
    table.add_column("samples/s", justify="right")
    table.add_row("integer (tintin)", f"{100 * result.final_test_accuracy:.2f}%", f"{result.train_seconds:.1f} s",
                  f"{result.samples_per_second:,.0f}")
    if float_result:
        table.add_row("float32 (PyTorch)", f"{100 * float_result.test_accuracy:.2f}%",
                      f"{float_result.train_seconds:.1f} s", f"{float_result.samples_per_second:,.0f}")
    out_console.print(table)
    out_console.print(f"model saved to {model_path}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
