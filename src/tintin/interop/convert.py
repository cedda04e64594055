"""``convert_model``: a tintin model -> an ONNX file (exact integer graph, float or QDQ int8) checked
with onnxruntime, or a TFLite int8 file checked with TFLite Micro's interpreter and LiteRT (where
it imports).

The file is written atomically. With ``data`` (a data set name, ``.npz`` path, Dataset or arrays,
as for :func:`tintin.interop.import_model`) the written model is run with onnxruntime on the
evaluation samples beside the simulator (an exact or float export against the simulator one sample
at a time, as on a device; a QDQ export against the samples as one batch), and a QDQ export takes its
fixed activation scales from the simulator on the *training* samples as one batch (so the static
ranges cover the data). A QDQ or TFLite export needs ``data``; a TFLite file is checked on the
evaluation samples one at a time in the runtimes against the simulator on them as one batch.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io.model_file import atomic_write_bytes
from ..nn import Sequential
from .calib_data import calibration_data
from .errors import InteropError

TARGETS = ("onnx", "tflite")


def convert_model(model: Sequential, to: str, out: str | os.PathLike, *, qdq: bool = False, data=None,
                  reference_samples: int = 100_000, seed: int = 0, form: str | None = None) -> dict:
    """Write ``model`` as ``to`` (``"onnx"`` or ``"tflite"``) to ``out``; returns a JSON-able summary
    with the runtime check (``verification``: samples, argmax_agreement, bit_exact,
    max_abs_diff[_steps]; a list, one per runtime, for TFLite) when ``data`` is given. ONNX ``form``:
    ``"exact"`` (default), ``"float"`` or ``"qdq"`` (``qdq=True`` is ``form="qdq"``)."""
    from .onnx_export import FORMS, to_onnx, verify_onnx

    if to not in TARGETS:
        raise InteropError(f"unknown conversion target {to!r} (targets: {', '.join(TARGETS)})")
    form = "qdq" if qdq and form is None else (form or "exact")
    if form not in FORMS:
        raise InteropError(f"unknown ONNX form {form!r} (forms: {', '.join(FORMS)})")
    qdq = form == "qdq"
    if qdq and data is None:
        raise InteropError("a QDQ int8 export needs data (--calib) to fix the activation scales")
    if to == "tflite" and data is None:
        raise InteropError("a TFLite int8 export needs data (--calib) to fix the activation scales")
    cd = calibration_data(data, reference_samples, seed, model.input_exponent) if data is not None else None
    if cd is not None:
        if tuple(cd.eval_q.shape[1:]) != tuple(model.input_shape):
            raise InteropError(f"the data has samples of shape {tuple(cd.eval_q.shape[1:])}, the model expects "
                               f"{tuple(model.input_shape)}")
        if cd.input_exponent != model.input_exponent:
            raise InteropError(f"the data is quantised at 2^{cd.input_exponent}, the model expects inputs at "
                               f"2^{model.input_exponent}")
    if to == "tflite":
        from .tflite_export import to_tflite, verify_tflite

        blob = to_tflite(model, cd.calib_q)
        out = _write(out, blob)
        checks = [verify_tflite(model, blob, cd.eval_q, runtime) for runtime in ("tflite-micro", "litert")
                  if _importable(runtime)]
        return {"model": model.name, "to": to, "qdq": True, "out": str(out), "bytes": len(blob),
                "verification": [{"data": cd.name, **c} for c in checks]}
    proto = to_onnx(model, form=form, x_ref=cd.calib_q if cd is not None else None)
    out = _write(out, proto.SerializeToString())
    summary = {"model": model.name, "to": to, "form": form, "qdq": bool(qdq), "out": str(out),
               "bytes": out.stat().st_size,
               "opset": proto.opset_import[0].version, "verification": None}
    if cd is not None:
        summary["verification"] = {"runtime": "onnxruntime", "data": cd.name,
                                   "simulator_batch": None if qdq else 1,
                                   **verify_onnx(model, proto, cd.eval_q, batch_size=None if qdq else 1)}
    return summary


def _write(out, blob: bytes) -> Path:
    out = Path(out)
    try:
        atomic_write_bytes(out, blob)
    except OSError as exc:
        raise InteropError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def _importable(runtime: str) -> bool:
    """LiteRT is checked where it imports; TFLite Micro is required (its errors are reported)."""
    if runtime == "tflite-micro":
        return True
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True
