/* tt_sgd.c - integer SGD updates (mirrors tintin.optim.sgd.IntegerSGD.update). */
#include "tt_optim.h"
#include "tt_internal.h"

/* |delta| <= (max|g| * M >> n) + 1 from this bound on may leave |w - delta| >= 2**31 (|w| <= 32767) */
#define TT_WIDE_DELTA (((uint64_t)1 << 31) - ((uint64_t)1 << 15) - 1u)

/* 1 when an aligned delta round(g * M / 2**n), |g| <= gmax, may reach TT_WIDE_DELTA */
static uint8_t wide_delta(uint32_t gmax, tt_multiplier_t mult)
{
    return mult.n < 0 || (mult.n <= 62 && (((uint64_t)gmax * (uint64_t)(uint32_t)mult.m) >> mult.n) >= TT_WIDE_DELTA);
}

/* a * b for |a|, |b| < 2**15: one 16x16->32 multiply (libgcc __mulhisi3 on AVR, not __mulsi3) */
static inline int32_t mul_s16(int32_t a, int32_t b)
{
    return (int32_t)(int16_t)a * (int32_t)(int16_t)b;
}

/* (mag + (draw >> sh)) >> n, sh = 32 - n, 1 <= n <= 31, mag <= 2**30: stochastic rounding of a
 * magnitude (tt_rs32_stochastic) with the shifts of tt_shr32 (byte moves first on AVR) */
static inline uint32_t sr_mag31(uint32_t mag, uint8_t n, uint8_t sh, uint32_t draw)
{
    return tt_shr32(mag + tt_shr32(draw, sh), n);
}

/* Everything the per-element update step needs, computed once per parameter. */
typedef struct {
    tt_delta_rule_t d;      /* the element step (shared with the tiled updates) */
    uint8_t skip;           /* NITI rule with an all-zero gradient: the parameter does not change */
    uint8_t fast32;         /* aligned rule: 1 when |g| * M fits int32 and 0 <= n <= 62 (same result),
                             * 2 when also |g| * M <= 2**30 and 1 <= n <= 31 (fast_update, 32-bit) */
    uint8_t fast64;         /* aligned rule, not fast32 == 2: 1 <= n <= 62 and |delta| < 2**30
                             * (fast_update with 64-bit products: one pass too; SMULL on M3/M4) */
    uint8_t wide;           /* aligned rule without momentum whose |delta| may reach 2**31 - 2**15:
                             * w - delta may not fit int32 (see update_weight) */
} delta_rule_t;

static tt_status_t check_config(const tt_sgd_config_t *cfg)
{
    if (cfg == NULL || cfg->rule > TT_RULE_NITI || cfg->rounding > TT_ROUND_PSEUDO_STOCHASTIC ||
        cfg->mode > TT_SCALE_COMPOUND || cfg->momentum_shift > 8 || cfg->batch_size == 0 ||
        (cfg->rule == TT_RULE_NITI && (cfg->mu < 1 || cfg->mu > 8))) {
        return TT_ERR_ARG;
    }
    return TT_OK;
}

static tt_status_t delta_rule_init(delta_rule_t *r, const tt_sgd_config_t *cfg, uint8_t is_weight,
                                   tt_scale_t w_scale, const int32_t *grad, size_t count, tt_scale_t grad_scale,
                                   uint32_t key)
{
    uint32_t amax = tt_max_abs_s32(grad, count);
    tt_status_t st = check_config(cfg);
    if (st != TT_OK) {
        return st;
    }
    r->d.niti = 0;
    r->skip = 0;
    r->d.momentum = 0;
    r->fast32 = 0;
    r->fast64 = 0;
    r->wide = 0;
    r->d.momentum_shift = cfg->momentum_shift;
    r->d.niti_k = 0;
    r->d.rounding = (tt_rounding_t)cfg->rounding;
    r->d.mult.m = 0;
    r->d.mult.n = 0;
    r->d.fine = r->d.mult;
    r->d.key = key;
    if (cfg->rule == TT_RULE_NITI && is_weight) {
        r->d.niti = 1;
        r->skip = amax == 0;
        r->d.niti_k = (int8_t)(tt_bit_length_u32(amax) - cfg->mu);
        return TT_OK;
    }
    {
        tt_multiplier_t m;
        st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, grad_scale), w_scale), &m);
        if (st != TT_OK) {
            return st;
        }
        st = tt_divide_multiplier(m, cfg->batch_size, &r->d.mult);
        if (st != TT_OK) {
            return st;
        }
    }
    if (cfg->momentum_shift) {
        r->d.momentum = 1;
        r->d.fine.m = r->d.mult.m;
        r->d.fine.n = r->d.mult.n - TT_MOMENTUM_FRAC_BITS;
    } else {
        r->fast32 = r->d.mult.n >= 0 && r->d.mult.n <= 62 && amax <= (uint32_t)INT32_MAX / (uint32_t)r->d.mult.m;
        if (r->fast32 && r->d.mult.n >= 1 && r->d.mult.n <= 31 && amax <= ((uint32_t)1 << 30) / (uint32_t)r->d.mult.m) {
            r->fast32 = 2;
        } else if (r->d.mult.n >= 1 && r->d.mult.n <= 62 &&
                   (((uint64_t)amax * (uint64_t)r->d.mult.m) >> r->d.mult.n) < ((uint64_t)1 << 29)) {
            r->fast64 = 1; /* |g * M| < 2**46; |delta| <= (|g| M >> n) + 1 < 2**30 */
        } else {
            r->wide = wide_delta(amax, r->d.mult);
        }
    }
    return TT_OK;
}

/* delta for gradient element g (draw index `index`); updates *v with momentum. The 32-bit product
 * (fast32) gives the same result as the general step when |g| * M fits int32. */
static int64_t delta_at(const delta_rule_t *r, int32_t g, int64_t *v, uint32_t index)
{
    if (r->fast32) {
        return tt_shift_round_s32(g * (int32_t)r->d.mult.m, (uint8_t)r->d.mult.n, r->d.rounding, r->d.key, index);
    }
    return tt_delta_at(&r->d, g, v, index);
}

/* Fast path of the most common update (aligned rule, no momentum, |delta| <= 2**30; 32-bit products
 * when |g| * M <= 2**30 and n in [1, 31] (fast32 == 2), else 64-bit products (fast64)):
 * every value fits 32 bits (|delta| <= 2**30, |w - delta| < 2**31), the rounding mode is chosen
 * once per tensor and the stochastic draw index advances by addition. One pass: w gets the
 * saturated new value, grad the exact one (for a rescale). Returns max |w - delta|. */
#define TT_FAST_UPDATE(W, T, ROUND)                                                                            \
    for (i = 0; i < count; ++i) {                                                                            \
        int32_t nw = (int32_t)(W)[i] - (int32_t)(ROUND); /* |ROUND| <= 2**30 on both paths */               \
        uint32_t a = tt_mag32(nw);                                                                           \
        if (a > amax) {                                                                                      \
            amax = a;                                                                                        \
        }                                                                                                    \
        grad[i] = nw;                                                                                        \
        (W)[i] = (T)(nw > limit ? limit : (nw < -limit ? -limit : nw));                                      \
        draw_x += (uint32_t)TT_GOLDEN32;                                                                     \
    }

