/* tt_program.c - kernels of compiled training programs: ReLU masks, gradients of selected rows,
 * max pooling with one-byte offsets and the row-tiled weight update (see tt_program.h). */
#include "tt_program.h"
#include "tt_internal.h"


/* ARMv6-M tuning expands a multiplication by a constant into a chain of shifts and adds (20
 * instructions for the second mix32 constant): hide the constants so that one MULS remains. */
#if defined(__GNUC__) && defined(__ARM_ARCH_6M__)
#define TT_OPAQUE(v) __asm__("" : "+r"(v))
#else
#define TT_OPAQUE(v) ((void)0)
#endif

/* mix32 with its two multipliers passed in (see TT_OPAQUE) */
static uint32_t mix32_with(uint32_t x, uint32_t m1, uint32_t m2)
{
    x ^= x >> 16;
    x *= m1;
    x ^= x >> 15;
    x *= m2;
    x ^= x >> 16;
    return x;
}

/* hot loops stay separate functions: inlined into the update driver they lose their registers */
#if defined(__GNUC__)
#define TT_NOINLINE __attribute__((noinline))
#else
#define TT_NOINLINE
#endif

/* Stochastic rounding of a magnitude: (mag + r) >> n with r the draw's n-bit value (its top n bits
 * for n < 32, draw << (n - 32) from 32 on), as tt_shift_round_stochastic_s64, for mag <= 2**30 and
 * 1 <= n <= 62. From n = 32 on the result is the carry of (mag >> (n - 32)) + draw: 0 or 1. */
static uint32_t sr_q(uint32_t mag, uint8_t n, uint32_t draw)
{
    uint32_t a;
    if (n < 32u) {
        return (mag + (draw >> (32u - n))) >> n;
    }
    a = mag >> (n - 32u);
    return (uint32_t)(a + draw) < draw ? 1u : 0u;
}

/* apply_multiplier(x, mult, nearest, limit) of a grid rescale: in 32 bits when 1 <= n <= 31 and
 * |x| < 2**16 (|x| * M < 2**31), else tt_apply_multiplier_scalar. */
static int32_t grid_rescale_one(int64_t x, tt_multiplier_t mult, int32_t limit)
{
    uint64_t ax = tt_mag64(x);
    if (mult.n >= 1 && mult.n <= 31 && ax < 65536u && mult.m >= 0 && mult.m < 32768L) {
        uint32_t q = ((uint32_t)ax * (uint32_t)mult.m + ((uint32_t)1 << (mult.n - 1))) >> mult.n;
        q = q > (uint32_t)limit ? (uint32_t)limit : q;
        return x < 0 ? -(int32_t)q : (int32_t)q;
    }
    return (int32_t)tt_apply_multiplier_scalar(x, mult, TT_ROUND_NEAREST, 0, 0, limit);
}

/* ---- faster fully connected kernels -------------------------------------------------------------- */

/* init + sum a[i] * b[i]; every product |p| <= 16129 fits an int (16 bits on AVR); the caller
 * guarantees |init| + k * 16129 < 2**31 */
static int32_t dot_x4(int32_t s, const int8_t *a, const int8_t *b, size_t k)
{
    const int8_t *end8 = a + (k & ~(size_t)7u), *end4 = a + (k & ~(size_t)3u), *end = a + k;
    while (a != end8) {
        int32_t p0 = a[0] * b[0], p1 = a[1] * b[1], p2 = a[2] * b[2], p3 = a[3] * b[3];
        int32_t p4 = a[4] * b[4], p5 = a[5] * b[5], p6 = a[6] * b[6], p7 = a[7] * b[7];
        s += p0 + p1 + p2 + p3 + p4 + p5 + p6 + p7;
        a += 8;
        b += 8;
    }
    while (a != end4) {
        int32_t p0 = a[0] * b[0], p1 = a[1] * b[1], p2 = a[2] * b[2], p3 = a[3] * b[3];
        s += p0 + p1 + p2 + p3;
        a += 4;
        b += 4;
    }
    while (a != end) {
        s += *a++ * *b++;
    }
    return s;
}

/* align_bias of one value: round(b * M / 2**n) (nearest) clipped to +-2**30, as
 * tt_apply_multiplier_scalar(b, mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT). The product
 * |b| * M < 2**46 is formed in two 32-bit halves (no 64-bit arithmetic: cheap on AVR and ARMv6-M). */
static int32_t align_bias_one(int32_t b, tt_multiplier_t mult)
{
    if (mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L) {
        uint32_t a = tt_mag32(b), m = (uint32_t)mult.m, c;
        uint32_t hi = (a >> 16) * m;                                /* < 2**30 */
        uint32_t lo = (a & 0xFFFFu) * m + ((uint32_t)1 << (mult.n - 1)); /* < 2**31 + 2**30 */
        uint8_t n = (uint8_t)mult.n;
        if (n >= 16) {
            /* floor((hi * 2**16 + lo) / 2**n) = floor((hi + floor(lo / 2**16)) / 2**(n - 16)) */
            c = (hi + (lo >> 16)) >> (n - 16);
        } else if (hi > ((uint32_t)TT_BIAS_ALIGN_LIMIT >> (16 - n))) {
            c = (uint32_t)TT_BIAS_ALIGN_LIMIT; /* clipped anyway */
        } else {
            c = (hi << (16 - n)) + (lo >> n);
        }
        c = c > (uint32_t)TT_BIAS_ALIGN_LIMIT ? (uint32_t)TT_BIAS_ALIGN_LIMIT : c;
        return b < 0 ? -(int32_t)c : (int32_t)c;
    }
    return (int32_t)tt_apply_multiplier_scalar(b, mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT);
}

