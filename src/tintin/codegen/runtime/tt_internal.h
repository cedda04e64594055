/* tt_internal.h - small helpers shared by the runtime's translation units (not public API). */
#ifndef TT_INTERNAL_H
#define TT_INTERNAL_H

#include "tt_numerics.h"
#include "tt_tables.h"

/* |x| as unsigned, defined for INT32_MIN / INT64_MIN. */
static inline uint32_t tt_mag32(int32_t x)
{
    return x < 0 ? (uint32_t)0 - (uint32_t)x : (uint32_t)x;
}

static inline uint64_t tt_mag64(int64_t x)
{
    return x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
}

static inline int64_t tt_clip64(int64_t x, int64_t limit)
{
    return x > limit ? limit : (x < -limit ? -limit : x);
}

static inline int32_t tt_clip32(int32_t x, int32_t limit)
{
    return x > limit ? limit : (x < -limit ? -limit : x);
}

/* int64 -> int32 saturating. */
static inline int32_t tt_sat32(int64_t x)
{
    return x > (int64_t)INT32_MAX ? INT32_MAX : (x < (int64_t)INT32_MIN ? INT32_MIN : (int32_t)x);
}

/* x * 2**s with the int64 wrap-around of numpy (no undefined behaviour for negative x). */
static inline int64_t tt_shl64_wrap(int64_t x, uint8_t s)
{
    return s >= 64 ? 0 : (int64_t)((uint64_t)x << s);
}

/* ---- 32-bit helpers that stay cheap on 8-bit cores ------------------------------------------ */

/* x * m for x < 2**23 and m < 2**8: on AVR three 8x8->16 MULs (byte by byte) instead of a libgcc
 * 32x32 __mulsi3 */
static inline uint32_t tt_mul_u23_u8(uint32_t x, uint32_t m)
{
#if defined(__AVR__)
    /* three MULs in registers (the C form compiles to libgcc widening-multiply calls): the
     * products of bytes 0 and 2 side by side, byte 1's added in the middle (no carry out: < 2**31) */
    uint32_t r;
    uint8_t z;
    __asm__("mul %A[x], %[m]\n\t"
            "movw %A[r], r0\n\t"
            "mul %C[x], %[m]\n\t"
            "movw %C[r], r0\n\t"
            "mul %B[x], %[m]\n\t"
            "clr %[z]\n\t"
            "add %B[r], r0\n\t"
            "adc %C[r], r1\n\t"
            "adc %D[r], %[z]\n\t"
            "clr r1"
            : [r] "=&r"(r), [z] "=&r"(z)
            : [x] "r"(x), [m] "r"((uint8_t)m)
            : "r0");
    return r;
#else
    return x * m;
#endif
}

#if defined(__AVR__)
/* g[k] = e * x[k], k < count (count >= 1): one MULS per element, its carry (the sign of the
 * product) spread over the two top bytes by SBC, four stores; 17 cycles per element */
static inline void tt_outer_row_avr(int32_t *g, int8_t e, const int8_t *x, size_t count)
{
    uint8_t t, ext;
    __asm__ volatile("1:\n\t"
                     "ld %[t], %a[px]+\n\t"
                     "muls %[e], %[t]\n\t"
                     "sbc %[ext], %[ext]\n\t"
                     "st %a[pg]+, r0\n\t"
                     "st %a[pg]+, r1\n\t"
                     "st %a[pg]+, %[ext]\n\t"
                     "st %a[pg]+, %[ext]\n\t"
                     "sbiw %[k], 1\n\t"
                     "brne 1b\n\t"
                     "clr r1"
                     : [t] "=&a"(t), [ext] "=&r"(ext), [px] "+e"(x), [pg] "+e"(g), [k] "+w"(count)
                     : [e] "a"(e)
                     : "r0", "memory");
}
#endif

