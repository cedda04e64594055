"""``tintin import``: a float ONNX model or an int8 TFLite file in, a calibrated tintin model file and a report out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .common import out_console, print_json


def import_command(
    model_file: Path = typer.Argument(..., metavar="MODEL_FILE", help="float ONNX model (.onnx) or int8 TFLite file (.tflite)"),
    calib: str = typer.Option(..., "--calib", "-c", help="calibration data: a data set name (see `tintin datasets`) "
                              "or a .npz file (x_train[, y_train, x_test, y_test])"),
    calib_samples: int = typer.Option(32, "--calib-samples", help="samples in the one calibration batch"),
    out: Path = typer.Option(..., "--out", "-o", help="output directory (model.safetensors, import.json)"),
    scale_mode: str = opt.SCALE_MODE,
    weight_bits: int = opt.WEIGHT_BITS,
    input_exponent: Optional[int] = typer.Option(None, "--input-exponent",
                                                 help="input scale 2^E for a .npz file (default: chosen from the data)"),
    seed: int = typer.Option(0, "--seed", "-s", help="seed of the calibration sample draw"),
    threshold_train: int = typer.Option(0, "--threshold-train", min=0,
                                        help="STEPS of log2 weight-threshold training (PyTorch, Adam, straight-"
                                             "through estimator) on the calibration batch before the integer model "
                                             "is fixed (0: the static rule only)"),
    as_json: bool = opt.JSON,
):
    """Import MODEL_FILE into tintin: one calibration batch, per-layer SQNR, a tintin model file.

    Calibrates every weight scale with one batch, reports per-layer SQNR against the source model
    (onnxruntime, or LiteRT for .tflite) and float vs integer accuracy, and saves the model file."""
    from ..interop import import_model

    config = opt.quantisation(scale_mode, weight_bits)
    opt.check_writable_dir(out)
    res = import_model(model_file, calib, calib_samples=calib_samples, out=out, config=config,
                       input_exponent=input_exponent, seed=seed, threshold_train=threshold_train)
    rep = res.report
    if as_json:
        print_json(rep.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"{model_file.name} ({rep.format}) calibrated with {rep.calib_samples} samples of "
                        f"{rep.calibration_data}")
    for col, just in (("layer", "left"), ("source", "left"), ("weight SQNR dB", "right"),
                      ("activation SQNR dB", "right")):
        table.add_column(col, justify=just)
    for row in rep.layers:
        table.add_row(row.name, f"{row.op} {row.node}",
                      "" if row.weight_sqnr_db is None else f"{row.weight_sqnr_db:.1f}",
                      "" if row.activation_sqnr_db is None else f"{row.activation_sqnr_db:.1f}")
    out_console.print(table)
    if rep.threshold_train_steps:
        moved = sum(t["static_scale"] != t["trained_scale"] for t in rep.thresholds)
        out_console.print(f"threshold training: {rep.threshold_train_steps} steps, {moved} of {len(rep.thresholds)} "
                          "weight scales moved")
    if rep.float_accuracy is not None:
        source = "source int8 (LiteRT)" if rep.format == "tflite" else "float"
        out_console.print(f"accuracy on {rep.eval_samples} samples: {source} {100 * rep.float_accuracy:.2f}%, "
                          f"integer {100 * rep.int_accuracy:.2f}% (argmax agreement {100 * rep.agreement:.2f}%)")
    out_console.print(f"model saved to {rep.model_path}")


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
