"""Host training throughput: the integer simulator vs PyTorch float32, same model, same batch size,
same data, measured in one run (interleaved repeats, median ratio), one thread against one thread
(OpenBLAS / OpenMP / MKL threads = 1 and ``torch.set_num_threads(1)``): on a shared machine a
second thread measures the neighbours' load, not the library (an earlier two-thread table showed
PyTorch slower with two threads than with one and was withdrawn).

    .venv/bin/python bench/throughput.py [--models mlp:mnist5k] [--batch-sizes 32,128]

The integer side runs with both weight-update backends: ``numpy`` (pure numpy) and ``c`` (the C
runtime's update through ctypes; bit-identical, see tests/codegen/test_fast_update.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp:mnist5k")
    ap.add_argument("--batch-sizes", default="32,128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=4000, help="training samples per timed repeat")
    ap.add_argument("--name", default="throughput")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

    import numpy as np
    import torch
    from _common import markdown_table, write_results

    from tintin.data import load
    from tintin.nn import build_model
    from tintin.reference import float_twin
    from tintin.codegen.fast_update import c_update_kernel
    from tintin.train import TrainConfig, fit

    torch.set_num_threads(1)
    rows, records = [], []
    for spec in args.models.split(","):
        model_name, ds_name = spec.split(":")
        ds = load(ds_name)
        n = min(args.samples, len(ds.x_train))
        x, y = ds.x_train[:n], ds.y_train[:n]
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            times = {"float32": [], "numpy": [], "c": []}
            kernels = {"numpy": None, "c": c_update_kernel()}
            for rep in range(args.repeats + 1):  # the first repeat warms up every side
                model = build_model(model_name, ds.sample_shape, ds.num_classes, seed=rep,
                                    input_exponent=ds.input_exponent)
                net = float_twin(model)
                opt = torch.optim.SGD(net.parameters(), lr=0.1)
                xt = torch.tensor(x.astype(np.float32) * 2.0 ** ds.input_exponent)
                yt = torch.tensor(y)
                t0 = time.perf_counter()
                for i in range(0, n, bs):
                    opt.zero_grad(set_to_none=True)
                    loss = torch.nn.functional.cross_entropy(net(xt[i:i + bs]), yt[i:i + bs])
                    loss.backward()
                    opt.step()
                tf = time.perf_counter() - t0
                run_times = {}
                for backend, kernel in kernels.items():
                    m = build_model(model_name, ds.sample_shape, ds.num_classes, seed=rep,
                                    input_exponent=ds.input_exponent)
                    res = fit(m, x, y, TrainConfig(epochs=1, batch_size=bs, seed=rep, eval_each_epoch=False),
                              update_kernel=kernel)
                    run_times[backend] = res.train_seconds
                if rep:
                    times["float32"].append(tf)
                    for backend, t in run_times.items():
                        times[backend].append(t)
            rec = {"model": model_name, "dataset": ds_name, "batch_size": bs, "threads": 1,
                   "float32_samples_per_s": n / statistics.median(times["float32"])}
            cells = []
            for backend in ("numpy", "c"):
                ratios = [f / i for f, i in zip(times["float32"], times[backend])]
                rec[f"integer_{backend}_samples_per_s"] = n / statistics.median(times[backend])
                rec[f"ratio_{backend}_median"] = statistics.median(ratios)
                rec[f"ratio_{backend}_range"] = [min(ratios), max(ratios)]
                cells += [f"{rec[f'integer_{backend}_samples_per_s']:,.0f}",
                          f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"]
            records.append(rec)
            rows.append([model_name, ds_name, bs, f"{rec['float32_samples_per_s']:,.0f}", *cells])
            print(rows[-1], flush=True)
    md = ("## Host training throughput: integer simulator vs PyTorch float32\n\n"
          "Same model, data and batch size, one thread each; one epoch of "
          f"{args.samples} samples per repeat, {args.repeats} interleaved repeats; ratio = integer / float "
          "samples per second (median, range).\n\n"
          + markdown_table(["model", "data", "batch", "float32 samples/s",
                            "integer (numpy) samples/s", "numpy / float32", "integer (C update) samples/s",
                            "C update / float32"], rows))
    write_results(args.name, {"results": records}, md)


if __name__ == "__main__":
    main()
