/* tt_dot.c - the int8 product loops of the linear and convolution kernels, one variant per
 * instruction set:
 *
 * - ARMv7E-M / ARMv8-M Mainline with the DSP extension (Cortex-M4, M4F, M7, M33; __ARM_FEATURE_DSP):
 *   four int8 values are loaded as one word, sign-extended in pairs to two int16x2 words (SXTB16,
 *   SXTB16 ROR #8) and multiplied-accumulated two at a time (SMLAD: acc + lo*lo + hi*hi);
 * - AVR: one 8x8->16 MULS per product, summed in a 24-bit partial sum (__int24) that is added to
 *   the 32-bit total every TT_DOT_AVR_CHUNK products;
 * - portable C99 (every other core and the host): the reference the others are tested against.
 *
 * Every variant computes the same exact integer sums. Each product of two int8 values has
 * |p| <= 2**14, a sum of k <= TT_ACC_TERMS_LIMIT of them stays below 2**31 (66572 * 16384 < 2**31),
 * and a partial sum is a sum of a subset of the terms, so it obeys the same bound: the order and the
 * pairing of the terms do not change the result, and no intermediate (SMLAD's 32-bit sum, the AVR
 * 24-bit partial sum) can overflow. */
#include "tt_internal.h"

/* TT_DOT_DSP and TT_DOT_AVR (tt_internal.h) select the loops; the DSP ones use the compiler's
 * builtins behind the ACLE intrinsics __sxtb16 and __smlad (GCC and clang), so that the runtime
 * includes no header beyond stdint.h and stddef.h */

#if TT_DOT_DSP
/* one word of four int8 values (any alignment: ARMv7-M loads unaligned words) */
static inline uint32_t load4(const int8_t *p)
{
    uint32_t w;
    __builtin_memcpy(&w, p, 4);
    return w;
}

/* (int16)byte1 | (int16)byte3 << 16: SXTB16 of the word rotated right by 8 */
static inline uint32_t sxtb16_odd(uint32_t w)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}

static inline uint32_t sxtb16_even(uint32_t w)
{
    return (uint32_t)__builtin_arm_sxtb16((int32_t)w);
}

static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __builtin_arm_smlad((int32_t)a, (int32_t)b, acc);
}

/* low halfword of lo, low halfword of hi in the top half (PKHBT) */
static inline uint32_t pack_low(uint32_t lo, uint32_t hi)
{
    return (lo & 0xFFFFu) | (hi << 16);
}

/* top halfword of lo in the low half, top halfword of hi (PKHTB) */
static inline uint32_t pack_high(uint32_t lo, uint32_t hi)
{
    return (lo >> 16) | (hi & 0xFFFF0000u);
}
#endif

#if TT_DOT_AVR
/* 8x8->16 products summed in 24 bits: 511 * 16384 < 2**23 */
#define TT_DOT_AVR_CHUNK 511u

/* The 24-bit sum s of the chunk loops below: cleared, then per product one MULS (its carry is the
 * sign of the product, which SBC spreads over the top byte) and a 24-bit add, until k is 0 */
#define TT_DOT_AVR_START "clr %A[s]\n\tclr %B[s]\n\tclr %C[s]\n1:\n\t"
#define TT_DOT_AVR_MAC                                                                       \
    "muls %[ta], %[tb]\n\tsbc %[ext], %[ext]\n\tadd %A[s], r0\n\tadc %B[s], r1\n\t"      \
    "adc %C[s], %[ext]\n\tsbiw %[k], 1\n\tbrne 1b\n\tclr r1"
#define TT_DOT_AVR_OUTPUTS                                                                   \
    : [s] "=&r"(s), [ta] "=&a"(ta), [tb] "=&a"(tb), [ext] "=&r"(ext), [pa] "+e"(a), [pb] "+e"(b), \
      [k] "+w"(k)

