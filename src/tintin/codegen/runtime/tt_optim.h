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
 * Bounds: |g| < 2**31 (|g| <= 2**30 by the accumulator bound); |w - delta| < 2**47 (momentum:
 * |delta| <= 2**32), exact in int64 as the Python; beyond it (only with |g| * M >= 2**62) the
 * weights saturate and TT_ERR_OVERFLOW is returned.
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

/* ---- error feedback (tt_sgd_feedback.c) -------------------------------------------------------
 * An int8 weight with an L-bit remainder per element (bits = L in {2, 4, 8}) packed in `plane`:
 * ceil(count * L / 8) bytes, element i the two's-complement field at bits [(i*L) % 8, +L) of byte
 * (i*L) / 8 (little-endian within the byte). Master value W = 2**L * w + r; the step subtracts
 * fine = round(g * M / 2**(n - L)) from W and splits it again (w = (W + 2**(L-1)) >> L), so
 * updates below one weight step add up. Aligned rule without momentum only (else TT_ERR_ARG);
 * `key`: the stream key of site 4 * parameter_index + 1. TT_ERR_OVERFLOW (nothing changes) when
 * n < L and max|g| * M * 2**(L - n) >= 2**46. The full tensor rescales like
 * tt_sgd_update_weight_s8 (W rounded to the new grid scale, nearest); grad is scratch. */
tt_status_t tt_sgd_update_weight_feedback_s8(int8_t *weight, tt_scale_t *w_scale, uint8_t *plane, uint8_t bits,
                                             size_t count, int32_t *grad, tt_scale_t grad_scale,
                                             const tt_sgd_config_t *cfg, uint32_t key);
/* Sparse rows of the same (draw index j * cols + k, as tt_sgd_update_weight_rows_s8): W saturates
 * at +-((127 << L) + 2**(L-1) - 1), frozen rows and their remainders stay bit-identical. */
tt_status_t tt_sgd_update_weight_feedback_rows_s8(int8_t *weight, tt_scale_t w_scale, uint8_t *plane, uint8_t bits,
                                                  size_t row_count, size_t cols, const uint16_t *rows, size_t nrows,
                                                  const int32_t *grad_rows, tt_scale_t grad_scale,
                                                  const tt_sgd_config_t *cfg, uint32_t key);

/* ---- faster variants -------------------------------------------------------------------------- */

/* tt_sgd_update_bias_s32 with a 32-bit path for the common case (aligned rule, no momentum,
 * |g| * M <= 2**30, 1 <= n <= 31); bit-identical, otherwise it calls tt_sgd_update_bias_s32. */
tt_status_t tt_sgd_update_bias_fast_s32(int32_t *bias, tt_scale_t bias_scale, size_t count, const int32_t *grad,
                                        tt_scale_t grad_scale, int64_t *momentum, const tt_sgd_config_t *cfg,
                                        uint32_t key);

/* tt_sgd_update_weight_s8 for the aligned rule with stochastic rounding and no momentum (other
 * settings: TT_ERR_ARG), bit-identical: 32-bit arithmetic where |g| * M <= 2**30 and 1 <= n <= 31,
 * and zero gradients skipped (their weights cannot change, whatever the draw). grad is scratch. */
tt_status_t tt_sgd_update_weight_skip0_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                          tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint32_t key);

#if defined(__AVR__)
/* AVR: a dense layer's batch-1 weight gradient and its skip0 update in one call (generated programs
 * use it where TT_OUTER_UPDATE is 1): bit-identical to tt_linear_backward_weight_rows_s32 (err:
 * count / cols errors, x: cols inputs, every row) followed by tt_sgd_update_weight_skip0_s8 with
 * grad_scale the gradient's scale (tt_scale_mul(err_scale, x_scale)). The gradient
 * g[i, k] = err[i] * x[k] (|g| <= 2**14: no range scan) is formed one row at a time just before its
 * update, and rows with a zero error are skipped (a zero gradient changes no weight). grad
 * (count int32) is scratch. count <= 32767. */
#define TT_OUTER_UPDATE 1
tt_status_t tt_sgd_update_weight_outer_s8(int8_t *weight, tt_scale_t *w_scale, size_t count, int32_t *grad,
                                          tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint32_t key,
                                          const int8_t *err, const int8_t *x, size_t cols);
