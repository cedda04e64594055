/* tt_ops.h - integer forward and backward kernels (mirrors tintin.ops).
 *
 * Naming as CMSIS-NN: tt_<op>_<direction>_<dtype>; s8 = int8 mantissas in and out, s32 = an int32
 * result kept at the accumulator scale. Tensors are row-major (C order). Scales are passed by
 * value for inputs and by pointer for outputs. Optional int32 scratch buffers: when NULL the
 * kernel computes its accumulators twice (once for the range, once for the output) and needs no
 * scratch; the result is identical.
 */
#ifndef TT_OPS_H
#define TT_OPS_H

#include "tt_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- shapes and row selections shared by the kernels below ------------------------------------
 * Passed by const pointer (a generated program keeps them in ROM); NULL gives TT_ERR_ARG. */

/* A fully connected layer: x (batch, in_features), weight (out_features, in_features). */
typedef struct {
    size_t batch, in_features, out_features;
} tt_dense_shape_t;

/* A per-channel tensor (batch, channels, positions): positions = 1 for a fully connected output,
 * out_h * out_w (or out_l) for a convolution output. */
typedef struct {
    size_t batch, channels, positions;
} tt_channel_shape_t;

/* The selected rows of a _rows_ kernel: row j < count is rows[first + j], or first + j when rows
 * is NULL (every row in order). */
typedef struct {
    const uint16_t *rows;
    size_t first, count;
} tt_row_select_t;

/* ---- fully connected (tintin.ops.linear) ------------------------------------------------------
 * x (batch, in_features) int8, weight (out_features, in_features) int8, bias (out_features) int32,
 * y (batch, out_features) int8; shape: tt_dense_shape_t. */

/* linear_forward_s8: y = rescale(x @ W.T + align_bias(b)) (nearest). bias may be NULL.
 * Bound: |x @ W.T| <= in_features * 127 * 127 < 2**30 (in_features <= TT_ACC_TERMS_LIMIT, else
 * TT_ERR_SHAPE) and the aligned bias is clipped to +-2**30, so every int32 partial sum stays below
 * 2**31. acc: NULL or (batch * out_features) int32 scratch. TT_ERR_RANGE if the bias scale is too
 * far from x_scale * w_scale in u/d steps. */
tt_status_t tt_linear_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                 const int32_t *bias, tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                 tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale);

/* align_bias for one element: round(b * ratio(bias_scale / acc_scale)) clipped to +-2**30. */
tt_status_t tt_align_bias_s32(const int32_t *bias, tt_scale_t bias_scale, tt_scale_t acc_scale, size_t count,
                              int32_t *aligned);

/* linear_backward_input_s8: err_in (batch, in_features) = rescale(err @ W) (nearest).
 * Bound: out_features <= TT_ACC_TERMS_LIMIT (|sum| < 2**30). acc: NULL or (batch * in_features). */
tt_status_t tt_linear_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                        int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale);

/* linear_backward_weight_s32: grad (out_features, in_features) = err.T @ x, int32 at scale
 * err_scale * x_scale. Bound: batch <= TT_ACC_TERMS_LIMIT (|g| < 2**30). */
tt_status_t tt_linear_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                          tt_scale_t x_scale, const tt_dense_shape_t *shape, int32_t *grad,
                                          tt_scale_t *grad_scale);

/* The same for selected output rows only (sparse updates and row tiles): grad (count, in_features),
 * row j is the gradient of weight row rows[first + j] (row first + j when rows is NULL), equal to
 * that row of the full gradient. TT_ERR_ARG when a selected row is >= out_features. */
tt_status_t tt_linear_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_dense_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale);

/* linear_backward_bias_s32: grad (out_features) = sum over the batch of err, int32 at err_scale.
 * Bound: |sum| <= batch * 127. */
tt_status_t tt_linear_backward_bias_s32(const int8_t *err, tt_scale_t err_scale, size_t batch,
                                        size_t out_features, int32_t *grad, tt_scale_t *grad_scale);

