"""``tintin stream``: test-then-train on a drifting stream, frozen vs integer vs float32 vs river."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .app import CliError
from .common import err_console, out_console, print_json

#: update modes whose planned SRAM is always reported beside the chosen one
PLANNED_MODES = ("full", "bias", "last:1")


def _check_update(model, update: str) -> None:
    from ..compile import parse_update
    from ..online.learner import selection_of

    parse_update(selection_of(update)).resolve(model)


def _model_for_stream(spec: str, stream, update: str, epochs: int, seed: int, quiet: bool):
    """A model file (checked against the stream), or a zoo model pretrained on the stream's
    concept-0 training data; the update mode is checked against it before any training."""
    from ..nn import build_model, model_names, training_defaults
    from ..optim import OptimConfig
    from ..train import TrainConfig, auto_progress, fit

    if os.path.sep in spec or spec.endswith(".safetensors") or Path(spec).is_file():
        from .common import load_model_file

        if not Path(spec).is_file():
            raise CliError(f"model file {spec} does not exist")
        model, _ = load_model_file(spec)
        from ..data import check_model_fits

        check_model_fits(stream, model)
        _check_update(model, update)
        return model, f"model file {spec}"
    if spec not in model_names():
        raise CliError(f"unknown model {spec!r}: not a file and not a zoo model ({', '.join(model_names())})")
    if epochs < 1:
        raise CliError(f"--pretrain-epochs must be at least 1, got {epochs}")
    d = training_defaults(spec)
    model = build_model(spec, stream.sample_shape, stream.num_classes, seed=seed,
                        input_exponent=stream.input_exponent)
    _check_update(model, update)
    config = TrainConfig(epochs=epochs, batch_size=d.batch_size, seed=seed, eval_each_epoch=False,
                         optim=OptimConfig(lr=d.lr, momentum_shift=d.momentum_shift, lr_schedule=d.lr_schedule(epochs)))
    fit(model, stream.x_pretrain, stream.y_pretrain, config, progress=auto_progress(not quiet))
    return model, f"zoo {spec}, pretrained {epochs} epochs on {len(stream.y_pretrain)} samples of classes " \
                  f"{list(stream.initial_classes)}"


def planned_sram(model, update: str, optim) -> dict[str, int]:
    """Planned arena bytes of one batch-1 training step per update mode (as ``tintin plan``)."""
    from ..compile import CompileOptions
    from ..compile.report import analyze
    from ..online.learner import selection_of

    out = {}
    for mode in dict.fromkeys((*PLANNED_MODES, update)):
        report = analyze(copy.deepcopy(model), selection_of(mode), 1, optim=optim,
                         options=CompileOptions(grad_tile_bytes=1024), suggest=False)
        out[mode] = int(report.plan.arena_bytes)
    return out


def stream_command(
    model_spec: str = typer.Argument(..., metavar="MODEL_OR_ZOO", help="model file or zoo model name"),
    dataset: str = typer.Option("bearing", "--dataset", "-d", help="data set the stream is built from"),
    drift: str = typer.Option("sensor_gain", "--drift", help="drift scenario (see docs/field.md)"),
    update: str = typer.Option("full", "--update", "-u", help="full | bias | last:K | tinyol | any update string"),
    length: int = typer.Option(2400, "--length", "-n", help="samples in the stream"),
    label_rate: float = typer.Option(1.0, "--label-rate", help="fraction of samples whose label arrives"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the stream, the model and the rounding stream"),
    lr: Optional[float] = typer.Option(None, "--lr", help="online learning rate (batch 1); default: zoo models "
                                       "their pretraining rate / batch size, model files 0.01"),
    momentum_shift: int = typer.Option(0, "--momentum-shift", help="integer momentum beta = 1 - 2^-k (0: off)"),
    replay: int = typer.Option(0, "--replay", help="int8 replay buffer capacity in samples (0: none)"),
    window: int = typer.Option(100, "--window", "-w", help="window of the windowed accuracy (samples)"),
    pretrain_epochs: int = typer.Option(10, "--pretrain-epochs", help="zoo models: pretraining epochs"),
    compare_float: bool = typer.Option(True, "--float/--no-float", help="float32 PyTorch online learner"),
    compare_river: bool = typer.Option(True, "--river/--no-river", help="river online learner"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of windowed accuracy with drift points"),
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help="also run the stream on this target (host, cortex-m0, ...; "
                                              "see `tintin devices`) and compare it bit for bit"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
):
    """Test-then-train on a drifting stream: frozen model, integer and float32 online learning, river."""
    from ..online import make_stream
    from ..online.prequential import compare_on_stream
    from ..optim import OptimConfig

    if window < 1 or window >= length:
        raise CliError(f"--window must be in [1, --length), got {window}")
    if replay < 0:
        raise CliError(f"--replay must be >= 0, got {replay}")
    if target is not None:
        from ..targets import get_target, toolchain_status

        get_target(target)  # an unknown target fails before any work
        ok, reason = toolchain_status(target)
        if not ok:
            raise CliError(reason)
        if replay:
            raise CliError("--replay does not run on a target yet: use --replay 0 with --target")
    if lr is None:
        from ..nn import model_names, training_defaults
        from ..online.learner import FALLBACK_ONLINE_LR, online_lr

        is_zoo = model_spec in model_names() and not Path(model_spec).is_file()
        d = training_defaults(model_spec) if is_zoo else None
        lr = online_lr(d.lr, d.batch_size) if d is not None else FALLBACK_ONLINE_LR
    with opt.config_values():
        optim = OptimConfig(lr=lr, momentum_shift=momentum_shift)
    from .common import load_dataset

    ds = load_dataset(dataset)
    stream = make_stream(drift, ds, length=length, seed=seed, label_rate=label_rate)
    quiet = quiet or as_json
    model, source = _model_for_stream(model_spec, stream, update, pretrain_epochs, seed, quiet)
    sram = planned_sram(model, update, optim)
    learners = ("frozen", "integer") + (("float",) if compare_float else ()) + (("river",) if compare_river else ())
    if compare_float:
        from ..reference.twin import _torch
        _torch()  # a missing extra fails before the long run
    with _Progress(quiet, len(stream), learners) as tick:
        try:
            result = compare_on_stream(model, stream, update, optim, seed, replay, window, learners, progress=tick)
        except NotImplementedError as exc:
            raise CliError(f"no float twin: {exc}") from None
    d = result.to_dict()
    d["planned_sram_bytes"] = sram
    if target is not None:
        from ..online.device import stream_on_target

        if not quiet:
            err_console.print(f"running the stream on {target} ...")
        dev = stream_on_target(model, stream, target, update=update, optim=optim, seed=seed,
                               learner_predictions=result.scores["integer"].predictions, model_spec=model_spec)
        d["bit_exact"] = dev["bit_exact"]
        d["instructions_per_sample"] = dev["instructions_per_sample"]
        d["count_unit"] = dev["count_unit"]
        d["device"] = dev
    d["replay_bytes"] = replay * (stream.x[0].nbytes + 1)
    d.update(model=model_spec, model_source=source, dataset=dataset, drift=drift, lr=lr, seed=seed)
    if plot is not None:
        from ..online.plot import plot_windowed_accuracy

        d["plot"] = str(plot_windowed_accuracy(result, plot))
    if as_json:
        print_json(d)
        return
    _print(d)


class _Progress:
    """A rich bar per learner on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool, total: int, learners):
        self.quiet, self.total, self.learners = quiet, total, learners

    def __enter__(self):
        if self.quiet:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console, transient=True)
        self.bar.start()
        self.tasks = {name: self.bar.add_task(name, total=self.total) for name in self.learners}

        def tick(name, i):
            if (i + 1) % 50 == 0 or i + 1 == self.total:
                self.bar.update(self.tasks[name], completed=i + 1)
        return tick

    def __exit__(self, *exc):
        if not self.quiet:
            self.bar.stop()
        return False