#define TT_FAST_UPDATE_ALL(W, T)                                                                               \
    if (r->fast64) {                                                                                         \
        int64_t m64 = (int64_t)m;                                                                            \
        if (r->d.rounding == TT_ROUND_STOCHASTIC) {                                                            \
            TT_FAST_UPDATE(W, T, tt_rs64_stochastic((int64_t)grad[i] * m64, n, draw_x))   \
        } else if (r->d.rounding == TT_ROUND_PSEUDO_STOCHASTIC) {                                              \
            TT_FAST_UPDATE(W, T, tt_rs64_pseudo((int64_t)grad[i] * m64, n))                                \
        } else {                                                                                             \
            TT_FAST_UPDATE(W, T, tt_rs64_nearest((int64_t)grad[i] * m64, n))                               \
        }                                                                                                    \
    } else if (r->d.rounding == TT_ROUND_STOCHASTIC) {                                                         \
        TT_FAST_UPDATE(W, T, tt_rs32_stochastic(grad[i] * m, n, draw_x))                    \
    } else if (r->d.rounding == TT_ROUND_PSEUDO_STOCHASTIC) {                                                  \
        TT_FAST_UPDATE(W, T, tt_rs32_pseudo(grad[i] * m, n))                                                 \
    } else {                                                                                                 \
        TT_FAST_UPDATE(W, T, tt_rs32_nearest(grad[i] * m, n))                                                \
    }

typedef uint32_t (*fast_update_fn)(void *w, size_t count, int32_t *grad, const delta_rule_t *r, int32_t limit);

/* one function per weight type, so that a program using only one links only one */
static uint32_t fast_update_s8(void *vw, size_t count, int32_t *grad, const delta_rule_t *r, int32_t limit)
{
    int8_t *w8 = (int8_t *)vw;
    uint32_t amax = 0, draw_x = r->d.key;
    int32_t m = r->d.mult.m;
    uint8_t n = (uint8_t)r->d.mult.n;
    size_t i;
    TT_FAST_UPDATE_ALL(w8, int8_t)
    return amax;
}

static uint32_t fast_update_s16(void *vw, size_t count, int32_t *grad, const delta_rule_t *r, int32_t limit)
{
    int16_t *w16 = (int16_t *)vw;
    uint32_t amax = 0, draw_x = r->d.key;
    int32_t m = r->d.mult.m;
    uint8_t n = (uint8_t)r->d.mult.n;
    size_t i;
    TT_FAST_UPDATE_ALL(w16, int16_t)
    return amax;
}

/* Full weight tensor: w8 or w16 (the other NULL). */
static tt_status_t update_weight(int8_t *w8, int16_t *w16, fast_update_fn fast, tt_scale_t *w_scale, size_t count,
                                 int32_t *grad, tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                 uint32_t key)
{
    delta_rule_t r;
    tt_status_t st;
    tt_scale_t new_scale;
    tt_multiplier_t mult;
    uint64_t amax = 0;
    uint8_t bits = w8 != NULL ? 8 : 16, changed = 0;
    int32_t limit = tt_limit_for_bits(bits);
    size_t i;
    if (w_scale == NULL || (count && ((w8 == NULL && w16 == NULL) || grad == NULL))) {
        return TT_ERR_ARG;
    }
    st = delta_rule_init(&r, cfg, 1, *w_scale, grad, count, grad_scale, key);
    if (st != TT_OK) {
        return st;
    }
    if (r.d.momentum && count && momentum == NULL) {
        return TT_ERR_ARG;
    }
    if (r.skip) {
        return TT_OK;
    }
    /* pass 1: new = w - delta; w gets it saturated and the gradient buffer keeps what the rescale
     * pass needs to find the exact new value again:
     * - fast paths and NITI: the new value itself (|w - delta| < 2**31);
     * - momentum (|delta| = |round(v / 2**8)| <= 2**32): the old weight; the rescale pass takes
     *   delta again from the new momentum;
     * - aligned rule with a delta that may reach 2**31 (wide): nothing is written; the rescale pass
     *   computes delta again from the gradient (the draw depends on the index alone). */
    if (r.fast32 == 2 || r.fast64) {
        amax = fast(w8 != NULL ? (void *)w8 : (void *)w16, count, grad, &r, limit);
    } else {
        for (i = 0; i < count; ++i) {
            int64_t old = w8 != NULL ? (int64_t)w8[i] : (int64_t)w16[i];
            int64_t nw = tt_sub_wrap64(old, delta_at(&r, grad[i], r.d.momentum ? &momentum[i] : NULL, (uint32_t)i));
            uint64_t a = tt_mag64(nw);
            int32_t q = (int32_t)tt_clip64(nw, limit);
            if (a > amax) {
                amax = a;
            }
            if (r.wide) {
                continue;
            }
            grad[i] = r.d.momentum ? (int32_t)old : (int32_t)nw; /* |nw| < 2**31 without momentum */
            if (w8 != NULL) {
                w8[i] = (int8_t)q;
            } else {
                w16[i] = (int16_t)q;
            }
        }
    }
    if (cfg->weight_rescale && amax > (uint64_t)limit) {
        st = tt_choose_grid_rescale(amax, *w_scale, bits, (tt_scale_mode_t)cfg->mode, &changed, &new_scale, &mult);
    }
    if (!changed) {
        /* in range, saturating, or no grid scale for the values (st: the defined fallback): the
         * weights keep their saturated values (written now when pass 1 wrote none) */
        for (i = 0; r.wide && i < count; ++i) {
            int64_t old = w8 != NULL ? (int64_t)w8[i] : (int64_t)w16[i];
            int32_t q = (int32_t)tt_clip64(tt_sub_wrap64(old, delta_at(&r, grad[i], NULL, (uint32_t)i)), limit);
            if (w8 != NULL) {
                w8[i] = (int8_t)q;
            } else {
                w16[i] = (int16_t)q;
            }
        }
        return st;
    }
    /* pass 2 (rare): convert the exact new values to the coarser grid scale (nearest) */
    for (i = 0; i < count; ++i) {
        int64_t nw = grad[i];
        int32_t q;
        if (r.d.momentum) {
            nw = tt_sub_wrap64(nw, tt_shift_round_s64(momentum[i], TT_MOMENTUM_FRAC_BITS, r.d.rounding, key, (uint32_t)i));
        } else if (r.wide) {
            int64_t old = w8 != NULL ? (int64_t)w8[i] : (int64_t)w16[i];
            nw = tt_sub_wrap64(old, delta_at(&r, grad[i], NULL, (uint32_t)i));
        }
        q = (int32_t)tt_apply_multiplier_scalar(nw, mult, TT_ROUND_NEAREST, 0, 0, limit);
        if (w8 != NULL) {
            w8[i] = (int8_t)q;
        } else {
            w16[i] = (int16_t)q;
        }
        if (r.d.momentum) {
            momentum[i] = tt_apply_multiplier_scalar(momentum[i], mult, TT_ROUND_NEAREST, 0, 0, -1);
        }
    }
    *w_scale = new_scale;
    return TT_OK;
}

tt_status_t tt_sgd_update_weight_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                    tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                    uint32_t key)
{
    if (count && weight == NULL) {
        return TT_ERR_ARG;
    }
    return update_weight(weight, NULL, fast_update_s8, w_scale, count, grad, grad_scale, momentum, cfg, key);
}

tt_status_t tt_sgd_update_weight_s16(int16_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                     tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                     uint32_t key)
{
    if (count && weight == NULL) {
        return TT_ERR_ARG;
    }
    return update_weight(NULL, weight, fast_update_s16, w_scale, count, grad, grad_scale, momentum, cfg, key);
}

