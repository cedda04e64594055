"""Kernel-level property test on an emulated Cortex-M3: one training step of a linear layer with a
softmax cross-entropy head, generated from random cases, equals the Python specification.

Each example writes a C program with the case's tensors as constant arrays, builds it with the
runtime for ``cortex-m3`` (QEMU), runs it and compares every printed tensor and scale with
tintin.ops / tintin.optim. Skipped, with the reason printed, when the toolchain is absent.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.codegen import RUNTIME_DIR
from tintin.nn.module import Context, Parameter
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode
from tintin.ops import (linear_backward_bias_s32, linear_backward_input_s8, linear_backward_weight_s32,
                        linear_forward_s8, softmax_cross_entropy_error)
from tintin.optim import IntegerSGD, OptimConfig
from tintin.targets import build, run, toolchain_status

TARGET = "cortex-m3"


def c_array(ctype: str, name: str, values) -> str:
    vals = ", ".join(str(int(v)) + ("L" if ctype == "int32_t" else "") for v in np.asarray(values).ravel())
    return f"static const {ctype} {name}[] = {{{vals}}};\n"


def c_scale(s: Scale) -> str:
    return f"{{{s.S}, {s.U}, {s.D}}}"


#: C helpers of the kernel programs: put() prints "name:S,U,D:v0,v1,...," (see parse), ok() exits
#: with status 3 on an error status
PRINT_HELPERS_C = """static void put(const char *name, tt_scale_t s, const int32_t *v32, const int8_t *v8, size_t count)
{
    size_t i;
    tt_puts(name); tt_putc(':');
    tt_put_i32(s.S); tt_putc(','); tt_put_i32(s.U); tt_putc(','); tt_put_i32(s.D); tt_putc(':');
    for (i = 0; i < count; ++i) { tt_put_i32(v32 ? v32[i] : v8[i]); tt_putc(','); }
    tt_putc('\\n');
}

static void ok(tt_status_t st) { if (st != TT_OK) { tt_puts("status "); tt_put_i32(st); tt_putc('\\n'); tt_exit(3); } }
"""


def program(case) -> str:
    x, w, b, labels, mode, rounding, lr, key = case
    bsz, k = x.m.shape
    n = w.m.shape[0]
    m = "TT_SCALE_COMPOUND" if mode is ScaleMode.COMPOUND else "TT_SCALE_POW2"
    r = {Rounding.NEAREST: 0, Rounding.STOCHASTIC: 1, Rounding.PSEUDO_STOCHASTIC: 2}[rounding]
    return f"""#include "tt_platform.h"
#include "tt_runtime.h"
#define B {bsz}
#define K {k}
#define N {n}
{c_array("int8_t", "x", x.m)}{c_array("int8_t", "w0", w.m)}{c_array("int32_t", "b0", b.m)}
{c_array("uint16_t", "labels", labels)}
static int8_t w[N * K], y[B * N], err[B * N], ein[B * K];
static int32_t b[N], acc[B * K > B * N ? B * K : B * N], gw[N * K], gb[N];

