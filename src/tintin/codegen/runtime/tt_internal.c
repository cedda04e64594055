/* tt_internal.c - out-of-line helpers of tt_internal.h shared by the kernel variants of several ops
 * (bias alignment of the linear and convolution kernels, grid rescales of the updates; their dot
 * products are in tt_dot.c). Hot loops
 * call them from two passes, so they stay separate functions. */
#include "tt_internal.h"

int32_t tt_grid_rescale_one(int64_t x, tt_multiplier_t mult, int32_t limit)
{
    uint64_t ax = tt_mag64(x);
    if (mult.n >= 1 && mult.n <= 31 && ax < 65536u && mult.m >= 0 && mult.m < 32768L) {
        uint16_t a16 = (uint16_t)ax, m16 = (uint16_t)mult.m;
        uint32_t q;
#if defined(__AVR__)
        q = tt_shr32(tt_mul_u16_avr(a16, m16) + tt_bit32((uint8_t)(mult.n - 1)), (uint8_t)mult.n);
#else
        q = tt_shr32((uint32_t)a16 * m16 + tt_bit32((uint8_t)(mult.n - 1)), (uint8_t)mult.n);
#endif
        q = q > (uint32_t)limit ? (uint32_t)limit : q;
        return x < 0 ? -(int32_t)q : (int32_t)q;
    }
    return (int32_t)tt_apply_multiplier_scalar(x, mult, TT_ROUND_NEAREST, 0, 0, limit);
}

#if defined(__AVR__)
/* tt_align_bias_one for 0 <= m < 2**15, 1 <= n <= 31 (tt_internal.h): with a = |b|,
 * c = min(floor((a * m + 2**(n-1)) / 2**n), TT_BIAS_ALIGN_LIMIT) and the sign of b: the 48-bit
 * product from eight 8x8->16 MULs, shifted by n - 1 (whole bytes, then bits), plus one, shifted by
 * one (floor((P + 2**(n-1)) / 2**n) = floor((floor(P / 2**(n-1)) + 1) / 2)). b in r22-r25 (a after
 * the sign is taken into T), m in r20:r21, n in r18; the product in r26, r27, r30, r31, r16, r17;
 * r19 zero. */
__asm__(
    ".text\n"
    ".global avr_align_bias\n"
    ".type avr_align_bias, @function\n"
    "avr_align_bias:\n\t"
    "push r16\n\tpush r17\n\t"
    "clr r19\n\t"
    "bst r25, 7\n\t"
    "brtc 0f\n\t"
    "com r25\n\tcom r24\n\tcom r23\n\tneg r22\n\tsbci r23, 0xFF\n\tsbci r24, 0xFF\n\tsbci r25, 0xFF\n"
    "0:\n\t"
    "mul r22, r20\n\tmovw r26, r0\n\t"
    "mul r23, r21\n\tmovw r30, r0\n\t"
    "mul r25, r21\n\tmovw r16, r0\n\t"
    "mul r22, r21\n\tadd r27, r0\n\tadc r30, r1\n\tadc r31, r19\n\tadc r16, r19\n\tadc r17, r19\n\t"
    "mul r23, r20\n\tadd r27, r0\n\tadc r30, r1\n\tadc r31, r19\n\tadc r16, r19\n\tadc r17, r19\n\t"
    "mul r24, r20\n\tadd r30, r0\n\tadc r31, r1\n\tadc r16, r19\n\tadc r17, r19\n\t"
    "mul r24, r21\n\tadd r31, r0\n\tadc r16, r1\n\tadc r17, r19\n\t"
    "mul r25, r20\n\tadd r31, r0\n\tadc r16, r1\n\tadc r17, r19\n\t"
    "dec r18\n"
    "1:\n\t"
    "cpi r18, 8\n\t"
    "brlo 2f\n\t"
    "mov r26, r27\n\tmov r27, r30\n\tmov r30, r31\n\tmov r31, r16\n\tmov r16, r17\n\tclr r17\n\t"
    "subi r18, 8\n\t"
    "rjmp 1b\n"
    "2:\n\t"
    "tst r18\n\t"
    "breq 4f\n"
    "3:\n\t"
    "lsr r17\n\tror r16\n\tror r31\n\tror r30\n\tror r27\n\tror r26\n\t"
    "dec r18\n\t"
    "brne 3b\n"
    "4:\n\t"
    "subi r26, 0xFF\n\tsbci r27, 0xFF\n\tsbci r30, 0xFF\n\tsbci r31, 0xFF\n\tsbci r16, 0xFF\n\tsbci r17, 0xFF\n\t"
    "lsr r17\n\tror r16\n\tror r31\n\tror r30\n\tror r27\n\tror r26\n\t"
    /* above the limit 2**30 (bytes 4-5 not zero, or the value > 0x40000000): the limit */
    "ldi r22, 0\n\tldi r23, 0\n\tldi r24, 0\n\tldi r25, 0x40\n\t"
    "or r16, r17\n\t"
    "brne 5f\n\t"
    "cp r22, r26\n\tcpc r23, r27\n\tcpc r24, r30\n\tcpc r25, r31\n\t"
    "brlo 5f\n\t"
    "movw r22, r26\n\tmovw r24, r30\n"
    "5:\n\t"
    "brtc 6f\n\t"
    "com r25\n\tcom r24\n\tcom r23\n\tneg r22\n\tsbci r23, 0xFF\n\tsbci r24, 0xFF\n\tsbci r25, 0xFF\n"
    "6:\n\t"
    "clr r1\n\t"
    "pop r17\n\tpop r16\n\t"
    "ret\n"
    ".size avr_align_bias, .-avr_align_bias\n");
#endif

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
/* the cases the inline tt_align_bias_one (tt_internal.h) leaves */
int32_t tt_align_bias_one_general(int32_t b, tt_multiplier_t mult)
#else
int32_t tt_align_bias_one(int32_t b, tt_multiplier_t mult)
#endif
{
#if defined(__AVR__)
    if (tt_avr_bias_mult_ok(mult)) {
        /* the exact rounded product in registers, no shift loop over 32 bits */
        return avr_align_bias(b, (uint16_t)mult.m, (uint8_t)mult.n);
    }
#endif
    if (mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L) {
        uint32_t a = tt_mag32(b), c, hi, lo;
        uint16_t m = (uint16_t)mult.m, ah = (uint16_t)(a >> 16), al = (uint16_t)a;
        uint8_t n = (uint8_t)mult.n;
        /* 16x16->32 products */
        hi = (uint32_t)ah * m;                              /* < 2**30 */
        lo = (uint32_t)al * m + tt_bit32((uint8_t)(n - 1)); /* < 2**31 + 2**30 */
        if (n >= 16) {
            /* floor((hi * 2**16 + lo) / 2**n) = floor((hi + floor(lo / 2**16)) / 2**(n - 16)) */
            c = tt_shr32(hi + (lo >> 16), (uint8_t)(n - 16));
        } else if (hi > tt_shr32((uint32_t)TT_BIAS_ALIGN_LIMIT, (uint8_t)(16 - n))) {
            c = (uint32_t)TT_BIAS_ALIGN_LIMIT; /* clipped anyway */
        } else {
            c = (hi << (16 - n)) + tt_shr32(lo, n);
        }
        c = c > (uint32_t)TT_BIAS_ALIGN_LIMIT ? (uint32_t)TT_BIAS_ALIGN_LIMIT : c;
        return b < 0 ? -(int32_t)c : (int32_t)c;
    }
    return (int32_t)tt_apply_multiplier_scalar(b, mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT);
}
