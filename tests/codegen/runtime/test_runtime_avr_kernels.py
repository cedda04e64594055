"""The AVR-specific paths of the C runtime on the ATmega328P (simavr) equal the Python bit for bit.

The weight update (``tt_sgd_update_weight_skip0_s8``) against :meth:`tintin.optim.IntegerSGD.update`:

On AVR the zero-skipping update of int8 weights runs an assembly loop (``avr_skip0_run`` in
``tt_sgd.c``): the stochastic step is the high word of ``(|g| * M << (32 - n)) + draw``, the product
formed from 8x8->16 MULs and the shift taken by whole bytes. Each example builds one program with
several random updates (weight scales, gradient scales and learning rates that give every shift
``n`` from 1 to 31, so every byte offset of the product; gradients around the 2**15 bound of the
assembly loop; weights at the edge of the range, so that new values leave it and the tensor is
rescaled or saturated), runs it on simavr and compares every new weight and scale with the Python.

The batch-1 dense update that forms its gradient itself (``tt_sgd_update_weight_outer_s8``, AVR only:
``g[i, k] = err[i] * x[k]`` row by row, rows with a zero error skipped, no range scan) against the
same Python update of the gradient ``outer(err, x)``: errors and inputs with zeros, at -128 and
127, scales and learning rates whose shift ``n`` falls inside [1, 31] (the assembly loop) and
outside it (the gradient formed in full, then the general path), weights at the edge of the
range (rescale or saturation).

The stream keys (``tt_stream_key``: on AVR the part of the key that depends on the seed and the
step alone is kept for the last pair) against :meth:`tintin.numerics.RoundingStream.key`, over
sequences of calls that change the seed, the step or neither between keys.

The dense forward (``tt_linear_forward_x4_s8``: the bias aligned with 16x16->32 products in
registers, the output rescaled with 24x8-bit products in registers) against
:func:`tintin.ops.linear_forward_s8`, and the rescale of int32 values (``tt_rescale_s32_to_s8``)
against :func:`tintin.numerics.rescale`, for values below and above the 2**23 bound of the
register products and both scale modes.

The register products under them (``tt_mul_u23_u8``, ``tt_mul_u16_avr`` of ``tt_internal.h``)
against Python integer products, operands at the edges of their ranges included.

The product of one output (``tt_dot_s8_x4``: on AVR an assembly function for 1 <= k <= 511, the
24-bit sum added to the initial value with saturation; other k in C) against the exact sum,
for k on both sides of 511 and initial values at the int32 limits.

The fast bias update (``tt_sgd_update_bias_fast_s32``: the same step as an assembly function,
``avr_sr_q``) against the same, for gradients within and beyond its 2**15 bound.

The softmax cross-entropy error (``tt_softmax_xent_error_s8``: base-2 logits without 64-bit
arithmetic, the probabilities by a 16-step division) against
:func:`tintin.ops.softmax_cross_entropy_error`, over logit scales that give every shift of the
fast path and some outside it, and every spread of logits (up to 254 apart, all equal).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_runtime_emulator import PRINT_HELPERS_C, c_array, c_scale, parse
from test_runtime_sgd import python_step
from tintin.codegen import RUNTIME_DIR
from tintin.codegen.runtime_files import runtime_files_for
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode, rescale
from tintin.ops import linear_forward_s8, softmax_cross_entropy_error
from tintin.optim import OptimConfig
from tintin.targets import build, run, toolchain_status

TARGET = "atmega328p"


def seeded(draw) -> np.random.Generator:
    """A numpy generator seeded by hypothesis (the values of one case)."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def edge_weights(draw, rng, shape) -> np.ndarray:
    """int8 weights of a random range, the first one at the edge of [-127, 127] now and then (new
    values then leave the range: rescale or saturation)"""
    wmax = draw(st.sampled_from([0, 3, 63, 127]))
    w = rng.integers(-wmax, wmax + 1, shape).astype(np.int8)
    if wmax and draw(st.booleans()):
        w.flat[0] = 127 if draw(st.booleans()) else -127
    return w


