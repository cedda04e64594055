"""Accuracy against signal-to-noise ratio on the SYNTHETIC sensor sets (bearing faults, spectrum
sensing): for each SNR a data set is generated (train and test at that SNR), then cnn1d is trained
with integers and its float32 twin from the same initial weights.

    .venv/bin/python bench/sensor_snr.py --datasets bearing,spectrum --seeds 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SNRS = {"bearing": [-10.0, -5.0, -2.0, 0.0, 5.0], "spectrum": [-8.0, -4.0, 0.0, 2.0, 6.0]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="bearing,spectrum")
    ap.add_argument("--model", default="cnn1d")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--name", default="sensor_snr")
    args = ap.parse_args(argv)

    from _common import markdown_table, write_results

    from tintin.data import load
    from tintin.data.registry import names
    from tintin.nn import build_model, training_defaults
    from tintin.optim import OptimConfig
    from tintin.reference import train_float
    from tintin.train import TrainConfig, fit

    assert set(args.datasets.split(",")) <= set(names())
    d = training_defaults(args.model)
    epochs = args.epochs or d.epochs
    records, rows = [], []
    for ds_name in args.datasets.split(","):
        for snr in SNRS[ds_name]:
            ds = load(ds_name, snr_db=snr)
            ints, flts = [], []
            for seed in range(args.seeds):
                tconf = TrainConfig(epochs=epochs, batch_size=32, seed=seed, eval_each_epoch=False,
                                    optim=OptimConfig(lr=d.lr, momentum_shift=d.momentum_shift,
                                                      lr_schedule=d.lr_schedule(epochs)))
                model = build_model(args.model, ds.sample_shape, ds.num_classes, seed=seed,
                                    input_exponent=ds.input_exponent)
                flt = train_float(model, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test, eval_each_epoch=False)
                res = fit(model, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test)
                ints.append(100 * res.test_accuracy)
                flts.append(100 * flt.test_accuracy)
                print(f"{ds_name} {snr:+.0f} dB seed {seed}: integer {ints[-1]:.2f}  float32 {flts[-1]:.2f}", flush=True)
            rec = {"dataset": ds_name, "snr_db": snr, "integer": ints, "float32": flts,
                   "integer_mean": statistics.mean(ints), "float32_mean": statistics.mean(flts)}
            records.append(rec)
            rows.append([ds_name, f"{snr:+.0f}", f"{rec['integer_mean']:.2f}", f"{rec['float32_mean']:.2f}"])
    md = (f"## Accuracy (%) against SNR on the SYNTHETIC sensor sets ({args.model}, {epochs} epochs, "
          f"{args.seeds} seed(s))\n\nEach row generates train and test sets at that SNR (defaults: bearing 0 dB, "
          "spectrum 2 dB); integer training and its float32 twin start from the same weights.\n\n"
          + markdown_table(["data set (synthetic)", "SNR dB", "integer", "float32"], rows))
    write_results(args.name, {"model": args.model, "epochs": epochs, "results": records}, md)


if __name__ == "__main__":
    main()
