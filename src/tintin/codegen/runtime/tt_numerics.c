/* tt_numerics.c - rounding, multipliers and rescaling (mirrors tintin.numerics). */
#define TT_SCALE_ARITHMETIC_DEFINITIONS /* the functions themselves, not the AVR inline forms */
#include "tt_internal.h"

/* ---- scales ------------------------------------------------------------------------------ */

tt_scale_t tt_scale_mul(tt_scale_t a, tt_scale_t b)
{
    tt_scale_t r;
    r.S = tt_exp16((int32_t)a.S + b.S);
    r.U = tt_exp16((int32_t)a.U + b.U);
    r.D = tt_exp16((int32_t)a.D + b.D);
    return r;
}

tt_scale_t tt_scale_div(tt_scale_t a, tt_scale_t b)
{
    tt_scale_t r;
    r.S = tt_exp16((int32_t)a.S - b.S);
    r.U = tt_exp16((int32_t)a.U - b.U);
    r.D = tt_exp16((int32_t)a.D - b.D);
    return r;
}

/* ---- random bits -------------------------------------------------------------------------- */

uint32_t tt_mix32(uint32_t x)
{
    return tt_mix32_inline(x);
}

uint32_t tt_draw_bits(uint32_t key, uint32_t index)
{
    /* weyl32: one addition per element when walked in order (see tintin.numerics.rounding) */
    return (uint32_t)(key + (uint32_t)(index * (uint32_t)TT_GOLDEN32));
}

void tt_stream_init(tt_stream_t *stream, uint32_t seed, uint32_t step)
{
    stream->seed = seed;
    stream->step = step;
}

#if defined(__AVR__)
/* AVR: the part of the key that depends on the seed and the step alone, kept for the last (seed,
 * step): a training step asks for one key per trained parameter, and each mix32 costs two 32-bit
 * multiplies (libgcc calls) on an 8-bit core. valid == 0: empty. */
static struct {
    uint32_t seed, step, inner;
    uint8_t valid;
} tt_stream_cache;
#endif

uint32_t tt_stream_key(const tt_stream_t *stream, uint32_t site)
{
#if defined(__AVR__)
    if (!tt_stream_cache.valid || tt_stream_cache.seed != stream->seed || tt_stream_cache.step != stream->step) {
        tt_stream_cache.seed = stream->seed;
        tt_stream_cache.step = stream->step;
        tt_stream_cache.inner = tt_mix32(tt_mix32(stream->seed) ^ stream->step);
        tt_stream_cache.valid = 1;
    }
    return tt_mix32(tt_stream_cache.inner ^ site);
#else
    return tt_mix32(tt_mix32(tt_mix32(stream->seed) ^ stream->step) ^ site);
#endif
}

void tt_stream_advance(tt_stream_t *stream)
{
    stream->step = (uint32_t)(stream->step + 1u);
}

/* ---- rounded shifts ---------------------------------------------------------------------- */
/* All modes round the magnitude and restore the sign. The s32 versions keep the arithmetic in
 * 32 bits for n <= 31 (|x| <= 2**31 and the rounding increment < 2**31, so the sum < 2**32). */

int32_t tt_shift_round_nearest_s32(int32_t x, uint8_t n)
{
    if (n == 0) {
        return x;
    }
    if (n > 31) {
        return (int32_t)tt_shift_round_nearest_s64(x, n);
    }
    return tt_rs32_nearest(x, n);
}

int64_t tt_shift_round_nearest_s64(int64_t x, uint8_t n)
{
    uint64_t q;
    if (n == 0) {
        return x;
    }
    if (n > 62) {
        return 0;
    }
    q = (tt_mag64(x) + ((uint64_t)1 << (n - 1))) >> n;
    return x < 0 ? -(int64_t)q : (int64_t)q;
}

int32_t tt_shift_round_stochastic_s32(int32_t x, uint8_t n, uint32_t key, uint32_t index)
{
    if (n == 0) {
        return x;
    }
    if (n > 31) {
        return (int32_t)tt_shift_round_stochastic_s64(x, n, key, index);
    }
    /* r: the top n bits of the draw, uniform in [0, 2**n); |x| + r < 2**32 */
    return tt_rs32_stochastic(x, n, tt_draw_bits(key, index));
}

int64_t tt_shift_round_stochastic_s64(int64_t x, uint8_t n, uint32_t key, uint32_t index)
{
    uint64_t r, q;
    uint32_t bits;
    if (n == 0) {
        return x;
    }
    if (n > 62) {
        return 0;
    }
    bits = tt_draw_bits(key, index);
    r = n < 32 ? (uint64_t)(bits >> (32 - n)) : (uint64_t)bits << (n - 32);
    q = (tt_mag64(x) + r) >> n;
    return x < 0 ? -(int64_t)q : (int64_t)q;
}

