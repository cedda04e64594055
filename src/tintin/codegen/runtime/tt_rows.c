/* tt_rows.c - per-row weight scales: dense forward, input error and update (mirrors
 * tintin.numerics.scale_rows, tintin.ops.linear and IntegerSGD's row-scaled update). */
#include "tt_rows.h"
#include "tt_numerics.h"
#include "tt_internal.h"

/* sign(x) * ((|x| + 2**(s-1)) >> s), s in [0, 62] */
static int64_t rows_nearest(int64_t x, uint8_t s)
{
    return s == 0 ? x : tt_rs64_nearest(x, s);
}

static int32_t rows_dot(const int8_t *a, const int8_t *b, size_t k)
{
    int32_t s = 0;
    size_t i;
    for (i = 0; i < k; ++i) {
        s += (int32_t)a[i] * (int32_t)b[i];
    }
    return s;
}

uint8_t tt_rows_top(const int8_t *row_exp, size_t n, uint8_t *top)
{
    size_t i;
    *top = 0;
    for (i = 0; i < n; ++i) {
        if (row_exp[i] < 0 || row_exp[i] > 15) {
            return 0;
        }
        if ((uint8_t)row_exp[i] > *top) {
            *top = (uint8_t)row_exp[i];
        }
    }
    return 1;
}

