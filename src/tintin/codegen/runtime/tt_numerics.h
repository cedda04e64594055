/* tt_numerics.h - integer numerics of the tintin C runtime (mirrors tintin.numerics).
 *
 * Rounding of right shifts (tintin.numerics.rounding), fixed-point multipliers of scale ratios
 * (tintin.numerics.scale), range estimation and rescaling (tintin.numerics.rescale).
 * Every function is integer-only and bit-exact with its Python counterpart.
 */
#ifndef TT_NUMERICS_H
#define TT_NUMERICS_H

#include "tt_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scales ------------------------------------------------------------------------------ */

/* a * b: exponents add (Scale.__mul__). */
tt_scale_t tt_scale_mul(tt_scale_t a, tt_scale_t b);
/* a / b: exponents subtract (Scale.__truediv__). */
tt_scale_t tt_scale_div(tt_scale_t a, tt_scale_t b);
#if defined(__AVR__) && !defined(TT_SCALE_ARITHMETIC_DEFINITIONS)
/* AVR: the same arithmetic inline (a call passes the second scale in call-saved registers, whose
 * save and restore cost more than the three additions) */
static inline tt_scale_t tt_scale_mul_avr(tt_scale_t a, tt_scale_t b)
{
    tt_scale_t r;
    r.S = (int16_t)(uint16_t)((uint16_t)a.S + (uint16_t)b.S);
    r.U = (int16_t)(uint16_t)((uint16_t)a.U + (uint16_t)b.U);
    r.D = (int16_t)(uint16_t)((uint16_t)a.D + (uint16_t)b.D);
    return r;
}
static inline tt_scale_t tt_scale_div_avr(tt_scale_t a, tt_scale_t b)
{
    tt_scale_t r;
    r.S = (int16_t)(uint16_t)((uint16_t)a.S - (uint16_t)b.S);
    r.U = (int16_t)(uint16_t)((uint16_t)a.U - (uint16_t)b.U);
    r.D = (int16_t)(uint16_t)((uint16_t)a.D - (uint16_t)b.D);
    return r;
}
#define tt_scale_mul tt_scale_mul_avr
#define tt_scale_div tt_scale_div_avr
#endif

/* ---- counter-based random bits (tintin.numerics.rounding) ------------------------------------ */

/* 32-bit hash (xorshift-multiply, lowbias32 constants): mix32. */
uint32_t tt_mix32(uint32_t x);
/* The stochastic-rounding draw of element `index` under stream key `key`, weyl32:
 * (key + index * 0x9E3779B9) mod 2**32 (draw_bits); its top n bits round a shift by n. */
uint32_t tt_draw_bits(uint32_t key, uint32_t index);
/* RoundingStream(seed, step). */
void tt_stream_init(tt_stream_t *stream, uint32_t seed, uint32_t step);
/* RoundingStream.key(site) = mix32(mix32(mix32(seed) ^ step) ^ site). */
uint32_t tt_stream_key(const tt_stream_t *stream, uint32_t site);
/* RoundingStream.advance(): the next training step. */
void tt_stream_advance(tt_stream_t *stream);

/* ---- rounded right shifts (shift_round) ---------------------------------------------------
 * x / 2**n rounded on the magnitude, sign restored: round(-x) == -round(x). n == 0 returns x.
 * `index` is the element's flat index (C order) in the array the Python rounds in one call;
 * `key` the stream key of that call. s32 versions: any int32 x; n may exceed 31 (computed as
 * s64). s64 versions: |x| + 2**n <= 2**63, n <= 62 (n > 62 returns 0, Python refuses it). */
int32_t tt_shift_round_nearest_s32(int32_t x, uint8_t n);
int64_t tt_shift_round_nearest_s64(int64_t x, uint8_t n);
int32_t tt_shift_round_stochastic_s32(int32_t x, uint8_t n, uint32_t key, uint32_t index);
int64_t tt_shift_round_stochastic_s64(int64_t x, uint8_t n, uint32_t key, uint32_t index);
int32_t tt_shift_round_pseudo_s32(int32_t x, uint8_t n);
int64_t tt_shift_round_pseudo_s64(int64_t x, uint8_t n);
/* Dispatch on `mode` (key and index are ignored by the deterministic modes). */
int32_t tt_shift_round_s32(int32_t x, uint8_t n, tt_rounding_t mode, uint32_t key, uint32_t index);
int64_t tt_shift_round_s64(int64_t x, uint8_t n, tt_rounding_t mode, uint32_t key, uint32_t index);

/* shift_round on a buffer: y[i] = round(x[i] / 2**n) with draw index i. y may alias x. */
tt_status_t tt_shift_round_buffer_s32(const int32_t *x, int32_t *y, size_t count, uint8_t n, tt_rounding_t mode,
                                      uint32_t key);
tt_status_t tt_shift_round_buffer_s64(const int64_t *x, int64_t *y, size_t count, uint8_t n, tt_rounding_t mode,
                                      uint32_t key);

/* ---- fixed-point multipliers (tintin.numerics.scale) --------------------------------------- */

/* ratio_multiplier: (M, n) with ratio ~= M * 2**-n, M in [2**14, 2**15).
 * TT_ERR_RANGE when |U| or |D| > TT_MAX_FACTOR_STEPS (Python: OverflowError). */
tt_status_t tt_ratio_multiplier(tt_scale_t ratio, tt_multiplier_t *out);
/* divide_multiplier: (M, n) / divisor, divisor in [1, 2**31] (M must be in [2**14, 2**15)). */
tt_status_t tt_divide_multiplier(tt_multiplier_t mult, uint32_t divisor, tt_multiplier_t *out);