int32_t tt_shift_round_pseudo_s32(int32_t x, uint8_t n)
{
    if (n == 0) {
        return x;
    }
    if (n > 31) {
        return (int32_t)tt_shift_round_pseudo_s64(x, n);
    }
    return tt_rs32_pseudo(x, n);
}

int64_t tt_shift_round_pseudo_s64(int64_t x, uint8_t n)
{
    uint64_t mag, rem, p, t, q;
    uint8_t h, low;
    if (n == 0) {
        return x;
    }
    if (n > 62) {
        return 0;
    }
    h = (uint8_t)((n + 1) / 2);
    low = (uint8_t)(n - h);
    mag = tt_mag64(x);
    rem = mag & (((uint64_t)1 << n) - 1u);
    p = rem >> low;
    t = rem & (((uint64_t)1 << low) - 1u);
    if (h > low) {
        t = (t << 1) | (p & 1u); /* odd n: the draw gets the low bit of p, both have h bits */
    }
    /* up when p > t; ties (p == t) round up when p is odd (unbiased) */
    q = (mag >> n) + ((p > t || (p == t && (p & 1u))) ? 1u : 0u);
    return x < 0 ? -(int64_t)q : (int64_t)q;
}

int32_t tt_shift_round_s32(int32_t x, uint8_t n, tt_rounding_t mode, uint32_t key, uint32_t index)
{
    switch (mode) {
    case TT_ROUND_STOCHASTIC:
        return tt_shift_round_stochastic_s32(x, n, key, index);
    case TT_ROUND_PSEUDO_STOCHASTIC:
        return tt_shift_round_pseudo_s32(x, n);
    default:
        return tt_shift_round_nearest_s32(x, n);
    }
}

int64_t tt_shift_round_s64(int64_t x, uint8_t n, tt_rounding_t mode, uint32_t key, uint32_t index)
{
    switch (mode) {
    case TT_ROUND_STOCHASTIC:
        return tt_shift_round_stochastic_s64(x, n, key, index);
    case TT_ROUND_PSEUDO_STOCHASTIC:
        return tt_shift_round_pseudo_s64(x, n);
    default:
        return tt_shift_round_nearest_s64(x, n);
    }
}

