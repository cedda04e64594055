"""Int8 model files of the kind users have, made without TensorFlow: ONNX QDQ graphs by
onnxruntime's quantiser, .tflite files by ai-edge-quantizer."""


def quantize_with_ai_edge(model, x_calib, workdir):
    """A full-int8 .tflite of the kind users have: ai-edge-quantizer (recipe ``static_wi8_ai8``:
    per-channel weights, asymmetric activations with zero points) quantising the float .tflite that
    ``tintin.interop.to_tflite(model, float_model=True)`` writes, calibrated on ``x_calib`` (tintin
    int8 samples). Returns the file's path. Used by the tests and by bench/interop_export.py."""
    import numpy as np
    from ai_edge_quantizer import quantizer, recipe

    from tintin.interop import to_tflite
    from tintin.interop.tflite_export import tflite_input

    (workdir / "float.tflite").write_bytes(to_tflite(model, float_model=True))
    q = quantizer.Quantizer(str(workdir / "float.tflite"))
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    xs = tflite_input(model, x_calib).astype(np.float32) * 2.0**model.input_exponent
    cal = q.calibrate({"serving_default": [{"input": xs[i:i + 1]} for i in range(len(xs))]}, num_threads=1)
    q.quantize(cal, enable_progress_report=False).export_model(str(workdir / "int8.tflite"), overwrite=True)
    return workdir / "int8.tflite"


def quantize_with_onnxruntime(source, x_real, workdir, per_channel: bool = True, activations: str = "int8"):
    """An ONNX QDQ file made by ``onnxruntime.quantization.quantize_static`` from a float ONNX model
    (``source``: path or ModelProto), calibrated on ``x_real`` (float samples, one at a time):
    int8 weights (per channel or per tensor), ``activations`` int8 or uint8. Returns the path."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = source if isinstance(source, onnx.ModelProto) else onnx.load(str(source))
    onnx.save(model, str(workdir / "float.onnx"))
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{name: x_real[i:i + 1].astype(np.float32)} for i in range(len(x_real))])

        def get_next(self):
            return next(self.items, None)

    act = QuantType.QInt8 if activations == "int8" else QuantType.QUInt8
    quantize_static(str(workdir / "float.onnx"), str(workdir / "qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=act, weight_type=QuantType.QInt8)
    return workdir / "qdq.onnx"
