"""Differential property test of the batch 2..32 outer-product weight update on Cortex-M cores.

``tt_sgd_update_tiled`` with ``rank1_err`` / ``rank1_x`` and ``rank_batch`` B in 2..32 (a fully
connected layer at a small batch) forms each row's gradient ``sum_b err[b, row] * x[b, :]`` itself,
four samples per pass, over the columns with a nonzero input. On cores with SMLAL (Cortex-M3)
a multiplier shift ``16 <= n <= 32`` applies it with one long multiply-accumulate per weight
whatever ``|g| * M``; other shifts, and Cortex-M0, take the 32-bit loop where ``max |g| * M <=
2**30`` or the general element step. Each example writes a C program with the case as constant
arrays, builds it with the runtime for the core, runs it on the emulator and compares the new
weights and scale with ``IntegerSGD.update`` of the materialised gradient: random batch sizes and
shapes, zero errors and inputs (skipped rows and columns), errors up to 127 (large ``|g|``), weights
at the edge of the range (rows undone and rescaled, or saturated), row selections, every shift range.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.codegen import RUNTIME_DIR
from tintin.numerics import QTensor, Rounding, Scale, ScaleMode
from tintin.optim import OptimConfig
from tintin.targets import build, run, toolchain_status

from test_runtime_emulator import c_scale, parse
from test_runtime_rank1_emulator import program
from test_runtime_sgd import python_step


@st.composite
def rankb_cases(draw):
    """(w, e (B, n), x (B, k), grad scale, rows, weight_rescale, tile rows, seed); the gradient is e.T @ x."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    batch = draw(st.sampled_from([2, 3, 4, 5, 7, 8, 9, 16, 31, 32]))
    n, k = draw(st.integers(2, 7)), draw(st.integers(1, 40))
    zeros = draw(st.sampled_from([0.0, 0.3, 0.8]))
    emax = draw(st.sampled_from([3, 40, 127]))
    e = rng.integers(-emax, emax + 1, (batch, n)).astype(np.int8)
    e[rng.random((batch, n)) < zeros] = 0
    x = rng.integers(-127, 128, (batch, k)).astype(np.int8)
    x[rng.random((batch, k)) < zeros] = 0
    if draw(st.booleans()):  # columns whose inputs are all 0
        x[:, rng.random(k) < 0.3] = 0
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    if draw(st.integers(0, 3)) == 0:  # rows at the edge of the range leave it
        w = np.where(rng.random((n, k)) < 0.5, np.int8(127), np.int8(-127)).astype(np.int8)
    w_scale = Scale(-7)
    # lr = 1: M = 2**14 / B normalised, the shift about `shift` + log2(B)
    if draw(st.integers(0, 2)) > 0:
        shift = draw(st.sampled_from([1, 8, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 31, 32, 40]))
        g_scale = Scale(w_scale.S + 14 - shift)
    else:
        g_scale = draw(st.builds(Scale, st.integers(-30, -8), st.integers(-3, 3), st.integers(-3, 3)))
    rows = None
    if draw(st.booleans()):
        rows = np.array(draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
    return w, e, x, g_scale, rows, draw(st.booleans()), draw(st.sampled_from([1, 2, 4])), seed


def gradient_tiles_c(e, x, g_scale, rows) -> str:
    """The gradient callback: tiles of e.T @ x (used when the outer-product update does not apply)."""
    batch, n = e.shape
    k = x.shape[1]
    return f"""static tt_status_t grad_rows(const void *ctx, size_t first, size_t count, int32_t *grad, tt_scale_t *grad_scale)
{{
    tt_scale_t gs = {c_scale(g_scale)};
    size_t i, j, b;
    (void)ctx;
    for (i = 0; i < count; ++i) {{
        size_t row = {"rows[first + i]" if rows is not None else "first + i"};
        for (j = 0; j < {k}u; ++j) {{
            int32_t g = 0;
            for (b = 0; b < {batch}u; ++b) {{
                g += (int32_t)err[b * {n}u + row] * (int32_t)x[b * {k}u + j];
            }}
            grad[i * {k}u + j] = g;
        }}
    }}
    *grad_scale = gs;
    return TT_OK;
}}
"""


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m0"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rankb_cases())
def test_rankb_update_on_cortex_m(tmp_path_factory, target, case):
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    from tintin.codegen.host import SgdConfig

    w, e, x, g_scale, rows, rescale, tile_rows, seed = case
    batch = e.shape[0]
    value = QTensor(w, Scale(-7))
    grad = QTensor((e.astype(np.int32).T @ x.astype(np.int32)).astype(np.int32), g_scale)
    cfg = OptimConfig(rule="aligned", lr=1.0, rounding=Rounding.STOCHASTIC, momentum_shift=0, weight_rescale=rescale)
    pv, _, key, opt = python_step("weight", value, 8, grad, cfg, ScaleMode.COMPOUND, batch, seed, rows=rows)
    out = tmp_path_factory.mktemp(target)
    src = out / "rankb.c"
    src.write_text(program(w, e, x, g_scale, rows, SgdConfig.from_optimizer(opt), key, batch=batch, tile_rows=tile_rows,
                           grad_c=gradient_tiles_c(e, x, g_scale, rows)))
    files = sorted(RUNTIME_DIR.glob("*.c"))
    b = build(target, [src, *files], out, include_dirs=[RUNTIME_DIR], opt="-O2", extra_cflags=("-Werror",))
    got = parse(run(target, b, timeout_s=60).stdout)
    assert got["w"] == (pv.scale, [int(v) for v in pv.m.ravel()])