@st.composite
def skip0_case(draw):
    """(weights, gradient, config, mode, batch, seed): one skip0 update"""
    rng = seeded(draw)
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    w = edge_weights(draw, rng, (n, k))
    gmax = draw(st.sampled_from([1, 200, 16129, 32767, 32768, 2**20]))
    g = rng.integers(-gmax, gmax + 1, (n, k)).astype(np.int32)
    g[rng.random((n, k)) < draw(st.sampled_from([0.0, 0.5]))] = 0
    w_scale = Scale(draw(st.integers(-14, -4)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    g_scale = Scale(draw(st.integers(-34, -8)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    cfg = OptimConfig(rule="aligned", lr=draw(st.sampled_from([0.01, 0.05, 0.5, 1.7])), rounding=Rounding.STOCHASTIC,
                      momentum_shift=0, weight_rescale=draw(st.booleans()))
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    return QTensor(w, w_scale), QTensor(g, g_scale), cfg, mode, draw(st.integers(1, 4)), draw(st.integers(0, 2**32 - 1))


def program(updates) -> tuple[list[str], list[str]]:
    """(declarations, calls) of C calling tt_sgd_update_weight_skip0_s8 once per (weights,
    gradient, SgdConfig, key)"""
    decls, calls = ["static int8_t w[32];\nstatic int32_t g[32];\n"], []
    for i, (value, grad, c, key) in enumerate(updates):
        count = value.m.size
        decls.append(c_array("int8_t", f"w{i}_0", value.m) + c_array("int32_t", f"g{i}_0", grad.m))
        calls.append(f"""    {{
        tt_scale_t ws = {c_scale(value.scale)};
        const tt_sgd_config_t cfg = {{{c.batch_size}UL, {c_scale(c.lr)}, 0, 1, {1 if c.mode is ScaleMode.COMPOUND else 0},
                                      {c.mu}, 0, {1 if c.weight_rescale else 0}}};
        size_t i;
        for (i = 0; i < {count}u; ++i) {{ w[i] = w{i}_0[i]; g[i] = g{i}_0[i]; }}
        ok(tt_sgd_update_weight_skip0_s8(w, &ws, {count}u, g, (tt_scale_t){c_scale(grad.scale)}, &cfg, {key}UL));
        put("w{i}", ws, NULL, w, {count}u);
    }}""")
    return decls, calls


@pytest.mark.emulator
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(skip0_case(), min_size=6, max_size=6))
def test_skip0_update_on_atmega328p(tmp_path_factory, cases):
    from tintin.codegen.host import SgdConfig

    updates, want = [], {}
    for i, (value, grad, cfg, mode, batch, seed) in enumerate(cases):
        pv, _, key, opt = python_step("weight", value, 8, grad, cfg, mode, batch, seed)
        updates.append((value, grad, SgdConfig.from_optimizer(opt), key))
        want[f"w{i}"] = (pv.scale, [int(v) for v in pv.m.ravel()])
    assert_outputs(run_on_avr(*program(updates), tmp_path_factory.mktemp("avr_skip0")), want)


@st.composite
def outer_case(draw):
    """(weights, errors, inputs, gradient scale, config, mode, seed): one batch-1 dense update"""
    rng = seeded(draw)
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    w = edge_weights(draw, rng, (n, k))
    err, x = (rng.integers(-128 if draw(st.booleans()) else -127, 128, size).astype(np.int8) for size in (n, k))
    for v in (err, x):
        v[rng.random(v.size) < draw(st.sampled_from([0.0, 0.3, 0.7]))] = 0
    return outer_update(draw, w, err, x, (-14, -20, -16), [0.01, 0.05, 0.5, 1.7])


def outer_update(draw, w, err, x, lowest, lrs):
    """(weights, errors, inputs, config, mode, seed) of outer_case with drawn scales (exponents from
    lowest = (weights, errors, inputs) up), learning rate (one of lrs), mode and seed"""
    w_scale = Scale(draw(st.integers(lowest[0], -4)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    e_scale = Scale(draw(st.integers(lowest[1], -2)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    x_scale = Scale(draw(st.integers(lowest[2], -2)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    cfg = OptimConfig(rule="aligned", lr=draw(st.sampled_from(lrs)), rounding=Rounding.STOCHASTIC,
                      momentum_shift=0, weight_rescale=draw(st.booleans()))
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    return QTensor(w, w_scale), (err, e_scale), (x, x_scale), cfg, mode, draw(st.integers(0, 2**32 - 1))


@st.composite
def outer_rows_case(draw):
    """outer_case for the row loop of the assembly (avr_outer_run): rows with a zero error at the
    start, between and at the end (all of them now and then: nothing changes), weights at +-127
    (several values leave the range in one call, at the end of a row too) and learning rates up to
    8 (steps of 2**8 and more: every byte offset of the product)"""
    rng = seeded(draw)
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 12))
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    edge = rng.random((n, k)) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    w[edge] = rng.choice(np.array([-127, 127], dtype=np.int8), int(edge.sum()))
    err = rng.integers(-128, 128, n).astype(np.int8)
    err[rng.random(n) < draw(st.sampled_from([0.0, 0.5, 1.0]))] = 0
    x = rng.integers(-128, 128, k).astype(np.int8)
    x[rng.random(k) < draw(st.sampled_from([0.0, 0.3]))] = 0
    return outer_update(draw, w, err, x, (-10, -14, -10), [0.05, 0.5, 1.7, 8.0])


@pytest.mark.emulator
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(outer_case(), min_size=6, max_size=6))
def test_outer_update_on_atmega328p(tmp_path_factory, cases):
    check_outer_updates(tmp_path_factory, cases)


@pytest.mark.emulator
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(outer_rows_case(), min_size=6, max_size=6))
def test_outer_update_rows_on_atmega328p(tmp_path_factory, cases):
    check_outer_updates(tmp_path_factory, cases)


def check_outer_updates(tmp_path_factory, cases):
    """tt_sgd_update_weight_outer_s8 on simavr against the Python update of outer(err, x)"""
    from tintin.codegen.host import SgdConfig

    decls, calls, want = ["static int8_t w[72];\nstatic int32_t g[72];\n"], [], {}
    for i, (value, (err, e_scale), (x, x_scale), cfg, mode, seed) in enumerate(cases):
        grad = QTensor(np.outer(err.astype(np.int32), x.astype(np.int32)).astype(np.int32), e_scale * x_scale)
        pv, _, key, opt = python_step("weight", value, 8, grad, cfg, mode, 1, seed)
        c = SgdConfig.from_optimizer(opt)
        count, cols = value.m.size, x.size
        decls.append(c_array("int8_t", f"w{i}_0", value.m) + c_array("int8_t", f"e{i}", err)
                     + c_array("int8_t", f"x{i}", x))
        calls.append(f"""    {{
        tt_scale_t ws = {c_scale(value.scale)};
        const tt_sgd_config_t cfg = {{{c.batch_size}UL, {c_scale(c.lr)}, 0, 1, {1 if c.mode is ScaleMode.COMPOUND else 0},
                                      {c.mu}, 0, {1 if c.weight_rescale else 0}}};
        size_t i;
        for (i = 0; i < {count}u; ++i) {{ w[i] = w{i}_0[i]; g[i] = 0x5A5A5A5AL; }}
        ok(tt_sgd_update_weight_outer_s8(w, &ws, {count}u, g, tt_scale_mul((tt_scale_t){c_scale(e_scale)},
                                         (tt_scale_t){c_scale(x_scale)}), &cfg, {key}UL, e{i}, x{i}, {cols}u));
        put("w{i}", ws, NULL, w, {count}u);
    }}""")
        want[f"w{i}"] = (pv.scale, [int(v) for v in pv.m.ravel()])
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_outer")), want)


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=st.lists(st.tuples(st.sampled_from([0, 1, 7, 2**31, 2**32 - 1]), st.sampled_from([0, 1, 2, 2**32 - 1]),
                                st.integers(0, 2**32 - 1), st.booleans()), min_size=1, max_size=24))
def test_stream_keys_on_atmega328p(tmp_path_factory, calls):
    """(seed, step, site, advance): set the stream (or advance it by one step when ``advance``),
    then take the key of ``site``"""
    body, keys, seed, step = ["    tt_stream_t s;\n    int32_t k;\n    tt_stream_init(&s, 0UL, 0UL);"], [], 0, 0
    for new_seed, new_step, site, advance in calls:
        if advance:
            step = (step + 1) % 2**32
            body.append("    tt_stream_advance(&s);")
        else:
            seed, step = new_seed, new_step
            body.append(f"    tt_stream_init(&s, {seed}UL, {step}UL);")
        body.append(f"    k = (int32_t)tt_stream_key(&s, {site}UL);\n    put(\"k{len(keys)}\", s0, &k, NULL, 1u);")
        keys.append(RoundingStream(seed, step).key(site))
    body.insert(0, "    const tt_scale_t s0 = {0, 0, 0};\n    ok(TT_OK);")
    got = run_on_avr([], ["    {\n" + "\n".join(body) + "\n    }"], tmp_path_factory.mktemp("avr_keys"))
    assert_outputs(got, {f"k{i}": (Scale(0), [int(np.uint32(v).view(np.int32))]) for i, v in enumerate(keys)})


@st.composite
def forward_case(draw):
    """(x, w, b, values to rescale, their scale, mode): one dense forward and one rescale"""
    rng = seeded(draw)
    bsz, k, n = draw(st.integers(1, 2)), draw(st.integers(1, 16)), draw(st.integers(1, 12))
    x = QTensor(rng.integers(-127, 128, (bsz, k)).astype(np.int8), Scale(draw(st.integers(-9, -5))))
    w = QTensor(rng.integers(-127, 128, (n, k)).astype(np.int8),
                Scale(draw(st.integers(-10, -5)), draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    bmax = draw(st.sampled_from([0, 2**10, 2**20, 2**30]))
    b = QTensor(rng.integers(-bmax, bmax + 1, n).astype(np.int32),
                Scale(draw(st.integers(-24, -12)), draw(st.integers(-1, 1)), draw(st.integers(-1, 1))))
    # near_bound: amax >> (k - 1) at a value whose fine step m leaves a * m within m of 255 * 2**p
    # (the exact test of the rescale choice on AVR)
    near_bound = st.builds(lambda a, t, r: a * 2**t + r % 2**t, st.sampled_from([145, 163, 181, 217, 226]),
                           st.integers(0, 21), st.integers(0, 2**21))
    amax = draw(st.one_of(st.sampled_from([100, 2**12, 2**22, 2**23 + 5, 2**30]), st.integers(128, 2**30), near_bound))
    acc = rng.integers(-amax, amax + 1, draw(st.integers(1, 12))).astype(np.int32)
    acc[0] = amax if draw(st.booleans()) else -amax  # the range itself decides the rescale
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    return x, w, b, acc, Scale(draw(st.integers(-20, 0)), draw(st.integers(0, 2)), draw(st.integers(0, 2))), mode


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(forward_case(), min_size=6, max_size=6))
def test_forward_and_rescale_on_atmega328p(tmp_path_factory, cases):
    decls, calls, want = ["static int8_t y[24], r[12];\nstatic int32_t acc[24];\n"], [], {}
    for i, (x, w, b, values, scale, mode) in enumerate(cases):
        (bsz, k), n = x.m.shape, w.m.shape[0]
        m = "TT_SCALE_COMPOUND" if mode is ScaleMode.COMPOUND else "TT_SCALE_POW2"
        decls.append(c_array("int8_t", f"x{i}", x.m) + c_array("int8_t", f"w{i}", w.m) + c_array("int32_t", f"b{i}", b.m)
                     + c_array("int32_t", f"a{i}", values))
        calls.append(f"""    {{
        const tt_dense_shape_t dense = {{{bsz}u, {k}u, {n}u}};
        tt_scale_t ys, rs = {c_scale(scale)};
        ok(tt_linear_forward_x4_s8(x{i}, (tt_scale_t){c_scale(x.scale)}, w{i}, (tt_scale_t){c_scale(w.scale)}, b{i},
                                   (tt_scale_t){c_scale(b.scale)}, &dense, {m}, acc, y, &ys));
        put("y{i}", ys, NULL, y, {bsz * n}u);
        ok(tt_rescale_s32_to_s8(a{i}, {values.size}u, &rs, {m}, TT_ROUND_NEAREST, 0UL, r));
        put("r{i}", rs, NULL, r, {values.size}u);
    }}""")
        y = linear_forward_s8(x, w, b, mode)
        rv, rs = rescale(values, scale, 8, mode)
        want[f"y{i}"] = (y.scale, [int(v) for v in y.m.ravel()])
        want[f"r{i}"] = (rs, [int(v) for v in rv.ravel()])
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_forward")), want)


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(u23=st.lists(st.tuples(st.one_of(st.integers(0, 2**23 - 1), st.sampled_from([0, 2**23 - 1, 0xFFFF, 0x10000])),
                              st.one_of(st.integers(0, 255), st.just(255))), min_size=1, max_size=40),
       u16=st.lists(st.tuples(st.one_of(st.integers(0, 2**16 - 1), st.just(2**16 - 1)),
                              st.one_of(st.integers(0, 2**16 - 1), st.just(2**16 - 1))), min_size=1, max_size=40))
def test_register_products_on_atmega328p(tmp_path_factory, u23, u16):
    as_i32 = lambda v: int(np.uint32(v).view(np.int32))  # noqa: E731
    decls = ['#include "tt_internal.h"\n', c_array("int32_t", "xa", [as_i32(a) for a, _ in u23]),
             c_array("uint8_t", "xm", [m for _, m in u23]), c_array("uint16_t", "ua", [a for a, _ in u16]),
             c_array("uint16_t", "ub", [b for _, b in u16]),
             f"static int32_t p[{len(u23)}], q[{len(u16)}];\n"]
    calls = [f"""    {{
        const tt_scale_t s0 = {{0, 0, 0}};
        size_t i;
        for (i = 0; i < {len(u23)}u; ++i) p[i] = (int32_t)tt_mul_u23_u8((uint32_t)xa[i], xm[i]);
        for (i = 0; i < {len(u16)}u; ++i) q[i] = (int32_t)tt_mul_u16_avr(ua[i], ub[i]);
        ok(TT_OK);
        put("p", s0, p, NULL, {len(u23)}u);
        put("q", s0, q, NULL, {len(u16)}u);
    }}"""]
    want = {"p": (Scale(0), [as_i32(a * m) for a, m in u23]), "q": (Scale(0), [as_i32(a * b) for a, b in u16])}
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_products")), want)


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1),
       dots=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60),
                               st.one_of(st.integers(0, 24), st.integers(505, 530)),
                               st.one_of(st.integers(-2**31, 2**31 - 1),
                                         st.sampled_from([-2**31, 2**31 - 1, -2**31 + 1000, 2**31 - 1000]))),
                     min_size=1, max_size=12))
