/* runtime_checksum.c - exercises every runtime function on pseudo-random and edge-case inputs and
 * folds every output (values, scales, status codes) into one 32-bit checksum.
 *
 * Built for the host under AddressSanitizer + UBSan (any undefined behaviour aborts), at -O2
 * without sanitizers, and for Cortex-M / AVR under emulators: every build must print the same
 * checksum, which shows the runtime does not depend on the width of `int`, on the optimiser or on
 * undefined behaviour. Buffers are small so that the program fits the 2 KB SRAM of an ATmega328P.
 */
#include "tt_platform.h"
#include "tt_runtime.h"

#define B 3
#define K 8
#define N 6
#define C 5

static uint32_t checksum = 0x811C9DC5UL;
static uint32_t checks = 0;
static uint32_t rng_state = 12345;

static void fold(uint32_t v)
{
    checksum = tt_mix32(checksum ^ v);
    ++checks;
}

#if !defined(TT_CHECK_SKIP_NUMERICS) || !defined(TT_CHECK_SKIP_OPS) || !defined(TT_CHECK_SKIP_SGD)
static void fold64(int64_t v)
{
    fold((uint32_t)(uint64_t)v);
    fold((uint32_t)((uint64_t)v >> 32));
}
#endif

static void fold_scale(tt_scale_t s)
{
    fold((uint32_t)(uint16_t)s.S | ((uint32_t)(uint16_t)s.U << 16));
    fold((uint32_t)(uint16_t)s.D);
}

static void fold_s8(const int8_t *a, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        fold((uint32_t)(int32_t)a[i]);
    }
}

#if !defined(TT_CHECK_SKIP_OPS) || !defined(TT_CHECK_SKIP_SGD) || !defined(TT_CHECK_SKIP_CNN)
static void fold_s32(const int32_t *a, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        fold((uint32_t)a[i]);
    }
}
#endif

static uint32_t rnd(void)
{
    rng_state += 0x9E3779B9UL;
    return tt_mix32(rng_state);
}

/* uniform-ish in [-lim, lim] without division (lim < 2**31) */
static int32_t rnd_range(uint32_t lim)
{
    uint32_t r = rnd();
    uint32_t mask = 1;
    while (mask < lim) {
        mask = (mask << 1) | 1u;
    }
    r &= mask;
    if (r > lim) {
        r -= lim;
    }
    return (rnd() & 1u) ? -(int32_t)r : (int32_t)r;
}

#ifndef TT_CHECK_SKIP_OPS
static void fill_s8(int8_t *a, size_t n, uint32_t lim)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        a[i] = (int8_t)rnd_range(lim);
    }
}
#endif

static tt_scale_t scale_of(int16_t s, int16_t u, int16_t d)
{
    tt_scale_t r;
    r.S = s;
    r.U = u;
    r.D = d;
    return r;
}

#ifndef TT_CHECK_SKIP_NUMERICS
static const int64_t edge64[] = {0, 1, -1, 2, -2, 3, -3, 127, -127, 128, -128, 255, -256, 32767, -32767,
                                 0x7FFFFFFFL, -0x7FFFFFFFL, (int64_t)1 << 40, -((int64_t)1 << 40),
                                 ((int64_t)1 << 61) - 1, -(((int64_t)1 << 61) - 1)};

static void check_rounding(void)
{
    uint8_t n, mode, i;
    for (mode = 0; mode < 3; ++mode) {
        for (i = 0; i < sizeof(edge64) / sizeof(edge64[0]); ++i) {
            int64_t v = edge64[i];
            for (n = 0; n <= 62; n = (uint8_t)(n < 8 ? n + 1 : n + 7)) {
                fold64(tt_shift_round_s64(v, n, (tt_rounding_t)mode, 0xABCDEF01UL, i));
                if (v >= -0x7FFFFFFFL && v <= 0x7FFFFFFFL && n <= 40) {
                    fold((uint32_t)tt_shift_round_s32((int32_t)v, n, (tt_rounding_t)mode, 77, i));
                }
            }
        }
        /* the most negative int32 is a valid input of the 32-bit versions */
        fold((uint32_t)tt_shift_round_s32(INT32_MIN, 31, (tt_rounding_t)mode, 5, 1));
        fold((uint32_t)tt_shift_round_s32(INT32_MIN, 1, (tt_rounding_t)mode, 5, 2));
    }
    for (i = 0; i < 20; ++i) {
        int32_t v = rnd_range(0x3FFFFFFFUL);
        n = (uint8_t)(rnd() & 31u);
        fold((uint32_t)tt_shift_round_s32(v, n, TT_ROUND_NEAREST, 0, 0));
        fold((uint32_t)tt_shift_round_s32(v, n, TT_ROUND_STOCHASTIC, rnd(), i));
        fold((uint32_t)tt_shift_round_s32(v, n, TT_ROUND_PSEUDO_STOCHASTIC, 0, 0));
    }
    {
        tt_stream_t s;
        tt_stream_init(&s, 42, 0xFFFFFFFFUL);
        fold(tt_stream_key(&s, 4));
        tt_stream_advance(&s);
        fold(tt_stream_key(&s, 0));
    }
}