/* Rows of a tensor of 8-, 16- or 32-bit mantissas (32: a bias), saturating. */
static tt_status_t update_rows(void *values, uint8_t bits, tt_scale_t scale, size_t row_count, size_t cols,
                               const uint16_t *rows, size_t nrows, const int32_t *grad_rows, tt_scale_t grad_scale,
                               int64_t *momentum, const tt_sgd_config_t *cfg, uint32_t key)
{
    delta_rule_t r;
    tt_status_t st;
    int64_t limit = bits == 32 ? (int64_t)TT_BIAS_LIMIT : (int64_t)tt_limit_for_bits(bits);
    size_t j, k;
    if (nrows && (values == NULL || rows == NULL || grad_rows == NULL || cols == 0)) {
        return TT_ERR_ARG;
    }
    if (tt_check_selection(rows, 0, nrows, row_count) != TT_OK) {
        return TT_ERR_ARG;
    }
    st = delta_rule_init(&r, cfg, bits != 32, scale, grad_rows, nrows * cols, grad_scale, key);
    if (st != TT_OK) {
        return st;
    }
    if (r.d.momentum && nrows && momentum == NULL) {
        return TT_ERR_ARG;
    }
    if (r.skip) {
        return TT_OK;
    }
    for (j = 0; j < nrows; ++j) {
        size_t base = (size_t)rows[j] * cols;
        for (k = 0; k < cols; ++k) {
            size_t i = j * cols + k;
            int64_t d = delta_at(&r, grad_rows[i], r.d.momentum ? &momentum[i] : NULL, (uint32_t)i);
            if (bits == 8) {
                int8_t *w = (int8_t *)values + base + k;
                *w = (int8_t)tt_clip64(tt_sub_wrap64(*w, d), limit);
            } else if (bits == 16) {
                int16_t *w = (int16_t *)values + base + k;
                *w = (int16_t)tt_clip64(tt_sub_wrap64(*w, d), limit);
            } else {
                int32_t *w = (int32_t *)values + base + k;
                *w = (int32_t)tt_clip64(tt_sub_wrap64(*w, d), limit);
            }
        }
    }
    return TT_OK;
}

tt_status_t tt_sgd_update_bias_s32(int32_t *bias, tt_scale_t bias_scale, size_t count, const int32_t *grad,
                                   tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                   uint32_t key)
{
    delta_rule_t r;
    tt_status_t st;
    size_t i;
    if (count && (bias == NULL || grad == NULL)) {
        return TT_ERR_ARG;
    }
    st = delta_rule_init(&r, cfg, 0, bias_scale, grad, count, grad_scale, key);
    if (st != TT_OK) {
        return st;
    }
    if (r.d.momentum && count && momentum == NULL) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        int64_t d = delta_at(&r, grad[i], r.d.momentum ? &momentum[i] : NULL, (uint32_t)i);
        bias[i] = (int32_t)tt_clip64(tt_sub_wrap64(bias[i], d), TT_BIAS_LIMIT);
    }
    return TT_OK;
}

tt_status_t tt_sgd_update_weight_rows_s8(int8_t *weight, tt_scale_t w_scale, size_t row_count, size_t cols,
                                         const uint16_t *rows, size_t nrows, const int32_t *grad_rows,
                                         tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                         uint32_t key)
{
    return update_rows(weight, 8, w_scale, row_count, cols, rows, nrows, grad_rows, grad_scale, momentum, cfg, key);
}

tt_status_t tt_sgd_update_weight_rows_s16(int16_t *weight, tt_scale_t w_scale, size_t row_count, size_t cols,
                                          const uint16_t *rows, size_t nrows, const int32_t *grad_rows,
                                          tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                          uint32_t key)
{
    return update_rows(weight, 16, w_scale, row_count, cols, rows, nrows, grad_rows, grad_scale, momentum, cfg,
                       key);
}

tt_status_t tt_sgd_update_bias_rows_s32(int32_t *bias, tt_scale_t bias_scale, size_t row_count,
                                        const uint16_t *rows, size_t nrows, const int32_t *grad_rows,
                                        tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                        uint32_t key)
{
    return update_rows(bias, 32, bias_scale, row_count, 1, rows, nrows, grad_rows, grad_scale, momentum, cfg, key);
}

#if defined(__AVR__)
/* AVR: stochastic steps round(ag * M / 2**n) with the draw, for ag < 2**15 and 1 <= n <= 31,
 * without a variable shift: the arithmetic of avr_skip0_run below (q = hi + carry(lo + draw), hi:lo
 * = (ag * (M << r)) << 8 * sb, sh = 32 - n = 8 * sb + r), for the biases (avr_bias_run). */
typedef struct {
    uint8_t c0, c1, c2, sb; /* M << r, three bytes; sb */
} avr_mshift_t;

typedef struct {
    avr_mshift_t ms;
    uint32_t draw;
} avr_sr_t;

/* The bytes of a multiplier (M, n) for the assembly below: M << r and sb (sh = 32 - n = 8 * sb + r) */
static void avr_mshift_init(avr_mshift_t *s, int32_t m, uint8_t n)
{
    uint8_t sh = (uint8_t)(32u - n);
    uint32_t m2 = (uint32_t)m << (sh & 7u);
    s->c0 = (uint8_t)m2;
    s->c1 = (uint8_t)(m2 >> 8);
    s->c2 = (uint8_t)(m2 >> 16);
    s->sb = (uint8_t)(sh >> 3);
}

/* The step of avr_skip0_run and avr_bias_run: r10:r6 = |g| * (M << r) from r23:r22 = |g| and
 * r4:r2 = M << r (six MULs, r5 zero), then q (r22-r25) = hi + carry(lo + draw), hi:lo = product
 * << 8 * sb (sb in r20, the draw in r16-r19); L names the labels (L_apply follows). */
#define AVR_SR_STEP(L) \
    "mul r22, r2\n\tmovw r6, r0\n\t" \
    "mul r22, r4\n\tmovw r8, r0\n\t" \
    "clr r10\n\t" \
    "mul r22, r3\n\tadd r7, r0\n\tadc r8, r1\n\tadc r9, r5\n\t" \
    "mul r23, r2\n\tadd r7, r0\n\tadc r8, r1\n\tadc r9, r5\n\tadc r10, r5\n\t" \
    "mul r23, r3\n\tadd r8, r0\n\tadc r9, r1\n\tadc r10, r5\n\t" \
    "mul r23, r4\n\tadd r9, r0\n\tadc r10, r1\n\t" \
    "cpi r20, 2\n\t" \
    "brcc " L "_sb23\n\t" \
    "cpi r20, 1\n\t" \
    "breq " L "_sb1\n\t" \
    "mov r0, r16\n\tadd r0, r6\n\tmov r0, r17\n\tadc r0, r7\n\tmov r0, r18\n\tadc r0, r8\n\t" \
    "mov r0, r19\n\tadc r0, r9\n\t" \
    "mov r22, r10\n\tadc r22, r5\n\tclr r23\n\tclr r24\n\tclr r25\n\t" \
    "rjmp " L "_apply\n" \
    L "_sb1:\n\t" \
    "mov r0, r17\n\tadd r0, r6\n\tmov r0, r18\n\tadc r0, r7\n\tmov r0, r19\n\tadc r0, r8\n\t" \
    "mov r22, r9\n\tmov r23, r10\n\tadc r22, r5\n\tadc r23, r5\n\tclr r24\n\tclr r25\n\t" \
    "rjmp " L "_apply\n" \
    L "_sb23:\n\t" \
    "breq " L "_sb2\n\t" \
    "mov r0, r19\n\tadd r0, r6\n\t" \
    "mov r22, r7\n\tmov r23, r8\n\tmov r24, r9\n\tmov r25, r10\n\t" \
    "adc r22, r5\n\tadc r23, r5\n\tadc r24, r5\n\tadc r25, r5\n\t" \
    "rjmp " L "_apply\n" \
    L "_sb2:\n\t" \
    "mov r0, r18\n\tadd r0, r6\n\tmov r0, r19\n\tadc r0, r7\n\t" \
    "mov r22, r8\n\tmov r23, r9\n\tmov r24, r10\n\t" \
    "adc r22, r5\n\tadc r23, r5\n\tadc r24, r5\n\tclr r25\n"