def test_dot_on_atmega328p(tmp_path_factory, seed, dots):
    """(offset of a, offset of b, k, init) into one random vector v of 600 values"""
    rng = np.random.default_rng(seed)
    v = rng.integers(-128, 128, 600).astype(np.int8)
    if rng.random() < 0.5:
        v[:] = rng.choice([-128, 127])  # the largest sums, of one sign
    got = [f"        d[{j}] = tt_dot_s8_x4({init}L, v + {oa}, v + {ob}, {k}u);" for j, (oa, ob, k, init) in enumerate(dots)]
    calls = ["    {\n        const tt_scale_t s0 = {0, 0, 0};\n        ok(TT_OK);\n" + "\n".join(got)
             + f"\n        put(\"d\", s0, d, NULL, {len(dots)}u);\n    }}"]
    decls = ['#include "tt_internal.h"\n', c_array("int8_t", "v", v), f"static int32_t d[{len(dots)}];\n"]
    want = [max(-2**31, min(2**31 - 1, init + int(np.dot(v[oa:oa + k].astype(np.int64), v[ob:ob + k].astype(np.int64)))))
            for oa, ob, k, init in dots]
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_dot")), {"d": (Scale(0), want)})


@pytest.mark.emulator
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ranges=st.lists(st.tuples(st.sampled_from([145, 163, 181, 217, 226, 72, 81, 90, 108, 113, 128, 255]),
                                 st.integers(0, 21), st.integers(0, 2**21), st.integers(-3, 3)),
                       min_size=20, max_size=20))
