"""Host training throughput: integer training vs PyTorch float32, same model, same batch size,
same data, measured in one run (interleaved repeats, median ratio), one thread against one thread
(OpenBLAS / OpenMP / MKL threads = 1 and ``torch.set_num_threads(1)``): on a shared machine a
second thread measures the neighbours' load, not the library (an earlier two-thread table showed
PyTorch slower with two threads than with one and was withdrawn).

    .venv/bin/python bench/throughput.py [--models mlp:mnist5k:4000,lenet5:mnist5k:1024] [--batch-sizes 32]
                                         [--backends native,numpy]

Backends of the integer side (every one gives the simulator's bits; tests/targets/test_native_fit.py):
``native`` (the whole step in the generated C program built with -O3 -march=native and the AVX2
host kernels, :mod:`tintin.targets.native`), ``numpy`` (the simulator) and ``c`` (the simulator
with the C runtime's weight update). Each repeat trains one epoch of the given number of samples
from a fresh model (seed = repeat) on every side; times are those of the training steps (the
native program is built before its repeat, and its build time is reported apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

LABELS = {"native": "native", "numpy": "numpy", "c": "C update"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp:mnist5k:4000,lenet5:mnist5k:1024",
                    help="MODEL:DATASET:SAMPLES,... (samples per timed repeat)")
    ap.add_argument("--batch-sizes", default="32")
    ap.add_argument("--backends", default="native,numpy")
    ap.add_argument("--repeats", type=int, default=5)
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
    from tintin.train import TrainConfig, fit

    backends = [b for b in args.backends.split(",") if b]
    unknown = set(backends) - set(LABELS)
    if unknown:
        ap.error(f"unknown backend {sorted(unknown)[0]!r} (known: {', '.join(LABELS)})")
    torch.set_num_threads(1)
    rows, records = [], []
    for spec in args.models.split(","):
        model_name, ds_name, samples = spec.split(":")
        ds = load(ds_name)
        n = min(int(samples), len(ds.x_train))
        x, y = ds.x_train[:n], ds.y_train[:n]
        for bs in [int(b) for b in args.batch_sizes.split(",")]:
            times = {"float32": [], **{b: [] for b in backends}}
            build_seconds = []
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
                config = TrainConfig(epochs=1, batch_size=bs, seed=rep, eval_each_epoch=False)
                for backend in backends:
                    m = build_model(model_name, ds.sample_shape, ds.num_classes, seed=rep,
                                    input_exponent=ds.input_exponent)
                    if backend == "native":
                        from tintin.targets.native import NativeProgram, fit_native

                        tb = time.perf_counter()
                        program = NativeProgram(m, bs, config.optim, update=None)
                        build_seconds.append(time.perf_counter() - tb)
                        res = fit_native(m, x, y, config, progress=False, program=program)
                    else:
                        kernel = None
                        if backend == "c":
                            from tintin.codegen.fast_update import c_update_kernel

                            kernel = c_update_kernel()
                        res = fit(m, x, y, config, progress=False, update_kernel=kernel)
                    run_times[backend] = res.train_seconds
                if rep:
                    times["float32"].append(tf)
                    for backend, t in run_times.items():
                        times[backend].append(t)
            rec = {"model": model_name, "dataset": ds_name, "batch_size": bs, "threads": 1, "samples": n,
                   "float32_samples_per_s": n / statistics.median(times["float32"])}
            if build_seconds:
                rec["native_build_seconds_first"] = build_seconds[0]
                rec["native_build_seconds_cached"] = statistics.median(build_seconds[1:] or build_seconds)
            cells = []
            for backend in backends:
                ratios = [f / i for f, i in zip(times["float32"], times[backend])]
                rec[f"integer_{backend}_samples_per_s"] = n / statistics.median(times[backend])
                rec[f"ratio_{backend}_median"] = statistics.median(ratios)
                rec[f"ratio_{backend}_range"] = [min(ratios), max(ratios)]
                cells += [f"{rec[f'integer_{backend}_samples_per_s']:,.0f}",
                          f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"]
            records.append(rec)
            rows.append([model_name, ds_name, bs, f"{rec['float32_samples_per_s']:,.0f}", *cells])
            print(rows[-1], flush=True)
    headers = ["model", "data", "batch", "float32 samples/s"]
    for backend in backends:
        headers += [f"integer ({LABELS[backend]}) samples/s", f"{LABELS[backend]} / float32"]
    md = ("## Host training throughput: integer training vs PyTorch float32\n\n"
          "Same model, data and batch size, one thread each; one epoch per repeat (samples: "
          + ", ".join(f"{r['model']} {r['samples']}" for r in records if r["batch_size"] == records[0]["batch_size"])
          + f"), {args.repeats} interleaved repeats after a warm-up; ratio = integer / float samples per second "
          "(median, range). Every integer backend gives the simulator's bits.\n\n"
          + markdown_table(headers, rows))
    builds = [r for r in records if "native_build_seconds_first" in r]
    if builds:
        md += ("\n\nBuilding the native program (not in the times above): "
               + "; ".join(f"{r['model']} b{r['batch_size']} {r['native_build_seconds_first']:.1f} s first, "
                           f"{r['native_build_seconds_cached']:.1f} s from the cache" for r in builds) + ".")
    write_results(args.name, {"results": records}, md)


if __name__ == "__main__":
    main()
