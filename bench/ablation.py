"""Ablation of the Tin-Tin techniques: each variant switches one technique off (or swaps it) from
the default configuration; per-epoch test accuracy curves (mean over seeds) saved as a PNG.

    .venv/bin/python bench/ablation.py --model mlp --dataset mnist5k --seeds 3 --epochs 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

VARIANTS = {
    # name: (QuantConfig kwargs, OptimConfig kwargs)
    "default (compound, upscaled init, aligned, int8)": ({}, {}),
    "pow2 scales": ({"scale_mode": "pow2"}, {}),
    "no initial weight upscaling": ({"upscale_init": False}, {}),
    # mu 4 -> 3 -> 2 at one and two thirds of the run (filled in from --epochs)
    "NITI rule (mu 4->3->2)": ({}, {"rule": "niti", "mu": 4, "mu_schedule": "thirds"}),
    "int16 weights": ({"weight_bits": 16}, {}),
    "int16 weights, nearest rounding": ({"weight_bits": 16}, {"rounding": "nearest"}),
    "nearest rounding of updates": ({}, {"rounding": "nearest"}),
    "pseudo-stochastic rounding": ({}, {"rounding": "pseudo_stochastic"}),
    "no weight rescaling (saturate)": ({}, {"weight_rescale": False}),
    "per-row weight scales": ({"row_scales": True}, {}),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="default: the model's training defaults")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="default: the model's training defaults")
    ap.add_argument("--variants", default="", help="comma-separated subset of variant names (default: all)")
    ap.add_argument("--name", default=None)
    args = ap.parse_args(argv)
    name = args.name or f"ablation_{args.model}_{args.dataset}"

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from _common import RESULTS, markdown_table, write_results

    from tintin.data import load
    from tintin.nn import QuantConfig, build_model, training_defaults
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig, fit

    ds = load(args.dataset)
    d = training_defaults(args.model)
    epochs = args.epochs or d.epochs
    lr = args.lr or d.lr
    base = {"lr": lr, "momentum_shift": d.momentum_shift, "lr_schedule": d.lr_schedule(epochs, lr)}
    chosen = [v for v in VARIANTS if not args.variants or v in args.variants.split(",")]
    curves, rows, records = {}, [], []
    for variant in chosen:
        qkw, okw = VARIANTS[variant]
        if okw.get("mu_schedule") == "thirds":
            okw = {**okw, "mu_schedule": ((round(epochs / 3), 3), (round(2 * epochs / 3), 2))}
        finals, per_epoch = [], []
        for seed in range(args.seeds):
            model = build_model(args.model, ds.sample_shape, ds.num_classes, QuantConfig(**qkw), seed=seed,
                                input_exponent=ds.input_exponent)
            tconf = TrainConfig(epochs=epochs, batch_size=args.batch_size, seed=seed,
                                optim=OptimConfig(**{**base, **okw}))
            res = fit(model, ds.x_train, ds.y_train, tconf, ds.x_test, ds.y_test)
            per_epoch.append([100 * h.test_accuracy for h in res.history])
            finals.append(per_epoch[-1][-1])
            print(f"{variant} seed {seed}: {finals[-1]:.2f}%", flush=True)
        curve = [statistics.mean(col) for col in zip(*per_epoch)]
        curves[variant] = curve
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        epochs_to_90 = next((i + 1 for i, a in enumerate(curve) if a >= 90.0), None)
        records.append({"variant": variant, "quant": qkw, "optim": {k: v for k, v in okw.items()},
                        "final": finals, "mean": statistics.mean(finals), "std": sd, "curve": curve})
        rows.append([variant, f"{statistics.mean(finals):.2f} ± {sd:.2f}", f"{max(curve):.2f}",
                     epochs_to_90 if epochs_to_90 else "-"])
    fig, ax = plt.subplots(figsize=(8, 5))
    for variant, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=variant, lw=1.6 if variant.startswith("default") else 1.0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"tintin ablation: {args.model} on {args.dataset}, mean of {args.seeds} seeds")
    lo = min(min(c[2:]) for c in curves.values()) if epochs > 3 else 0
    ax.set_ylim(max(lo - 1, 0), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    md = (f"## Ablation of the integer-training techniques: {args.model} on {args.dataset}\n\n"
          f"{epochs} epochs, batch {args.batch_size}, lr {lr:g}, {args.seeds} seeds; each variant changes one "
          f"thing from the default. Curves: `{png.name}`.\n\n"
          + markdown_table(["variant", "final test acc. (%)", "best epoch mean", "epochs to 90%"], rows))
    write_results(name, {"results": records, "png": png.name}, md)


if __name__ == "__main__":
    main()