def test_rescale_choice_near_its_bounds_on_atmega328p(tmp_path_factory, ranges):
    """(a, t, rest, scale exponent): the range a * 2**t + rest (rest < 2**t), compound mode: the
    values whose fine step m leaves a * m within m of 255 * 2**p, where the rescale choice on AVR
    takes its exact test"""
    decls, calls, want = ["static int8_t r[2];\n"], [], {}
    for i, (a, t, rest, e) in enumerate(ranges):
        values = np.array([a * 2**t + rest % 2**t, -(a * 2**t) // 3], dtype=np.int32)
        decls.append(c_array("int32_t", f"a{i}", values))
        calls.append(f"""    {{
        tt_scale_t rs = {{{e}, 0, 0}};
        ok(tt_rescale_s32_to_s8(a{i}, 2u, &rs, TT_SCALE_COMPOUND, TT_ROUND_NEAREST, 0UL, r));
        put("r{i}", rs, NULL, r, 2u);
    }}""")
        rv, rs = rescale(values, Scale(e), 8, ScaleMode.COMPOUND)
        want[f"r{i}"] = (rs, [int(v) for v in rv])
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_choice")), want)


@st.composite
def bias_case(draw):
    """(bias, gradient, config, batch, seed): one fast bias update"""
    rng = seeded(draw)
    n = draw(st.integers(1, 12))
    b = rng.integers(-2**30, 2**30 + 1, n).astype(np.int32) if draw(st.booleans()) else \
        rng.integers(-300, 301, n).astype(np.int32)
    if draw(st.booleans()):  # at and next to the saturation bound +-2**30 (the clip of the loop)
        edge = rng.random(n) < 0.7
        b[edge] = rng.choice(np.array([-2**30, 2**30, 1 - 2**30, 2**30 - 1, -2**30 + 5, 2**30 - 5], dtype=np.int32),
                             int(edge.sum()))
    gmax = draw(st.sampled_from([1, 200, 16129, 32767, 32768, 2**20]))
    g = rng.integers(-gmax, gmax + 1, n).astype(np.int32)
    g_scale = Scale(draw(st.integers(-40, -8)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    cfg = OptimConfig(rule="aligned", lr=draw(st.sampled_from([0.01, 0.05, 0.5, 1.7])), rounding=Rounding.STOCHASTIC,
                      momentum_shift=0)
    return QTensor(b, Scale(-20)), QTensor(g, g_scale), cfg, draw(st.integers(1, 4)), draw(st.integers(0, 2**32 - 1))


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(bias_case(), min_size=6, max_size=6))
def test_fast_bias_update_on_atmega328p(tmp_path_factory, cases):
    from tintin.codegen.host import SgdConfig

    decls, calls, want = ["static int32_t b[12], g[12];\n"], [], {}
    for i, (value, grad, cfg, batch, seed) in enumerate(cases):
        pv, _, key, opt = python_step("bias", value, 32, grad, cfg, ScaleMode.COMPOUND, batch, seed)
        c = SgdConfig.from_optimizer(opt)
        n = value.m.size
        decls.append(c_array("int32_t", f"b{i}_0", value.m) + c_array("int32_t", f"g{i}_0", grad.m))
        calls.append(f"""    {{
        const tt_sgd_config_t cfg = {{{c.batch_size}UL, {c_scale(c.lr)}, 0, 1, 1, {c.mu}, 0, 1}};
        size_t i;
        for (i = 0; i < {n}u; ++i) {{ b[i] = b{i}_0[i]; g[i] = g{i}_0[i]; }}
        ok(tt_sgd_update_bias_fast_s32(b, (tt_scale_t){c_scale(value.scale)}, {n}u, g, (tt_scale_t){c_scale(grad.scale)},
                                       NULL, &cfg, {key}UL));
        put("b{i}", (tt_scale_t){c_scale(value.scale)}, b, NULL, {n}u);
    }}""")
        want[f"b{i}"] = (pv.scale, [int(v) for v in pv.m.ravel()])
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_bias")), want)


def run_on_avr(decls: list[str], calls: list[str], out) -> dict:
    """Build a C program of the declarations ``decls`` and a main running the blocks ``calls`` with
    the runtime files it needs (``-Os``, as the benchmark), run it on simavr and parse its output;
    skips the test without the AVR toolchain."""
    ok, reason = toolchain_status(TARGET)
    if not ok:
        pytest.skip(reason)
    text = ('#include "tt_platform.h"\n#include "tt_runtime.h"\n' + "".join(decls) + PRINT_HELPERS_C
            + "int main(void)\n{\n    tt_platform_init();\n" + "\n".join(calls) + "\n    return 0;\n}\n")
    (out / "program.c").write_text(text)
    files = [RUNTIME_DIR / f for f in runtime_files_for([text]) if f.endswith(".c")]
    b = build(TARGET, [out / "program.c", *files], out, include_dirs=[RUNTIME_DIR], opt="-Os", extra_cflags=("-Werror",))
    return parse(run(TARGET, b, timeout_s=60).stdout)


def assert_outputs(got: dict, want: dict) -> None:
    for name, value in want.items():
        assert got[name] == value, name


@st.composite
def softmax_case(draw):
    """(logits, labels, mode)"""
    rng = seeded(draw)
    batch, classes = draw(st.integers(1, 3)), draw(st.integers(1, 12))
    spread = draw(st.sampled_from([0, 1, 20, 127]))
    m = rng.integers(-spread, spread + 1, (batch, classes)).astype(np.int8)
    if spread == 127 and draw(st.booleans()):
        m[0, 0], m[0, -1] = 127, -127  # 254 apart
    # exponents down to -18: base-2 logit shifts from below 16 (the general path) to 31
    scale = Scale(draw(st.integers(-18, 2)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    labels = rng.integers(0, classes, batch)
    return QTensor(m, scale), labels, draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))


@pytest.mark.emulator
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(softmax_case(), min_size=6, max_size=6))
def test_softmax_error_on_atmega328p(tmp_path_factory, cases):
    decls, calls, want = ["static int8_t err[36];\nstatic int32_t scratch[36];\n"], [], {}
    for i, (logits, labels, mode) in enumerate(cases):
        b, c = logits.m.shape
        decls.append(c_array("int8_t", f"q{i}", logits.m) + c_array("uint16_t", f"y{i}", labels))
        calls.append(f"""    {{
        tt_scale_t es;
        int64_t loss = 0;
        ok(tt_softmax_xent_error_s8(q{i}, (tt_scale_t){c_scale(logits.scale)}, y{i}, {b}u, {c}u,
                                    {"TT_SCALE_COMPOUND" if mode is ScaleMode.COMPOUND else "TT_SCALE_POW2"}, scratch, err,
                                    &es, &loss));
        put("err{i}", es, NULL, err, {b * c}u);
        tt_puts("loss{i}:0,0,0:"); tt_put_i32((int32_t)loss); tt_puts(",\\n");
    }}""")
        err, loss = softmax_cross_entropy_error(logits, labels, mode)
        want[f"err{i}"] = (err.scale, [int(v) for v in err.m.ravel()])
        want[f"loss{i}"] = (Scale(0), [int(loss.total)])
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_softmax")), want)


@pytest.mark.emulator
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_table_functions_on_atmega328p(tmp_path_factory, seed):
    """``tt_exp2_frac_q15`` and ``tt_log2_q16`` read the EXP2/LOG2 tables from flash as 16-bit
    offsets (``tt_exp2_q15_entry``, ``tt_log2_q16_entry``): every table index with a random low
    byte and both ends of the interval, and ``log2`` of random values and values around every
    power of two, against the Python tables"""
    from tintin.numerics.tables import exp2_frac_q15, log2_q16

    rng = np.random.default_rng(seed)
    low = [int(v) for v in rng.integers(0, 256, 256)]
    low[0], low[1], low[254], low[255] = 0, 255, 0, 255  # both ends of an interval, the last one
    xs = [int(v) for v in rng.integers(1, 2**32, 16, dtype=np.int64)]
    xs += [max(1, min(2**32 - 1, 2**k + d)) for k in range(32) for d in (-1, 0, 1)]
    as_i32 = lambda v: int(np.uint32(v).view(np.int32))  # noqa: E731
    decls = ['#include "tt_numerics.h"\n', c_array("uint8_t", "low", low),
             c_array("int32_t", "lx", [as_i32(v) for v in xs]), "static int32_t buf[64];\n"]
    body, want = [], {}
    for c in range(4):  # exp2: index i, fraction (i << 8) | low[i], 64 indices a block
        frac = f"(uint16_t)((({c * 64}u + i) << 8) | low[{c * 64}u + i])"
        body.append(f"        for (i = 0; i < 64u; ++i) buf[i] = (int32_t)tt_exp2_frac_q15({frac});\n"
                    f"        put(\"e{c}\", s0, buf, NULL, 64u);")
        fr = np.array([((c * 64 + i) << 8) | low[c * 64 + i] for i in range(64)], dtype=np.int64)
        want[f"e{c}"] = (Scale(0), [int(v) for v in exp2_frac_q15(fr)])
    for c in range(0, len(xs), 64):
        k = min(64, len(xs) - c)
        body.append(f"        for (i = 0; i < {k}u; ++i) buf[i] = tt_log2_q16((uint32_t)lx[{c}u + i]);\n"
                    f"        put(\"l{c}\", s0, buf, NULL, {k}u);")
        want[f"l{c}"] = (Scale(0), [int(log2_q16(v)) for v in xs[c:c + k]])
    calls = ["    {\n        const tt_scale_t s0 = {0, 0, 0};\n        size_t i;\n        ok(TT_OK);\n"
             + "\n".join(body) + "\n    }"]
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_tables")), want)


@pytest.mark.emulator
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1),
       ms=st.lists(st.one_of(st.integers(0, 2**15 - 1), st.sampled_from([0, 1, 2**14, 2**15 - 1])), min_size=2,
                   max_size=2))
