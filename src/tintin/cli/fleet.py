"""``tintin fleet``: integer federated learning across simulated devices on Flower (docs/fleet.md)."""

from __future__ import annotations

import sys
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


@opt.with_groups(opt.DATA_FILES)
def fleet_command(
    data_files: opt.DataFiles,
    dataset: str = opt.dataset(False, help="data set name or a .csv, .npz or .ts file, split across the devices "
                               "(default digits)"),
    model: str = typer.Option("mlp", "--model", "-m", help="zoo model built for the data set"),
    clients: int = typer.Option(10, "--clients", "-n", help="simulated devices"),
    rounds: int = typer.Option(3, "--rounds", "-r", help="federated rounds"),
    strategy: str = typer.Option("fedavg", "--strategy", help="fedavg | reptile | fedavg-float"),
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
    meta_lr: float = typer.Option(0.5, "--meta-lr", help="reptile: server step eps in meta += eps (avg - meta)"),
    samples_per_device: Optional[int] = typer.Option(None, "--samples-per-device", help="draw this many samples "
                                                     "per device with replacement (more devices than samples)"),
    compare_float: bool = typer.Option(False, "--compare-float", help="also run float32 FedAvg of the PyTorch "
                                       "twin in the same simulation"),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="Flower SuperNodes (default min(clients, 100)); a "
                                        "node trains several devices beyond that"),
    cpus: int = typer.Option(2, "--cpus", help="CPUs Ray may use (one ClientApp per CPU)"),
    seed: int = opt.SEED,
    as_json: bool = opt.JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
):
    """Federated training of an integer model across simulated devices on Flower (Ray)."""
    from ..fleet import FleetConfig, run_fleet
    from ..fleet.run import build_spec

    if cpus < 1:
        raise CliError(f"--cpus must be at least 1, got {cpus}")
    ds = data_files.load(dataset or "digits")
    config = FleetConfig(dataset=ds, partition=partition, clients=clients, samples_per_device=samples_per_device,
                         model=model, rounds=rounds, strategy=strategy, fraction=fraction, top_p=top_p,
                         error_feedback=error_feedback, personal=tuple(personal or ()), batch_size=batch_size,
                         local_steps=local_steps, lr=lr, meta_lr=meta_lr, seed=seed, compare_float=compare_float, nodes=nodes, num_cpus=cpus)
    build_spec(config)  # bad input fails here, before Ray starts
    show = not (quiet or as_json)
    if show:
        err_console.print(f"fleet: {clients} devices of {ds.name} ({partition}), {strategy}, {rounds} rounds on "
                          f"Flower's simulation engine (Ray, {cpus} CPUs)", highlight=False)

    def on_round(kind: str, record: dict) -> None:
        if show:
            print(_round_line(kind, record, rounds), file=sys.stderr, flush=True)

    result = run_fleet(config, on_round=on_round)
    d = result.to_dict()
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


def register(app: typer.Typer) -> None:
    app.command("fleet")(fleet_command)