static void check_multipliers(void)
{
    int16_t u, d, s;
    uint32_t div;
    tt_multiplier_t m, q;
    for (u = -64; u <= 64; u = (int16_t)(u + 9)) {
        for (d = -64; d <= 64; d = (int16_t)(d + 11)) {
            fold((uint32_t)tt_ratio_multiplier(scale_of(3, u, d), &m));
            fold((uint32_t)m.m);
            fold((uint32_t)m.n);
        }
    }
    fold((uint32_t)tt_ratio_multiplier(scale_of(0, 65, 0), &m)); /* TT_ERR_RANGE */
    fold((uint32_t)tt_ratio_multiplier(scale_of(0, 2, -1), &m));
    for (div = 1; div < 70; div += 3) {
        fold((uint32_t)tt_divide_multiplier(m, div, &q));
        fold((uint32_t)q.m);
        fold((uint32_t)q.n);
    }
    fold((uint32_t)tt_divide_multiplier(m, 0, &q)); /* TT_ERR_ARG */
    for (s = -30; s <= 30; s = (int16_t)(s + 6)) {
        uint8_t i;
        tt_ratio_multiplier(scale_of(s, 1, -2), &m);
        for (i = 0; i < sizeof(edge64) / sizeof(edge64[0]); ++i) {
            int64_t v = edge64[i];
            if (v > ((int64_t)1 << 46) || v < -((int64_t)1 << 46)) {
                continue;
            }
            fold64(tt_apply_multiplier_scalar(v, m, TT_ROUND_NEAREST, 0, 0, 127));
            fold64(tt_apply_multiplier_scalar(v, m, TT_ROUND_STOCHASTIC, 9, i, (int64_t)1 << 30));
            if (m.n >= -8) {
                fold64(tt_apply_multiplier_scalar(v, m, TT_ROUND_PSEUDO_STOCHASTIC, 0, 0, -1));
            }
        }
    }
}

static void check_rescale(void)
{
    static int32_t acc[N];
    static int16_t w16[N];
    static int8_t out[N];
    uint32_t amax;
    uint8_t bits, mode, i;
    tt_rescale_t c;
    for (mode = 0; mode < 2; ++mode) {
        for (bits = 2; bits <= 31; bits = (uint8_t)(bits + 3)) {
            for (amax = 0; amax < 0x7FFFFFFFUL; amax = amax * 3u + 1u) {
                c.m = c.p = c.a = c.b = c.shift = 0; /* left untouched when nothing changes */
                fold(tt_choose_rescale(amax, bits, (tt_scale_mode_t)mode, &c));
                fold((uint32_t)c.m | ((uint32_t)c.p << 8) | ((uint32_t)c.shift << 16));
                fold_scale(tt_rescaled_scale(scale_of(-3, 1, 1), &c));
            }
        }
        for (i = 0; i < 8; ++i) {
            tt_scale_t sc = scale_of(-10, 0, 1);
            uint8_t j, r = (uint8_t)(i % 3);
            for (j = 0; j < N; ++j) {
                acc[j] = i == 0 ? INT32_MAX - j : rnd_range(i < 4 ? 0x3FFFFFFFUL : 300u);
                w16[j] = (int16_t)rnd_range(32767u);
            }
            fold((uint32_t)tt_rescale_s32_to_s8(acc, N, &sc, (tt_scale_mode_t)mode, (tt_rounding_t)r, rnd(), out));
            fold_s8(out, N);
            fold_scale(sc);
            sc = scale_of(-15, 2, 0);
            fold((uint32_t)tt_rescale_s16_to_s8(w16, N, &sc, (tt_scale_mode_t)mode, out));
            fold_s8(out, N);
            fold_scale(sc);
        }
        for (i = 0; i < 12; ++i) {
            uint8_t changed = 0;
            tt_scale_t ns = scale_of(0, 0, 0);
            tt_multiplier_t m = {0, 0};
            uint64_t big = ((uint64_t)rnd() << 14) | 128u;
            fold((uint32_t)tt_choose_grid_rescale(big, scale_of(-9, (int16_t)(i % 3), (int16_t)(i % 4)),
                                                  (uint8_t)(i & 1 ? 16 : 8), (tt_scale_mode_t)mode, &changed, &ns, &m));
            fold(changed);
            fold_scale(ns);
            fold((uint32_t)m.m);
            fold((uint32_t)m.n);
        }
    }
    fold(tt_max_abs_s32(acc, N));
    fold(tt_exp2_frac_q15(0));
    fold(tt_exp2_frac_q15(65535u));
    fold((uint32_t)tt_log2_q16(1));
    fold((uint32_t)tt_log2_q16(0xFFFFFFFFUL));
}

