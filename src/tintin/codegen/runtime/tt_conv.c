/* tt_conv.c - 2-D / 1-D convolution, forward and backward (mirrors tintin.ops.conv).
 *
 * Layout NCHW; a 1-D convolution is the 2-D one with in_h = kernel_h = 1, stride_h = 1, pad_h = 0.
 * Every accumulator is a direct sum of int8 x int8 products (each formed in int16) in int32; the
 * sums are exact, so the order of the terms does not matter and equals the Python's im2col result.
 */
#include "tt_ops.h"
#include "tt_rows.h"
#include "tt_internal.h"

typedef struct {
    const tt_conv2d_shape_t *s;
    size_t out_h, out_w, cin_g, cout_g; /* channels per group */
    const int8_t *a;                    /* x (forward, weight gradient) or err (input error) */
    const int8_t *w;                    /* weight (forward, input error) */
    const int32_t *bias;                /* forward: raw bias, aligned on the fly */
    tt_multiplier_t bias_mult;
    const int8_t *row_exp;              /* per-output-channel exponents (tt_rows.h), or NULL */
    uint8_t top;                        /* their maximum */
} conv_ctx_t;

tt_status_t tt_conv2d_output_hw(const tt_conv2d_shape_t *s, size_t *out_h, size_t *out_w)
{
    size_t ph, pw;
    if (s == NULL) {
        return TT_ERR_ARG;
    }
    if (s->groups == 0 || s->in_channels == 0 || s->out_channels == 0 || s->kernel_h == 0 || s->kernel_w == 0 ||
        s->stride_h == 0 || s->stride_w == 0 || s->in_channels % s->groups != 0 ||
        s->out_channels % s->groups != 0) {
        return TT_ERR_SHAPE;
    }
    ph = s->in_h + 2u * s->pad_h;
    pw = s->in_w + 2u * s->pad_w;
    if (ph < s->kernel_h || pw < s->kernel_w) {
        return TT_ERR_SHAPE;
    }
    if (out_h != NULL) {
        *out_h = (ph - s->kernel_h) / s->stride_h + 1u;
    }
    if (out_w != NULL) {
        *out_w = (pw - s->kernel_w) / s->stride_w + 1u;
    }
    return TT_OK;
}

static tt_status_t conv_init(conv_ctx_t *c, const tt_conv2d_shape_t *s)
{
    tt_status_t st = tt_conv2d_output_hw(s, &c->out_h, &c->out_w);
    if (st != TT_OK) {
        return st;
    }
    c->s = s;
    c->cin_g = s->in_channels / s->groups;
    c->cout_g = s->out_channels / s->groups;
    c->bias = NULL;
    c->bias_mult.m = 0;
    c->bias_mult.n = 0;
    c->row_exp = NULL;
    c->top = 0;
    return TT_OK;
}

/* forward accumulator at (b, o, p, q): |sum| <= fan_in * 16384 < 2**31 for any int8 values, plus
 * the aligned bias (|bias| <= 2**30) added with saturation (exact inside the domain [-127, 127]) */
static int32_t conv_forward_at(const void *vctx, size_t b, size_t o, size_t p, size_t q)
{
    const conv_ctx_t *c = (const conv_ctx_t *)vctx;
    const tt_conv2d_shape_t *s = c->s;
    size_t g = o / c->cout_g, ci, i, j;
    int32_t acc = 0, bias = 0;
    if (c->bias != NULL) {
        bias = (int32_t)tt_apply_multiplier_scalar(c->bias[o], c->bias_mult, TT_ROUND_NEAREST, 0, 0,
                                                  TT_BIAS_ALIGN_LIMIT);
    }
    for (ci = 0; ci < c->cin_g; ++ci) {
        const int8_t *xc = c->a + (b * s->in_channels + g * c->cin_g + ci) * s->in_h * s->in_w;
        const int8_t *wc = c->w + (o * c->cin_g + ci) * s->kernel_h * s->kernel_w;
        for (i = 0; i < s->kernel_h; ++i) {
            ptrdiff_t y = (ptrdiff_t)(p * s->stride_h + i) - (ptrdiff_t)s->pad_h;
            if (y < 0 || y >= (ptrdiff_t)s->in_h) {
                continue;
            }
            for (j = 0; j < s->kernel_w; ++j) {
                ptrdiff_t x = (ptrdiff_t)(q * s->stride_w + j) - (ptrdiff_t)s->pad_w;
                if (x < 0 || x >= (ptrdiff_t)s->in_w) {
                    continue;
                }
                acc += (int16_t)((int16_t)wc[i * s->kernel_w + j] * (int16_t)xc[(size_t)y * s->in_w + (size_t)x]);
            }
        }
    }
    if (c->row_exp != NULL && c->row_exp[o] != 0) { /* channel o from s * 2**-e[o] to s (nearest) */
        acc = tt_rs32_nearest(acc, (uint8_t)c->row_exp[o]);
    }
    return tt_add_sat32(bias, acc);
}

