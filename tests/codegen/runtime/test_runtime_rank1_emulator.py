"""Differential property test of the batch-1 outer-product weight update on the Cortex-M cores.

``tt_sgd_update_tiled`` with ``rank1_err`` / ``rank1_x`` (a fully connected layer at batch 1) forms
each row's gradient from the error and the input itself. On cores with SMLAL (Cortex-M3, M4, M33)
a multiplier shift ``8 <= n <= 31`` takes the long multiply-accumulate loops (the rounded step and
the new value in one instruction); other shifts take the 32-bit loops (``n < 8``) and the carry
loops (``n >= 32``). On the Cortex-M0 (ARMv6-M) every shift ``1 <= n <= 31`` takes the assembly
loops of ``tt_sgd_tiled.c`` (built at ``-O2``; ``-O0`` and ``-Os`` keep the portable C), the
others the carry loops. Each example writes a C program with the case as constant arrays, builds it
with the runtime for the core, runs it on the emulator and compares the new weights and scale with
``IntegerSGD.update`` of the materialised gradient: random shapes, zero errors and inputs (skipped
rows and columns), weights at the edge of the range (rows undone and rescaled, or saturated; from
64 columns on the rescale maps the weights through a table, four per word on these cores), sparse
rows, and every shift range.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.codegen import RUNTIME_DIR
from tintin.codegen.host import _mode, _rounding
from tintin.numerics import QTensor, Rounding, Scale, ScaleMode
from tintin.optim import OptimConfig
from tintin.targets import build, run, toolchain_status

from test_runtime_emulator import PRINT_HELPERS_C, c_array, c_scale, parse
from test_runtime_sgd import python_step


@st.composite
def rank1_cases(draw):
    """(w, e, x, grad scale, rows, weight_rescale, seed); the gradient is outer(e, x)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n, k = draw(st.integers(1, 7)), draw(st.one_of(st.integers(1, 40), st.integers(64, 80)))  # 64+: rescale by table
    zeros = draw(st.sampled_from([0.0, 0.3, 0.7]))
    emax = draw(st.sampled_from([3, 40, 127]))
    e = rng.integers(-emax, emax + 1, n).astype(np.int8)
    e[rng.random(n) < zeros] = 0
    x = rng.integers(-127, 128, k).astype(np.int8)
    x[rng.random(k) < zeros] = 0
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    if draw(st.integers(0, 3)) == 0:  # rows at the edge of the range leave it
        w = np.where(rng.random((n, k)) < 0.5, np.int8(127), np.int8(-127)).astype(np.int8)
    w_scale = Scale(-7)
    # lr = 1: the multiplier is M = 2**14 with the shift n = 14 - (g - w) (a step of about
    # |e * x| * 2**(14 - n): from n = 16 on most rows stay in range), or a general scale (a
    # multiplier that is not a power of two)
    if draw(st.integers(0, 2)) > 0:
        shift = draw(st.sampled_from([1, 7, 8, 12, 16, 18, 20, 22, 24, 26, 28, 31, 32, 40]))
        g_scale = Scale(w_scale.S + 14 - shift)
    else:
        g_scale = draw(st.builds(Scale, st.integers(-26, -8), st.integers(-3, 3), st.integers(-3, 3)))
    rows = None
    if draw(st.booleans()):
        rows = np.array(draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n)), np.int64)
    return w, e, x, g_scale, rows, draw(st.booleans()), seed


def scale_only_c(g_scale) -> str:
    """The gradient callback of the outer-product update: the scale only (it forms its rows itself)."""
    return f"""static tt_status_t grad_rows(const void *ctx, size_t first, size_t count, int32_t *grad, tt_scale_t *grad_scale)
{{
    tt_scale_t gs = {c_scale(g_scale)};
    (void)ctx; (void)first; (void)grad;
    if (count != 0) {{
        return TT_ERR_ARG; /* the outer-product update forms its rows itself */
    }}
    *grad_scale = gs;
    return TT_OK;
}}
"""


