"""Run every benchmark with the arguments its committed results were produced with.

    .venv/bin/python bench/run_all.py [--only NAME[,NAME...]] [--list]

Long: the full set takes well over an hour on 2 cores (Fashion-MNIST and the emulated LeNet-5
runs dominate). Each script prints its table and rewrites its files in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS = {
    "accuracy": ["accuracy.py", "--seeds", "5"],
    "accuracy_lenet5_mnist5k": ["accuracy.py", "--runs", "lenet5:mnist5k", "--seeds", "3",
                                "--name", "accuracy_lenet5_mnist5k"],
    "accuracy_lenet5_fashion": ["accuracy.py", "--runs", "lenet5:fashion", "--seeds", "2", "--epochs", "10",
                                "--name", "accuracy_lenet5_fashion"],
    "accuracy_lenet5_fashion_int16": ["accuracy.py", "--runs", "lenet5:fashion", "--seeds", "2", "--epochs", "10",
                                      "--weight-bits", "16", "--name", "accuracy_lenet5_fashion_int16"],
    "accuracy_sensors": ["accuracy.py", "--runs", "cnn1d:basicmotions,cnn1d:bearing,cnn1d:spectrum", "--seeds", "3",
                         "--name", "accuracy_sensors"],
    "sensor_snr": ["sensor_snr.py", "--datasets", "bearing,spectrum", "--seeds", "1"],
    "ablation_mlp_mnist5k": ["ablation.py", "--model", "mlp", "--dataset", "mnist5k", "--seeds", "3", "--epochs", "30"],
    "ablation_lenet5_mnist5k": ["ablation.py", "--model", "lenet5", "--dataset", "mnist5k", "--seeds", "2",
                                "--epochs", "10"],
    "throughput": ["throughput.py", "--models", "mlp:mnist5k", "--batch-sizes", "32,64,128", "--repeats", "5"],
    # LeNet-5's first conv sums batch x 784 products per weight gradient: batch <= 84 (accumulator bound)
    "throughput_lenet5": ["throughput.py", "--models", "lenet5:mnist5k", "--batch-sizes", "1,32,64",
                          "--repeats", "5", "--samples", "1024", "--name", "throughput_lenet5"],
    "memory_plan": ["memory_plan.py"],
    "drift": ["drift.py", "--updates", "full,last:1"],
    "interop_import": ["interop_import.py"],
    "interop_export": ["interop_export.py"],
    "transfer": ["transfer.py"],
    "mcu": ["mcu.py"],
    "mcu_batch": ["mcu_batch.py"],
    "checkpoint": ["checkpoint.py"],
    "fleet_meta_float": ["fleet_meta_float.py", "--seeds", "0,1,2,3,4", "--processes", "2"],
    "fleet_meta_float_control": ["fleet_meta_float.py", "--seeds", "0,1,2,3,4,5,6,7,8,9", "--processes", "1",
                                 "--unseen", "100", "--methods", "pooled,reptile,fomaml-sgd,maml,reptile-device",
                                 "--name", "fleet_meta_float_control"],
    # the settings are the committed choices of bench/fleet_adapt_tune.py's rules (each JSON names its command)
    "fleet_adapt_schedule_control": [
        "fleet_adapt.py", "--workloads", "bearing-fleet,sine", "--devices", "50", "--unseen", "100",
        "--seeds", "0,1,2,3,4,5,6,7,8,9", "--shots", "0,10", "--batch-size", "1", "--settings",
        "bench/results/fleet_adapt_tuning.json,bench/results/fleet_adapt_tuning_longer.json,"
        "bench/results/fleet_adapt_tuning_fomaml_query.json,bench/results/fleet_adapt_tuning_schedule_control.json",
        "--name", "fleet_adapt_schedule_control"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for name, cmd in BENCHMARKS.items():
            print(f"{name}: {' '.join(cmd)}")
        return 0
    chosen = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(BENCHMARKS) if args.only else set()
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        cmd = [sys.executable, str(HERE / BENCHMARKS[name][0]), *BENCHMARKS[name][1:]]
        print(f"== {name}: {' '.join(BENCHMARKS[name])}", flush=True)
        if subprocess.run(cmd, cwd=HERE.parent, env=os.environ.copy()).returncode != 0:
            failed.append(name)
    if failed:
        print(f"error: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
