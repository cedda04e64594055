/* tt_residual.c - residual add of two int8 tensors at different scales (mirrors
 * tintin.ops.residual) and the per-channel scale-and-shift layer (mirrors tintin.ops.scaling). */
#include "tt_ops.h"
#include "tt_internal.h"

#define TT_RESIDUAL_MAX_SHIFT 23

/* floor(log2(p / q)) from the multiplier of the ratio: 14 - n */
static tt_status_t log2_ratio_floor(tt_scale_t p, tt_scale_t q, int32_t *e)
{
    tt_multiplier_t m;
    tt_status_t st = tt_ratio_multiplier(tt_scale_div(p, q), &m);
    *e = (TT_MULT_BITS - 1) - m.n;
    return st;
}

/* (S, U, D) of x >= that of y, compared as tuples */
static uint8_t tuple_ge(tt_scale_t x, tt_scale_t y)
{
    if (x.S != y.S) {
        return x.S > y.S;
    }
    if (x.U != y.U) {
        return x.U > y.U;
    }
    return x.D >= y.D;
}

tt_status_t tt_residual_working_scale(tt_scale_t a_scale, tt_scale_t b_scale, tt_scale_t *work)
{
    int32_t e_ab, e_ba, e;
    uint8_t a_coarse;
    tt_status_t st;
    if (work == NULL) {
        return TT_ERR_ARG;
    }
    st = log2_ratio_floor(a_scale, b_scale, &e_ab);
    if (st == TT_OK) {
        st = log2_ratio_floor(b_scale, a_scale, &e_ba);
    }
    if (st != TT_OK) {
        return st;
    }
    /* symmetric: the coarse operand has a ratio >= 1 to the other; if the multiplier's rounding
     * makes both look >= 1 (or neither), the larger (S, U, D) tuple is coarse */
    if ((e_ab >= 0) != (e_ba >= 0)) {
        a_coarse = e_ab >= 0;
    } else {
        a_coarse = tuple_ge(a_scale, b_scale);
    }
    e = a_coarse ? e_ab : e_ba;
    if (e < TT_RESIDUAL_MAX_SHIFT) {
        *work = a_coarse ? b_scale : a_scale;
    } else {
        *work = a_coarse ? a_scale : b_scale;
        work->S = tt_exp16((int32_t)work->S - TT_RESIDUAL_MAX_SHIFT);
    }
    return TT_OK;
}

typedef struct {
    const int8_t *a, *b;
    tt_multiplier_t ma, mb;
    uint8_t exact_a, exact_b; /* the operand's scale is the working scale: no conversion */
} residual_ctx_t;

/* a' + b' at the working scale: |a'| <= 127 * 2**23 (+1), |b'| likewise, so |sum| < 2**31 */
static int32_t residual_at(const void *vctx, size_t b, size_t c, size_t p, size_t q)
{
    const residual_ctx_t *r = (const residual_ctx_t *)vctx;
    size_t i = q;
    int64_t va, vb;
    (void)b;
    (void)c;
    (void)p;
    va = r->exact_a ? r->a[i] : tt_apply_multiplier_scalar(r->a[i], r->ma, TT_ROUND_NEAREST, 0, 0, -1);
    vb = r->exact_b ? r->b[i] : tt_apply_multiplier_scalar(r->b[i], r->mb, TT_ROUND_NEAREST, 0, 0, -1);
    return (int32_t)(va + vb);
}

static uint8_t same_scale(tt_scale_t x, tt_scale_t y)
{
    return x.S == y.S && x.U == y.U && x.D == y.D;
}

tt_status_t tt_residual_add_s8(const int8_t *a, tt_scale_t a_scale, const int8_t *b, tt_scale_t b_scale,
                               size_t count, tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    residual_ctx_t r;
    size_t dims[4];
    tt_status_t st;
    if (y_scale == NULL || (count && (a == NULL || b == NULL || y == NULL))) {
        return TT_ERR_ARG;
    }
    st = tt_residual_working_scale(a_scale, b_scale, y_scale);
    if (st != TT_OK) {
        return st;
    }
    r.a = a;
    r.b = b;
    r.exact_a = same_scale(a_scale, *y_scale);
    r.exact_b = same_scale(b_scale, *y_scale);
    st = tt_ratio_multiplier(tt_scale_div(a_scale, *y_scale), &r.ma);
    if (st == TT_OK) {
        st = tt_ratio_multiplier(tt_scale_div(b_scale, *y_scale), &r.mb);
    }
    if (st != TT_OK) {
        return st;
    }
    dims[0] = 1;
    dims[1] = 1;
    dims[2] = 1;
    dims[3] = count;
    tt_rescale_acc4(residual_at, &r, dims, acc, y_scale, mode, y);
    return TT_OK;
}

/* ---- per-channel scale and shift ------------------------------------------------------------- */

typedef struct {
    const int8_t *a;     /* x (forward) or err (input error) */
    const int8_t *gamma; /* (C,) */
    const int32_t *beta; /* (C,) or NULL */
    tt_multiplier_t beta_mult;
    size_t channels, positions;
} chscale_ctx_t;