/* Bias gradient of selected channels (every layer kind: linear with positions = 1, convolution
 * with out_h * out_w, channel scale): err (batch, channels, positions) summed over batch and
 * positions for channel rows[first + j] (first + j when rows is NULL), int32 at err_scale. */
tt_status_t tt_bias_backward_rows_s32(const int8_t *err, tt_scale_t err_scale, const tt_channel_shape_t *shape,
                                      const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale);

/* Unrolled variants (x4) with the same arguments and bit-identical results as
 * tt_linear_forward_s8 / tt_linear_backward_input_s8 (the input-error one needs its acc scratch:
 * TT_ERR_ARG without): dot products take eight, then four products per iteration, each formed in
 * int (no int16 round trip). */
tt_status_t tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                    const int32_t *bias, tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                    tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale);
tt_status_t tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                           tt_scale_t w_scale, const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                           int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale);

/* ---- ReLU (tintin.ops.activation); scales unchanged, in place allowed ---------------------- */

/* relu_forward_s8: y = max(0, x). */
tt_status_t tt_relu_forward_s8(const int8_t *x, size_t count, int8_t *y);
/* relu_backward_s8: err_in = err where the forward output y > 0, else 0. */
tt_status_t tt_relu_backward_s8(const int8_t *err, const int8_t *y, size_t count, int8_t *err_in);
/* 1-bit ReLU masks: the backward pass needs only the sign of the output, so a program keeps
 * ceil(count / 8) bytes instead of the int8 output (np.packbits order: element i is bit 7 - i % 8
 * of byte i / 8; padding bits are 0). mask bit i = (y[i] > 0). */
tt_status_t tt_relu_mask_pack_u1(const int8_t *y, size_t count, uint8_t *mask);
/* tt_relu_backward_s8 from the mask: err_in[i] = bit i ? err[i] : 0. err_in may alias err. */
tt_status_t tt_relu_backward_mask_s8(const int8_t *err, const uint8_t *mask, size_t count, int8_t *err_in);

/* ---- losses (tintin.ops.loss) --------------------------------------------------------------- */

/* softmax_probabilities_q15: Q15 probabilities (batch, classes) as int32. classes in
 * [1, 65536): the row sum of 2**t (Q15) stays below 2**31. */
tt_status_t tt_softmax_q15(const int8_t *logits, tt_scale_t logit_scale, size_t batch, size_t classes,
                           int32_t *prob);

/* softmax_cross_entropy_error: err (batch, classes) int8 = rescale(p - onehot) from scale 2**-15
 * (nearest); *loss_total = the summed loss in nats at scale 2**-16 (LossValue(total, Scale(-16))).
 * scratch: (batch * classes) int32. labels: class indices < classes (else TT_ERR_ARG). */
tt_status_t tt_softmax_xent_error_s8(const int8_t *logits, tt_scale_t logit_scale, const uint16_t *labels,
                                     size_t batch, size_t classes, tt_scale_mode_t mode, int32_t *scratch,
                                     int8_t *err, tt_scale_t *err_scale, int64_t *loss_total);

/* softmax_cross_entropy_error with the error's rescale rounded by `rounding` (TT_ROUND_NEAREST, or
 * TT_ROUND_STOCHASTIC with the stream key `key`: QuantConfig.loss_error_rounding); element i of the
 * (batch, classes) error draws index i. tt_softmax_xent_error_s8 is this with TT_ROUND_NEAREST. */
tt_status_t tt_softmax_xent_error_round_s8(const int8_t *logits, tt_scale_t logit_scale, const uint16_t *labels,
                                           size_t batch, size_t classes, tt_scale_mode_t mode,
                                           tt_rounding_t rounding, uint32_t key, int32_t *scratch, int8_t *err,
                                           tt_scale_t *err_scale, int64_t *loss_total);

/* mse_error: err = rescale(pred - align(target)) (nearest, count elements); *loss_total =
 * sum (pred - target)**2 at *loss_scale = 2**(2S-1) u**2U d**2D (the prediction scale squared / 2).
 * The aligned target is clipped to +-2**30, so |pred - target| < 2**31. No scratch (two passes);
 * err may alias pred. TT_ERR_OVERFLOW if the loss total leaves int64 (it saturates). */