#if defined(__AVR__)
/* a * b, 16x16->32 unsigned: four MULs in registers (libgcc's __umulhisi3 is a call) */
__attribute__((always_inline)) static inline uint32_t tt_mul_u16_avr(uint16_t a, uint16_t b)
{
    uint32_t r;
    uint8_t z;
    __asm__("mul %A[a], %A[b]\n\t"
            "movw %A[r], r0\n\t"
            "mul %B[a], %B[b]\n\t"
            "movw %C[r], r0\n\t"
            "clr %[z]\n\t"
            "mul %A[a], %B[b]\n\t"
            "add %B[r], r0\n\t"
            "adc %C[r], r1\n\t"
            "adc %D[r], %[z]\n\t"
            "mul %B[a], %A[b]\n\t"
            "add %B[r], r0\n\t"
            "adc %C[r], r1\n\t"
            "adc %D[r], %[z]\n\t"
            "clr r1"
            : [r] "=&r"(r), [z] "=&r"(z)
            : [a] "r"(a), [b] "r"(b)
            : "r0");
    return r;
}
#endif

/* x >> n for n < 32: on AVR by 16 and 8 first (constant shifts: byte moves), at most 7 turns of
 * the one-bit loop that a variable shift compiles to */
static inline uint32_t tt_shr32(uint32_t x, uint8_t n)
{
#if defined(__AVR__)
    if (n & 16u) {
        x >>= 16;
    }
    if (n & 8u) {
        x >>= 8;
    }
    n &= 7u;
#endif
    return x >> n;
}

#if defined(__AVR__)
/* x >> k for k < 16 without a call (a caller that makes no other call saves no registers): a byte
 * move, then at most seven one-bit turns */
__attribute__((always_inline)) static inline uint32_t tt_shr32_below16_avr(uint32_t x, uint8_t k)
{
    if (k >= 8u) {
        x >>= 8;
        k = (uint8_t)(k - 8u);
    }
    while (k) {
        x >>= 1;
        --k;
    }
    return x;
}
#endif

/* 1 << k for k < 32: on AVR one byte shifted by k % 8, then moved by whole bytes (no 32-bit
 * one-bit-per-turn loop) */
static inline uint32_t tt_bit32(uint8_t k)
{
#if defined(__AVR__)
    uint32_t r = (uint8_t)(1u << (k & 7u));
    if (k & 8u) {
        r <<= 8;
    }
    if (k & 16u) {
        r <<= 16;
    }
    return r;
#else
    return (uint32_t)1 << k;
#endif
}

/* ---- inline 32-bit rounding for element loops (same results as tt_shift_round_*_s32) ---------- */

static inline uint32_t tt_mix32_inline(uint32_t x)
{
    x ^= x >> 16;
    x = (uint32_t)(x * (uint32_t)TT_MIX_MUL1);
    x ^= x >> 15;
    x = (uint32_t)(x * (uint32_t)TT_MIX_MUL2);
    x ^= x >> 16;
    return x;
}

/* n in [1, 31] for the three functions below; |x| <= 2**31 */
static inline int32_t tt_rs32_nearest(int32_t x, uint8_t n)
{
    uint32_t q = (tt_mag32(x) + ((uint32_t)1 << (n - 1))) >> n;
    return x < 0 ? -(int32_t)q : (int32_t)q;
}

/* draw: tt_draw_bits(key, index) of the element */
static inline int32_t tt_rs32_stochastic(int32_t x, uint8_t n, uint32_t draw)
{
    uint32_t q = (tt_mag32(x) + (draw >> (32 - n))) >> n;
    return x < 0 ? -(int32_t)q : (int32_t)q;
}

static inline int32_t tt_rs32_pseudo(int32_t x, uint8_t n)
{
    uint8_t h = (uint8_t)((n + 1) / 2), low = (uint8_t)(n - h);
    uint32_t mag = tt_mag32(x), rem = mag & (((uint32_t)1 << n) - 1u), p = rem >> low;
    uint32_t t = rem & (((uint32_t)1 << low) - 1u), q;
    if (h > low) {
        t = (t << 1) | (p & 1u);
    }
    q = (mag >> n) + ((p > t || (p == t && (p & 1u))) ? 1u : 0u);
    return x < 0 ? -(int32_t)q : (int32_t)q;
}

/* ---- inline 64-bit rounding (same results as tt_shift_round_*_s64) -----------------------------
 * n in [1, 62]; |x| <= 2**62 */
static inline int64_t tt_rs64_nearest(int64_t x, uint8_t n)
{
    uint64_t q = (tt_mag64(x) + ((uint64_t)1 << (n - 1))) >> n;
    return x < 0 ? -(int64_t)q : (int64_t)q;
}