/* x * gamma[c] (|p| <= 16384) plus the aligned beta (|beta| <= 2**30) */
static int32_t chscale_at(const void *vctx, size_t b, size_t c, size_t p, size_t q)
{
    const chscale_ctx_t *k = (const chscale_ctx_t *)vctx;
    int32_t v = (int16_t)((int16_t)k->a[(b * k->channels + c) * k->positions + p] * (int16_t)k->gamma[c]);
    (void)q;
    if (k->beta != NULL) {
        v += (int32_t)tt_apply_multiplier_scalar(k->beta[c], k->beta_mult, TT_ROUND_NEAREST, 0, 0, TT_BIAS_ALIGN_LIMIT);
    }
    return v;
}

static tt_status_t chscale_run(const int8_t *a, tt_scale_t a_scale, const int8_t *gamma, tt_scale_t g_scale,
                               const int32_t *beta, tt_scale_t beta_scale, size_t batch, size_t channels,
                               size_t positions, tt_scale_mode_t mode, int32_t *acc, int8_t *out, tt_scale_t *out_scale)
{
    chscale_ctx_t k;
    size_t dims[4];
    if (out_scale == NULL || (batch && (a == NULL || gamma == NULL || out == NULL))) {
        return TT_ERR_ARG;
    }
    k.a = a;
    k.gamma = gamma;
    k.beta = beta;
    k.channels = channels;
    k.positions = positions;
    *out_scale = tt_scale_mul(a_scale, g_scale);
    if (beta != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(beta_scale, *out_scale), &k.beta_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    dims[0] = batch;
    dims[1] = channels;
    dims[2] = positions;
    dims[3] = 1;
    tt_rescale_acc4(chscale_at, &k, dims, acc, out_scale, mode, out);
    return TT_OK;
}

tt_status_t tt_channel_scale_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *gamma,
                                        tt_scale_t gamma_scale, const int32_t *beta, tt_scale_t beta_scale,
                                        const tt_channel_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *y, tt_scale_t *y_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t channels = shape->channels;
    const size_t positions = shape->positions;
    return chscale_run(x, x_scale, gamma, gamma_scale, beta, beta_scale, batch, channels, positions, mode, acc, y,
                       y_scale);
}

tt_status_t tt_channel_scale_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *gamma,
                                               tt_scale_t gamma_scale, const tt_channel_shape_t *shape,
                                               tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                               tt_scale_t *err_in_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t channels = shape->channels;
    const size_t positions = shape->positions;
    return chscale_run(err, err_scale, gamma, gamma_scale, NULL, err_scale, batch, channels, positions, mode, acc,
                       err_in, err_in_scale);
}

tt_status_t tt_channel_scale_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                 tt_scale_t x_scale, const tt_channel_shape_t *shape, int32_t *grad,
                                                 tt_scale_t *grad_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t channels = shape->channels;
    const size_t positions = shape->positions;
    size_t b, c, p;
    if (grad == NULL || grad_scale == NULL || (batch && (err == NULL || x == NULL))) {
        return TT_ERR_ARG;
    }
    /* |g| <= batch * positions * 16384 < 2**30 */
    if (tt_size_above(batch * positions, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    for (c = 0; c < channels; ++c) {
        int32_t acc = 0;
        for (b = 0; b < batch; ++b) {
            size_t base = (b * channels + c) * positions;
            for (p = 0; p < positions; ++p) {
                acc += (int16_t)((int16_t)err[base + p] * (int16_t)x[base + p]);
            }
        }
        grad[c] = acc;
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

tt_status_t tt_channel_scale_backward_bias_s32(const int8_t *err, tt_scale_t err_scale,
                                               const tt_channel_shape_t *shape, int32_t *grad, tt_scale_t *grad_scale)
{
    if (shape == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t channels = shape->channels;
    const size_t positions = shape->positions;
    size_t b, c, p;
    if (grad == NULL || grad_scale == NULL || (batch && err == NULL)) {
        return TT_ERR_ARG;
    }
    if (tt_size_above(batch * positions, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    for (c = 0; c < channels; ++c) {
        int32_t acc = 0;
        for (b = 0; b < batch; ++b) {
            size_t base = (b * channels + c) * positions;
            for (p = 0; p < positions; ++p) {
                acc += err[base + p];
            }
        }
        grad[c] = acc;
    }
    *grad_scale = err_scale;
    return TT_OK;
}

tt_status_t tt_channel_scale_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                      tt_scale_t x_scale, const tt_channel_shape_t *shape,
                                                      const tt_row_select_t *select, int32_t *grad,
                                                      tt_scale_t *grad_scale)
{
    if (shape == NULL || select == NULL) {
        return TT_ERR_ARG;
    }
    const size_t batch = shape->batch;
    const size_t channels = shape->channels;
    const size_t positions = shape->positions;
    const uint16_t *const rows = select->rows;
    const size_t first = select->first;
    const size_t count = select->count;
    size_t j, b, p;
    if (grad == NULL || grad_scale == NULL || (count && (err == NULL || x == NULL))) {
        return TT_ERR_ARG;
    }
    if (tt_size_above(batch * positions, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (tt_check_selection(rows, first, count, channels) != TT_OK) {
        return TT_ERR_ARG;
    }
    for (j = 0; j < count; ++j) {
        size_t c = tt_selected_row(rows, first + j);
        int32_t acc = 0;
        for (b = 0; b < batch; ++b) {
            size_t base = (b * channels + c) * positions;
            for (p = 0; p < positions; ++p) {
                acc += (int16_t)((int16_t)err[base + p] * (int16_t)x[base + p]);
            }
        }
        grad[j] = acc;
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}
