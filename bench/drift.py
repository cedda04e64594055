"""Online learning under drift: test-then-train on tintin's seeded drift scenarios (bearing shaft
speed, sensor gain, a new fault class), the frozen model beside integer online learning, its
float32 twin (same initial weights, update mode and learning rate) and river.

A zoo model is pretrained on each stream's concept-A data, then every learner runs the same stream
(``tintin.online.prequential.compare_on_stream``). The claim checked: integer online learning beats
the frozen model and stays within 1.0 point of float32 online learning with the same update mode.

    .venv/bin/python bench/drift.py --scenarios bearing_speed,sensor_gain,new_class --updates full,last:1
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default="bearing_speed,sensor_gain,new_class")
    ap.add_argument("--dataset", default="bearing")
    ap.add_argument("--window-samples", type=int, default=1024, help="bearing: samples per vibration window")
    ap.add_argument("--model", default="cnn1d")
    ap.add_argument("--updates", default="full,last:1")
    ap.add_argument("--length", type=int, default=2400)
    ap.add_argument("--lr", type=float, default=None,
                    help="online learning rate (default: tintin.online.online_lr, pretraining lr / batch size)")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--name", default="drift")
    ap.add_argument("--no-river", action="store_true", help="skip the river anchor (it does not depend on the lr)")
    args = ap.parse_args(argv)

    from _common import RESULTS, markdown_table, write_results

    from tintin.cli.stream import planned_sram
    from tintin.data import load
    from tintin.nn import build_model, training_defaults
    from tintin.online import make_stream, online_lr
    from tintin.online.plot import plot_windowed_accuracy
    from tintin.online.prequential import compare_on_stream
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig, fit

    options = {"length": args.window_samples} if args.dataset == "bearing" else {}
    ds = load(args.dataset, **options)
    d = training_defaults(args.model)
    lr_rule = args.lr is None
    if lr_rule:
        args.lr = online_lr(d.lr, d.batch_size)
    optim = OptimConfig(lr=args.lr)
    records, rows = [], []
    for scenario in args.scenarios.split(","):
        stream = make_stream(scenario, ds, length=args.length, seed=args.seed)
        model = build_model(args.model, stream.sample_shape, stream.num_classes, seed=args.seed,
                            input_exponent=stream.input_exponent)
        fit(model, stream.x_pretrain, stream.y_pretrain,
            TrainConfig(epochs=args.pretrain_epochs, batch_size=d.batch_size, seed=args.seed, eval_each_epoch=False,
                        optim=OptimConfig(lr=d.lr, momentum_shift=d.momentum_shift,
                                          lr_schedule=d.lr_schedule(args.pretrain_epochs))))
        for k, update in enumerate(args.updates.split(",")):
            learners = ("frozen", "integer", "float") + (() if args.no_river else ("river",))
            result = compare_on_stream(copy.deepcopy(model), stream, update, optim, args.seed, 0, args.window,
                                       learners)
            r = result.to_dict()
            r["planned_sram_bytes"] = planned_sram(model, update, optim)[update]
            if k == 0:
                r["plot"] = str(plot_windowed_accuracy(result, RESULTS / f"{args.name}_{scenario}.png").name)
            integer, frozen, flt = (100 * r[key] for key in ("prequential_accuracy", "frozen_accuracy",
                                                             "float_prequential_accuracy"))
            river = "-" if r["river_prequential_accuracy"] is None else f"{100 * r['river_prequential_accuracy']:.2f}"
            r.update(scenario=scenario, integer_minus_frozen=integer - frozen, integer_minus_float=integer - flt,
                     claim_holds=bool(integer > frozen and abs(integer - flt) <= 1.0))
            records.append(r)
            rec = ", ".join("never" if v is None else str(v) for v in r["recovery_samples"])
            rows.append([scenario, update, f"{frozen:.2f}", f"{integer:.2f}", f"{flt:.2f}", river,
                         f"{integer - frozen:+.2f}", f"{integer - flt:+.2f}", rec, f"{r['planned_sram_bytes']:,}",
                         "yes" if r["claim_holds"] else "NO"])
            print(" | ".join(rows[-1]), flush=True)
            _write(args, options, d, lr_rule, records, rows, markdown_table, write_results)  # after every run


def _write(args, options, d, lr_rule, records, rows, markdown_table, write_results) -> None:
    headers = ["scenario", "update", "frozen %", "integer online %", "float32 online %", "river %",
               "int - frozen", "int - float", "recovery (samples)", "planned SRAM B", "claim"]
    md = (f"# Online learning under drift ({args.dataset}"
          f"{f', {args.window_samples}-sample windows' if options else ''}, {args.model}, SYNTHETIC data)\n\n"
          f"Prequential (test-then-train) accuracy over {args.length}-sample streams, seed {args.seed}; "
          f"{args.model} pretrained {args.pretrain_epochs} epochs on concept A (lr {d.lr}, batch {d.batch_size}); "
          f"online learning at batch 1, lr {args.lr:g}"
          + (f" (the documented rule: pretraining lr / batch size = {d.lr} / {d.batch_size})" if lr_rule else "")
          + f"; recovery window {args.window} samples. Claim: integer online > frozen and within "
          f"1.0 point of float32 online (same update mode). Plots: "
          + ", ".join(f"[{s}]({args.name}_{s}.png)" for s in args.scenarios.split(",")) + "\n\n"
          + markdown_table(headers, rows)
          + ("\n\nriver (the ecosystem's anchor) was not run (`--no-river`): it does not depend on the online "
             "learning rate." if args.no_river else "")
          + (f"\n\nIncomplete: {len(rows)} of {len(args.scenarios.split(',')) * len(args.updates.split(','))} runs "
             "so far." if len(rows) < len(args.scenarios.split(",")) * len(args.updates.split(",")) else ""))
    write_results(args.name, {"records": records, "args": vars(args)}, md)


if __name__ == "__main__":
    main()