def test_bias_alignment_on_atmega328p(tmp_path_factory, seed, ms):
    """``avr_align_bias`` (the assembly the AVR dense forward calls per output after checking the
    multiplier once) and ``tt_align_bias_one`` (which calls it on AVR) against
    :func:`tintin.numerics.rescale.apply_multiplier` (nearest, clipped to +-2**30): every shift n
    from 1 to 31, multipliers at the edges of [0, 2**15), biases at the int32 limits, around
    powers of two and random"""
    from tintin.numerics.bounds import BIAS_ALIGN_LIMIT
    from tintin.numerics.rescale import apply_multiplier

    rng = np.random.default_rng(seed)
    bs = [-2**31, 2**31 - 1, 0, 1, -1] + [s * (2**k + d) for k in (7, 15, 23, 30) for d in (-1, 0, 1) for s in (1, -1)]
    bs += [int(v) for v in rng.integers(-2**31, 2**31, 16, dtype=np.int64)]
    decls = ['#include "tt_internal.h"\n', c_array("int32_t", "bv", bs), c_array("uint16_t", "mv", ms),
             f"static int32_t r[{len(bs)}];\n"]
    want = {}
    for j, m in enumerate(ms):
        for n in range(1, 32):
            got = [int(v) for v in apply_multiplier(np.array(bs, dtype=np.int64), (m, n), limit=BIAS_ALIGN_LIMIT)]
            want[f"a{j}{chr(64 + n)}"] = want[f"o{j}{chr(64 + n)}"] = (Scale(0), got)
    # names a<j><n as a letter> (assembly) and o<j><n> (tt_align_bias_one), built at run time
    calls = [f"""    {{
        const tt_scale_t s0 = {{0, 0, 0}};
        char name[4] = {{0, 0, 0, 0}};
        size_t i;
        uint8_t j, n;
        ok(TT_OK);
        for (j = 0; j < {len(ms)}u; ++j) {{
            for (n = 1; n <= 31u; ++n) {{
                const tt_multiplier_t mult = {{mv[j], n}};
                name[1] = (char)('0' + j);
                name[2] = (char)(64 + n);
                for (i = 0; i < {len(bs)}u; ++i) r[i] = avr_align_bias(bv[i], mv[j], n);
                name[0] = 'a';
                put(name, s0, r, NULL, {len(bs)}u);
                for (i = 0; i < {len(bs)}u; ++i) r[i] = tt_align_bias_one(bv[i], mult);
                name[0] = 'o';
                put(name, s0, r, NULL, {len(bs)}u);
            }}
        }}
    }}"""]
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_align")), want)