/* The narrow bias loop: bias[i] = clip(bias[i] - sign(g) * q, +-TT_BIAS_LIMIT) with q the step of
 * |g| = |grad[i]| < 2**15 (its low 16 bits) and the draw (the state's, advanced by GOLDEN32 per
 * value), count >= 1. |b| <= 2**30 and q <= 2**29 + 1: b - q needs no more than 32 bits.
 * Registers: X grad, Z bias, Y count, r2-r4 M << r, r5 zero, r6-r10 the product, r12-r15 the
 * bias, r16-r19 the draw, r20 sb, r21 the sign of g, r22-r25 |g| then q then the new bias. */
void avr_bias_run(int32_t *bias, const int32_t *grad, uint16_t count, const avr_sr_t *s);
__asm__(
    ".text\n"
    ".type avr_bias_run, @function\n"
    "avr_bias_run:\n\t"
    "push r2\n\tpush r3\n\tpush r4\n\tpush r5\n\tpush r6\n\tpush r7\n\tpush r8\n\tpush r9\n\t"
    "push r10\n\tpush r12\n\tpush r13\n\tpush r14\n\tpush r15\n\tpush r16\n\tpush r17\n\t"
    "push r28\n\tpush r29\n\t"
    "movw r28, r20\n\t"
    "movw r30, r18\n\t"
    "ld r2, Z\n\tldd r3, Z+1\n\tldd r4, Z+2\n\tldd r20, Z+3\n\t"
    "ldd r16, Z+4\n\tldd r17, Z+5\n\tldd r18, Z+6\n\tldd r19, Z+7\n\t"
    "movw r30, r24\n\t"
    "movw r26, r22\n\t"
    "clr r5\n"
    ".Lb_loop:\n\t"
    "ld r22, X+\n\tld r23, X+\n\tadiw r26, 2\n\t"
    "mov r21, r23\n\t"
    "sbrs r21, 7\n\t"
    "rjmp 1f\n\t"
    "com r23\n\tneg r22\n\tsbci r23, 0xFF\n"
    "1:\n\t"
    AVR_SR_STEP(".Lb")
    ".Lb_apply:\n\t"
    "ld r12, Z\n\tldd r13, Z+1\n\tldd r14, Z+2\n\tldd r15, Z+3\n\t"
    /* positive gradient: b - q; negative: b + q */
    "sbrc r21, 7\n\t"
    "rjmp 2f\n\t"
    "sub r12, r22\n\tsbc r13, r23\n\tsbc r14, r24\n\tsbc r15, r25\n\t"
    "rjmp 3f\n"
    "2:\n\t"
    "add r12, r22\n\tadc r13, r23\n\tadc r14, r24\n\tadc r15, r25\n"
    "3:\n\t"
    "movw r22, r12\n\tmovw r24, r14\n\t"
    /* clip to [-2**30, 2**30]: above when the top byte is > 0x40, or 0x40 with more below; below
     * when it is < 0xC0 (signed) */
    "cpi r25, 0x40\n\t"
    "brlt 5f\n\t"
    "brne 4f\n\t"
    "mov r0, r22\n\tor r0, r23\n\tor r0, r24\n\t"
    "breq 6f\n"
    "4:\n\t"
    "ldi r25, 0x40\n\t"
    "rjmp 7f\n"
    "5:\n\t"
    "cpi r25, 0xC0\n\t"
    "brge 6f\n\t"
    "ldi r25, 0xC0\n"
    "7:\n\t"
    "ldi r22, 0\n\tldi r23, 0\n\tldi r24, 0\n"
    "6:\n\t"
    "st Z+, r22\n\tst Z+, r23\n\tst Z+, r24\n\tst Z+, r25\n\t"
    "subi r16, 0x47\n\tsbci r17, 0x86\n\tsbci r18, 0xC8\n\tsbci r19, 0x61\n\t" /* + 0x9E3779B9 */
    "sbiw r28, 1\n\t"
    "breq 8f\n\t"
    "rjmp .Lb_loop\n"
    "8:\n\t"
    "clr r1\n\t"
    "pop r29\n\tpop r28\n\tpop r17\n\tpop r16\n\tpop r15\n\tpop r14\n\tpop r13\n\tpop r12\n\t"
    "pop r10\n\tpop r9\n\tpop r8\n\tpop r7\n\tpop r6\n\tpop r5\n\tpop r4\n\tpop r3\n\tpop r2\n\t"
    "ret\n"
    ".size avr_bias_run, .-avr_bias_run\n");
#endif

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
    if (amax > 32767u && amax > ((uint32_t)1 << 30) / (uint32_t)mult.m) { /* M < 2**15 */
        return tt_sgd_update_bias_s32(bias, bias_scale, count, grad, grad_scale, momentum, cfg, key);
    }
    /* |g * M| <= 2**30, |b| <= 2**30: b - delta fits int32 */
    if (cfg->rounding == TT_ROUND_STOCHASTIC) {
        /* the draw advances by one addition; 16x16->32 products and byte-first shifts (8-bit cores) */
        uint32_t draw = key;
        uint8_t n = (uint8_t)mult.n, sh = (uint8_t)(32 - mult.n), narrow = amax <= 32767u;
#if defined(__AVR__)
        if (narrow) {
            avr_sr_t sr;
            avr_mshift_init(&sr.ms, mult.m, n);
            sr.draw = key;
            if (count != 0) {
                avr_bias_run(bias, grad, (uint16_t)count, &sr);
            }
            return TT_OK;
        }
        /* larger gradients: the general update (the same results; less code in the flash) */
        return tt_sgd_update_bias_s32(bias, bias_scale, count, grad, grad_scale, momentum, cfg, key);
#elif defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
        /* Cortex-M3, M4, M33: one 32-bit multiply whatever the range (|g * M| <= 2**30 either
         * way), the sign applied with masks: no branch in the loop but the clip */
        const int32_t m32 = mult.m;
        (void)narrow;
        for (i = 0; i < count; ++i, draw += (uint32_t)TT_GOLDEN32) {
            int32_t p = grad[i] * m32, sm = -(int32_t)((uint32_t)p >> 31);
            uint32_t q = ((uint32_t)((p ^ sm) - sm) + (draw >> sh)) >> n;
            bias[i] = tt_clip32(bias[i] - (((int32_t)q ^ sm) - sm), (int32_t)TT_BIAS_LIMIT);
        }
        return TT_OK;
#endif
        for (i = 0; i < count; ++i, draw += (uint32_t)TT_GOLDEN32) {
            int32_t p = narrow ? mul_s16(grad[i], mult.m) : grad[i] * mult.m;
            int32_t q = (int32_t)sr_mag31(tt_mag32(p), n, sh, draw);
            bias[i] = tt_clip32(p < 0 ? bias[i] + q : bias[i] - q, (int32_t)TT_BIAS_LIMIT);
        }
        return TT_OK;
    }
    for (i = 0; i < count; ++i) {
        int32_t p = grad[i] * mult.m, d;
        if (cfg->rounding == TT_ROUND_PSEUDO_STOCHASTIC) {
            d = tt_rs32_pseudo(p, (uint8_t)mult.n);
        } else {
            d = tt_rs32_nearest(p, (uint8_t)mult.n);
        }
        bias[i] = tt_clip32(bias[i] - d, (int32_t)TT_BIAS_LIMIT);
    }
    return TT_OK;
}

/* ---- materialised weight update that skips zero gradients ------------------------------------- */

