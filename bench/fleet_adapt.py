"""Adaptation on unseen devices: the federated Reptile meta model against the integer FedAvg model
and scratch (random init), after K = 0, 5, 10, 20 local samples, on the bearing fleet and sine
regression.

For every seed, the fleet (``tintin.fleet.workloads``) trains a meta model (``reptile``) and a
FedAvg model (``fedavg``) from the workload's model initialised with that seed: by default with the
in-process rounds (``tintin.fleet.inprocess.train_in_process``, the same bits as Flower's
simulation of the same settings: tests/fleet/test_flower.py, test_reptile.py), with
``--engine flower`` in Flower's simulation engine (``tintin.fleet.run_fleet``); ``scratch`` is
the initial model itself. A model may train in phases (e.g. 60 FedAvg rounds, then 30 Reptile
rounds from that model: ``tintin fleet --init``); phase ``i`` is a fleet run on the same devices
seeded ``seed + 1000 i``, and a phase shared by several models trains once (every phase's model is
cached under ``--cache``). Each initial model then adapts on unseen devices (``fleet.unseen(n)``:
same distribution of device parameters, never trained on) with K of their samples and is scored on
their held-out samples (``tintin.fleet.adapt.adaptation_table``: batch 1, ``passes`` passes;
K = 0 scores the model unadapted, and a second table gives the unadapted score's worst and best
unseen device: how much one model for all devices leaves to adaptation).
The claim checked: at K = 10 the meta model beats both FedAvg-init and scratch. When the settings
choose a federated first-order MAML model too (``fomaml``, rule 7 of bench/fleet_adapt_tune.py), it
is a second meta model, ``fomaml (meta)``, checked the same way; so is federated Reptile whose devices
take their steps on all of their samples (``reptile-device``, rule 11), ``reptile, whole-device
(meta)``. The meta models are also compared with each other, paired.

With ``--settings`` (the JSON bench/fleet_adapt_tune.py writes; several, comma-separated: a later
file's choices replace an earlier one's for the workloads it has) every initial model trains and
adapts with the settings chosen for it on validation devices (its training phases: strategy,
rounds, inner samples, local steps and learning rate, meta step size and its annealing; its
adaptation learning rate, adapted layers and per-layer rates, rule 8), never on these test devices. Every initial model
adapts with the same budget: K samples, the same passes at batch 1. A PNG per workload plots the
score against K.

How much of a difference at K = 10 is noise: every initial model's K = 10 score on every unseen
device for every seed, and the meta model's paired difference to each other initial model (the
same devices, seeds and K samples) with a 95% bootstrap interval that resamples devices and seeds
(:func:`paired_difference`), and on how many devices it is better, level or worse.

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


#: the fleet seed of phase ``i`` of a run seeded ``s`` is ``s + PHASE_SEED_STRIDE * i`` (phase 0: ``s``)
PHASE_SEED_STRIDE = 1000
#: the meta models the settings may choose: settings key -> label (rule 11 of bench/fleet_adapt_tune.py:
#: ``reptile-device``, federated Reptile whose devices take their steps on all of their samples)
META_MODELS = {"reptile": "reptile (meta)", "fomaml": "fomaml (meta)", "reptile-device": "reptile, whole-device (meta)"}


def model_path(cache: Path, name: str, devices: int, seed: int, phases: list[dict], engine: str) -> Path:
    """The cache file of the model that ``phases`` (fleet settings, one dict per phase) train on the
    ``devices``-device fleet of ``name`` seeded ``seed``."""
    import hashlib

    key = hashlib.sha256(json.dumps([name, devices, seed, phases, engine], sort_keys=True).encode()).hexdigest()[:12]
    return cache / f"{name}-seed{seed}-{len(phases)}phase-{key}.safetensors"


def _train_phase(job: tuple) -> str:
    """In a child process: the last phase of ``phases``, from the cached model of the phases before
    it (or the workload's model initialised with ``seed``); saves the result; returns a progress line.
    Phase ``i`` is a fleet run (in Flower's simulation, or its in-process rounds) seeded
    ``seed + PHASE_SEED_STRIDE * i`` whose initial model is the model of phase ``i - 1``."""
    name, devices, seed, phases, cache, engine = job
    from tintin.fleet import FleetConfig, run_fleet
    from tintin.fleet.codec import model_arrays
    from tintin.fleet.inprocess import train_in_process
    from tintin.fleet.run import build_spec, model_from_arrays
    from tintin.fleet.workloads import get_workload
    from tintin.io.model_file import load_model, save_model

    t0 = time.perf_counter()
    fleet = get_workload(name, devices=devices, seed=seed)
    i = len(phases) - 1
    template = (fleet.build_model(seed) if i == 0 else
                load_model(model_path(Path(cache), name, devices, seed, phases[:-1], engine))[0])
    config = FleetConfig(source=fleet, model=template, seed=seed + PHASE_SEED_STRIDE * i, **phases[-1])
    if engine == "flower":
        model = run_fleet(config).model
    else:
        model = model_from_arrays(template, model_arrays(train_in_process(build_spec(config)[0])))
    save_model(model, model_path(Path(cache), name, devices, seed, phases, engine))
    return (f"{name} seed {seed}: phase {i + 1} ({phases[-1]['strategy']}, {phases[-1]['rounds']} rounds) trained "
            f"in {time.perf_counter() - t0:.0f} s ({engine})")


def train_models(wanted: list[tuple], cache: Path, engine: str, processes: int) -> None:
    """Train the models ``wanted`` (``(name, devices, seed, phases)``) not yet in ``cache``,
    ``processes`` at a time, each phase in a fresh process (Ray's state dies with it): first every
    missing one-phase prefix, then the two-phase ones, and so on, so a shared first phase is trained
    once."""
    import multiprocessing

    longest = max((len(w[3]) for w in wanted), default=0)
    ctx = multiprocessing.get_context("spawn")
    for depth in range(1, longest + 1):
        todo, seen = [], set()
        for name, devices, seed, phases in wanted:
            if len(phases) < depth:
                continue
            path = model_path(cache, name, devices, seed, phases[:depth], engine)
            if path.exists() or path in seen:
                continue
            seen.add(path)
            todo.append((name, devices, seed, phases[:depth], str(cache), engine))
        if not todo:
            continue
        with ctx.Pool(min(processes, len(todo)), maxtasksperchild=1) as pool:
            for line in pool.imap_unordered(_train_phase, todo):
                print(line, flush=True)


def describe_phases(phases: list[dict]) -> str:
    """One line per model: what each phase of its training was."""
    out = []
    for ph in phases:
        inner = "all samples" if ph.get("shots") is None else f"a fresh draw of {ph['shots']} samples"
        kind = {"reptile": "Reptile", "fomaml": "FOMAML"}.get(ph["strategy"], "FedAvg")
        batch = f" at batch {ph['batch_size']}" if ph.get("batch_size", 1) != 1 else ""
        text = (f"{ph['rounds']} rounds of {kind} ({ph['fraction']:g} of the devices per round), {ph['local_steps']} "
                f"local steps{batch} at lr {ph['lr']:g} on {inner} per round")
        if ph.get("query_steps"):
            text += (f", then {ph['query_steps']} query steps on a disjoint draw of "
                     f"{ph.get('query_shots') or ph['shots']} samples")
        if ph["strategy"] in ("reptile", "fomaml"):
            text += f", meta step {ph['meta_lr']:g}{' annealed linearly' if ph.get('meta_anneal') else ''}"
        out.append(text)
    return "; then ".join(out)


def device_spread(initial: dict, devices, seeds: tuple) -> dict:
    """Per initial model: the held-out score of the unadapted model (K = 0) on each unseen device,
    averaged over the seeds, as mean, worst and best device (how much the devices differ: the
    FedAvg model is one model for all of them)."""
    import numpy as np

    from tintin.fleet.adapt import adapt_and_score

    out = {}
    for label, init in initial.items():
        per = np.mean([[adapt_and_score(init(s), devices, i, 0, seed=s) for i in range(devices.num_devices)]
                       for s in seeds], axis=0)
        out[label] = {"per_device": [float(v) for v in per], "mean": float(per.mean()),
                      "min": float(per.min()), "max": float(per.max())}
    return out


def per_device_scores(initial: dict, devices, seeds: tuple, k: int, configs: dict):
    """``{initial model: array (seeds, devices)}`` of held-out scores after adapting with K = ``k``."""
    import numpy as np

    from tintin.fleet.adapt import adapt_and_score

    return {label: np.array([[adapt_and_score(init(s), devices, i, k, configs.get(label), seed=s)
                              for i in range(devices.num_devices)] for s in seeds])
            for label, init in initial.items()}


def paired_difference(a, b, *, draws: int = 10000, seed: int = 0) -> dict:
    """``a - b`` for two ``(seeds, devices)`` score arrays of the same devices and seeds: the mean,
    a 95% bootstrap interval (seeds and devices resampled with replacement, independently, ``draws``
    times, seeded) and the devices (scores averaged over the seeds) where ``a`` is above, level
    with, or below ``b``."""
    import numpy as np

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n_seeds, n_devices = d.shape
    rng = np.random.default_rng(seed)
    means = np.array([d[rng.integers(0, n_seeds, n_seeds)][:, rng.integers(0, n_devices, n_devices)].mean()
                      for _ in range(draws)])
    per_device, per_seed = d.mean(axis=0), d.mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(d.mean()), "low": float(lo), "high": float(hi),
            "above": int((per_device > 1e-12).sum()), "level": int((np.abs(per_device) <= 1e-12).sum()),
            "below": int((per_device < -1e-12).sum()),
            "seeds_above": int((per_seed > 1e-12).sum()), "seeds_below": int((per_seed < -1e-12).sum())}


def pair_cells(p: dict, scale: float, higher: bool) -> list:
    """One paired difference as table cells: the mean, its interval, and the devices and seeds where the
    first model is better, level and worse (``higher``: a higher score is better)."""
    better, worse = ("above", "below") if higher else ("below", "above")
    return [f"{scale * p['mean']:+.2f}", f"[{scale * p['low']:+.2f}, {scale * p['high']:+.2f}]", p[better],
            p["level"], p[worse], f"{p['seeds_' + better]} / {p['seeds_' + worse]}"]


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
    ap.add_argument("--shots", default="0,5,10,20", help="K values (K = 0: the initial model unadapted)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--passes", type=int, default=None, help="adaptation passes over the K samples")
    ap.add_argument("--settings", default=None, help="the JSON of bench/fleet_adapt_tune.py: the settings "
                    "chosen per workload and initial model on validation devices")
    ap.add_argument("--name", default="fleet_adapt")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "tintin-fleet-adapt"),
                    help="fleet models are kept here (model files, one per training phase); a rerun reuses them")
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
    from tintin.io.model_file import load_model

    shots = tuple(int(v) for v in args.shots.split(","))
    seeds = tuple(int(v) for v in args.seeds.split(","))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for path in (args.settings.split(",") if args.settings else []):
        chosen.update(json.loads(Path(path).read_text())["chosen"])
    tables, sections, rows, settings, spreads, paired = {}, [], [], {}, {}, {}
    plans = {}
    for name in args.workloads.split(","):
        base = get_workload(name, devices=args.devices, seed=0)
        defaults = DEFAULT_CONFIG[base.task]
        config = AdaptConfig(passes=args.passes or defaults.passes, lr=defaults.lr)
        lr = args.lr if args.lr is not None else config.lr
        one = {"rounds": args.rounds, "fraction": args.fraction, "local_steps": args.local_steps,
               "batch_size": args.batch_size, "lr": lr, "meta_lr": args.meta_lr, "meta_anneal": False, "shots": None}
        phases = {"reptile": [{"strategy": "reptile", **one}], "fedavg": [{"strategy": "fedavg", **one}]}
        configs = {}
        if args.settings:
            for strategy, label in (*META_MODELS.items(), ("fedavg", "fedavg"), ("scratch", "scratch")):
                c = chosen[name].get(strategy)
                if c is None:
                    continue
                configs[label] = AdaptConfig(passes=config.passes, lr=c["adapt_lr"],
                                             update=c.get("adapt_update", "full"),
                                             layer_shifts=c.get("adapt_layer_shifts", ()))
                if strategy != "scratch":
                    phases[strategy] = c["phases"]
        plans[name] = (base, config, configs, phases)
        settings[name] = {"fleet": phases, "adapt": {k: v.lr for k, v in configs.items()},
                          "adapt_update": {k: v.update for k, v in configs.items()},
                          **({"adapt_layer_shifts": {k: dict(v.layer_shifts) for k, v in configs.items()}}
                             if any(v.layer_shifts for v in configs.values()) else {})}

    # every fleet model of every workload and seed first, two at a time
    train_models([(name, args.devices, seed, phases) for name in plans for seed in seeds
                  for phases in plans[name][3].values()], cache, args.engine, args.processes)

    for name, (base, config, configs, phases) in plans.items():
        unseen = base.unseen(args.unseen)

        def fleet_model(strategy, seed, _name=name, _phases=phases):
            return load_model(model_path(cache, _name, args.devices, seed, _phases[strategy], args.engine))[0]

        initial = {label: lambda s, _f=fleet_model, _k=key: _f(_k, s) for key, label in META_MODELS.items()
                   if key in phases}
        initial.update({"fedavg": lambda s, _f=fleet_model: _f("fedavg", s),
                        "scratch": lambda s, _b=base: _b.build_model(s)})
        metas = [label for label in initial if label.endswith("(meta)")]
        # the unseen devices are those of the seed-0 fleet: the same devices for every seed and model
        table = adaptation_table(initial, unseen, shots=shots, seeds=seeds, config=config, configs=configs,
                                 progress=lambda line: print(line, flush=True))
        tables[name] = table
        spread = spreads[name] = device_spread(initial, unseen, seeds)
        plot_table(table, RESULTS / f"{args.name}_{name}.png")
        unit = "accuracy (%)" if table.metric == "accuracy" else "MSE (lower is better)"
        fmt = (lambda v: f"{100 * v:.1f}") if table.metric == "accuracy" else (lambda v: f"{v:.3f}")
        spread_md = markdown_table(
            ["initial model", "mean", "worst device", "best device"],
            [[label, fmt(d["mean"]), *(fmt(d["min"]), fmt(d["max"]))[::1 if table.metric == "accuracy" else -1]]
             for label, d in spread.items()])
        sections.append(f"### {name} ({'SYNTHETIC' if base.synthetic else 'real'}): held-out {unit} after K "
                        f"samples, mean ± std over seeds {', '.join(map(str, seeds))}\n\n{table.to_markdown()}\n\n"
                        f"Unadapted (K = 0) on each of the {unseen.num_devices} unseen devices ({unit}, each "
                        f"device averaged over the seeds):\n\n{spread_md}")
        k = 10 if 10 in shots else shots[len(shots) // 2]
        per = per_device_scores(initial, unseen, seeds, k, {label: configs.get(label, config) for label in initial})
        scale = 100 if table.metric == "accuracy" else 1
        pairs_of = {meta: {other: paired_difference(per[meta], per[other]) for other in per if other not in metas}
                    for meta in metas}
        better = "higher" if table.metric == "accuracy" else "lower"
        pair_md = markdown_table(
            ["meta model", "minus", f"mean difference ({unit})", "95% interval", "devices meta better", "level",
             "devices meta worse", "seeds meta better / worse"],
            [[meta, other, *pair_cells(p, scale, better == "higher")]
             for meta, pairs in pairs_of.items() for other, p in pairs.items()])
        dev_md = markdown_table(
            ["initial model", "mean", "worst device", "best device"],
            [[label, fmt(v.mean()), *(fmt(v.mean(0).min()), fmt(v.mean(0).max()))[::1 if better == "higher" else -1]]
             for label, v in per.items()])
        between = {f"{a} minus {b}": paired_difference(per[a], per[b])
                   for i, a in enumerate(metas) for b in metas[i + 1:]}
        between_md = "" if not between else "\n\nThe meta models against each other, paired as above:\n\n" + markdown_table(
            ["meta models", f"mean difference ({unit})", "95% interval", "devices the first is better", "level",
             "devices the first is worse", "seeds the first is better / worse"],
            [[pair, *pair_cells(p, scale, better == "higher")] for pair, p in between.items()])
        sections.append(f"At K = {k}, on each of the {unseen.num_devices} unseen devices ({unit}, each device averaged "
                        f"over the seeds):\n\n{dev_md}\n\nEach meta model against the others at K = {k}, paired (the "
                        f"same devices, seeds and samples; {better} is better for the meta model; interval: bootstrap "
                        f"over devices and seeds):\n\n{pair_md}{between_md}")
        for meta, pairs in pairs_of.items():
            decisive = all((p["low"] > 0) if better == "higher" else (p["high"] < 0) for p in pairs.values())
            rows.append([name, k, meta, table.best(k), "yes" if table.best(k) == meta else "no",
                         "yes" if decisive else "no"])
        paired[name] = {"k": k, "per_device": {label: v.tolist() for label, v in per.items()},
                        "pairs": pairs_of, "meta_minus_meta": between}

    lines = [f"- {n}: Reptile (meta): {describe_phases(st['fleet']['reptile'])}. " +
             (f"FOMAML (meta): {describe_phases(st['fleet']['fomaml'])}. " if "fomaml" in st["fleet"] else "") +
             f"FedAvg: {describe_phases(st['fleet']['fedavg'])}." +
             (f" Reptile, whole-device (meta; rule 11 of bench/fleet_adapt_tune.py: devices take their steps on "
              f"all of their samples): {describe_phases(st['fleet']['reptile-device'])}."
              if "reptile-device" in st["fleet"] else "") +
             (" Adaptation lr " + ", ".join(
                 f"{k} " + _layer_rates(v, st.get("adapt_layer_shifts", {}).get(k))
                 + ("" if st["adapt_update"][k] == "full" else f" ({st['adapt_update'][k]} only)")
                 for k, v in st["adapt"].items()) if st["adapt"] else "")
             for n, st in settings.items()]
    how = (f"settings chosen on validation devices "
           f"({', '.join(str(Path(p).with_suffix('.md')) for p in args.settings.split(','))}, never these test "
           f"devices):" if args.settings else "settings from the command line:")
    meta_names = "Reptile and FOMAML" if any("fomaml" in st["fleet"] for st in settings.values()) else "Reptile"
    meta_names = meta_names.replace("Reptile", "Reptile (10-shot and whole-device)") if any(
        "reptile-device" in st["fleet"] for st in settings.values()) else meta_names
    header = (f"## Adaptation on unseen devices: federated {meta_names} vs FedAvg-init vs scratch\n\n"
              f"{args.devices} training devices, fleet rounds "
              f"{'in Flower simulation' if args.engine == 'flower' else 'in-process (the bits of a Flower run)'}; "
              f"{args.unseen} unseen test devices adapt with K samples, "
              f"{next(iter(tables.values())).config.passes} passes at batch 1 for every initial model "
              f"(K = 0: no adaptation); {how}\n\n" + "\n".join(lines) + "\n\nBold: best per column.")
    verdict = markdown_table(["workload", "K", "meta model", "best initial model", "this meta model best",
                              "better than FedAvg-init and scratch, 95% interval clear of 0"], rows)
    markdown = "\n\n".join([header, *sections, "### Claim at K = 10", verdict])
    write_results(args.name, {"args": vars(args), "settings": settings,
                              "tables": {n: t.to_dict() for n, t in tables.items()},
                              "unadapted_per_device": spreads, "paired": paired}, markdown)


def _layer_rates(lr: float, shifts: dict | None) -> str:
    """``0.1`` (one rate) or ``fc1 0.1, fc2 0.4 (per layer, from 0.05)``: the adaptation rates."""
    if not shifts:
        return f"{lr:g}"
    return ", ".join(f"{n} {lr * 2.0 ** s:g}" for n, s in shifts.items()) + f" (per layer, from {lr:g})"


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
