"""Back out: an imported model written as ONNX (exact, float, QDQ) and TFLite int8, each run in its
runtime beside the simulator; and int8 .tflite files made by ai-edge-quantizer imported back.

The float models are the interop tests' (`tests/interop/conftest.py`: an MLP, a LeNet-class CNN, a
depthwise-separable CNN with BatchNorms, the transfer bench's DS-CNN with an average pool, an
undertrained residual CNN), trained in PyTorch on sklearn digits and imported with one calibration
batch of 32. Every check runs on the 360 test samples.

* ONNX exact / float: onnxruntime against the simulator one sample at a time (as on a device);
* ONNX QDQ and TFLite int8: fixed activation scales from the training samples as one batch,
  against the simulator on the test samples as one batch (TFLite Micro and LiteRT run one sample
  at a time);
* TFLite import: the float .tflite of the imported model quantised by ai-edge-quantizer
  (`static_wi8_ai8`, 64 calibration samples: per-channel weights, asymmetric activations),
  then imported with one batch of 32.

    .venv/bin/python bench/interop_export.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODELS = {"mlp": "MLP 64-64-10", "lenet": "LeNet-class CNN (BatchNorm folded)",
          "dscnn": "DS-CNN (depthwise, 3 BatchNorms)", "transfer_dscnn": "DS-CNN of the transfer bench (avg pool)",
          "res": "residual CNN (undertrained)"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--name", default="interop_export")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    args = ap.parse_args(argv)

    from _common import markdown_table, write_results
    from interop_import import interop_test_module

    from tintin import data, interop
    from tintin.interop.onnx_export import to_onnx, verify_onnx
    from tintin.interop.tflite_export import to_tflite, verify_tflite

    t0 = time.perf_counter()
    models, fixtures = interop_test_module(), interop_test_module("quantized_fixtures")
    ds = data.load("digits")
    onnx_rows, tflite_rows, records = [], [], []
    for key in args.models.split(","):
        label = MODELS[key]
        net = models._train(models.BUILDERS[key](), ds, epochs=models.EPOCHS.get(key, 10))
        model = interop.import_model(net, ds, calib_samples=args.calib_samples).model
        exact = verify_onnx(model, to_onnx(model, form="exact"), ds.x_test, batch_size=1)
        flt = verify_onnx(model, to_onnx(model, form="float"), ds.x_test, batch_size=1)
        qdq = verify_onnx(model, to_onnx(model, form="qdq", x_ref=ds.x_train), ds.x_test)
        blob = to_tflite(model, ds.x_train)
        tflm = verify_tflite(model, blob, ds.x_test, "tflite-micro")
        litert = verify_tflite(model, blob, ds.x_test, "litert")
        with tempfile.TemporaryDirectory() as tmp:
            path = fixtures.quantize_with_ai_edge(model, ds.x_train[:64], Path(tmp))
            rep = interop.import_model(path, ds, calib_samples=args.calib_samples).report
        w = [r.weight_sqnr_db for r in rep.layers if r.weight_sqnr_db is not None]
        a = [r.activation_sqnr_db for r in rep.layers if r.activation_sqnr_db is not None]
        records.append({"model": key, "onnx_exact": exact, "onnx_float": flt, "onnx_qdq": qdq, "tflite_micro": tflm,
                        "litert": litert, "tflite_import": {"source_int8_accuracy": rep.float_accuracy,
                                                            "int_accuracy": rep.int_accuracy,
                                                            "min_weight_sqnr_db": min(w),
                                                            "min_activation_sqnr_db": min(a)}})
        onnx_rows.append([label, f"{100 * exact['argmax_agreement']:.2f}", "yes" if exact["bit_exact"] else "no",
                          f"{100 * flt['argmax_agreement']:.2f} ({flt['disagreements']}, "
                          f"{flt['max_disagreement_margin_steps']:.2f})",
                          f"{100 * qdq['argmax_agreement']:.2f} ({qdq['max_abs_diff_steps']:.1f})"])
        tflite_rows.append([label, f"{100 * tflm['argmax_agreement']:.2f} ({tflm['max_abs_diff_steps']:.1f})",
                            f"{100 * litert['argmax_agreement']:.2f} ({litert['max_abs_diff_steps']:.1f})",
                            f"{100 * rep.float_accuracy:.2f}", f"{100 * rep.int_accuracy:.2f}", f"{min(w):.1f}",
                            f"{min(a):.1f}"])
        print(f"{key}: exact {100 * exact['argmax_agreement']:.2f}% bit-exact {exact['bit_exact']}, float "
              f"{100 * flt['argmax_agreement']:.2f}%, QDQ {100 * qdq['argmax_agreement']:.2f}%, TFLM "
              f"{100 * tflm['argmax_agreement']:.2f}%, LiteRT {100 * litert['argmax_agreement']:.2f}%", flush=True)
    md = "\n".join([
        "# Export agreement: ONNX (exact, float, QDQ) and TFLite int8 against the simulator",
        "",
        f"The interop tests' float models trained in PyTorch on sklearn digits, imported with one calibration "
        f"batch of {args.calib_samples}; checks on the {len(ds.y_test)} test samples.",
        "",
        "## ONNX in onnxruntime",
        "",
        "Exact and float: one sample at a time beside the simulator. Float column: argmax agreement % "
        "(disagreeing samples, the simulator's own tie margin there in output steps). QDQ: fixed activation "
        "scales from the training samples, the test samples as one batch (largest output difference in "
        "output steps).",
        "",
        markdown_table(["model", "exact: argmax agreement %", "exact: same bits", "float (dequantised)",
                        "QDQ int8"], onnx_rows),
        "",
        "## TFLite int8: export run in TFLite Micro and LiteRT, and ai-edge-quantizer files imported back",
        "",
        "Export columns: argmax agreement % with the simulator (largest output difference, output steps). "
        "Import columns: the float .tflite of the imported model quantised by ai-edge-quantizer "
        "(`static_wi8_ai8`, 64 samples), its own accuracy in LiteRT, the accuracy of the tintin model "
        "imported from it with one batch, and the lowest per-tensor SQNR of that conversion.",
        "",
        markdown_table(["model", "TFLite Micro vs simulator", "LiteRT vs simulator", "source int8 (LiteRT) %",
                        "imported integer %", "lowest weight SQNR dB", "lowest activation SQNR dB"], tflite_rows),
        "",
        f"Run time {time.perf_counter() - t0:.0f} s.",
    ])
    write_results(args.name, {"calib_samples": args.calib_samples, "models": records}, md)


if __name__ == "__main__":
    main()