#endif /* TT_CHECK_SKIP_NUMERICS */

#ifndef TT_CHECK_SKIP_OPS
static void check_ops(void)
{
    static int8_t x[B * K], w[N * K], y[B * N], err[B * N], ein[B * K], e8[B * C], logits[B * C];
    static int32_t bias[N], acc[B * K], g[N * K], gb[N], scratch[B * C];
    static const uint16_t rows[3] = {4, 0, 2};
    static const tt_dense_shape_t dense = {B, K, N};
    static const tt_row_select_t select = {rows, 0, 3};
    static uint16_t labels[B], am[B];
    uint8_t round, mode;
    for (round = 0; round < 6; ++round) {
        tt_scale_t ys, es, gs, bs, xs = scale_of(-7, 0, 0), wsc = scale_of(-8, 1, (int16_t)(round % 3));
        int64_t loss = 0;
        uint8_t j;
        mode = (uint8_t)(round & 1);
        fill_s8(x, B * K, round == 0 ? 127u : 100u);
        fill_s8(w, N * K, round == 1 ? 127u : 90u);
        fill_s8(err, B * N, 127u);
        for (j = 0; j < N; ++j) {
            bias[j] = rnd_range(round < 3 ? 0x3FFFFFFFUL : 5000u);
        }
        fold((uint32_t)tt_linear_forward_s8(x, xs, w, wsc, bias, scale_of(-20, 0, 0), &dense, (tt_scale_mode_t)mode,
                                            acc, y, &ys));
        fold_s8(y, B * N);
        fold_scale(ys);
        fold((uint32_t)tt_linear_forward_s8(x, xs, w, wsc, round & 2 ? bias : NULL, scale_of(-20, 0, 0), &dense,
                                            (tt_scale_mode_t)mode, NULL, y, &ys));
        fold_s8(y, B * N);
        fold_scale(ys);
        fold((uint32_t)tt_relu_forward_s8(y, B * N, y));
        fold((uint32_t)tt_relu_backward_s8(err, y, B * N, err));
        fold_s8(err, B * N);
        fold((uint32_t)tt_linear_backward_input_s8(err, scale_of(-9, 0, 0), w, wsc, &dense, (tt_scale_mode_t)mode,
                                                   round & 1 ? acc : NULL, ein, &es));
        fold_s8(ein, B * K);
        fold_scale(es);
        fold((uint32_t)tt_linear_backward_weight_s32(err, scale_of(-9, 0, 0), x, xs, &dense, g, &gs));
        fold_s32(g, N * K);
        fold((uint32_t)tt_linear_backward_weight_rows_s32(err, scale_of(-9, 0, 0), x, xs, &dense, &select, g, &gs));
        fold_s32(g, 3 * K);
        fold((uint32_t)tt_linear_backward_bias_s32(err, scale_of(-9, 0, 0), B, N, gb, &bs));
        fold_s32(gb, N);
        fold_scale(bs);
        fill_s8(logits, B * C, round == 2 ? 127u : 60u);
        for (j = 0; j < B; ++j) {
            labels[j] = (uint16_t)(rnd() & 3u);
        }
        fold((uint32_t)tt_softmax_xent_error_s8(logits, scale_of((int16_t)(-12 + 4 * round), 1, 0), labels, B, C,
                                                (tt_scale_mode_t)mode, scratch, e8, &es, &loss));
        fold_s8(e8, B * C);
        fold_scale(es);
        fold64(loss);
        fold((uint32_t)tt_softmax_q15(logits, scale_of(-3, 0, 0), B, C, scratch));
        fold_s32(scratch, B * C);
        fold((uint32_t)tt_mse_error_s8(logits, scale_of(-7, 0, 0), x, scale_of((int16_t)(-9 + 3 * round), 0, 0), B * C,
                                       (tt_scale_mode_t)mode, e8, &es, &loss, &gs));
        fold_s8(e8, B * C);
        fold_scale(es);
        fold64(loss);
        fold_scale(gs);
        fold((uint32_t)tt_argmax_rows_s8(logits, B, C, am));
        fold((uint32_t)am[0] | ((uint32_t)am[1] << 8) | ((uint32_t)am[2] << 16));
    }
    /* status codes of bad calls */
    {
        tt_scale_t s = scale_of(0, 0, 0);
        fold((uint32_t)tt_linear_forward_s8(NULL, s, w, s, NULL, s, &(tt_dense_shape_t){1, K, N}, TT_SCALE_POW2, NULL, y, &s));
        fold((uint32_t)tt_linear_forward_s8(x, s, w, s, NULL, s, &(tt_dense_shape_t){1, 0, N}, TT_SCALE_POW2, NULL, y, &s));
        labels[0] = C;
        fold((uint32_t)tt_softmax_xent_error_s8(logits, s, labels, 1, C, TT_SCALE_POW2, scratch, e8, &s, &(int64_t){0}));
    }
}

