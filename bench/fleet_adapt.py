"""Adaptation on unseen devices: the federated Reptile meta model against the integer FedAvg model
and scratch (random init), after K = 5, 10, 20 local samples, on the bearing fleet and sine
regression.

For every seed, the fleet (``tintin.fleet.workloads``) is trained twice, with ``reptile`` and
with ``fedavg``, from the workload's model initialised with that seed: by default with the
in-process rounds (``tintin.fleet.inprocess.train_in_process``, the same bits as Flower's
simulation of the same settings: tests/fleet/test_flower.py, test_reptile.py), with
``--engine flower`` in Flower's simulation engine (``tintin.fleet.run_fleet``); ``scratch`` is
the initial model itself. Each initial model then adapts on unseen devices (``fleet.unseen(n)``: same
distribution of device parameters, never trained on) with K of their samples and is scored on
their held-out samples (``tintin.fleet.adapt.adaptation_table``: batch 1, ``passes`` passes).
The claim checked: at K = 10 the meta model beats both FedAvg-init and scratch.

With ``--settings`` (the JSON bench/fleet_adapt_tune.py writes) every initial model trains and
adapts with the settings chosen for it on validation devices (Reptile: inner samples, local steps,
meta step size and its annealing; FedAvg: local steps; each: the adaptation learning rate), never
on these test devices. Every initial model adapts with the same budget: K samples, the same
passes at batch 1. A PNG per workload plots the score against K.

    .venv/bin/python bench/fleet_adapt.py --workloads bearing-fleet,sine --seeds 0,1,2 \
        --settings bench/results/fleet_adapt_tuning.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _train_and_save(job: tuple) -> str:
    """In a child process: train the fleet (in Flower's simulation, or its in-process rounds),
    save the final model; returns a progress line."""
    name, strategy, seed, fleet_args, path, engine = job
    from tintin.fleet import FleetConfig, run_fleet
    from tintin.fleet.codec import model_arrays
    from tintin.fleet.inprocess import train_in_process
    from tintin.fleet.run import build_spec, model_from_arrays
    from tintin.fleet.workloads import get_workload
    from tintin.io.model_file import save_model

    t0 = time.perf_counter()
    fleet_args = dict(fleet_args)
    fleet = get_workload(name, devices=fleet_args.pop("devices"), seed=seed)
    template = fleet.build_model(seed)
    config = FleetConfig(source=fleet, model=template, strategy=strategy, seed=seed, **fleet_args)
    if engine == "flower":
        model = run_fleet(config).model
    else:
        model = model_from_arrays(template, model_arrays(train_in_process(build_spec(config)[0])))
    save_model(model, path)
    return f"{name} seed {seed}: {strategy} trained in {time.perf_counter() - t0:.0f} s ({engine})"


def model_path(cache: Path, name: str, strategy: str, seed: int, fleet_args: dict, engine: str) -> Path:
    import hashlib

    key = hashlib.sha256(json.dumps([fleet_args, engine], sort_keys=True).encode()).hexdigest()[:10]
    return cache / f"{name}-{strategy}-seed{seed}-{key}.safetensors"


def train_fleet_models(jobs: list[tuple], processes: int) -> None:
    """Train the fleet models of ``jobs`` not yet in the cache, ``processes`` at a time, each in a
    fresh process (Ray's state dies with it)."""
    import multiprocessing

    todo = [j for j in jobs if not Path(j[4]).exists()]
    if not todo:
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes, maxtasksperchild=1) as pool:
        for line in pool.imap_unordered(_train_and_save, todo):
            print(line, flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="bearing-fleet,sine")
    ap.add_argument("--devices", type=int, default=50, help="fleet devices that train")
    ap.add_argument("--unseen", type=int, default=10, help="unseen devices that adapt")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--fraction", type=float, default=0.2, help="devices per round")
    ap.add_argument("--local-steps", type=int, default=10, help="local steps per round (Reptile's k)")
    ap.add_argument("--batch-size", type=int, default=1, help="local batch size (both strategies)")
    ap.add_argument("--lr", type=float, default=None, help="local lr (default: the adaptation lr of the task)")
    ap.add_argument("--meta-lr", type=float, default=0.5, help="Reptile's step toward the devices' average")
    ap.add_argument("--shots", default="5,10,20")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--passes", type=int, default=None, help="adaptation passes over the K samples")
    ap.add_argument("--settings", default=None, help="the JSON of bench/fleet_adapt_tune.py: the settings "
                    "chosen per workload and initial model on validation devices")
    ap.add_argument("--name", default="fleet_adapt")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "tintin-fleet-adapt"),
                    help="final fleet models are kept here (model files); a rerun reuses them")
    ap.add_argument("--engine", default="inprocess", choices=("inprocess", "flower"),
                    help="fleet rounds in-process (tintin.fleet.inprocess, the same bits as Flower, tested) or in "
                    "Flower's simulation on Ray")
    ap.add_argument("--processes", type=int, default=2, help="fleet models trained at a time")
    args = ap.parse_args(argv)

    try:
        import tintin.fleet.run  # noqa: F401  (run_fleet, FleetConfig)
    except ImportError as exc:
        raise SystemExit(f"error: this benchmark needs tintin.fleet.run_fleet and FleetConfig (the Flower "
                         f"fleet), which this installation lacks ({exc})") from None

    from _common import RESULTS, markdown_table, write_results

    from tintin.fleet.adapt import DEFAULT_CONFIG, AdaptConfig, adaptation_table
    from tintin.fleet.workloads import get_workload

    shots = tuple(int(v) for v in args.shots.split(","))
    seeds = tuple(int(v) for v in args.seeds.split(","))
    tables, sections, rows, settings = {}, [], [], {}
    for name in args.workloads.split(","):
        base = get_workload(name, devices=args.devices, seed=0)
        unseen = base.unseen(args.unseen)
        defaults = DEFAULT_CONFIG[base.task]
        config = AdaptConfig(passes=args.passes or defaults.passes, lr=defaults.lr)
        lr = args.lr if args.lr is not None else config.lr
        fleet_args = {"devices": args.devices, "rounds": args.rounds, "fraction": args.fraction,
                      "local_steps": args.local_steps, "batch_size": args.batch_size, "lr": lr,
                      "meta_lr": args.meta_lr}
        per_strategy = {"reptile": dict(fleet_args), "fedavg": dict(fleet_args)}
        configs = {}
        if args.settings:
            chosen = json.loads(Path(args.settings).read_text())["chosen"][name]
            for strategy, label in (("reptile", "reptile (meta)"), ("fedavg", "fedavg"), ("scratch", "scratch")):
                c = chosen[strategy]
                configs[label] = AdaptConfig(passes=config.passes, lr=c["adapt_lr"])
                if strategy != "scratch":
                    per_strategy[strategy].update(local_steps=c["local_steps"], shots=c["shots"])
                if strategy == "reptile":
                    per_strategy[strategy].update(meta_lr=c["meta_lr"], meta_anneal=c["meta_anneal"])
        settings[name] = {"fleet": per_strategy, "adapt": {k: v.lr for k, v in configs.items()}}
        cache = Path(args.cache)
        cache.mkdir(parents=True, exist_ok=True)

        from tintin.io.model_file import load_model

        jobs = [(name, st, seed, per_strategy[st], str(model_path(cache, name, st, seed, per_strategy[st], args.engine)),
                 args.engine) for seed in seeds for st in ("reptile", "fedavg")]
        train_fleet_models(jobs, args.processes)

        def fleet_model(strategy, seed, _name=name, _per=per_strategy):
            return load_model(model_path(cache, _name, strategy, seed, _per[strategy], args.engine))[0]

        # the unseen devices are those of the seed-0 fleet: the same devices for every seed and model
        table = adaptation_table(
            {"reptile (meta)": lambda s: fleet_model("reptile", s), "fedavg": lambda s: fleet_model("fedavg", s),
             "scratch": lambda s, _b=base: _b.build_model(s)},
            unseen, shots=shots, seeds=seeds, config=config, configs=configs,
            progress=lambda line: print(line, flush=True))
        tables[name] = table
        plot_table(table, RESULTS / f"{args.name}_{name}.png")
        unit = "accuracy (%)" if table.metric == "accuracy" else "MSE (lower is better)"
        sections.append(f"### {name} ({'SYNTHETIC' if base.synthetic else 'real'}): held-out {unit} after K "
                        f"samples, mean ± std over seeds {', '.join(map(str, seeds))}\n\n{table.to_markdown()}")
        k = 10 if 10 in shots else shots[len(shots) // 2]
        rows.append([name, k, table.best(k), "yes" if table.best(k) == "reptile (meta)" else "no"])

    if args.settings:
        lines = []
        for n, st in settings.items():
            r, f = st["fleet"]["reptile"], st["fleet"]["fedavg"]
            inner = "all samples" if r.get("shots") is None else f"a fresh draw of {r['shots']} samples"
            lines.append(f"- {n}: Reptile {r['local_steps']} local steps on {inner} per round, meta step "
                         f"{r['meta_lr']:g}{' annealed linearly' if r.get('meta_anneal') else ''}; FedAvg "
                         f"{f['local_steps']} local steps on all samples; adaptation lr " +
                         ", ".join(f"{k} {v:g}" for k, v in st["adapt"].items()))
        how = ("settings chosen on validation devices (bench/results/fleet_adapt_tuning.md, never these test "
               "devices):\n\n" + "\n".join(lines))
    else:
        how = (f"{args.local_steps} local steps at batch {args.batch_size}, Reptile meta-lr {args.meta_lr}; "
               f"adaptation {', '.join(f'{n}: {t.config.passes} passes, lr {t.config.lr}' for n, t in tables.items())}")
    header = (f"## Adaptation on unseen devices: federated Reptile vs FedAvg-init vs scratch\n\n"
              f"{args.devices} training devices, {args.rounds} rounds "
              f"({'Flower simulation' if args.engine == 'flower' else 'in-process, the bits of a Flower run'}), fraction {args.fraction}, local batch "
              f"{args.batch_size}; {args.unseen} unseen test devices adapt with K samples, "
              f"{next(iter(tables.values())).config.passes} passes at batch 1 for every initial model; {how}\n\n"
              "Bold: best per column.")
    verdict = markdown_table(["workload", "K", "best initial model", "meta model best"], rows)
    markdown = "\n\n".join([header, *sections, "### Claim at K = 10", verdict])
    write_results(args.name, {"args": vars(args), "settings": settings,
                              "tables": {n: t.to_dict() for n, t in tables.items()}}, markdown)


def plot_table(table, path: Path) -> None:
    """Score against K per initial model (mean, error bars: std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pct = table.metric == "accuracy"
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for init in table.scores:
        ys = [table.mean(init, k) * (100 if pct else 1) for k in table.shots]
        es = [table.std(init, k) * (100 if pct else 1) for k in table.shots]
        ax.errorbar(table.shots, ys, yerr=es, marker="o", capsize=3, label=init)
    ax.set_xlabel("K (labelled samples on the unseen device)")
    ax.set_ylabel("held-out accuracy (%)" if pct else "held-out MSE")
    ax.set_xticks(list(table.shots))
    ax.set_title(f"{table.workload}: adaptation on {table.devices} unseen devices")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