tt_status_t tt_linear_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                      const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                                      const tt_dense_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                      tt_scale_t *y_scale)
{
    tt_scale_t acc_scale = tt_scale_mul(x_scale, w_scale);
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    size_t batch, k, n_out, b, n, i;
    uint8_t top, change;
    uint32_t amax = 0;
    if (shape == NULL || x == NULL || weight == NULL || row_exp == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    batch = shape->batch;
    k = shape->in_features;
    n_out = shape->out_features;
    if (k == 0 || n_out == 0 || tt_size_above(k, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (!tt_rows_top(row_exp, n_out, &top)) {
        return TT_ERR_RANGE;
    }
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    /* acc == NULL: a first pass for max |acc| only, the second recomputes every value */
    for (n = 0; n < n_out; ++n) {
        int32_t bn = bias == NULL ? 0
            : (int32_t)tt_apply_multiplier_scalar(bias[n], bias_mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT);
        for (b = 0; b < batch; ++b) {
            int32_t v = (int32_t)rows_nearest(rows_dot(x + b * k, weight + n * k, k), (uint8_t)row_exp[n]);
            v = tt_add_sat32(bn, v);
            if (acc != NULL) {
                acc[b * n_out + n] = v;
            } else if (tt_mag32(v) > amax) {
                amax = tt_mag32(v);
            }
        }
    }
    change = tt_choose_rescale(acc != NULL ? tt_max_abs_s32(acc, batch * n_out) : amax, 8, mode, &choice);
    if (acc != NULL) {
        for (i = 0; i < batch * n_out; ++i) {
            y[i] = (int8_t)(change ? tt_rescale_apply(acc[i], &choice, 127, TT_ROUND_NEAREST, 0, 0) : acc[i]);
        }
    } else {
        for (n = 0; n < n_out; ++n) {
            int32_t bn = bias == NULL ? 0
                : (int32_t)tt_apply_multiplier_scalar(bias[n], bias_mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT);
            for (b = 0; b < batch; ++b) {
                int32_t v = tt_add_sat32(bn, (int32_t)rows_nearest(rows_dot(x + b * k, weight + n * k, k),
                                                                   (uint8_t)row_exp[n]));
                y[b * n_out + n] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
            }
        }
    }
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

/* sum_n err[b, n] * 2**(top - e[n]) * W[n, k] of one input k (the input error without a buffer) */
static int32_t rows_input_error_at(const int8_t *err, const int8_t *weight, const int8_t *row_exp, size_t n_out,
                                   size_t k_in, size_t b, size_t k, uint8_t top)
{
    int32_t s = 0;
    size_t n;
    for (n = 0; n < n_out; ++n) {
        s += (int32_t)err[b * n_out + n] * ((int32_t)1 << (top - (uint8_t)row_exp[n])) * (int32_t)weight[n * k_in + k];
    }
    return s;
}

tt_status_t tt_linear_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                             tt_scale_t w_scale, const int8_t *row_exp, const tt_dense_shape_t *shape,
                                             tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                             tt_scale_t *err_in_scale)
{
    tt_scale_t acc_scale;
    tt_rescale_t choice;
    size_t batch, k_in, n_out, b, n, k, i;
    uint8_t top, change;
    uint32_t amax = 0;
    if (shape == NULL || err == NULL || weight == NULL || row_exp == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    batch = shape->batch;
    k_in = shape->in_features;
    n_out = shape->out_features;
    if (k_in == 0 || n_out == 0 || tt_size_above(n_out, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (!tt_rows_top(row_exp, n_out, &top) || tt_size_above(n_out, (uint32_t)(TT_ACC_TERMS_LIMIT >> top))) {
        return TT_ERR_RANGE; /* n_out * 2**top products' worth would pass 2**30 */
    }
    acc_scale = tt_scale_mul(err_scale, w_scale);
    acc_scale.S = (int16_t)(acc_scale.S - top);
    if (acc == NULL) { /* no buffer: every sum twice (max |acc|, then the values) */
        for (b = 0; b < batch; ++b) {
            for (k = 0; k < k_in; ++k) {
                uint32_t a = tt_mag32(rows_input_error_at(err, weight, row_exp, n_out, k_in, b, k, top));
                if (a > amax) {
                    amax = a;
                }
            }
        }
        change = tt_choose_rescale(amax, 8, mode, &choice);
        for (b = 0; b < batch; ++b) {
            for (k = 0; k < k_in; ++k) {
                int32_t v = rows_input_error_at(err, weight, row_exp, n_out, k_in, b, k, top);
                err_in[b * k_in + k] = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
            }
        }
        *err_in_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
        return TT_OK;
    }
    for (b = 0; b < batch; ++b) {
        int32_t *row = acc + b * k_in;
        for (k = 0; k < k_in; ++k) {
            row[k] = 0;
        }
        for (n = 0; n < n_out; ++n) {
            /* |e| <= 127 * 2**15: e * w fits int32, and the sum stays within 2**30 */
            int32_t e = (int32_t)err[b * n_out + n] * ((int32_t)1 << (top - (uint8_t)row_exp[n]));
            const int8_t *w = weight + n * k_in;
            if (e == 0) {
                continue;
            }
            for (k = 0; k < k_in; ++k) {
                row[k] += e * (int32_t)w[k];
            }
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, batch * k_in), 8, mode, &choice);
    for (i = 0; i < batch * k_in; ++i) {
        err_in[i] = (int8_t)(change ? tt_rescale_apply(acc[i], &choice, 127, TT_ROUND_NEAREST, 0, 0) : acc[i]);
    }
    *err_in_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

/* The row's wanted change of exponent: j > 0 a right shift that makes it fit 127, j < 0 a left
 * shift that brings its maximum into [64, 127] (0 for rows that fit and use their bits, and zero
 * rows). */
static int8_t rows_wanted_shift(uint64_t amax)
{
    int8_t j;
    if (amax > 127u) {
        j = (int8_t)(tt_bit_length_u64(amax) - 7);
        if (((amax + ((uint64_t)1 << (j - 1))) >> j) > 127u) {
            ++j;
        }
        return j;
    }
    if (amax > 0 && amax <= 63u) {
        return (int8_t)(tt_bit_length_u32((uint32_t)amax) - 7);
    }
    return 0;
}

int32_t tt_rows_renormalise_row_s8(const int32_t *v, int8_t *w, size_t cols, int32_t e, uint64_t amax)
{
    int8_t j = rows_wanted_shift(amax);
    size_t k;
    if (j == 0) { /* the row fits and uses its bits (or is zero): |v| <= 127 */
        for (k = 0; k < cols; ++k) {
            w[k] = (int8_t)v[k];
        }
    } else if (j < 0) { /* exact left shift of a row whose maximum is at most 63 */
        int32_t f = (int32_t)1 << (uint8_t)(-j);
        for (k = 0; k < cols; ++k) {
            w[k] = (int8_t)(v[k] * f);
        }
    } else if (j <= 31) {
        for (k = 0; k < cols; ++k) {
            w[k] = (int8_t)tt_clip32(tt_rs32_nearest(v[k], (uint8_t)j), 127);
        }
    } else {
        for (k = 0; k < cols; ++k) {
            w[k] = (int8_t)tt_clip64(rows_nearest(v[k], (uint8_t)j), 127);
        }
    }
    return e - j;
}

void tt_rows_renormalise_tensor_s8(int8_t *weight, tt_scale_t *w_scale, int8_t *row_exp, size_t rows, size_t cols,
                                   int32_t lo, uint8_t row_limit)
{
    size_t r, k;
    for (r = 0; r < rows; ++r) {
        int32_t t = (int32_t)row_exp[r] - lo;
        if (t > (int32_t)row_limit) {
            int8_t *w = weight + r * cols;
            for (k = 0; k < cols; ++k) {
                w[k] = (int8_t)rows_nearest(w[k], (uint8_t)(t - (int32_t)row_limit));
            }
            t = (int32_t)row_limit;
        }
        row_exp[r] = (int8_t)t;
    }
    w_scale->S = (int16_t)(w_scale->S - lo);
}

/* The settings and exponents of a row-scaled update, and its aligned multiplier (M, n). */
static tt_status_t rows_update_setup(const int8_t *row_exp, size_t row_count, tt_scale_t w_scale,
                                     tt_scale_t grad_scale, const tt_sgd_config_t *cfg, uint8_t row_limit,
                                     tt_multiplier_t *mult)
{
    tt_status_t st;
    uint8_t top;
    if (cfg->rule != TT_RULE_ALIGNED || cfg->momentum_shift != 0 || cfg->batch_size == 0 ||
        cfg->rounding > TT_ROUND_PSEUDO_STOCHASTIC || row_limit > 15) {
        return TT_ERR_ARG;
    }
    if (!tt_rows_top(row_exp, row_count, &top) || top > row_limit) {
        return TT_ERR_RANGE;
    }
    st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, grad_scale), w_scale), mult);
    if (st != TT_OK) {
        return st;
    }
    return tt_divide_multiplier(*mult, cfg->batch_size, mult);
}

/* New values w - delta of one row, delta = round(g * M / 2**(n - e)) with draw index index0 + k.
 * saturate: the row is written at once, clipped to [-127, 127]; otherwise the new values are kept
 * (int32-saturated) in v (which may be g) and max |w - delta| is returned. *over is set when some
 * |w - delta| passes INT32_MAX (outside the documented bounds). 32-bit arithmetic where |g| * M <=
 * 2**30 and 1 <= n - e <= 31 (gmax: max |g| of the row, or more), the same result as 64 bits. */
static uint64_t rows_new_values(int8_t *w, const int32_t *g, int32_t *v, size_t cols, tt_multiplier_t mult,
                                int32_t e, uint8_t rounding, uint32_t key, uint32_t index0, uint32_t gmax,
                                uint8_t saturate, uint8_t *over)
{
    tt_multiplier_t row_mult;
    uint64_t amax = 0;
    size_t k;
    row_mult.m = mult.m;
    row_mult.n = mult.n - e;
    if (row_mult.n >= 1 && row_mult.n <= 31 && mult.m > 0 && gmax <= ((uint32_t)1 << 30) / (uint32_t)mult.m) {
        int32_t m = (int32_t)mult.m;
        uint8_t n = (uint8_t)row_mult.n;
        uint32_t draw = (uint32_t)(key + (uint32_t)(index0 * (uint32_t)TT_GOLDEN32));
        for (k = 0; k < cols; ++k, draw += (uint32_t)TT_GOLDEN32) {
            int32_t p = g[k] * m, d, nw;
            uint32_t a;
            if (rounding == TT_ROUND_STOCHASTIC) {
                d = tt_rs32_stochastic(p, n, draw);
            } else if (rounding == TT_ROUND_PSEUDO_STOCHASTIC) {
                d = tt_rs32_pseudo(p, n);
            } else {
                d = tt_rs32_nearest(p, n);
            }
            nw = (int32_t)w[k] - d; /* |d| <= 2**30 */
            a = tt_mag32(nw);
            if (saturate) {
                w[k] = (int8_t)tt_clip32(nw, 127);
            } else {
                v[k] = nw;
            }
            if (a > amax) {
                amax = a;
            }
        }
        return saturate ? 0u : amax;
    }
    for (k = 0; k < cols; ++k) {
        int64_t nw = tt_sub_wrap64((int64_t)w[k], tt_apply_multiplier_scalar(g[k], row_mult, (tt_rounding_t)rounding,
                                                                             key, (uint32_t)(index0 + k), -1));
        uint64_t a = tt_mag64(nw);
        if (a > (uint64_t)INT32_MAX) {
            *over = 1;
        }
        if (saturate) {
            w[k] = (int8_t)tt_clip64(nw, 127);
        } else {
            v[k] = tt_sat32(nw);
        }
        if (a > amax) {
            amax = a;
        }
    }
    return saturate ? 0u : amax;
}

/* Selected rows first .. first + cnt - 1 (their gradients in grad, used as scratch): new values,
 * then (renorm) stage 1, each row's stage-1 exponent kept in row_exp until stage 2 and their
 * minimum in *lo (set at the first selected row). */
static void rows_update_block(int8_t *weight, int8_t *row_exp, const uint16_t *rows, size_t first, size_t cnt,
                              size_t cols, int32_t *grad, tt_multiplier_t mult, const tt_sgd_config_t *cfg,
                              uint32_t key, uint8_t renorm, int32_t *lo, uint8_t *over)
{
    size_t j;
    for (j = 0; j < cnt; ++j) {
        size_t r = tt_selected_row(rows, first + j);
        int32_t *g = grad + j * cols;
        int8_t *w = weight + r * cols;
        uint64_t amax = rows_new_values(w, g, g, cols, mult, row_exp[r], cfg->rounding, key,
                                        (uint32_t)((first + j) * cols), tt_max_abs_s32(g, cols), (uint8_t)!renorm,
                                        over);
        if (renorm) {
            int32_t t = tt_rows_renormalise_row_s8(g, w, cols, row_exp[r], amax);
            row_exp[r] = (int8_t)t;
            if (first + j == 0 || t < *lo) {
                *lo = t;
            }
        }
    }
}

tt_status_t tt_sgd_update_weight_rows_scaled_select_s8(int8_t *weight, tt_scale_t *w_scale, int8_t *row_exp,
                                                       size_t row_count, size_t cols, const uint16_t *rows,
                                                       size_t nrows, int32_t *grad, tt_scale_t grad_scale,
                                                       const tt_sgd_config_t *cfg, uint8_t row_limit, uint32_t key)
{
    tt_multiplier_t mult;
    tt_status_t st;
    int32_t lo = 0;
    uint8_t over = 0, renorm;
    if (weight == NULL || w_scale == NULL || row_exp == NULL || grad == NULL || cfg == NULL || row_count == 0 ||
        cols == 0) {
        return TT_ERR_ARG;
    }
    if (rows == NULL) {
        nrows = row_count;
    } else if (tt_check_selection(rows, 0, nrows, row_count) != TT_OK) {
        return TT_ERR_ARG;
    }
    st = rows_update_setup(row_exp, row_count, *w_scale, grad_scale, cfg, row_limit, &mult);
    if (st != TT_OK) {
        return st;
    }
    renorm = (uint8_t)(rows == NULL && cfg->weight_rescale);
    rows_update_block(weight, row_exp, rows, 0, nrows, cols, grad, mult, cfg, key, renorm, &lo, &over);
    if (renorm) {
        tt_rows_renormalise_tensor_s8(weight, w_scale, row_exp, row_count, cols, lo, row_limit);
    }
    return over ? TT_ERR_OVERFLOW : TT_OK;
}

tt_status_t tt_sgd_update_weight_rows_scaled_s8(int8_t *weight, tt_scale_t *w_scale, int8_t *row_exp, size_t rows,
                                                size_t cols, int32_t *grad, tt_scale_t grad_scale,
                                                const tt_sgd_config_t *cfg, uint8_t row_limit, uint32_t key)
{
    return tt_sgd_update_weight_rows_scaled_select_s8(weight, w_scale, row_exp, rows, cols, NULL, rows, grad,
                                                      grad_scale, cfg, row_limit, key);
}

tt_status_t tt_sgd_update_tiled_rows_scaled_s8(const tt_tiled_update_t *u, int8_t *row_exp, uint8_t row_limit,
                                               const tt_sgd_config_t *cfg, uint32_t key)
{
    tt_multiplier_t mult = {0, 0};
    tt_status_t st;
    size_t r0, nrows, cols;
    int32_t lo = 0;
    uint8_t over = 0, renorm, have_mult = 0;
    if (u == NULL || cfg == NULL || row_exp == NULL || u->w8 == NULL || u->w_scale == NULL || u->tile == NULL ||
        u->grad == NULL || u->tile_rows == 0 || u->row_count == 0 || u->cols == 0 || u->momentum != NULL) {
        return TT_ERR_ARG;
    }
    nrows = u->rows == NULL ? u->row_count : u->nrows;
    cols = u->cols;
    if (u->rows != NULL && tt_check_selection(u->rows, 0, nrows, u->row_count) != TT_OK) {
        return TT_ERR_ARG;
    }
    renorm = (uint8_t)(u->rows == NULL && cfg->weight_rescale);
    for (r0 = 0; r0 < nrows; r0 += u->tile_rows) {
        size_t cnt = nrows - r0 < u->tile_rows ? nrows - r0 : u->tile_rows;
        tt_scale_t gs;
        st = u->grad(u->grad_ctx, r0, cnt, u->tile, &gs);
        if (st != TT_OK) {
            return st;
        }
        if (!have_mult) { /* every tile has the same gradient scale */
            st = rows_update_setup(row_exp, u->row_count, *u->w_scale, gs, cfg, row_limit, &mult);
            if (st != TT_OK) {
                return st;
            }
            have_mult = 1;
        }
        rows_update_block(u->w8, row_exp, u->rows, r0, cnt, cols, u->tile, mult, cfg, key, renorm, &lo, &over);
    }
    if (renorm) {
        tt_rows_renormalise_tensor_s8(u->w8, u->w_scale, row_exp, u->row_count, cols, lo, row_limit);
    }
    return over ? TT_ERR_OVERFLOW : TT_OK;
}
