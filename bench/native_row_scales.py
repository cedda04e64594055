"""Cost of per-row weight scales on the native backend: one epoch of the 784-200-100-50-10 MLP on
Fashion-MNIST, batch 64, with and without ``QuantConfig(row_scales=True)``, interleaved repeats
(one thread; the same seed, data order and settings on both sides). Times are those of the
training steps (``TrainResult.train_seconds``); the programs are built before their repeats.

    .venv/bin/python bench/native_row_scales.py [--dataset fashion] [--samples 60000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--samples", type=int, default=60000, help="training samples of the epoch")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--name", default="native_row_scales")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

    from _common import markdown_table, write_results

    from tintin.data import load
    from tintin.nn import QuantConfig, build_model
    from tintin.optim import OptimConfig
    from tintin.targets.native import NativeProgram, fit_native
    from tintin.train import TrainConfig

    ds = load(args.dataset)
    x, y = ds.x_train[:args.samples], ds.y_train[:args.samples]
    config = TrainConfig(epochs=1, batch_size=args.batch_size, seed=0, optim=OptimConfig(lr=0.5))
    sides = {"per-tensor scales": QuantConfig(), "per-row scales": QuantConfig(row_scales=True)}
    times: dict[str, list[float]] = {k: [] for k in sides}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        for label, qconf in sides.items():
            model = build_model("mlp", ds.sample_shape, ds.num_classes, qconf, seed=0,
                                input_exponent=ds.input_exponent, hidden=(200, 100, 50))
            program = NativeProgram(model, args.batch_size, config.optim, update=None)
            res = fit_native(model, x, y, config, ds.x_test, ds.y_test, progress=False, program=program)
            times[label].append(res.train_seconds)
            accuracy[label] = res.test_accuracy
            print(f"repeat {repeat}: {label}: {res.train_seconds:.2f} s, test accuracy {res.test_accuracy:.4f}",
                  flush=True)
    base = statistics.median(times["per-tensor scales"])
    rows = [[label, f"{statistics.median(t):.2f}", " / ".join(f"{v:.2f}" for v in t),
             f"{statistics.median(t) / base:.2f}x", f"{100 * accuracy[label]:.2f}"] for label, t in times.items()]
    md = (f"# Native backend: one epoch with and without per-row weight scales\n\n"
          f"784-200-100-50-10 MLP, {args.dataset} ({len(x)} training samples), batch {args.batch_size}, lr 0.5, "
          f"seed 0, one epoch per repeat, {args.repeats} interleaved repeats.\n\n"
          + markdown_table(["weights", "train seconds (median)", "repeats", "vs per-tensor", "test accuracy %"], rows))
    write_results(args.name, {"dataset": args.dataset, "samples": len(x), "batch_size": args.batch_size,
                              "seconds": times, "test_accuracy": accuracy}, md)


if __name__ == "__main__":
    main()
