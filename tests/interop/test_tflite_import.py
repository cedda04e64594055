"""TFLite int8 import: asymmetric, per-channel files (made by ai-edge-quantizer from a float .tflite)
and tintin's own exports, read without TensorFlow."""

from interop_needs import require

require("tflite_micro")

import numpy as np
import pytest

from tintin.interop import UnsupportedOpError, import_model, to_tflite  # noqa: E402


@pytest.fixture(scope="module")
def quantized_by_google(lenet_import, digits, tmp_path_factory):
    """A full-int8 file from ai-edge-quantizer (static_wi8_ai8: per-channel weights, asymmetric
    activations with zero points), quantising a float .tflite of the LeNet-class model."""
    pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer makes the asymmetric int8 fixture")
    from quantized_fixtures import quantize_with_ai_edge

    return quantize_with_ai_edge(lenet_import.model, digits.x_train[:64], tmp_path_factory.mktemp("aeq"))


def test_asymmetric_per_channel_file_imported(quantized_by_google, digits):
    from tintin.interop.tflite_reader import read_tflite

    graph, _ = read_tflite(quantized_by_google)
    zero_points = [int(t.quantization.zeroPoint[0]) for t in _reader_tensors(quantized_by_google)
                   if t.quantization is not None and t.quantization.zeroPoint is not None
                   and len(t.quantization.zeroPoint) and t.type == 9]
    assert any(z != 0 for z in zero_points), "the fixture must have asymmetric activations"
    rep = import_model(quantized_by_google, digits, calib_samples=32).report
    assert rep.format == "tflite" and [row.type for row in rep.layers][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert abs(rep.float_accuracy - rep.int_accuracy) <= 0.01  # the source int8 model in LiteRT
    assert all(row.weight_sqnr_db > 30 for row in rep.layers if row.weight_sqnr_db is not None)
    assert all(row.activation_sqnr_db > 10 for row in rep.layers)
    assert graph.input_shape == (1, 8, 8)


def _reader_tensors(path):
    from tintin.interop.tflite_export import _schema

    s = _schema()
    return s.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0).subgraphs[0].tensors


@pytest.mark.parametrize("name", ["lenet", "dscnn", "res"])
def test_tintin_export_imports_back(name, trained, digits, lenet_import):
    model = lenet_import.model if name == "lenet" else import_model(trained(name), digits, calib_samples=32).model
    blob = to_tflite(model, digits.x_train)
    res = import_model(blob, digits, calib_samples=32)
    assert [layer.spec()["type"] for layer in res.model.layers] == [layer.spec()["type"] for layer in model.layers]
    # symmetric per-tensor int8 weights come back exactly
    for a, b in zip(model.parameters(), res.model.parameters()):
        if a.kind == "weight":
            assert np.array_equal(a.value.dequantize(), b.value.dequantize()), a.name
    assert res.report.agreement >= 0.95


def test_unsupported_tflite_op_names_itself(lenet_import, digits):
    from tintin.interop.tflite_export import _schema

    s = _schema()
    m = s.ModelT.InitFromPackedBuf(bytearray(to_tflite(lenet_import.model, digits.x_train)), 0)
    relu = [i for i, oc in enumerate(m.operatorCodes) if oc.builtinCode == s.BuiltinOperator.RELU][0]
    m.operatorCodes[relu].builtinCode = m.operatorCodes[relu].deprecatedBuiltinCode = s.BuiltinOperator.TANH
    import flatbuffers

    b = flatbuffers.Builder(4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(UnsupportedOpError, match="TANH at node 'relu1'"):
        import_model(bytes(b.Output()), digits)


def test_conv1d_model_from_ai_edge_quantizer_imports_as_conv1d(trained_conv1d, digits, tmp_path):
    """A 1-D CNN (digits rows as an 8-channel series of length 8) quantised by ai-edge-quantizer: TFLite
    holds it as height-1 CONV_2D / MAX_POOL_2D on a (1, 1, L, C) input; it comes back as Conv1d."""
    pytest.importorskip("ai_edge_quantizer", reason="ai-edge-quantizer makes the int8 fixture")
    from quantized_fixtures import quantize_with_ai_edge

    net = trained_conv1d
    data = (digits.real(digits.x_test).reshape(-1, 8, 8), digits.y_test)  # calibration and accuracy
    source = import_model(net, data, calib_samples=32).model
    path = quantize_with_ai_edge(source, source_samples(source, data), tmp_path)
    res = import_model(path, data, calib_samples=32)
    types = [layer.spec()["type"] for layer in res.model.layers]
    assert types == ["Conv1d", "ReLU", "MaxPool1d", "Conv1d", "ReLU", "Flatten", "Linear"]
    assert res.model.input_shape == (8, 8)
    rep = res.report
    assert abs(rep.int_accuracy - rep.float_accuracy) <= 0.01 and rep.float_accuracy > 0.8
    assert all(row.weight_sqnr_db > 30 for row in rep.layers if row.weight_sqnr_db is not None)
    assert all(row.activation_sqnr_db is not None and row.activation_sqnr_db > 10 for row in rep.layers)


def source_samples(model, data):
    """The first 64 training samples quantised at the model's input exponent (int8)."""
    return np.clip(np.round(data[0][:64] / 2.0**model.input_exponent), -127, 127).astype(np.int8)
