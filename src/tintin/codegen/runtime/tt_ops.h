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

/* ---- fully connected (tintin.ops.linear) ------------------------------------------------------
 * x (batch, in_features) int8, weight (out_features, in_features) int8, bias (out_features) int32,
 * y (batch, out_features) int8. */

/* linear_forward_s8: y = rescale(x @ W.T + align_bias(b)) (nearest). bias may be NULL.
 * Bound: |x @ W.T| <= in_features * 127 * 127 < 2**30 (in_features <= TT_ACC_TERMS_LIMIT, else
 * TT_ERR_SHAPE) and the aligned bias is clipped to +-2**30, so every int32 partial sum stays below
 * 2**31. acc: NULL or (batch * out_features) int32 scratch. TT_ERR_RANGE if the bias scale is too
 * far from x_scale * w_scale in u/d steps. */
tt_status_t tt_linear_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                 const int32_t *bias, tt_scale_t bias_scale, size_t batch, size_t in_features,
                                 size_t out_features, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                 tt_scale_t *y_scale);

/* align_bias for one element: round(b * ratio(bias_scale / acc_scale)) clipped to +-2**30. */
tt_status_t tt_align_bias_s32(const int32_t *bias, tt_scale_t bias_scale, tt_scale_t acc_scale, size_t count,
                              int32_t *aligned);

/* linear_backward_input_s8: err_in (batch, in_features) = rescale(err @ W) (nearest).
 * Bound: out_features <= TT_ACC_TERMS_LIMIT (|sum| < 2**30). acc: NULL or (batch * in_features). */
tt_status_t tt_linear_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                        tt_scale_t w_scale, size_t batch, size_t in_features, size_t out_features,
                                        tt_scale_mode_t mode, int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale);

/* linear_backward_weight_s32: grad (out_features, in_features) = err.T @ x, int32 at scale
 * err_scale * x_scale. Bound: batch <= TT_ACC_TERMS_LIMIT (|g| < 2**30). */
tt_status_t tt_linear_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                          tt_scale_t x_scale, size_t batch, size_t in_features,
                                          size_t out_features, int32_t *grad, tt_scale_t *grad_scale);

/* The same for a subset of output rows only (sparse update): grad (nrows, in_features), row j is
 * the gradient of weight row rows[j] (equal to the rows of the full gradient). */
tt_status_t tt_linear_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, size_t batch, size_t in_features,
                                               size_t out_features, const uint16_t *rows, size_t nrows,
                                               int32_t *grad, tt_scale_t *grad_scale);

/* linear_backward_bias_s32: grad (out_features) = sum over the batch of err, int32 at err_scale.
 * Bound: |sum| <= batch * 127. */
tt_status_t tt_linear_backward_bias_s32(const int8_t *err, tt_scale_t err_scale, size_t batch,
                                        size_t out_features, int32_t *grad, tt_scale_t *grad_scale);

/* ---- ReLU (tintin.ops.activation); scales unchanged, in place allowed ---------------------- */

/* relu_forward_s8: y = max(0, x). */
tt_status_t tt_relu_forward_s8(const int8_t *x, size_t count, int8_t *y);
/* relu_backward_s8: err_in = err where the forward output y > 0, else 0. */
tt_status_t tt_relu_backward_s8(const int8_t *err, const int8_t *y, size_t count, int8_t *err_in);

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

/* mse_error: err = rescale(pred - align(target)) (nearest, count elements); *loss_total =
 * sum (pred - target)**2 at *loss_scale = 2**(2S-1) u**2U d**2D (the prediction scale squared / 2).
 * The aligned target is clipped to +-2**30, so |pred - target| < 2**31. No scratch (two passes);
 * err may alias pred. TT_ERR_OVERFLOW if the loss total leaves int64 (it saturates). */
tt_status_t tt_mse_error_s8(const int8_t *pred, tt_scale_t pred_scale, const int8_t *target,
                            tt_scale_t target_scale, size_t count, tt_scale_mode_t mode, int8_t *err,
                            tt_scale_t *err_scale, int64_t *loss_total, tt_scale_t *loss_scale);

/* ---- prediction and weight views --------------------------------------------------------------- */

/* The first index of the maximum of x[0..count) (numpy argmax); 0 for count == 0. */
size_t tt_argmax_s8(const int8_t *x, size_t count);
/* Row-wise argmax of a (rows, cols) tensor (predict_argmax). */
tt_status_t tt_argmax_rows_s8(const int8_t *x, size_t rows, size_t cols, uint16_t *out);

/* Parameter.forward_view of int16 weights: rescale to int8 with nearest rounding. */
tt_status_t tt_weight_view_s16_to_s8(const int16_t *weight, tt_scale_t w_scale, size_t count,
                                     tt_scale_mode_t mode, int8_t *view, tt_scale_t *view_scale);

#ifdef __cplusplus
}
#endif

#endif /* TT_OPS_H */
