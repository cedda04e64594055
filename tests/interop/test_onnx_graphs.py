"""ONNX graphs built with onnx.helper: operator coverage, BatchNorm folding, unsupported operators."""

from interop_needs import require

require()

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from tintin.cli.app import main
from tintin.interop import UnsupportedOpError, calibrate_weight, import_model, sqnr_db
from tintin.interop.onnx_reader import read_onnx
from tintin.nn import QuantConfig
from tintin.nn.init import quantize_weight


def _model(nodes, inits, in_shape, out_dim):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", *in_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", out_dim])
    graph = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(v.astype(np.float32), k)
                                                      for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _conv_bn_model(rng):
    """Conv -> BatchNormalization -> Relu -> MaxPool -> Reshape -> MatMul -> Add -> Softmax."""
    inits = {"w": rng.normal(0, 0.5, (4, 1, 3, 3)), "b": rng.normal(0, 0.1, 4),
             "g": rng.uniform(0.5, 2, 4), "beta": rng.normal(0, 0.2, 4), "mean": rng.normal(0, 0.1, 4),
             "var": rng.uniform(0.5, 2, 4), "fw": rng.normal(0, 0.3, (64, 10)), "fb": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["bn"], name="bn_a"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu_a"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool_a", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Constant", [], ["shape"], name="shape_a",
                              value=numpy_helper.from_array(np.array([0, -1], dtype=np.int64))),
             helper.make_node("Reshape", ["p", "shape"], ["f"], name="flat_a"),
             helper.make_node("MatMul", ["f", "fw"], ["m"], name="mm_a"),
             helper.make_node("Add", ["m", "fb"], ["logits"], name="add_a"),
             helper.make_node("Softmax", ["logits"], ["y"], name="softmax_a", axis=1)]
    return _model(nodes, inits, (1, 8, 8), 10)


def test_conv_batchnorm_matmul_graph(digits):
    proto = _conv_bn_model(np.random.default_rng(0))
    graph = read_onnx(proto)
    assert [fl.kind for fl in graph.layers] == ["Conv", "ReLU", "MaxPool", "Flatten", "Linear"]
    assert graph.layers[0].op == "Conv+BatchNormalization" and graph.layers[0].tensor == "bn"
    assert graph.layers[-1].op == "MatMul+Add" and graph.dropped == ["softmax_a"]
    res = import_model(proto.SerializeToString(), digits, calib_samples=32)
    rows = {row.name: row for row in res.report.layers}
    assert rows["conv1"].op == "Conv+BatchNormalization" and rows["conv1"].node == "conv_a"
    assert rows["fc1"].activation_sqnr_db > 25  # the logits track onnxruntime's
    assert res.report.agreement >= 0.95


def test_batchnorm_without_a_layer_before_becomes_channel_scale(digits):
    rng = np.random.default_rng(1)
    inits = {"g": rng.uniform(0.5, 2, 1), "beta": rng.normal(0, 0.2, 1), "mean": rng.normal(0, 0.1, 1),
             "var": rng.uniform(0.5, 2, 1), "fw": rng.normal(0, 0.3, (10, 64)), "fb": rng.normal(0, 0.1, 10)}
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "beta", "mean", "var"], ["bn"], name="bn0"),
             helper.make_node("Flatten", ["bn"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)]
    res = import_model(_model(nodes, inits, (1, 8, 8), 10), digits, calib_samples=16)
    assert [row.type for row in res.report.layers] == ["ChannelScale", "Flatten", "Linear"]
    assert res.report.layers[-1].activation_sqnr_db > 25


def test_unsupported_op_names_itself_and_its_node(digits, tmp_path, capsys):
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["h"], name="fc", transB=1),
             helper.make_node("Sigmoid", ["h"], ["y"], name="gate_7")]
    proto = _model(nodes, {"fw": rng.normal(0, 0.3, (10, 64)), "fb": np.zeros(10)}, (1, 8, 8), 10)
    with pytest.raises(UnsupportedOpError, match="Sigmoid.*gate_7"):
        import_model(proto, digits)
    path = tmp_path / "sig.onnx"
    path.write_bytes(proto.SerializeToString())
    assert main(["import", str(path), "--calib", "digits", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Sigmoid" in err[0] and "gate_7" in err[0] and err[0].startswith("error:")
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_softmax_in_the_middle_is_refused(digits):
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="early_softmax", axis=1),
             helper.make_node("Flatten", ["s"], ["y"], name="flat")]
    with pytest.raises(UnsupportedOpError, match="early_softmax"):
        import_model(_model(nodes, {}, (1, 8, 8), 64), digits)


def test_wrong_sample_shape_is_one_clear_error(digits):
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1)]
    proto = _model(nodes, {"fw": np.zeros((10, 100))}, (1, 10, 10), 10)
    with pytest.raises(Exception, match=r"expects samples of shape \(1, 10, 10\)"):
        import_model(proto, digits)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["compound", "pow2"]), st.floats(0.01, 10.0))
def test_minimum_mse_scale_never_worse_than_no_clipping(seed, mode, spread):
    """The calibrated weight scale is at least as accurate as the max-based (no clipping) one."""
    rng = np.random.default_rng(seed)
    w = rng.laplace(0, spread, size=(16, 9))
    config = QuantConfig(scale_mode=mode)
    ours = calibrate_weight(w, config)
    plain = quantize_weight(w, config)
    assert sqnr_db(w, ours.dequantize()) >= sqnr_db(w, plain.dequantize()) - 1e-9
    assert ours.scale.to_float() <= plain.scale.to_float()
    assert np.abs(ours.m).max() <= 127


def test_gemm_with_row_bias_alpha_beta_and_no_transpose(digits):
    """Gemm's C may be (1, N); alpha and beta scale the product and the bias; transB=0 means W is (K, N)."""
    rng = np.random.default_rng(3)
    w, c = rng.normal(0, 0.3, (64, 10)), rng.normal(0, 0.2, (1, 10))
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w", "c"], ["y"], name="fc", alpha=0.5, beta=2.0)]
    graph = read_onnx(_model(nodes, {"w": w, "c": c}, (1, 8, 8), 10))
    fc = graph.layers[-1]
    assert np.allclose(fc.weight, 0.5 * w.T) and np.allclose(fc.bias, 2.0 * c.reshape(-1))