#endif /* TT_CHECK_SKIP_OPS */

#ifndef TT_CHECK_SKIP_SGD
static void check_sgd(void)
{
    static int8_t w8[N * K];
    static int16_t w16[N * K];
    static int32_t g[N * K], b[N];
    static int64_t mom[N * K];
    static const uint16_t rows[2] = {5, 1};
    uint8_t round, i;
    tt_sgd_config_t cfg;
    for (i = 0; i < N * K; ++i) {
        w8[i] = (int8_t)rnd_range(127u);
        w16[i] = (int16_t)rnd_range(32767u);
        mom[i] = 0;
    }
    for (i = 0; i < N; ++i) {
        b[i] = rnd_range(1UL << 20);
    }
    for (round = 0; round < 12; ++round) {
        tt_scale_t ws8 = scale_of(-8, 1, 1), ws16 = scale_of(-16, 2, 0);
        cfg.batch_size = (uint32_t)(1 + round);
        cfg.lr = scale_of((int16_t)(round & 1 ? 1 : -2), 0, (int16_t)(round % 3));
        cfg.rule = (uint8_t)(round % 4 == 3 ? TT_RULE_NITI : TT_RULE_ALIGNED);
        cfg.rounding = (uint8_t)(round % 3);
        cfg.mode = (uint8_t)(round & 1);
        cfg.mu = (uint8_t)(1 + round % 8);
        cfg.momentum_shift = (uint8_t)(round % 5 == 1 ? 3 : 0);
        cfg.weight_rescale = (uint8_t)(round != 5);
        for (i = 0; i < N * K; ++i) {
            g[i] = rnd_range(round < 4 ? 16129UL * 3u : 0x3FFFFFFFUL);
        }
        fold((uint32_t)tt_sgd_update_weight_s8(w8, &ws8, N * K, g, scale_of(-16, 0, 0), mom, &cfg, rnd()));
        fold_s8(w8, N * K);
        fold_scale(ws8);
        for (i = 0; i < N * K; ++i) {
            g[i] = rnd_range(16129UL * 8u);
        }
        fold((uint32_t)tt_sgd_update_weight_s16(w16, &ws16, N * K, g, scale_of(-16, 0, 0), mom, &cfg, rnd()));
        for (i = 0; i < N * K; ++i) {
            fold((uint32_t)(int32_t)w16[i]);
            fold64(mom[i]);
        }
        fold_scale(ws16);
        for (i = 0; i < N * K; ++i) {
            g[i] = rnd_range(5000u);
        }
        fold((uint32_t)tt_sgd_update_bias_s32(b, scale_of(-20, 0, 0), N, g, scale_of(-16, 0, 0), mom, &cfg, rnd()));
        fold_s32(b, N);
        fold((uint32_t)tt_sgd_update_weight_rows_s8(w8, ws8, N, K, rows, 2, g, scale_of(-12, 0, 0), mom, &cfg, rnd()));
        fold((uint32_t)tt_sgd_update_weight_rows_s16(w16, ws16, N, K, rows, 2, g, scale_of(-12, 0, 0), mom, &cfg, rnd()));
        fold((uint32_t)tt_sgd_update_bias_rows_s32(b, scale_of(-20, 0, 0), N, rows, 2, g, scale_of(-12, 0, 0), mom,
                                                   &cfg, rnd()));
        fold_s8(w8, N * K);
        fold_s32(b, N);
    }
    cfg.batch_size = 0;
    fold((uint32_t)tt_sgd_update_bias_s32(b, scale_of(-20, 0, 0), N, g, scale_of(-16, 0, 0), mom, &cfg, 0));
}

