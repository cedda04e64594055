"""TFLite int8 export, run in TFLite Micro's own interpreter and in LiteRT against the simulator."""

from interop_needs import require

require("tflite_micro")

import numpy as np
import pytest

from tintin.interop import InteropError, convert_model, import_model, to_tflite, verify_tflite  # noqa: E402
from tintin.interop.tflite_export import run_tflm, tflite_input  # noqa: E402

#: documented tolerance of a TFLite int8 export against the simulator (docs/interop.md)
TFLITE_MIN_AGREEMENT = 0.96
TFLITE_MAX_STEPS = 6.0


def _litert_available():
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def test_lenet_round_trip_in_tflm_and_litert(lenet_import, digits, tmp_path):
    summary = convert_model(lenet_import.model, "tflite", tmp_path / "m.tflite", data=digits)
    runtimes = [v["runtime"] for v in summary["verification"]]
    assert runtimes[0] == "tflite-micro" and ("litert" in runtimes) == _litert_available()
    for v in summary["verification"]:
        assert v["samples"] == len(digits.x_test)
        assert v["argmax_agreement"] >= TFLITE_MIN_AGREEMENT
        assert v["max_abs_diff_steps"] <= TFLITE_MAX_STEPS
    assert (tmp_path / "m.tflite").read_bytes()[4:8] == b"TFL3"


@pytest.mark.parametrize("name", ["dscnn", "res", "transfer_dscnn"])
def test_depthwise_and_residual_models_run_in_tflm(name, trained, digits):
    """transfer_dscnn has an average pool: TFLite Micro refuses an int8 AVERAGE_POOL_2D whose
    output scale differs from its input's (regression: the export now requantises after it)."""
    model = import_model(trained(name), digits, calib_samples=32).model
    blob = to_tflite(model, digits.x_train)
    v = verify_tflite(model, blob, digits.x_test[:120])
    assert v["argmax_agreement"] >= 0.95 and v["max_abs_diff_steps"] <= TFLITE_MAX_STEPS


def test_tflm_and_litert_give_the_same_int8_outputs(lenet_import, digits):
    """Bit for bit against LiteRT's reference kernels; its optimized CPU kernels (what a deployment
    runs) may round a requantisation differently on some CPUs: at most one output step, the same
    predictions."""
    if not _litert_available():
        pytest.skip("ai-edge-litert is not installed")
    from tintin.interop.tflite_export import run_litert

    blob = to_tflite(lenet_import.model, digits.x_train)
    x = tflite_input(lenet_import.model, digits.x_test[:50])
    tflm = run_tflm(blob, x)
    assert np.array_equal(tflm, run_litert(blob, x, kernels="reference"))
    optimized = run_litert(blob, x)
    assert np.abs(tflm.astype(int) - optimized.astype(int)).max() <= 1
    assert np.array_equal(tflm.argmax(1), optimized.argmax(1))
    with pytest.raises(InteropError, match="optimized or reference"):
        run_litert(blob, x, kernels="fast")


def test_tflite_export_needs_data(lenet_import, tmp_path):
    with pytest.raises(InteropError, match="needs data"):
        convert_model(lenet_import.model, "tflite", tmp_path / "m.tflite")