/* apply_multiplier on one value: round(x * M / 2**n); n < 0 multiplies by 2**-n. limit >= 0
 * clips to [-limit, limit] (and bounds the product before a left shift as the Python does);
 * limit < 0 means no limit. Requires |x| < 2**47 (the product x * M stays inside int64). */
int64_t tt_apply_multiplier_scalar(int64_t x, tt_multiplier_t mult, tt_rounding_t rounding,
                                   uint32_t key, uint32_t index, int64_t limit);
/* apply_multiplier on an int32 array with a limit in [0, 2**31 - 1] (so y fits int32); element i
 * uses draw index i. y may alias x. */
tt_status_t tt_apply_multiplier_s32(const int32_t *x, int32_t *y, size_t count, tt_multiplier_t mult,
                                    tt_rounding_t rounding, uint32_t key, int32_t limit);

/* apply_multiplier on an int64 buffer (|x| < 2**47); limit < 0: none. y may alias x. */
tt_status_t tt_apply_multiplier_s64(const int64_t *x, int64_t *y, size_t count, tt_multiplier_t mult,
                                    tt_rounding_t rounding, uint32_t key, int64_t limit);

/* ---- range estimation ---------------------------------------------------------------------- */

/* max |x| (0 for count == 0). */
uint32_t tt_max_abs_s8(const int8_t *x, size_t count);
uint32_t tt_max_abs_s16(const int16_t *x, size_t count);
uint32_t tt_max_abs_s32(const int32_t *x, size_t count);
/* Bit length of v (0 for 0). */
uint8_t tt_bit_length_u32(uint32_t v);
uint8_t tt_bit_length_u64(uint64_t v);

/* ---- rescale (tintin.numerics.rescale) ------------------------------------------------------ */

/* choose_rescale: for a tensor with max|x| = amax, the fine step and shift that bring it into the
 * symmetric `bits`-bit range (bits in [2, 31]). Returns 1 and fills *choice when a change is
 * needed, 0 when the tensor already fits (amax <= 2**(bits-1) - 1). */
uint8_t tt_choose_rescale(uint32_t amax, uint8_t bits, tt_scale_mode_t mode, tt_rescale_t *choice);
/* rescaled_scale: the exact scale after applying `choice` to a tensor of scale `scale`. */
tt_scale_t tt_rescaled_scale(tt_scale_t scale, const tt_rescale_t *choice);
/* apply_step on one element: clip(round(x * m, p + shift)) into [-limit, limit]. */
int32_t tt_rescale_apply(int32_t x, const tt_rescale_t *choice, int32_t limit, tt_rounding_t rounding,
                         uint32_t key, uint32_t index);
/* The apply half of rescale (nearest): out = acc rescaled by `choice` when `change`, else copied.
 * For kernels that found the range while accumulating (the scale is tt_rescaled_scale's). */
void tt_rescale_write_s8(const int32_t *acc, size_t count, uint8_t change, const tt_rescale_t *choice, int8_t *out);
/* rescale(acc, scale, 8, mode, rounding, key): int32 -> int8. *scale is the input's scale on
 * entry and the output's on return. out may alias acc only if it is the same storage read
 * element by element (out[i] is written after acc[i] is read). */
tt_status_t tt_rescale_s32_to_s8(const int32_t *acc, size_t count, tt_scale_t *scale, tt_scale_mode_t mode,
                                 tt_rounding_t rounding, uint32_t key, int8_t *out);
/* rescale(x, scale, 8, mode) of int16 mantissas (nearest): the int8 view of int16 weights
 * (Parameter.forward_view). See docs/c-runtime.md for the one input range where the Python
 * int16 arithmetic wraps and this function does not. */
tt_status_t tt_rescale_s16_to_s8(const int16_t *x, size_t count, tt_scale_t *scale, tt_scale_mode_t mode,
                                 int8_t *out);

/* choose_grid_rescale: coarser grid scale (u**a * d**b, 0 <= a, b <= 2; pow2: a = b = 0) for a
 * persistent tensor whose max |x| = amax outgrew the `bits` range (bits in [2, 31]).
 * *changed = 0 when it fits; else the new scale and the multiplier (nearest rounding) to apply.
 * TT_ERR_OVERFLOW when amax >= 2**47; TT_ERR_RANGE when scale.U or scale.D is too far from the
 * grid for tt_ratio_multiplier. */
tt_status_t tt_choose_grid_rescale(uint64_t amax, tt_scale_t scale, uint8_t bits, tt_scale_mode_t mode,
                                   uint8_t *changed, tt_scale_t *new_scale, tt_multiplier_t *mult);

/* ---- table functions (tintin.numerics.tables) ------------------------------------------------ */

/* exp2_frac_q15: 2**(frac / 65536) in Q15 (32768..65535), linear interpolation in EXP2_Q15. */
uint32_t tt_exp2_frac_q15(uint16_t frac);
/* log2_q16: log2(x) in Q16 for x >= 1 (0 for x == 0, where the Python raises). */
int32_t tt_log2_q16(uint32_t x);

/* The int8 domain of the runtime: inputs and weights are int8 in [-127, 127] (symmetric, the
 * simulator's rule); -128 lies outside it (a product of two -128 exceeds the 127 * 127 that the
 * accumulator bounds assume). TT_OK when no value of x[0..count) is -128, else TT_ERR_ARG.
 * tt_train_step, tt_forward and tt_predict reject such inputs with it. */
tt_status_t tt_check_domain_s8(const int8_t *x, size_t count);

/* FNV-1a (32-bit) of count bytes, continuing from hash (start with 0x811C9DC5). */
uint32_t tt_fnv1a_u32(uint32_t hash, const uint8_t *data, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* TT_NUMERICS_H */
