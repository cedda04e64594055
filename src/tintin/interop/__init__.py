"""Models in and out: ONNX, PyTorch and TFLite int8 import with one-batch calibration, and
conversion of tintin models back to ONNX (float or QDQ int8) and TFLite int8.

Quick use::

    from tintin import interop
    res = interop.import_model("model.onnx", "digits", calib_samples=32, out="runs/imported")
    res.report.layers[0].weight_sqnr_db, res.report.int_accuracy
    interop.convert_model(res.model, "onnx", "model_int.onnx")

Needs the ``interop`` extra (onnx, onnxruntime; tflite, tflite-micro, ai-edge-litert for TFLite).
See ``docs/interop.md``.
"""

from .calib_data import CalibrationData, calibration_data
from .calibrate import calibrate_bias, calibrate_weight, sqnr_db
from .errors import InteropError, MissingPackageError, UnsupportedOpError
from .importer import ImportReport, ImportResult, LayerReport, import_model

__all__ = ["CalibrationData", "calibration_data", "calibrate_bias", "calibrate_weight", "sqnr_db",
           "InteropError", "MissingPackageError", "UnsupportedOpError", "ImportReport", "ImportResult",
           "LayerReport", "import_model"]