def program(w, e, x, g_scale, rows, cfg, key, *, batch=1, tile_rows=1, grad_c=None) -> str:
    """A C program that runs ``tt_sgd_update_tiled`` on the case with ``rank1_err = e`` and
    ``rank1_x = x`` at ``batch`` (``grad_c``: the gradient callback ``grad_rows``, by default the
    scale only) and prints the new weights and scale."""
    n, k = w.shape
    nrows = n if rows is None else len(rows)
    rows_c = c_array("uint16_t", "rows", rows) if rows is not None else ""
    return f"""#include "tt_platform.h"
#include "tt_runtime.h"
{c_array("int8_t", "w0", w)}{c_array("int8_t", "err", e)}{c_array("int8_t", "x", x)}{rows_c}
static int8_t w[{n * k}];
static int32_t tile[{min(tile_rows, nrows) * k}];
static uint8_t flags[{(nrows + 7) // 8}];

{PRINT_HELPERS_C}
{grad_c if grad_c is not None else scale_only_c(g_scale)}
int main(void)
{{
    tt_scale_t ws = {c_scale(Scale(-7))};
    tt_sgd_config_t cfg = {{{cfg.batch_size}u, {c_scale(cfg.lr)}, 0u, {_rounding(cfg.rounding)}u, {_mode(cfg.mode)}u,
                           {cfg.mu}u, 0u, {1 if cfg.weight_rescale else 0}u}};
    tt_tiled_update_t u;
    size_t i;
    tt_platform_init();
    for (i = 0; i < {n * k}u; ++i) {{
        w[i] = w0[i];
    }}
    u.w8 = w;
    u.w16 = NULL;
    u.w_scale = &ws;
    u.row_count = {n}u;
    u.cols = {k}u;
    u.rows = {"rows" if rows is not None else "NULL"};
    u.nrows = {nrows}u;
    u.momentum = NULL;
    u.tile = tile;
    u.tile_rows = {tile_rows}u;
    u.tile_flags = flags;
    u.grad = grad_rows;
    u.grad_ctx = NULL;
    u.rank1_err = err;
    u.rank1_x = x;
    u.rank_batch = {batch}u;
    ok(tt_sgd_update_tiled(&u, &cfg, {key & 0xFFFFFFFF}UL));
    put("w", ws, NULL, w, {n * k}u);
    return 0;
}}
"""


@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3", "cortex-m4"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rank1_cases())
def test_rank1_update_on_cortex_m(tmp_path_factory, target, case):
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    from tintin.codegen.host import SgdConfig

    w, e, x, g_scale, rows, rescale, seed = case
    value = QTensor(w, Scale(-7))
    grad = QTensor(np.outer(e.astype(np.int32), x.astype(np.int32)).astype(np.int32), g_scale)
    cfg = OptimConfig(rule="aligned", lr=1.0, rounding=Rounding.STOCHASTIC, momentum_shift=0, weight_rescale=rescale)
    pv, _, key, opt = python_step("weight", value, 8, grad, cfg, ScaleMode.COMPOUND, 1, seed, rows=rows)
    out = tmp_path_factory.mktemp(target)
    src = out / "rank1.c"
    src.write_text(program(w, e, x, g_scale, rows, SgdConfig.from_optimizer(opt), key))
    files = sorted(RUNTIME_DIR.glob("*.c"))
    b = build(target, [src, *files], out, include_dirs=[RUNTIME_DIR], opt="-O2", extra_cflags=("-Werror",))
    got = parse(run(target, b, timeout_s=60).stdout)
    assert got["w"] == (pv.scale, [int(v) for v in pv.m.ravel()])


@st.composite
def pre_scaled_cases(draw):
    """Cases of the assembly runs of the cores with SMLAL: shifts 22 <= n <= 31 with the multiplier
    2**14, so every row's |e| * M < 2**(n - 1); inputs of both signs with odd and even counts per
    sign, and half of the weights at the edge of the range (rows that leave it are undone)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    e = rng.integers(-127, 128, n).astype(np.int8)
    x = rng.integers(-127, 128, k).astype(np.int8)
    x[rng.random(k) < 0.2] = 0
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    edge = rng.random((n, k)) < draw(st.sampled_from([0.0, 0.1, 0.5]))
    w[edge] = np.where(rng.random(int(edge.sum())) < 0.5, 127, -127)
    shift = draw(st.integers(22, 31))
    return w, e, x, Scale(-7 + 14 - shift), None, True, seed


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m4"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=pre_scaled_cases())
def test_rank1_pre_scaled_runs_on_cortex_m(tmp_path_factory, target, case):
    test_rank1_update_on_cortex_m.hypothesis.inner_test(tmp_path_factory, target, case)
