/* tt_rows.h - per-row (per-output-channel) weight scales (mirrors tintin.numerics.scale_rows).
 *
 * An int8 weight tensor W (rows x cols) keeps its tensor scale s and one exponent e[r] per row,
 * 0 <= e[r] <= limit: w[r, k] = m[r, k] * s * 2**-e[r]. limit = row_exp_limit(T): the largest E with
 * T * 2**E <= TT_ACC_TERMS_LIMIT, T the terms of the layer's input-error sum (out_features for a
 * fully connected layer), at most 15.
 *
 *   forward:     acc[b, n] = round_nearest(sum_k x[b, k] * W[n, k], e[n]) + align_bias(b[n]), then
 *                rescaled to int8 as tt_linear_forward_s8 (|acc| only shrinks: <= K * 127 * 127).
 *   input error: acc[b, k] = sum_n err[b, n] * 2**(E - e[n]) * W[n, k], E = max e, at scale
 *                err_scale * s * 2**-E; |acc| <= N * 127 * 127 * 2**E <= 2**30.
 *   update:      (M, n) as tt_sgd_update_weight_s8 (aligned rule, no momentum), row r uses
 *                delta = round(g * M / 2**(n - e[r])) (draw index: the element's flat index),
 *                then the rows are renormalised (tintin.numerics.scale_rows.renormalise_rows).
 */
#ifndef TT_ROWS_H
#define TT_ROWS_H

#include "tt_types.h"
#include "tt_ops.h"
#include "tt_optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* linear_forward_s8 with row exponents (row_exp: out_features values). acc: batch * out_features
 * int32 scratch, or NULL: every product is computed twice instead (max |acc|, then the values). */
tt_status_t tt_linear_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                      const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                                      const tt_dense_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                      tt_scale_t *y_scale);

/* linear_backward_input_s8 with row exponents. acc: batch * in_features int32 scratch, or NULL (as
 * above).
 * TT_ERR_RANGE when out_features * 2**max(row_exp) exceeds TT_ACC_TERMS_LIMIT. */
tt_status_t tt_linear_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                             tt_scale_t w_scale, const int8_t *row_exp, const tt_dense_shape_t *shape,
                                             tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                             tt_scale_t *err_in_scale);

/* Convolutions (tt_conv.c): tt_conv2d_forward_s8 / tt_conv2d_backward_input_s8 with one exponent per
 * output channel (row_exp: out_channels values), the rules above with channels for rows (the
 * weight's rows are its output channels, (Cin/G, kH, kW) each). acc may be NULL (recomputed).
 * Input error: TT_ERR_RANGE when (out_channels / groups) * ceil(kH/sH) * ceil(kW/sW) * 2**max(row_exp)
 * exceeds TT_ACC_TERMS_LIMIT. */
tt_status_t tt_conv2d_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                      const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                                      const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                      tt_scale_t *y_scale);
tt_status_t tt_conv2d_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                             tt_scale_t w_scale, const int8_t *row_exp,
                                             const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                             int8_t *err_in, tt_scale_t *err_in_scale);

/* The update of a row-scaled int8 weight (rows x cols), aligned rule without momentum: *w_scale and
 * row_exp change (renormalisation; cfg->weight_rescale == 0: the rows saturate instead). grad is
 * used as scratch. row_limit: the layer's largest row exponent. TT_ERR_ARG for momentum or the NITI
 * rule; TT_ERR_OVERFLOW when some w - delta left int32 (outside the documented bounds). */
tt_status_t tt_sgd_update_weight_rows_scaled_s8(int8_t *weight, tt_scale_t *w_scale, int8_t *row_exp, size_t rows,
                                                size_t cols, int32_t *grad, tt_scale_t grad_scale,
                                                const tt_sgd_config_t *cfg, uint8_t row_limit, uint32_t key);

/* The same on selected rows (Parameter.trainable_rows): rows[0..nrows) (distinct, < row_count; NULL:
 * every row) of a (row_count, cols) tensor change; grad (nrows, cols) holds their gradients in that
 * order (draw index j * cols + k; used as scratch). Selected rows saturate at +-127 and keep their
 * exponents (frozen rows stay bit-identical); every row (rows == NULL) renormalises as above. */
tt_status_t tt_sgd_update_weight_rows_scaled_select_s8(int8_t *weight, tt_scale_t *w_scale, int8_t *row_exp,
                                                       size_t row_count, size_t cols, const uint16_t *rows,
                                                       size_t nrows, int32_t *grad, tt_scale_t grad_scale,
                                                       const tt_sgd_config_t *cfg, uint8_t row_limit, uint32_t key);

/* The row-scaled update with the gradient computed tile by tile (tt_sgd_update_tiled's u: int8
 * weights, no momentum; the rank-1 fields are not used): the result equals
 * tt_sgd_update_weight_rows_scaled_select_s8 on the whole gradient. Stage 1 of the
 * renormalisation needs only the row at hand, so each tile is final once applied (its rows'
 * stage-1 exponents wait in row_exp); stage 2 follows the last tile. */
tt_status_t tt_sgd_update_tiled_rows_scaled_s8(const tt_tiled_update_t *u, int8_t *row_exp, uint8_t row_limit,
                                               const tt_sgd_config_t *cfg, uint32_t key);

/* 1 when every row exponent row_exp[0..n) is in [0, 15] (their maximum in *top), else 0. */
uint8_t tt_rows_top(const int8_t *row_exp, size_t n, uint8_t *top);

/* The two stages of the renormalisation (tintin.numerics.scale_rows), the building blocks of the
 * updates above. Stage 1 of one row: its new values v (int32-saturated, max |v| = amax) become int8
 * mantissas in w (one nearest right shift, or an exact left shift); returns the row's exponent e - j
 * (in [-33, 21]). Stage 2 of the tensor: row_exp holds the stage-1 exponents, lo their minimum; the
 * tensor scale moves by lo and rows above row_limit shift right (nearest). */
int32_t tt_rows_renormalise_row_s8(const int32_t *v, int8_t *w, size_t cols, int32_t e, uint64_t amax);
void tt_rows_renormalise_tensor_s8(int8_t *weight, tt_scale_t *w_scale, int8_t *row_exp, size_t rows, size_t cols,
                                   int32_t lo, uint8_t row_limit);

#ifdef __cplusplus
}
#endif

#endif /* TT_ROWS_H */
