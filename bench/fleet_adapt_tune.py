"""Choosing the settings of federated Reptile and of FedAvg-init on validation devices, never on
the test devices, for the adaptation benchmark (bench/fleet_adapt.py).

The rule (the same for every initial model, decided before any run):

1. Tuning seed 0 only; the fleet of ``--devices`` training devices, fraction ``--fraction``, local
   batch 1 for both strategies, local learning rate = the task's adaptation learning rate (0.05
   classification, 0.02 regression) unless a candidate says otherwise.
2. Stage 1, ``--rounds`` rounds from the random initialisation. Federated Reptile: the earlier
   setting (all of a device's samples, 10 local steps, eps 0.5 constant), and the inner task of the
   Reptile paper: a fresh draw of ``shots`` = 10 of the device's samples every round (as an unseen
   device adapts on K = 10), ``k`` local steps in {20, 80} (80 = the 8 adaptation passes over 10
   samples), meta step size ``eps`` in {0.5, 1.0} annealed linearly to 0 (the paper's schedule).
   FedAvg: local steps in {10, 80} on all of a device's samples (the same local budgets).
   Scratch: no training.
3. Stage 2, ``--extra-rounds`` more rounds from the FedAvg model chosen in stage 1 (rule 5 applied
   to the stage-1 FedAvg candidates), the same extra rounds for both strategies (a second fleet run
   seeded ``seed + 1000`` whose initial model is that FedAvg model). Federated Reptile warm-started
   from it (FedAvg, then Reptile fine-tuning of the initialisation): the stage-1 inner task (10
   shots, 80 local steps), ``eps`` in {0.5, 1.0} annealed, local learning rate in {1x, 2x}.
   FedAvg continued: its stage-1 local steps, local learning rate in {1x, 2x}.
4. Every trained model, and scratch, adapts on ``--validation`` validation devices
   (:meth:`FleetWorkload.validation`: the same distribution as the unseen test devices, other
   seeds) with K = 10 samples, 8 passes at batch 1, at adaptation learning rates {0.5x, 1x, 2x}
   the task's default: the same adaptation budget for every initial model.
5. Per initial model (reptile, fedavg, scratch) the candidate with the best mean validation score
   at K = 10 over both stages is chosen (accuracy: highest; MSE: lowest; ties: the earlier
   candidate).
6. ``--longer FILE`` (a later, separate run that reads the choices of rules 1-5 from ``FILE``):
   per strategy (reptile, fedavg) the chosen setting and the same with its last phase's rounds
   doubled (a longer Reptile phase, and FedAvg continued as long), and scratch, all rescored on
   ``--validation`` validation devices at adaptation learning rates {0.25x, 0.5x, 1x, 2x, 4x} the
   task's default, each with every layer adapting (``full``) and with the output layer only
   (``last:1``): the same grid for every initial model; the choice per initial model is rule 5's.
7. ``--fomaml FILES`` (a later, separate run; ``FILES``: the JSONs of earlier runs, comma-separated,
   a later file's choices replacing an earlier one's): federated first-order MAML (``fomaml``)
   candidates, each the chosen Reptile model's training with its last phase replaced by a FOMAML
   phase of as many rounds and the same meta step: every round a device takes the adaptation
   protocol's steps on a fresh draw of K = 10 samples (80 steps = 8 passes at batch 1, at local
   learning rate {1x, 2x} the task's adaptation lr), then ``q`` query steps in {10, 80} on a
   disjoint draw of 10 samples, and returns the received model moved by the query steps alone.
   These and the earlier choices for reptile, fedavg and scratch are all rescored on
   ``--validation`` validation devices at adaptation learning rates {0.25x, 0.5x, 1x, 2x, 4x} the
   task's default, every layer adapting: the same grid for every initial model; the choice per
   initial model is rule 5's.
8. ``--layer-rates FILES`` (a later, separate run; ``FILES`` as in rule 7): per-layer adaptation
   learning rates (Meta-SGD's per-parameter rates, kept to a power of two per layer:
   :class:`tintin.optim.layer_rates.LayerRateSGD`). The chosen reptile and fedavg models and
   scratch are rescored on ``--validation`` validation devices with layer ``L`` adapting at the
   task's adaptation lr times ``2**s_L``, every ``s_L`` in {-1, 0, 1, 2, 3} for every layer (all
   combinations, every layer adapting): the same grid for every initial model (it holds the
   uniform x0.5, x1, x2, x4 and x8 rates). The choice per initial model is rule 5's (ties: the
   earlier grid cell, the grid in ``itertools.product`` order). At each choice, the validation
   errors after adapting are split by whether the test sample's class is among the device's K
   samples (classification): where the errors come from.
9. ``--support-query FILE`` (a later, separate run; ``FILE``: rule 8's JSON): Reptile with the inner
   loop on support + query, a fresh draw of 2K = 20 samples per round instead of K (the chosen
   Reptile model's training with only its last phase's inner draw doubled: the same rounds, local
   steps, local lr and meta step), scored on rule 8's validation devices and per-layer grid; rule
   8's scores of reptile, fedavg and scratch are taken from ``FILE``; the choice per initial model
   is rule 5's.
10. ``--fomaml-query FILES`` (a later, separate run; ``FILES`` as in rule 7): federated FOMAML with a
   whole-device query draw, the float32 recipe of bench/fleet_meta_float.py in integers, from the
   random initialisation: every round 8 % of the devices (4 of 50) take 5
   steps at batch 10 on a fresh draw of K = 10 samples, then 5 steps at batch 10 on their other
   samples (``query_shots`` 54), the server adding the mean query-step displacement at meta step 1
   annealed linearly; candidates: local lr in {5x, 10x} the task's adaptation lr and {1000, 4000}
   rounds. These and the earlier choices (reptile, fomaml, fedavg, scratch) are rescored on
   ``--validation`` devices on rule 7's adaptation grid; the choice per initial model is rule 5's
   (ties: the earlier choice).
11. ``--schedule-control FILES`` (a later, separate run; ``FILES`` as in rule 7): which part of a meta
   model's training helps, its few-shot inner draws or the schedule of its server step. For each
   chosen meta model (reptile, and fomaml where chosen), the same phases with the last one's local
   steps (support plus query steps) taken on all of a device's samples: with its annealed server
   step, federated Reptile with whole-device inner loops (TinyReptile's online steps over a device's
   data; ``reptile-device``), and without it, FedAvg on the same schedule (a further ``fedavg``
   candidate: FedAvg-init is offered every schedule a meta model gets). No other grid. These and
   the earlier choices are rescored on ``--validation`` devices on rule 7's adaptation grid; the
   choice per initial model is rule 5's (ties: the earlier choice).

The rounds run in-process (:func:`tintin.fleet.inprocess.train_in_process`, the same bits as a
Flower run of the same settings, tested), two at a time; the models are cached as
bench/fleet_adapt.py caches them (the seed-0 models are shared with it). ``--reuse FILE`` takes
the stage-1 scores from an earlier run's JSON instead of retraining them; the stage-1 FedAvg model
that stage 2 starts from is retrained anyway and must score exactly as reused, or the run stops.

    .venv/bin/python bench/fleet_adapt_tune.py --workloads bearing-fleet,sine
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

LR_FACTORS = (0.5, 1.0, 2.0)
#: rule 6: adaptation lr factors and update modes, the same for every initial model
LONGER_LR_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
LONGER_UPDATES = ("full", "last:1")
LOCAL_LR_FACTORS = (1.0, 2.0)
META_STEPS = (0.5, 1.0)
#: rule 7: FOMAML's query steps per round
QUERY_STEPS = (10, 80)
#: rule 8: each layer's adaptation lr is the task's times 2**s, s from this grid
LAYER_SHIFTS = (-1, 0, 1, 2, 3)
K = 10
PASSES = 8
SEED = 0


def _phase(strategy: str, rounds: int, fraction: float, lr: float, local_steps: int, shots=None,
           meta_lr: float = 0.5, meta_anneal: bool = False) -> dict:
    return {"strategy": strategy, "rounds": rounds, "fraction": fraction, "batch_size": 1, "lr": lr,
            "local_steps": local_steps, "shots": shots, "meta_lr": meta_lr, "meta_anneal": meta_anneal}


def stage1(rounds: int, fraction: float, lr: float) -> list[dict]:
    """The candidates of rule 2, in order (ties go to the earlier one): ``{"strategy", "phases"}``."""
    out = [{"strategy": "reptile", "phases": [_phase("reptile", rounds, fraction, lr, 10)]}]
    for steps in (20, 80):
        for eps in META_STEPS:
            out.append({"strategy": "reptile",
                        "phases": [_phase("reptile", rounds, fraction, lr, steps, 10, eps, True)]})
    for steps in (10, 80):
        out.append({"strategy": "fedavg", "phases": [_phase("fedavg", rounds, fraction, lr, steps)]})
    return out


def stage2(base: list[dict], extra: int, lr: float) -> list[dict]:
    """The candidates of rule 3 from the chosen stage-1 FedAvg ``base`` (its phases)."""
    fraction, steps = base[0]["fraction"], base[0]["local_steps"]
    out = []
    for eps in META_STEPS:
        for f in LOCAL_LR_FACTORS:
            out.append({"strategy": "reptile",
                        "phases": base + [_phase("reptile", extra, fraction, lr * f, 80, 10, eps, True)]})
    for f in LOCAL_LR_FACTORS:
        out.append({"strategy": "fedavg", "phases": base + [_phase("fedavg", extra, fraction, lr * f, steps)]})
    return out


def longer_candidates(chosen: dict) -> list[dict]:
    """The candidates of rule 6 from one workload's earlier choices (``chosen[strategy]["phases"]``)."""
    out = []
    for strategy in ("reptile", "fedavg"):
        phases = chosen[strategy]["phases"]
        longer = copy.deepcopy(phases)
        longer[-1]["rounds"] *= 2
        out += [{"strategy": strategy, "phases": phases}, {"strategy": strategy, "phases": longer}]
    return out + [{"strategy": "scratch", "phases": []}]


