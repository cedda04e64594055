/* tt_loss.c - integer softmax cross-entropy and MSE errors (mirrors tintin.ops.loss). */
#include "tt_ops.h"
#include "tt_internal.h"

/* Step 1 of the softmax: t = (q - max q) * s * log2(e) in Q16, clipped to >= TT_T_MIN_Q16.
 * mult = M * LOG2E_Q14 < 2**30 and |d| <= 255, so the product needs int64 (< 2**38). */
#if defined(__AVR__)
static int32_t log2_domain_general(int16_t d, int32_t mult, int32_t shift);

/* AVR: the common case here, the general one (64-bit calls, saved registers) in a function of its own */
static int32_t log2_domain_q16(int16_t d, int32_t mult, int32_t shift)
{
    /* the common case without 64-bit arithmetic: d in [-255, 0] and 16 <= shift <= 31; the product
     * |d| * mult < 2**38 in two 16x8 halves hi * 2**16 + lo */
    if (d <= 0 && d >= -255 && shift >= 16 && shift <= 31) {
        /* no call (no registers to save) and no shift loop over 32 bits: with X = hi * 2**16 + lo and
         * Y = floor(X / 2**16) = hi + (lo >> 16) < 2**23, floor((X + 2**(s-1)) / 2**s) =
         * (z + 1) >> 1 for z = floor(X / 2**(s-1)): 2 * Y + bit 15 of lo when s = 16, else
         * Y >> (s - 17) (a byte move and at most seven bits) */
        uint8_t ad = (uint8_t)-d, k = (uint8_t)(shift - 17);
        uint32_t lo = tt_mul_u16_avr((uint16_t)mult, ad), hi = tt_mul_u16_avr((uint16_t)((uint32_t)mult >> 16), ad);
        uint32_t z = hi + (lo >> 16);
        int32_t q;
        if (shift == 16) {
            z = (z << 1) | ((lo >> 15) & 1u);
        } else {
            z = tt_shr32_below16_avr(z, k);
        }
        q = -(int32_t)((z + 1u) >> 1);
        return q > TT_T_MIN_Q16 ? q : (int32_t)TT_T_MIN_Q16;
    }
    return log2_domain_general(d, mult, shift);
}

TT_NOINLINE static int32_t log2_domain_general(int16_t d, int32_t mult, int32_t shift)
#else
static int32_t log2_domain_q16(int16_t d, int32_t mult, int32_t shift)
#endif
{
    int64_t prod, t;
    prod = (int64_t)d * mult;
    if (shift >= 0) {
        t = shift > 62 ? 0 : tt_shift_round_nearest_s64(prod, (uint8_t)shift);
    } else {
        int32_t s = -shift;
        /* floor(T_MIN / 2**s) of the negative bound, without shifting a negative number */
        int64_t floor_min = s >= 40 ? -1 : -(int64_t)((((uint64_t)-TT_T_MIN_Q16) + ((uint64_t)1 << s) - 1u) >> s);
        t = prod > floor_min ? prod : floor_min;
        t = tt_shl64_wrap(t, (uint8_t)(s > 64 ? 64 : s));
    }
    return t > TT_T_MIN_Q16 ? (int32_t)t : (int32_t)TT_T_MIN_Q16;
}

/* Step 2: 2**t in Q15 for t in [TT_T_MIN_Q16, 0]: EXP2(frac(t)) >> -floor(t). */
static uint32_t exp2_q15(int32_t t)
{
    uint32_t ut = (uint32_t)(t + 32L * 65536L); /* in [2**16, 2**21] */
    /* tt_shr32: byte moves first on AVR (a plain variable shift is one bit per turn there) */
    return tt_shr32(tt_exp2_frac_q15((uint16_t)(ut & 0xFFFFu)), (uint8_t)(32u - (ut >> 16)));
}

typedef struct {
    int32_t mult;  /* M * LOG2E_Q14 */
    int32_t shift; /* n + 14 - 16 */
} log2e_scale_t;

static tt_status_t log2e_scale(tt_scale_t logit_scale, log2e_scale_t *out)
{
    tt_multiplier_t m;
    tt_status_t st = tt_ratio_multiplier(logit_scale, &m);
    if (st != TT_OK) {
        return st;
    }
    out->mult = m.m * (int32_t)TT_LOG2E_Q14;
    out->shift = m.n + 14 - 16;
    return TT_OK;
}

static int8_t row_max(const int8_t *q, size_t classes)
{
    int8_t best = q[0];
    size_t j;
    for (j = 1; j < classes; ++j) {
        if (q[j] > best) {
            best = q[j];
        }
    }
    return best;
}

