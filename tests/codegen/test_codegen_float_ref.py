"""The float32 reference C: it trains like the integer program, and it really is soft float on cores
without an FPU and hard float on the Cortex-M4F."""

import numpy as np
import pytest

import tintin.targets as targets
from codegen_helpers import ONLINE, digits, order_for, require
from tintin.codegen.float_ref import render_reference
from tintin.targets import select_samples
from tintin.targets.float_reference import run_reference_on_target
from tintin.nn import build_model


def _run(target, tmp_path, steps):
    ds = digits()
    model = build_model("mlp", ds.sample_shape, ds.num_classes, input_exponent=ds.input_exponent)
    x, y, o = select_samples(ds.x_train, ds.y_train, order_for(len(ds.x_train), steps), steps, 1)
    return ds, run_reference_on_target(model, target, x_samples=x, y_samples=y, order=o, steps=steps,
                                       work_dir=tmp_path, optim=ONLINE), y[o]


def test_reference_learns_on_the_host(tmp_path):
    require("host")
    _, r, labels = _run("host", tmp_path, 600)
    losses = np.array(r.losses)
    assert losses[:100].mean() > 1.6 and losses[-200:].mean() < 0.8 * losses[:100].mean()
    preds = np.array([p[0] for p in r.predictions])
    assert (preds[-200:] == labels[-200:]).mean() > 0.6  # predictions before each update, late in the run


def test_reference_starts_from_the_row_scaled_weights():
    """Per-row weight scales: the float reference starts from each row's own real values."""
    import re

    from tintin.nn import QuantConfig
    from tintin.numerics.scale_rows import dequantize_rows

    model = build_model("mlp", (1, 8, 8), 10, QuantConfig(row_scales=True), seed=0, hidden=4)
    w = model.parameters()[0]
    w.row_exp[:] = [0, 1, 2, 3]
    text = render_reference(model, batch_size=1, trained={}, lr=0.1).files["tt_ref_model.c"]
    body = re.search(r"tt_p1_weight\[256\] = \{([^}]*)\}", text).group(1)
    got = np.array([float(v.strip().rstrip("f")) for v in body.split(",") if v.strip()]).reshape(4, 64)
    assert np.array_equal(got, dequantize_rows(w.value.m, w.value.scale, w.row_exp).astype(np.float32))


def test_reference_rejects_unsupported_layers():
    from tintin.codegen import CodegenError

    model = build_model("rescnn", (1, 12, 12), 4)
    with pytest.raises(CodegenError, match="Residual"):
        render_reference(model, batch_size=1, trained={}, lr=0.1)


@pytest.mark.emulator
def test_soft_and_hard_float_builds(tmp_path):
    require("cortex-m0")
    require("cortex-m4f")
    _, soft, _ = _run("cortex-m0", tmp_path / "m0", 5)
    _, hard, _ = _run("cortex-m4f", tmp_path / "m4f", 5)
    assert any(s.startswith("__aeabi_f") for s in soft.softfloat_symbols)
    assert hard.softfloat_symbols == []
    assert soft.losses == pytest.approx(hard.losses, rel=1e-3)  # same arithmetic, two implementations of it
    assert hard.per_step * 5 < soft.per_step