#if !defined(__AVR__)
/* The common skip0 update in 32 bits (|g * M| <= 2**30, 1 <= n <= 31, so |w - delta| < 2**31): the
 * draw advances by one addition; 16x16->32 products when |g| < 2**15 (narrow) and byte-first
 * shifts (8-bit cores); a function of its own so that the loop keeps its values in registers.
 * grad gets the exact new values (for a rescale); returns max |w - delta| over the changed
 * weights when one left the int8 range, else at most 127. */
TT_NOINLINE static uint32_t skip0_fast_s8(int8_t *weight, int32_t *grad, size_t count, int32_t m, uint8_t n,
                                          uint32_t draw, uint8_t narrow)
{
    uint32_t amax = 0;
    uint8_t sh = (uint8_t)(32u - n);
    size_t i;
    for (i = 0; i < count; ++i, draw += (uint32_t)TT_GOLDEN32) {
        int32_t g = grad[i], nw = weight[i];
        if (g != 0) { /* a zero gradient leaves its weight as it is, whatever the draw */
            int32_t p = narrow ? mul_s16(g, m) : g * m;
            uint32_t q = sr_mag31(tt_mag32(p), n, sh, draw);
            nw = p < 0 ? nw + (int32_t)q : nw - (int32_t)q;
            if ((uint32_t)(nw + 127) > 254u) {
                uint32_t a = tt_mag32(nw);
                amax = a > amax ? a : amax;
                weight[i] = (int8_t)(nw > 0 ? 127 : -127);
            } else {
                weight[i] = (int8_t)nw;
            }
        }
        grad[i] = nw;
    }
    return amax;
}
#endif

#if defined(__AVR__)
/* AVR: the skip0 loop without a variable shift or a 32-bit multiply. With sh = 32 - n = 8 * sb + r,
 * the stochastic step q = (|g| * M + (draw >> sh)) >> n is the high word of the 64-bit sum
 * (|g| * M << sh) + draw (the low sh bits of the product are 0, so the low bits of the draw never
 * carry): q = hi + carry(lo + draw) with hi:lo = (|g| * (M << r)) << 8 * sb. The product
 * |g| * (M << r) < 2**15 * 2**22 is formed in five bytes from six 8x8->16 MULs and the shift by
 * sb whole bytes picks registers. For |g| < 2**15, 2**14 <= M < 2**15, 1 <= n <= 31. */
typedef struct {
    int8_t *w;       /* the next weight */
    int32_t *g;      /* its int32 gradient (gets the new value when out of range, written by the
                      * assembly) */
    uint16_t count;  /* elements left (> 0 on entry) */
    uint32_t draw;   /* its draw */
    avr_mshift_t ms;
} avr_skip0_t;

/* Runs the loop until count reaches 0 (returns 0) or a new value leaves [-127, 127] (returns 1:
 * that value is in g[-1], w[-1] is -128, the state is at the next element). The new values in
 * range are stored in w only. Registers: Z w, Y g, X count, r16-r19 draw, r2-r4 M << r, r5 zero,
 * r6-r10 product, r11 weight, r12 its sign, r20 sb, r21 sign of g, r22-r25 |g| then q then the
 * new value, r14:r15 the state. */
uint8_t avr_skip0_run(avr_skip0_t *s);
__asm__(
    ".text\n"
    ".type avr_skip0_run, @function\n"
    "avr_skip0_run:\n\t"
    "push r2\n\tpush r3\n\tpush r4\n\tpush r5\n\tpush r6\n\tpush r7\n\tpush r8\n\tpush r9\n\t"
    "push r10\n\tpush r11\n\tpush r12\n\tpush r14\n\tpush r15\n\tpush r16\n\tpush r17\n\t"
    "push r28\n\tpush r29\n\t"
    "movw r14, r24\n\t"
    "movw r26, r24\n\t"
    "ld r30, X+\n\tld r31, X+\n\tld r28, X+\n\tld r29, X+\n\tld r24, X+\n\tld r25, X+\n\t"
    "ld r16, X+\n\tld r17, X+\n\tld r18, X+\n\tld r19, X+\n\tld r2, X+\n\tld r3, X+\n\tld r4, X+\n\t"
    "ld r20, X\n\t"
    "movw r26, r24\n\t"
    "clr r5\n"
    ".Lsk_loop:\n\t"
    "ldd r22, Y+0\n\t"
    "ldd r23, Y+1\n\t"
    "mov r21, r23\n\t"
    "or r23, r22\n\t"
    "brne .Lsk_nonzero\n\t"
    "rjmp .Lsk_next\n" /* zero gradient: the weight stays */
    ".Lsk_nonzero:\n\t"
    "ld r11, Z\n\t"
    "mov r12, r11\n\t"
    "lsl r12\n\t"
    "sbc r12, r12\n\t"
    "mov r23, r21\n\t"
    "sbrs r21, 7\n\t"
    "rjmp .Lsk_abs\n\t"
    "com r23\n\t"
    "neg r22\n\t"
    "sbci r23, 0xFF\n"
    ".Lsk_abs:\n\t"
    AVR_SR_STEP(".Lsk")
    ".Lsk_apply:\n\t"
    /* positive gradient: w - q (q negated, then w added); negative: w + q */
    "sbrc r21, 7\n\t"
    "rjmp .Lsk_add\n\t"
    "com r25\n\tcom r24\n\tcom r23\n\tneg r22\n\tsbci r23, 0xFF\n\tsbci r24, 0xFF\n\tsbci r25, 0xFF\n"
    ".Lsk_add:\n\t"
    "add r22, r11\n\tadc r23, r12\n\tadc r24, r12\n\tadc r25, r12\n\t"
    /* in [-127, 127]: the three high bytes repeat bit 7 of the low one, which is not 0x80 */
    "mov r0, r22\n\t"
    "lsl r0\n\t"
    "sbc r0, r0\n\t"
    "cp r23, r0\n\t"
    "brne .Lsk_out\n\t"
    "cp r24, r0\n\t"
    "brne .Lsk_out\n\t"
    "cp r25, r0\n\t"
    "brne .Lsk_out\n\t"
    "cpi r22, 0x80\n\t"
    "breq .Lsk_out\n\t"
    "st Z, r22\n"
    ".Lsk_next:\n\t"
    "adiw r28, 4\n\t"
    "adiw r30, 1\n\t"
    "subi r16, 0x47\n\tsbci r17, 0x86\n\tsbci r18, 0xC8\n\tsbci r19, 0x61\n\t" /* + 0x9E3779B9 */
    "sbiw r26, 1\n\t"
    "breq .Lsk_done\n\t"
    "rjmp .Lsk_loop\n"
    /* out of range: g gets the value, the weight the mark -128 */
    ".Lsk_out:\n\t"
    "st Y+, r22\n\tst Y+, r23\n\tst Y+, r24\n\tst Y+, r25\n\t"
    "ldi r22, 0x80\n\t"
    "st Z, r22\n\t"
    "adiw r30, 1\n\t"
    "subi r16, 0x47\n\tsbci r17, 0x86\n\tsbci r18, 0xC8\n\tsbci r19, 0x61\n\t"
    "sbiw r26, 1\n\t"
    "ldi r22, 1\n\t"
    "rjmp .Lsk_save\n"
    ".Lsk_done:\n\t"
    "ldi r22, 0\n"
    ".Lsk_save:\n\t"
    "movw r24, r26\n\t"
    "movw r26, r14\n\t"
    "st X+, r30\n\tst X+, r31\n\tst X+, r28\n\tst X+, r29\n\tst X+, r24\n\tst X+, r25\n\t"
    "st X+, r16\n\tst X+, r17\n\tst X+, r18\n\tst X, r19\n\t"
    "mov r24, r22\n\t"
    "clr r1\n\t"
    "pop r29\n\tpop r28\n\tpop r17\n\tpop r16\n\tpop r15\n\tpop r14\n\tpop r12\n\t"
    "pop r11\n\tpop r10\n\tpop r9\n\tpop r8\n\tpop r7\n\tpop r6\n\tpop r5\n\tpop r4\n\tpop r3\n\tpop r2\n\t"
    "ret\n"
    ".size avr_skip0_run, .-avr_skip0_run\n");