tt_status_t tt_mse_error_s8(const int8_t *pred, tt_scale_t pred_scale, const int8_t *target,
                            tt_scale_t target_scale, size_t count, tt_scale_mode_t mode, int8_t *err,
                            tt_scale_t *err_scale, int64_t *loss_total, tt_scale_t *loss_scale);

/* ---- convolution (tintin.ops.conv) -----------------------------------------------------------
 * NCHW: x (batch, in_channels, in_h, in_w), weight (out_channels, in_channels/groups, kernel_h,
 * kernel_w), bias (out_channels), y (batch, out_channels, out_h, out_w) with
 * out = (in + 2 * pad - kernel) / stride + 1. Output channel o reads the input channels of group
 * o / (out_channels / groups). 1-D (NCL): in_h = kernel_h = stride_h = 1, pad_h = 0. */
typedef struct {
    size_t batch;
    size_t in_channels, in_h, in_w;
    size_t out_channels, kernel_h, kernel_w;
    size_t stride_h, stride_w, pad_h, pad_w;
    size_t groups;
} tt_conv2d_shape_t;

/* out_h, out_w of a shape (either may be NULL); TT_ERR_SHAPE when the kernel does not fit, a
 * size is zero or the channels do not divide into the groups. */
tt_status_t tt_conv2d_output_hw(const tt_conv2d_shape_t *shape, size_t *out_h, size_t *out_w);

/* conv2d_forward_s8: rescale(conv(x, W) + align_bias(b)) (nearest); bias may be NULL.
 * Bound: fan-in in_channels/groups * kernel_h * kernel_w <= TT_ACC_TERMS_LIMIT (|sum| < 2**30)
 * and out_channels/groups * ceil(kh/sh) * ceil(kw/sw) <= TT_ACC_TERMS_LIMIT, else TT_ERR_SHAPE.
 * acc: NULL or (batch * out_channels * out_h * out_w) int32. */
tt_status_t tt_conv2d_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                 const int32_t *bias, tt_scale_t bias_scale, const tt_conv2d_shape_t *shape,
                                 tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale);
/* conv2d_backward_input_s8: the transposed convolution of err (batch, out_channels, out_h, out_w)
 * with W into (batch, in_channels, in_h, in_w), rescaled (nearest). At most
 * out_channels/groups * ceil(kh/sh) * ceil(kw/sw) terms per element.
 * acc: NULL or (batch * in_channels * in_h * in_w) int32. */
tt_status_t tt_conv2d_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const tt_conv2d_shape_t *shape, tt_scale_mode_t mode,
                                        int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale);
/* conv2d_backward_weight_s32: grad (out_channels, in_channels/groups, kh, kw) int32 at
 * err_scale * x_scale. Bound: batch * out_h * out_w <= TT_ACC_TERMS_LIMIT. */
tt_status_t tt_conv2d_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                          tt_scale_t x_scale, const tt_conv2d_shape_t *shape, int32_t *grad,
                                          tt_scale_t *grad_scale);
/* conv2d_backward_bias_s32: grad (out_channels) = err summed over batch and positions. */
tt_status_t tt_conv2d_backward_bias_s32(const int8_t *err, tt_scale_t err_scale, const tt_conv2d_shape_t *shape,
                                        int32_t *grad, tt_scale_t *grad_scale);

/* Weight gradient of selected output channels: grad (count, in_channels/groups, kh, kw) of channel
 * rows[first + j] (first + j when rows is NULL); error-major (a zero error skips its window). */
tt_status_t tt_conv2d_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale);
/* tt_conv2d_forward_s8 through one output row of windows at a time (im2col): cols holds out_w *
 * fan-in int8 (fan-in = in_channels / groups * kernel_h * kernel_w); TT_ERR_ARG without cols. */
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

