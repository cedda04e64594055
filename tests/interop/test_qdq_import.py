"""QDQ ONNX import: graphs made by onnxruntime's quantiser keep their int8 weights (dequantised with
their scales and zero points, then given tintin's symmetric scales) and their activation ranges
(a range that clamps negatives becomes a ReLU); the report states the cost per tensor against the
source's own int8 weights and activations."""

from interop_needs import require

require()

import numpy as np
import pytest

from quantized_fixtures import quantize_with_onnxruntime
from tintin.interop import UnsupportedOpError, import_model
from tintin.interop.onnx_reader import read_onnx
from tintin.interop.oracle import ort_session, run_session
from tintin.interop.torch_export import torch_to_onnx


def qdq_accuracy(path, ds):
    out = run_session(ort_session(path.read_bytes(), qdq_fusion=False), ds.real(ds.x_test).astype(np.float32))[0]
    return float(np.mean(out.argmax(1) == ds.y_test))


@pytest.mark.parametrize("key,per_channel,activations", [("mlp", False, "uint8"), ("lenet", True, "int8"),
                                                         ("dscnn", True, "int8")])
def test_qdq_file_imported_with_its_quantisation(key, per_channel, activations, trained, digits, tmp_path):
    net = trained(key)
    float_proto = torch_to_onnx(net, (1, 8, 8))
    path = quantize_with_onnxruntime(float_proto, digits.real(digits.x_train[:64]), tmp_path, per_channel, activations)
    assert any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(path)).graph.node)
    res = import_model(path, digits, calib_samples=32)
    rep = res.report
    # the reference model is the QDQ file itself (onnxruntime, its ONNX meaning)
    assert rep.float_accuracy == pytest.approx(qdq_accuracy(path, digits))
    assert abs(rep.int_accuracy - rep.float_accuracy) <= 0.01
    # the same layers as importing the float model: the ReLUs folded into activation ranges are back
    float_layers = [layer.spec()["type"] for layer in import_model(float_proto, digits).model.layers]
    assert [layer.spec()["type"] for layer in res.model.layers] == float_layers
    assert all(row.weight_sqnr_db > 30 for row in rep.layers if row.weight_sqnr_db is not None)
    assert all(row.activation_sqnr_db is not None and row.activation_sqnr_db > 15 for row in rep.layers)


def test_qdq_weights_are_the_files_int8_values(trained, digits, tmp_path):
    """The float graph read from a QDQ file holds exactly its int8 weights times their scales."""
    import onnx

    path = quantize_with_onnxruntime(torch_to_onnx(trained("mlp"), (1, 8, 8)), digits.real(digits.x_train[:32]),
                                     tmp_path, per_channel=False)
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    linears = [layer for layer in read_onnx(model).layers if layer.kind == "Linear"]
    assert len(gemms) == len(linears) == 2
    for gemm, layer in zip(gemms, linears):
        q, scale, zero = (inits[name] for name in dq[gemm.input[1]].input)
        assert q.dtype == np.int8 and scale.size == 1
        assert np.array_equal(layer.weight, (q.astype(np.float64) - zero) * float(scale))  # transB=1: (out, in)


def test_quantize_without_dequantize_names_itself(trained, digits, tmp_path):
    import onnx

    path = quantize_with_onnxruntime(torch_to_onnx(trained("mlp"), (1, 8, 8)), digits.real(digits.x_train[:32]),
                                     tmp_path)
    model = onnx.load(str(path))
    last_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][-1]
    model.graph.node.remove(last_dq)
    q_out = [n for n in model.graph.node if n.op_type == "QuantizeLinear"][-1]
    q_out.output[0] = model.graph.output[0].name
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.INT8
    with pytest.raises(UnsupportedOpError, match="QuantizeLinear"):
        import_model(model, digits)
