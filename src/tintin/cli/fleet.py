"""``tintin fleet``: integer federated learning across simulated devices on Flower (docs/fleet.md);
``tintin fleet adapt``: a model adapting on unseen devices with K samples each
(docs/fleet-workloads.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import options as opt
from .app import CliError
from .common import err_console, out_console, print_json


def _round_line(kind: str, r: dict, rounds: int) -> str:
    metric = f"accuracy {100 * r['accuracy']:.2f}%" if "accuracy" in r else f"mse {r['mse']:.5f}"
    dev = ""
    if "device_test_accuracy" in r:
        dev = f", on-device {100 * r['device_test_accuracy']:.2f}%"
    elif "device_test_mse" in r:
        dev = f", on-device mse {r['device_test_mse']:.5f}"
    return (f"{kind} round {r['round']}/{rounds}: {metric}{dev}, loss {r['train_loss']:.4f}, {r['devices']} devices, "
            f"up {r['bytes_up']:,} B, down {r['bytes_down']:,} B, {r['seconds']:.1f} s")


fleet_app = typer.Typer(no_args_is_help=False, add_completion=False)


@opt.with_groups(opt.DATA_FILES)
def fleet_command(
    ctx: typer.Context,
    data_files: opt.DataFiles,
    dataset: str = opt.dataset(False, help="data set name or a .csv, .npz or .ts file, split across the devices "
                               "(default digits)"),
    workload: Optional[str] = typer.Option(None, "--workload", "-w", help="a fleet workload instead of a data set: "
                                           "sine | bearing-fleet | digits-style (docs/fleet-workloads.md)"),
    model: str = typer.Option("mlp", "--model", "-m", help="zoo model built for the data set"),
    init: Optional[Path] = typer.Option(None, "--init", help="start from this integer model file instead of a "
                                        "random initialisation (e.g. a FedAvg model from --out: Reptile "
                                        "warm-started from FedAvg)"),
    clients: int = typer.Option(10, "--clients", "-n", help="simulated devices"),
    rounds: int = typer.Option(3, "--rounds", "-r", help="federated rounds"),
    strategy: str = typer.Option("fedavg", "--strategy", help="fedavg | reptile | fomaml | fedavg-float"),
    partition: str = typer.Option("iid", "--partition", help="iid | dirichlet:A (label skew, e.g. dirichlet:0.3)"),
    fraction: float = typer.Option(1.0, "--fraction", help="share of the devices that train in a round"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="devices send the top P% of their update "
                                          "magnitudes (indices + int8 values + scales)"),
    error_feedback: bool = typer.Option(True, "--error-feedback/--no-error-feedback", help="with --top-p: "
                                        "devices keep what they did not send and add it to the next update"),
    personal: Optional[List[str]] = typer.Option(None, "--personal", help="layer or parameter that never leaves "
                                                 "a device (repeatable, e.g. --personal fc2)"),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="samples per local training step"),
    local_steps: Optional[int] = typer.Option(None, "--local-steps", help="local steps per round (default: one "
                                              "pass over the device's samples)"),
    lr: float = typer.Option(0.05, "--lr", help="local learning rate (an integer scale on the devices)"),
    meta_lr: float = typer.Option(0.5, "--meta-lr", help="reptile, fomaml: server step eps in meta += eps (avg - meta)"),
    meta_anneal: bool = typer.Option(False, "--meta-anneal", help="reptile, fomaml: decay eps linearly over the rounds"),
    shots: Optional[int] = typer.Option(None, "--shots", help="each device trains on a fresh seeded draw of this "
                                        "many of its samples every round (Reptile's few-shot task)"),
    query_steps: int = typer.Option(0, "--query-steps", help="fomaml: steps on a disjoint query draw of --shots "
                                    "samples after the support steps; the device returns their displacement"),
    query_shots: Optional[int] = typer.Option(None, "--query-shots", help="fomaml: size of the query draw "
                                              "(default: --shots; up to every sample beyond the support draw)"),
    samples_per_device: Optional[int] = typer.Option(None, "--samples-per-device", help="draw this many samples "
                                                     "per device with replacement (more devices than samples)"),
    compare_float: bool = typer.Option(False, "--compare-float", help="also run float32 FedAvg of the PyTorch "
                                       "twin in the same simulation"),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="Flower SuperNodes (default min(clients, 100)); a "
                                        "node trains several devices beyond that"),
    cpus: int = typer.Option(2, "--cpus", help="CPUs Ray may use (one ClientApp per CPU)"),
    emulate: Optional[List[str]] = typer.Option(None, "--emulate", help="DEVICE:TARGET, a device whose local "
                                                "update runs as the generated C program on an emulated MCU "
                                                "(e.g. 0:cortex-m0 in QEMU); repeatable"),
    seed: int = opt.SEED,
    as_json: bool = opt.JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write the final integer model to this model "
                                       "file (.safetensors), e.g. for `tintin fleet adapt`"),
):
    """Federated training of an integer model across simulated devices on Flower (Ray)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..fleet import FleetConfig, run_fleet
    from ..fleet.run import build_spec

    if cpus < 1:
        raise CliError(f"--cpus must be at least 1, got {cpus}")
    if out is not None and strategy == "fedavg-float":
        raise CliError("--out writes integer models: fedavg-float has none")
    common = dict(samples_per_device=samples_per_device, rounds=rounds, strategy=strategy, fraction=fraction,
                  top_p=top_p, error_feedback=error_feedback, personal=tuple(personal or ()), batch_size=batch_size,
                  local_steps=local_steps, lr=lr, meta_lr=meta_lr, meta_anneal=meta_anneal, shots=shots,
                  query_steps=query_steps, query_shots=query_shots, seed=seed,
                  compare_float=compare_float, nodes=nodes, num_cpus=cpus, emulated=_emulated(emulate))
    if init is not None:
        if model != "mlp":
            raise CliError("give --model or --init, not both")
        from ..io.model_file import load_model

        model = load_model(init)[0]
    if workload is not None:
        if dataset is not None:
            raise CliError("give --dataset or --workload, not both")
        from ..fleet.workloads import get_workload

        common.pop("samples_per_device")
        source = get_workload(workload, devices=clients, seed=seed,
                              **({} if samples_per_device is None else {"samples_per_device": samples_per_device}))
        template = source.build_model(seed) if isinstance(model, str) and model == "mlp" else model
        config = FleetConfig(source=source, model=template, **common)
        what = f"{clients} {source.name} devices"
    else:
        ds = data_files.load(dataset or "digits")
        config = FleetConfig(dataset=ds, partition=partition, clients=clients, model=model, **common)
        what = f"{clients} devices of {ds.name} ({partition})"
    build_spec(config)  # bad input fails here, before Ray starts
    if out is not None:
        _check_writable(out)
    show = not (quiet or as_json)
    if show:
        err_console.print(f"fleet: {what}, {strategy}, {rounds} rounds on Flower's simulation engine (Ray, "
                          f"{cpus} CPUs)", highlight=False)

    def on_round(kind: str, record: dict) -> None:
        if show:
            print(_round_line(kind, record, rounds), file=sys.stderr, flush=True)

    result = run_fleet(config, on_round=on_round)
    d = result.to_dict()
    if init is not None:
        d["init"] = str(init)
    if out is not None:
        from ..io.model_file import save_model

        save_model(result.model, out, info={"fleet": {k: d[k] for k in ("strategy", "clients", "rounds", "seed")}})
        d["out"] = str(out)
        if show:
            err_console.print(f"wrote {out}", highlight=False)
    if as_json:
        print_json(d)
        return
    key = "test_accuracy" if result.task == "classification" else "test_mse"
    value = d[key]
    shown = f"{100 * value:.2f}%" if key == "test_accuracy" else f"{value:.5f}"
    out_console.print(f"{strategy}: global {key.replace('_', ' ')} {shown} after {rounds} rounds", highlight=False)
    fkey = "float_" + key
    if fkey in d:
        fv = d[fkey]
        out_console.print(f"float32 FedAvg: {100 * fv:.2f}%" if key == "test_accuracy" else f"float32 FedAvg: {fv:.5f}",
                          highlight=False)
    out_console.print(f"per round: {d['bytes_up_per_round']:,.0f} B up, {d['bytes_down_per_round']:,.0f} B down, "
                      f"{d['seconds_per_round']:.1f} s; driver peak {d['driver_max_rss_mb']:.0f} MB", highlight=False)


