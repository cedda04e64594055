"""Differential property tests of the product loops of ``tt_dot.c`` on every instruction-set variant.

``tt_dot.c`` compiles to one of four loops: SXTB16 + SMLAD on cores with the DSP extension
(Cortex-M4, M4F, M33: tested on cortex-m4 and cortex-m33), portable rows-of-four and two-by-two
loops on the other Arm cores (cortex-m0, cortex-m3; their dense rows-of-four loop in assembly at
-O2), 8x8->16 products in 24-bit partial sums on
AVR, portable single dot products elsewhere (the host). Each
example writes a C program that calls the kernels built on them (linear forward with and without
the accumulator, input error, weight gradient over a batch, convolution forward by im2col) on random
shapes, chosen to hit every tail (a row count that is not a multiple of 4, a length that is not a
multiple of 4, zero errors), builds it for the target, runs it and compares every output and scale
with tintin.ops. The host runs the portable loops, the emulators the Arm and AVR ones.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tintin.codegen import RUNTIME_DIR
from tintin.codegen.runtime_files import runtime_files_for
from tintin.numerics import QTensor, Scale, ScaleMode
from tintin.ops import linear_backward_input_s8, linear_backward_weight_s32, linear_forward_s8
from tintin.ops.conv import conv2d_forward_s8
from tintin.targets import build, run, toolchain_status

from test_runtime_emulator import PRINT_HELPERS_C, c_array, c_scale, parse


def dims(case) -> dict:
    """The sizes of a case: batch, columns and rows of the dense part, the convolution's geometry
    and its output size."""
    x, w, _, _, _, conv = case
    cx, cw, _, (stride, pad, groups) = conv
    d = dict(zip(("bsz", "k"), x.m.shape)) | {"n": w.m.shape[0], "stride": stride, "pad": pad, "groups": groups}
    d |= dict(zip(("cb", "cin", "h", "wd"), cx.m.shape)) | dict(zip(("cout", "kh", "kw"), cw.m.shape[:1] + cw.m.shape[2:]))
    d["oh"] = (d["h"] + 2 * pad - d["kh"]) // stride + 1
    d["ow"] = (d["wd"] + 2 * pad - d["kw"]) // stride + 1
    return d


def program(case) -> str:
    x, w, b, err, rows, conv = case
    cx, cw, cb, _ = conv
    d = dims(case)
    bsz, k, n, cb_, cin, h, wd = d["bsz"], d["k"], d["n"], d["cb"], d["cin"], d["h"], d["wd"]
    cout, kh, kw, oh, ow = d["cout"], d["kh"], d["kw"], d["oh"], d["ow"]
    stride, pad, groups = d["stride"], d["pad"], d["groups"]
    m = "TT_SCALE_COMPOUND"
    return f"""#include "tt_platform.h"
#include "tt_runtime.h"
#define B {bsz}
#define K {k}
#define N {n}
#define R {len(rows)}
#define CY {cb_ * cout * oh * ow}
#define COLS {ow * cin * kh * kw}
{c_array("int8_t", "x", x.m)}{c_array("int8_t", "w", w.m)}{c_array("int32_t", "b", b.m)}
{c_array("int8_t", "err", err.m)}{c_array("uint16_t", "rows", rows)}
{c_array("int8_t", "cx", cx.m)}{c_array("int8_t", "cw", cw.m)}{c_array("int32_t", "cb", cb.m)}
static int8_t y[B * N], ein[B * K], cy[CY], cols[COLS];
static int32_t acc[(B * K > B * N ? B * K : B * N) > CY ? (B * K > B * N ? B * K : B * N) : CY], g[R * K];

