"""``tintin convert``: a tintin model file out to ONNX (exact integer, float or QDQ int8) or TFLite int8, checked in their runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .common import load_model_file, out_console, print_json


def convert_command(
    model_file: Path = typer.Argument(..., metavar="MODEL_FILE", help="tintin model file (.safetensors)"),
    to: str = typer.Option("onnx", "--to", help="output format: onnx | tflite (int8, needs --calib)"),
    out: Path = typer.Option(..., "--out", "-o", help="output file"),
    form: str = typer.Option("exact", "--form", help="ONNX form: exact (the simulator's integers, bit for bit) | "
                             "float (dequantised) | qdq (int8, needs --calib)"),
    qdq: bool = typer.Option(False, "--qdq", help="same as --form qdq"),
    calib: Optional[str] = typer.Option(None, "--calib", "-c", help="data (name or .npz): QDQ activation scales from "
                                        "its training samples; onnxruntime checked against the simulator on its "
                                        "test samples"),
    as_json: bool = opt.JSON,
):
    """Write MODEL_FILE in a format other runtimes read (ONNX, TFLite) and check it there against the simulator."""
    from ..interop import convert_model

    model, _ = load_model_file(str(model_file))
    summary = convert_model(model, to, out, form="qdq" if qdq else form, data=calib)
    if as_json:
        print_json(summary)
        return
    if to == "tflite":
        out_console.print(f"wrote {summary['out']} (TFLite int8, {summary['bytes']:,} bytes)")
        checks = summary["verification"]
    else:
        kind = {"exact": "exact integer", "float": "float", "qdq": "QDQ int8"}[summary["form"]]
        out_console.print(f"wrote {summary['out']} ({kind} ONNX, opset {summary['opset']}, {summary['bytes']:,} bytes)")
        checks = [summary["verification"]] if summary["verification"] else []
    for v in checks:
        out_console.print(f"{v['runtime']} vs simulator on {v['samples']} samples of {v['data']}: argmax agreement "
                          f"{100 * v['argmax_agreement']:.2f}%, largest output difference {v['max_abs_diff']:.4g} "
                          f"({v['max_abs_diff_steps']:.2f} output steps)" + (", bit-exact" if v.get("bit_exact") else ""))


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