def fomaml_candidates(chosen: dict, lr: float) -> list[dict]:
    """The candidates of rule 7 from one workload's earlier choices, then those choices themselves."""
    base = chosen["reptile"]["phases"]
    last = base[-1]
    out = []
    for f in LOCAL_LR_FACTORS:
        for q in QUERY_STEPS:
            phase = _phase("fomaml", last["rounds"], last["fraction"], lr * f, PASSES * K, K, last["meta_lr"],
                           last["meta_anneal"])
            phase["query_steps"] = q
            out.append({"strategy": "fomaml", "phases": base[:-1] + [phase]})
    return out + [{"strategy": s, "phases": chosen[s]["phases"]} for s in ("reptile", "fedavg")] + \
        [{"strategy": "scratch", "phases": []}]


#: rule 10: FOMAML with a whole-device query draw (bench/fleet_meta_float.py's fomaml-sgd)
QUERY_RULE_LR_FACTORS = (5.0, 10.0)
QUERY_RULE_ROUNDS = (1000, 4000)
QUERY_RULE_PHASE = {"fraction": 0.08, "batch_size": 10, "local_steps": 5, "shots": K, "meta_lr": 1.0,
                    "meta_anneal": True, "query_steps": 5, "query_shots": 54}


def query_candidates(chosen: dict, lr: float) -> list[dict]:
    """The candidates of rule 10, then one workload's earlier choices (ties go to those)."""
    earlier = [{"strategy": s, "phases": chosen[s]["phases"]} for s in ("reptile", "fomaml", "fedavg") if s in chosen]
    new = [{"strategy": "fomaml", "phases": [{"strategy": "fomaml", "rounds": r, "lr": lr * f, **QUERY_RULE_PHASE}]}
           for f in QUERY_RULE_LR_FACTORS for r in QUERY_RULE_ROUNDS]
    return earlier + new + [{"strategy": "scratch", "phases": []}]


