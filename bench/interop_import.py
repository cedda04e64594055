"""Import with one calibration batch: float source vs imported integer model, per-layer SQNR.

The float models are the ones the interop tests train (`tests/interop/conftest.py`: an MLP, a
LeNet-class CNN with a BatchNorm to fold, a depthwise-separable CNN with three BatchNorms, the
transfer bench's DS-CNN), trained in PyTorch on sklearn digits, exported to ONNX in memory and
imported by `tintin.interop.import_model` with one calibration batch. onnxruntime is the float
oracle. On the two depthwise networks, also: threshold training (`threshold_train`) against the
static rule, in compound and pow2 scale modes.

    .venv/bin/python bench/interop_import.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = {"mlp": "MLP 64-64-10", "lenet": "LeNet-class CNN (BatchNorm folded)",
          "dscnn": "DS-CNN (depthwise, 3 BatchNorms)", "transfer_dscnn": "DS-CNN of the transfer bench (avg pool)"}
#: the depthwise networks threshold training is measured on
ALT_MODELS = ("dscnn", "transfer_dscnn")


def interop_test_module(name: str = "conftest"):
    """A module of the interop tests (``conftest``: the float model builders and trainer;
    ``quantized_fixtures``: the int8 file makers), one definition for the tests and the benches."""
    spec = importlib.util.spec_from_file_location(f"interop_{name}", HERE.parent / "tests" / "interop" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="seed of the calibration sample draw")
    ap.add_argument("--threshold-steps", type=int, default=300, help="steps of threshold training compared")
    ap.add_argument("--name", default="interop_import")
    args = ap.parse_args(argv)

    from _common import markdown_table, write_results

    from tintin import data, interop
    from tintin.nn import QuantConfig

    t0 = time.perf_counter()
    models = interop_test_module()
    ds = data.load("digits")
    rows, records, alt_rows, alt_records = [], [], [], []
    for key, label in MODELS.items():
        net = models._train(models.BUILDERS[key](), ds, epochs=models.EPOCHS.get(key, 10))
        if key in ALT_MODELS:
            for mode in ("compound", "pow2"):
                cfg = QuantConfig(scale_mode=mode)
                static = interop.import_model(net, ds, calib_samples=args.calib_samples, seed=args.seed,
                                              config=cfg).report
                t0_alt = time.perf_counter()
                alt = interop.import_model(net, ds, calib_samples=args.calib_samples, seed=args.seed, config=cfg,
                                           threshold_train=args.threshold_steps).report
                alt_s = time.perf_counter() - t0_alt
                moved = sum(t["static_scale"] != t["trained_scale"] for t in alt.thresholds)
                alt_records.append({"model": key, "scale_mode": mode, "float_accuracy": static.float_accuracy,
                                    "static_int_accuracy": static.int_accuracy, "static_agreement": static.agreement,
                                    "alt_int_accuracy": alt.int_accuracy, "alt_agreement": alt.agreement,
                                    "threshold_steps": args.threshold_steps, "scales_moved": moved,
                                    "weight_tensors": len(alt.thresholds), "alt_seconds": round(alt_s, 1),
                                    "thresholds": alt.thresholds})
                alt_rows.append([label, mode, f"{100 * static.float_accuracy:.2f}", f"{100 * static.int_accuracy:.2f}",
                                 f"{100 * alt.int_accuracy:.2f}",
                                 f"{100 * (alt.int_accuracy - static.int_accuracy):+.2f}",
                                 f"{100 * static.agreement:.2f} / {100 * alt.agreement:.2f}",
                                 f"{moved} / {len(alt.thresholds)}", f"{alt_s:.0f}"])
                print(f"{key} {mode}: static {100 * static.int_accuracy:.2f}%  threshold-trained "
                      f"{100 * alt.int_accuracy:.2f}%  ({moved} scales moved)", flush=True)
        rep = interop.import_model(net, ds, calib_samples=args.calib_samples, seed=args.seed).report
        w = [r.weight_sqnr_db for r in rep.layers if r.weight_sqnr_db is not None]
        a = [r.activation_sqnr_db for r in rep.layers if r.activation_sqnr_db is not None]
        rec = {"model": key, "float_accuracy": rep.float_accuracy, "int_accuracy": rep.int_accuracy,
               "agreement": rep.agreement, "min_weight_sqnr_db": min(w), "min_activation_sqnr_db": min(a),
               "layers": [{"name": r.name, "op": r.op, "weight_sqnr_db": r.weight_sqnr_db,
                           "activation_sqnr_db": r.activation_sqnr_db} for r in rep.layers]}
        records.append(rec)
        rows.append([label, f"{100 * rep.float_accuracy:.2f}", f"{100 * rep.int_accuracy:.2f}",
                     f"{100 * (rep.int_accuracy - rep.float_accuracy):+.2f}", f"{100 * rep.agreement:.2f}",
                     f"{min(w):.1f}", f"{min(a):.1f}"])
        print(f"{key}: float {100 * rep.float_accuracy:.2f}%  integer {100 * rep.int_accuracy:.2f}%", flush=True)
    md = "\n".join([
        "# Import with one calibration batch (ONNX from PyTorch, digits)",
        "",
        f"Float models trained in PyTorch on sklearn digits (the interop tests' models), imported with one "
        f"calibration batch of {args.calib_samples} training samples (compound scales, int8 weights); accuracy "
        f"on the {len(ds.y_test)} test samples, the float model run in onnxruntime. SQNR: the lowest over the "
        "layers, weights and activations against the float model.",
        "",
        markdown_table(["model", "float %", "integer %", "integer - float", "argmax agreement %",
                        "lowest weight SQNR dB", "lowest activation SQNR dB"], rows),
        "",
        "## Threshold training (`--threshold-train`) against the static rule, depthwise networks",
        "",
        f"The same import, then {args.threshold_steps} Adam steps of log2 weight-threshold training on the "
        "calibration batch (`tintin.interop.threshold_train`: straight-through estimator, logits MSE against the "
        "float model), in both scale modes (`pow2` is NITI's power-of-two-only scales, where Graffitist saw "
        "static calibration collapse depthwise networks).",
        "",
        markdown_table(["model", "scale mode", "float %", "static integer %", "threshold-trained integer %",
                        "gain (points)", "argmax agreement % static / trained", "weight scales moved",
                        "training s"], alt_rows),
        "",
        f"Run time {time.perf_counter() - t0:.0f} s.",
    ])
    write_results(args.name, {"calib_samples": args.calib_samples, "seed": args.seed, "models": records,
                              "threshold_training": alt_records}, md)


if __name__ == "__main__":
    main()
