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

#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__)
/* the cases the inline tt_align_bias_one (tt_internal.h) leaves */
int32_t tt_align_bias_one_general(int32_t b, tt_multiplier_t mult)
#else
int32_t tt_align_bias_one(int32_t b, tt_multiplier_t mult)
#endif
{
    if (mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L) {
        uint32_t a = tt_mag32(b), c, hi, lo;
        uint16_t m = (uint16_t)mult.m, ah = (uint16_t)(a >> 16), al = (uint16_t)a;
        uint8_t n = (uint8_t)mult.n;
#if defined(__AVR__)
        /* 16x16->32 products in registers (four MULs each) */
        hi = tt_mul_u16_avr(ah, m);
        lo = tt_mul_u16_avr(al, m) + tt_bit32((uint8_t)(n - 1));
#else
        /* 16x16->32 products */
        hi = (uint32_t)ah * m;                              /* < 2**30 */
        lo = (uint32_t)al * m + tt_bit32((uint8_t)(n - 1)); /* < 2**31 + 2**30 */
#endif
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
