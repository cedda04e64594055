"""``tintin convert``: a tintin model file out to ONNX (float or QDQ int8), checked with onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import load_model_file, out_console, print_json


def convert_command(
    model_file: Path = typer.Argument(..., metavar="MODEL_FILE", help="tintin model file (.safetensors)"),
    to: str = typer.Option("onnx", "--to", help="output format: onnx"),
    out: Path = typer.Option(..., "--out", "-o", help="output file"),
    qdq: bool = typer.Option(False, "--qdq", help="int8 QDQ graph instead of float (needs --calib)"),
    calib: Optional[str] = typer.Option(None, "--calib", "-c", help="data (name or .npz): QDQ activation scales from "
                                        "its training samples; onnxruntime checked against the simulator on its "
                                        "test samples"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
):
    """Write MODEL_FILE in a format other runtimes read, and check it with onnxruntime."""
    from ..interop import convert_model

    model, _ = load_model_file(str(model_file))
    summary = convert_model(model, to, out, qdq=qdq, data=calib)
    if as_json:
        print_json(summary)
        return
    kind = "QDQ int8" if qdq else "float"
    out_console.print(f"wrote {summary['out']} ({kind} ONNX, opset {summary['opset']}, {summary['bytes']:,} bytes)")
    v = summary["verification"]
    if v:
        out_console.print(f"onnxruntime vs simulator on {v['samples']} samples of {v['data']}: argmax agreement "
                          f"{100 * v['argmax_agreement']:.2f}%, largest output difference {v['max_abs_diff']:.4g} "
                          f"({v['max_abs_diff_steps']:.2f} output steps)")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_command)