tt_status_t tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                    const int32_t *bias, tt_scale_t bias_scale, size_t batch, size_t in_features,
                                    size_t out_features, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                    tt_scale_t *y_scale)
{
    tt_scale_t acc_scale = tt_scale_mul(x_scale, w_scale);
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint32_t amax = 0;
    uint8_t change, pass;
    size_t b, n;
    if (x == NULL || weight == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(in_features, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    /* pass 0: accumulators (stored, or only their range); pass 1 (without acc): recomputed */
    change = 0;
    for (pass = 0; pass < (acc != NULL ? 1u : 2u); ++pass) {
        for (n = 0; n < out_features; ++n) {
            const int8_t *wn = weight + n * in_features;
            int32_t bn = bias == NULL ? 0 : align_bias_one(bias[n], bias_mult);
            for (b = 0; b < batch; ++b) {
                int32_t v = dot_x4(bn, x + b * in_features, wn, in_features);
                if (pass == 0) {
                    uint32_t a = tt_mag32(v);
                    amax = a > amax ? a : amax;
                    if (acc != NULL) {
                        acc[b * out_features + n] = v;
                    }
                } else {
                    y[b * out_features + n] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
                }
            }
        }
        if (pass == 0) {
            change = tt_choose_rescale(amax, 8, mode, &choice);
        }
    }
    if (acc != NULL) {
        tt_rescale_write_s8(acc, batch * out_features, change, &choice, y);
    }
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

/* row[k] += e * w[k] for k < count */
static void axpy_x4(int32_t *row, int32_t e, const int8_t *w, size_t count)
{
    int32_t *end4 = row + (count & ~(size_t)3u), *end = row + count;
    while (row != end4) {
        row[0] += e * w[0];
        row[1] += e * w[1];
        row[2] += e * w[2];
        row[3] += e * w[3];
        row += 4;
        w += 4;
    }
    while (row != end) {
        *row++ += e * *w++;
    }
}

tt_status_t tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                           tt_scale_t w_scale, size_t batch, size_t in_features, size_t out_features,
                                           tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                           tt_scale_t *err_in_scale)
{
    size_t b, n, k;
    uint32_t amax;
    uint8_t change;
    tt_rescale_t choice;
    if (acc == NULL || err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(out_features, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    /* row-wise: acc[b, :] += err[b, n] * W[n, :]; partial sums of at most out_features products */
    for (b = 0; b < batch; ++b) {
        int32_t *row = acc + b * in_features;
        for (k = 0; k < in_features; ++k) {
            row[k] = 0;
        }
        for (n = 0; n < out_features; ++n) {
            int32_t e = err[b * out_features + n];
            if (e != 0) {
                axpy_x4(row, e, weight + n * in_features, in_features);
            }
        }
    }
    amax = tt_max_abs_s32(acc, batch * in_features);
    change = tt_choose_rescale(amax, 8, mode, &choice);
    tt_rescale_write_s8(acc, batch * in_features, change, &choice, err_in);
    *err_in_scale = change ? tt_rescaled_scale(tt_scale_mul(err_scale, w_scale), &choice)
                           : tt_scale_mul(err_scale, w_scale);
    return TT_OK;
}

tt_status_t tt_sgd_update_bias_fast_s32(int32_t *bias, tt_scale_t bias_scale, size_t count, const int32_t *grad,
                                        tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                        uint32_t key)
{
    tt_multiplier_t m, mult;
    uint32_t amax;
    size_t i;
    if (cfg == NULL || cfg->momentum_shift != 0 || cfg->batch_size == 0 || cfg->rounding > TT_ROUND_PSEUDO_STOCHASTIC ||
        (count && (bias == NULL || grad == NULL))) {
        return tt_sgd_update_bias_s32(bias, bias_scale, count, grad, grad_scale, momentum, cfg, key);
    }
    if (tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, grad_scale), bias_scale), &m) != TT_OK ||
        tt_divide_multiplier(m, cfg->batch_size, &mult) != TT_OK || mult.n < 1 || mult.n > 31) {
        return tt_sgd_update_bias_s32(bias, bias_scale, count, grad, grad_scale, momentum, cfg, key);
    }
    amax = tt_max_abs_s32(grad, count);
    if (amax > ((uint32_t)1 << 30) / (uint32_t)mult.m) {
        return tt_sgd_update_bias_s32(bias, bias_scale, count, grad, grad_scale, momentum, cfg, key);
    }
    /* |g * M| <= 2**30, |b| <= 2**30: b - delta fits int32 */
    for (i = 0; i < count; ++i) {
        int32_t p = grad[i] * mult.m, d;
        if (cfg->rounding == TT_ROUND_STOCHASTIC) {
            d = tt_rs32_stochastic(p, (uint8_t)mult.n, tt_mix32_inline(key + (uint32_t)i * (uint32_t)TT_GOLDEN32));
        } else if (cfg->rounding == TT_ROUND_PSEUDO_STOCHASTIC) {
            d = tt_rs32_pseudo(p, (uint8_t)mult.n);
        } else {
            d = tt_rs32_nearest(p, (uint8_t)mult.n);
        }
        bias[i] = tt_clip32(bias[i] - d, (int32_t)TT_BIAS_LIMIT);
    }
    return TT_OK;
}

/* ---- materialised weight update that skips zero gradients ------------------------------------- */

tt_status_t tt_sgd_update_weight_skip0_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                          tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint32_t key)
{
    uint32_t m1 = (uint32_t)TT_MIX_MUL1, m2 = (uint32_t)TT_MIX_MUL2;
    TT_OPAQUE(m1);
    TT_OPAQUE(m2);
    tt_multiplier_t m, mult;
    uint64_t amax = 0;
    uint32_t gmax, span = 2u * 127u;
    uint8_t n, fast, over = 0, saturated = 0;
    size_t i;
    tt_status_t st;
    if (w_scale == NULL || cfg == NULL || (count && (weight == NULL || grad == NULL))) {
        return TT_ERR_ARG;
    }
    if (cfg->rule != TT_RULE_ALIGNED || cfg->momentum_shift != 0 || cfg->rounding != TT_ROUND_STOCHASTIC ||
        cfg->batch_size == 0 || cfg->mode > TT_SCALE_COMPOUND) {
        return TT_ERR_ARG;
    }
    st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, grad_scale), *w_scale), &m);
    if (st == TT_OK) {
        st = tt_divide_multiplier(m, cfg->batch_size, &mult);
    }
    if (st != TT_OK) {
        return st;
    }
    gmax = tt_max_abs_s32(grad, count);
    n = (uint8_t)mult.n;
    /* |g * M| <= 2**30 and 1 <= n <= 62: 32-bit arithmetic gives the general result */
    fast = mult.n >= 1 && mult.n <= 62 && gmax <= ((uint32_t)1 << 30) / (uint32_t)mult.m;
    for (i = 0; i < count; ++i) {
        int32_t g = grad[i];
        int64_t nw = weight[i];
        if (g != 0) { /* a zero gradient leaves its weight as it is, whatever the draw */
            if (fast) {
                int32_t p = g * mult.m, sm = -(int32_t)((uint32_t)p >> 31);
                uint32_t mag = (uint32_t)((p ^ sm) - sm), q;
                q = (n >= 32u && (mag >> (n - 32u)) == 0) ? 0u
                    : sr_q(mag, n, mix32_with(key + (uint32_t)i * (uint32_t)TT_GOLDEN32, m1, m2));
                nw -= ((int32_t)q ^ sm) - sm;
            } else {
                nw -= tt_apply_multiplier_scalar(g, mult, TT_ROUND_STOCHASTIC, key, (uint32_t)i, -1);
            }
            if ((uint64_t)(nw + 127) > span) {
                uint64_t a = tt_mag64(nw);
                over = 1;
                amax = a > amax ? a : amax;
                saturated |= a > (uint64_t)INT32_MAX;
                grad[i] = tt_sat32(nw); /* the exact new value, for a rescale */
                weight[i] = (int8_t)(nw > 0 ? 127 : -127);
                continue;
            }
            weight[i] = (int8_t)nw;
        }
        grad[i] = (int32_t)nw;
    }
    if (!over || !cfg->weight_rescale) {
        return TT_OK; /* in range, or saturated */
    }
    {
        /* rare: the tensor outgrew its range; move every new value to a coarser grid scale */
        tt_scale_t new_scale;
        uint8_t changed = 0;
        st = tt_choose_grid_rescale(amax, *w_scale, 8, (tt_scale_mode_t)cfg->mode, &changed, &new_scale, &m);
        if (st != TT_OK || !changed) {
            return st;
        }
        for (i = 0; i < count; ++i) {
            weight[i] = (int8_t)grid_rescale_one(grad[i], m, 127);
        }
        *w_scale = new_scale;
    }
    return saturated ? TT_ERR_OVERFLOW : TT_OK;
}

