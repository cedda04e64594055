/* tt_types.h - basic types of the tintin C runtime.
 *
 * Portable C99: only <stdint.h> and <stddef.h>; integer arithmetic only, no allocation. Every kernel takes
 * caller-owned buffers and returns a tt_status_t. A quantised tensor is an array of integer
 * mantissas plus one tt_scale_t: real value = mantissa * 2**S * (5/4)**U * (3/4)**D.
 */
#ifndef TT_TYPES_H
#define TT_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result of every kernel that can fail. Outputs are unspecified unless TT_OK, except where a
 * function documents a saturated result with TT_ERR_OVERFLOW. */
typedef enum {
    TT_OK = 0,
    TT_ERR_SHAPE = 1,    /* a size is zero where it must not be, or breaks an accumulator bound */
    TT_ERR_OVERFLOW = 2, /* a value left its documented range (the result is saturated) */
    TT_ERR_ARG = 3,      /* NULL pointer, unknown enum value, bad label or parameter */
    TT_ERR_RANGE = 4,    /* a scale ratio needs more than TT_MAX_FACTOR_STEPS u/d steps */
    TT_ERR_IO = 5,       /* a flash operation failed (tt_checkpoint_save / tt_checkpoint_restore) */
    TT_ERR_NO_STATE = 6  /* no valid training state of this model in the flash region */
} tt_status_t;

/* How an integer right shift is rounded (tintin.numerics.rounding.Rounding). */
typedef enum {
    TT_ROUND_NEAREST = 0,          /* half away from zero */
    TT_ROUND_STOCHASTIC = 1,       /* weyl32 draw of a hashed key */
    TT_ROUND_PSEUDO_STOCHASTIC = 2 /* NITI: discarded bits are the draw */
} tt_rounding_t;

/* Which scales a rescale may produce (tintin.numerics.scale.ScaleMode). */
typedef enum {
    TT_SCALE_POW2 = 0,    /* 2**S only */
    TT_SCALE_COMPOUND = 1 /* 2**S * u**U * d**D */
} tt_scale_mode_t;

/* A tensor scale 2**S * (5/4)**U * (3/4)**D (tintin.numerics.Scale). Exponents stay small in
 * practice (|S| < 200); the runtime needs |S|, |U|, |D| <= 16000 so that sums cannot wrap. */
typedef struct {
    int16_t S;
    int16_t U;
    int16_t D;
} tt_scale_t;

/* A fixed-point multiplier: value = m * 2**-n with m in [2**14, 2**15) (or m = 0). */
typedef struct {
    int32_t m;
    int32_t n;
} tt_multiplier_t;

/* The rescale that tt_choose_rescale selected: multiply by m (= 5**a * 3**b), round-shift right
 * by p + shift; the scale gains 2**(p + shift - 2a - 2b) * u**-a * d**-b. */
typedef struct {
    uint8_t m;
    uint8_t p;
    uint8_t a;
    uint8_t b;
    uint8_t shift;
} tt_rescale_t;

/* Counter-based source of stochastic rounding keys (tintin.numerics.RoundingStream). */
typedef struct {
    uint32_t seed;
    uint32_t step;
} tt_stream_t;

#ifdef __cplusplus
}
#endif

#endif /* TT_TYPES_H */