#endif /* TT_CHECK_SKIP_SGD */

#ifndef TT_CHECK_SKIP_CNN
static void check_cnn(void)
{
    /* one sample of 4 x 4 x 4 (it must fit the ATmega328P's 2 KB of SRAM) */
    static int8_t x[4 * 4 * 4], w[4 * 2 * 3 * 3], y[4 * 4 * 4], e[4 * 4 * 4], ein[4 * 4 * 4];
    static int32_t acc[4 * 4 * 4], g[4 * 2 * 3 * 3], bias[4];
    static uint16_t arg[4 * 4 * 4];
    static const int8_t gamma[4] = {127, -3, 0, 64};
    static const tt_channel_shape_t chan = {1, 4, 16};
    uint8_t round;
    for (round = 0; round < 8; ++round) {
        tt_conv2d_shape_t cs;
        tt_pool2d_shape_t ps;
        tt_scale_t s, xs = scale_of(-7, 0, 0), ws = scale_of(-8, (int16_t)(round % 3), 1);
        tt_scale_mode_t mode = (tt_scale_mode_t)(round & 1);
        size_t i, oh = 0, ow = 0, n;
        int32_t *scratch = round & 2 ? acc : NULL;
        for (i = 0; i < sizeof(x); ++i) {
            x[i] = (int8_t)rnd_range(round == 0 ? 127u : 60u);
            e[i] = (int8_t)rnd_range(127u);
        }
        for (i = 0; i < sizeof(w); ++i) {
            w[i] = (int8_t)rnd_range(127u);
        }
        for (i = 0; i < 4; ++i) {
            bias[i] = rnd_range(0x3FFFFFFFUL);
        }
        /* conv: 4 x 4 x 4 input (or 4 x 1 x 4), groups 2 or 4 (depthwise), kernel 3, stride 1-2, padding 0-1 */
        cs.batch = 1;
        cs.in_channels = 4;
        cs.in_h = round & 4 ? 1 : 4;
        cs.in_w = 4;
        cs.out_channels = 4;
        cs.kernel_h = round & 4 ? 1 : 3;
        cs.kernel_w = 3;
        cs.stride_h = 1;
        cs.stride_w = (size_t)(1 + (round & 1));
        cs.pad_h = round & 4 ? 0 : (size_t)(round & 1);
        cs.pad_w = (size_t)((round >> 1) & 1);
        cs.groups = round & 1 ? 2 : 4; /* grouped and depthwise */
        fold((uint32_t)tt_conv2d_output_hw(&cs, &oh, &ow));
        n = cs.batch * cs.out_channels * oh * ow;
        fold((uint32_t)tt_conv2d_forward_s8(x, xs, w, ws, round & 1 ? bias : NULL, scale_of(-20, 0, 0), &cs, mode,
                                            scratch, y, &s));
        fold_s8(y, n);
        fold_scale(s);
        fold((uint32_t)tt_conv2d_backward_input_s8(e, scale_of(-9, 0, 0), w, ws, &cs, mode, scratch, ein, &s));
        fold_s8(ein, cs.batch * cs.in_channels * cs.in_h * cs.in_w);
        fold_scale(s);
        fold((uint32_t)tt_conv2d_backward_weight_s32(e, scale_of(-9, 0, 0), x, xs, &cs, g, &s));
        fold_s32(g, cs.out_channels * (cs.in_channels / cs.groups) * cs.kernel_h * cs.kernel_w);
        fold((uint32_t)tt_conv2d_backward_bias_s32(e, scale_of(-9, 0, 0), &cs, g, &s));
        fold_s32(g, 4);
        /* pooling: windows 2-3, strides 1-3 (overlapping and not) */
        ps.batch = 1;
        ps.channels = 4;
        ps.in_h = round & 4 ? 1 : 4;
        ps.in_w = 4;
        ps.kernel_h = round & 4 ? 1 : (size_t)(2 + (round & 1));
        ps.kernel_w = (size_t)(2 + (round & 1));
        ps.stride_h = round & 4 ? 1 : (size_t)(round & 2 ? 1 : 0);
        ps.stride_w = (size_t)(round & 2 ? 1 : 0);
        fold((uint32_t)tt_pool2d_output_hw(&ps, &oh, &ow));
        n = ps.batch * ps.channels * oh * ow;
        fold((uint32_t)tt_maxpool2d_forward_s8(x, &ps, y, arg));
        fold_s8(y, n);
        fold((uint32_t)tt_maxpool2d_backward_s8(e, scale_of(-9, 0, 0), arg, &ps, mode, scratch, ein, &s));
        fold_s8(ein, sizeof(x));
        fold_scale(s);
        fold((uint32_t)tt_avgpool2d_forward_s8(x, xs, &ps, mode, scratch, y, &s));
        fold_s8(y, n);
        fold_scale(s);
        fold((uint32_t)tt_avgpool2d_backward_s8(e, scale_of(-9, 0, 0), &ps, mode, scratch, ein, &s));
        fold_s8(ein, sizeof(x));
        fold_scale(s);
        fold((uint32_t)tt_global_avgpool_forward_s8(x, xs, 1, 4, 16, mode, y, &s));
        fold_s8(y, 4);
        fold((uint32_t)tt_global_avgpool_backward_s8(e, scale_of(-9, 0, 0), 1, 4, 16, mode, ein, &s));
        fold_s8(ein, sizeof(x));
        fold_scale(s);
        /* residual add at scales 0 .. 40 powers of two apart, and channel scale */
        fold((uint32_t)tt_residual_add_s8(x, xs, e, scale_of((int16_t)(-7 - 6 * round), (int16_t)(round % 2), 0),
                                          sizeof(x), mode, scratch, y, &s));
        fold_s8(y, sizeof(x));
        fold_scale(s);
        fold((uint32_t)tt_channel_scale_forward_s8(x, xs, gamma, ws, round & 1 ? bias : NULL, scale_of(-20, 0, 0),
                                                   &chan, mode, scratch, y, &s));
        fold_s8(y, sizeof(x));
        fold_scale(s);
        fold((uint32_t)tt_channel_scale_backward_input_s8(e, scale_of(-9, 0, 0), gamma, ws, &chan, mode, NULL, y, &s));
        fold_s8(y, sizeof(x));
        fold((uint32_t)tt_channel_scale_backward_weight_s32(e, scale_of(-9, 0, 0), x, xs, &chan, g, &s));
        fold_s32(g, 4);
        fold((uint32_t)tt_channel_scale_backward_bias_s32(e, scale_of(-9, 0, 0), &chan, g, &s));
        fold_s32(g, 4);
    }
}
#endif /* TT_CHECK_SKIP_CNN */