/* avr_skip0_run over the state's elements (count > 0); returns max |new value| over the values
 * that left [-127, 127] (0: none left it) */
__attribute__((always_inline)) static inline uint32_t avr_skip0_all(avr_skip0_t *s)
{
    uint32_t amax = 0;
    while (avr_skip0_run(s)) {
        uint32_t a = tt_mag32(s->g[-1]);
        amax = a > amax ? a : amax;
        if (s->count == 0) {
            break;
        }
    }
    return amax;
}

/* After avr_skip0_run left a value out of range (rare): g gets every new value (for the rescale),
 * the marked weights saturate. A weight of -128 with a zero gradient (outside the domain,
 * unchanged) has g == 0, a marked one |g| > 127. */
static void avr_skip0_settle(int8_t *weight, int32_t *grad, size_t count)
{
    size_t i;
    for (i = 0; i < count; ++i) {
        if (weight[i] == -128 && grad[i] != 0) {
            weight[i] = (int8_t)(grad[i] > 0 ? 127 : -127);
        } else {
            grad[i] = weight[i];
        }
    }
}

/* skip0_fast_s8 for |g| < 2**15 (grad holds the new values only when one left the range: the
 * caller reads them only then) */
TT_NOINLINE static uint32_t skip0_avr_s8(int8_t *weight, int32_t *grad, size_t count, int32_t m, uint8_t n,
                                         uint32_t draw)
{
    avr_skip0_t s;
    uint32_t amax;
    if (count == 0) {
        return 0;
    }
    s.w = weight;
    s.g = grad;
    s.count = (uint16_t)count;
    s.draw = draw;
    avr_mshift_init(&s.ms, m, n);
    amax = avr_skip0_all(&s);
    if (amax > 127u) {
        avr_skip0_settle(weight, grad, count);
    }
    return amax;
}

/* Rows of the gradient err x^T of a batch-1 dense layer: zero_rows 0 forms g[i, :] = err[i] * x
 * for the rows whose error is not zero, zero_rows 1 writes zeros into the other rows. */
static void avr_outer_rows(int32_t *grad, const int8_t *err, const int8_t *x, size_t rows, size_t cols,
                           uint8_t zero_rows)
{
    size_t i, k;
    for (i = 0; i < rows; ++i, grad += cols) {
        if (err[i] != 0) {
            if (!zero_rows) {
                tt_outer_row_avr(grad, err[i], x, cols);
            }
        } else if (zero_rows) {
            for (k = 0; k < cols; ++k) {
                grad[k] = 0;
            }
        }
    }
}

/* The batch-1 dense update with its gradient g[i, k] = err[i] * x[k] formed on the way (|g| <= 2**14):
 * the product |g| * (M << r) of avr_skip0_run taken as |x[k]| * E with E = |err[i]| * (M << r)
 * formed once per row (E < 2**7 * 2**22), four MULs per weight; the sign of g from the sign of
 * x[k] and of err[i] (the T flag); the rows with a zero error skipped whole (w += cols, draw +=
 * cols * GOLDEN32), all rows in one call. The state (offsets fixed: the assembly reads them): */
typedef struct {
    int8_t *w;          /*  0: the next weight */
    const int8_t *x;    /*  2: its input */
    const int8_t *err;  /*  4: the error of its row (not 0) */
    uint16_t rows;      /*  6: rows left, that one included (> 0) */
    uint16_t k;         /*  8: weights left in that row (0: the row is done) */
    uint32_t draw;      /* 10: the next weight's draw */
    avr_mshift_t ms;    /* 14: M << r (three bytes), sb */
    const int8_t *x0;   /* 18: the inputs of the layer */
    uint16_t cols;      /* 20: weights per row (> 0) */
    uint32_t row_step;  /* 22: cols * GOLDEN32 */
    int32_t out;        /* 26: the new value that left the range */
} avr_outer_t;

/* the offsets the assembly uses (AVR aligns nothing) */
typedef char avr_outer_layout_ok[(sizeof(avr_outer_t) == 30u && sizeof(avr_mshift_t) == 4u) ? 1 : -1];

/* Runs until the last row is done (returns 0) or a new value leaves [-127, 127] (returns 1: the
 * value in out, w[-1] is -128, the state at the next weight). New values in range are stored in w
 * only. Registers: Z w, Y x, X weights left in the row, r16-r19 draw, r2-r5 E, r6-r10 the product,
 * r11 weight then new value (low byte), r12 its high byte, r13 zero, r14:r15 the state, r20 sb,
 * r21 sign of g (bit 7), r22-r25 |x| then q, T the sign of the row's error. */
