/* tt_optim.h - integer SGD updates (mirrors tintin.optim.sgd.IntegerSGD).
 *
 * One call updates one parameter from its int32 gradient, exactly as IntegerSGD.update:
 *   aligned rule: delta = round(g * M / 2**n), (M, n) = divide_multiplier(ratio_multiplier(
 *                 lr * grad_scale / w_scale), batch_size), rounding cfg->rounding;
 *                 with momentum (shift k > 0): v <- v - round(v / 2**k) + round(g * M / 2**(n-8)),
 *                 v clipped to +-2**40, delta = round(v / 2**8);
 *   NITI rule (weights only): delta = round(g / 2**(bitlen(max|g|) - mu)) (left shift if <= 0);
 *                 no update at all when g is all zero.
 * then w <- w - delta; weights that leave the range rescale the whole tensor to a coarser grid
 * scale (cfg->weight_rescale) or saturate; biases saturate at +-2**30. Stochastic draws use the
 * element's flat index in the gradient being applied and the key of site 4 * parameter_index
 * (tt_stream_key).
 */
#ifndef TT_OPTIM_H
#define TT_OPTIM_H

#include "tt_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TT_RULE_ALIGNED = 0, /* Tin-Tin gradient-aligned update */
    TT_RULE_NITI = 1     /* NITI bit-width rule (weights; biases still use the aligned rule) */
} tt_update_rule_t;

/* OptimConfig after host-side conversion (IntegerSGD.lr_scale, mu, batch size). */
typedef struct {
    uint32_t batch_size;    /* >= 1: the aligned update divides by it */
    tt_scale_t lr;          /* learning rate as a scale */
    uint8_t rule;           /* tt_update_rule_t */
    uint8_t rounding;       /* tt_rounding_t of delta */
    uint8_t mode;           /* tt_scale_mode_t of the weight grid rescale */
    uint8_t mu;             /* NITI: bits of the largest step, 1..8 */
    uint8_t momentum_shift; /* 0: no momentum; 1..8: beta = 1 - 2**-shift */
    uint8_t weight_rescale; /* 1: rescale a weight tensor that outgrows its range; 0: saturate */
} tt_sgd_config_t;

/* Full int8 weight tensor (count elements). *w_scale may change (grid rescale).
 * grad: the int32 gradient at grad_scale; it is used as scratch and holds garbage afterwards.
 * momentum: count int64 values (zero before the first step) when cfg->momentum_shift > 0 and
 * the rule is aligned, else ignored (may be NULL).
 * Bounds: |g| < 2**31 (|g| <= 2**30 by the accumulator bound); |w - delta| < 2**31 for a
 * bit-exact rescale; beyond it the rescale reads saturated values and TT_ERR_OVERFLOW is returned.
 * TT_ERR_RANGE when lr * grad_scale / w_scale needs more than 64 u or d steps. */
tt_status_t tt_sgd_update_weight_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                    tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                    uint32_t key);
/* The same for int16 master weights (range +-32767). Refresh the int8 view afterwards
 * (tt_weight_view_s16_to_s8). */
tt_status_t tt_sgd_update_weight_s16(int16_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                     tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                     uint32_t key);
/* int32 bias (aligned rule always), saturating at +-2**30; grad is not modified. */
tt_status_t tt_sgd_update_bias_s32(int32_t *bias, tt_scale_t bias_scale, size_t count, const int32_t *grad,
                                   tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                   uint32_t key);

/* Sparse update (Parameter.trainable_rows): only rows[0..nrows) (distinct, < row_count) of a
 * (row_count, cols) tensor change; grad_rows (nrows, cols) holds their gradients in that order
 * (draw index j * cols + k) and momentum (nrows, cols) their momentum. The tensor saturates and
 * never rescales, so frozen rows stay bit-identical. */
tt_status_t tt_sgd_update_weight_rows_s8(int8_t *weight, tt_scale_t w_scale, size_t row_count, size_t cols,
                                         const uint16_t *rows, size_t nrows, const int32_t *grad_rows,
                                         tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                         uint32_t key);
tt_status_t tt_sgd_update_weight_rows_s16(int16_t *weight, tt_scale_t w_scale, size_t row_count, size_t cols,
                                          const uint16_t *rows, size_t nrows, const int32_t *grad_rows,
                                          tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                          uint32_t key);
tt_status_t tt_sgd_update_bias_rows_s32(int32_t *bias, tt_scale_t bias_scale, size_t row_count,
                                        const uint16_t *rows, size_t nrows, const int32_t *grad_rows,
                                        tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                        uint32_t key);

#ifdef __cplusplus
}
#endif

#endif /* TT_OPTIM_H */
