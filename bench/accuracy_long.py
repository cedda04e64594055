"""Long runs on Fashion-MNIST: integer training (int8 weights with the zoo's recipe, int16 master
weights, and any ablation variant) against the float32 twin trained with the same schedule, same
initial weights and data order; several seeds; the training SRAM of each recipe (the planner's
figure for one training step at batch 1) beside its accuracy.

    .venv/bin/python bench/accuracy_long.py --models mlp,lenet5 --seeds 3 --epochs 30

Integer runs train on the native host backend (the model's generated C program, bit-identical to the
simulator) where it handles the variant, and in the simulator otherwise (``--backend``).

Results are written after every finished run (``bench/results/<name>.json`` / ``.md``), and a
rerun of the same command skips the runs already recorded there, so an interrupted grid is
finished by running the command again. The table marks cells that have fewer seeds than asked.

Variants (``--variants``, comma-separated; tokens joined with ``/``; a variant written
``lenet5:int8/wide=fc2`` applies to that model only):

* ``int8``: int8 weights, the model's default quantisation; ``int16``: int16 master weights;
* ``wide=fc3+fc4``: int16 masters only for the named layers (``QuantConfig.wide_layers``);
* ``ef=fc1+fc2`` (``ef=*``: every layer): error feedback, a remainder per weight of the named
  layers (``OptimConfig.error_feedback``); compiled programs keep it as a packed plane, so its SRAM
  is the planner's figure (the plane, and the materialised gradient of those layers);
* ``fb=2`` (with ``ef=``): the remainder's bits, 2, 4 or 8 (``OptimConfig.feedback_bits``; default 8):
  int8 weights with ``8 + L``-bit masters, e.g. ``int8/ef=*/fb=2/lr=0.25``;
* ``rows``: per-row (per-output-channel) power-of-two weight scales on the int8 layers
  (``QuantConfig.row_scales``; the plan holds one byte per row exponent);
* ``lsr``: the loss error rescaled to int8 with stochastic rounding
  (``QuantConfig.loss_error_rounding="stochastic"``; no extra memory);
* ``lr=0.25``: this peak learning rate instead of the zoo default, decayed by the same rule
  (``TrainingDefaults.lr_schedule``); the float32 twin of the same variant uses the same schedule;
* ``master=12`` (with ``wide=``): a *measurement*, not a model option: the named layers keep
  master weights of this many bits (9-15; int16 storage, the int8 view for the kernels, rescaled
  and saturated at the B-bit range) to find how many master bits close the gap; simulator only, its
  SRAM is the int8 plan plus ``B - 8`` bits per weight of those layers (``+low``), what a packed
  low part would cost;
* ``const``: no learning-rate decay (constant lr);
* ``float``: the float32 twin (built from the int8 model's initial weights).

The MLP is the 784-200-100-50-10 network of NITRO-D's Fashion-MNIST runs (``--hidden``); LeNet-5 is
the zoo's ``lenet5``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

NITRO_D_FASHION = 87.69  # NITRO-D's own code, same MLP and data, 30 epochs, batch 64 (issue 14)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp,lenet5")
    ap.add_argument("--dataset", default="fashion")
    ap.add_argument("--hidden", default="200,100,50", help="hidden widths of the mlp")
    ap.add_argument("--variants", default="int8,float,int16")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--start-seed", type=int, default=0,
                    help="train only seeds from this one up to --seeds - 1 (to split a grid over processes with "
                         "their own --name; merge the JSON runs afterwards)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-samples", type=int, default=0, help="use the first N training samples (0: all)")
    ap.add_argument("--name", default="accuracy_long")
    ap.add_argument("--report", action="store_true",
                    help="train nothing: write the table of the runs already recorded (cells short of --seeds are "
                         "marked incomplete; the same command without --report trains the missing runs)")
    ap.add_argument("--backend", default="auto", choices=("auto", "native", "numpy"),
                    help="integer runs: auto (native where the generated C handles the variant, else the simulator), "
                         "native, or numpy; the bits are the same")
    return ap.parse_args(argv)


def variants_of(model_name: str, variants: list[str]) -> list[str]:
    """The variants that apply to ``model_name``: ``lenet5:int8/wide=fc2`` only to ``lenet5``."""
    out = []
    for v in variants:
        only, sep, rest = v.partition(":")
        if not sep:
            out.append(v)
        elif only == model_name:
            out.append(rest)
    return out


def parse_variant(text: str) -> dict:
    out = {"float": False, "weight_bits": 8, "wide_layers": (), "decay": True, "error_feedback": (),
           "row_scales": False, "loss_error_rounding": "nearest", "lr": None, "master_bits": None,
           "feedback_bits": 8}
    for tok in text.split("/"):
        if tok == "float":
            out["float"] = True
        elif tok in ("int8", "int16"):
            out["weight_bits"] = int(tok[3:])
        elif tok.startswith("wide="):
            out["wide_layers"] = tuple(t for t in tok[5:].split("+") if t)
        elif tok.startswith("ef="):
            out["error_feedback"] = tuple(t for t in tok[3:].split("+") if t)
        elif tok.startswith("fb="):
            if tok[3:] not in ("2", "4", "8"):
                raise SystemExit(f"error: {tok!r}: feedback bits must be 2, 4 or 8")
            out["feedback_bits"] = int(tok[3:])
        elif tok.startswith("master="):
            if not tok[7:].isdigit() or not 9 <= int(tok[7:]) <= 15:
                raise SystemExit(f"error: {tok!r}: master bits must be 9..15")
            out["master_bits"] = int(tok[7:])
        elif tok == "const":
            out["decay"] = False
        elif tok == "rows":
            out["row_scales"] = True
        elif tok == "lsr":
            out["loss_error_rounding"] = "stochastic"
        elif tok.startswith("lr="):
            try:
                out["lr"] = float(tok[3:])
            except ValueError:
                raise SystemExit(f"error: bad learning rate in variant token {tok!r}") from None
            if not out["lr"] > 0:
                raise SystemExit(f"error: the learning rate in {tok!r} must be positive")
        else:
            raise SystemExit(f"error: unknown variant token {tok!r} (int8, int16, wide=A+B, ef=A+B, fb=L, rows, lsr, lr=X, master=B, const, float)")
    if out["feedback_bits"] != 8 and not out["error_feedback"]:
        raise SystemExit(f"error: {text!r}: fb=L needs the layers it applies to (ef=A+B)")
    if out["master_bits"] and not out["wide_layers"]:
        raise SystemExit(f"error: {text!r}: master=B needs the layers it applies to (wide=A+B)")
    return out


def build(model_name, ds, seed, args, variant):
    from tintin.nn import QuantConfig, build_model

    options = {"hidden": tuple(int(h) for h in args.hidden.split(","))} if model_name == "mlp" else {}
    config = QuantConfig(weight_bits=variant["weight_bits"], wide_layers=variant["wide_layers"],
                         row_scales=variant["row_scales"], loss_error_rounding=variant["loss_error_rounding"])
    model = build_model(model_name, ds.sample_shape, ds.num_classes, config, seed=seed,
                        input_exponent=ds.input_exponent, **options)
    if variant.get("master_bits"):
        narrow_masters(model, variant["master_bits"])
    return model


def narrow_masters(model, bits: int) -> None:
    """The ``master=B`` measurement: the int16 master weights (the ``wide=`` layers) requantised to
    ``bits`` bits (nearest); the update then rescales and saturates them at the B-bit range
    (``Parameter.bits``) and the kernels read their int8 view."""
    from tintin.numerics import QTensor, rescale

    for p in model.parameters():
        if p.kind == "weight" and p.bits == 16:
            q, s = rescale(p.value.m, p.value.scale, bits, model.config.scale_mode)
            p.assign(QTensor(q.astype(p.value.m.dtype), s))
            p.bits = bits


def train_config(model_name, seed, args, variant):
    from tintin.nn import training_defaults
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig

    d = training_defaults(model_name)
    lr = variant["lr"] or d.lr
    sched = d.lr_schedule(args.epochs, lr) if variant["decay"] else ()
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=seed,
                       optim=OptimConfig(lr=lr, lr_schedule=sched, momentum_shift=d.momentum_shift,
                                         error_feedback=variant["error_feedback"],
                                         feedback_bits=variant.get("feedback_bits", 8)),
                       eval_each_epoch=False)


def training_sram(model_name, ds, args, variant) -> str:
    """The planner's arena for one full training step at batch 1 ("-" for the float twin); error
    feedback is planned with its packed planes. The ``master=B`` measurement is not a program: the
    int8 plan plus ``B - 8`` bits per weight of its layers (``+low``)."""
    if variant["float"]:
        return "-"
    from tintin.compile import compile_program, plan_memory
    from tintin.optim import OptimConfig

    if variant["master_bits"]:
        model = build(model_name, ds, 0, args, {**variant, "master_bits": None, "wide_layers": ()})
        arena = plan_memory(compile_program(model, "full", 1)).arena_bytes
        wide = {f"{n}.weight" for n in variant["wide_layers"]}
        low = sum(p.value.m.size for p in model.parameters() if p.name in wide) * (variant["master_bits"] - 8)
        return f"{arena + (low + 7) // 8:,} (+low)"
    model = build(model_name, ds, 0, args, variant)
    optim = OptimConfig(error_feedback=variant["error_feedback"], feedback_bits=variant.get("feedback_bits", 8))
    return f"{plan_memory(compile_program(model, 'full', 1, optim=optim)).arena_bytes:,}"


def run(model_name, ds, seed, args, variant, x, y) -> float:
    from tintin.reference import train_float
    from tintin.train import fit

    tconf = train_config(model_name, seed, args, variant)
    if variant["float"]:
        init = build(model_name, ds, seed, args, {**variant, "weight_bits": 8, "wide_layers": (), "row_scales": False,
                                                  "loss_error_rounding": "nearest"})
        return 100 * train_float(init, x, y, tconf, ds.x_test, ds.y_test, threads=1).test_accuracy
    model = build(model_name, ds, seed, args, variant)
    fit_fn = fit
    if args.backend != "numpy" and not variant["master_bits"]:
        from tintin.targets.native import backend_fit
        fit_fn, _ = backend_fit(model, tconf, required=args.backend == "native")
    return 100 * fit_fn(model, x, y, tconf, ds.x_test, ds.y_test, progress=False).test_accuracy


def main(argv=None) -> None:
    args = parse_args(argv)
    from _common import RESULTS

    from tintin.data import load

    ds = load(args.dataset)
    n = args.train_samples or len(ds.x_train)
    x, y = ds.x_train[:n], ds.y_train[:n]
    path = RESULTS / f"{args.name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    done = {(r["model"], r["variant"], r["seed"]): r for r in old.get("runs", [])
            if r.get("epochs") == args.epochs and r.get("batch_size") == args.batch_size
            and r.get("train_samples") == n and r.get("dataset") == args.dataset}
    runs = list(done.values())
    sram = dict(old.get("sram", {}))
    variants = args.variants.split(",")
    models = args.models.split(",")
    for model_name in models:
        for v in variants_of(model_name, variants):
            key = f"{model_name}:{v}"
            if key not in sram or str(sram[key]).endswith("(+r)"):  # "+r": an estimate before planes compiled
                sram[key] = training_sram(model_name, ds, args, parse_variant(v))
    for seed in range(args.start_seed, 0 if args.report else args.seeds):
        for model_name in models:
            for v in variants_of(model_name, variants):
                if (model_name, v, seed) in done:
                    continue
                t0 = time.time()
                acc = run(model_name, ds, seed, args, parse_variant(v), x, y)
                rec = {"model": model_name, "variant": v, "seed": seed, "test_accuracy": acc, "epochs": args.epochs,
                       "batch_size": args.batch_size, "train_samples": n, "dataset": args.dataset,
                       "seconds": time.time() - t0}
                runs.append(rec)
                done[(model_name, v, seed)] = rec
                print(f"{model_name} {v} seed {seed}: {acc:.2f}%  ({rec['seconds']:.0f} s)", flush=True)
                write(args, runs, sram, models, variants)
    write(args, runs, sram, models, variants)


def float_twin_of(variant: str) -> str:
    """The float32 variant trained with the same schedule as ``variant`` (its ``const`` and ``lr=``
    tokens)."""
    toks = [t for t in variant.split("/") if t == "const" or t.startswith("lr=")]
    return "/".join(["float", *toks])


def summary(runs, model_name, variant):
    accs = [r["test_accuracy"] for r in sorted(runs, key=lambda r: r["seed"])
            if r["model"] == model_name and r["variant"] == variant]
    if not accs:
        return None
    return {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "n": len(accs),
            "runs": accs}


def write(args, runs, sram, models, variants) -> None:
    from _common import markdown_table, write_results

    rows, cells = [], {}
    for model_name in models:
        for v in variants_of(model_name, variants):
            s = summary(runs, model_name, v)
            cells[f"{model_name}:{v}"] = s
            if s is None:
                rows.append([model_name, v, "not run", "", "", "", sram[f"{model_name}:{v}"]])
                continue
            fref = summary(runs, model_name, float_twin_of(v))
            gap = f"{fref['mean'] - s['mean']:+.2f}" if fref and not parse_variant(v)["float"] else ""
            mark = "" if s["n"] >= args.seeds else f" (incomplete: {s['n']} of {args.seeds} seeds)"
            rows.append([model_name, v, f"{s['mean']:.2f} ± {s['std']:.2f}{mark}", ", ".join(f"{a:.2f}" for a in s["runs"]),
                         gap, "yes" if model_name == "mlp" and s["mean"] >= NITRO_D_FASHION and not
                         parse_variant(v)["float"] else "", sram[f"{model_name}:{v}"]])
    mlp_desc = f"mlp = {args.hidden.replace(',', '-')} hidden (784-{args.hidden.replace(',', '-')}-10)"
    md = (f"## Long runs on {args.dataset}: test accuracy (%) after {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.seeds} seeds asked\n\n"
          f"{mlp_desc}; lenet5 = the zoo's LeNet-5. Every run uses the model's default lr (or the variant's `lr=X`) and the zoo's decay "
          "rule (x0.2 at 50% and 80% of the epochs) unless the variant says `const`; `float` is the float32 twin "
          "(PyTorch, one thread) from the same initial weights with the same schedule and data order. "
          "float - integer: the gap to the twin with the same schedule (`float`, `float/const`, `float/lr=X`). Training SRAM: the planner's arena for one full training step "
          f"at batch 1. NITRO-D on the same MLP and data: {NITRO_D_FASHION} %.\n\n"
          + markdown_table(["model", "variant", "test accuracy", "per seed", "float - integer",
                            f">= NITRO-D {NITRO_D_FASHION}", "training SRAM B"], rows))
    if args.report:
        md += ("\n\nWritten with `--report` from the runs recorded in the JSON (each with its seconds); the same "
               "command without `--report` trains the runs still missing and rewrites this table.")
    write_results(args.name, {"runs": runs, "sram": sram, "summary": cells, "seeds_asked": args.seeds}, md)


if __name__ == "__main__":
    main()