/* draw: tt_draw_bits(key, index); its top n bits (n <= 32) or all 32 bits shifted left (n > 32) */
static inline int64_t tt_rs64_stochastic(int64_t x, uint8_t n, uint32_t draw)
{
    uint64_t r = n <= 32 ? (uint64_t)(draw >> (32 - n)) : ((uint64_t)draw << (n - 32));
    uint64_t q = (tt_mag64(x) + r) >> n;
    return x < 0 ? -(int64_t)q : (int64_t)q;
}

static inline int64_t tt_rs64_pseudo(int64_t x, uint8_t n)
{
    uint8_t h = (uint8_t)((n + 1) / 2), low = (uint8_t)(n - h);
    uint64_t mag = tt_mag64(x), rem = mag & (((uint64_t)1 << n) - 1u), p = rem >> low;
    uint64_t t = rem & (((uint64_t)1 << low) - 1u), q;
    if (h > low) {
        t = (t << 1) | (p & 1u);
    }
    q = (mag >> n) + ((p > t || (p == t && (p & 1u))) ? 1u : 0u);
    return x < 0 ? -(int64_t)q : (int64_t)q;
}

/* Largest mantissa of a signed `bits`-bit tensor (symmetric range): 2**(bits-1) - 1. */
static inline int32_t tt_limit_for_bits(uint8_t bits)
{
    return (int32_t)(((uint32_t)1 << (bits - 1)) - 1u);
}

/* n > limit for a size_t n, written so that no compiler warns where size_t is 16 bits wide. */
static inline uint8_t tt_size_above(size_t n, uint32_t limit)
{
    return (uint32_t)n > limit;
}

/* int32 -> scale exponent (exponents are documented to stay far inside int16). */
static inline int16_t tt_exp16(int32_t v)
{
    return (int16_t)v;
}

/* One int32 accumulator of a 4-D output (b, c, p, q) of a kernel, computed on demand. */
typedef int32_t (*tt_acc4_fn)(const void *ctx, size_t b, size_t c, size_t p, size_t q);

/* rescale(acc, *scale, 8, mode) (nearest) of the accumulators f(b, c, p, q) over dims[0..3]
 * (row-major), written to out as int8. With `acc` (dims[0]*...*dims[3] int32) each accumulator
 * is computed once and stored; with acc == NULL it is computed twice (range pass, output pass).
 * *scale is the accumulator scale on entry and the output scale on return. */
void tt_rescale_acc4(tt_acc4_fn f, const void *ctx, const size_t dims[4], int32_t *acc, tt_scale_t *scale,
                     tt_scale_mode_t mode, int8_t *out);

/* ceil(a / b) for a >= 0, b > 0 */
static inline size_t tt_ceil_div(size_t a, size_t b)
{
    return (a + b - 1u) / b;
}

/* Pooling windows: the output positions [*lo, *hi) whose window contains input row y
 * (p * stride <= y < p * stride + kernel), clipped to out. */
static inline void tt_pool_covering(size_t y, size_t kernel, size_t stride, size_t out, size_t *lo, size_t *hi)
{
    *lo = y + 1u > kernel ? tt_ceil_div(y + 1u - kernel, stride) : 0u;
    *hi = y / stride + 1u;
    if (*hi > out) {
        *hi = out;
    }
}

/* ---- the integer SGD step of one gradient element ---------------------------------------------
 * (tintin.optim.IntegerSGD.niti_delta / aligned_delta; shared by tt_sgd.c and the tiled updates
 * of tt_sgd_tiled.c) */
#define TT_MOMENTUM_CLIP ((int64_t)1 << 40)

/* a - b with the int64 wrap-around of numpy (no undefined behaviour) */
static inline int64_t tt_sub_wrap64(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}

/* What the step of every element of one parameter needs, computed once per parameter. */
typedef struct {
    uint8_t niti;           /* NITI bit-width rule */
    uint8_t momentum;       /* aligned rule with momentum */
    uint8_t momentum_shift; /* 1..8 */
    int8_t niti_k;          /* NITI: right shift (a left shift by -k when k <= 0) */
    tt_rounding_t rounding;
    tt_multiplier_t mult;   /* aligned: lr * grad_scale / w_scale / batch */
    tt_multiplier_t fine;   /* momentum: the same in 2**-8 weight units */
    uint32_t key;
} tt_delta_rule_t;

/* delta of gradient element g with draw index `index`; with momentum *v is updated:
 * NITI: round(g / 2**k); aligned: round(g * M / 2**n); momentum: v <- v - round(v / 2**k)
 * + round(g * M / 2**(n-8)), |v| <= 2**40, delta = round(v / 2**8). */