/* ---- pooling (tintin.ops.pool) -----------------------------------------------------------------
 * NCHW, no padding, out = (in - kernel) / stride + 1; stride 0 means stride = kernel. 1-D (NCL):
 * in_h = kernel_h = 1. Backward kernels: acc is NULL or (batch * channels * in_h * in_w) int32. */
typedef struct {
    size_t batch, channels, in_h, in_w;
    size_t kernel_h, kernel_w, stride_h, stride_w;
} tt_pool2d_shape_t;

tt_status_t tt_pool2d_output_hw(const tt_pool2d_shape_t *shape, size_t *out_h, size_t *out_w);
/* maxpool2d_forward_s8: window maxima (scale unchanged) and the offset i * kernel_w + j of each
 * window's first maximum in row-major order (window <= 65535 elements). */
tt_status_t tt_maxpool2d_forward_s8(const int8_t *x, const tt_pool2d_shape_t *shape, int8_t *y, uint16_t *argmax);
/* maxpool2d_backward_s8: every output error added (int32) at its window's argmax; rescaled
 * (nearest) only if overlapping windows pushed a sum out of range, else mantissas and scale kept. */
tt_status_t tt_maxpool2d_backward_s8(const int8_t *err, tt_scale_t err_scale, const uint16_t *argmax,
                                     const tt_pool2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                     int8_t *err_in, tt_scale_t *err_in_scale);
/* Max pooling with one-byte window offsets (idx8: windows of at most 256 elements, else
 * TT_ERR_SHAPE). Forward: argmax may be NULL when no backward pass needs it. Backward:
 * non-overlapping windows (stride >= kernel) scatter the errors (acc unused, may be NULL);
 * overlapping ones sum in int32 and rescale, as tt_maxpool2d_backward_s8. */
tt_status_t tt_maxpool2d_forward_idx8_s8(const int8_t *x, const tt_pool2d_shape_t *shape, int8_t *y,
                                         uint8_t *argmax);
tt_status_t tt_maxpool2d_backward_idx8_s8(const int8_t *err, tt_scale_t err_scale, const uint8_t *argmax,
                                          const tt_pool2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                          int8_t *err_in, tt_scale_t *err_in_scale);
/* avgpool_multiplier: (M, n) with M / 2**n ~= 1 / window and 127 * window * M <= 2**30. */
tt_status_t tt_avgpool_multiplier(size_t window, tt_multiplier_t *out);
/* avgpool2d_forward_s8: window sums times M at scale x_scale * 2**-n, rescaled (nearest).
 * acc: NULL or (batch * channels * out_h * out_w) int32. */
tt_status_t tt_avgpool2d_forward_s8(const int8_t *x, tt_scale_t x_scale, const tt_pool2d_shape_t *shape,
                                    tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale);
/* avgpool2d_backward_s8: every input sums err * M over the windows containing it, at scale
 * err_scale * 2**-n, rescaled (nearest). */
tt_status_t tt_avgpool2d_backward_s8(const int8_t *err, tt_scale_t err_scale, const tt_pool2d_shape_t *shape,
                                     tt_scale_mode_t mode, int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale);
/* global_avgpool_forward_s8: (batch, channels, positions) -> (batch, channels). */
tt_status_t tt_global_avgpool_forward_s8(const int8_t *x, tt_scale_t x_scale, size_t batch, size_t channels,
                                         size_t positions, tt_scale_mode_t mode, int8_t *y, tt_scale_t *y_scale);
/* global_avgpool_backward_s8: rescale(err * M) (batch, channels) written to every position. */
tt_status_t tt_global_avgpool_backward_s8(const int8_t *err, tt_scale_t err_scale, size_t batch, size_t channels,
                                          size_t positions, tt_scale_mode_t mode, int8_t *err_in,
                                          tt_scale_t *err_in_scale);

/* ---- residual add (tintin.ops.residual) --------------------------------------------------------- */

/* residual_working_scale: the scale at which a and b are summed (the finer one, at most 2**23
 * below the coarser one). */
