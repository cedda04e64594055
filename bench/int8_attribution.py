"""Where the integer MLP loses accuracy against its float32 twin: one quantisation at a time made
more precise in the simulator (weights as the variant says), trained on Fashion-MNIST with the zoo's
lr and decay rule, against the float32 twin with the same schedule, initial weights and data order.

    .venv/bin/python bench/int8_attribution.py --epochs 10 --train-samples 20000 --seeds 1

The switches below are measurement hooks of this benchmark, not model options: they replace the
fully connected kernels and the loss error of ``tintin.nn.layers`` / ``tintin.train.step`` for the
run (the simulator, never the native backend). Tokens of a variant, joined with ``/``:

* weights: ``int8`` (default), ``int16`` (int16 masters, int8 view), ``rows`` (per-row scales),
  ``wide=fc2+fc3`` (int16 masters for the named layers);
* ``view16``: int16 master weights are read directly by the forward and backward products (no int8
  view; only meaningful with int16 masters);
* ``loss16``: the softmax cross-entropy error is rescaled to int16 instead of int8 (the backward
  input errors of the layers below stay int8);
* ``err16``: the loss error and every backward input error are int16;
* ``errsr``: the loss error and input errors are rescaled to int8 with stochastic rounding (keys from
  the step's rounding stream at sites ``1000 + layer``, unused by the update);
* ``losssr``: only the loss error is rescaled to int8 with stochastic rounding (site ``999``);
* ``act16``: every Linear output (the activations and the logits) is int16;
* ``float``: the float32 twin (PyTorch, one thread).

Accumulators of widened products are int64 here (a device would need them for int16 x int16 sums).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--hidden", default="200,100,50")
    ap.add_argument("--variants", default="float,int16,int16/view16,int16/loss16,int16/err16,int16/errsr,"
                                          "int16/act16,int16/view16/err16/act16")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-samples", type=int, default=20000)
    ap.add_argument("--name", default="int8_attribution")
    ap.add_argument("--report", action="store_true",
                    help="train nothing: write the table of the runs already recorded")
    return ap.parse_args(argv)


HOOKS = ("view16", "loss16", "err16", "errsr", "losssr", "act16")


def parse_variant(text: str) -> dict:
    out = {"float": False, "weight_bits": 8, "wide_layers": (), "row_scales": False, "hooks": set()}
    for tok in text.split("/"):
        if tok == "float":
            out["float"] = True
        elif tok in ("int8", "int16"):
            out["weight_bits"] = int(tok[3:])
        elif tok == "rows":
            out["row_scales"] = True
        elif tok.startswith("wide="):
            out["wide_layers"] = tuple(t for t in tok[5:].split("+") if t)
        elif tok in HOOKS:
            out["hooks"].add(tok)
        else:
            raise SystemExit(f"error: unknown variant token {tok!r}")
    return out


class Hooks:
    """Replacement fully connected kernels and loss error for one run (see the module docstring)."""

    def __init__(self, hooks: set[str]):
        self.hooks = hooks
        self.act_bits = 16 if "act16" in hooks else 8
        self.err_bits = 16 if "err16" in hooks else 8
        self.loss_bits = 16 if ("loss16" in hooks or "err16" in hooks) else 8
        self.stochastic = "errsr" in hooks
        self.loss_stochastic = self.stochastic or "losssr" in hooks
        self.ctx = None

    def _round(self, site: int, stochastic: bool | None = None):
        from tintin.numerics import Rounding
        if (self.stochastic if stochastic is None else stochastic) and self.ctx is not None and self.ctx.stream is not None:
            return Rounding.STOCHASTIC, self.ctx.stream.key(1000 + site)
        return Rounding.NEAREST, None

    def view(self, p, mode):
        if "view16" in self.hooks and p.bits == 16:
            return p.value
        return p.forward_view(mode)

    def install(self):
        import tintin.nn.layers as layers
        import tintin.train.step as step
        from tintin.numerics import QTensor, Rounding, Scale, apply_multiplier, int_matmul, ratio_multiplier, rescale
        from tintin.numerics.scale_rows import _per_axis, _shift_right_nearest
        from tintin.ops import softmax_cross_entropy_error
        from tintin.ops.loss import log2_domain_q16, softmax_q15, log2_q16_array, LossValue
        from tintin.numerics.tables import LN2_Q16

        hk = self

        def forward(self, x, ctx):
            hk.ctx = ctx
            if ctx.training:
                self._cache_x = x
            w = hk.view(self.weight, ctx.mode)
            acc = int_matmul(x.m, w.m.T, wide=True)
            if self.weight.row_exp is not None and self.weight.row_exp.any():
                acc = _shift_right_nearest(acc, _per_axis(self.weight.row_exp, acc.ndim, 1))
            acc_scale = x.scale * w.scale
            if self.bias is not None:
                b = self.bias.value
                acc = acc + apply_multiplier(b.m, ratio_multiplier(b.scale / acc_scale), Rounding.NEAREST,
                                             limit=1 << 50)
            q, s = rescale(acc, acc_scale, hk.act_bits, ctx.mode)
            return QTensor(q, s)

        def backward(self, err, ctx, need_input_error):
            x = self._cache_x
            w = hk.view(self.weight, ctx.mode)
            e_in = None
            if need_input_error:
                e, top = err.m.astype(np.int64), 0
                row_exp = self.weight.row_exp
                if row_exp is not None and row_exp.any():
                    top = int(row_exp.max())
                    e = e << _per_axis(top - row_exp.astype(np.int64), e.ndim, 1)
                acc = int_matmul(e, w.m.astype(np.int64), wide=True)
                rnd, key = hk._round(self.layer_index)
                q, s = rescale(acc, (err.scale * w.scale).shifted(-top), hk.err_bits, ctx.mode, rnd, key)
                e_in = QTensor(q, s)
            if self.weight.trainable:
                self.weight.grad = QTensor(int_matmul(err.m.T, x.m, wide=True), err.scale * x.scale)
            if self.bias is not None and self.bias.trainable:
                self.bias.grad = QTensor(err.m.sum(axis=0, dtype=np.int64), err.scale)
            return e_in

        def loss_error(model, out, y, target_exponent=0, ctx=None):
            if hk.loss_bits == 8 and not hk.loss_stochastic:
                return softmax_cross_entropy_error(out, y, model.config.scale_mode)
            t = log2_domain_q16(out)
            p, total = softmax_q15(t)
            rows = np.arange(len(y))
            p[rows, y] -= 1 << 15
            rnd, key = hk._round(999, hk.loss_stochastic)
            q, s = rescale(p, Scale(-15), hk.loss_bits, model.config.scale_mode, rnd, key)
            per_sample = ((log2_q16_array(total) - (15 << 16) - t[rows, y]) * LN2_Q16 + (1 << 15)) >> 16
            return QTensor(q, s), LossValue(int(per_sample.sum()), Scale(-16))

        layers.Linear.forward = forward
        layers.Linear.backward = backward
        step.loss_error = loss_error


def build(ds, seed, args, v):
    from tintin.nn import QuantConfig, build_model
    config = QuantConfig(weight_bits=v["weight_bits"], wide_layers=v["wide_layers"], row_scales=v["row_scales"])
    model = build_model("mlp", ds.sample_shape, ds.num_classes, config, seed=seed, input_exponent=ds.input_exponent,
                        hidden=tuple(int(h) for h in args.hidden.split(",")))
    for i, layer in enumerate(model.layers):
        layer.layer_index = i
    return model


def train_config(seed, args):
    from tintin.nn import training_defaults
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig
    d = training_defaults("mlp")
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                       optim=OptimConfig(lr=d.lr, lr_schedule=d.lr_schedule(args.epochs),
                                         momentum_shift=d.momentum_shift), eval_each_epoch=False)


def run_one(ds, seed, args, text, x, y) -> float:
    v = parse_variant(text)
    tconf = train_config(seed, args)
    if v["float"]:
        from tintin.reference import train_float
        init = build(ds, seed, args, {**v, "weight_bits": 8, "wide_layers": (), "row_scales": False})
        return 100 * train_float(init, x, y, tconf, ds.x_test, ds.y_test, threads=1).test_accuracy
    if v["hooks"]:
        Hooks(v["hooks"]).install()
    from tintin.train import fit
    model = build(ds, seed, args, v)
    return 100 * fit(model, x, y, tconf, ds.x_test, ds.y_test, progress=False).test_accuracy


def main(argv=None) -> None:
    import json
    import multiprocessing as mp

    from _common import RESULTS, markdown_table, write_results
    from tintin.data import load

    args = parse_args(argv)
    ds = load(args.dataset)
    n = args.train_samples or len(ds.x_train)
    path = RESULTS / f"{args.name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    same = lambda r: (r["epochs"], r["train_samples"], r["batch_size"]) == (args.epochs, n, args.batch_size)
    runs = [r for r in old.get("runs", []) if same(r)]
    done = {(r["variant"], r["seed"]) for r in runs}
    variants = args.variants.split(",")
    ctx = mp.get_context("spawn")  # each run installs its own hooks in a fresh interpreter
    for seed in range(0 if args.report else args.seeds):
        for text in variants:
            if (text, seed) in done:
                continue
            t0 = time.time()
            with ctx.Pool(1) as pool:
                acc = pool.apply(_child, (args, text, seed, n))
            rec = {"variant": text, "seed": seed, "test_accuracy": acc, "epochs": args.epochs, "train_samples": n,
                   "batch_size": args.batch_size, "seconds": time.time() - t0}
            runs.append(rec)
            print(f"{text} seed {seed}: {acc:.2f}%  ({rec['seconds']:.0f} s)", flush=True)
            write(args, runs, variants, n, markdown_table, write_results)
    write(args, runs, variants, n, markdown_table, write_results)


def _child(args, text, seed, n):
    from tintin.data import load
    ds = load(args.dataset)
    return run_one(ds, seed, args, text, ds.x_train[:n], ds.y_train[:n])


def write(args, runs, variants, n, markdown_table, write_results):
    def accs(v):
        return [r["test_accuracy"] for r in sorted(runs, key=lambda r: r["seed"]) if r["variant"] == v]
    fl = accs("float")
    rows = []
    for v in variants:
        a = accs(v)
        if not a:
            rows.append([v, "not run", "", ""])
            continue
        mean = statistics.mean(a)
        gap = f"{statistics.mean(fl) - mean:+.2f}" if fl and v != "float" else ""
        rows.append([v, f"{mean:.2f}" + (f" ± {statistics.stdev(a):.2f}" if len(a) > 1 else ""),
                     ", ".join(f"{x:.2f}" for x in a), gap])
    md = (f"## Attribution of the integer MLP's gap: fashion, first {n} training samples, {args.epochs} epochs, "
          f"batch {args.batch_size}, mlp 784-{args.hidden.replace(',', '-')}-10\n\n"
          "One quantisation at a time made more precise in the simulator (bench hooks, see "
          "`bench/int8_attribution.py`): view16 = int16 masters read directly (no int8 view); loss16 = int16 loss "
          "error; err16 = int16 loss and input errors; errsr = errors rescaled to int8 with stochastic rounding; losssr = only the loss error so; "
          "act16 = int16 Linear outputs. The zoo's lr and decay rule; float = the float32 twin with the same "
          "schedule, initial weights and data order.\n\n"
          + markdown_table(["variant", "test accuracy %", "per seed", "float - integer"], rows))
    write_results(args.name, {"runs": runs}, md)


if __name__ == "__main__":
    main()