static inline int64_t tt_delta_at(const tt_delta_rule_t *r, int32_t g, int64_t *v, uint32_t index)
{
    if (r->niti) {
        if (r->niti_k <= 0) {
            return (int64_t)g * ((int64_t)1 << -r->niti_k);
        }
        return tt_shift_round_s32(g, (uint8_t)r->niti_k, r->rounding, r->key, index);
    }
    if (r->momentum) {
        int64_t fine = tt_apply_multiplier_scalar(g, r->fine, TT_ROUND_NEAREST, 0, 0, -1);
        int64_t nv = tt_sub_wrap64(*v, tt_shift_round_nearest_s64(*v, r->momentum_shift));
        nv = tt_clip64(tt_sub_wrap64(nv, -fine), TT_MOMENTUM_CLIP);
        *v = nv;
        return tt_shift_round_s64(nv, TT_MOMENTUM_FRAC_BITS, r->rounding, r->key, index);
    }
    return tt_apply_multiplier_scalar(g, r->mult, r->rounding, r->key, index, -1);
}

/* ---- shared by the kernel variants of several ops ------------------------------------------- */

/* hot loops stay separate functions: inlined into the update driver they lose their registers */
#if defined(__GNUC__)
#define TT_NOINLINE __attribute__((noinline))
#else
#define TT_NOINLINE
#endif

/* Stochastic rounding of a magnitude: (mag + r) >> n with r the draw's n-bit value (its top n bits
 * for n < 32, draw << (n - 32) from 32 on), as tt_shift_round_stochastic_s64, for mag <= 2**30 and
 * 1 <= n <= 62. From n = 32 on the result is the carry of (mag >> (n - 32)) + draw: 0 or 1. */
static inline uint32_t tt_sr_mag32(uint32_t mag, uint8_t n, uint32_t draw)
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
int32_t tt_grid_rescale_one(int64_t x, tt_multiplier_t mult, int32_t limit);

/* a + b saturated to int32: no overflow whatever the operands (one QADD on DSP cores). */
static inline int32_t tt_add_sat32(int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
    return __builtin_arm_qadd(a, b);
#else
    if (b > 0 && a > INT32_MAX - b) {
        return INT32_MAX;
    }
    if (b < 0 && a < INT32_MIN - b) {
        return INT32_MIN;
    }
    return a + b;
#endif
}

/* init + sum a[i] * b[i]. Every product |p| <= 2**14 fits an int (16 bits on AVR), and the sum of
 * k <= TT_ACC_TERMS_LIMIT products stays below 2**31 for any int8 values; init (an aligned bias,
 * |init| <= 2**30) is added last with saturation. Inside the documented domain (int8 values in
 * [-127, 127]) nothing saturates and the result is exact; outside it there is no undefined
 * behaviour. */
int32_t tt_dot_s8_x4(int32_t init, const int8_t *a, const int8_t *b, size_t k);

/* The loops of tt_dot.c: SXTB16/SMLAD where the DSP extension is (Cortex-M4, M4F, M33), 24-bit
 * partial sums on AVR, portable C elsewhere. TT_DOT_ROWS: output rows per call that the kernels
 * hand to the product loop: 4 on Arm cores (tt_dot_s8_rows4 and tt_dot_s8_2x2 share the loads of
 * one operand between several dot products), else 1 (AVR: less code; the host: the compiler
 * vectorises the single dot product). */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__GNUC__)
#define TT_DOT_DSP 1
#define TT_DOT_AVR 0
#define TT_DOT_ROWS 4u
#elif defined(__arm__) || defined(__thumb__)
#define TT_DOT_DSP 0
#define TT_DOT_AVR 0
#define TT_DOT_ROWS 4u
#elif defined(__AVR__)
#define TT_DOT_DSP 0
#define TT_DOT_AVR 1
#define TT_DOT_ROWS 1u
#else
#define TT_DOT_DSP 0
#define TT_DOT_AVR 0
#define TT_DOT_ROWS 1u
#endif

/* The other product loops of tt_dot.c (the same exact sums in every variant; the same bounds as
 * tt_dot_s8_x4: at most TT_ACC_TERMS_LIMIT products per sum).
 * TT_DOT_ROWS == 4 only: out[r] = sum_i x[i] * w[r * stride + i], rows r < 4, i < k */