/* sum a[i] * b[i], i < k, for 1 <= k <= TT_DOT_AVR_CHUNK: two loads and the MAC, 14 cycles */
static __int24 dot_avr_chunk(const int8_t *a, const int8_t *b, size_t k)
{
    __int24 s;
    uint8_t ta, tb, ext;
    __asm__(TT_DOT_AVR_START "ld %[ta], %a[pa]+\n\tld %[tb], %a[pb]+\n\t" TT_DOT_AVR_MAC TT_DOT_AVR_OUTPUTS
            :
            : "r0", "memory");
    return s;
}

/* the same with a and b read every a_step and b_step values (1 <= k) */
static __int24 dot_avr_chunk_strided(const int8_t *a, size_t a_step, const int8_t *b, size_t b_step, size_t k)
{
    __int24 s;
    uint8_t ta, tb, ext;
    __asm__(TT_DOT_AVR_START
            "ld %[ta], %a[pa]\n\tld %[tb], %a[pb]\n\t"
            "add %A[pa], %A[sa]\n\tadc %B[pa], %B[sa]\n\tadd %A[pb], %A[sb]\n\tadc %B[pb], %B[sb]\n\t"
            TT_DOT_AVR_MAC TT_DOT_AVR_OUTPUTS
            : [sa] "r"(a_step), [sb] "r"(b_step)
            : "r0", "memory");
    return s;
}

/* sum a[i * a_step] * b[i * b_step], i < k */
static int32_t dot_avr(const int8_t *a, size_t a_step, const int8_t *b, size_t b_step, size_t k)
{
    int32_t s = 0;
    while (k > 0) {
        size_t n = k < TT_DOT_AVR_CHUNK ? k : TT_DOT_AVR_CHUNK;
        s += a_step == 1u && b_step == 1u ? dot_avr_chunk(a, b, n) : dot_avr_chunk_strided(a, a_step, b, b_step, n);
        a += n * a_step;
        b += n * b_step;
        k -= n;
    }
    return s;
}
#endif