def _emulated(values) -> dict[int, str]:
    out = {}
    for v in values or ():
        device, sep, target = v.partition(":")
        if not sep or not device.strip().isdigit() or not target.strip():
            raise CliError(f"--emulate takes DEVICE:TARGET (e.g. 0:cortex-m0), got {v!r}")
        out[int(device)] = target.strip()
    return out


def _check_writable(path: Path) -> None:
    """An output whose directory does not exist fails before the run, not after it."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        raise CliError(f"cannot write {path}: it is a directory")


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CliError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise CliError(f"{what} must name at least one value")
    return values


def _layer_shifts(values) -> dict[str, int]:
    out = {}
    for text in values:
        name, eq, shift = text.partition("=")
        try:
            value = int(shift)
        except ValueError:
            value = None
        if not eq or not name.strip() or value is None:
            raise CliError(f"--layer-shift takes LAYER=S with an integer S (e.g. fc1=1), got {text!r}")
        out[name.strip()] = value
    return out


def adapt_command(
    workload: str = typer.Option(..., "--workload", "-w", help="sine | bearing-fleet | digits-style"),
    models: Optional[List[Path]] = typer.Option(None, "--model", "-m", help="an initial model file (a meta or "
                                                "FedAvg model from `tintin fleet --out`); repeatable"),
    scratch: bool = typer.Option(True, "--scratch/--no-scratch", help="also adapt the workload's randomly "
                                 "initialised model (seeded by each --seeds value)"),
    devices: int = typer.Option(10, "--devices", "-n", help="unseen devices that adapt"),
    shots: str = typer.Option("5,10,20", "--shots", "-k", help="K: labelled samples per device, comma-separated"),
    seeds: str = typer.Option("0", "--seeds", help="adaptation seeds (sample choice, order, rounding), "
                              "comma-separated"),
    passes: Optional[int] = typer.Option(None, "--passes", help="passes over the K samples (default 8)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="adaptation learning rate (default 0.05 classifiers, "
                                       "0.02 regression)"),
    update: str = typer.Option("full", "--update", help="parameters that adapt: full | last:N | bias | ..."),
    layer_shift: Optional[List[str]] = typer.Option(None, "--layer-shift", help="LAYER=S: layer LAYER adapts at "
                                                    "lr * 2**S (S an integer in -8..8); repeatable"),
    fleet_seed: int = typer.Option(0, "--fleet-seed", help="seed of the workload the unseen devices belong to "
                                   "(the --seed of the fleet run)"),
    samples_per_device: Optional[int] = typer.Option(None, "--samples-per-device", help="training samples per "
                                                     "unseen device (default: the workload's)"),
    as_json: bool = opt.JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
):
    """Adapt initial models on unseen devices with K samples each; their held-out accuracy or MSE."""
    from ..fleet.adapt import DEFAULT_CONFIG, AdaptConfig, adaptation_table
    from ..fleet.workloads import get_workload
    from ..io.model_file import load_model

    shot_list = _int_list(shots, "--shots")
    seed_list = _int_list(seeds, "--seeds")
    fleet = get_workload(workload, devices=1, seed=fleet_seed,
                         **({} if samples_per_device is None else {"samples_per_device": samples_per_device}))
    unseen = fleet.unseen(devices)
    default = DEFAULT_CONFIG[fleet.task]
    config = AdaptConfig(passes=default.passes if passes is None else passes, lr=default.lr if lr is None else lr,
                         update=update, layer_shifts=_layer_shifts(layer_shift or ()))
    initial = {}
    for path in models or ():
        name = path.stem
        while name in initial:
            name += "'"
        initial[name] = load_model(path)[0]
    if scratch:
        initial["scratch"] = fleet.build_model
    if not initial:
        raise CliError("nothing to adapt: give --model FILE or leave --scratch on")
    show = not (quiet or as_json)
    if show:
        rates = "".join(f", {n} at lr {config.lr * 2.0 ** s:g}" for n, s in config.layer_shifts)
        err_console.print(f"fleet adapt: {devices} unseen {fleet.name} devices, K = {', '.join(map(str, shot_list))}, "
                          f"{config.passes} passes at lr {config.lr:g}{rates}, seeds {', '.join(map(str, seed_list))}",
                          highlight=False)
    table = adaptation_table(initial, unseen, shots=shot_list, seeds=seed_list, config=config,
                             progress=(lambda line: print(line, file=sys.stderr, flush=True)) if show else None)
    d = table.to_dict()
    d["synthetic"] = bool(unseen.synthetic)
    d["fleet_seed"] = fleet_seed
    d["models"] = {name: (str(p) if name != "scratch" else None)
                   for name, p in zip(initial, [*(models or ()), None])}
    if as_json:
        print_json(d)
        return
    unit = "accuracy" if table.metric == "accuracy" else "MSE (lower is better)"
    out_console.print(f"{fleet.name}: held-out {unit} after K samples, mean ± std over seeds", highlight=False)
    out_console.print(table.to_markdown(), highlight=False)


def register(app: typer.Typer) -> None:
    fleet_app.callback(invoke_without_command=True)(fleet_command)
    fleet_app.command("adapt")(adapt_command)
    app.add_typer(fleet_app, name="fleet")