#if defined(__AVR__)
/* num / den for a quotient below 2**16 and den < 2**31: sixteen steps of long division (libgcc's
 * 32-bit division takes thirty-two); num >> 16 < den and 2 * r < 2**32, so the remainder never
 * needs 33 bits */
static uint16_t div_q16(uint32_t num, uint32_t den)
{
    /* r:lo = num; each step shifts r:lo left by one, subtracts den from r when it fits and shifts
     * the quotient bit (1 when it fitted) into lo from the right: after 16 steps lo is the
     * quotient (about 14 cycles a step) */
    uint16_t lo = (uint16_t)num;
    uint32_t r = num >> 16;
    uint8_t i = 16;
    __asm__("1:\n\t"
            "lsl %A[lo]\n\t"
            "rol %B[lo]\n\t"
            "rol %A[r]\n\t"
            "rol %B[r]\n\t"
            "rol %C[r]\n\t"
            "rol %D[r]\n\t"
            "cp %A[r], %A[d]\n\t"
            "cpc %B[r], %B[d]\n\t"
            "cpc %C[r], %C[d]\n\t"
            "cpc %D[r], %D[d]\n\t"
            "brcs 2f\n\t"
            "sub %A[r], %A[d]\n\t"
            "sbc %B[r], %B[d]\n\t"
            "sbc %C[r], %C[d]\n\t"
            "sbc %D[r], %D[d]\n\t"
            "ori %A[lo], 1\n"
            "2:\n\t"
            "dec %[i]\n\t"
            "brne 1b"
            : [lo] "+d"(lo), [r] "+r"(r), [i] "+r"(i)
            : [d] "r"(den));
    return lo;
}
#endif

/* Steps 1-3 for one row: prob[j] = (e_j * 2**15 + total / 2) / total, total = sum e_j.
 * e_j <= 32768 and classes < 2**16, so total < 2**31 and e_j << 15 plus total / 2 < 2**31. */
static uint32_t softmax_row(const int8_t *q, size_t classes, const log2e_scale_t *ls, int32_t *prob)
{
    int8_t qmax = row_max(q, classes);
    uint32_t total = 0;
    size_t j;
    for (j = 0; j < classes; ++j) {
        uint32_t e = exp2_q15(log2_domain_q16((int16_t)(q[j] - qmax), ls->mult, ls->shift));
        prob[j] = (int32_t)e;
        total += e;
    }
    for (j = 0; j < classes; ++j) {
#if defined(__AVR__)
        prob[j] = (int32_t)div_q16(((uint32_t)prob[j] << 15) + (total >> 1), total);
#else
        prob[j] = (int32_t)((((uint32_t)prob[j] << 15) + (total >> 1)) / total);
#endif
    }
    return total;
}

tt_status_t tt_softmax_q15(const int8_t *logits, tt_scale_t logit_scale, size_t batch, size_t classes,
                           int32_t *prob)
{
    log2e_scale_t ls;
    tt_status_t st;
    size_t b;
    if (batch && (logits == NULL || prob == NULL)) {
        return TT_ERR_ARG;
    }
    if (classes == 0 || tt_size_above(classes, 65535UL)) {
        return TT_ERR_SHAPE;
    }
    st = log2e_scale(logit_scale, &ls);
    if (st != TT_OK) {
        return st;
    }
    for (b = 0; b < batch; ++b) {
        softmax_row(logits + b * classes, classes, &ls, prob + b * classes);
    }
    return TT_OK;
}

tt_status_t tt_softmax_xent_error_s8(const int8_t *logits, tt_scale_t logit_scale, const uint16_t *labels,
                                     size_t batch, size_t classes, tt_scale_mode_t mode, int32_t *scratch,
                                     int8_t *err, tt_scale_t *err_scale, int64_t *loss_total)
{
    return tt_softmax_xent_error_round_s8(logits, logit_scale, labels, batch, classes, mode, TT_ROUND_NEAREST, 0,
                                          scratch, err, err_scale, loss_total);
}