void tt_dot_s8_rows4(const int8_t *x, const int8_t *w, size_t stride, size_t k, int32_t out[4]);
/* TT_DOT_ROWS == 4 only: two rows of w against two columns of x, rows and columns `stride` apart:
 * out = {w0.x0, w0.x1, w1.x0, w1.x1} over i < k (w1 = w + stride, x1 = x + stride) */
void tt_dot_s8_2x2(const int8_t *w, const int8_t *x, size_t stride, size_t k, int32_t out[4]);
/* the larger of amax and |v| (a running range) */
static inline uint32_t tt_max_mag32(uint32_t amax, int32_t v)
{
    uint32_t a = tt_mag32(v);
    return a > amax ? a : amax;
}
/* row[i] += e0 * w0[i] + e1 * w1[i], i < count (|e0|, |e1| <= 128) */
void tt_axpy2_s8(int32_t *row, int32_t e0, const int8_t *w0, int32_t e1, const int8_t *w1, size_t count);
/* out[k] = sum_n e[n * e_step] * w[n * count + k] for k < count, n < rows (a vector times a
 * row-major matrix: the input error of a dense layer, or a weight-gradient row over the batch) */
void tt_dot_s8_columns(const int8_t *e, size_t e_step, const int8_t *w, size_t rows, size_t count, int32_t *out);
/* sum_i a[i] * b[i * b_step], i < k (no saturation: k <= TT_ACC_TERMS_LIMIT) */
int32_t tt_dot_s8_strided(const int8_t *a, const int8_t *b, size_t b_step, size_t k);

/* align_bias of one value: round(b * M / 2**n) (nearest) clipped to +-2**30, as
 * tt_apply_multiplier_scalar(b, mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT). The product
 * |b| * M < 2**46 is formed in two 32-bit halves (no 64-bit arithmetic: cheap on AVR and ARMv6-M). */
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
int32_t tt_align_bias_one_general(int32_t b, tt_multiplier_t mult);
/* Inline on cores with a 32x32->64 multiply (Cortex-M3, M4, M33): p = |b| * M + 2**(n-1) < 2**47
 * in one UMLAL, its shift by n in 32-bit halves (p >> n >= 2**32, clipped, exactly when
 * (p >> 32) >> n != 0). */
static inline int32_t tt_align_bias_one(int32_t b, tt_multiplier_t mult)
{
    if (mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L) {
        uint8_t n = (uint8_t)mult.n;
        uint64_t p = (uint64_t)tt_mag32(b) * (uint32_t)mult.m + ((uint32_t)1 << (n - 1u));
        uint32_t lo = (uint32_t)p, hi = (uint32_t)(p >> 32);
        uint32_t c = (hi >> n) != 0u ? (uint32_t)TT_BIAS_ALIGN_LIMIT : (lo >> n) | (hi << (32u - n));
        c = c > (uint32_t)TT_BIAS_ALIGN_LIMIT ? (uint32_t)TT_BIAS_ALIGN_LIMIT : c;
        return b < 0 ? -(int32_t)c : (int32_t)c;
    }
    return tt_align_bias_one_general(b, mult);
}
#else
int32_t tt_align_bias_one(int32_t b, tt_multiplier_t mult);
#endif
/* out[i] = tt_align_bias_one(bias[i], mult) for i < count, the multiplier checked once (the bias
 * loop of a dense layer's forward pass) */
void tt_align_bias_row(const int32_t *bias, size_t count, tt_multiplier_t mult, int32_t *out);
#if defined(__AVR__)
/* tt_align_bias_one for 0 <= M < 2**15 and 1 <= n <= 31 (tt_avr_bias_mult_ok), in assembly
 * (tt_internal.c): a loop checks the multiplier once, not per value */
int32_t avr_align_bias(int32_t b, uint16_t m, uint8_t n);
static inline uint8_t tt_avr_bias_mult_ok(tt_multiplier_t mult)
{
    return mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L;
}
#endif

static inline size_t tt_selected_row(const uint16_t *rows, size_t j)
{
    return rows != NULL ? (size_t)rows[j] : j;
}

static inline tt_status_t tt_check_selection(const uint16_t *rows, size_t first, size_t count, size_t row_count)
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

#endif /* TT_INTERNAL_H */