def _print(d: dict) -> None:
    from rich.table import Table

    s = d["stream"]
    out_console.print(f"[bold]{s['description']}[/bold]")
    out_console.print(f"model: {d['model_source']}; update {d['update']}, lr {d['lr']}, label rate "
                      f"{s['label_rate']:.2f}, drift points {s['drift_points']}")
    t = Table(title=f"test-then-train, window {d['window']}")
    for col in ("learner", "prequential accuracy", "recovery samples", "forgetting", "seconds"):
        t.add_column(col, justify="left" if col == "learner" else "right")
    for name, r in d["learners"].items():
        forg = "-" if r["forgetting"] is None else f"{100 * r['forgetting']:+.1f} pt"
        rec = ", ".join("never" if v is None else str(v) for v in r["recovery_samples"])
        t.add_row(name, f"{100 * r['prequential_accuracy']:.2f}%", rec, forg, f"{r['seconds']:.1f}")
    out_console.print(t)
    sram = ", ".join(f"{k}: {v:,} B" for k, v in d["planned_sram_bytes"].items())
    out_console.print(f"planned SRAM per training step (batch 1): {sram}"
                      + (f"; replay buffer {d['replay_bytes']:,} B" if d["replay_bytes"] else ""))
    if "device" in d:
        dev = d["device"]
        line = f"on {dev['target']} ({dev['machine']}): {'bit-exact' if dev['bit_exact'] else 'NOT bit-exact'}"
        if dev["instructions_per_sample"] is not None:
            line += (f", {dev['instructions_per_sample']:,.0f} {dev['count_unit']} per sample (prediction "
                     f"{dev['instructions_per_prediction']:,.0f}"
                     + (f", training step {dev['instructions_per_learn']:,.0f}" if dev["instructions_per_learn"] else "")
                     + ")")
        out_console.print(line)
        for m in dev["mismatches"][:5]:
            out_console.print(f"  {m}")
    if d.get("plot"):
        out_console.print(f"plot: {d['plot']}")


def register(app: typer.Typer) -> None:
    app.command("stream")(stream_command)