{PRINT_HELPERS_C}
int main(void)
{{
    tt_scale_t xs = {c_scale(x.scale)}, ws = {c_scale(w.scale)}, bs = {c_scale(b.scale)}, es = {c_scale(err.scale)};
    tt_scale_t cxs = {c_scale(cx.scale)}, cws = {c_scale(cw.scale)}, cbs = {c_scale(cb.scale)}, ys, eis, gs, cys;
    const tt_dense_shape_t dense = {{B, K, N}};
    const tt_row_select_t select = {{rows, 0, R}};
    const tt_conv2d_shape_t cs = {{{cb_}, {cin}, {h}, {wd}, {cout}, {kh}, {kw}, {stride}, {stride}, {pad}, {pad}, {groups}}};
    tt_platform_init();
    ok(tt_linear_forward_x4_s8(x, xs, w, ws, b, bs, &dense, {m}, acc, y, &ys));
    put("y", ys, NULL, y, B * N);
    ok(tt_linear_forward_x4_s8(x, xs, w, ws, b, bs, &dense, {m}, NULL, y, &ys));
    put("y_recomputed", ys, NULL, y, B * N);
    ok(tt_linear_backward_input_x4_s8(err, es, w, ws, &dense, {m}, acc, ein, &eis));
    put("ein", eis, NULL, ein, B * K);
    ok(tt_linear_backward_weight_rows_s32(err, es, x, xs, &dense, &select, g, &gs));
    put("g", gs, g, NULL, R * K);
    ok(tt_conv2d_forward_im2col_s8(cx, cxs, cw, cws, cb, cbs, &cs, {m}, acc, cols, cy, &cys));
    put("cy", cys, NULL, cy, CY);
    ok(tt_conv2d_forward_im2col_s8(cx, cxs, cw, cws, cb, cbs, &cs, {m}, NULL, cols, cy, &cys));
    put("cy_recomputed", cys, NULL, cy, CY);
    return 0;
}}
"""


def python_side(case) -> dict:
    x, w, b, err, rows, conv = case
    cx, cw, cb, (stride, pad, groups) = conv
    flat = lambda q: (q.scale, [int(v) for v in q.m.ravel()])  # noqa: E731
    y = linear_forward_s8(x, w, b, ScaleMode.COMPOUND)
    g = linear_backward_weight_s32(err, x)
    return {"y": flat(y), "y_recomputed": flat(y),
            "ein": flat(linear_backward_input_s8(err, w, ScaleMode.COMPOUND)),
            "g": (g.scale, [int(v) for v in g.m[np.asarray(rows, dtype=np.int64)].ravel()]),
            "cy": flat(conv2d_forward_s8(cx, cw, cb, stride, pad, groups, mode=ScaleMode.COMPOUND)),
            "cy_recomputed": flat(conv2d_forward_s8(cx, cw, cb, stride, pad, groups, mode=ScaleMode.COMPOUND))}


def _s8(rng, shape, zeros: float = 0.0, full: bool = False) -> np.ndarray:
    """Random int8 values in [-127, 127] (the domain), or [-128, 127] with ``full``; a fraction of
    zeros (the kernels skip zero errors)."""
    v = rng.integers(-128 if full else -127, 128, shape).astype(np.int8)
    v[rng.random(shape) < zeros] = 0
    return v


@st.composite
def cases(draw, small: bool, rows: tuple[int, int] | None = None):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    full = draw(st.booleans())  # -128 is outside the documented domain but every sum stays exact
    bsz = draw(st.integers(1, 3))
    k = draw(st.integers(1, 24 if small else 70))
    n = draw(st.integers(*rows) if rows else st.integers(1, 9 if small else 13))
    x = QTensor(_s8(rng, (bsz, k), full=full), Scale(-7))
    w = QTensor(_s8(rng, (n, k), full=full), Scale(draw(st.integers(-10, -5)), draw(st.integers(0, 2)), 0))
    b = QTensor(rng.integers(-2**20, 2**20, n).astype(np.int32), Scale(-20))
    err = QTensor(_s8(rng, (bsz, n), zeros=draw(st.sampled_from([0.0, 0.3, 0.7])), full=full), Scale(-9))
    rows = [int(r) for r in rng.permutation(n)[:draw(st.integers(1, n))]]
    groups = draw(st.sampled_from([1, 1, 2, 3]))  # grouped and depthwise convolutions too
    cin = groups * draw(st.integers(1, 2 if small or groups > 1 else 3))
    cout = groups * draw(st.integers(1, 3 if groups > 1 else (5 if small else 9)))
    # square kernels 1..5 and a non-square one: the 5-wide and 3-wide window copies, fans that
    # reach the 8-product loop of the two-by-two SMLAD kernel, and every tail
    kh, kw = draw(st.sampled_from([(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (3, 5), (5, 2)] if not small
                                  else [(1, 1), (2, 2), (3, 3), (2, 3)]))
    h, wd = draw(st.integers(kh, 4 if small else 9)), draw(st.integers(kw, 4 if small else 9))
    conv = (QTensor(_s8(rng, (1, cin, h, wd), full=full), Scale(-7)),
            QTensor(_s8(rng, (cout, cin // groups, kh, kw), full=full), Scale(-6)),
            QTensor(rng.integers(-2**16, 2**16, cout).astype(np.int32), Scale(-14)),
            (draw(st.integers(1, 2)), draw(st.integers(0, 1)), groups))
    return x, w, b, err, rows, conv


def program_ram_bytes(case) -> int:
    """Bytes of the arrays of ``program(case)`` (on AVR every one of them is in the SRAM)."""
    _, _, _, _, rows, (cx, cw, cb, _) = case
    d = dims(case)
    bsz, k, n, r = d["bsz"], d["k"], d["n"], len(rows)
    cy = d["cout"] * d["oh"] * d["ow"]
    return (2 * bsz * k + n * k + 4 * n + 2 * bsz * n + 2 * r + cy + d["ow"] * d["cin"] * d["kh"] * d["kw"]
            + 4 * max(bsz * k, bsz * n, cy) + 4 * r * k + cx.m.size + cw.m.size + 4 * cb.m.size)


#: the most array bytes an ATmega328P case may have: the 2 KB also hold the runtime's data and a
#: stack of about 500 B (measured: a case of 974 B runs, one of 1,082 B overflows its stack)
AVR_CASE_RAM_BYTES = 960


def check(target: str, tmp_path_factory, case, opt: str | None = None) -> None:
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp(target)
    src = out / "dot.c"
    text = program(case)
    src.write_text(text)
    files = [RUNTIME_DIR / f for f in runtime_files_for([text]) if f.endswith(".c")]
    b = build(target, [src, *files], out, include_dirs=[RUNTIME_DIR],
              opt=opt or ("-Os" if target == "atmega328p" else "-O2"), extra_cflags=("-Werror",))
    got = parse(run(target, b, timeout_s=60).stdout)
    want = python_side(case)
    for name in want:
        assert got[name] == want[name], name


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(small=False))
def test_portable_product_loops_on_the_host(tmp_path_factory, case):
    check("host", tmp_path_factory, case)


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m33"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(small=False))
def test_dsp_product_loops(tmp_path_factory, target, case):
    check(target, tmp_path_factory, case)


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@given(case=cases(small=False, rows=(33, 70)))
def test_dsp_input_error_beyond_one_chunk_of_row_pairs(tmp_path_factory, opt, case):
    """More than 2 * TT_DOT_COLUMN_PAIRS error rows: the input error's pair loop adds chunk to chunk,
    in assembly (-O2) and in its C form (-Os, -O0)."""
    check("cortex-m4", tmp_path_factory, case, opt)


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3"])
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(small=False))
def test_arm_row_loops_without_dsp(tmp_path_factory, target, case):
    """Cortex-M0 and M3 run the rows-of-four and two-by-two loops (TT_DOT_ROWS == 4); the dense
    rows-of-four loop is in assembly on both (ARMv6-M and ARMv7-M), the rest portable C."""
    check(target, tmp_path_factory, case)


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(small=True))
def test_avr_product_loops_on_atmega328p(tmp_path_factory, case):
    assume(program_ram_bytes(case) <= AVR_CASE_RAM_BYTES)
    check("atmega328p", tmp_path_factory, case)


def test_avr_partial_sum_chunk_is_the_documented_bound():
    """The AVR loop's 24-bit partial sums hold TT_DOT_AVR_CHUNK products of two int8 values."""
    import re

    from tintin.numerics.bounds import INT24_PARTIAL_TERMS

    chunk = int(re.search(r"#define TT_DOT_AVR_CHUNK (\d+)u", (RUNTIME_DIR / "tt_dot.c").read_text()).group(1))
    assert chunk == INT24_PARTIAL_TERMS
    assert chunk * 128 * 128 < 2**23 <= (chunk + 1) * 128 * 128
