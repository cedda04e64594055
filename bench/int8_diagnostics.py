"""Where the int8 learning-quality gap comes from: per layer, over training, the size of the weight
updates in weight LSBs, how many round to zero, the stochastic-rounding noise against the update
signal and the per-row effective bits under the one per-tensor weight scale.

    .venv/bin/python bench/int8_diagnostics.py --epochs 30

Measured on the aligned SGD update of every weight tensor, at every ``--every``-th step:

* ``update`` is the exact update ``g * M / 2**n`` in weight LSBs before rounding (median and 90th
  percentile over the tensor's elements);
* ``zero``: the fraction of elements whose rounded update is 0 (the step is lost this time; with
  stochastic rounding it only moves in expectation);
* ``noise/signal``: ``sqrt(sum f(1-f)) / sqrt(sum u**2)`` with ``f = frac|u|``, the RMS of the noise
  stochastic rounding adds over the RMS of the update itself (1 = the noise is as large as the
  signal);
* ``row bits``: per output row, ``bitlen(max |w_row|)`` of the int8 mantissas at the epoch's end
  (7 = the row uses the full int8 range; a row with 3 keeps only 3 bits of resolution).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mlp", help="zoo model (mlp: 784-200-100-50-10 with --hidden)")
    ap.add_argument("--hidden", default="200,100,50", help="mlp hidden widths")
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--lr-schedule", default="15:0.1,24:0.02", help="EPOCH:LR,... ('' = constant)")
    ap.add_argument("--every", type=int, default=25, help="measure every N-th step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="int8_diagnostics")
    return ap.parse_args(argv)


class UpdateRecorder:
    """An ``update_kernel`` for :func:`tintin.train.fit` that measures each weight update and then
    applies the simulator's own update (so training is bit-identical to a plain run)."""

    def __init__(self, every: int, steps_per_epoch: int, mode):
        self.every, self.steps_per_epoch, self.mode = every, steps_per_epoch, mode
        self.calls = 0
        self.samples: dict[int, dict[str, list[dict]]] = {}
        self.bits: dict[int, dict[str, list[int]]] = {}

    def __call__(self, opt, p, key):
        from tintin.numerics import apply_multiplier

        step = self.calls // len(opt.params)
        self.calls += 1
        epoch = step // self.steps_per_epoch
        if p.kind == "weight" and step % self.every == 0:
            g = p.grad
            mult = opt.aligned_multiplier(g.scale, p.value.scale)
            m, n = mult
            exact = np.abs(g.m.astype(np.float64) * m / 2.0 ** n)
            delta = apply_multiplier(g.m, mult, opt.config.rounding, key)
            frac = exact - np.floor(exact)
            signal = float(np.sqrt(np.sum(exact ** 2)))
            noise = float(np.sqrt(np.sum(frac * (1 - frac))))
            self.samples.setdefault(epoch, {}).setdefault(p.name, []).append({
                "median": float(np.median(exact)), "p90": float(np.percentile(exact, 90)),
                "zero": float(np.mean(delta == 0)), "below_half": float(np.mean(exact < 0.5)),
                "noise_signal": noise / signal if signal > 0 else float("inf")})
        opt.update_kernel = None
        try:
            opt.update(p, _FixedKeyContext(key))
        finally:
            opt.update_kernel = self
        if p.kind == "weight" and (step + 1) % self.steps_per_epoch == 0:
            view = p.forward_view(self.mode).m
            mx = np.abs(view.reshape(view.shape[0], -1).astype(np.int64)).max(axis=1)
            self.bits.setdefault(epoch, {})[p.name] = [int(v).bit_length() for v in mx]

    def epoch_summary(self, epoch: int) -> dict[str, dict]:
        out = {}
        for name, rows in self.samples.get(epoch, {}).items():
            s = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
            b = np.array(self.bits.get(epoch, {}).get(name, [0]))
            s.update(row_bits_min=int(b.min()), row_bits_median=float(np.median(b)),
                     rows_below_5_bits=float(np.mean(b < 5)))
            out[name] = s
        return out


class _FixedKeyStream:
    def __init__(self, key):
        self._key = key

    def key(self, site):
        return self._key


class _FixedKeyContext:
    """What :meth:`IntegerSGD.update` reads from a context: a stream giving the kernel's key."""

    def __init__(self, key):
        self.stream = _FixedKeyStream(key)


def main(argv=None) -> None:
    args = parse_args(argv)
    from _common import markdown_table, write_results

    from tintin.data import load
    from tintin.nn import build_model
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig, fit

    ds = load(args.dataset)
    options = {"hidden": tuple(int(h) for h in args.hidden.split(","))} if args.model == "mlp" and args.hidden else {}
    model = build_model(args.model, ds.sample_shape, ds.num_classes, seed=args.seed,
                        input_exponent=ds.input_exponent, **options)
    sched = tuple((int(e), float(v)) for e, v in (p.split(":") for p in args.lr_schedule.split(",") if p))
    conf = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                       optim=OptimConfig(lr=args.lr, lr_schedule=sched), eval_each_epoch=True)
    recorder = UpdateRecorder(args.every, -(-len(ds.x_train) // args.batch_size), model.config.scale_mode)
    t0 = time.time()
    res = fit(model, ds.x_train, ds.y_train, conf, ds.x_test, ds.y_test, progress=True, update_kernel=recorder)
    records = [{"epoch": h.epoch, "lr": conf.optim.lr_at(h.epoch), "test_accuracy": 100 * h.test_accuracy,
                "layers": recorder.epoch_summary(h.epoch)} for h in res.history]
    print(f"{time.time() - t0:.0f} s", flush=True)
    _report(args, records, markdown_table, write_results)


def _report(args, records, markdown_table, write_results):
    layers = sorted(records[0]["layers"])
    shown = sorted({0, 1, 4, 9, 14, 19, 24, len(records) - 1} & set(range(len(records))))
    rows = []
    for i in shown:
        r = records[i]
        for name in layers:
            s = r["layers"][name]
            rows.append([r["epoch"] + 1, f"{r['lr']:g}", name, f"{s['median']:.3f}", f"{s['p90']:.2f}",
                         f"{100 * s['zero']:.1f}", f"{s['noise_signal']:.2f}",
                         f"{s['row_bits_min']} / {s['row_bits_median']:g}", f"{100 * s['rows_below_5_bits']:.0f}",
                         f"{r['test_accuracy']:.2f}" if name == layers[0] else ""])
    md = (f"## int8 weight updates over training: {args.model} ({args.hidden}) on {args.dataset}, "
          f"batch {args.batch_size}, lr {args.lr:g} schedule {args.lr_schedule or 'constant'}, seed {args.seed}\n\n"
          "update: the exact update |g * M / 2**n| in weight LSBs before rounding (median / 90th percentile over elements, median over "
          f"the epoch's sampled steps, every {args.every}th); zero: % of elements whose rounded update is 0; "
          "noise/signal: RMS stochastic-rounding noise over RMS update; row bits: bitlen(max|w_row|) of the "
          "int8 weights at the epoch's end (min / median over rows), and % of rows with fewer than 5 bits.\n\n"
          + markdown_table(["epoch", "lr", "layer", "update median (LSB)", "update p90 (LSB)", "zero %", "noise/signal",
                            "row bits min / median", "rows < 5 bits %", "test %"], rows))
    write_results(args.name, {"records": records}, md)


if __name__ == "__main__":
    main()