def schedule_control(chosen: dict) -> list[dict]:
    """Rule 11's candidates: for each chosen meta model, its training with the last phase's support
    and query steps taken as plain local steps on all of a device's samples, with the annealed
    server step (``reptile-device``) and without it (``fedavg``)."""
    out = []
    for meta in ("reptile", "fomaml"):
        if meta not in chosen:
            continue
        phases = copy.deepcopy(chosen[meta]["phases"])
        last = phases[-1]
        last.update(strategy="reptile", shots=None, local_steps=last["local_steps"] + last.pop("query_steps", 0))
        last.pop("query_shots", None)
        plain = copy.deepcopy(phases)
        plain[-1].update(strategy="fedavg", meta_lr=0.5, meta_anneal=False)  # FedAvg ignores the meta step
        out += [{"strategy": "reptile-device", "phases": phases}, {"strategy": "fedavg", "phases": plain}]
    return out


def score_key(lr: float, update: str, shifts: dict | None = None) -> str:
    """The key of one adaptation setting in a candidate's ``scores``: ``"0.1"`` (every layer),
    ``"0.1@last:1"``, or with per-layer rates (rule 8) ``"0.05#fc1=1,fc2=-1"``."""
    key = f"{lr:g}" if update == "full" else f"{lr:g}@{update}"
    return key + ("#" + ",".join(f"{n}={s}" for n, s in shifts.items()) if shifts else "")


