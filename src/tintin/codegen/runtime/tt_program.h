/* tt_program.h - kernels that compiled training programs need beyond the per-op API of tt_ops.h
 * and tt_optim.h (mirrors tintin.compile: lower_dense, lower_conv, update).
 *
 * * ReLU 1-bit masks: the backward pass of a ReLU needs only the sign of its output, so a program
 *   keeps ceil(count / 8) bytes instead of the int8 output (np.packbits order: element i is bit
 *   7 - i % 8 of byte i / 8; padding bits are 0).
 * * Gradients of a selection of output rows (sparse updates and row tiles): row j of the result
 *   is the gradient of output row (channel) rows[first + j], or of row first + j when rows is
 *   NULL; each equals that row of the full gradient.
 * * Max pooling with one-byte window offsets (windows of at most 256 elements).
 * * The row-tiled weight update (tintin.compile.update.fused_weight_update): the int32 gradient is
 *   computed a few rows at a time into a small workspace and applied at once, bit-identical to
 *   tt_sgd_update_weight_s8/_s16 (and the rows variants) on the whole gradient.
 */
#ifndef TT_PROGRAM_H
#define TT_PROGRAM_H

#include "tt_types.h"
#include "tt_ops.h"
#include "tt_optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- faster fully connected kernels ------------------------------------------------------------
 * Same arguments and bit-identical results as tt_linear_forward_s8 / tt_linear_backward_input_s8
 * (the input-error kernel needs its acc scratch: TT_ERR_ARG without); the dot products are unrolled
 * (eight, then four products per iteration) and form each product in int (no int16 round trip). */
tt_status_t tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                    const int32_t *bias, tt_scale_t bias_scale, size_t batch, size_t in_features,
                                    size_t out_features, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                    tt_scale_t *y_scale);
tt_status_t tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                           tt_scale_t w_scale, size_t batch, size_t in_features, size_t out_features,
                                           tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                           tt_scale_t *err_in_scale);

/* tt_conv2d_forward_s8 through one output row of windows at a time: cols holds out_w * fan-in
 * int8 (fan-in = in_channels / groups * kernel_h * kernel_w); TT_ERR_ARG without cols. */
tt_status_t tt_conv2d_forward_im2col_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                        const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *cols, int8_t *y, tt_scale_t *y_scale);
/* tt_conv2d_backward_input_s8 by scattering every non-zero error through the kernel into acc
 * (needed: batch * in_channels * in_h * in_w int32; TT_ERR_ARG without). */
tt_status_t tt_conv2d_backward_input_scatter_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                                tt_scale_t w_scale, const tt_conv2d_shape_t *shape,
                                                tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                                tt_scale_t *err_in_scale);

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

/* ---- ReLU masks ---------------------------------------------------------------------------- */

/* mask bit i = (y[i] > 0); mask holds ceil(count / 8) bytes. */
tt_status_t tt_relu_mask_pack_u1(const int8_t *y, size_t count, uint8_t *mask);
/* relu_backward_s8 with the mask: err_in[i] = bit i ? err[i] : 0. err_in may alias err. */
tt_status_t tt_relu_backward_mask_s8(const int8_t *err, const uint8_t *mask, size_t count, int8_t *err_in);

/* ---- gradients of selected rows --------------------------------------------------------------- */

/* Fully connected weight gradient: grad (count, in_features) int32 at err_scale * x_scale. */
tt_status_t tt_linear_backward_weight_sel_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                              tt_scale_t x_scale, size_t batch, size_t in_features,
                                              size_t out_features, const uint16_t *rows, size_t first,
                                              size_t count, int32_t *grad, tt_scale_t *grad_scale);
/* Convolution weight gradient of output channels: grad (count, in_channels/groups, kh, kw). */
tt_status_t tt_conv2d_backward_weight_sel_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                              tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                              const uint16_t *rows, size_t first, size_t count, int32_t *grad,
                                              tt_scale_t *grad_scale);
/* Channel-scale weight gradient: grad[j] = sum over batch and positions of err * x of channel j. */
tt_status_t tt_channel_scale_backward_weight_sel_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                     tt_scale_t x_scale, size_t batch, size_t channels,
                                                     size_t positions, const uint16_t *rows, size_t first,
                                                     size_t count, int32_t *grad, tt_scale_t *grad_scale);
/* Bias gradient (linear: positions = 1; convolution: out_h * out_w; channel scale): the error of
 * (batch, channels, positions) summed over batch and positions, at err_scale. */
tt_status_t tt_bias_backward_sel_s32(const int8_t *err, tt_scale_t err_scale, size_t batch, size_t channels,
                                     size_t positions, const uint16_t *rows, size_t first, size_t count,
                                     int32_t *grad, tt_scale_t *grad_scale);

/* ---- max pooling with one-byte window offsets ------------------------------------------------ */

/* tt_maxpool2d_forward_s8 with uint8_t offsets (window <= 256 elements); argmax may be NULL when
 * no backward pass needs it. */
tt_status_t tt_maxpool2d_forward_idx8_s8(const int8_t *x, const tt_pool2d_shape_t *shape, int8_t *y,
                                         uint8_t *argmax);
/* tt_maxpool2d_backward_s8 with uint8_t offsets. Non-overlapping windows (stride >= kernel)
 * scatter the errors (acc unused, may be NULL); overlapping ones sum in int32 and rescale. */
tt_status_t tt_maxpool2d_backward_idx8_s8(const int8_t *err, tt_scale_t err_scale, const uint8_t *argmax,
                                          const tt_pool2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                          int8_t *err_in, tt_scale_t *err_in_scale);

/* ---- row-tiled weight update ------------------------------------------------------------------ */

/* Gradient of the selected rows first .. first + count - 1 (positions in the selection) into
 * grad (count * cols int32), and its scale (the same for every tile). */
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
    /* Optional, a fully connected layer at batch 1: gradient row r is rank1_err[r] * rank1_x[0..cols),
     * so rows are updated in one pass without a gradient tile (NULL: use grad). */
    const int8_t *rank1_err;
    const int8_t *rank1_x;
} tt_tiled_update_t;

/* IntegerSGD.update of a weight from its gradient computed tile by tile: the result (weights,
 * scale, momentum) equals tt_sgd_update_weight_s8/_s16 (rows == NULL) or
 * tt_sgd_update_weight_rows_s8/_s16 on the whole gradient. Stochastic draws use the element's
 * flat index in the selected gradient. NITI: a first pass computes every tile for max |g| (only
 * its maximum is kept). Rescale: tiles whose new values fit are written at once; if some did not,
 * a second pass converts every tile to the coarser grid scale (recomputing the unwritten ones). */
tt_status_t tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key);

/* ---- checksums ------------------------------------------------------------------------------- */

/* FNV-1a (32-bit) of count bytes, continuing from hash (start with 0x811C9DC5). */
uint32_t tt_fnv1a_u32(uint32_t hash, const uint8_t *data, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* TT_PROGRAM_H */
