"""Choosing the settings of federated Reptile and of FedAvg-init on validation devices, never on
the test devices, for the adaptation benchmark (bench/fleet_adapt.py).

The rule (the same for every initial model, decided before any run):

1. Tuning seed 0 only; the fleet of ``--devices`` training devices, ``--rounds`` rounds, fraction
   ``--fraction``, local batch 1 for both strategies, local learning rate = the task's adaptation
   learning rate (0.05 classification, 0.02 regression).
2. Candidates. Federated Reptile: the earlier setting (all of a device's samples, 10 local steps,
   eps 0.5 constant), and the inner task of the Reptile paper: a fresh draw of ``shots`` = 10 of
   the device's samples every round (as an unseen device adapts on K = 10), ``k`` local steps in
   {20, 80} (80 = the 8 adaptation passes over 10 samples), meta step size ``eps`` in {0.5, 1.0}
   annealed linearly to 0 (the paper's schedule). FedAvg: local steps in {10, 80} on all of a
   device's samples (the same local budgets). Scratch: no training.
3. Every trained model, and scratch, adapts on ``--validation`` validation devices
   (:meth:`FleetWorkload.validation`: the same distribution as the unseen test devices, other
   seeds) with K = 10 samples, 8 passes at batch 1, at adaptation learning rates {0.5x, 1x, 2x}
   the task's default: the same adaptation budget for every initial model.
4. Per initial model (reptile, fedavg, scratch) the candidate with the best mean validation score
   at K = 10 is chosen (accuracy: highest; MSE: lowest; ties: the earlier candidate).

The rounds run in-process (:func:`tintin.fleet.inprocess.train_in_process`, the same bits as a
Flower run of the same settings, tested), two candidates at a time.

    .venv/bin/python bench/fleet_adapt_tune.py --workloads bearing-fleet,sine
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

LR_FACTORS = (0.5, 1.0, 2.0)
K = 10
PASSES = 8


def candidates() -> list[dict]:
    """The candidate settings of rule 2, in order (ties go to the earlier one)."""
    out = [{"strategy": "reptile", "shots": None, "local_steps": 10, "meta_lr": 0.5, "meta_anneal": False}]
    for steps in (20, 80):
        for eps in (0.5, 1.0):
            out.append({"strategy": "reptile", "shots": 10, "local_steps": steps, "meta_lr": eps, "meta_anneal": True})
    for steps in (10, 80):
        out.append({"strategy": "fedavg", "shots": None, "local_steps": steps, "meta_lr": 0.5, "meta_anneal": False})
    return out


def validation_scores(model, val, lr: float) -> dict:
    """Mean validation score at K = 10 for each adaptation learning rate of rule 3."""
    import numpy as np

    from tintin.fleet.adapt import AdaptConfig, adapt_and_score

    out = {}
    for f in LR_FACTORS:
        config = AdaptConfig(passes=PASSES, lr=lr * f)
        out[f"{lr * f:g}"] = float(np.mean([adapt_and_score(model, val, i, K, config, seed=0)
                                            for i in range(val.num_devices)]))
    return out


def run_candidate(job: tuple) -> dict:
    name, cand, args = job
    from tintin.fleet import FleetConfig
    from tintin.fleet.adapt import DEFAULT_CONFIG
    from tintin.fleet.inprocess import train_in_process
    from tintin.fleet.run import build_spec, model_from_arrays
    from tintin.fleet.codec import model_arrays
    from tintin.fleet.workloads import get_workload

    fleet = get_workload(name, devices=args["devices"], seed=0)
    val = fleet.validation(args["validation"])
    lr = DEFAULT_CONFIG[fleet.task].lr
    template = fleet.build_model(0)
    t0 = time.perf_counter()
    if cand["strategy"] == "scratch":
        model = copy.deepcopy(template)
    else:
        spec, _ = build_spec(FleetConfig(source=fleet, model=template, rounds=args["rounds"], fraction=args["fraction"],
                                         batch_size=1, lr=lr, seed=0, **cand))
        model = model_from_arrays(template, model_arrays(train_in_process(spec)))
    train_s = time.perf_counter() - t0
    scores = validation_scores(model, val, lr)
    return {"workload": name, **cand, "train_seconds": train_s, "scores": scores}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="bearing-fleet,sine")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--validation", type=int, default=15, help="validation devices")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--name", default="fleet_adapt_tuning")
    args = ap.parse_args(argv)

    from _common import markdown_table, write_results

    from tintin.fleet.workloads import get_workload

    shared = {"devices": args.devices, "validation": args.validation, "rounds": args.rounds, "fraction": args.fraction}
    names = args.workloads.split(",")
    jobs = [(name, c, shared) for name in names
            for c in candidates() + [{"strategy": "scratch", "shots": None, "local_steps": None, "meta_lr": None,
                                      "meta_anneal": None}]]
    results = []
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        for r in pool.imap(run_candidate, jobs):
            results.append(r)
            print(json.dumps(r), flush=True)

    chosen, sections = {}, []
    for name in names:
        higher = get_workload(name, devices=1, seed=0).task == "classification"
        rows, best = [], {}
        for r in (r for r in results if r["workload"] == name):
            lr, value = (max if higher else min)(r["scores"].items(), key=lambda kv: kv[1])
            key = r["strategy"]
            if key not in best or (value > best[key]["value"] if higher else value < best[key]["value"]):
                best[key] = {"value": value, "adapt_lr": float(lr), **{k: r[k] for k in
                             ("shots", "local_steps", "meta_lr", "meta_anneal")}}
            fmt = (lambda v: f"{100 * v:.2f}") if higher else (lambda v: f"{v:.3f}")
            rows.append([key, "all" if r["shots"] is None else r["shots"], r["local_steps"] or "-",
                         "-" if key != "reptile" else f"{r['meta_lr']:g}{' annealed' if r['meta_anneal'] else ''}",
                         *[fmt(v) for v in r["scores"].values()], f"{r['train_seconds']:.0f}"])
        chosen[name] = best
        unit = "accuracy (%)" if higher else "MSE"
        heads = ["initial model", "inner samples", "local steps", "meta step"] + \
            [f"{unit} at adapt lr x{f:g}" for f in LR_FACTORS] + ["train s"]
        pick = markdown_table(["initial model", "inner samples", "local steps", "meta step", "adapt lr",
                               f"validation {unit}"],
                              [[k, "all" if b["shots"] is None else b["shots"], b["local_steps"] or "-",
                                "-" if k != "reptile" else f"{b['meta_lr']:g}{' annealed' if b['meta_anneal'] else ''}",
                                f"{b['adapt_lr']:g}", f"{100 * b['value']:.2f}" if higher else f"{b['value']:.3f}"]
                               for k, b in best.items()])
        sections.append(f"### {name}: validation {unit} at K = {K} ({args.validation} validation devices)\n\n"
                        f"{markdown_table(heads, rows)}\n\nChosen:\n\n{pick}")
    header = (f"## Settings chosen on validation devices (seed 0; {args.devices} training devices, {args.rounds} "
              f"rounds, fraction {args.fraction}, local batch 1; adaptation: K = {K}, {PASSES} passes)\n\n"
              "The rule is the docstring of bench/fleet_adapt_tune.py; the test devices of bench/fleet_adapt.py "
              "are never used here.")
    write_results(args.name, {"args": vars(args), "candidates": results, "chosen": chosen},
                  "\n\n".join([header, *sections]))


if __name__ == "__main__":
    main()