def parse_key(key: str) -> tuple[float, str, list]:
    """``(lr, update, [[layer, shift], ...])`` of a :func:`score_key`."""
    head, _, shifts = key.partition("#")
    lr, _, update = head.partition("@")
    pairs = [[n, int(v)] for n, v in (item.split("=") for item in shifts.split(","))] if shifts else []
    return float(lr), update or "full", pairs


def class_split_errors(model, val, config) -> dict:
    """Rule 8's diagnostic: validation errors after adapting with K samples, split by whether the
    test sample's class is among the device's K samples (``present``) or not (``absent``), and the
    same split for the unadapted model: ``{"adapted"|"unadapted": {"present"|"absent": [errors,
    samples]}}``."""
    import numpy as np

    from tintin.fleet.adapt import adapt, shot_indices
    from tintin.nn import Context
    from tintin.numerics import QTensor, Scale
    from tintin.train.step import predict_argmax

    out = {"adapted": {"present": [0, 0], "absent": [0, 0]}, "unadapted": {"present": [0, 0], "absent": [0, 0]}}
    for i in range(val.num_devices):
        x, y = val.device_train(i)
        xt, yt = val.device_test(i)
        idx = shot_indices(len(x), K, i, 0)
        seen = {int(v) for v in y[idx]}
        adapted = adapt(model, x[idx], y[idx], config, seed=0)
        for label, m in (("adapted", adapted), ("unadapted", model)):
            ctx = Context(mode=m.config.scale_mode, training=False)
            pred = predict_argmax(m.forward(QTensor(xt, Scale(m.input_exponent)), ctx).m)
            for p, t in zip(pred, yt):
                cell = out[label]["present" if int(t) in seen else "absent"]
                cell[0] += int(p != t)
                cell[1] += 1
    return out


def validation_scores(job: tuple) -> dict:
    """Mean validation score at K = 10 for each adaptation setting of rule 4 (or rule 6)."""
    name, cand, args = job
    import numpy as np

    from fleet_adapt import model_path

    from tintin.fleet.adapt import DEFAULT_CONFIG, AdaptConfig, adapt_and_score
    from tintin.fleet.workloads import get_workload
    from tintin.io.model_file import load_model

    fleet = get_workload(name, devices=args["devices"], seed=SEED)
    val = fleet.validation(args["validation"])
    lr = DEFAULT_CONFIG[fleet.task].lr
    if cand["strategy"] == "scratch":
        model = fleet.build_model(SEED)
    else:
        model = load_model(model_path(Path(args["cache"]), name, args["devices"], SEED, cand["phases"], "inprocess"))[0]
    out = {}
    if args.get("layer_grid"):
        import itertools

        layers = list(dict.fromkeys(p.name.rsplit(".", 1)[0] for p in model.parameters()))
        for cell in itertools.product(LAYER_SHIFTS, repeat=len(layers)):
            shifts = dict(zip(layers, cell))
            config = AdaptConfig(passes=PASSES, lr=lr, layer_shifts=shifts)
            out[score_key(lr, "full", shifts)] = float(np.mean([adapt_and_score(model, val, i, K, config, seed=0)
                                                                for i in range(val.num_devices)]))
        result = {"workload": name, **cand, "scores": out}
        if fleet.task == "classification":
            best_lr, _, pairs = parse_key(max(out.items(), key=lambda kv: kv[1])[0])
            result["class_split"] = class_split_errors(model, val, AdaptConfig(passes=PASSES, lr=best_lr,
                                                                               layer_shifts=dict(pairs)))
        return result
    for update in args.get("updates", ("full",)):
        for f in args.get("lr_factors", LR_FACTORS):
            config = AdaptConfig(passes=PASSES, lr=lr * f, update=update)
            out[score_key(lr * f, update)] = float(np.mean([adapt_and_score(model, val, i, K, config, seed=0)
                                                            for i in range(val.num_devices)]))
    return {"workload": name, **cand, "scores": out}