static uint32_t combined = 0;

/* starts a phase from a fixed state, so that each phase's checksum stands alone and a build may
 * leave phases out (TT_CHECK_SKIP_NUMERICS / _OPS / _SGD / _CNN: AVR flash is 32 KB) */
static void phase_begin(void)
{
    checksum = 0x811C9DC5UL;
    rng_state = 12345;
    tt_bench_mark();
}

/* ends a measured phase and prints its checksum */
static void phase_end(const char *name)
{
    tt_bench_mark();
    tt_puts(name);
    tt_putc('=');
    tt_put_hex32(checksum);
    tt_putc('\n');
    combined = tt_mix32(combined ^ checksum);
}

int main(void)
{
    tt_platform_init();
#ifndef TT_CHECK_SKIP_NUMERICS
    phase_begin();
    check_rounding();
    phase_end("rounding");
    phase_begin();
    check_multipliers();
    phase_end("multipliers");
    phase_begin();
    check_rescale();
    phase_end("rescale");
#endif
#ifndef TT_CHECK_SKIP_OPS
    phase_begin();
    check_ops();
    phase_end("ops");
#endif
#ifndef TT_CHECK_SKIP_SGD
    phase_begin();
    check_sgd();
    phase_end("sgd");
#endif
#ifndef TT_CHECK_SKIP_CNN
    phase_begin();
    check_cnn();
    phase_end("cnn");
#endif
    tt_puts("checks=");
    tt_put_u32(checks);
    tt_puts(" checksum=");
    tt_put_hex32(combined);
    tt_putc('\n');
    return 0;
}
