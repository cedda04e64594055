"""Accuracy of integer-only training vs float32 training of the same network: same initial weights
(dequantised), same data order, epochs, batch size and learning rate; several seeds.

    .venv/bin/python bench/accuracy.py --runs mlp:digits,mlp:mnist5k --seeds 5 --epochs 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="mlp:digits,mlp:mnist5k", help="MODEL:DATASET[,...]")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None, help="default: the model's training defaults")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="default: the model's training defaults")
    ap.add_argument("--lr-schedule", default=None, help="EPOCH:LR,... for both trainings (default: the model's)")
    ap.add_argument("--momentum-shift", type=int, default=None, help="default: the model's")
    ap.add_argument("--weight-bits", type=int, default=8, help="8 or 16 (int16 master weights)")
    ap.add_argument("--dataset-options", default="", help="key=value,... passed to tintin.data.load")
    ap.add_argument("--name", default="accuracy")
    return ap.parse_args(argv)


def run_pair(model_name, ds, seed, args, tconf):
    from tintin.nn import QuantConfig, build_model
    from tintin.reference import train_float
    from tintin.train import fit

    model = build_model(model_name, ds.sample_shape, ds.num_classes, QuantConfig(weight_bits=args.weight_bits), seed=seed,
                        input_exponent=ds.input_exponent)
    flt = train_float(model, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test, eval_each_epoch=False)
    res = fit(model, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test)
    return res, flt


def main(argv=None) -> None:
    args = parse_args(argv)
    from _common import markdown_table, write_results

    from tintin.data import load
    from tintin.nn import training_defaults
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig

    options = dict(kv.split("=") for kv in args.dataset_options.split(",") if kv)
    options = {k: float(v) if v.replace(".", "", 1).lstrip("-").isdigit() else v for k, v in options.items()}
    rows, records = [], []
    for spec in args.runs.split(","):
        model_name, ds_name = spec.split(":")
        ds = load(ds_name, **options)
        d = training_defaults(model_name)
        epochs = args.epochs or d.epochs
        lr = args.lr or d.lr
        mom = d.momentum_shift if args.momentum_shift is None else args.momentum_shift
        sched = (tuple((int(e), float(v)) for e, v in (p.split(":") for p in args.lr_schedule.split(",") if p))
                 if args.lr_schedule is not None else d.lr_schedule(epochs, lr))
        ints, flts, secs = [], [], []
        for seed in range(args.seeds):
            tconf = TrainConfig(epochs=epochs, batch_size=args.batch_size, seed=seed,
                                optim=OptimConfig(lr=lr, lr_schedule=sched, momentum_shift=mom), eval_each_epoch=False)
            t0 = time.time()
            res, flt = run_pair(model_name, ds, seed, args, tconf)
            secs.append(time.time() - t0)
            ints.append(100 * res.test_accuracy)
            flts.append(100 * flt.test_accuracy)
            print(f"{model_name}/{ds_name} seed {seed}: integer {ints[-1]:.2f}%  float32 {flts[-1]:.2f}%  "
                  f"({secs[-1]:.0f} s)", flush=True)
        mi, mf = statistics.mean(ints), statistics.mean(flts)
        si = statistics.stdev(ints) if len(ints) > 1 else 0.0
        sf = statistics.stdev(flts) if len(flts) > 1 else 0.0
        rec = {"model": model_name, "dataset": ds_name, "synthetic": ds.synthetic, "seeds": args.seeds,
               "epochs": epochs, "batch_size": args.batch_size, "weight_bits": args.weight_bits, "lr": lr, "lr_schedule": sched, "momentum_shift": mom,
               "dataset_options": options, "integer": ints, "float32": flts, "integer_mean": mi,
               "integer_std": si, "float32_mean": mf, "float32_std": sf, "gap_points": mf - mi}
        records.append(rec)
        rows.append([model_name + (f", int{args.weight_bits} weights" if args.weight_bits != 8 else ""),
                     ds_name + (" (synthetic)" if ds.synthetic else ""), epochs,
                     f"{lr:g}" + (f", decay {','.join(f'{e}:{v:g}' for e, v in sched)}" if sched else "")
                     + (f", momentum 1-2^-{mom}" if mom else ""),
                     f"{mi:.2f} ± {si:.2f}", f"{mf:.2f} ± {sf:.2f}", f"{mf - mi:+.2f}"])
    md = (f"## Test accuracy (%): integer-only vs float32 training, mean ± std over {args.seeds} seeds\n\n"
          f"Batch {args.batch_size}, SGD; same initial weights, data order, epochs and learning-rate schedule "
          "for both.\n\n"
          + markdown_table(["model", "data set", "epochs", "lr", "integer", "float32", "float - integer"], rows))
    write_results(args.name, {"results": records}, md)


if __name__ == "__main__":
    main()