tt_status_t tt_residual_working_scale(tt_scale_t a_scale, tt_scale_t b_scale, tt_scale_t *work);
/* residual_add_s8: a and b brought to the working scale (nearest), summed in int32
 * (|sum| < 2**31), rescaled to int8 (nearest). acc: NULL or (count) int32. y may alias a or b.
 * The backward pass needs no kernel: both operands receive the output error unchanged. */
tt_status_t tt_residual_add_s8(const int8_t *a, tt_scale_t a_scale, const int8_t *b, tt_scale_t b_scale,
                               size_t count, tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale);

/* ---- per-channel scale and shift (tintin.ops.scaling) --------------------------------------------
 * x (batch, channels, positions) int8, gamma (channels) int8, beta (channels) int32. */
tt_status_t tt_channel_scale_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *gamma,
                                        tt_scale_t gamma_scale, const int32_t *beta, tt_scale_t beta_scale,
                                        const tt_channel_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *y, tt_scale_t *y_scale);
tt_status_t tt_channel_scale_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *gamma,
                                               tt_scale_t gamma_scale, const tt_channel_shape_t *shape,
                                               tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                               tt_scale_t *err_in_scale);
/* gradient of gamma: sum of err * x per channel (batch * positions <= TT_ACC_TERMS_LIMIT) */
tt_status_t tt_channel_scale_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                 tt_scale_t x_scale, const tt_channel_shape_t *shape, int32_t *grad,
                                                 tt_scale_t *grad_scale);
/* the same for selected channels: grad[j] of channel rows[first + j] (first + j when rows is NULL) */
tt_status_t tt_channel_scale_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                      tt_scale_t x_scale, const tt_channel_shape_t *shape,
                                                      const tt_row_select_t *select, int32_t *grad,
                                                      tt_scale_t *grad_scale);
tt_status_t tt_channel_scale_backward_bias_s32(const int8_t *err, tt_scale_t err_scale,
                                               const tt_channel_shape_t *shape, int32_t *grad, tt_scale_t *grad_scale);

/* ---- prediction and weight views --------------------------------------------------------------- */

/* The first index of the maximum of x[0..count) (numpy argmax); 0 for count == 0. */
size_t tt_argmax_s8(const int8_t *x, size_t count);
/* Row-wise argmax of a (rows, cols) tensor (predict_argmax). */
tt_status_t tt_argmax_rows_s8(const int8_t *x, size_t rows, size_t cols, uint16_t *out);

/* Parameter.forward_view of int16 weights: rescale to int8 with nearest rounding. */
tt_status_t tt_weight_view_s16_to_s8(const int16_t *weight, tt_scale_t w_scale, size_t count,
                                     tt_scale_mode_t mode, int8_t *view, tt_scale_t *view_scale);

/* ---- patch-based first stage (tintin.compile.patch) ---------------------------------------------
 * A frozen stage of 2-D convolutions, ReLUs and max pools computed `patch` x `patch` output positions
 * at a time: one maximum pass per convolution, then the output pass, each over the halo regions of
 * the tiles; every layer's region lives in its `patch` buffer (a ReLU works in place on its input's).
 * The same tiles, regions and values as the Python step (bit-exact). */
enum { TT_PATCH_CONV = 0, TT_PATCH_RELU = 1, TT_PATCH_MAXPOOL = 2, TT_PATCH_MAX_LAYERS = 16 };
typedef struct {
    uint8_t kind;
    size_t in_c, in_h, in_w, out_c, out_h, out_w;
    size_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, groups;
    const int8_t *weight; /* convolutions: (out_c, in_c / groups, kh, kw) */
    tt_scale_t w_scale;
    const int32_t *bias; /* or NULL */
    tt_scale_t bias_scale;
    int8_t *patch; /* the layer's region (batch, out_c, rows, columns); a ReLU: its input's */
} tt_patch_layer_t;

tt_status_t tt_patch_stage_forward_s8(const int8_t *x, tt_scale_t x_scale, size_t batch,
                                      const tt_patch_layer_t *layers, size_t count, size_t patch,
                                      tt_scale_mode_t mode, int8_t *out, tt_scale_t *out_scale);

#ifdef __cplusplus
}
#endif

#endif /* TT_OPS_H */
