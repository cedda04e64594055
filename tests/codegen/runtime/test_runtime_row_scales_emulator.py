"""Per-row weight scales on an emulated Cortex-M0: one training step of a row-scaled linear layer
with a softmax cross-entropy head (tt_rows.c), from random cases, equals the Python specification
(tintin.ops with row exponents, IntegerSGD's row-scaled update). Skipped, with the reason printed,
when the toolchain is absent."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from test_runtime_emulator import PRINT_HELPERS_C, c_array, c_scale, parse, run_with_runtime  # noqa: E402
from tintin.nn.module import Context, Parameter  # noqa: E402
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode  # noqa: E402
from tintin.numerics.scale_rows import row_exp_limit  # noqa: E402
from tintin.ops import (linear_backward_input_s8, linear_backward_weight_s32, linear_forward_s8,  # noqa: E402
                        softmax_cross_entropy_error)
from tintin.optim import IntegerSGD, OptimConfig  # noqa: E402

TARGET = "cortex-m0"


def program(case) -> str:
    x, w, e, b, labels, mode, rounding, lr, key = case
    bsz, k = x.m.shape
    n = w.m.shape[0]
    m = "TT_SCALE_COMPOUND" if mode is ScaleMode.COMPOUND else "TT_SCALE_POW2"
    r = {Rounding.NEAREST: 0, Rounding.STOCHASTIC: 1, Rounding.PSEUDO_STOCHASTIC: 2}[rounding]
    return f"""#include "tt_platform.h"
#include "tt_runtime.h"
#define B {bsz}
#define K {k}
#define N {n}
{c_array("int8_t", "x", x.m)}{c_array("int8_t", "w0", w.m)}{c_array("int8_t", "e0", e)}{c_array("int32_t", "b0", b.m)}
{c_array("uint16_t", "labels", labels)}
static int8_t w[N * K], re[N], y[B * N], err[B * N], ein[B * K];
static int32_t b[N], acc[B * K > B * N ? B * K : B * N], gw[N * K];

{PRINT_HELPERS_C}
int main(void)
{{
    tt_scale_t xs = {c_scale(x.scale)}, ws = {c_scale(w.scale)}, bs = {c_scale(b.scale)}, ys, es, eis, gws;
    tt_sgd_config_t cfg;
    const tt_dense_shape_t dense = {{B, K, N}};
    int64_t loss = 0;
    size_t i;
    tt_platform_init();
    for (i = 0; i < N * K; ++i) w[i] = w0[i];
    for (i = 0; i < N; ++i) {{ b[i] = b0[i]; re[i] = e0[i]; }}
    ok(tt_linear_forward_rows_s8(x, xs, w, ws, re, b, bs, &dense, {m}, acc, y, &ys));
    ok(tt_softmax_xent_error_s8(y, ys, labels, B, N, {m}, acc, err, &es, &loss));
    ok(tt_linear_backward_input_rows_s8(err, es, w, ws, re, &dense, {m}, acc, ein, &eis));
    ok(tt_linear_backward_weight_s32(err, es, x, xs, &dense, gw, &gws));
    cfg.batch_size = B; cfg.lr.S = {lr.S}; cfg.lr.U = {lr.U}; cfg.lr.D = {lr.D};
    cfg.rule = TT_RULE_ALIGNED; cfg.rounding = {r}; cfg.mode = (uint8_t){m}; cfg.mu = 4;
    cfg.momentum_shift = 0; cfg.weight_rescale = 1;
    ok(tt_sgd_update_weight_rows_scaled_s8(w, &ws, re, N, K, gw, gws, &cfg, {row_exp_limit(n)}, {key}UL));
    put("y", ys, NULL, y, B * N);
    put("err", es, NULL, err, B * N);
    put("ein", eis, NULL, ein, B * K);
    put("w", ws, NULL, w, N * K);
    put("re", ws, NULL, re, N);
    return 0;
}}
"""


def python_side(case) -> dict:
    x, w, e, b, labels, mode, rounding, lr, key = case
    y = linear_forward_s8(x, w, b, mode, e)
    err, _ = softmax_cross_entropy_error(y, labels, mode)
    ein = linear_backward_input_s8(err, w, mode, e)
    pw = Parameter("w", "weight", w.copy(), 8)
    pw.row_exp, pw.row_limit = e.copy(), row_exp_limit(w.m.shape[0])
    opt = IntegerSGD([pw], OptimConfig(lr=lr.to_float(), rounding=rounding), mode)
    opt.lr_scale = lr
    opt.batch_size = x.m.shape[0]

    class FixedKey(RoundingStream):
        def key(self, site):
            return key

    pw.grad = linear_backward_weight_s32(err, x)
    opt.update(pw, Context(mode=mode, stream=FixedKey()))
    flat = lambda q: (q.scale, [int(v) for v in q.m.ravel()])  # noqa: E731
    return {"y": flat(y), "err": flat(err), "ein": flat(ein), "w": flat(pw.value),
            "re": (pw.value.scale, [int(v) for v in pw.row_exp])}


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bsz, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 24)), draw(st.integers(2, 10))
    x = QTensor(rng.integers(-127, 128, (bsz, k)).astype(np.int8), Scale(-7))
    w = QTensor((rng.integers(-127, 128, (n, k)) >> rng.integers(0, 6, (n, 1))).astype(np.int8),
                Scale(draw(st.integers(-10, -5)), draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    e = rng.integers(0, 6, n).astype(np.int8)
    b = QTensor(rng.integers(-2**20, 2**20, n).astype(np.int32), Scale(-20))
    labels = rng.integers(0, n, bsz)
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    rounding = draw(st.sampled_from([Rounding.NEAREST, Rounding.STOCHASTIC, Rounding.PSEUDO_STOCHASTIC]))
    lr = draw(st.sampled_from([Scale(-1), Scale(-4, 1, 0), Scale(1, 0, 2), Scale(3)]))  # large: forces rescales
    return x, w, e, b, labels, mode, rounding, lr, draw(st.integers(0, 2**32 - 1))


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_row_scaled_training_step_kernels_on_cortex_m0(tmp_path_factory, case):
    got = parse(run_with_runtime(TARGET, program(case), tmp_path_factory.mktemp("m0")))
    want = python_side(case)
    for name in ("y", "err", "ein", "w", "re"):
        assert got[name] == want[name], name