/* Output positions p whose window row i = y + pad - p * stride lies in [0, kernel): p in [lo, hi). */
static void window_range(size_t y, size_t pad, size_t kernel, size_t stride, size_t out, size_t *lo, size_t *hi)
{
    size_t t = y + pad; /* p * stride + i = t */
    *lo = t + 1u > kernel ? tt_ceil_div(t + 1u - kernel, stride) : 0u;
    *hi = t / stride + 1u;
    if (*hi > out) {
        *hi = out;
    }
}

/* input-error accumulator at (b, c, y, x): at most cout_g * ceil(kH/sH) * ceil(kW/sW) terms */
static int32_t conv_input_error_at(const void *vctx, size_t b, size_t ch, size_t y, size_t x)
{
    const conv_ctx_t *c = (const conv_ctx_t *)vctx;
    const tt_conv2d_shape_t *s = c->s;
    size_t g = ch / c->cin_g, ci = ch - g * c->cin_g, o, p, q, p_lo, p_hi, q_lo, q_hi;
    int32_t acc = 0;
    window_range(y, s->pad_h, s->kernel_h, s->stride_h, c->out_h, &p_lo, &p_hi);
    window_range(x, s->pad_w, s->kernel_w, s->stride_w, c->out_w, &q_lo, &q_hi);
    for (o = g * c->cout_g; o < (g + 1u) * c->cout_g; ++o) {
        const int8_t *eo = c->a + (b * s->out_channels + o) * c->out_h * c->out_w;
        const int8_t *wo = c->w + (o * c->cin_g + ci) * s->kernel_h * s->kernel_w;
        int32_t part = 0;
        for (p = p_lo; p < p_hi; ++p) {
            size_t i = y + s->pad_h - p * s->stride_h;
            for (q = q_lo; q < q_hi; ++q) {
                size_t j = x + s->pad_w - q * s->stride_w;
                part += (int16_t)((int16_t)wo[i * s->kernel_w + j] * (int16_t)eo[p * c->out_w + q]);
            }
        }
        /* row exponents: channel o's error enters at 2**(top - e[o]); |acc| <= terms * 127 * 127 * 2**top */
        acc += c->row_exp == NULL ? part : (int32_t)((uint32_t)part << (c->top - (uint8_t)c->row_exp[o]));
    }
    return acc;
}

static uint8_t conv_terms_ok(const tt_conv2d_shape_t *s, size_t cin_g, size_t cout_g)
{
    size_t overlap = tt_ceil_div(s->kernel_h, s->stride_h) * tt_ceil_div(s->kernel_w, s->stride_w);
    return !tt_size_above(cin_g * s->kernel_h * s->kernel_w, TT_ACC_TERMS_LIMIT) &&
           !tt_size_above(cout_g * overlap, TT_ACC_TERMS_LIMIT);
}