#else
#define TT_OUTER_UPDATE 0
#endif

/* ---- row-tiled weight update (tt_sgd_tiled.c; tintin.compile.update.fused_weight_update) -------- */

/* Gradient of the selected rows first .. first + count - 1 (positions in the selection) into
 * grad (count * cols int32), and its scale (the same for every tile; count may be 0: the scale
 * only). */
typedef tt_status_t (*tt_grad_rows_fn)(const void *ctx, size_t first, size_t count, int32_t *grad,
                                       tt_scale_t *grad_scale);

typedef struct {
    int8_t *w8;             /* int8 weights (row_count, cols), or NULL */
    int16_t *w16;           /* int16 master weights, or NULL (exactly one of w8 / w16) */
    tt_scale_t *w_scale;    /* changes on a grid rescale */
    size_t row_count, cols; /* weight shape, flattened to (rows, cols) */
    const uint16_t *rows;   /* trained rows (distinct, < row_count), or NULL: all rows */
    size_t nrows;           /* trained rows (row_count when rows == NULL) */
    int64_t *momentum;      /* (nrows, cols) when the aligned rule uses momentum, else NULL */
    int32_t *tile;          /* workspace: tile_rows * cols int32 */
    size_t tile_rows;       /* rows per tile, >= 1 */
    uint8_t *tile_flags;    /* scratch: ceil(nrows / 8) bytes (which tiles or rows are written) */
    tt_grad_rows_fn grad;   /* computes gradient tiles */
    const void *grad_ctx;
    /* Optional, a fully connected layer at batch B = rank_batch (0 or 1: batch 1; at most
     * TT_RANK_BATCH_MAX): gradient row r is sum_b rank1_err[b * row_count + r] * rank1_x[b * cols + k],
     * so rows are updated in one pass without a gradient tile (NULL: use grad). */
    const int8_t *rank1_err;
    const int8_t *rank1_x;
    size_t rank_batch;
} tt_tiled_update_t;

/* the largest batch of the fused outer-product update (larger batches use gradient tiles; its
 * per-row list of samples is on the stack: 8 on AVR) */
#if defined(__AVR__)
#define TT_RANK_BATCH_MAX 8u
#else
#define TT_RANK_BATCH_MAX 32u
#endif

/* IntegerSGD.update of a weight from its gradient computed tile by tile: the result (weights,
 * scale, momentum) equals tt_sgd_update_weight_s8/_s16 (rows == NULL) or
 * tt_sgd_update_weight_rows_s8/_s16 on the whole gradient. Stochastic draws use the element's
 * flat index in the selected gradient. NITI: a first pass computes every tile for max |g| (only
 * its maximum is kept). Rescale: tiles whose new values fit are written at once; if some did not,
 * a second pass converts every tile to the coarser grid scale (recomputing the unwritten ones). */
tt_status_t tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key);
/* The trained rows of u (u->nrows, or row_count without a selection), its tiles of u->tile_rows
 * (tile_rows >= 1) and whether its updates saturate (a row selection, or no weight rescale under
 * cfg) instead of rescaling the tensor; TT_ERR_ARG when the selection repeats a row or leaves the
 * weight, or when a rescaling update with rows to train has no u->tile_flags. */
tt_status_t tt_tiled_rows(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, size_t *nrows, size_t *tiles,
                          uint8_t *saturate);

/* tt_sgd_update_weight_feedback_s8 / _rows_s8 (int8 weights u->w8, no momentum) with the gradient
 * computed tile by tile (tt_sgd_feedback.c, tintin.compile.update._fused_feedback): tiles whose new
 * w fit are written with their plane fields at once; a rescale pass rebuilds W = 2**L * w + r of
 * the written tiles and recomputes the others. Sparse rows and updates without rescaling saturate.
 * The rank-1 fields of u are not used. */
tt_status_t tt_sgd_update_tiled_feedback_s8(const tt_tiled_update_t *u, uint8_t *plane, uint8_t bits,
                                            const tt_sgd_config_t *cfg, uint32_t key);

#ifdef __cplusplus
}
#endif

#endif /* TT_OPTIM_H */