@pytest.mark.emulator
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ratios=st.lists(st.tuples(st.integers(-20, 20), st.integers(-64, 64), st.integers(-64, 64)), min_size=24,
                       max_size=24),
       divisors=st.lists(st.one_of(st.integers(1, 64), st.integers(1, 2**31), st.sampled_from([2, 3, 2**31])),
                         min_size=8, max_size=8))
def test_multipliers_on_atmega328p(tmp_path_factory, ratios, divisors):
    """``tt_ratio_multiplier`` (u and d steps, each renormalised: on AVR ``normalise`` without a call
    or a 32-bit shift loop; the cache of recent (U, D) pairs, asked twice for each ratio) and
    ``tt_divide_multiplier`` (the quotient renormalised from up to 31 bits) against
    :func:`tintin.numerics.scale.ratio_multiplier` and ``divide_multiplier``"""
    from tintin.numerics.scale import divide_multiplier, ratio_multiplier

    want_m = []
    for s, u, d in ratios:
        want_m += list(ratio_multiplier(Scale(s, u, d)))
    want_d = []
    for j, v in enumerate(divisors):
        want_d += list(divide_multiplier(ratio_multiplier(Scale(*ratios[j])), v))
    decls = ['#include "tt_numerics.h"\n',
             c_array("int16_t", "rs", [r[0] for r in ratios]), c_array("int16_t", "ru", [r[1] for r in ratios]),
             c_array("int16_t", "rd", [r[2] for r in ratios]),
             c_array("int32_t", "dv", [int(np.uint32(v).view(np.int32)) for v in divisors]),
             f"static int32_t r[{2 * len(ratios)}];\n"]
    calls = [f"""    {{
        const tt_scale_t s0 = {{0, 0, 0}};
        tt_multiplier_t mult;
        size_t i, pass;
        for (pass = 0; pass < 2u; ++pass) {{
            for (i = 0; i < {len(ratios)}u; ++i) {{
                const tt_scale_t ratio = {{rs[i], ru[i], rd[i]}};
                ok(tt_ratio_multiplier(ratio, &mult));
                r[2 * i] = mult.m;
                r[2 * i + 1] = mult.n;
            }}
            put(pass ? "m1" : "m0", s0, r, NULL, {2 * len(ratios)}u);
        }}
        for (i = 0; i < {len(divisors)}u; ++i) {{
            const tt_scale_t ratio = {{rs[i], ru[i], rd[i]}};
            tt_multiplier_t q;
            ok(tt_ratio_multiplier(ratio, &mult));
            ok(tt_divide_multiplier(mult, (uint32_t)dv[i], &q));
            r[2 * i] = q.m;
            r[2 * i + 1] = q.n;
        }}
        put("d", s0, r, NULL, {2 * len(divisors)}u);
    }}"""]
    want = {"m0": (Scale(0), want_m), "m1": (Scale(0), want_m), "d": (Scale(0), want_d)}
    assert_outputs(run_on_avr(decls, calls, tmp_path_factory.mktemp("avr_multipliers")), want)