{PRINT_HELPERS_C}
int main(void)
{{
    tt_scale_t xs = {c_scale(x.scale)}, ws = {c_scale(w.scale)}, bs = {c_scale(b.scale)}, ys, es, eis, gws, gbs;
    tt_sgd_config_t cfg;
    const tt_dense_shape_t dense = {{B, K, N}};
    int64_t loss = 0;
    size_t i;
    tt_platform_init();
    for (i = 0; i < N * K; ++i) w[i] = w0[i];
    for (i = 0; i < N; ++i) b[i] = b0[i];
    tt_bench_mark();
    ok(tt_linear_forward_s8(x, xs, w, ws, b, bs, &dense, {m}, acc, y, &ys));
    ok(tt_softmax_xent_error_s8(y, ys, labels, B, N, {m}, acc, err, &es, &loss));
    ok(tt_linear_backward_input_s8(err, es, w, ws, &dense, {m}, NULL, ein, &eis));
    ok(tt_linear_backward_weight_s32(err, es, x, xs, &dense, gw, &gws));
    ok(tt_linear_backward_bias_s32(err, es, B, N, gb, &gbs));
    cfg.batch_size = B; cfg.lr.S = {lr.S}; cfg.lr.U = {lr.U}; cfg.lr.D = {lr.D};
    cfg.rule = TT_RULE_ALIGNED; cfg.rounding = {r}; cfg.mode = (uint8_t){m}; cfg.mu = 4;
    cfg.momentum_shift = 0; cfg.weight_rescale = 1;
    put("gw", gws, gw, NULL, N * K);
    ok(tt_sgd_update_weight_s8(w, &ws, N * K, gw, gws, NULL, &cfg, {key}UL));
    ok(tt_sgd_update_bias_s32(b, bs, N, gb, gbs, NULL, &cfg, {key ^ 0x5A5A5A5A}UL));
    tt_bench_mark();
    put("y", ys, NULL, y, B * N);
    put("err", es, NULL, err, B * N);
    tt_puts("total="); tt_put_i32((int32_t)loss); tt_putc('\\n');
    put("ein", eis, NULL, ein, B * K);
    put("gb", gbs, gb, NULL, N);
    put("w", ws, NULL, w, N * K);
    put("b", bs, b, NULL, N);
    return 0;
}}
"""



def run_with_runtime(target: str, c_source: str, out) -> str:
    """Build ``c_source`` with the whole C runtime for ``target`` (``-O2 -Werror``), run it on the
    emulator and return its standard output; skips the test when the toolchain is absent."""
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    src = out / "program.c"
    src.write_text(c_source)
    b = build(target, [src, *sorted(RUNTIME_DIR.glob("*.c"))], out, include_dirs=[RUNTIME_DIR], opt="-O2",
              extra_cflags=("-Werror",))
    return run(target, b, timeout_s=60).stdout

def parse(stdout: str) -> dict:
    out = {}
    for line in stdout.splitlines():
        if line.startswith("total="):
            out["total"] = int(line[6:])
        elif line.count(":") == 2:
            name, sc, vals = line.split(":")
            out[name] = (Scale(*(int(v) for v in sc.split(","))), [int(v) for v in vals.split(",") if v])
    return out


def python_side(case) -> dict:
    x, w, b, labels, mode, rounding, lr, key = case
    y = linear_forward_s8(x, w, b, mode)
    err, loss = softmax_cross_entropy_error(y, labels, mode)
    ein = linear_backward_input_s8(err, w, mode)
    gw = linear_backward_weight_s32(err, x)
    gb = linear_backward_bias_s32(err)
    cfg = OptimConfig(lr=lr.to_float(), rounding=rounding)
    pw = Parameter("w", "weight", w.copy(), 8)
    pb = Parameter("b", "bias", b.copy(), 32)
    opt = IntegerSGD([pw, pb], cfg, mode)
    opt.lr_scale = lr
    opt.batch_size = x.m.shape[0]

    class FixedKeys(RoundingStream):
        def key(self, site):
            return key if site == 0 else key ^ 0x5A5A5A5A

    ctx = Context(mode=mode, stream=FixedKeys())
    pw.grad, pb.grad = gw, gb
    opt.update(pw, ctx)
    opt.update(pb, ctx)
    flat = lambda q: (q.scale, [int(v) for v in q.m.ravel()])  # noqa: E731
    return {"y": flat(y), "err": flat(err), "total": loss.total, "ein": flat(ein), "gw": flat(gw), "gb": flat(gb),
            "w": flat(pw.value), "b": flat(pb.value)}


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bsz, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 24)), draw(st.integers(2, 10))
    x = QTensor(rng.integers(-127, 128, (bsz, k)).astype(np.int8), Scale(-7))
    w = QTensor(rng.integers(-127, 128, (n, k)).astype(np.int8), Scale(draw(st.integers(-10, -5)), draw(st.integers(0, 2)),
                                                                           draw(st.integers(0, 2))))
    b = QTensor(rng.integers(-2**20, 2**20, n).astype(np.int32), Scale(-20))
    labels = rng.integers(0, n, bsz)
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    rounding = draw(st.sampled_from([Rounding.NEAREST, Rounding.STOCHASTIC, Rounding.PSEUDO_STOCHASTIC]))
    lr = draw(st.sampled_from([Scale(-1), Scale(-4, 1, 0), Scale(1, 0, 2), Scale(3)]))  # large: forces rescales
    return x, w, b, labels, mode, rounding, lr, draw(st.integers(0, 2**32 - 1))


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_training_step_kernels_on_cortex_m3(tmp_path_factory, case):
    got = parse(run_with_runtime(TARGET, program(case), tmp_path_factory.mktemp("m3")))
    want = python_side(case)
    for name in ("y", "err", "total", "ein", "gw", "gb", "w", "b"):
        assert got[name] == want[name], name
