/* tt_linear.c - fully connected layer, forward and backward (mirrors tintin.ops.linear). */
#include "tt_ops.h"
#include "tt_internal.h"

/* init + sum_i a[i] * b[i]. Each int8 x int8 product is formed in int16 (|p| <= 16384) and widened
 * to int32; k <= TT_ACC_TERMS_LIMIT keeps the sum below 2**31 for any int8 values, and init (|init|
 * <= 2**30) is added last with saturation (exact inside the domain [-127, 127]). */
static int32_t dot_s8(int32_t init, const int8_t *a, const int8_t *b, size_t k)
{
    int32_t s = 0;
    size_t i;
    for (i = 0; i < k; ++i) {
        s += (int16_t)((int16_t)a[i] * (int16_t)b[i]);
    }
    return tt_add_sat32(init, s);
}

void tt_align_bias_row(const int32_t *bias, size_t count, tt_multiplier_t mult, int32_t *out)
{
    size_t i;
#if !defined(__AVR__)
    if (mult.n >= 1 && mult.n <= 31 && mult.m >= 0 && mult.m < 32768L) {
        /* |b| < 2**16: |b| * M + 2**(n-1) < 2**31 + 2**30 fits 32 bits, its shift by n is
         * tt_align_bias_one's (the high half of its product is 0) and stays below 2**30 (no clip) */
        const uint32_t m = (uint32_t)mult.m, half = (uint32_t)1 << (mult.n - 1);
        const uint8_t n = (uint8_t)mult.n;
        for (i = 0; i < count; ++i) {
            int32_t b = bias[i];
            uint32_t a = tt_mag32(b), c;
            if (a >= 65536u) {
                out[i] = tt_align_bias_one(b, mult);
                continue;
            }
            c = (a * m + half) >> n;
            out[i] = b < 0 ? -(int32_t)c : (int32_t)c;
        }
        return;
    }
#endif
    for (i = 0; i < count; ++i) {
        out[i] = tt_align_bias_one(bias[i], mult);
    }
}

tt_status_t tt_align_bias_s32(const int32_t *bias, tt_scale_t bias_scale, tt_scale_t acc_scale, size_t count,
                              int32_t *aligned)
{
    tt_multiplier_t mult;
    tt_status_t st;
    if (count && (bias == NULL || aligned == NULL)) {
        return TT_ERR_ARG;
    }
    st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &mult);
    if (st != TT_OK) {
        return st;
    }
    tt_align_bias_row(bias, count, mult, aligned);
    return TT_OK;
}

static int32_t aligned_bias(const int32_t *bias, size_t n, const tt_multiplier_t *mult)
{
    if (bias == NULL) {
        return 0;
    }
    return (int32_t)tt_apply_multiplier_scalar(bias[n], *mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT);
}