tt_status_t tt_softmax_xent_error_round_s8(const int8_t *logits, tt_scale_t logit_scale, const uint16_t *labels,
                                           size_t batch, size_t classes, tt_scale_mode_t mode,
                                           tt_rounding_t rounding, uint32_t key, int32_t *scratch, int8_t *err,
                                           tt_scale_t *err_scale, int64_t *loss_total)
{
    log2e_scale_t ls;
    tt_status_t st;
    int64_t loss = 0;
    size_t b;
    if (err_scale == NULL || loss_total == NULL ||
        (batch && (logits == NULL || labels == NULL || scratch == NULL || err == NULL))) {
        return TT_ERR_ARG;
    }
    if (classes == 0 || tt_size_above(classes, 65535UL)) {
        return TT_ERR_SHAPE;
    }
    for (b = 0; b < batch; ++b) {
        if (labels[b] >= classes) {
            return TT_ERR_ARG;
        }
    }
    st = log2e_scale(logit_scale, &ls);
    if (st != TT_OK) {
        return st;
    }
    for (b = 0; b < batch; ++b) {
        const int8_t *q = logits + b * classes;
        int32_t *row = scratch + b * classes;
        uint16_t y = labels[b];
        uint32_t total = softmax_row(q, classes, &ls, row);
        int32_t t_label = log2_domain_q16((int16_t)(q[y] - row_max(q, classes)), ls.mult, ls.shift);
        /* v = log2(total) - 15 - t_label in Q16: 0 <= v < 48 * 2**16 (total >= 2**15, t >= -31) */
        uint32_t v = (uint32_t)(tt_log2_q16(total) - (15L << 16) - t_label);
        /* (v * LN2_Q16 + 2**15) >> 16 in 32 bits: split v = hi * 2**16 + lo */
        uint32_t per_sample = (v >> 16) * (uint32_t)TT_LN2_Q16 + (((v & 0xFFFFu) * (uint32_t)TT_LN2_Q16 + 0x8000u) >> 16);
        row[y] -= 1L << 15;
        loss += per_sample;
    }
    *err_scale = (tt_scale_t){-15, 0, 0};
    *loss_total = loss;
    return tt_rescale_s32_to_s8(scratch, batch * classes, err_scale, mode, rounding, key, err);
}

tt_status_t tt_mse_error_s8(const int8_t *pred, tt_scale_t pred_scale, const int8_t *target,
                            tt_scale_t target_scale, size_t count, tt_scale_mode_t mode, int8_t *err,
                            tt_scale_t *err_scale, int64_t *loss_total, tt_scale_t *loss_scale)
{
    tt_multiplier_t mult;
    tt_rescale_t choice;
    tt_status_t st;
    uint64_t loss = 0;
    uint32_t amax = 0;
    uint8_t change, overflow = 0;
    size_t i;
    if (err_scale == NULL || loss_total == NULL || loss_scale == NULL ||
        (count && (pred == NULL || target == NULL || err == NULL))) {
        return TT_ERR_ARG;
    }
    st = tt_ratio_multiplier(tt_scale_div(target_scale, pred_scale), &mult);
    if (st != TT_OK) {
        return st;
    }
    /* pass 1: loss and range; |diff| <= 2**30 + 127 < 2**31 and diff**2 < 2**61 */
    for (i = 0; i < count; ++i) {
        int32_t aligned = (int32_t)tt_apply_multiplier_scalar(target[i], mult, TT_ROUND_NEAREST, 0, 0, 1L << 30);
        int32_t diff = pred[i] - aligned;
        uint32_t a = tt_mag32(diff);
        uint64_t sq = (uint64_t)a * a;
        if (a > amax) {
            amax = a;
        }
        /* loss <= INT64_MAX and sq < 2**62: the uint64 sum cannot wrap */
        loss += sq;
        if (loss > (uint64_t)INT64_MAX) {
            overflow = 1;
            loss = (uint64_t)INT64_MAX;
        }
    }
    /* pass 2: recompute each difference and write it rescaled (err may alias pred) */
    change = tt_choose_rescale(amax, 8, mode, &choice);
    for (i = 0; i < count; ++i) {
        int32_t aligned = (int32_t)tt_apply_multiplier_scalar(target[i], mult, TT_ROUND_NEAREST, 0, 0, 1L << 30);
        int32_t diff = pred[i] - aligned;
        err[i] = (int8_t)(change ? tt_rescale_apply(diff, &choice, 127, TT_ROUND_NEAREST, 0, 0) : diff);
    }
    *err_scale = change ? tt_rescaled_scale(pred_scale, &choice) : pred_scale;
    *loss_total = (int64_t)loss;
    loss_scale->S = (int16_t)(2 * (int32_t)pred_scale.S - 1);
    loss_scale->U = (int16_t)(2 * (int32_t)pred_scale.U);
    loss_scale->D = (int16_t)(2 * (int32_t)pred_scale.D);
    return overflow ? TT_ERR_OVERFLOW : TT_OK;
}
