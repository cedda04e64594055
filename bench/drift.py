"""Online learning under drift: test-then-train on every drift scenario tintin registers
(``tintin.online.scenario_names``), the frozen model beside integer online learning, its float32
twin (same initial weights, update mode and learning rate) and river.

Each scenario runs on the data set it is about: the sensor scenarios, the shaft-speed change and
recurring concepts on SYNTHETIC bearing vibration (cnn1d), the image scenarios on digits (MLP);
``scenario@dataset`` picks another. A zoo model is pretrained on each stream's concept-A data (one
model per distinct pretraining set), then every learner runs the same stream
(``tintin.online.prequential.compare_on_stream``). The frozen model and river do not depend on the
update mode: they run once per stream. The claim checked: integer online learning beats the frozen
model and stays within 1.0 point of float32 online learning with the same update mode.

    .venv/bin/python bench/drift.py --updates full,last:1
    .venv/bin/python bench/drift.py --scenarios bearing_speed,rotation@mnist5k --updates full --no-river
    .venv/bin/python bench/drift.py --scenarios bearing_speed,recurring --keep-others

``--keep-others`` reruns the named scenarios only and keeps the other runs of the existing results
file (marked in the table, with the command that produced them).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

#: the data set a scenario runs on unless ``scenario@dataset`` says otherwise
IMAGE_SCENARIOS = ("rotation", "thickness")
#: the zoo model of each data set
MODELS = {"bearing": "cnn1d", "digits": "mlp", "mnist5k": "mlp", "fashion": "mlp"}
#: learners that do not depend on the update mode
SHARED = ("frozen", "river")


def dataset_of(spec: str) -> tuple[str, str]:
    scenario, _, dataset = spec.partition("@")
    return scenario, dataset or ("digits" if scenario in IMAGE_SCENARIOS else "bearing")


def main(argv=None) -> None:
    from tintin.online import scenario_names

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default=",".join(scenario_names()),
                    help="comma-separated scenario or scenario@dataset (default: every registered scenario)")
    ap.add_argument("--window-samples", type=int, default=1024, help="bearing: samples per vibration window")
    ap.add_argument("--updates", default="full,last:1")
    ap.add_argument("--length", type=int, default=2400)
    ap.add_argument("--lr", type=float, default=None,
                    help="online learning rate (default: tintin.online.online_lr, pretraining lr / batch size)")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--name", default="drift")
    ap.add_argument("--no-river", action="store_true", help="skip the river anchor")
    ap.add_argument("--keep-others", action="store_true",
                    help="keep the runs of other scenarios / updates from the existing results file")
    args = ap.parse_args(argv)

    from _common import RESULTS

    from tintin.cli.stream import planned_sram
    from tintin.data import load
    from tintin.nn import build_model, training_defaults
    from tintin.online import make_stream, online_lr
    from tintin.online.plot import plot_windowed_accuracy
    from tintin.online.prequential import compare_on_stream
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig, fit

    specs = [dataset_of(s) for s in args.scenarios.split(",")]
    updates = args.updates.split(",")
    kept = _kept_records(RESULTS / f"{args.name}.json", specs, updates) if args.keep_others else []
    datasets, pretrained, records = {}, {}, []
    for scenario, dataset in specs:
        if dataset not in datasets:
            datasets[dataset] = load(dataset, **({"length": args.window_samples} if dataset == "bearing" else {}))
        stream = make_stream(scenario, datasets[dataset], length=args.length, seed=args.seed)
        name = MODELS[dataset]
        d = training_defaults(name)
        lr = args.lr if args.lr is not None else online_lr(d.lr, d.batch_size)
        optim = OptimConfig(lr=lr)
        key = (name, hashlib.sha256(stream.x_pretrain.tobytes() + stream.y_pretrain.tobytes()).hexdigest())
        if key not in pretrained:  # scenarios with the same concept-A data share the pretrained model
            model = build_model(name, stream.sample_shape, stream.num_classes, seed=args.seed,
                                input_exponent=stream.input_exponent)
            fit(model, stream.x_pretrain, stream.y_pretrain,
                TrainConfig(epochs=args.pretrain_epochs, batch_size=d.batch_size, seed=args.seed,
                            eval_each_epoch=False,
                            optim=OptimConfig(lr=d.lr, momentum_shift=d.momentum_shift,
                                              lr_schedule=d.lr_schedule(args.pretrain_epochs))))
            pretrained[key] = model
        model = pretrained[key]
        shared = {}
        for update in updates:
            learners = ("integer", "float") + tuple(n for n in SHARED if n not in shared
                                                    and not (n == "river" and args.no_river))
            result = compare_on_stream(copy.deepcopy(model), stream, update, optim, args.seed, 0, args.window,
                                       learners)
            for n in SHARED:
                if n in result.scores:
                    shared[n] = result.scores[n]
                elif n in shared:
                    result.scores[n] = shared[n]
            result.scores = {n: result.scores[n] for n in ("frozen", "integer", "float", "river") if n in result.scores}
            r = result.to_dict()
            r.update(scenario=scenario, dataset=dataset, model=name, lr=lr,
                     planned_sram_bytes=planned_sram(model, update, optim)[update])
            r["plot"] = plot_windowed_accuracy(result, RESULTS / f"{args.name}_{dataset}_{scenario}_"
                                               f"{update.replace(':', '')}.png").name
            integer, frozen, flt = (100 * r[k] for k in ("prequential_accuracy", "frozen_accuracy",
                                                         "float_prequential_accuracy"))
            r.update(integer_minus_frozen=integer - frozen, integer_minus_float=integer - flt,
                     claim_holds=bool(integer > frozen and abs(integer - flt) <= 1.0))
            records.append(r)
            print(" | ".join(_row(r)), flush=True)
            _write(args, len(specs) * len(updates), records, kept)  # after every run


def _kept_records(path: Path, specs, updates) -> list[dict]:
    """The records of ``path`` (an earlier results file) that this run does not redo, each with the
    command that produced it (``from_command``)."""
    import json

    if not path.exists():
        return []
    old = json.loads(path.read_text())
    redo = {(s, d, u) for s, d in specs for u in updates}
    produced = f"{old['command']} (commit {old.get('machine', {}).get('commit')})"
    return [dict(r, from_command=r.get("from_command", produced)) for r in old["records"]
            if (r["scenario"], r["dataset"], r["update"]) not in redo]


def _row(r: dict) -> list[str]:
    integer, frozen, flt = (100 * r[k] for k in ("prequential_accuracy", "frozen_accuracy",
                                                 "float_prequential_accuracy"))
    river = "-" if r["river_prequential_accuracy"] is None else f"{100 * r['river_prequential_accuracy']:.2f}"
    rec = ", ".join("never" if v is None else str(v) for v in r["recovery_samples"])
    forget = "-" if r["forgetting"] is None else f"{100 * r['forgetting']:+.1f}"
    mark = " (earlier run)" if "from_command" in r else ""
    return [f"[{r['scenario']}]({r['plot']}){mark}", r["dataset"], f"{r['model']} {r['update']}", f"{r['lr']:g}",
            f"{frozen:.2f}", f"{integer:.2f}", f"{flt:.2f}", river, f"{integer - frozen:+.2f}",
            f"{integer - flt:+.2f}", rec, forget, f"{r['planned_sram_bytes']:,}", "yes" if r["claim_holds"] else "NO"]


def _write(args, planned_runs: int, new: list[dict], kept: list[dict]) -> None:
    from _common import markdown_table, write_results

    from tintin.online import scenario_names

    order = {s: i for i, s in enumerate(scenario_names())}
    records = sorted(kept + new, key=lambda r: (order.get(r["scenario"], len(order)), r["dataset"]))
    rows = [_row(r) for r in records]
    older = sorted({r["from_command"] for r in kept})

    headers = ["scenario (plot)", "data", "model, update", "online lr", "frozen %", "integer online %",
               "float32 online %", "river %", "int - frozen", "int - float", "recovery (samples)",
               "forgetting (points)", "planned SRAM B", "claim"]
    holds = sum(r["claim_holds"] for r in records)
    md = (f"# Online learning under drift: every registered scenario\n\n"
          f"Prequential (test-then-train) accuracy over {args.length}-sample streams, seed {args.seed}. Each zoo "
          f"model is pretrained {args.pretrain_epochs} epochs on the stream's concept-A data with its default "
          f"settings, then learns online at batch 1 with "
          + (f"lr {args.lr:g}" if args.lr is not None else
             "the documented rule (`tintin.online.online_lr`: pretraining lr / batch size, no momentum: cnn1d "
             "0.05 / 32, MLP 0.5 / 32)")
          + f". bearing: SYNTHETIC vibration windows of {args.window_samples} samples (bearing_speed and recurring "
          f"sampled synchronously with the shaft, see `tintin.online.drift`); digits: the real 8x8 digits. "
          f"Frozen and river do not depend on the update mode (run once per stream). Recovery window "
          f"{args.window} samples; forgetting: accuracy on concept A before it left minus after it returned. "
          f"Claim: integer online > frozen and within 1.0 point of float32 online (same update mode): "
          f"holds in {holds} of {len(records)} runs.\n\n"
          + markdown_table(headers, rows)
          + ("\n\nriver (the ecosystem's anchor) was not run (`--no-river`)." if args.no_river else "")
          + (f"\n\nIncomplete: {len(new)} of {planned_runs} runs so far." if len(new) < planned_runs else "")
          + "".join(f"\n\nRuns marked (earlier run) are kept from an earlier results file (their streams and "
                    f"models do not depend on what changed since), produced by: `{c}`" for c in older))
    write_results(args.name, {"records": records, "args": vars(args)}, md)


if __name__ == "__main__":
    main()