tt_status_t tt_linear_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                 const int32_t *bias, tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                 tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t in_features = shape->in_features;
    const size_t out_features = shape->out_features;
    tt_scale_t acc_scale = tt_scale_mul(x_scale, w_scale);
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint32_t amax = 0;
    uint8_t change;
    size_t b, n;
    if (x == NULL || weight == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(in_features, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    if (acc != NULL) {
        for (n = 0; n < out_features; ++n) {
            int32_t bn = aligned_bias(bias, n, &bias_mult);
            for (b = 0; b < batch; ++b) {
                acc[b * out_features + n] = dot_s8(bn, x + b * in_features, weight + n * in_features, in_features);
            }
        }
        amax = tt_max_abs_s32(acc, batch * out_features);
    } else {
        for (n = 0; n < out_features; ++n) {
            int32_t bn = aligned_bias(bias, n, &bias_mult);
            for (b = 0; b < batch; ++b) {
                uint32_t a = tt_mag32(dot_s8(bn, x + b * in_features, weight + n * in_features, in_features));
                if (a > amax) {
                    amax = a;
                }
            }
        }
    }
    change = tt_choose_rescale(amax, 8, mode, &choice);
    for (n = 0; n < out_features; ++n) {
        int32_t bn = acc != NULL ? 0 : aligned_bias(bias, n, &bias_mult);
        for (b = 0; b < batch; ++b) {
            size_t i = b * out_features + n;
            int32_t v = acc != NULL ? acc[i] : dot_s8(bn, x + b * in_features, weight + n * in_features, in_features);
            y[i] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
        }
    }
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_linear_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                        int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t in_features = shape->in_features;
    const size_t out_features = shape->out_features;
    tt_scale_t acc_scale = tt_scale_mul(err_scale, w_scale);
    tt_rescale_t choice;
    uint32_t amax = 0;
    uint8_t change;
    size_t b, n, k;
    if (err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(out_features, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (acc != NULL) {
        /* row-wise: acc[b, :] += err[b, n] * W[n, :]; every partial sum is a sum of at most
         * out_features products, so |acc| < 2**30 throughout */
        for (b = 0; b < batch; ++b) {
            int32_t *row = acc + b * in_features;
            for (k = 0; k < in_features; ++k) {
                row[k] = 0;
            }
            for (n = 0; n < out_features; ++n) {
                int8_t e = err[b * out_features + n];
                const int8_t *w = weight + n * in_features;
                if (e == 0) {
                    continue;
                }
                for (k = 0; k < in_features; ++k) {
                    row[k] += (int16_t)((int16_t)e * (int16_t)w[k]);
                }
            }
        }
        amax = tt_max_abs_s32(acc, batch * in_features);
    } else {
        for (b = 0; b < batch; ++b) {
            for (k = 0; k < in_features; ++k) {
                int32_t s = 0;
                uint32_t a;
                for (n = 0; n < out_features; ++n) {
                    s += (int16_t)((int16_t)err[b * out_features + n] * (int16_t)weight[n * in_features + k]);
                }
                a = tt_mag32(s);
                if (a > amax) {
                    amax = a;
                }
            }
        }
    }
    change = tt_choose_rescale(amax, 8, mode, &choice);
    for (b = 0; b < batch; ++b) {
        for (k = 0; k < in_features; ++k) {
            size_t i = b * in_features + k;
            int32_t v;
            if (acc != NULL) {
                v = acc[i];
            } else {
                v = 0;
                for (n = 0; n < out_features; ++n) {
                    v += (int16_t)((int16_t)err[b * out_features + n] * (int16_t)weight[n * in_features + k]);
                }
            }
            err_in[i] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
        }
    }
    *err_in_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

/* grad[j, :] = sum_b err[b, row_j] * x[b, :]; |partial sums| <= batch * 16384 < 2**30. */
static void weight_grad_row(const int8_t *err, const int8_t *x, size_t batch, size_t in_features,
                            size_t out_features, size_t row, int32_t *g)
{
    size_t b, k;
    for (k = 0; k < in_features; ++k) {
        g[k] = 0;
    }
    for (b = 0; b < batch; ++b) {
        int8_t e = err[b * out_features + row];
        const int8_t *xb = x + b * in_features;
        if (e == 0) {
            continue;
        }
        for (k = 0; k < in_features; ++k) {
            g[k] += (int16_t)((int16_t)e * (int16_t)xb[k]);
        }
    }
}

tt_status_t tt_linear_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                          tt_scale_t x_scale, const tt_dense_shape_t *shape, int32_t *grad,
                                          tt_scale_t *grad_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t in_features = shape->in_features;
    const size_t out_features = shape->out_features;
    size_t n;
    if (err == NULL || x == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(batch, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    for (n = 0; n < out_features; ++n) {
        weight_grad_row(err, x, batch, in_features, out_features, n, grad + n * in_features);
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

tt_status_t tt_linear_backward_bias_s32(const int8_t *err, tt_scale_t err_scale, size_t batch,
                                        size_t out_features, int32_t *grad, tt_scale_t *grad_scale)
{
    size_t b, n;
    if (err == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (out_features == 0 || tt_size_above(batch, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    for (n = 0; n < out_features; ++n) {
        int32_t s = 0;
        for (b = 0; b < batch; ++b) {
            s += err[b * out_features + n];
        }
        grad[n] = s;
    }
    *grad_scale = err_scale;
    return TT_OK;
}

tt_status_t tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                    const int32_t *bias, tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                    tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t in_features = shape->in_features;
    const size_t out_features = shape->out_features;
    tt_scale_t acc_scale = tt_scale_mul(x_scale, w_scale);
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint32_t amax = 0;
    uint8_t change, pass;
    size_t b, n, rows = 1;
    if (x == NULL || weight == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(in_features, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    if (acc != NULL) {
        /* straight into the accumulator (four rows at a time on DSP cores, sharing the loads of
         * x), the bias added with saturation and the range taken on the way: one pass */
        for (b = 0; b < batch; ++b) {
            const int8_t *xb = x + b * in_features;
            int32_t *ab = acc + b * out_features;
            n = 0;
#if TT_DOT_ROWS == 4u
            if (out_features >= 4u) {
                /* the aligned biases first, in one tight loop (tt_align_bias_row), then the
                 * products of four rows at a time added to them */
                if (bias == NULL) {
                    for (n = 0; n < out_features; ++n) {
                        ab[n] = 0;
                    }
                } else {
                    tt_align_bias_row(bias, out_features, bias_mult, ab);
                }
                for (n = 0; n + 4u <= out_features; n += 4u) {
                    int32_t s4[4];
                    size_t r;
                    tt_dot_s8_rows4(xb, weight + n * in_features, in_features, in_features, s4);
                    for (r = 0; r < 4u; ++r) {
                        int32_t v = tt_add_sat32(ab[n + r], s4[r]);
                        ab[n + r] = v;
                        amax = tt_max_mag32(amax, v);
                    }
                }
            }
#endif
#if defined(__AVR__)
            if (bias != NULL && tt_avr_bias_mult_ok(bias_mult)) {
                /* the multiplier checked once: the aligned bias straight from the assembly */
                const uint16_t bm = (uint16_t)bias_mult.m;
                const uint8_t bn = (uint8_t)bias_mult.n;
                for (; n < out_features; ++n) {
                    ab[n] = tt_dot_s8_x4(avr_align_bias(bias[n], bm, bn), xb, weight + n * in_features, in_features);
                    amax = tt_max_mag32(amax, ab[n]);
                }
            }
#endif
            for (; n < out_features; ++n) {
                int32_t bn = bias == NULL ? 0 : tt_align_bias_one(bias[n], bias_mult);
                ab[n] = tt_dot_s8_x4(bn, xb, weight + n * in_features, in_features);
                amax = tt_max_mag32(amax, ab[n]);
            }
        }
        change = tt_choose_rescale(amax, 8, mode, &choice);
        tt_rescale_write_s8(acc, batch * out_features, change, &choice, y);
        *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
        return TT_OK;
    }
    /* without acc: pass 0 takes the range of the accumulators, pass 1 recomputes them. Four output
     * rows at a time share the loads of x (tt_dot_s8_rows4), then the rest one by one. */
    change = 0;
    for (pass = 0; pass < 2u; ++pass) {
        for (n = 0; n < out_features; n += rows) {
            const int8_t *wn = weight + n * in_features;
            int32_t bn[4], tmp[4];
            size_t r;
            rows = TT_DOT_ROWS == 4u && out_features - n >= 4u ? 4u : 1u;
            for (r = 0; r < rows; ++r) {
                bn[r] = bias == NULL ? 0 : tt_align_bias_one(bias[n + r], bias_mult);
            }
            for (b = 0; b < batch; ++b) {
                int32_t *v = tmp;
#if TT_DOT_ROWS == 4u
                if (rows == 4u) {
                    tt_dot_s8_rows4(x + b * in_features, wn, in_features, in_features, v);
                    if (bias != NULL) {
                        for (r = 0; r < 4u; ++r) {
                            v[r] = tt_add_sat32(bn[r], v[r]);
                        }
                    }
                } else
#endif
                {
                    v[0] = tt_dot_s8_x4(bn[0], x + b * in_features, wn, in_features);
                }
                for (r = 0; r < rows; ++r) {
                    if (pass == 0) {
                        uint32_t a = tt_mag32(v[r]);
                        amax = a > amax ? a : amax;
                    } else {
                        y[b * out_features + n + r] =
                            (int8_t)(change ? tt_rescale_apply(v[r], &choice, 127, TT_ROUND_NEAREST, 0, 0) : v[r]);
                    }
                }
            }
        }
        if (pass == 0) {
            change = tt_choose_rescale(amax, 8, mode, &choice);
        }
    }
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                           tt_scale_t w_scale, const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                           int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t in_features = shape->in_features;
    const size_t out_features = shape->out_features;
    size_t b;
    uint32_t amax;
    uint8_t change;
    tt_rescale_t choice;
    if (acc == NULL || err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (in_features == 0 || out_features == 0 || tt_size_above(out_features, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    /* acc[b, :] = err[b, :] @ W; partial sums of at most out_features products */
    for (b = 0; b < batch; ++b) {
        tt_dot_s8_columns(err + b * out_features, 1u, weight, out_features, in_features, acc + b * in_features);
    }
    amax = tt_max_abs_s32(acc, batch * in_features);
    change = tt_choose_rescale(amax, 8, mode, &choice);
    tt_rescale_write_s8(acc, batch * in_features, change, &choice, err_in);
    *err_in_scale = change ? tt_rescaled_scale(tt_scale_mul(err_scale, w_scale), &choice)
                           : tt_scale_mul(err_scale, w_scale);
    return TT_OK;
}


tt_status_t tt_linear_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_dense_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
{
    if (shape == NULL || select == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t in_features = shape->in_features;
    const size_t out_features = shape->out_features;
    const uint16_t *const rows = select->rows;
    const size_t first = select->first;
    const size_t count = select->count;
    size_t j, k;
    if (err == NULL || x == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    if (batch == 0 || in_features == 0 || out_features == 0 || tt_size_above(batch, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (tt_check_selection(rows, first, count, out_features) != TT_OK) {
        return TT_ERR_ARG;
    }
    /* grad[j, :] = sum_b err[b, row] * x[b, :]; |partial sums| <= batch * 16384 < 2**30 */
    for (j = 0; j < count; ++j) {
        size_t row = tt_selected_row(rows, first + j);
        int32_t *g = grad + j * in_features;
        int16_t e = err[row];
        if (batch > 1u) {
            /* two batch rows per step (tt_axpy2_s8), or one dot product per column on AVR */
            tt_dot_s8_columns(err + row, out_features, x, batch, in_features, g);
            continue;
        }
        if (e == 0) {
            for (k = 0; k < in_features; ++k) {
                g[k] = 0;
            }
        } else {
#if defined(__AVR__)
            tt_outer_row_avr(g, (int8_t)e, x, in_features);
#else
            for (k = 0; k < in_features; ++k) {
                g[k] = (int16_t)(e * (int16_t)x[k]);
            }
#endif
        }
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}