/* forward (row_exp NULL: one scale per tensor) */
static tt_status_t conv_forward(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                               const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                               const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                               tt_scale_t *y_scale)
{
    conv_ctx_t c;
    size_t dims[4];
    tt_status_t st;
    uint8_t top;
    if (x == NULL || weight == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = conv_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (!conv_terms_ok(shape, c.cin_g, c.cout_g)) {
        return TT_ERR_SHAPE;
    }
    if (row_exp != NULL && !tt_rows_top(row_exp, shape->out_channels, &top)) {
        return TT_ERR_RANGE;
    }
    *y_scale = tt_scale_mul(x_scale, w_scale);
    if (bias != NULL) {
        st = tt_ratio_multiplier(tt_scale_div(bias_scale, *y_scale), &c.bias_mult);
        if (st != TT_OK) {
            return st;
        }
        c.bias = bias;
    }
    c.a = x;
    c.w = weight;
    c.row_exp = row_exp;
    dims[0] = shape->batch;
    dims[1] = shape->out_channels;
    dims[2] = c.out_h;
    dims[3] = c.out_w;
    tt_rescale_acc4(conv_forward_at, &c, dims, acc, y_scale, mode, y);
    return TT_OK;
}

/* input error (row_exp NULL: one scale per tensor) */
static tt_status_t conv_input_error(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                   tt_scale_t w_scale, const int8_t *row_exp, const tt_conv2d_shape_t *shape,
                                   tt_scale_mode_t mode, int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    conv_ctx_t c;
    size_t dims[4], overlap;
    tt_status_t st;
    if (err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = conv_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (!conv_terms_ok(shape, c.cin_g, c.cout_g)) {
        return TT_ERR_SHAPE;
    }
    overlap = tt_ceil_div(shape->kernel_h, shape->stride_h) * tt_ceil_div(shape->kernel_w, shape->stride_w);
    if (row_exp != NULL && (!tt_rows_top(row_exp, shape->out_channels, &c.top) ||
                            tt_size_above(c.cout_g * overlap, (uint32_t)(TT_ACC_TERMS_LIMIT >> c.top)))) {
        return TT_ERR_RANGE; /* terms * 2**top products' worth would pass 2**30 */
    }
    c.a = err;
    c.w = weight;
    c.row_exp = row_exp;
    dims[0] = shape->batch;
    dims[1] = shape->in_channels;
    dims[2] = shape->in_h;
    dims[3] = shape->in_w;
    *err_in_scale = tt_scale_mul(err_scale, w_scale);
    err_in_scale->S = (int16_t)(err_in_scale->S - c.top);
    tt_rescale_acc4(conv_input_error_at, &c, dims, acc, err_in_scale, mode, err_in);
    return TT_OK;
}

tt_status_t tt_conv2d_forward_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                 const int32_t *bias, tt_scale_t bias_scale, const tt_conv2d_shape_t *shape,
                                 tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    return conv_forward(x, x_scale, weight, w_scale, NULL, bias, bias_scale, shape, mode, acc, y, y_scale);
}

tt_status_t tt_conv2d_backward_input_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const tt_conv2d_shape_t *shape, tt_scale_mode_t mode,
                                        int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    return conv_input_error(err, err_scale, weight, w_scale, NULL, shape, mode, acc, err_in, err_in_scale);
}

tt_status_t tt_conv2d_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                      const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                                      const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                      tt_scale_t *y_scale)
{
    if (row_exp == NULL) {
        return TT_ERR_ARG;
    }
    return conv_forward(x, x_scale, weight, w_scale, row_exp, bias, bias_scale, shape, mode, acc, y, y_scale);
}

tt_status_t tt_conv2d_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                             tt_scale_t w_scale, const int8_t *row_exp,
                                             const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                             int8_t *err_in, tt_scale_t *err_in_scale)
{
    if (row_exp == NULL) {
        return TT_ERR_ARG;
    }
    return conv_input_error(err, err_scale, weight, w_scale, row_exp, shape, mode, acc, err_in, err_in_scale);
}