def evaluate(name: str, cands: list[dict], args: dict, processes: int) -> list[dict]:
    """Train (or take from the cache) and score ``cands`` of workload ``name``."""
    from fleet_adapt import train_models

    train_models([(name, args["devices"], SEED, c["phases"]) for c in cands if c["strategy"] != "scratch"],
                 Path(args["cache"]), "inprocess", processes)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(validation_scores, [(name, c, args) for c in cands])
    for r in results:
        print(json.dumps(r), flush=True)
    return results


def best_of(results: list[dict], strategy: str, higher: bool) -> dict:
    """Rule 5: the best candidate of ``strategy`` (and its best adaptation lr)."""
    best = None
    for r in results:
        if r["strategy"] != strategy:
            continue
        key, value = (max if higher else min)(r["scores"].items(), key=lambda kv: kv[1])
        if best is None or (value > best["value"] if higher else value < best["value"]):
            lr, update, pairs = parse_key(key)
            best = {"value": value, "adapt_lr": lr, "adapt_update": update, "phases": r.get("phases", [])}
            if pairs:
                best["adapt_layer_shifts"] = pairs
    return best


def reused_stage1(path: str, name: str, cands: list[dict], rounds: int) -> list[dict] | None:
    """Stage-1 scores of ``cands`` from an earlier run's JSON (None when one is missing). Earlier
    runs wrote flat settings (shots, local_steps, meta_lr, meta_anneal at ``rounds`` rounds)."""
    data = json.loads(Path(path).read_text())
    old = data.get("candidates", [])
    out = []
    for c in cands:
        ph = c["phases"][0]
        hit = None
        for r in old:
            if r.get("workload") != name or r.get("strategy") != c["strategy"]:
                continue
            if "phases" in r:
                same = r["phases"] == c["phases"]
            else:
                same = (data["args"]["rounds"] == rounds and r["shots"] == ph["shots"]
                        and r["local_steps"] == ph["local_steps"] and
                        (c["strategy"] == "fedavg" or (r["meta_lr"] == ph["meta_lr"]
                                                       and bool(r["meta_anneal"]) == ph["meta_anneal"])))
            if same:
                hit = r
                break
        if hit is None:
            return None
        out.append({"workload": name, **c, "scores": hit["scores"], "reused": True})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="bearing-fleet,sine")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--validation", type=int, default=15, help="validation devices")
    ap.add_argument("--rounds", type=int, default=60, help="stage-1 rounds")
    ap.add_argument("--extra-rounds", type=int, default=30, help="stage-2 rounds after the chosen FedAvg model")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--reuse", default=None, help="an earlier run's JSON: take the stage-1 scores from it")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "tintin-fleet-adapt"),
                    help="fleet models are kept here (shared with bench/fleet_adapt.py)")
    ap.add_argument("--name", default="fleet_adapt_tuning")
    ap.add_argument("--fomaml", default=None, help="rule 7: the JSONs of earlier runs (comma-separated): FOMAML "
                    "candidates from their choices, all rescored")
    ap.add_argument("--fomaml-query", default=None, help="rule 10: the JSONs of earlier runs (comma-separated): "
                    "FOMAML with a whole-device query draw against their choices")
    ap.add_argument("--schedule-control", default=None, help="rule 11: the JSONs of earlier runs (comma-separated): "
                    "their meta models' schedules with whole-device inner loops (Reptile and FedAvg), against their choices")
    ap.add_argument("--layer-rates", default=None, help="rule 8: the JSONs of earlier runs (comma-separated): "
                    "their choices rescored with per-layer adaptation rates")
    ap.add_argument("--support-query", default=None, help="rule 9: rule 8's JSON: Reptile with its inner draw "
                    "doubled (support + query), on rule 8's grid")
    ap.add_argument("--longer", default=None, help="rule 6: the JSON of an earlier run (rules 1-5): rescore its "
                    "choices and their longer last phases")
    args = ap.parse_args(argv)

    from _common import markdown_table, write_results

    from tintin.fleet.adapt import DEFAULT_CONFIG
    from tintin.fleet.workloads import get_workload

    shared = {"devices": args.devices, "validation": args.validation, "cache": args.cache}
    if args.longer:
        shared.update(lr_factors=LONGER_LR_FACTORS, updates=LONGER_UPDATES)
        earlier = json.loads(Path(args.longer).read_text())["chosen"]
    if sum(bool(a) for a in (args.fomaml, args.fomaml_query, args.schedule_control)) > 1:
        raise SystemExit("error: give one of --fomaml (rule 7), --fomaml-query (rule 10) and --schedule-control "
                         "(rule 11)")
    # rules 7, 10 and 11 rescore the earlier choices alike
    rescored_files = args.fomaml or args.fomaml_query or args.schedule_control
    if rescored_files:
        shared.update(lr_factors=LONGER_LR_FACTORS, updates=("full",))
        earlier = {}
        for path in rescored_files.split(","):
            earlier.update(json.loads(Path(path).read_text())["chosen"])
    if args.support_query:
        shared.update(layer_grid=True)
        rule8 = json.loads(Path(args.support_query).read_text())
        if rule8["args"]["validation"] != args.validation or rule8["args"]["devices"] != args.devices:
            raise SystemExit(f"error: {args.support_query} was scored on {rule8['args']['validation']} validation "
                             f"devices of a {rule8['args']['devices']}-device fleet: give the same --validation and "
                             "--devices")
        args.layer_rates = args.support_query
    if args.layer_rates:
        shared.update(layer_grid=True)
        earlier = {}
        for path in args.layer_rates.split(","):
            earlier.update(json.loads(Path(path).read_text())["chosen"])
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    scratch = {"strategy": "scratch", "phases": []}
    results, chosen, sections = [], {}, []
    for name in args.workloads.split(","):
        task = get_workload(name, devices=1, seed=0).task
        higher = task == "classification"
        lr = DEFAULT_CONFIG[task].lr
        if args.layer_rates:
            if name not in earlier:
                raise SystemExit(f"error: {args.layer_rates} has no settings for {name}")
            if args.support_query:
                phases = copy.deepcopy(earlier[name]["reptile"]["phases"])
                phases[-1]["shots"] = 2 * K
                new = evaluate(name, [{"strategy": "reptile", "phases": phases}], shared, args.processes)
                rows_of = [r for r in rule8["candidates"] if r["workload"] == name] + new  # ties: rule 8's
            else:
                rows_of = evaluate(name, [{"strategy": s, "phases": earlier[name][s]["phases"]}
                                          for s in ("reptile", "fedavg")] + [scratch], shared, args.processes)
            sections.append(layer_rate_section(name, rows_of, higher, lr, args))
            results += rows_of
            chosen[name] = {k: best_of(rows_of, k, higher) for k in ("reptile", "fedavg", "scratch")}
            continue
        if rescored_files:
            if name not in earlier:
                raise SystemExit(f"error: {rescored_files} has no settings for {name}")
            if args.schedule_control:
                cands = ([{"strategy": s, "phases": earlier[name][s]["phases"]} for s in ("reptile", "fomaml", "fedavg")
                          if s in earlier[name]] + schedule_control(earlier[name]) + [scratch])
            elif args.fomaml_query:
                cands = query_candidates(earlier[name], lr)
            else:
                cands = fomaml_candidates(earlier[name], lr)
            rows_of = evaluate(name, cands, shared, args.processes)
        elif args.longer:
            if name not in earlier:
                raise SystemExit(f"error: {args.longer} has no settings for {name}")
            rows_of = evaluate(name, longer_candidates(earlier[name]), shared, args.processes)
        else:
            first = stage1(args.rounds, args.fraction, lr)
            got = reused_stage1(args.reuse, name, first, args.rounds) if args.reuse else None
            if got is None:
                got = evaluate(name, first, shared, args.processes)
            got += evaluate(name, [scratch], shared, 1)
            base = best_of(got, "fedavg", higher)
            second = stage2(base["phases"], args.extra_rounds, lr)
            check = {"strategy": "fedavg", "phases": base["phases"]}
            later = evaluate(name, [check] + second, shared, args.processes)
            if later[0]["scores"] != next(r["scores"] for r in got if r.get("phases") == base["phases"]):
                raise SystemExit(f"error: {name}: the retrained stage-1 FedAvg model does not score as the reused "
                                 "results say (other code or settings): rerun without --reuse")
            rows_of = got + later[1:]
        results += rows_of
        kinds = [k for k in ("reptile", "fomaml", "reptile-device", "fedavg", "scratch")
                 if any(r["strategy"] == k for r in rows_of)]  # the initial models this rule scored
        best = {k: best_of(rows_of, k, higher) for k in kinds}
        chosen[name] = best

        fmt = (lambda v: f"{100 * v:.2f}") if higher else (lambda v: f"{v:.3f}")

        def describe(r):
            ph = r["phases"]
            if not ph:
                return ["-", "-", "-", "-", "-"]
            last = ph[-1]
            start = "random init" if len(ph) == 1 else f"FedAvg model ({ph[0]['rounds']} rounds)"
            query = (f" + {last['query_steps']} query on {last.get('query_shots') or last['shots']}"
                     if last.get("query_steps") else "")
            batch = f" (batch {last['batch_size']})" if last.get("batch_size", 1) != 1 else ""
            return [start, last["rounds"], "all" if last["shots"] is None else last["shots"],
                    f"{last['local_steps']}{query} at lr {last['lr']:g}{batch}",
                    "-" if last["strategy"] not in ("reptile", "fomaml") else
                    f"{last['meta_lr']:g}{' annealed' if last['meta_anneal'] else ''}"]

        unit = "accuracy (%)" if higher else "MSE"
        heads = ["initial model", "trained from", "rounds", "inner samples", "local steps", "meta step"]
        if args.longer or rescored_files:
            grid = [(f, u) for u in shared["updates"] for f in LONGER_LR_FACTORS]
            heads += [f"x{f:g}{'' if u == 'full' else ' ' + u}" for f, u in grid]
            rows = [[r["strategy"], *describe(r), *[fmt(r["scores"][score_key(lr * f, u)]) for f, u in grid]]
                    for r in rows_of]
        else:
            heads += [f"{unit} at adapt lr x{f:g}" for f in LR_FACTORS]
            rows = [[r["strategy"], *describe(r), *[fmt(v) for v in r["scores"].values()]] for r in rows_of]
        pick = markdown_table(["initial model", "trained from", "rounds", "inner samples", "local steps", "meta step",
                               "adapt lr", "adapted layers", f"validation {unit}"],
                              [[k, *describe(b), f"{b['adapt_lr']:g}", b["adapt_update"], fmt(b["value"])]
                               for k, b in best.items()])
        grid_note = (f" (columns: adaptation lr as a multiple of the task's {lr:g}; every layer, or `last:1` the "
                     "output layer only)") if args.longer else ""
        sections.append(f"### {name}: validation {unit} at K = {K} ({args.validation} validation devices)"
                        f"{grid_note}\n\n{markdown_table(heads, rows)}\n\nChosen:\n\n{pick}")
    if args.support_query:
        header = (f"## Reptile with the inner loop on support + query (a fresh draw of {2 * K} samples per round), on "
                  f"rule 8's validation devices and per-layer grid (rule 9 of bench/fleet_adapt_tune.py; seed {SEED}; "
                  f"{args.devices} training devices; the other rows are those of {args.support_query}; adaptation: "
                  f"K = {K}, {PASSES} passes, every layer)\n\nThe test devices of bench/fleet_adapt.py are never "
                  "used here.")
    elif args.layer_rates:
        header = (f"## Per-layer adaptation learning rates (Meta-SGD's rates as a power of two per layer), rescored "
                  f"on validation devices (rule 8 of bench/fleet_adapt_tune.py; seed {SEED}; {args.devices} training "
                  f"devices; the models are the choices of {args.layer_rates}; adaptation: K = {K}, {PASSES} passes, "
                  "every layer)\n\nThe test devices of bench/fleet_adapt.py are never used here.")
    elif args.schedule_control:
        header = (f"## Federated Reptile with whole-device inner loops on the chosen meta models' schedules, and "
                  f"FedAvg on the same schedules (their support and query steps taken on all of a device's "
                  f"samples, the same rounds, devices, batch and lr, with and without the annealed server step), "
                  f"against the earlier choices, all rescored on validation devices (rule 11 of "
                  f"bench/fleet_adapt_tune.py; seed {SEED}; {args.devices} training devices; the earlier choices are "
                  f"those of {args.schedule_control}; adaptation: K = {K}, {PASSES} passes, every layer)\n\nThe "
                  "test devices of bench/fleet_adapt.py are never used here.")
    elif args.fomaml_query:
        header = (f"## Federated FOMAML with a whole-device query draw against the earlier choices, all rescored on "
                  f"validation devices (rule 10 of bench/fleet_adapt_tune.py; seed {SEED}; {args.devices} training "
                  f"devices; the earlier choices are those of {args.fomaml_query}; adaptation: K = {K}, {PASSES} "
                  "passes, every layer)\n\nThe test devices of bench/fleet_adapt.py are never used here.")
    elif args.fomaml:
        header = (f"## Federated first-order MAML (FOMAML) against the earlier choices, all rescored on validation "
                  f"devices (rule 7 of bench/fleet_adapt_tune.py; seed {SEED}; {args.devices} training devices; the "
                  f"earlier choices are those of {args.fomaml}; adaptation: K = {K}, {PASSES} passes, every "
                  "layer)\n\nThe test devices of bench/fleet_adapt.py are never used here.")
    elif args.longer:
        header = (f"## Longer last phases, rescored on validation devices (rule 6 of bench/fleet_adapt_tune.py; seed "
                  f"{SEED}; {args.devices} training devices; the earlier choices are those of {args.longer}; "
                  f"adaptation: K = {K}, {PASSES} passes)\n\n"
                  "The test devices of bench/fleet_adapt.py are never used here.")
    else:
        header = (f"## Settings chosen on validation devices (seed {SEED}; {args.devices} training devices, fraction "
                  f"{args.fraction}, local batch 1; stage 1: {args.rounds} rounds from the random initialisation; "
                  f"stage 2: {args.extra_rounds} more rounds from the chosen stage-1 FedAvg model; adaptation: "
                  f"K = {K}, {PASSES} passes)\n\n"
                  "The rule is the docstring of bench/fleet_adapt_tune.py; the test devices of bench/fleet_adapt.py "
                  "are never used here.")
    write_results(args.name, {"args": vars(args), "candidates": results, "chosen": chosen},
                  "\n\n".join([header, *sections]))


