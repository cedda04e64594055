"""Models in and out: ONNX and PyTorch import with one-batch calibration, and
conversion of tintin models back to ONNX (float or QDQ int8) and TFLite int8.

Quick use::

    from tintin import interop
    res = interop.import_model("model.onnx", "digits", calib_samples=32, out="runs/imported")
    res.report.layers[0].weight_sqnr_db, res.report.int_accuracy
    interop.convert_model(res.model, "onnx", "model.onnx", data="digits")

Needs the ``interop`` extra (onnx, onnxruntime; torch for PyTorch modules).
See ``docs/interop.md``.
"""

from .calib_data import CalibrationData, calibration_data
from .calibrate import calibrate_bias, calibrate_weight, sqnr_db
from .errors import InteropError, MissingPackageError, UnsupportedOpError
from .convert import convert_model
from .importer import ImportReport, ImportResult, LayerReport, import_model
from .onnx_export import to_onnx, verify_onnx
from .tflite_export import to_tflite, verify_tflite

__all__ = ["CalibrationData", "calibration_data", "calibrate_bias", "calibrate_weight", "sqnr_db",
           "InteropError", "MissingPackageError", "UnsupportedOpError", "ImportReport", "ImportResult",
           "LayerReport", "import_model", "convert_model", "to_onnx", "verify_onnx", "to_tflite", "verify_tflite"]