uint8_t avr_outer_run(avr_outer_t *s);
__asm__(
    ".text\n"
    ".type avr_outer_run, @function\n"
    "avr_outer_run:\n\t"
    "push r2\n\tpush r3\n\tpush r4\n\tpush r5\n\tpush r6\n\tpush r7\n\tpush r8\n\tpush r9\n\t"
    "push r10\n\tpush r11\n\tpush r12\n\tpush r13\n\tpush r14\n\tpush r15\n\tpush r16\n\tpush r17\n\t"
    "push r28\n\tpush r29\n\t"
    "movw r14, r24\n\t"
    "movw r26, r24\n\t"
    "clr r13\n\t"
    "ld r30, X+\n\tld r31, X+\n\tld r28, X+\n\tld r29, X+\n\t"
    "ld r22, X+\n\tld r23, X+\n\t"            /* err */
    "adiw r26, 2\n\t"
    "ld r24, X+\n\tld r25, X+\n\t"            /* k */
    "ld r16, X+\n\tld r17, X+\n\tld r18, X+\n\tld r19, X+\n\t"
    "adiw r26, 3\n\t"
    "ld r20, X\n\t"
    "sbiw r24, 0\n\t"
    "brne 1f\n\t"
    "rjmp .Lo_row_end\n"
    "1:\n\t"
    "movw r26, r22\n\t"
    "ld r22, X\n"
    /* a row: r22 its error (not 0), r24:r25 the weights left; E = |e| * (M << r) */
    ".Lo_set_e:\n\t"
    "movw r26, r14\n\t"
    "adiw r26, 14\n\t"
    "ld r6, X+\n\tld r7, X+\n\tld r8, X\n\t"
    "bst r22, 7\n\t"
    "sbrc r22, 7\n\t"
    "neg r22\n\t"
    "mul r22, r6\n\tmovw r2, r0\n\t"
    "mul r22, r8\n\tmovw r4, r0\n\t"
    "mul r22, r7\n\tadd r3, r0\n\tadc r4, r1\n\tadc r5, r13\n\t"
    "movw r26, r24\n"
    ".Lo_loop:\n\t"
    "ld r22, Y+\n\t"
    "tst r22\n\t"
    "breq .Lo_next\n\t" /* zero input: the weight stays */
    "ld r11, Z\n\t"
    "mov r21, r22\n\t"
    "brtc 1f\n\t"
    "com r21\n"
    "1:\n\t"
    "sbrc r22, 7\n\t"
    "neg r22\n\t"
    /* r10:r6 = |x| * E */
    "mul r22, r2\n\tmovw r6, r0\n\t"
    "mul r22, r4\n\tmovw r8, r0\n\t"
    "mul r22, r3\n\tadd r7, r0\n\tadc r8, r1\n\tadc r9, r13\n\t"
    "mul r22, r5\n\tadd r9, r0\n\tadc r1, r13\n\tmov r10, r1\n\t"
    /* q = hi + carry(lo + draw), hi:lo = product << 8 * sb */
    "cpi r20, 1\n\t"
    "brcc .Lo_sb123\n\t"
    "add r6, r16\n\tadc r7, r17\n\tadc r8, r18\n\tadc r9, r19\n\t"
    "mov r22, r10\n\tadc r22, r13\n" /* < 2**4 + 1 */
    /* q < 2**8 in r22: the new value in 16 bits */
    ".Lo_apply8:\n\t"
    "mov r12, r11\n\tlsl r12\n\tsbc r12, r12\n\t"
    "sbrc r21, 7\n\t"
    "rjmp .Lo_add\n\t"
    "sub r11, r22\n\tsbc r12, r13\n\t" /* positive gradient: w - q */
    "rjmp .Lo_check\n"
    ".Lo_add:\n\t"
    "add r11, r22\n\tadc r12, r13\n" /* negative: w + q */
    ".Lo_check:\n\t"
    /* in [-127, 127]: the high byte repeats bit 7 of the low one, which is not 0x80 */
    "mov r0, r11\n\tlsl r0\n\tsbc r0, r0\n\t"
    "cp r12, r0\n\t"
    "brne .Lo_out16\n\t"
    "ldi r22, 0x80\n\t"
    "cp r11, r22\n\t"
    "breq .Lo_out16\n\t"
    "st Z, r11\n"
    ".Lo_next:\n\t"
    "adiw r30, 1\n\t"
    "subi r16, 0x47\n\tsbci r17, 0x86\n\tsbci r18, 0xC8\n\tsbci r19, 0x61\n\t" /* + 0x9E3779B9 */
    "sbiw r26, 1\n\t"
    "brne .Lo_loop\n\t"
    "rjmp .Lo_row_end\n"
    ".Lo_out16:\n\t"
    "mov r22, r11\n\tmov r23, r12\n\tmov r24, r12\n\tlsl r24\n\tsbc r24, r24\n\tmov r25, r24\n"
    /* out of range: out gets the value, the weight the mark -128 */
    ".Lo_out:\n\t"
    "movw r0, r26\n\t"
    "movw r26, r14\n\t"
    "adiw r26, 26\n\t"
    "st X+, r22\n\tst X+, r23\n\tst X+, r24\n\tst X, r25\n\t"
    "movw r26, r0\n\t"
    "ldi r22, 0x80\n\t"
    "st Z+, r22\n\t"
    "subi r16, 0x47\n\tsbci r17, 0x86\n\tsbci r18, 0xC8\n\tsbci r19, 0x61\n\t"
    "sbiw r26, 1\n\t"
    "ldi r22, 1\n\t"
    "rjmp .Lo_save\n"
    /* q >= 2**8 (sb 1-3): out of range whatever the weight */
    ".Lo_sb123:\n\t"
    "cpi r20, 2\n\t"
    "brcc .Lo_sb23\n\t"
    "add r6, r17\n\tadc r7, r18\n\tadc r8, r19\n\t"
    "mov r22, r9\n\tmov r23, r10\n\tadc r22, r13\n\tadc r23, r13\n\t"
    "ldi r24, 0\n\tldi r25, 0\n\t"
    "rjmp .Lo_high\n"
    ".Lo_sb23:\n\t"
    "breq .Lo_sb2\n\t"
    "add r6, r19\n\t"
    "mov r22, r7\n\tmov r23, r8\n\tmov r24, r9\n\tmov r25, r10\n\t"
    "adc r22, r13\n\tadc r23, r13\n\tadc r24, r13\n\tadc r25, r13\n\t"
    "rjmp .Lo_high\n"
    ".Lo_sb2:\n\t"
    "add r6, r18\n\tadc r7, r19\n\t"
    "mov r22, r8\n\tmov r23, r9\n\tmov r24, r10\n\t"
    "adc r22, r13\n\tadc r23, r13\n\tadc r24, r13\n\t"
    "ldi r25, 0\n"
    ".Lo_high:\n\t"
    "mov r0, r23\n\tor r0, r24\n\tor r0, r25\n\t"
    "brne 1f\n\t"
    "rjmp .Lo_apply8\n"
    "1:\n\t"
    /* the new value w - q or w + q in 32 bits */
    "mov r12, r11\n\tlsl r12\n\tsbc r12, r12\n\t"
    "sbrc r21, 7\n\t"
    "rjmp 2f\n\t"
    "com r25\n\tcom r24\n\tcom r23\n\tneg r22\n\tsbci r23, 0xFF\n\tsbci r24, 0xFF\n\tsbci r25, 0xFF\n"
    "2:\n\t"
    "add r22, r11\n\tadc r23, r12\n\tadc r24, r12\n\tadc r25, r12\n\t"
    "rjmp .Lo_out\n"
    /* the row is done: the next row whose error is not 0 */
    ".Lo_row_end:\n\t"
    "movw r26, r14\n\t"
    "adiw r26, 4\n\t"
    "ld r22, X+\n\tld r23, X+\n\tld r24, X+\n\tld r25, X\n" /* err, rows */
    ".Lo_skip:\n\t"
    "subi r22, 0xFF\n\tsbci r23, 0xFF\n\t"
    "sbiw r24, 1\n\t"
    "breq .Lo_finished\n\t"
    "movw r26, r22\n\t"
    "ld r21, X\n\t"
    "tst r21\n\t"
    "brne .Lo_row_go\n\t"
    /* a zero error: the row's weights stay, w += cols, draw += cols * GOLDEN32 */
    "movw r26, r14\n\t"
    "adiw r26, 20\n\t"
    "ld r0, X+\n\tadd r30, r0\n\tld r0, X+\n\tadc r31, r0\n\t"
    "ld r0, X+\n\tadd r16, r0\n\tld r0, X+\n\tadc r17, r0\n\tld r0, X+\n\tadc r18, r0\n\t"
    "ld r0, X\n\tadc r19, r0\n\t"
    "rjmp .Lo_skip\n"
    ".Lo_row_go:\n\t"
    "movw r26, r14\n\t"
    "adiw r26, 4\n\t"
    "st X+, r22\n\tst X+, r23\n\tst X+, r24\n\tst X+, r25\n\t"
    "adiw r26, 10\n\t"
    "ld r28, X+\n\tld r29, X+\n\tld r24, X+\n\tld r25, X\n\t" /* x = x0, k = cols */
    "mov r22, r21\n\t"
    "rjmp .Lo_set_e\n"
    ".Lo_finished:\n\t"
    "clr r26\n\tclr r27\n\t"
    "ldi r22, 0\n"
    ".Lo_save:\n\t"
    "movw r24, r26\n\t"
    "movw r26, r14\n\t"
    "st X+, r30\n\tst X+, r31\n\tst X+, r28\n\tst X+, r29\n\t"
    "adiw r26, 4\n\t"
    "st X+, r24\n\tst X+, r25\n\t"
    "st X+, r16\n\tst X+, r17\n\tst X+, r18\n\tst X, r19\n\t"
    "mov r24, r22\n\t"
    "clr r1\n\t"
    "pop r29\n\tpop r28\n\tpop r17\n\tpop r16\n\tpop r15\n\tpop r14\n\tpop r13\n\tpop r12\n\t"
    "pop r11\n\tpop r10\n\tpop r9\n\tpop r8\n\tpop r7\n\tpop r6\n\tpop r5\n\tpop r4\n\tpop r3\n\tpop r2\n\t"
    "ret\n"
    ".size avr_outer_run, .-avr_outer_run\n");