def row_label(r: dict) -> str:
    """``reptile (inner draw 10 samples)``, ``fedavg``, ``scratch``: a candidate of rules 8 and 9."""
    inner = r["phases"][-1]["shots"] if r["phases"] else None
    return f"{r['strategy']} (inner draw {inner} samples)" if inner else r["strategy"]


def layer_rate_section(name: str, rows_of: list[dict], higher: bool, lr: float, args) -> str:
    """Rule 8's tables: per initial model the validation score over the per-layer grid (a matrix
    for two layers), the choices, and where the errors at each choice come from."""
    from _common import markdown_table

    fmt = (lambda v: f"{100 * v:.2f}") if higher else (lambda v: f"{v:.3f}")
    unit = "accuracy (%)" if higher else "MSE"
    parts = [f"### {name}: validation {unit} at K = {K} ({args.validation} validation devices); layer L adapts at "
             f"{lr:g} x 2^s_L"]
    for r in rows_of:
        cells = {tuple(s for _, s in parse_key(k)[2]): v for k, v in r["scores"].items()}
        layers = [n for n, _ in parse_key(next(iter(r["scores"])))[2]]
        if len(layers) == 2:
            table = markdown_table([f"s_{layers[0]} \\ s_{layers[1]}", *map(str, LAYER_SHIFTS)],
                                   [[str(a), *[fmt(cells[(a, b)]) for b in LAYER_SHIFTS]] for a in LAYER_SHIFTS])
        else:
            table = markdown_table([*(f"s_{n}" for n in layers), unit],
                                   [[*map(str, c), fmt(v)] for c, v in cells.items()])
        parts.append(f"{row_label(r)}:\n\n{table}")
    best = {k: best_of(rows_of, k, higher) for k in ("reptile", "fedavg", "scratch")}
    parts.append("Chosen:\n\n" + markdown_table(
        ["initial model", "layer rates", f"validation {unit}"],
        [[row_label({"strategy": k, **b}), ", ".join(f"{n} {lr * 2 ** s:g}" for n, s in b.get("adapt_layer_shifts", [])),
          fmt(b["value"])]
         for k, b in best.items()]))
    split = [r for r in rows_of if "class_split" in r]
    if split:
        def cell(c):
            return f"{c[0]} / {c[1]} ({100 * c[0] / max(c[1], 1):.1f} %)"
        parts.append(
            "Where the errors come from, at each choice: validation errors / test samples of classes present "
            f"in, or absent from, the device's K = {K} samples:\n\n" + markdown_table(
                ["initial model", "adapted: present", "adapted: absent", "unadapted: present", "unadapted: absent"],
                [[row_label(r), cell(r["class_split"]["adapted"]["present"]), cell(r["class_split"]["adapted"]["absent"]),
                  cell(r["class_split"]["unadapted"]["present"]), cell(r["class_split"]["unadapted"]["absent"])]
                 for r in split]))
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
