"""The exact ONNX form: onnxruntime computes the simulator's integers, sample by sample.

Property test over zoo models with random shapes, scale modes, weight widths, weight scales on the
scale grid, biases and inputs; and the trained float models of the interop tests imported with one
batch (the round-trip claim: the same argmax on the whole test set, in fact the same bits)."""

from interop_needs import require

require()

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.interop import InteropError, convert_model, import_model, to_onnx, verify_onnx
from tintin.interop.onnx_export import simulator_logits
from tintin.interop.oracle import ort_session, run_session
from tintin.nn import QuantConfig
from tintin.nn.zoo import build_model
from tintin.numerics import QTensor, Scale

SHAPES = {"mlp": [(12,), (30,)], "lenet5": [(1, 12, 12), (2, 16, 12)], "cnn1d": [(2, 24), (1, 40)],
          "dscnn": [(1, 8, 8), (3, 10, 6)], "rescnn": [(1, 8, 8), (2, 16)]}


def ort_logits(model, proto, x):
    real = x.astype(np.float32) * np.float32(2.0**model.input_exponent)
    return run_session(ort_session(proto.SerializeToString()), real)[0]


@settings(max_examples=25)
@given(name=st.sampled_from(sorted(SHAPES)), shape_i=st.integers(0, 1), mode=st.sampled_from(["pow2", "compound"]),
       bits=st.sampled_from([8, 16]), seed=st.integers(0, 2**16), exponent=st.integers(-9, -3),
       classes=st.integers(2, 6), batch=st.integers(1, 5))
def test_exact_graph_is_the_simulator_bit_for_bit(name, shape_i, mode, bits, seed, exponent, classes, batch):
    rng = np.random.default_rng(seed)
    model = build_model(name, SHAPES[name][shape_i], classes, QuantConfig(scale_mode=mode, weight_bits=bits),
                        seed=seed, input_exponent=exponent)
    for p in model.parameters():  # weight scales anywhere on the grid, biases of any size
        if p.kind == "weight":
            u, d = (0, 0) if mode == "pow2" else (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            p.assign(QTensor(p.value.m.copy(), Scale(int(rng.integers(-14, -2)), u, d)))
        else:
            p.assign(QTensor(rng.integers(-2**22, 2**22, p.value.m.shape).astype(np.int32), p.value.scale))
    x = rng.integers(-127, 128, (batch,) + model.input_shape).astype(np.int8)
    sim = simulator_logits(model, x, batch_size=1)
    got = ort_logits(model, to_onnx(model), x)
    assert np.array_equal(got, sim.astype(np.float32))


@pytest.mark.parametrize("key", ["mlp", "lenet", "dscnn", "transfer_dscnn", "res"])
def test_exact_export_same_predictions_on_the_whole_test_set(key, trained, digits):
    model = import_model(trained(key), digits, calib_samples=32).model
    v = verify_onnx(model, to_onnx(model, form="exact"), digits.x_test, batch_size=1)
    assert v["samples"] == len(digits.x_test)
    assert v["argmax_agreement"] == 1.0 and v["disagreements"] == 0
    assert v["bit_exact"]  # the float32 logits are the simulator's, rounded to float32


def test_convert_defaults_to_the_exact_form(lenet_import, digits, tmp_path):
    summary = convert_model(lenet_import.model, "onnx", tmp_path / "m.onnx", data=digits)
    assert summary["form"] == "exact" and summary["verification"]["bit_exact"]
    assert summary["verification"]["argmax_agreement"] == 1.0


def test_unknown_form_is_refused(lenet_import, tmp_path):
    with pytest.raises(InteropError, match="unknown ONNX form"):
        convert_model(lenet_import.model, "onnx", tmp_path / "m.onnx", form="fp16")
    assert not (tmp_path / "m.onnx").exists()