tt_status_t tt_conv2d_backward_weight_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                          tt_scale_t x_scale, const tt_conv2d_shape_t *shape, int32_t *grad,
                                          tt_scale_t *grad_scale)
{
    conv_ctx_t c;
    const tt_conv2d_shape_t *s = shape;
    size_t o, ci, i, j, b, p, q, n = 0;
    tt_status_t st;
    if (err == NULL || x == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = conv_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    /* |g| <= batch * Ho * Wo * 16384 < 2**30 */
    if (tt_size_above(s->batch * c.out_h * c.out_w, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    for (o = 0; o < s->out_channels; ++o) {
        size_t g = o / c.cout_g;
        for (ci = 0; ci < c.cin_g; ++ci) {
            for (i = 0; i < s->kernel_h; ++i) {
                for (j = 0; j < s->kernel_w; ++j, ++n) {
                    int32_t acc = 0;
                    for (b = 0; b < s->batch; ++b) {
                        const int8_t *eo = err + (b * s->out_channels + o) * c.out_h * c.out_w;
                        const int8_t *xc = x + (b * s->in_channels + g * c.cin_g + ci) * s->in_h * s->in_w;
                        for (p = 0; p < c.out_h; ++p) {
                            ptrdiff_t yy = (ptrdiff_t)(p * s->stride_h + i) - (ptrdiff_t)s->pad_h;
                            if (yy < 0 || yy >= (ptrdiff_t)s->in_h) {
                                continue;
                            }
                            for (q = 0; q < c.out_w; ++q) {
                                ptrdiff_t xx = (ptrdiff_t)(q * s->stride_w + j) - (ptrdiff_t)s->pad_w;
                                if (xx < 0 || xx >= (ptrdiff_t)s->in_w) {
                                    continue;
                                }
                                acc += (int16_t)((int16_t)eo[p * c.out_w + q] *
                                                 (int16_t)xc[(size_t)yy * s->in_w + (size_t)xx]);
                            }
                        }
                    }
                    grad[n] = acc;
                }
            }
        }
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

tt_status_t tt_conv2d_backward_bias_s32(const int8_t *err, tt_scale_t err_scale, const tt_conv2d_shape_t *shape,
                                        int32_t *grad, tt_scale_t *grad_scale)
{
    conv_ctx_t c;
    size_t o, b, k, area;
    tt_status_t st;
    if (err == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = conv_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    area = c.out_h * c.out_w;
    /* |sum| <= batch * Ho * Wo * 127 */
    if (tt_size_above(shape->batch * area, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    for (o = 0; o < shape->out_channels; ++o) {
        int32_t acc = 0;
        for (b = 0; b < shape->batch; ++b) {
            const int8_t *eo = err + (b * shape->out_channels + o) * area;
            for (k = 0; k < area; ++k) {
                acc += eo[k];
            }
        }
        grad[o] = acc;
    }
    *grad_scale = err_scale;
    return TT_OK;
}

/* Kernel taps (i in [lo, hi)) that read inside the input for output position p: 0 <= p*s + i - pad < in. */
static void valid_taps(size_t p, size_t stride, size_t pad, size_t kernel, size_t in, size_t *lo, size_t *hi)
{
    size_t start = p * stride; /* input coordinate of tap i is start + i - pad */
    *lo = pad > start ? pad - start : 0u;
    *hi = in + pad > start ? in + pad - start : 0u;
    if (*hi > kernel) {
        *hi = kernel;
    }
    if (*lo > *hi) {
        *lo = *hi;
    }
}

tt_status_t tt_conv2d_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
{
    if (select == NULL) {
        return TT_ERR_ARG;
    }
    const uint16_t *const rows = select->rows;
    const size_t first = select->first;
    const size_t count = select->count;
    const tt_conv2d_shape_t *s = shape;
    size_t out_h, out_w, cin_g, cout_g, taps, j, k, b, p, q, ci, i;
    tt_status_t st;
    if (err == NULL || x == NULL || grad == NULL || grad_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_conv2d_output_hw(s, &out_h, &out_w);
    if (st != TT_OK) {
        return st;
    }
    /* |g| <= batch * Ho * Wo * 16384 < 2**30 (every partial sum too) */
    if (tt_size_above(s->batch * out_h * out_w, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (tt_check_selection(rows, first, count, s->out_channels) != TT_OK) {
        return TT_ERR_ARG;
    }
    cin_g = s->in_channels / s->groups;
    cout_g = s->out_channels / s->groups;
    taps = cin_g * s->kernel_h * s->kernel_w;
    for (j = 0; j < count; ++j) {
        size_t o = tt_selected_row(rows, first + j), g = o / cout_g;
        int32_t *gj = grad + j * taps;
        for (k = 0; k < taps; ++k) {
            gj[k] = 0;
        }
        /* error-major: every non-zero output error adds its input window, tap by tap */
        for (b = 0; b < s->batch; ++b) {
            const int8_t *eo = err + (b * s->out_channels + o) * out_h * out_w;
            const int8_t *xb = x + (b * s->in_channels + g * cin_g) * s->in_h * s->in_w;
            for (p = 0; p < out_h; ++p) {
                size_t i_lo, i_hi;
                valid_taps(p, s->stride_h, s->pad_h, s->kernel_h, s->in_h, &i_lo, &i_hi);
                for (q = 0; q < out_w; ++q) {
                    int32_t e = eo[p * out_w + q];
                    size_t j_lo, j_hi;
                    if (e == 0) {
                        continue;
                    }
                    valid_taps(q, s->stride_w, s->pad_w, s->kernel_w, s->in_w, &j_lo, &j_hi);
                    for (ci = 0; ci < cin_g; ++ci) {
                        const int8_t *xc = xb + ci * s->in_h * s->in_w;
                        int32_t *gc = gj + ci * s->kernel_h * s->kernel_w;
                        for (i = i_lo; i < i_hi; ++i) {
                            /* input row p*sh + i - ph, columns q*sw + jj - pw for jj in [j_lo, j_hi) */
                            const int8_t *xr = xc + (p * s->stride_h + i - s->pad_h) * s->in_w +
                                               (q * s->stride_w + j_lo - s->pad_w);
                            int32_t *gr = gc + i * s->kernel_w + j_lo;
                            size_t t, nt = j_hi - j_lo;
                            for (t = 0; t < nt; ++t) {
                                gr[t] += e * xr[t];
                            }
                        }
                    }
                }
            }
        }
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

/* ---- faster convolution kernels ---------------------------------------------------------------- */

/* dst[i] = src[i], i < n: whole words while they last (unaligned word access on ARMv7-M and
 * later; elsewhere the compiler copies the bytes) */
static void copy_s8(int8_t *dst, const int8_t *src, size_t n)
{
    for (; n >= 4u; n -= 4u, src += 4u, dst += 4u) {
        uint32_t t;
        __builtin_memcpy(&t, src, 4u);
        __builtin_memcpy(dst, &t, 4u);
    }
    while (n--) {
        *dst++ = *src++;
    }
}

static void zero_s8(int8_t *dst, size_t n)
{
    while (n--) {
        *dst++ = 0;
    }
}

/* One output row of windows: cols[q * fan + (ci * kh + i) * kw + j] = x[ci, row0 + i - pad_h,
 * q * stride_w + j - pad_w], zero outside the input (taps i outside [i_lo, i_hi) and the columns
 * that valid_taps excludes). Tap row by tap row, the windows wholly inside the input in one tight
 * loop; every size is a local, so the byte stores alias nothing the loops read. */
static void im2col_row(const int8_t *xg, size_t cin_g, size_t in_h, size_t in_w, size_t kh, size_t kw,
                       size_t stride_w, size_t pad_w, size_t out_w, size_t i_lo, size_t i_hi, size_t row0,
                       size_t pad_h, int8_t *cols)
{
    size_t q, ci, i, q_in_lo = out_w, q_in_hi = out_w, fan = cin_g * kh * kw;
    /* windows q in [q_in_lo, q_in_hi) lie wholly inside the input row (valid_taps gives [0, kw)) */
    for (q = 0; q < out_w; ++q) {
        size_t j_lo, j_hi;
        valid_taps(q, stride_w, pad_w, kw, in_w, &j_lo, &j_hi);
        if (j_lo == 0u && j_hi == kw) {
            if (q_in_lo == out_w) {
                q_in_lo = q;
            }
            q_in_hi = q + 1u;
        }
    }
    for (ci = 0; ci < cin_g; ++ci) {
        for (i = 0; i < kh; ++i) {
            int8_t *d = cols + (ci * kh + i) * kw;
            if (i < i_lo || i >= i_hi) {
                for (q = 0; q < out_w; ++q, d += fan) {
                    zero_s8(d, kw);
                }
                continue;
            }
            {
                const int8_t *xr = xg + ci * in_h * in_w + (row0 + i - pad_h) * in_w;
                for (q = 0; q < out_w; ++q, d += fan) {
                    size_t j_lo, j_hi;
                    if (q >= q_in_lo && q < q_in_hi) {
                        /* the inside windows: a plain copy each */
                        const int8_t *src = xr + (q * stride_w - pad_w);
                        if (kw == 5u) {
                            /* the common 5-wide kernel: one word and one byte per window */
                            for (; q < q_in_hi; ++q, d += fan, src += stride_w) {
                                copy_s8(d, src, 4u);
                                d[4] = src[4];
                            }
                        } else if (kw == 3u) {
                            for (; q < q_in_hi; ++q, d += fan, src += stride_w) {
                                d[0] = src[0];
                                d[1] = src[1];
                                d[2] = src[2];
                            }
                        } else {
                            for (; q < q_in_hi; ++q, d += fan, src += stride_w) {
                                copy_s8(d, src, kw);
                            }
                        }
                        if (q == out_w) {
                            break;
                        }
                    }
                    valid_taps(q, stride_w, pad_w, kw, in_w, &j_lo, &j_hi);
                    zero_s8(d, j_lo);
                    if (j_lo < j_hi) {
                        copy_s8(d + j_lo, xr + (q * stride_w + j_lo - pad_w), j_hi - j_lo);
                    }
                    zero_s8(d + j_hi, kw - j_hi);
                }
            }
        }
    }
}

#if TT_DOT_ROWS == 4u
/* One output row of a convolution on an Arm core: the accumulators of `channels` output channels at
 * `out_w` positions, acc[o * plane + q] = bias_o + w_o . cols_q (the windows cols[q * fan ...]), two
 * channels against two windows per product loop (tt_dot_s8_2x2), a last odd channel against four
 * windows (tt_dot_s8_rows4). The same sums and saturating bias addition as the portable loop;
 * returns the larger of amax and their magnitudes. */
static uint32_t conv_row_blocks(const int8_t *cols, const int8_t *w, const int32_t *bias, tt_multiplier_t bias_mult,
                             size_t fan, size_t channels, size_t out_w, int32_t *acc, size_t plane, uint32_t amax)
{
    size_t o, q, r;
    int32_t v[4];
    for (o = 0; o + 2u <= channels; o += 2u) {
        const int8_t *wo = w + o * fan;
        int32_t b0 = bias == NULL ? 0 : tt_align_bias_one(bias[o], bias_mult);
        int32_t b1 = bias == NULL ? 0 : tt_align_bias_one(bias[o + 1u], bias_mult);
        int32_t *a0 = acc + o * plane, *a1 = a0 + plane;
        for (q = 0; q + 2u <= out_w; q += 2u) {
            tt_dot_s8_2x2(wo, cols + q * fan, fan, fan, v);
            a0[q] = tt_add_sat32(b0, v[0]);
            a0[q + 1u] = tt_add_sat32(b0, v[1]);
            a1[q] = tt_add_sat32(b1, v[2]);
            a1[q + 1u] = tt_add_sat32(b1, v[3]);
            amax = tt_max_mag32(tt_max_mag32(tt_max_mag32(tt_max_mag32(amax, a0[q]), a0[q + 1u]), a1[q]), a1[q + 1u]);
        }
        if (q < out_w) {
            a0[q] = tt_dot_s8_x4(b0, wo, cols + q * fan, fan);
            a1[q] = tt_dot_s8_x4(b1, wo + fan, cols + q * fan, fan);
            amax = tt_max_mag32(tt_max_mag32(amax, a0[q]), a1[q]);
        }
    }
    if (o < channels) {
        const int8_t *wo = w + o * fan;
        int32_t b0 = bias == NULL ? 0 : tt_align_bias_one(bias[o], bias_mult);
        int32_t *a0 = acc + o * plane;
        for (q = 0; q + 4u <= out_w; q += 4u) {
            tt_dot_s8_rows4(wo, cols + q * fan, fan, fan, v);
            for (r = 0; r < 4u; ++r) {
                a0[q + r] = tt_add_sat32(b0, v[r]);
                amax = tt_max_mag32(amax, a0[q + r]);
            }
        }
        for (; q < out_w; ++q) {
            a0[q] = tt_dot_s8_x4(b0, wo, cols + q * fan, fan);
            amax = tt_max_mag32(amax, a0[q]);
        }
    }
    return amax;
}
#endif

tt_status_t tt_conv2d_forward_im2col_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                        const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *cols, int8_t *y, tt_scale_t *y_scale)
{
    const tt_conv2d_shape_t *s = shape;
    size_t out_h, out_w, cin_g, cout_g, fan, b, g, p, q, o, rows = 1;
    uint8_t by_position;
    tt_scale_t acc_scale = tt_scale_mul(x_scale, w_scale);
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint32_t amax = 0;
    uint8_t change = 0, pass;
    tt_status_t st;
    if (cols == NULL || x == NULL || weight == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_conv2d_output_hw(s, &out_h, &out_w);
    if (st != TT_OK) {
        return st;
    }
    if (!conv_terms_ok(s, s->in_channels / s->groups, s->out_channels / s->groups)) {
        return TT_ERR_SHAPE;
    }
    if (bias != NULL) {
        st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    cin_g = s->in_channels / s->groups;
    cout_g = s->out_channels / s->groups;
    fan = cin_g * s->kernel_h * s->kernel_w;
    by_position = (uint8_t)(TT_DOT_ROWS == 4u && cout_g % 4u != 0u);
    /* pass 0: accumulators (stored, or only their range); pass 1 (without acc): recomputed */
    for (pass = 0; pass < (acc != NULL ? 1u : 2u); ++pass) {
        for (b = 0; b < s->batch; ++b) {
            for (g = 0; g < s->groups; ++g) {
                const int8_t *xg = x + (b * s->in_channels + g * cin_g) * s->in_h * s->in_w;
                for (p = 0; p < out_h; ++p) {
                    size_t i_lo, i_hi;
                    valid_taps(p, s->stride_h, s->pad_h, s->kernel_h, s->in_h, &i_lo, &i_hi);
                    im2col_row(xg, cin_g, s->in_h, s->in_w, s->kernel_h, s->kernel_w, s->stride_w, s->pad_w, out_w,
                               i_lo, i_hi, p * s->stride_h, s->pad_h, cols);
#if TT_DOT_ROWS == 4u
                    if (acc != NULL) {
                        amax = conv_row_blocks(cols, weight + g * cout_g * fan, bias == NULL ? NULL : bias + g * cout_g,
                                            bias_mult, fan, cout_g, out_w,
                                            acc + ((b * s->out_channels + g * cout_g) * out_h + p) * out_w,
                                            out_h * out_w, amax);
                        continue;
                    }
#endif
                    /* four dot products at a time share the loads of one operand (tt_dot_s8_rows4):
                     * four output channels against one window, or, when the channels do not come in
                     * fours, one channel against four windows */
                    for (o = g * cout_g; o < (g + 1u) * cout_g; o += rows) {
                        const int8_t *wo = weight + o * fan;
                        int32_t bo[4], v[4];
                        size_t r, step_q;
                        rows = TT_DOT_ROWS == 4u && !by_position && (g + 1u) * cout_g - o >= 4u ? 4u : 1u;
                        for (r = 0; r < rows; ++r) {
                            bo[r] = bias == NULL ? 0 : tt_align_bias_one(bias[o + r], bias_mult);
                        }
                        for (q = 0; q < out_w; q += step_q) {
                            size_t n_out = rows, at_step = out_h * out_w;
                            size_t at0 = ((b * s->out_channels + o) * out_h + p) * out_w + q;
                            step_q = 1;
#if TT_DOT_ROWS == 4u
                            if (rows == 4u) {
                                tt_dot_s8_rows4(cols + q * fan, wo, fan, fan, v);
                                for (r = 0; r < 4u; ++r) {
                                    v[r] = tt_add_sat32(bo[r], v[r]);
                                }
                            } else if (by_position && out_w - q >= 4u) {
                                tt_dot_s8_rows4(wo, cols + q * fan, fan, fan, v);
                                for (r = 0; r < 4u; ++r) {
                                    v[r] = tt_add_sat32(bo[0], v[r]);
                                }
                                n_out = 4u;
                                at_step = 1u;
                                step_q = 4u;
                            } else
#endif
                            {
                                v[0] = tt_dot_s8_x4(bo[0], wo, cols + q * fan, fan);
                            }
                            for (r = 0; r < n_out; ++r) {
                                size_t at = at0 + r * at_step;
                                if (pass == 0) {
                                    uint32_t a = tt_mag32(v[r]);
                                    amax = a > amax ? a : amax;
                                    if (acc != NULL) {
                                        acc[at] = v[r];
                                    }
                                } else {
                                    y[at] = (int8_t)(change ? tt_rescale_apply(v[r], &choice, 127, TT_ROUND_NEAREST, 0, 0) : v[r]);
                                }
                            }
                        }
                    }
                }
            }
        }
        if (pass == 0) {
            change = tt_choose_rescale(amax, 8, mode, &choice);
        }
    }
    if (acc != NULL) {
        tt_rescale_write_s8(acc, s->batch * s->out_channels * out_h * out_w, change, &choice, y);
    }
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_conv2d_backward_input_scatter_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                                tt_scale_t w_scale, const tt_conv2d_shape_t *shape,
                                                tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                                tt_scale_t *err_in_scale)
{
    const tt_conv2d_shape_t *s = shape;
    size_t out_h, out_w, cin_g, cout_g, n, b, o, p, q, ci, i, k;
    tt_scale_t acc_scale = tt_scale_mul(err_scale, w_scale);
    tt_rescale_t choice;
    uint8_t change;
    tt_status_t st;
    if (acc == NULL || err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_conv2d_output_hw(s, &out_h, &out_w);
    if (st != TT_OK) {
        return st;
    }
    if (!conv_terms_ok(s, s->in_channels / s->groups, s->out_channels / s->groups)) {
        return TT_ERR_SHAPE;
    }
    cin_g = s->in_channels / s->groups;
    cout_g = s->out_channels / s->groups;
    n = s->batch * s->in_channels * s->in_h * s->in_w;
    for (k = 0; k < n; ++k) {
        acc[k] = 0;
    }
    /* every non-zero output error adds itself times the kernel to the inputs it read; partial
     * sums are sums of a subset of an element's terms, so they stay inside the element's bound */
    for (b = 0; b < s->batch; ++b) {
        for (o = 0; o < s->out_channels; ++o) {
            size_t g = o / cout_g;
            const int8_t *eo = err + (b * s->out_channels + o) * out_h * out_w;
            for (p = 0; p < out_h; ++p) {
                size_t i_lo, i_hi;
                valid_taps(p, s->stride_h, s->pad_h, s->kernel_h, s->in_h, &i_lo, &i_hi);
                for (q = 0; q < out_w; ++q) {
                    int32_t e = eo[p * out_w + q];
                    size_t j_lo, j_hi;
                    if (e == 0) {
                        continue;
                    }
                    valid_taps(q, s->stride_w, s->pad_w, s->kernel_w, s->in_w, &j_lo, &j_hi);
                    for (ci = 0; ci < cin_g; ++ci) {
                        const int8_t *wc = weight + (o * cin_g + ci) * s->kernel_h * s->kernel_w;
                        int32_t *ac = acc + (b * s->in_channels + g * cin_g + ci) * s->in_h * s->in_w;
                        for (i = i_lo; i < i_hi; ++i) {
                            int32_t *ar = ac + (p * s->stride_h + i - s->pad_h) * s->in_w +
                                          (q * s->stride_w + j_lo - s->pad_w);
                            const int8_t *wr = wc + i * s->kernel_w + j_lo;
                            size_t t, nt = j_hi - j_lo;
                            for (t = 0; t < nt; ++t) {
                                ar[t] += e * wr[t];
                            }
                        }
                    }
                }
            }
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, n), 8, mode, &choice);
    tt_rescale_write_s8(acc, n, change, &choice, err_in);
    *err_in_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}