/* skip0_avr_s8 of the gradient err x^T (|g| <= 2**14), formed on the way (avr_outer_run); grad
 * gets the values that left the range only (the caller reads grad only then, after the rare pass
 * below). */
TT_NOINLINE static uint32_t skip0_avr_outer_s8(int8_t *weight, int32_t *grad, size_t rows, size_t cols,
                                               const int8_t *err, const int8_t *x, int32_t m, uint8_t n,
                                               uint32_t draw)
{
    avr_outer_t s;
    uint32_t amax = 0, row_step = (uint32_t)cols * (uint32_t)TT_GOLDEN32;
    size_t i, k;
    for (i = 0; i < rows && err[i] == 0; ++i, draw += row_step) {
    }
    if (i == rows) {
        return 0;
    }
    s.w = weight + i * cols;
    s.x = x;
    s.err = err + i;
    s.rows = (uint16_t)(rows - i);
    s.k = (uint16_t)cols;
    s.draw = draw;
    avr_mshift_init(&s.ms, m, n);
    s.x0 = x;
    s.cols = (uint16_t)cols;
    s.row_step = row_step;
    while (avr_outer_run(&s)) {
        uint32_t a = tt_mag32(s.out);
        amax = a > amax ? a : amax;
        grad[(size_t)(s.w - weight) - 1u] = s.out;
    }
    if (amax > 127u) {
        /* rare: every new value into grad, the marked weights saturated. A changed weight (error
         * and input not zero) is -128 only when marked: new values in range are never -128. */
        int8_t *w = weight;
        int32_t *g = grad;
        for (i = 0; i < rows; ++i) {
            for (k = 0; k < cols; ++k, ++w, ++g) {
                if (*w == -128 && err[i] != 0 && x[k] != 0) {
                    *w = (int8_t)(*g > 0 ? 127 : -127);
                } else {
                    *g = *w;
                }
            }
        }
    }
    return amax;
}
#endif

/* tt_sgd_update_weight_skip0_s8; on AVR with err != NULL (tt_sgd_update_weight_outer_s8, the same
 * function) the gradient is err x^T (count / cols rows of cols), formed here. */
static tt_status_t skip0_update(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint32_t key, const int8_t *err,
                                const int8_t *x, size_t cols)
{
    tt_multiplier_t m, mult;
    tt_scale_t new_scale;
    uint64_t amax = 0;
    uint32_t gmax, span = 2u * 127u;
    uint8_t n, fast, wide, pass, over = 0, changed = 0;
    size_t i;
    tt_status_t st;
    if (w_scale == NULL || cfg == NULL || (count && (weight == NULL || grad == NULL))) {
        return TT_ERR_ARG;
    }
#if defined(__AVR__)
    size_t rows = 0;
    if (err != NULL) {
        /* one division (a libgcc call on AVR) for the rows and the check */
        rows = cols == 0 ? 0u : count / cols;
        if (x == NULL || cols == 0 || rows * cols != count || count > 32767u) {
            return TT_ERR_ARG;
        }
    }
#endif
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
#if defined(__AVR__)
    if (err != NULL && (mult.n < 1 || mult.n > 31)) {
        /* the general path below, on the gradient in full */
        avr_outer_rows(grad, err, x, rows, cols, 0u);
        avr_outer_rows(grad, err, x, rows, cols, 1u);
        err = NULL;
    }
    gmax = err != NULL ? 16384u : tt_max_abs_s32(grad, count); /* |err * x| <= 2**14 */
#else
    (void)err;
    (void)x;
    (void)cols;
    gmax = tt_max_abs_s32(grad, count);
#endif
    n = (uint8_t)mult.n;
    /* |g * M| <= 2**30 and 1 <= n <= 31: 32-bit arithmetic gives the general result (M < 2**15:
     * |g| < 2**15 needs no division) */
#if defined(__AVR__)
    /* AVR: the assembly loop for |g| < 2**15; larger gradients take the general path below (the
     * same results; less code in the 32 KB of flash) */
    fast = mult.n >= 1 && mult.n <= 31 && gmax <= 32767u;
#else
    fast = mult.n >= 1 && mult.n <= 31 && (gmax <= 32767u || gmax <= ((uint32_t)1 << 30) / (uint32_t)mult.m);
#endif
    /* deltas that may reach 2**31: two passes over the exact int64 new values (the range, then the
     * writes), nothing stored in between */
    wide = !fast && wide_delta(gmax, mult);
    if (fast) {
#if defined(__AVR__)
        uint32_t a = err != NULL ? skip0_avr_outer_s8(weight, grad, rows, cols, err, x, mult.m, n, key)
                                 : skip0_avr_s8(weight, grad, count, mult.m, n, key);
#else
        uint32_t a = skip0_fast_s8(weight, grad, count, mult.m, n, key, gmax <= 32767u);
#endif
        over = a > 127u;
        amax = a;
    }
    for (pass = wide ? 0u : 1u; !fast && pass < 2u; ++pass) {
        for (i = 0; i < count; ++i) {
            int32_t g = grad[i];
            int64_t nw = weight[i];
            if (g != 0) {
                nw = tt_sub_wrap64(nw, tt_apply_multiplier_scalar(g, mult, TT_ROUND_STOCHASTIC, key, (uint32_t)i, -1));
            }
            if (pass == 0u) {
                uint64_t a = tt_mag64(nw);
                amax = a > amax ? a : amax;
            } else if (wide) {
                weight[i] = (int8_t)(changed ? tt_grid_rescale_one(nw, m, 127) : tt_clip64(nw, 127));
            } else {
                if ((uint64_t)(nw + 127) > span) {
                    uint64_t a = tt_mag64(nw);
                    over = 1;
                    amax = a > amax ? a : amax;
                }
                weight[i] = (int8_t)tt_clip64(nw, 127);
                grad[i] = (int32_t)nw; /* |delta| < TT_WIDE_DELTA: the exact new value, for a rescale */
            }
        }
        if (pass == 0u && amax > 127u && cfg->weight_rescale) {
            st = tt_choose_grid_rescale(amax, *w_scale, 8, (tt_scale_mode_t)cfg->mode, &changed, &new_scale, &m);
            if (st != TT_OK) {
                changed = 0; /* defined fallback: the weights saturate */
            }
        }
    }
    if (wide) {
        if (changed) {
            *w_scale = new_scale;
        }
        return st;
    }
    if (!over || !cfg->weight_rescale) {
        return TT_OK; /* in range, or saturated */
    }
    /* rare: the tensor outgrew its range; move every new value to a coarser grid scale */
    st = tt_choose_grid_rescale(amax, *w_scale, 8, (tt_scale_mode_t)cfg->mode, &changed, &new_scale, &m);
    if (st != TT_OK || !changed) {
        return st;
    }
    for (i = 0; i < count; ++i) {
        weight[i] = (int8_t)tt_grid_rescale_one(grad[i], m, 127);
    }
    *w_scale = new_scale;
    return TT_OK;
}

tt_status_t tt_sgd_update_weight_skip0_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                          tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint32_t key)
{
    return skip0_update(weight, w_scale, count, grad, grad_scale, cfg, key, NULL, NULL, 1u);
}

#if defined(__AVR__)
/* the same function: no call frame of its own on the stack of 2 KB */
tt_status_t tt_sgd_update_weight_outer_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                          tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint32_t key,
                                          const int8_t *err, const int8_t *x, size_t cols)
    __attribute__((alias("skip0_update")));
#endif