#if !TT_DOT_DSP && !TT_DOT_AVR
/* sum a[i] * b[i], i < k, portable */
static int32_t dot_portable(const int8_t *a, const int8_t *b, size_t k)
{
    int32_t s = 0;
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
#endif

#if TT_DOT_AVR
/* AVR: tt_dot_s8_x4 in assembly for 1 <= k <= TT_DOT_AVR_CHUNK (one 24-bit sum, four registers
 * saved by hand instead of the -mcall-prologues save of eighteen: it runs once per output), the
 * sum added to init with saturation (the V flag of the last ADC); other k: dot_s8_x4_long.
 * Arguments: init r22-r25, a r20:r21, b r18:r19, k r16:r17. Registers: X a, Z b, r16 and r17 the
 * factors, r14:r15:r19 the sum, r18 the sign of a product then of the sum, r20:r21 the count. */
TT_NOINLINE __attribute__((used)) static int32_t dot_s8_x4_long(int32_t init, const int8_t *a, const int8_t *b,
                                                                size_t k)
{
    return tt_add_sat32(init, dot_avr(a, 1u, b, 1u, k));
}

__asm__(
    ".text\n"
    ".global tt_dot_s8_x4\n"
    ".type tt_dot_s8_x4, @function\n"
    "tt_dot_s8_x4:\n\t"
    "cp r16, __zero_reg__\n\t"
    "cpc r17, __zero_reg__\n\t"
    "breq .Ld4_long\n\t"
    "cpi r16, lo8(512)\n\t"
    "ldi r26, hi8(512)\n\t"
    "cpc r17, r26\n\t"
    "brcs .Ld4_short\n"
    ".Ld4_long:\n\t"
    "jmp dot_s8_x4_long\n"
    ".Ld4_short:\n\t"
    "push r14\n\tpush r15\n\tpush r16\n\tpush r17\n\t"
    "movw r26, r20\n\t"
    "movw r30, r18\n\t"
    "movw r20, r16\n\t"
    "clr r14\n\tclr r15\n\tclr r19\n"
    ".Ld4_loop:\n\t"
    "ld r16, X+\n\t"
    "ld r17, Z+\n\t"
    "muls r16, r17\n\t"
    "sbc r18, r18\n\t"
    "add r14, r0\n\t"
    "adc r15, r1\n\t"
    "adc r19, r18\n\t"
    "subi r20, 1\n\t"
    "sbci r21, 0\n\t"
    "brne .Ld4_loop\n\t"
    "clr r1\n\t"
    "mov r18, r19\n\t"
    "lsl r18\n\t"
    "sbc r18, r18\n\t"
    "add r22, r14\n\t"
    "adc r23, r15\n\t"
    "adc r24, r19\n\t"
    "adc r25, r18\n\t"
    "brvc .Ld4_done\n\t"
    "ldi r22, 0xFF\n\tldi r23, 0xFF\n\tldi r24, 0xFF\n\tldi r25, 0x7F\n\t"
    "sbrs r18, 7\n\t"
    "rjmp .Ld4_done\n\t"
    "ldi r22, 0\n\tldi r23, 0\n\tldi r24, 0\n\tldi r25, 0x80\n"
    ".Ld4_done:\n\t"
    "pop r17\n\tpop r16\n\tpop r15\n\tpop r14\n\t"
    "ret\n"
    ".size tt_dot_s8_x4, .-tt_dot_s8_x4\n");
#else
int32_t tt_dot_s8_x4(int32_t init, const int8_t *a, const int8_t *b, size_t k)
{
#if TT_DOT_DSP
    int32_t s = 0;
    const int8_t *end4 = a + (k & ~(size_t)3u), *end = a + k;
    while (a != end4) {
        uint32_t wa = load4(a), wb = load4(b);
        s = smlad(sxtb16_even(wa), sxtb16_even(wb), s);
        s = smlad(sxtb16_odd(wa), sxtb16_odd(wb), s);
        a += 4;
        b += 4;
    }
    while (a != end) {
        s += *a++ * *b++;
    }
    return tt_add_sat32(init, s);
#else
    return tt_add_sat32(init, dot_portable(a, b, k));
#endif
}
#endif

#if TT_DOT_ROWS == 4u
/* The portable loops of the blocked products, shared by the Arm cores without the DSP extension
 * (the whole loop) and the DSP ones (their tails): x runs to end, the sums are locals. Four rows
 * r of w against x: s_r += x[i] * w_r[i]. */
#define TT_DOT_ROWS4_LOOP     \
    while (x != end) {        \
        int32_t v = *x++;     \
        s0 += v * *w0++;      \
        s1 += v * *w1++;      \
        s2 += v * *w2++;      \
        s3 += v * *w3++;      \
    }                         \
    out[0] = s0;              \
    out[1] = s1;              \
    out[2] = s2;              \
    out[3] = s3;
/* Two rows of w (stride apart) against two columns of x (stride apart) */
#define TT_DOT_2X2_LOOP                                                           \
    while (x != end) {                                                            \
        int32_t w0 = w[0], w1 = w[stride], x0 = x[0], x1 = x[stride];             \
        s00 += w0 * x0;                                                           \
        s01 += w0 * x1;                                                           \
        s10 += w1 * x0;                                                           \
        s11 += w1 * x1;                                                           \
        ++w;                                                                      \
        ++x;                                                                      \
    }                                                                             \
    out[0] = s00;                                                                 \
    out[1] = s01;                                                                 \
    out[2] = s10;                                                                 \
    out[3] = s11;
#endif

#if TT_DOT_DSP
/* Four products of one weight row: load its word, sign-extend it in pairs, two SMLADs. */
#define TT_DOT_ROW4(w, s)                       \
    "ldr %[t], [%[" w "]], #4\n\t"              \
    "sxtb16 %[u], %[t]\n\t"                    \
    "sxtb16 %[t], %[t], ror #8\n\t"            \
    "smlad %[" s "], %[xe], %[u], %[" s "]\n\t" \
    "smlad %[" s "], %[xo], %[t], %[" s "]\n\t"
/* Sixteen products: four input values against four rows (23 instructions). */
#define TT_DOT_ROWS4_STEP                  \
    "ldr %[t], [%[x]], #4\n\t"             \
    "sxtb16 %[xe], %[t]\n\t"               \
    "sxtb16 %[xo], %[t], ror #8\n\t"       \
    TT_DOT_ROW4("w0", "s0") TT_DOT_ROW4("w1", "s1") TT_DOT_ROW4("w2", "s2") TT_DOT_ROW4("w3", "s3")
/* The loop in assembly: thirteen live registers, more than the compiler keeps out of the stack;
 * the end pointer stays in memory (one load per 32 products), so that the loop also fits when the
 * frame pointer is reserved (-O0, -fno-omit-frame-pointer). */
#define TT_DOT_ROWS4_OPERANDS                                                                          \
    : [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3), [s0] "+r"(s0),        \
      [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [xe] "=&r"(xe), [xo] "=&r"(xo), [t] "=&r"(t),       \
      [u] "=&r"(u)                                                                                     \
    : [end] "m"(end)                                                                                   \
    : "cc", "memory"

void tt_dot_s8_rows4(const int8_t *x, const int8_t *w, size_t stride, size_t k, int32_t out[4])
{
    /* the four rows share every load and sign extension of x: 49 instructions per 32 products */
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2u * stride, *w3 = w + 3u * stride;
    const int8_t *end = x + (k & ~(size_t)7u);
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t xe, xo, t, u;
    if (x != end) {
        __asm__("1:\n\t" TT_DOT_ROWS4_STEP TT_DOT_ROWS4_STEP "ldr %[u], %[end]\n\tcmp %[x], %[u]\n\tbne 1b\n\t"
                TT_DOT_ROWS4_OPERANDS);
    }
    if (k & 4u) {
        __asm__(TT_DOT_ROWS4_STEP TT_DOT_ROWS4_OPERANDS);
    }
    end = x + (k & 3u);
    TT_DOT_ROWS4_LOOP
}

/* Sixteen products: four values of two weight rows against four values of two columns (20
 * instructions: 4 loads, 8 SXTB16, 8 SMLAD; every loaded word serves two rows or two columns). */
#define TT_DOT_2X2_STEP                           \
    "ldr %[c1o], [%[x], %[st]]\n\t"               \
    "ldr %[c0o], [%[x]], #4\n\t"                  \
    "sxtb16 %[c0e], %[c0o]\n\t"                   \
    "sxtb16 %[c0o], %[c0o], ror #8\n\t"           \
    "sxtb16 %[c1e], %[c1o]\n\t"                   \
    "sxtb16 %[c1o], %[c1o], ror #8\n\t"           \
    "ldr %[wo], [%[w], %[st]]\n\t"                \
    "sxtb16 %[we], %[wo]\n\t"                     \
    "sxtb16 %[wo], %[wo], ror #8\n\t"             \
    "smlad %[s10], %[we], %[c0e], %[s10]\n\t"     \
    "smlad %[s10], %[wo], %[c0o], %[s10]\n\t"     \
    "smlad %[s11], %[we], %[c1e], %[s11]\n\t"     \
    "smlad %[s11], %[wo], %[c1o], %[s11]\n\t"     \
    "ldr %[wo], [%[w]], #4\n\t"                   \
    "sxtb16 %[we], %[wo]\n\t"                     \
    "sxtb16 %[wo], %[wo], ror #8\n\t"             \
    "smlad %[s00], %[we], %[c0e], %[s00]\n\t"     \
    "smlad %[s00], %[wo], %[c0o], %[s00]\n\t"     \
    "smlad %[s01], %[we], %[c1e], %[s01]\n\t"     \
    "smlad %[s01], %[wo], %[c1o], %[s01]\n\t"
/* thirteen registers, the end pointer in memory (as TT_DOT_ROWS4_OPERANDS) */
#define TT_DOT_2X2_OPERANDS                                                                              \
    : [x] "+r"(x), [w] "+r"(w), [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11),      \
      [c0e] "=&r"(c0e), [c0o] "=&r"(c0o), [c1e] "=&r"(c1e), [c1o] "=&r"(c1o), [we] "=&r"(we),            \
      [wo] "=&r"(wo)                                                                                     \
    : [st] "r"(stride), [end] "m"(end)                                                                   \
    : "cc", "memory"

void tt_dot_s8_2x2(const int8_t *w, const int8_t *x, size_t stride, size_t k, int32_t out[4])
{
    /* two rows share every load of a column and two columns every load of a row: 43 instructions
     * per 32 products */
    const int8_t *end = x + (k & ~(size_t)7u);
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    uint32_t c0e, c0o, c1e, c1o, we, wo;
    if (x != end) {
        __asm__("1:\n\t" TT_DOT_2X2_STEP TT_DOT_2X2_STEP "ldr %[we], %[end]\n\tcmp %[x], %[we]\n\tbne 1b\n\t"
                TT_DOT_2X2_OPERANDS);
    }
    if (k & 4u) {
        __asm__(TT_DOT_2X2_STEP TT_DOT_2X2_OPERANDS);
    }
    end = x + (k & 3u);
    TT_DOT_2X2_LOOP
}
#endif

#if !TT_DOT_DSP && TT_DOT_ROWS == 4u
/* one input value against four rows (Cortex-M3): 9 instructions for 4 products */
#define TT_DOT_ROWS4_M3_STEP                      \
    "ldrsb %[v], [%[x]], #1\n\t"                  \
    "ldrsb %[t], [%[w0]], #1\n\t"                 \
    "mla %[s0], %[v], %[t], %[s0]\n\t"            \
    "ldrsb %[t], [%[w1]], #1\n\t"                 \
    "mla %[s1], %[v], %[t], %[s1]\n\t"            \
    "ldrsb %[t], [%[w2]], #1\n\t"                 \
    "mla %[s2], %[v], %[t], %[s2]\n\t"            \
    "ldrsb %[t], [%[w3]], #1\n\t"                 \
    "mla %[s3], %[v], %[t], %[s3]\n\t"
/* one input value against four rows (Cortex-M0; r7 the scratch register): 13 instructions for 4
 * products */
#define TT_DOT_ROWS4_M0_STEP                      \
    "ldrsb %[v], [%[x], %[i]]\n\t"               \
    "ldrsb r7, [%[w0], %[i]]\n\t"              \
    "muls r7, %[v]\n\t"                         \
    "add %[s0], r7\n\t"                         \
    "ldrsb r7, [%[w1], %[i]]\n\t"              \
    "muls r7, %[v]\n\t"                         \
    "add %[s1], r7\n\t"                         \
    "ldrsb r7, [%[w2], %[i]]\n\t"              \
    "muls r7, %[v]\n\t"                         \
    "add %[s2], r7\n\t"                         \
    "ldrsb r7, [%[w3], %[i]]\n\t"              \
    "muls r7, %[v]\n\t"                         \
    "add %[s3], r7\n\t"
/* Arm cores without the DSP extension (Cortex-M0, M3): each loaded input value serves four rows */
void tt_dot_s8_rows4(const int8_t *x, const int8_t *w, size_t stride, size_t k, int32_t out[4])
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2u * stride, *w3 = w + 3u * stride, *end = x + k;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#if defined(__ARM_ARCH_7M__) && defined(__GNUC__)
    /* Cortex-M3: two input values per iteration, every load post-indexed: 20 instructions per 8
     * products (the C loop: 11 per 4); twelve registers */
    const int8_t *end2 = x + (k & ~(size_t)1u);
    if (x != end2) {
        int32_t v, t;
        __asm__("1:\n\t" TT_DOT_ROWS4_M3_STEP TT_DOT_ROWS4_M3_STEP "cmp %[x], %[e]\n\tbne 1b\n\t"
                : [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3), [s0] "+r"(s0),
                  [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [v] "=&r"(v), [t] "=&r"(t)
                : [e] "r"(end2)
                : "cc", "memory");
    }
#elif defined(__ARM_ARCH_6M__) && defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
    /* Cortex-M0 (ARMv6-M: LDRSB with a register offset only, MULS and loads on r0-r7): the pointers
     * at the end of the pairs and one negative index for all five, the sums in high registers (ADD
     * takes them): 29 instructions per 8 products (the C loop: 20 per 4). Eight low registers:
     * seven operands bound to r0-r6, r7 (the frame pointer when one is kept) saved around the loop
     * and used as its scratch register. */
    size_t k2 = k & ~(size_t)1u;
    if (k2 != 0) {
        register int32_t i __asm__("r0") = -(int32_t)k2;
        register int32_t v __asm__("r1");
        register const int8_t *xe __asm__("r2") = x + k2, *e0 __asm__("r3") = w0 + k2;
        register const int8_t *e1 __asm__("r4") = w1 + k2, *e2 __asm__("r5") = w2 + k2, *e3 __asm__("r6") = w3 + k2;
        __asm__(".syntax unified\n\t"
                "push {r7}\n"
                "1:\n\t" TT_DOT_ROWS4_M0_STEP "adds %[i], #1\n\t" TT_DOT_ROWS4_M0_STEP "adds %[i], #1\n\t"
                "bne 1b\n\t"
                "pop {r7}\n"
                ".syntax divided\n"
                : [i] "+l"(i), [v] "=&l"(v), [s0] "+h"(s0), [s1] "+h"(s1), [s2] "+h"(s2), [s3] "+h"(s3)
                : [x] "l"(xe), [w0] "l"(e0), [w1] "l"(e1), [w2] "l"(e2), [w3] "l"(e3)
                : "cc", "memory");
        x += k2;
        w0 += k2;
        w1 += k2;
        w2 += k2;
        w3 += k2;
    }
#endif
    TT_DOT_ROWS4_LOOP
}

/* each loaded weight serves two windows and each window value two rows */
void tt_dot_s8_2x2(const int8_t *w, const int8_t *x, size_t stride, size_t k, int32_t out[4])
{
    const int8_t *end = x + k;
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    TT_DOT_2X2_LOOP
}
#endif

/* row[i] += e * w[i], i < count (|e| <= 128: each product is an int16, an 8x8 MUL on AVR) */
static void axpy_s8(int32_t *row, int16_t e, const int8_t *w, size_t count)
{
    int32_t *end4 = row + (count & ~(size_t)3u), *end = row + count;
    while (row != end4) {
        row[0] += (int16_t)(e * w[0]);
        row[1] += (int16_t)(e * w[1]);
        row[2] += (int16_t)(e * w[2]);
        row[3] += (int16_t)(e * w[3]);
        row += 4;
        w += 4;
    }
    while (row != end) {
        *row++ += (int16_t)(e * *w++);
    }
}

void tt_axpy2_s8(int32_t *row, int32_t e0, const int8_t *w0, int32_t e1, const int8_t *w1, size_t count)
{
#if TT_DOT_DSP
    /* (e1:e0) times (w1[i]:w0[i]) with one SMLAD per element: 22 instructions per 8 products */
    uint32_t e = pack_low((uint32_t)e0, (uint32_t)e1);
    int32_t *end4 = row + (count & ~(size_t)3u), *end = row + count;
    while (row != end4) {
        uint32_t a = load4(w0), b = load4(w1);
        uint32_t ae = sxtb16_even(a), ao = sxtb16_odd(a), be = sxtb16_even(b), bo = sxtb16_odd(b);
        row[0] = smlad(e, pack_low(ae, be), row[0]);
        row[1] = smlad(e, pack_low(ao, bo), row[1]);
        row[2] = smlad(e, pack_high(ae, be), row[2]);
        row[3] = smlad(e, pack_high(ao, bo), row[3]);
        row += 4;
        w0 += 4;
        w1 += 4;
    }
    while (row != end) {
        *row++ += e0 * *w0++ + e1 * *w1++;
    }
#else
    axpy_s8(row, (int16_t)e0, w0, count);
    axpy_s8(row, (int16_t)e1, w1, count);
#endif
}

#if TT_DOT_ROWS == 4u
/* row[i] += e[0] * w[0][i] + ... + e[3] * w[3][i], i < count (|e[r]| <= 128): on the Arm cores one
 * load and one store of the sum per four products (ten instructions: four LDRSB, four MUL/MLA) */
static void axpy4_s8(int32_t *row, const int32_t e[4], const int8_t *const w[4], size_t count)
{
    const int32_t e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3];
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    int32_t *end = row + count;
    while (row != end) {
        *row++ += e0 * *w0++ + e1 * *w1++ + e2 * *w2++ + e3 * *w3++;
    }
}
#endif

#if TT_DOT_DSP
/* tt_dot_s8_columns on the DSP cores, from two rows on: the rows with a nonzero error in pairs, a
 * chunk of TT_DOT_COLUMN_PAIRS pairs at a time (each pair: its two errors packed in one word and
 * the byte offsets of its two rows), then four columns at a time with their sums in registers: per
 * pair the two rows' words of weights are sign-extended in pairs (SXTB16), regrouped by column
 * (PKHBT, PKHTB) and multiplied by the packed errors in one SMLAD per two products (19
 * instructions per 8 products, against 13 per 4 with a load and a store of the sum per column in
 * axpy4_s8). The last count % 4 columns and an odd last row are added by scalar loops. The same
 * exact sums (see the top of the file). */
#define TT_DOT_COLUMN_PAIRS 16u
/* the pair loop in assembly when optimising (13 live registers: -O0 keeps a frame pointer) */
#if defined(__GNUC__) && defined(__OPTIMIZE__) && !defined(__OPTIMIZE_SIZE__)
#define TT_DOT_COLUMNS_ASM 1
#else
#define TT_DOT_COLUMNS_ASM 0
#endif
typedef struct {
    uint32_t e;      /* the two errors, int16 each: first row low */
    int32_t oa, ob;  /* byte offsets of the two rows in w */
} dot_pair_t;

static void dot_columns_pairs(const int8_t *e, size_t e_step, const int8_t *w, size_t rows, size_t count, int32_t *out)
{
    dot_pair_t pr[TT_DOT_COLUMN_PAIRS];
    const size_t k4 = count & ~(size_t)3u;
    size_t n = 0, k, np;
    int32_t el = 0, first = 1;
    const int8_t *wl = NULL;
    do {
        /* the next chunk of pairs of rows with a nonzero error */
        np = 0;
        for (; n < rows && np < TT_DOT_COLUMN_PAIRS; ++n) {
            int32_t en = e[n * e_step];
            if (en == 0) {
                continue;
            }
            if (wl == NULL) {
                el = en;
                wl = w + n * count;
                continue;
            }
            pr[np].e = pack_low((uint32_t)el, (uint32_t)en);
            pr[np].oa = (int32_t)(wl - w);
            pr[np++].ob = (int32_t)(n * count);
            wl = NULL;
        }
        if (np == 0) {
            break;
        }
        for (k = 0; k < k4; k += 4u) {
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            const int8_t *wk = w + k;
            const dot_pair_t *pp = pr, *pend = pr + np;
            if (!first) {
                s0 = out[k];
                s1 = out[k + 1u];
                s2 = out[k + 2u];
                s3 = out[k + 3u];
            }
#if TT_DOT_COLUMNS_ASM
            {
                uint32_t a, b, ae, be, t, x;
                __asm__("1:\n\t"
                        "ldr %[x], [%[pp]], #4\n\t"
                        "ldr %[a], [%[pp]], #4\n\t"
                        "ldr %[b], [%[pp]], #4\n\t"
                        "ldr %[a], [%[wk], %[a]]\n\t"
                        "ldr %[b], [%[wk], %[b]]\n\t"
                        "sxtb16 %[ae], %[a]\n\t"
                        "sxtb16 %[be], %[b]\n\t"
                        "sxtb16 %[a], %[a], ror #8\n\t"
                        "sxtb16 %[b], %[b], ror #8\n\t"
                        "pkhtb %[t], %[be], %[ae], asr #16\n\t"
                        "pkhbt %[ae], %[ae], %[be], lsl #16\n\t"
                        "smlad %[s2], %[x], %[t], %[s2]\n\t"
                        "smlad %[s0], %[x], %[ae], %[s0]\n\t"
                        "pkhtb %[t], %[b], %[a], asr #16\n\t"
                        "pkhbt %[a], %[a], %[b], lsl #16\n\t"
                        "smlad %[s3], %[x], %[t], %[s3]\n\t"
                        "smlad %[s1], %[x], %[a], %[s1]\n\t"
                        "cmp %[pp], %[pend]\n\t"
                        "bne 1b\n\t"
                        : [pp] "+r"(pp), [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [a] "=&r"(a),
                          [b] "=&r"(b), [ae] "=&r"(ae), [be] "=&r"(be), [t] "=&r"(t), [x] "=&r"(x)
                        : [wk] "r"(wk), [pend] "r"(pend)
                        : "cc", "memory");
            }
#else
            for (; pp != pend; ++pp) {
                const uint32_t a = load4(wk + pp->oa), b = load4(wk + pp->ob), x = pp->e;
                const uint32_t ae = sxtb16_even(a), ao = sxtb16_odd(a), be = sxtb16_even(b), bo = sxtb16_odd(b);
                s0 = smlad(x, pack_low(ae, be), s0);
                s1 = smlad(x, pack_low(ao, bo), s1);
                s2 = smlad(x, pack_high(ae, be), s2);
                s3 = smlad(x, pack_high(ao, bo), s3);
            }
#endif
            out[k] = s0;
            out[k + 1u] = s1;
            out[k + 2u] = s2;
            out[k + 3u] = s3;
        }
        for (k = k4; k < count; ++k) {
            int32_t s = first ? 0 : out[k];
            size_t p;
            for (p = 0; p < np; ++p) {
                s += (int32_t)(int16_t)pr[p].e * (int32_t)w[pr[p].oa + (int32_t)k] +
                     (int32_t)(int16_t)(pr[p].e >> 16) * (int32_t)w[pr[p].ob + (int32_t)k];
            }
            out[k] = s;
        }
        first = 0;
    } while (n < rows);
    if (first) {
        for (k = 0; k < count; ++k) {
            out[k] = 0;
        }
    }
    if (wl != NULL) {
        /* an odd last row with an error */
        for (k = 0; k < count; ++k) {
            out[k] += el * (int32_t)wl[k];
        }
    }
}
#endif

void tt_dot_s8_columns(const int8_t *e, size_t e_step, const int8_t *w, size_t rows, size_t count, int32_t *out)
{
#if TT_DOT_DSP
    if (rows >= 2u) {
        dot_columns_pairs(e, e_step, w, rows, count, out);
        return;
    }
#endif
    /* the rows with a non-zero factor in groups (four on the Arm cores from four rows on, else
     * two), then the last ones two and one at a time */
    int32_t ep[TT_DOT_ROWS == 4u ? 4 : 2];
    const int8_t *wp[TT_DOT_ROWS == 4u ? 4 : 2];
    size_t n, k, np = 0, group = 2u;
#if TT_DOT_AVR
    if (rows >= 4u) {
        /* one 24-bit dot product per column: no 32-bit load, add and store per product */
        for (k = 0; k < count; ++k) {
            out[k] = dot_avr(e, e_step, w + k, count, rows);
        }
        return;
    }
#endif
#if TT_DOT_ROWS == 4u
    if (rows >= 4u) {
        group = 4u;
    }
#endif
    for (k = 0; k < count; ++k) {
        out[k] = 0;
    }
    for (n = 0; n < rows; ++n) {
        int32_t en = e[n * e_step];
        if (en == 0) {
            continue;
        }
        ep[np] = en;
        wp[np++] = w + n * count;
        if (np == group) {
#if TT_DOT_ROWS == 4u
            if (group == 4u) {
                axpy4_s8(out, ep, wp, count);
                np = 0;
                continue;
            }
#endif
            tt_axpy2_s8(out, ep[0], wp[0], ep[1], wp[1], count);
            np = 0;
        }
    }
    if (np >= 2u) {
        tt_axpy2_s8(out, ep[0], wp[0], ep[1], wp[1], count);
    }
    if (np & 1u) {
        axpy_s8(out, (int16_t)ep[np - 1u], wp[np - 1u], count);
    }
}