/* ---- ReLU masks ------------------------------------------------------------------------------ */

tt_status_t tt_relu_mask_pack_u1(const int8_t *y, size_t count, uint8_t *mask)
{
    size_t i, full = count / 8u;
    if (count && (y == NULL || mask == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < full; ++i) {
        const int8_t *v = y + 8u * i;
        mask[i] = (uint8_t)((v[0] > 0 ? 0x80u : 0u) | (v[1] > 0 ? 0x40u : 0u) | (v[2] > 0 ? 0x20u : 0u) |
                            (v[3] > 0 ? 0x10u : 0u) | (v[4] > 0 ? 0x08u : 0u) | (v[5] > 0 ? 0x04u : 0u) |
                            (v[6] > 0 ? 0x02u : 0u) | (v[7] > 0 ? 0x01u : 0u));
    }
    if (count > 8u * full) {
        uint8_t m = 0;
        for (i = 8u * full; i < count; ++i) {
            if (y[i] > 0) {
                m = (uint8_t)(m | (0x80u >> (i & 7u)));
            }
        }
        mask[full] = m;
    }
    return TT_OK;
}

tt_status_t tt_relu_backward_mask_s8(const int8_t *err, const uint8_t *mask, size_t count, int8_t *err_in)
{
    size_t i;
    if (count && (err == NULL || mask == NULL || err_in == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        err_in[i] = (mask[i >> 3] & (0x80u >> (i & 7u))) ? err[i] : 0;
    }
    return TT_OK;
}

/* ---- gradients of selected rows ----------------------------------------------------------------- */

static size_t selected_row(const uint16_t *rows, size_t j)
{
    return rows != NULL ? (size_t)rows[j] : j;
}

static tt_status_t check_selection(const uint16_t *rows, size_t first, size_t count, size_t row_count)
{
    size_t j;
    if (rows == NULL) {
        return first + count <= row_count && first + count >= first ? TT_OK : TT_ERR_ARG;
    }
    for (j = first; j < first + count; ++j) {
        if (rows[j] >= row_count) {
            return TT_ERR_ARG;
        }
    }
    return TT_OK;
}

tt_status_t tt_linear_backward_weight_sel_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                              tt_scale_t x_scale, size_t batch, size_t in_features,
                                              size_t out_features, const uint16_t *rows, size_t first,
                                              size_t count, int32_t *grad, tt_scale_t *grad_scale)
{
    size_t j, b, k;
    if (err == NULL || x == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (batch == 0 || in_features == 0 || out_features == 0 || tt_size_above(batch, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (check_selection(rows, first, count, out_features) != TT_OK) {
        return TT_ERR_ARG;
    }
    /* grad[j, :] = sum_b err[b, row] * x[b, :]; |partial sums| <= batch * 16384 < 2**30 */
    for (j = 0; j < count; ++j) {
        size_t row = selected_row(rows, first + j);
        int32_t *g = grad + j * in_features;
        int16_t e = err[row];
        if (e == 0) {
            for (k = 0; k < in_features; ++k) {
                g[k] = 0;
            }
        } else {
            for (k = 0; k < in_features; ++k) {
                g[k] = (int16_t)(e * (int16_t)x[k]);
            }
        }
        for (b = 1; b < batch; ++b) {
            const int8_t *xb = x + b * in_features;
            e = err[b * out_features + row];
            if (e == 0) {
                continue;
            }
            for (k = 0; k < in_features; ++k) {
                g[k] += (int16_t)(e * (int16_t)xb[k]);
            }
        }
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

/* Kernel taps (i in [lo, hi)) that read inside the input for output position p: 0 <= p*s + i - pad < in. */
static void valid_taps(size_t p, size_t stride, size_t pad, size_t kernel, size_t in, size_t *lo, size_t *hi)
{
    size_t start = p * stride; /* input coordinate of tap i is start + i - pad */
    *lo = pad > start ? pad - start : 0u;
    *hi = in + pad > start ? in + pad - start : 0u;
    if (*hi > kernel) {
        *hi = kernel;
    }
    if (*lo > *hi) {
        *lo = *hi;
    }
}

tt_status_t tt_conv2d_backward_weight_sel_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                              tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                              const uint16_t *rows, size_t first, size_t count, int32_t *grad,
                                              tt_scale_t *grad_scale)
{
    const tt_conv2d_shape_t *s = shape;
    size_t out_h, out_w, cin_g, cout_g, taps, j, k, b, p, q, ci, i;
    tt_status_t st;
    if (err == NULL || x == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_conv2d_output_hw(s, &out_h, &out_w);
    if (st != TT_OK) {
        return st;
    }
    /* |g| <= batch * Ho * Wo * 16384 < 2**30 (every partial sum too) */
    if (tt_size_above(s->batch * out_h * out_w, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (check_selection(rows, first, count, s->out_channels) != TT_OK) {
        return TT_ERR_ARG;
    }
    cin_g = s->in_channels / s->groups;
    cout_g = s->out_channels / s->groups;
    taps = cin_g * s->kernel_h * s->kernel_w;
    for (j = 0; j < count; ++j) {
        size_t o = selected_row(rows, first + j), g = o / cout_g;
        int32_t *gj = grad + j * taps;
        for (k = 0; k < taps; ++k) {
            gj[k] = 0;
        }
        /* error-major: every non-zero output error adds its input window, tap by tap */
        for (b = 0; b < s->batch; ++b) {
            const int8_t *eo = err + (b * s->out_channels + o) * out_h * out_w;
            const int8_t *xb = x + (b * s->in_channels + g * cin_g) * s->in_h * s->in_w;
            for (p = 0; p < out_h; ++p) {
                size_t i_lo, i_hi;
                valid_taps(p, s->stride_h, s->pad_h, s->kernel_h, s->in_h, &i_lo, &i_hi);
                for (q = 0; q < out_w; ++q) {
                    int32_t e = eo[p * out_w + q];
                    size_t j_lo, j_hi;
                    if (e == 0) {
                        continue;
                    }
                    valid_taps(q, s->stride_w, s->pad_w, s->kernel_w, s->in_w, &j_lo, &j_hi);
                    for (ci = 0; ci < cin_g; ++ci) {
                        const int8_t *xc = xb + ci * s->in_h * s->in_w;
                        int32_t *gc = gj + ci * s->kernel_h * s->kernel_w;
                        for (i = i_lo; i < i_hi; ++i) {
                            /* input row p*sh + i - ph, columns q*sw + jj - pw for jj in [j_lo, j_hi) */
                            const int8_t *xr = xc + (p * s->stride_h + i - s->pad_h) * s->in_w +
                                               (q * s->stride_w + j_lo - s->pad_w);
                            int32_t *gr = gc + i * s->kernel_w + j_lo;
                            size_t t, nt = j_hi - j_lo;
                            for (t = 0; t < nt; ++t) {
                                gr[t] += e * xr[t];
                            }
                        }
                    }
                }
            }
        }
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

/* ---- faster convolution kernels ---------------------------------------------------------------- */

static uint8_t conv_bounds_ok(const tt_conv2d_shape_t *s)
{
    size_t cin_g = s->in_channels / s->groups, cout_g = s->out_channels / s->groups;
    size_t overlap = tt_ceil_div(s->kernel_h, s->stride_h) * tt_ceil_div(s->kernel_w, s->stride_w);
    return !tt_size_above(cin_g * s->kernel_h * s->kernel_w, TT_ACC_TERMS_LIMIT) &&
           !tt_size_above(cout_g * overlap, TT_ACC_TERMS_LIMIT);
}

tt_status_t tt_conv2d_forward_im2col_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                        const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *cols, int8_t *y, tt_scale_t *y_scale)
{
    const tt_conv2d_shape_t *s = shape;
    size_t out_h, out_w, cin_g, cout_g, fan, b, g, p, q, o, ci, i, jj;
    tt_scale_t acc_scale = tt_scale_mul(x_scale, w_scale);
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint32_t amax = 0;
    uint8_t change = 0, pass;
    tt_status_t st;
    if (cols == NULL || x == NULL || weight == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_conv2d_output_hw(s, &out_h, &out_w);
    if (st != TT_OK) {
        return st;
    }
    if (!conv_bounds_ok(s)) {
        return TT_ERR_SHAPE;
    }
    if (bias != NULL) {
        st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    cin_g = s->in_channels / s->groups;
    cout_g = s->out_channels / s->groups;
    fan = cin_g * s->kernel_h * s->kernel_w;
    /* pass 0: accumulators (stored, or only their range); pass 1 (without acc): recomputed */
    for (pass = 0; pass < (acc != NULL ? 1u : 2u); ++pass) {
        for (b = 0; b < s->batch; ++b) {
            for (g = 0; g < s->groups; ++g) {
                const int8_t *xg = x + (b * s->in_channels + g * cin_g) * s->in_h * s->in_w;
                for (p = 0; p < out_h; ++p) {
                    size_t i_lo, i_hi;
                    valid_taps(p, s->stride_h, s->pad_h, s->kernel_h, s->in_h, &i_lo, &i_hi);
                    /* one output row of windows: cols[q * fan + (ci, i, jj)], zero outside the input */
                    for (q = 0; q < out_w; ++q) {
                        int8_t *c = cols + q * fan;
                        size_t j_lo, j_hi;
                        valid_taps(q, s->stride_w, s->pad_w, s->kernel_w, s->in_w, &j_lo, &j_hi);
                        for (ci = 0; ci < cin_g; ++ci) {
                            const int8_t *xc = xg + ci * s->in_h * s->in_w;
                            for (i = 0; i < s->kernel_h; ++i) {
                                int8_t *cr = c + (ci * s->kernel_h + i) * s->kernel_w;
                                if (i < i_lo || i >= i_hi) {
                                    for (jj = 0; jj < s->kernel_w; ++jj) {
                                        cr[jj] = 0;
                                    }
                                    continue;
                                }
                                {
                                    const int8_t *xr = xc + (p * s->stride_h + i - s->pad_h) * s->in_w;
                                    size_t col0 = q * s->stride_w; /* input column of tap jj: col0 + jj - pw */
                                    for (jj = 0; jj < s->kernel_w; ++jj) {
                                        cr[jj] = (jj >= j_lo && jj < j_hi) ? xr[col0 + jj - s->pad_w] : 0;
                                    }
                                }
                            }
                        }
                    }
                    for (o = g * cout_g; o < (g + 1u) * cout_g; ++o) {
                        const int8_t *wo = weight + o * fan;
                        int32_t bo = bias == NULL ? 0 : align_bias_one(bias[o], bias_mult);
                        size_t base = ((b * s->out_channels + o) * out_h + p) * out_w;
                        for (q = 0; q < out_w; ++q) {
                            int32_t v = dot_x4(bo, wo, cols + q * fan, fan);
                            if (pass == 0) {
                                uint32_t a = tt_mag32(v);
                                amax = a > amax ? a : amax;
                                if (acc != NULL) {
                                    acc[base + q] = v;
                                }
                            } else {
                                y[base + q] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
                            }
                        }
                    }
                }
            }
        }
        if (pass == 0) {
            change = tt_choose_rescale(amax, 8, mode, &choice);
        }
    }
    if (acc != NULL) {
        tt_rescale_write_s8(acc, s->batch * s->out_channels * out_h * out_w, change, &choice, y);
    }
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_conv2d_backward_input_scatter_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                                tt_scale_t w_scale, const tt_conv2d_shape_t *shape,
                                                tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                                tt_scale_t *err_in_scale)
{
    const tt_conv2d_shape_t *s = shape;
    size_t out_h, out_w, cin_g, cout_g, n, b, o, p, q, ci, i, k;
    tt_scale_t acc_scale = tt_scale_mul(err_scale, w_scale);
    tt_rescale_t choice;
    uint8_t change;
    tt_status_t st;
    if (acc == NULL || err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_conv2d_output_hw(s, &out_h, &out_w);
    if (st != TT_OK) {
        return st;
    }
    if (!conv_bounds_ok(s)) {
        return TT_ERR_SHAPE;
    }
    cin_g = s->in_channels / s->groups;
    cout_g = s->out_channels / s->groups;
    n = s->batch * s->in_channels * s->in_h * s->in_w;
    for (k = 0; k < n; ++k) {
        acc[k] = 0;
    }
    /* every non-zero output error adds itself times the kernel to the inputs it read; partial
     * sums are sums of a subset of an element's terms, so they stay inside the element's bound */
    for (b = 0; b < s->batch; ++b) {
        for (o = 0; o < s->out_channels; ++o) {
            size_t g = o / cout_g;
            const int8_t *eo = err + (b * s->out_channels + o) * out_h * out_w;
            for (p = 0; p < out_h; ++p) {
                size_t i_lo, i_hi;
                valid_taps(p, s->stride_h, s->pad_h, s->kernel_h, s->in_h, &i_lo, &i_hi);
                for (q = 0; q < out_w; ++q) {
                    int32_t e = eo[p * out_w + q];
                    size_t j_lo, j_hi;
                    if (e == 0) {
                        continue;
                    }
                    valid_taps(q, s->stride_w, s->pad_w, s->kernel_w, s->in_w, &j_lo, &j_hi);
                    for (ci = 0; ci < cin_g; ++ci) {
                        const int8_t *wc = weight + (o * cin_g + ci) * s->kernel_h * s->kernel_w;
                        int32_t *ac = acc + (b * s->in_channels + g * cin_g + ci) * s->in_h * s->in_w;
                        for (i = i_lo; i < i_hi; ++i) {
                            int32_t *ar = ac + (p * s->stride_h + i - s->pad_h) * s->in_w +
                                          (q * s->stride_w + j_lo - s->pad_w);
                            const int8_t *wr = wc + i * s->kernel_w + j_lo;
                            size_t t, nt = j_hi - j_lo;
                            for (t = 0; t < nt; ++t) {
                                ar[t] += e * wr[t];
                            }
                        }
                    }
                }
            }
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, n), 8, mode, &choice);
    tt_rescale_write_s8(acc, n, change, &choice, err_in);
    *err_in_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_channel_scale_backward_weight_sel_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                     tt_scale_t x_scale, size_t batch, size_t channels,
                                                     size_t positions, const uint16_t *rows, size_t first,
                                                     size_t count, int32_t *grad, tt_scale_t *grad_scale)
{
    size_t j, b, p;
    if (grad == NULL || grad_scale == NULL || (count && (err == NULL || x == NULL))) {
        return TT_ERR_ARG;
    }
    if (tt_size_above(batch * positions, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (check_selection(rows, first, count, channels) != TT_OK) {
        return TT_ERR_ARG;
    }
    for (j = 0; j < count; ++j) {
        size_t c = selected_row(rows, first + j);
        int32_t acc = 0;
        for (b = 0; b < batch; ++b) {
            size_t base = (b * channels + c) * positions;
            for (p = 0; p < positions; ++p) {
                acc += (int16_t)((int16_t)err[base + p] * (int16_t)x[base + p]);
            }
        }
        grad[j] = acc;
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

tt_status_t tt_bias_backward_sel_s32(const int8_t *err, tt_scale_t err_scale, size_t batch, size_t channels,
                                     size_t positions, const uint16_t *rows, size_t first, size_t count,
                                     int32_t *grad, tt_scale_t *grad_scale)
{
    size_t j, b, p;
    if (grad == NULL || grad_scale == NULL || (count && err == NULL)) {
        return TT_ERR_ARG;
    }
    /* |sum| <= batch * positions * 127 */
    if (tt_size_above(batch * positions, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (check_selection(rows, first, count, channels) != TT_OK) {
        return TT_ERR_ARG;
    }
    for (j = 0; j < count; ++j) {
        size_t c = selected_row(rows, first + j);
        int32_t acc = 0;
        for (b = 0; b < batch; ++b) {
            const int8_t *e = err + (b * channels + c) * positions;
            for (p = 0; p < positions; ++p) {
                acc += e[p];
            }
        }
        grad[j] = acc;
    }
    *grad_scale = err_scale;
    return TT_OK;
}

/* ---- max pooling with one-byte window offsets -------------------------------------------------- */

typedef struct {
    const tt_pool2d_shape_t *s;
    size_t kh, kw, sh, sw, out_h, out_w;
    const int8_t *err;
    const uint8_t *argmax;
} pool8_ctx_t;

static tt_status_t pool8_init(pool8_ctx_t *c, const tt_pool2d_shape_t *s)
{
    if (s == NULL) {
        return TT_ERR_ARG;
    }
    c->s = s;
    c->kh = s->kernel_h;
    c->kw = s->kernel_w;
    c->sh = s->stride_h ? s->stride_h : s->kernel_h;
    c->sw = s->stride_w ? s->stride_w : s->kernel_w;
    if (c->kh == 0 || c->kw == 0 || s->channels == 0 || s->in_h < c->kh || s->in_w < c->kw ||
        tt_size_above(c->kh * c->kw, 256UL)) {
        return TT_ERR_SHAPE;
    }
    c->out_h = (s->in_h - c->kh) / c->sh + 1u;
    c->out_w = (s->in_w - c->kw) / c->sw + 1u;
    c->err = NULL;
    c->argmax = NULL;
    return TT_OK;
}

tt_status_t tt_maxpool2d_forward_idx8_s8(const int8_t *x, const tt_pool2d_shape_t *shape, int8_t *y,
                                         uint8_t *argmax)
{
    pool8_ctx_t c;
    size_t bc, p, q, i, j, n = 0;
    tt_status_t st = pool8_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (bc = 0; bc < shape->batch * shape->channels; ++bc) {
        const int8_t *xc = x + bc * shape->in_h * shape->in_w;
        for (p = 0; p < c.out_h; ++p) {
            for (q = 0; q < c.out_w; ++q, ++n) {
                const int8_t *win = xc + p * c.sh * shape->in_w + q * c.sw;
                int8_t best = win[0];
                uint8_t arg = 0, k = 0;
                /* row-major window order, strictly greater: the first maximum wins */
                for (i = 0; i < c.kh; ++i) {
                    for (j = 0; j < c.kw; ++j, ++k) {
                        if (win[i * shape->in_w + j] > best) {
                            best = win[i * shape->in_w + j];
                            arg = k;
                        }
                    }
                }
                y[n] = best;
                if (argmax != NULL) {
                    argmax[n] = arg;
                }
            }
        }
    }
    return TT_OK;
}

static int32_t maxpool8_error_at(const void *vctx, size_t b, size_t ch, size_t y, size_t x)
{
    const pool8_ctx_t *c = (const pool8_ctx_t *)vctx;
    size_t plane = (b * c->s->channels + ch) * c->out_h * c->out_w, p, q, p_lo, p_hi, q_lo, q_hi;
    int32_t acc = 0;
    tt_pool_covering(y, c->kh, c->sh, c->out_h, &p_lo, &p_hi);
    tt_pool_covering(x, c->kw, c->sw, c->out_w, &q_lo, &q_hi);
    for (p = p_lo; p < p_hi; ++p) {
        for (q = q_lo; q < q_hi; ++q) {
            size_t k = plane + p * c->out_w + q;
            if (c->argmax[k] == (y - p * c->sh) * c->kw + (x - q * c->sw)) {
                acc += c->err[k];
            }
        }
    }
    return acc;
}

tt_status_t tt_maxpool2d_backward_idx8_s8(const int8_t *err, tt_scale_t err_scale, const uint8_t *argmax,
                                          const tt_pool2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                          int8_t *err_in, tt_scale_t *err_in_scale)
{
    pool8_ctx_t c;
    size_t bc, p, q, n = 0, i, in_plane;
    tt_status_t st = pool8_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (err == NULL || argmax == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    *err_in_scale = err_scale;
    if (c.sh < c.kh || c.sw < c.kw) {
        size_t dims[4];
        c.err = err;
        c.argmax = argmax;
        dims[0] = shape->batch;
        dims[1] = shape->channels;
        dims[2] = shape->in_h;
        dims[3] = shape->in_w;
        tt_rescale_acc4(maxpool8_error_at, &c, dims, acc, err_in_scale, mode, err_in);
        return TT_OK;
    }
    /* windows do not overlap: every input receives at most one error (|e| <= 127), so nothing is
     * rescaled and the error keeps its mantissas and scale, as in the Python */
    in_plane = shape->in_h * shape->in_w;
    for (i = 0; i < shape->batch * shape->channels * in_plane; ++i) {
        err_in[i] = 0;
    }
    for (bc = 0; bc < shape->batch * shape->channels; ++bc) {
        int8_t *ec = err_in + bc * in_plane;
        for (p = 0; p < c.out_h; ++p) {
            for (q = 0; q < c.out_w; ++q, ++n) {
                size_t a = argmax[n], r = 0;
                while (a >= c.kw) { /* a / kw without a division (windows are small) */
                    a -= c.kw;
                    ++r;
                }
                ec[(p * c.sh + r) * shape->in_w + q * c.sw + a] = err[n];
            }
        }
    }
    return TT_OK;
}

/* ---- row-tiled weight update -------------------------------------------------------------------- */

typedef struct {
    tt_delta_rule_t d; /* the element step, shared with tt_sgd.c */
    uint8_t have_mult; /* d.mult is known (set from the first tile's gradient scale) */
} tile_rule_t;

static int64_t weight_at(const tt_tiled_update_t *u, size_t i)
{
    return u->w8 != NULL ? (int64_t)u->w8[i] : (int64_t)u->w16[i];
}

static void set_weight(const tt_tiled_update_t *u, size_t i, int32_t v)
{
    if (u->w8 != NULL) {
        u->w8[i] = (int8_t)v;
    } else {
        u->w16[i] = (int16_t)v;
    }
}

/* Gradient tile t into u->tile; fills the aligned multiplier on first use. */
static tt_status_t tile_gradient(const tt_tiled_update_t *u, tile_rule_t *r, const tt_sgd_config_t *cfg,
                                 size_t r0, size_t cnt)
{
    tt_scale_t gs;
    tt_status_t st = u->grad(u->grad_ctx, r0, cnt, u->tile, &gs);
    if (st != TT_OK || r->d.niti || r->have_mult) {
        return st;
    }
    {
        tt_multiplier_t m;
        st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, gs), *u->w_scale), &m);
        if (st != TT_OK) {
            return st;
        }
        st = tt_divide_multiplier(m, cfg->batch_size, &r->d.mult);
        if (st != TT_OK) {
            return st;
        }
    }
    r->d.fine.m = r->d.mult.m;
    r->d.fine.n = r->d.mult.n - TT_MOMENTUM_FRAC_BITS;
    r->have_mult = 1;
    return TT_OK;
}

/* The common case in one tight loop per row: int8 weights, aligned rule, stochastic rounding, no
 * momentum, |g| * M <= 2**30 and n in [1, 31] (32-bit arithmetic gives the general path's result).
 * A zero gradient leaves the weight unchanged whatever the draw, so its draw is skipped. */
TT_NOINLINE static uint32_t row_fast_s8_stochastic(int8_t *w, int32_t *t, size_t cols, int32_t m, uint8_t n, uint32_t draw_x,
                                                    uint8_t saturate, int32_t limit)
{
    uint32_t m1 = (uint32_t)TT_MIX_MUL1, m2 = (uint32_t)TT_MIX_MUL2;
    TT_OPAQUE(m1);
    TT_OPAQUE(m2);
    uint32_t amax = 0;
    size_t k;
    for (k = 0; k < cols; ++k, draw_x += (uint32_t)TT_GOLDEN32) {
        int32_t g = t[k], nw = w[k];
        if (g != 0) {
            int32_t p = g * m, sm = -(int32_t)((uint32_t)p >> 31);
            uint32_t mag = (uint32_t)((p ^ sm) - sm), q, a;
            /* from n = 32 on a magnitude below 2**(n-32) rounds to 0 whatever the draw */
            q = (n >= 32u && (mag >> (n - 32u)) == 0) ? 0u : sr_q(mag, n, mix32_with(draw_x, m1, m2));
            nw -= ((int32_t)q ^ sm) - sm;
            a = tt_mag32(nw);
            if (a > amax) {
                amax = a;
            }
        }
        if (saturate) {
            w[k] = (int8_t)tt_clip32(nw, limit);
        } else {
            t[k] = nw;
        }
    }
    return saturate ? 0u : amax;
}

/* New values w - delta of the tile's rows (tile holds its gradient): saturating tiles are written
 * at once; otherwise they are stored (int32-saturated) in the tile and max |w - delta| over the
 * changed elements returned (unchanged ones are in range). */
static uint64_t tile_new_values(const tt_tiled_update_t *u, const tile_rule_t *r, size_t r0, size_t cnt,
                                uint8_t saturate, int32_t limit)
{
    size_t j, k, cols = u->cols;
    uint64_t amax = 0;
    uint32_t m = (uint32_t)r->d.mult.m;
    uint32_t gmax = 0;
    uint8_t fast = 0;
    if (!r->d.niti && !r->d.momentum && r->d.mult.n >= 1 && m != 0 &&
        (r->d.mult.n <= 31 || (r->d.mult.n <= 62 && u->w8 != NULL && r->d.rounding == TT_ROUND_STOCHASTIC))) {
        gmax = tt_max_abs_s32(u->tile, cnt * cols);
        fast = gmax <= ((uint32_t)1 << 30) / m; /* |g| * M <= 2**30: 32-bit arithmetic, same result */
    }
    for (j = 0; j < cnt; ++j) {
        size_t base = selected_row(u->rows, r0 + j) * cols;
        int32_t *t = u->tile + j * cols;
        uint32_t index = (uint32_t)((r0 + j) * cols);
        if (fast && u->w8 != NULL && r->d.rounding == TT_ROUND_STOCHASTIC) {
            uint32_t a = row_fast_s8_stochastic(u->w8 + base, t, cols, (int32_t)m, (uint8_t)r->d.mult.n,
                                                r->d.key + index * (uint32_t)TT_GOLDEN32, saturate, limit);
            if (a > amax) {
                amax = a;
            }
        } else if (fast) {
            int32_t mm = (int32_t)m;
            uint8_t n = (uint8_t)r->d.mult.n;
            uint32_t draw_x = r->d.key + index * (uint32_t)TT_GOLDEN32;
            for (k = 0; k < cols; ++k) {
                int32_t g = t[k] * mm, d;
                int32_t nw;
                uint32_t a;
                if (r->d.rounding == TT_ROUND_STOCHASTIC) {
                    d = tt_rs32_stochastic(g, n, tt_mix32_inline(draw_x));
                } else if (r->d.rounding == TT_ROUND_PSEUDO_STOCHASTIC) {
                    d = tt_rs32_pseudo(g, n);
                } else {
                    d = tt_rs32_nearest(g, n);
                }
                draw_x += (uint32_t)TT_GOLDEN32;
                nw = (int32_t)weight_at(u, base + k) - d;
                a = tt_mag32(nw);
                if (saturate) {
                    set_weight(u, base + k, tt_clip32(nw, limit));
                } else {
                    t[k] = nw;
                    if (a > amax) {
                        amax = a;
                    }
                }
            }
        } else {
            for (k = 0; k < cols; ++k) {
                int64_t *v = u->momentum != NULL ? u->momentum + (r0 + j) * cols + k : NULL;
                int64_t nw = tt_sub_wrap64(weight_at(u, base + k), tt_delta_at(&r->d, t[k], v, index + (uint32_t)k));
                uint64_t a = tt_mag64(nw);
                if (saturate) {
                    set_weight(u, base + k, (int32_t)tt_clip64(nw, limit));
                } else {
                    t[k] = tt_sat32(nw);
                    if (a > amax) {
                        amax = a;
                    }
                }
            }
        }
    }
    return amax;
}

/* Write a tile of new values that fit the weight range. */
static void commit_tile(const tt_tiled_update_t *u, size_t r0, size_t cnt)
{
    size_t j, k;
    for (j = 0; j < cnt; ++j) {
        size_t base = selected_row(u->rows, r0 + j) * u->cols;
        const int32_t *t = u->tile + j * u->cols;
        if (u->w8 != NULL) {
            int8_t *w = u->w8 + base;
            for (k = 0; k < u->cols; ++k) {
                w[k] = (int8_t)t[k];
            }
        } else {
            int16_t *w = u->w16 + base;
            for (k = 0; k < u->cols; ++k) {
                w[k] = (int16_t)t[k];
            }
        }
    }
}

/* One row of a batch-1 fully connected layer (see rank1_update_s8): w[k] -= round(em * x[k] / 2**n)
 * with the stochastic draw of index `draw_x` (advancing by TT_GOLDEN32 per element). The sign is
 * handled with masks (no branch, no shift of a negative number). Without saturation the old values
 * go to backup and the largest |new value| above `limit` is returned (0: the row fits). */
TT_NOINLINE static uint32_t rank1_row_s8(int8_t *w, const int8_t *x, size_t cols, int32_t em, uint32_t draw_x,
                                         uint8_t n, int32_t limit, int8_t *backup)
{
    uint32_t m1 = (uint32_t)TT_MIX_MUL1, m2 = (uint32_t)TT_MIX_MUL2;
    TT_OPAQUE(m1);
    TT_OPAQUE(m2);
    uint32_t over = 0, span = 2u * (uint32_t)limit;
    size_t k;
    if (n < 32u) {
        uint8_t sh = (uint8_t)(32u - n);
        for (k = 0; k < cols; ++k, draw_x += (uint32_t)TT_GOLDEN32) {
            int32_t xk = x[k];
            if (xk != 0) {
                int32_t p = em * xk, sm = -(int32_t)((uint32_t)p >> 31), nw;
                uint32_t q = ((uint32_t)((p ^ sm) - sm) + (mix32_with(draw_x, m1, m2) >> sh)) >> n;
                int8_t old = w[k];
                nw = (int32_t)old - (((int32_t)q ^ sm) - sm);
                backup[k] = old;
                w[k] = (int8_t)nw;
                if ((uint32_t)(nw + limit) > span) {
                    uint32_t a = tt_mag32(nw);
                    over = a > over ? a : over;
                }
            }
        }
        return over;
    }
    for (k = 0; k < cols; ++k, draw_x += (uint32_t)TT_GOLDEN32) {
        int32_t xk = x[k];
        if (xk != 0) {
            int32_t p = em * xk, sm = -(int32_t)((uint32_t)p >> 31), nw;
            uint32_t mag = (uint32_t)((p ^ sm) - sm), q;
            int8_t old;
            if ((mag >> (n - 32u)) == 0) {
                continue; /* from n = 32 on this rounds to 0 whatever the draw */
            }
            q = sr_q(mag, n, mix32_with(draw_x, m1, m2));
            old = w[k];
            nw = (int32_t)old - (((int32_t)q ^ sm) - sm);
            backup[k] = old;
            w[k] = (int8_t)nw;
            if ((uint32_t)(nw + limit) > span) {
                uint32_t a = tt_mag32(nw);
                over = a > over ? a : over;
            }
        }
    }
    return over;
}

TT_NOINLINE static void rank1_row_sat_s8(int8_t *w, const int8_t *x, size_t cols, int32_t em, uint32_t draw_x,
                                         uint8_t n, int32_t limit)
{
    uint32_t m1 = (uint32_t)TT_MIX_MUL1, m2 = (uint32_t)TT_MIX_MUL2;
    TT_OPAQUE(m1);
    TT_OPAQUE(m2);
    size_t k;
    for (k = 0; k < cols; ++k, draw_x += (uint32_t)TT_GOLDEN32) {
        int32_t xk = x[k];
        if (xk != 0) {
            int32_t p = em * xk, sm = -(int32_t)((uint32_t)p >> 31);
            uint32_t mag = (uint32_t)((p ^ sm) - sm), q;
            if (n >= 32u && (mag >> (n - 32u)) == 0) {
                continue;
            }
            q = sr_q(mag, n, mix32_with(draw_x, m1, m2));
            w[k] = (int8_t)tt_clip32((int32_t)w[k] - (((int32_t)q ^ sm) - sm), limit);
        }
    }
}

/* Batch-1 fully connected layer, int8 weights, aligned rule with stochastic rounding, no momentum,
 * 1 <= n <= 31: the gradient of element (r, k) is e[r] * x[k] (|g| <= 16129, so |g| * M < 2**30 and
 * 32-bit arithmetic gives the general result). Rows with e[r] == 0 and elements with x[k] == 0 do
 * not change (whatever their draws). Each row is written at once, its old values kept in `backup`;
 * a row with a value out of range is restored and left for the rescale pass. Returns max |w - delta|
 * over the values out of range (0 when every value fits). */
static uint64_t rank1_update_s8(const tt_tiled_update_t *u, const tile_rule_t *r, size_t nrows, uint8_t saturate,
                                int32_t limit, int8_t *backup, uint8_t *row_ok)
{
    const int8_t *x = u->rank1_x;
    size_t j, k, cols = u->cols;
    uint64_t amax = 0;
    for (j = 0; j < nrows; ++j) {
        size_t row = selected_row(u->rows, j);
        int32_t em = (int32_t)u->rank1_err[row] * r->d.mult.m;
        int8_t *w = u->w8 + row * cols;
        uint32_t draw_x = r->d.key + (uint32_t)(j * cols) * (uint32_t)TT_GOLDEN32, over;
        if (em == 0) {
            if (row_ok != NULL) {
                row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] | (1u << (j & 7u)));
            }
            continue;
        }
        if (saturate) {
            rank1_row_sat_s8(w, x, cols, em, draw_x, (uint8_t)r->d.mult.n, limit);
            continue;
        }
        over = rank1_row_s8(w, x, cols, em, draw_x, (uint8_t)r->d.mult.n, limit, backup);
        if (over == 0) {
            row_ok[j >> 3] = (uint8_t)(row_ok[j >> 3] | (1u << (j & 7u)));
            continue;
        }
        /* keep this row for the rescale pass: its old values back */
        for (k = 0; k < cols; ++k) {
            if (x[k] != 0) {
                w[k] = backup[k];
            }
        }
        if (over > amax) {
            amax = over;
        }
    }
    return amax;
}

tt_status_t tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key)
{
    tile_rule_t r;
    tt_status_t st;
    size_t tiles, t, nrows, trows;
    uint8_t saturate, bits, cached = 0;
    int32_t limit;
    uint64_t amax_new = 0;
    if (u == NULL || cfg == NULL || u->w_scale == NULL || u->grad == NULL || u->tile == NULL ||
        (u->w8 == NULL) == (u->w16 == NULL) || u->tile_rows == 0 || u->cols == 0) {
        return TT_ERR_ARG;
    }
    if (cfg->rule > TT_RULE_NITI || cfg->rounding > TT_ROUND_PSEUDO_STOCHASTIC || cfg->mode > TT_SCALE_COMPOUND ||
        cfg->momentum_shift > 8 || cfg->batch_size == 0 || (cfg->rule == TT_RULE_NITI && (cfg->mu < 1 || cfg->mu > 8))) {
        return TT_ERR_ARG;
    }
    nrows = u->rows != NULL ? u->nrows : u->row_count;
    if (nrows == 0) {
        return TT_OK;
    }
    if (u->rows != NULL && check_selection(u->rows, 0, nrows, u->row_count) != TT_OK) {
        return TT_ERR_ARG;
    }
    trows = u->tile_rows;
    tiles = tt_ceil_div(nrows, trows);
    bits = u->w8 != NULL ? 8 : 16;
    limit = tt_limit_for_bits(bits);
    saturate = u->rows != NULL || !cfg->weight_rescale;
    if (!saturate && u->tile_flags == NULL) {
        return TT_ERR_ARG;
    }
    r.d.niti = cfg->rule == TT_RULE_NITI;
    r.d.momentum = !r.d.niti && cfg->momentum_shift > 0;
    r.have_mult = 0;
    r.d.momentum_shift = cfg->momentum_shift;
    r.d.niti_k = 0;
    r.d.rounding = (tt_rounding_t)cfg->rounding;
    r.d.mult.m = 0;
    r.d.mult.n = 0;
    r.d.fine = r.d.mult;
    r.d.key = key;
    if (r.d.momentum && u->momentum == NULL) {
        return TT_ERR_ARG;
    }
    if (r.d.niti) {
        /* NITI's shift depends on max |g| of the whole (selected) gradient: a first pass */
        uint32_t amax = 0;
        for (t = 0; t < tiles; ++t) {
            size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
            uint32_t a;
            st = tile_gradient(u, &r, cfg, r0, cnt);
            if (st != TT_OK) {
                return st;
            }
            a = tt_max_abs_s32(u->tile, cnt * u->cols);
            if (a > amax) {
                amax = a;
            }
        }
        if (amax == 0) {
            return TT_OK; /* no update at all */
        }
        r.d.niti_k = (int8_t)(tt_bit_length_u32(amax) - cfg->mu);
        cached = tiles == 1; /* the tile still holds the whole gradient */
    }
    if (!saturate) {
        for (t = 0; t < (tiles + 7u) / 8u; ++t) {
            u->tile_flags[t] = 0;
        }
    }
    if (u->rank1_err != NULL && u->rank1_x != NULL && u->w8 != NULL && !r.d.niti && !r.d.momentum &&
        r.d.rounding == TT_ROUND_STOCHASTIC) {
        st = tile_gradient(u, &r, cfg, 0, 1); /* the multiplier (from the gradient scale) */
        if (st != TT_OK) {
            return st;
        }
        if (r.d.mult.n >= 1 && r.d.mult.n <= 62) {
            /* rows are the units written at once (tile_flags holds ceil(nrows / 8) bytes) */
            trows = 1;
            tiles = nrows;
            if (!saturate) {
                for (t = 0; t < (tiles + 7u) / 8u; ++t) {
                    u->tile_flags[t] = 0;
                }
            }
            amax_new = rank1_update_s8(u, &r, nrows, saturate, limit, (int8_t *)(void *)u->tile,
                                       saturate ? NULL : u->tile_flags);
            if (saturate || amax_new == 0) {
                return TT_OK;
            }
            goto rescale;
        }
    }
    for (t = 0; t < tiles; ++t) {
        size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
        uint64_t tmax;
        if (!cached) {
            st = tile_gradient(u, &r, cfg, r0, cnt);
            if (st != TT_OK) {
                return st;
            }
        }
        tmax = tile_new_values(u, &r, r0, cnt, saturate, limit);
        if (saturate) {
            continue;
        }
        if (tmax > amax_new) {
            amax_new = tmax;
        }
        if (tmax <= (uint64_t)limit) {
            /* this tile fits the weight range: write it now */
            commit_tile(u, r0, cnt);
            u->tile_flags[t >> 3] = (uint8_t)(u->tile_flags[t >> 3] | (1u << (t & 7u)));
        }
    }
    if (saturate || amax_new <= (uint64_t)limit) {
        return TT_OK;
    }
rescale:
    {
        /* rare: the tensor outgrew its range; move every value to a coarser grid scale */
        tt_scale_t new_scale;
        tt_multiplier_t mult;
        uint8_t changed = 0;
        st = tt_choose_grid_rescale(amax_new, *u->w_scale, bits, (tt_scale_mode_t)cfg->mode, &changed, &new_scale,
                                    &mult);
        if (st != TT_OK || !changed) {
            return st;
        }
        /* tiles not written yet first (they may need the tile buffer for their gradient), then the
         * written ones: those hold int8 values, mapped through a table when the tile buffer holds one */
        uint8_t phase, use_lut = 0;
        int8_t *lut = (int8_t *)(void *)u->tile;
        for (phase = 0; phase < 2u; ++phase) {
            if (phase == 1u) {
                use_lut = u->w8 != NULL && u->momentum == NULL && !tt_size_above(255u, (uint32_t)(trows * u->cols * 4u) - 1u);
                if (use_lut) {
                    int32_t v8;
                    for (v8 = -127; v8 <= 127; ++v8) {
                        lut[v8 + 127] = (int8_t)grid_rescale_one(v8, mult, limit);
                    }
                }
            }
            for (t = 0; t < tiles; ++t) {
                size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows, j, k;
                uint8_t committed = (uint8_t)((u->tile_flags[t >> 3] >> (t & 7u)) & 1u);
                if (committed != phase) {
                    continue;
                }
                if (use_lut) {
                    for (j = 0; j < cnt; ++j) {
                        int8_t *w = u->w8 + selected_row(u->rows, r0 + j) * u->cols;
                        for (k = 0; k < u->cols; ++k) {
                            w[k] = lut[w[k] + 127];
                        }
                    }
                    continue;
                }
                if (!committed && !r.d.momentum) {
                    st = tile_gradient(u, &r, cfg, r0, cnt);
                    if (st != TT_OK) {
                        return st;
                    }
                }
                for (j = 0; j < cnt; ++j) {
                    size_t base = (r0 + j) * u->cols; /* row-major index in the selection */
                    size_t wbase = selected_row(u->rows, r0 + j) * u->cols;
                    for (k = 0; k < u->cols; ++k) {
                        int64_t *v = u->momentum != NULL ? u->momentum + base + k : NULL;
                        uint32_t index = (uint32_t)(base + k);
                        int64_t nw = weight_at(u, wbase + k);
                        if (!committed) {
                            /* momentum was already advanced in the first pass: delta = round(v / 2**8) */
                            int64_t d = r.d.momentum ? tt_shift_round_s64(*v, TT_MOMENTUM_FRAC_BITS, r.d.rounding, key, index)
                                                   : tt_delta_at(&r.d, u->tile[j * u->cols + k], NULL, index);
                            nw = tt_sub_wrap64(nw, d);
                        }
                        set_weight(u, wbase + k, grid_rescale_one(nw, mult, limit));
                        if (v != NULL) {
                            *v = tt_apply_multiplier_scalar(*v, mult, TT_ROUND_NEAREST, 0, 0, -1);
                        }
                    }
                }
            }
        }
        *u->w_scale = new_scale;
    }
    return TT_OK;
}

/* ---- checksums -------------------------------------------------------------------------------- */

uint32_t tt_fnv1a_u32(uint32_t hash, const uint8_t *data, size_t count)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        hash ^= data[i];
        hash *= 16777619UL;
    }
    return hash;
}