tt_status_t tt_shift_round_buffer_s32(const int32_t *x, int32_t *y, size_t count, uint8_t n, tt_rounding_t mode,
                                      uint32_t key)
{
    size_t i;
    if (count && (x == NULL || y == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        y[i] = tt_shift_round_s32(x[i], n, mode, key, (uint32_t)i);
    }
    return TT_OK;
}

tt_status_t tt_shift_round_buffer_s64(const int64_t *x, int64_t *y, size_t count, uint8_t n, tt_rounding_t mode,
                                      uint32_t key)
{
    size_t i;
    if (count && (x == NULL || y == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        y[i] = tt_shift_round_s64(x[i], n, mode, key, (uint32_t)i);
    }
    return TT_OK;
}

/* ---- multipliers -------------------------------------------------------------------------- */

uint8_t tt_bit_length_u32(uint32_t v)
{
#if (defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)) && defined(__GNUC__)
    /* one CLZ on Cortex-M3, M4, M33 */
    return v ? (uint8_t)(32 - __builtin_clz(v)) : (uint8_t)0;
#else
    uint8_t n = 0;
    if (v >= 0x10000UL) {
        v >>= 16;
        n = (uint8_t)(n + 16);
    }
    if (v >= 0x100UL) {
        v >>= 8;
        n = (uint8_t)(n + 8);
    }
    while (v) {
        v >>= 1;
        ++n;
    }
    return n;
#endif
}

uint8_t tt_bit_length_u64(uint64_t v)
{
    if (v >> 32) {
        return (uint8_t)(32 + tt_bit_length_u32((uint32_t)(v >> 32)));
    }
    return tt_bit_length_u32((uint32_t)v);
}

/* _normalise: bring m * 2**e to m in [2**14, 2**15) by rounding half up. m in [1, 2**31). */
#if defined(__AVR__)
/* AVR: no call (no registers to save) and no 32-bit shift by a variable count: s = bit length of
 * m >> 15 (at most 16) by a byte test and an 8-bit loop; floor((m + 2**(s-1)) / 2**s) =
 * (floor(m / 2**(s-1)) + 1) >> 1, the shift by s - 1 a byte move and at most seven bits. */
static void normalise(uint32_t *m, int32_t *e)
{
    uint32_t v = *m;
    int8_t d = 0;
    while (v >= ((uint32_t)1 << TT_MULT_BITS)) {
        uint16_t t = (uint16_t)(v >> TT_MULT_BITS);
        uint8_t s = 0, b = (uint8_t)t;
        if (t >= 256u) {
            s = 8;
            b = (uint8_t)(t >> 8);
        }
        while (b) {
            b >>= 1;
            ++s;
        }
        d = (int8_t)(d + s);
        v = (tt_shr32_below16_avr(v, (uint8_t)(s - 1u)) + 1u) >> 1;
    }
    while (v < ((uint32_t)1 << (TT_MULT_BITS - 1))) {
        v <<= 1;
        --d;
    }
    *m = v;
    *e += d;
}
#else
static void normalise(uint32_t *m, int32_t *e)
{
    while (*m >= ((uint32_t)1 << TT_MULT_BITS)) {
        uint8_t s = (uint8_t)(tt_bit_length_u32(*m) - TT_MULT_BITS);
        *m = (*m + ((uint32_t)1 << (s - 1))) >> s;
        *e += s;
    }
    while (*m < ((uint32_t)1 << (TT_MULT_BITS - 1))) {
        *m <<= 1;
        *e -= 1;
    }
}
#endif

/* round_half_up((m << 16) / d) for m < 2**15 and d in {3, 5} in 16-bit divisions (one libgcc
 * divmod on 8-bit cores, not a 32-bit division): with 65536 = d * k + 1 and m = d * a + b,
 * (m << 16) + d / 2 = d * ((a << 16) + b * k) + b + d / 2, and b + d / 2 < 2 * d. */
static uint32_t inverse_step(uint32_t m, uint16_t d, uint16_t k)
{
    uint16_t a = (uint16_t)((uint16_t)m / d), b = (uint16_t)((uint16_t)m % d);
    return ((uint32_t)a << 16) + (uint32_t)b * (uint32_t)k + (b + d / 2u >= d ? 1u : 0u);
}

/* AVR and Cortex-M (M profile: one thread, no host process sharing the runtime between threads):
 * the multipliers of recent (U, D) pairs. M and the exponent depend on U and D only (S adds to n);
 * their u/d steps and normalisations cost thousands of cycles per call on an 8-bit core and about a
 * hundred instructions on a Cortex-M, and a training step asks for the same few ratios again and
 * again. Direct-mapped; m == 0: empty. 96 B of RAM on AVR (16 entries), 192 B on Cortex-M (32, with
 * a slot hash that spreads the ratios of a dense training step: 16 entries missed 40 % of the
 * calls of the digits MLP). Not reentrant: not for a runtime shared by threads or called from an
 * interrupt while training. */
#if defined(__AVR__) || (defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M')
#define TT_RATIO_CACHE_ON 1
#else
#define TT_RATIO_CACHE_ON 0
#endif
#if TT_RATIO_CACHE_ON
#if defined(__AVR__)
#define TT_RATIO_CACHE 16u
#define TT_RATIO_SLOT(u, d) ((uint8_t)((uint8_t)(u) * 5u + (uint8_t)(d)) & (uint8_t)(TT_RATIO_CACHE - 1u))
#else
#define TT_RATIO_CACHE 32u
#define TT_RATIO_SLOT(u, d) ((uint8_t)((uint8_t)(u) * 11u + (uint8_t)(d)) & (uint8_t)(TT_RATIO_CACHE - 1u))
#endif
static struct {
    int8_t u, d;
    uint16_t m;
    int16_t e;
} tt_ratio_cache[TT_RATIO_CACHE];
#endif

tt_status_t tt_ratio_multiplier(tt_scale_t ratio, tt_multiplier_t *out)
{
    uint32_t m = (uint32_t)1 << (TT_MULT_BITS - 1);
    int32_t e = -(TT_MULT_BITS - 1);
    int16_t i;
#if TT_RATIO_CACHE_ON
    uint8_t slot;
#endif
    if (out == NULL) {
        return TT_ERR_ARG;
    }
    if (ratio.U > TT_MAX_FACTOR_STEPS || ratio.U < -TT_MAX_FACTOR_STEPS || ratio.D > TT_MAX_FACTOR_STEPS ||
        ratio.D < -TT_MAX_FACTOR_STEPS) {
        return TT_ERR_RANGE;
    }
#if TT_RATIO_CACHE_ON
    slot = TT_RATIO_SLOT(ratio.U, ratio.D);
    if (tt_ratio_cache[slot].m != 0 && tt_ratio_cache[slot].u == ratio.U && tt_ratio_cache[slot].d == ratio.D) {
        out->m = (int32_t)tt_ratio_cache[slot].m;
        out->n = -((int32_t)tt_ratio_cache[slot].e + ratio.S);
        return TT_OK;
    }
#endif
    /* u steps, then d steps; m < 2**15 so m * 5 < 2**18 and (m << 16) + 2 < 2**31 */
    for (i = 0; i < (ratio.U < 0 ? -ratio.U : ratio.U); ++i) {
        if (ratio.U > 0) {
            m *= TT_U_NUM;
            e -= TT_U_SHIFT;
        } else {
            m = inverse_step(m, TT_U_NUM, 13107u); /* 65536 = 5 * 13107 + 1 */
            e += TT_U_SHIFT - 16;
        }
        normalise(&m, &e);
    }
    for (i = 0; i < (ratio.D < 0 ? -ratio.D : ratio.D); ++i) {
        if (ratio.D > 0) {
            m *= TT_D_NUM;
            e -= TT_D_SHIFT;
        } else {
            m = inverse_step(m, TT_D_NUM, 21845u); /* 65536 = 3 * 21845 + 1 */
            e += TT_D_SHIFT - 16;
        }
        normalise(&m, &e);
    }
#if TT_RATIO_CACHE_ON
    tt_ratio_cache[slot].u = (int8_t)ratio.U;
    tt_ratio_cache[slot].d = (int8_t)ratio.D;
    tt_ratio_cache[slot].m = (uint16_t)m;
    tt_ratio_cache[slot].e = (int16_t)e;
#endif
    out->m = (int32_t)m;
    out->n = -(e + ratio.S);
    return TT_OK;
}

tt_status_t tt_divide_multiplier(tt_multiplier_t mult, uint32_t divisor, tt_multiplier_t *out)
{
    uint32_t m;
    int32_t e;
    if (out == NULL || divisor == 0 || divisor > ((uint32_t)1 << 31) || mult.m < (1L << (TT_MULT_BITS - 1)) ||
        mult.m >= (1L << TT_MULT_BITS)) {
        return TT_ERR_ARG;
    }
    if (divisor == 1) {
        *out = mult;
        return TT_OK;
    }
    /* (m << 16) < 2**31 and divisor / 2 <= 2**30: no wrap; the quotient is >= 1 */
    m = (((uint32_t)mult.m << 16) + divisor / 2) / divisor;
    e = -(mult.n + 16);
    normalise(&m, &e);
    out->m = (int32_t)m;
    out->n = -e;
    return TT_OK;
}

int64_t tt_apply_multiplier_scalar(int64_t x, tt_multiplier_t mult, tt_rounding_t rounding, uint32_t key,
                                   uint32_t index, int64_t limit)
{
    /* product in int64 (|x| < 2**47, M < 2**15); wraps like numpy beyond that */
    int64_t prod = (int64_t)((uint64_t)x * (uint64_t)(int64_t)mult.m);
    int64_t q;
    if (mult.n >= 0) {
        q = mult.n > 62 ? 0 : tt_shift_round_s64(prod, (uint8_t)mult.n, rounding, key, index);
    } else {
        int32_t s = -mult.n;
        if (limit >= 0) {
            int64_t bound = (s >= 63 ? 0 : (limit >> s)) + 1;
            prod = tt_clip64(prod, bound);
        }
        q = tt_shl64_wrap(prod, (uint8_t)(s > 64 ? 64 : s));
    }
    if (limit >= 0) {
        q = tt_clip64(q, limit);
    }
    return q;
}

tt_status_t tt_apply_multiplier_s32(const int32_t *x, int32_t *y, size_t count, tt_multiplier_t mult,
                                    tt_rounding_t rounding, uint32_t key, int32_t limit)
{
    size_t i;
    if ((count && (x == NULL || y == NULL)) || limit < 0) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        y[i] = (int32_t)tt_apply_multiplier_scalar(x[i], mult, rounding, key, (uint32_t)i, limit);
    }
    return TT_OK;
}

tt_status_t tt_apply_multiplier_s64(const int64_t *x, int64_t *y, size_t count, tt_multiplier_t mult,
                                    tt_rounding_t rounding, uint32_t key, int64_t limit)
{
    size_t i;
    if (count && (x == NULL || y == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        y[i] = tt_apply_multiplier_scalar(x[i], mult, rounding, key, (uint32_t)i, limit);
    }
    return TT_OK;
}

/* ---- range estimation ---------------------------------------------------------------------- */

uint32_t tt_max_abs_s8(const int8_t *x, size_t count)
{
    uint32_t best = 0;
    size_t i;
    for (i = 0; i < count; ++i) {
        uint32_t a = (uint32_t)(x[i] < 0 ? -(int16_t)x[i] : x[i]);
        if (a > best) {
            best = a;
        }
    }
    return best;
}

uint32_t tt_max_abs_s16(const int16_t *x, size_t count)
{
    uint32_t best = 0;
    size_t i;
    for (i = 0; i < count; ++i) {
        uint32_t a = tt_mag32(x[i]);
        if (a > best) {
            best = a;
        }
    }
    return best;
}

uint32_t tt_max_abs_s32(const int32_t *x, size_t count)
{
    uint32_t best = 0;
    size_t i;
#if defined(__AVR__)
    /* four loads, a negation when the sign bit is set, a four-byte compare and two MOVWs: about 20
     * cycles per element (the compiled loop keeps its values on the stack) */
    uint32_t a;
    if (count == 0) {
        return 0;
    }
    __asm__("1:\n\t"
            "ld %A[a], %a[p]+\n\t"
            "ld %B[a], %a[p]+\n\t"
            "ld %C[a], %a[p]+\n\t"
            "ld %D[a], %a[p]+\n\t"
            "sbrs %D[a], 7\n\t"
            "rjmp 2f\n\t"
            "com %D[a]\n\t"
            "com %C[a]\n\t"
            "com %B[a]\n\t"
            "neg %A[a]\n\t"
            "sbci %B[a], 0xFF\n\t"
            "sbci %C[a], 0xFF\n\t"
            "sbci %D[a], 0xFF\n"
            "2:\n\t"
            "cp %A[b], %A[a]\n\t"
            "cpc %B[b], %B[a]\n\t"
            "cpc %C[b], %C[a]\n\t"
            "cpc %D[b], %D[a]\n\t"
            "brcc 3f\n\t"
            "movw %A[b], %A[a]\n\t"
            "movw %C[b], %C[a]\n"
            "3:\n\t"
            "sbiw %[k], 1\n\t"
            "brne 1b"
            : [b] "+r"(best), [a] "=&d"(a), [p] "+e"(x), [k] "+w"(count)
            :
            : "memory");
    (void)i;
#else
    for (i = 0; i < count; ++i) {
        uint32_t a = tt_mag32(x[i]);
        if (a > best) {
            best = a;
        }
    }
#endif
    return best;
}

/* ---- rescale -------------------------------------------------------------------------------- */

static tt_fine_step_t fine_step(tt_scale_mode_t mode, uint8_t i)
{
    tt_fine_step_t st;
    if (mode == TT_SCALE_COMPOUND) {
        st.m = tt_rom_u8(&tt_fine_steps[i].m);
        st.p = tt_rom_u8(&tt_fine_steps[i].p);
        st.a = tt_rom_u8(&tt_fine_steps[i].a);
        st.b = tt_rom_u8(&tt_fine_steps[i].b);
    } else {
        st.m = 1;
        st.p = 0;
        st.a = 0;
        st.b = 0;
    }
    return st;
}

/* round(amax * m / 2**s), s >= 1 */
static uint32_t rescale_fit(uint32_t amax, uint8_t m, uint8_t s)
{
    return amax < ((uint32_t)1 << 23) ? tt_shr32(tt_mul_u23_u8(amax, m) + tt_bit32((uint8_t)(s - 1)), s)
                                      : (uint32_t)(((uint64_t)amax * m + ((uint64_t)1 << (s - 1))) >> s);
}

uint8_t tt_choose_rescale(uint32_t amax, uint8_t bits, tt_scale_mode_t mode, tt_rescale_t *choice)
{
    uint32_t limit = (uint32_t)tt_limit_for_bits(bits), fit;
    uint8_t fast_fit; /* the fast test of 8-bit outputs (AVR) says the step fits */
    uint8_t k, j, i, count = mode == TT_SCALE_COMPOUND ? TT_FINE_STEP_COUNT : 1;
    tt_fine_step_t st;
    if (amax <= limit) {
        return 0;
    }
    /* amax / 2**k lies in [2**(bits-2), 2**(bits-1)) */
    k = (uint8_t)(tt_bit_length_u32(amax) - (bits - 1));
    for (j = 0; j < 2; ++j) {
#if defined(__AVR__)
        /* 8 bits: fit <= 127 <=> amax * m < 255 * 2**(s - 1) <=> floor(amax * m / 2**t) < 255 * 2**p
         * (t = k + j - 1 >= 0). With amax = a * 2**t + rest: floor(amax * m / 2**t) = a * m + c,
         * 0 <= c <= m - 1 (a < 2**8: one MUL), so a * m + m - 1 < 255 * 2**p fits and
         * a * m >= 255 * 2**p does not; only the values in between take the exact test */
        uint8_t a8 = (uint8_t)tt_shr32(amax, (uint8_t)(k + j - 1u));
#endif
        for (i = 0; i < count; ++i) {
            uint8_t s;
            st = fine_step(mode, i);
            s = (uint8_t)(st.p + k + j);
            /* amax * m < 2**40: nearest rounding of a non-negative value (in 32 bits when
             * amax < 2**23: m < 2**8) */
            fast_fit = 0;
#if defined(__AVR__)
            if (bits == 8u) {
                unsigned am = (unsigned)a8 * (unsigned)st.m, bound = 255u << st.p;
                if (am >= bound) {
                    continue;
                }
                fast_fit = am + st.m - 1u < bound;
            }
#endif
            fit = fast_fit ? 0u : rescale_fit(amax, st.m, s);
            if (fit <= limit) {
                choice->m = st.m;
                choice->p = st.p;
                choice->a = st.a;
                choice->b = st.b;
                choice->shift = (uint8_t)(k + j);
                return 1;
            }
        }
    }
    /* unreachable: m / 2**(p + k + 1) < 1 always fits */
    choice->m = 1;
    choice->p = 0;
    choice->a = 0;
    choice->b = 0;
    choice->shift = (uint8_t)(k + 1);
    return 1;
}

tt_scale_t tt_rescaled_scale(tt_scale_t scale, const tt_rescale_t *choice)
{
    tt_scale_t r;
    r.S = tt_exp16((int32_t)scale.S + choice->p + choice->shift - TT_U_SHIFT * choice->a - TT_D_SHIFT * choice->b);
    r.U = tt_exp16((int32_t)scale.U - choice->a);
    r.D = tt_exp16((int32_t)scale.D - choice->b);
    return r;
}

int32_t tt_rescale_apply(int32_t x, const tt_rescale_t *choice, int32_t limit, tt_rounding_t rounding, uint32_t key,
                         uint32_t index)
{
    uint8_t n = (uint8_t)(choice->p + choice->shift);
    int64_t q;
    if (choice->m == 1) {
        return tt_clip32(tt_shift_round_s32(x, n, rounding, key, index), limit);
    }
    if (tt_mag32(x) < ((uint32_t)1 << 23)) {
        /* m <= 225 < 2**8, so x * m fits int32: 32-bit path (same value as the int64 one) */
        return tt_clip32(tt_shift_round_s32(x * (int32_t)choice->m, n, rounding, key, index), limit);
    }
    q = tt_shift_round_s64((int64_t)x * choice->m, n, rounding, key, index);
    return (int32_t)tt_clip64(q, limit);
}

/* out[i] = acc[i] rescaled by `choice` (nearest, clipped to +-127, as tt_rescale_apply), or copied
 * when `change` is 0 (the tensor fits). One pass, 32-bit products where they suffice. */
void tt_rescale_write_s8(const int32_t *acc, size_t count, uint8_t change, const tt_rescale_t *choice, int8_t *out)
{
    uint8_t n;
    uint32_t m, half;
    size_t i;
    if (!change) {
        for (i = 0; i < count; ++i) {
            out[i] = (int8_t)acc[i];
        }
        return;
    }
    n = (uint8_t)(choice->p + choice->shift);
    m = choice->m;
    half = n ? (uint32_t)1 << (n - 1) : 0u;
    if (n == 0 || n > 31) {
        for (i = 0; i < count; ++i) {
            out[i] = (int8_t)tt_rescale_apply(acc[i], choice, 127, TT_ROUND_NEAREST, 0, 0);
        }
        return;
    }
#if !defined(__AVR__)
    if (m == 1u) {
        /* the power-of-two steps: a shift of the magnitude (no branch but the clip) */
        for (i = 0; i < count; ++i) {
            int32_t x = acc[i];
            uint32_t q = (tt_mag32(x) + half) >> n;
            q = q > 127u ? 127u : q;
            out[i] = (int8_t)(x < 0 ? -(int32_t)q : (int32_t)q);
        }
        return;
    }
#endif
    for (i = 0; i < count; ++i) {
        int32_t x = acc[i];
        uint32_t a = tt_mag32(x), q;
        if (m == 1) {
            q = tt_shr32(a + half, n); /* a <= 2**31, half <= 2**30 */
        } else if (a < ((uint32_t)1 << 23)) {
            q = tt_shr32(tt_mul_u23_u8(a, m) + half, n);
        } else if (n >= 16u) {
            /* a * m < 2**39 in two 32-bit halves: floor((hi * 2**16 + lo) / 2**n) =
             * floor((hi + floor(lo / 2**16)) / 2**(n - 16)), hi = (a >> 16) * m < 2**24,
             * lo = (a & 0xFFFF) * m + half < 2**31 (no 64-bit arithmetic in the loop) */
            q = tt_shr32((a >> 16) * m + (((a & 0xFFFFu) * m + half) >> 16), (uint8_t)(n - 16u));
        } else {
            q = 127u; /* a * m / 2**n >= 2**23 / 2**15: clipped */
        }
        q = q > 127u ? 127u : q;
        out[i] = (int8_t)(x < 0 ? -(int32_t)q : (int32_t)q);
    }
}

tt_status_t tt_rescale_s32_to_s8(const int32_t *acc, size_t count, tt_scale_t *scale, tt_scale_mode_t mode,
                                 tt_rounding_t rounding, uint32_t key, int8_t *out)
{
    tt_rescale_t choice;
    uint8_t change;
    size_t i;
    if (scale == NULL || (count && (acc == NULL || out == NULL))) {
        return TT_ERR_ARG;
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, count), 8, mode, &choice);
    if (!change || rounding == TT_ROUND_NEAREST) {
        tt_rescale_write_s8(acc, count, change, &choice, out);
        if (change) {
            *scale = tt_rescaled_scale(*scale, &choice);
        }
        return TT_OK;
    }
    for (i = 0; i < count; ++i) {
        out[i] = (int8_t)tt_rescale_apply(acc[i], &choice, 127, rounding, key, (uint32_t)i);
    }
    *scale = tt_rescaled_scale(*scale, &choice);
    return TT_OK;
}

tt_status_t tt_rescale_s16_to_s8(const int16_t *x, size_t count, tt_scale_t *scale, tt_scale_mode_t mode,
                                 int8_t *out)
{
    tt_rescale_t choice;
    size_t i;
    if (scale == NULL || (count && (x == NULL || out == NULL))) {
        return TT_ERR_ARG;
    }
    if (!tt_choose_rescale(tt_max_abs_s16(x, count), 8, mode, &choice)) {
        for (i = 0; i < count; ++i) {
            out[i] = (int8_t)x[i];
        }
        return TT_OK;
    }
    for (i = 0; i < count; ++i) {
        out[i] = (int8_t)tt_rescale_apply(x[i], &choice, 127, TT_ROUND_NEAREST, 0, (uint32_t)i);
    }
    *scale = tt_rescaled_scale(*scale, &choice);
    return TT_OK;
}

/* ---- grid rescale of persistent tensors ---------------------------------------------------- */

/* _round_nearest_scalar(v, s) for v < 2**62; saturates to UINT64_MAX when a left shift would
 * leave 64 bits (only ever compared against a limit, so saturation is exact for the comparison). */
static uint64_t round_nearest_u64(uint64_t v, int32_t s)
{
#if defined(__AVR__)
    /* in 32 bits when v < 2**31 and 1 <= s <= 31 (v + 2**(s-1) < 2**32): no 64-bit shift loop */
    if (s >= 1 && s <= 31 && (v >> 31) == 0) {
        return tt_shr32((uint32_t)v + tt_bit32((uint8_t)(s - 1)), (uint8_t)s);
    }
#endif
    if (s > 0) {
        return s > 63 ? 0 : (v + ((uint64_t)1 << (s - 1))) >> s;
    }
    if (s < 0) {
        if (-s >= 64 || (v >> (64 + s)) != 0) {
            return v ? UINT64_MAX : 0;
        }
        return v << -s;
    }
    return v;
}

tt_status_t tt_choose_grid_rescale(uint64_t amax, tt_scale_t scale, uint8_t bits, tt_scale_mode_t mode,
                                   uint8_t *changed, tt_scale_t *new_scale, tt_multiplier_t *mult)
{
    uint64_t limit = (uint64_t)tt_limit_for_bits(bits), best_fit = 0;
    uint8_t a, b, steps = mode == TT_SCALE_COMPOUND ? TT_GRID_MAX_STEPS : 0, found = 0;
    if (changed == NULL || new_scale == NULL || mult == NULL) {
        return TT_ERR_ARG;
    }
    *changed = 0;
    if (amax <= limit) {
        return TT_OK;
    }
    if (amax >= ((uint64_t)1 << 47)) {
        return TT_ERR_OVERFLOW;
    }
    for (a = 0; a <= steps; ++a) {
        for (b = 0; b <= steps; ++b) {
            tt_scale_t ratio;
            tt_multiplier_t rm;
            uint64_t v, fitted;
            int32_t j;
            tt_status_t st;
            ratio.S = 0;
            ratio.U = tt_exp16((int32_t)scale.U - a);
            ratio.D = tt_exp16((int32_t)scale.D - b);
            st = tt_ratio_multiplier(ratio, &rm);
            if (st != TT_OK) {
                return st;
            }
#if defined(__AVR__)
            if (amax < 65536u) { /* a 16x16->32 product, not a 64-bit multiply */
                uint16_t a16 = (uint16_t)amax, m16 = (uint16_t)rm.m;
                __asm__("" : "+r"(a16), "+r"(m16));
                v = (uint32_t)a16 * m16;
            } else
#endif
            v = amax * (uint64_t)rm.m; /* < 2**62 */
            /* smallest extra shift j >= 0 (new S = scale.S + j) that fits, then the finest */
            j = (int32_t)tt_bit_length_u64(v) - rm.n - (int32_t)tt_bit_length_u32((uint32_t)limit);
            if (j < 0) {
                j = 0;
            }
            while (round_nearest_u64(v, rm.n + j) > limit) {
                ++j;
            }
            while (j > -64 && round_nearest_u64(v, rm.n + j - 1) <= limit) {
                --j;
            }
            fitted = round_nearest_u64(v, rm.n + j);
            if (!found || fitted > best_fit) {
                found = 1;
                best_fit = fitted;
                new_scale->S = tt_exp16((int32_t)scale.S + j);
                new_scale->U = a;
                new_scale->D = b;
                mult->m = rm.m;
                mult->n = rm.n + j;
            }
        }
    }
    *changed = 1;
    return TT_OK;
}

/* ---- table functions ------------------------------------------------------------------------ */

uint32_t tt_exp2_frac_q15(uint16_t frac)
{
    uint16_t idx = (uint16_t)(frac >> 8);
    uint32_t low = (uint32_t)(frac & 0xFFu);
    uint32_t base = tt_exp2_q15_entry(idx);
    /* the table increases: the difference is < 2**8 and the product < 2**16 */
#if defined(__AVR__)
    /* one 8x8->16 MUL (unsigned int is 16 bits: product + 128 <= 255 * 255 + 128 < 2**16) */
    return base + (((unsigned)(uint8_t)(tt_exp2_q15_entry((uint16_t)(idx + 1u)) - base) * (unsigned)(uint8_t)low +
                    128u) >> 8);
#else
    return base + (((tt_exp2_q15_entry((uint16_t)(idx + 1u)) - base) * low + 128u) >> 8);
#endif
}

int32_t tt_log2_q16(uint32_t x)
{
    uint8_t e;
    uint32_t frac16, base, low;
    uint16_t idx;
    if (x == 0) {
        return 0;
    }
    e = (uint8_t)(tt_bit_length_u32(x) - 1);
    /* x / 2**e in [1, 2) as 16 fraction bits ((x << 16) >> e is exact when e <= 16) */
    frac16 = (e <= 16 ? x << (16 - e) : x >> (e - 16)) - 0x10000UL;
    idx = (uint16_t)(frac16 >> 8);
    low = frac16 & 0xFFu;
    base = tt_log2_q16_entry(idx);
    return (int32_t)(((uint32_t)e << 16) + base + (((tt_log2_q16_entry((uint16_t)(idx + 1u)) - base) * low + 128u) >> 8));
}

/* ---- accumulate-then-rescale driver of the convolution, pooling and residual kernels ---------- */

void tt_rescale_acc4(tt_acc4_fn f, const void *ctx, const size_t dims[4], int32_t *acc, tt_scale_t *scale,
                     tt_scale_mode_t mode, int8_t *out)
{
    size_t b, c, p, q, i = 0;
    uint32_t amax = 0;
    uint8_t change;
    tt_rescale_t choice;
    for (b = 0; b < dims[0]; ++b) {
        for (c = 0; c < dims[1]; ++c) {
            for (p = 0; p < dims[2]; ++p) {
                for (q = 0; q < dims[3]; ++q, ++i) {
                    int32_t v = f(ctx, b, c, p, q);
                    uint32_t a = tt_mag32(v);
                    if (acc != NULL) {
                        acc[i] = v;
                    }
                    if (a > amax) {
                        amax = a;
                    }
                }
            }
        }
    }
    change = tt_choose_rescale(amax, 8, mode, &choice);
    i = 0;
    for (b = 0; b < dims[0]; ++b) {
        for (c = 0; c < dims[1]; ++c) {
            for (p = 0; p < dims[2]; ++p) {
                for (q = 0; q < dims[3]; ++q, ++i) {
                    int32_t v = acc != NULL ? acc[i] : f(ctx, b, c, p, q);
                    out[i] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
                }
            }
        }
    }
    if (change) {
        *scale = tt_rescaled_scale(*scale, &choice);
    }
}

tt_status_t tt_check_domain_s8(const int8_t *x, size_t count)
{
    size_t i = 0;
    if (count && x == NULL) {
        return TT_ERR_ARG;
    }
#if defined(__arm__) || defined(__thumb__)
    /* a word at a time on the Arm cores (unaligned loads): y = v ^ 0x80808080 has a zero byte
     * exactly where v holds -128, and (y - 0x01010101) & ~y & 0x80808080 is nonzero exactly when
     * y has a zero byte */
    for (; i + 4u <= count; i += 4u) {
        uint32_t v;
        __builtin_memcpy(&v, x + i, 4);
        v ^= 0x80808080u;
        if (((v - 0x01010101u) & ~v & 0x80808080u) != 0) {
            return TT_ERR_ARG;
        }
    }
#endif
    for (; i < count; ++i) {
        if (x[i] == INT8_MIN) {
            return TT_ERR_ARG;
        }
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
