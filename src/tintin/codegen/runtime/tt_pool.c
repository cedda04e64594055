/* tt_pool.c - max, average and global average pooling, forward and backward (mirrors
 * tintin.ops.pool). Layout NCHW, no padding; stride 0 means stride = kernel. 1-D pooling is the
 * 2-D one with in_h = kernel_h = 1. */
#include "tt_ops.h"
#include "tt_internal.h"

typedef struct {
    const tt_pool2d_shape_t *s;
    size_t kh, kw, sh, sw, out_h, out_w;
    const int8_t *a;        /* input (forward) or output error (backward) */
    const uint16_t *argmax; /* max pool backward */
    const uint8_t *argmax8; /* max pool backward with one-byte offsets (instead of argmax) */
    int32_t mult;           /* average pool: fixed-point reciprocal M */
} pool_ctx_t;

static tt_status_t pool_init(pool_ctx_t *c, const tt_pool2d_shape_t *s)
{
    if (s == NULL) {
        return TT_ERR_ARG;
    }
    c->s = s;
    c->kh = s->kernel_h;
    c->kw = s->kernel_w;
    c->sh = s->stride_h ? s->stride_h : s->kernel_h;
    c->sw = s->stride_w ? s->stride_w : s->kernel_w;
    if (c->kh == 0 || c->kw == 0 || s->channels == 0 || s->in_h < c->kh || s->in_w < c->kw) {
        return TT_ERR_SHAPE;
    }
    c->out_h = (s->in_h - c->kh) / c->sh + 1u;
    c->out_w = (s->in_w - c->kw) / c->sw + 1u;
    c->argmax = NULL;
    c->argmax8 = NULL;
    c->mult = 1;
    return TT_OK;
}

tt_status_t tt_pool2d_output_hw(const tt_pool2d_shape_t *shape, size_t *out_h, size_t *out_w)
{
    pool_ctx_t c;
    tt_status_t st = pool_init(&c, shape);
    if (st == TT_OK) {
        if (out_h != NULL) {
            *out_h = c.out_h;
        }
        if (out_w != NULL) {
            *out_w = c.out_w;
        }
    }
    return st;
}

/* ---- max pool ------------------------------------------------------------------------------ */

tt_status_t tt_maxpool2d_forward_s8(const int8_t *x, const tt_pool2d_shape_t *shape, int8_t *y, uint16_t *argmax)
{
    pool_ctx_t c;
    size_t bc, p, q, i, j, n = 0;
    tt_status_t st = pool_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (x == NULL || y == NULL || argmax == NULL || tt_size_above(c.kh * c.kw, 65535UL)) {
        return x == NULL || y == NULL || argmax == NULL ? TT_ERR_ARG : TT_ERR_SHAPE;
    }
    for (bc = 0; bc < shape->batch * shape->channels; ++bc) {
        const int8_t *xc = x + bc * shape->in_h * shape->in_w;
        for (p = 0; p < c.out_h; ++p) {
            for (q = 0; q < c.out_w; ++q, ++n) {
                const int8_t *win = xc + p * c.sh * shape->in_w + q * c.sw;
                int8_t best = win[0];
                uint16_t arg = 0;
                /* row-major window order, strictly greater: the first maximum wins */
                for (i = 0; i < c.kh; ++i) {
                    for (j = 0; j < c.kw; ++j) {
                        if (win[i * shape->in_w + j] > best) {
                            best = win[i * shape->in_w + j];
                            arg = (uint16_t)(i * c.kw + j);
                        }
                    }
                }
                y[n] = best;
                argmax[n] = arg;
            }
        }
    }
    return TT_OK;
}

/* max pool input error at (b, c, y, x): the errors of the windows whose argmax is (y, x);
 * at most ceil(kH/sH) * ceil(kW/sW) terms of |e| <= 127 */
static int32_t maxpool_error_at(const void *vctx, size_t b, size_t ch, size_t y, size_t x)
{
    const pool_ctx_t *c = (const pool_ctx_t *)vctx;
    size_t plane = (b * c->s->channels + ch) * c->out_h * c->out_w, p, q, p_lo, p_hi, q_lo, q_hi;
    int32_t acc = 0;
    tt_pool_covering(y, c->kh, c->sh, c->out_h, &p_lo, &p_hi);
    tt_pool_covering(x, c->kw, c->sw, c->out_w, &q_lo, &q_hi);
    for (p = p_lo; p < p_hi; ++p) {
        for (q = q_lo; q < q_hi; ++q) {
            size_t k = plane + p * c->out_w + q;
            size_t arg = c->argmax8 != NULL ? (size_t)c->argmax8[k] : (size_t)c->argmax[k];
            if (arg == (y - p * c->sh) * c->kw + (x - q * c->sw)) {
                acc += c->a[k];
            }
        }
    }
    return acc;
}

tt_status_t tt_maxpool2d_backward_s8(const int8_t *err, tt_scale_t err_scale, const uint16_t *argmax,
                                     const tt_pool2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                     int8_t *err_in, tt_scale_t *err_in_scale)
{
    pool_ctx_t c;
    size_t dims[4];
    tt_status_t st = pool_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (err == NULL || argmax == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    c.a = err;
    c.argmax = argmax;
    dims[0] = shape->batch;
    dims[1] = shape->channels;
    dims[2] = shape->in_h;
    dims[3] = shape->in_w;
    *err_in_scale = err_scale;
    /* without overlap every input gets at most one error (|e| <= 127): the rescale never changes
     * anything and the error keeps its mantissas and scale, as in the Python */
    tt_rescale_acc4(maxpool_error_at, &c, dims, acc, err_in_scale, mode, err_in);
    return TT_OK;
}

/* ---- average pool ---------------------------------------------------------------------------- */

tt_status_t tt_avgpool_multiplier(size_t window, tt_multiplier_t *out)
{
    uint8_t bits, wbits;
    uint32_t m;
    int32_t n;
    if (out == NULL || window == 0) {
        return TT_ERR_ARG;
    }
    if (tt_size_above(window, 0x7FFFFFUL)) {
        return TT_ERR_SHAPE;
    }
    wbits = tt_bit_length_u32((uint32_t)window);
    /* bits = min(15, 30 - bitlen(127 * window)) >= 1, so |127 * window * M| <= 2**30 */
    bits = tt_bit_length_u32(127UL * (uint32_t)window); /* < 31 */
    if (bits >= 30) {
        return TT_ERR_SHAPE;
    }
    bits = (uint8_t)(30 - bits);
    if (bits > 15) {
        bits = 15;
    }
    n = bits + wbits - 1; /* <= 23 */
    m = (((uint32_t)1 << n) + (uint32_t)window / 2u) / (uint32_t)window;
    while ((m & 1u) == 0 && n > 0) {
        m >>= 1;
        --n;
    }
    out->m = (int32_t)m;
    out->n = n;
    return TT_OK;
}

/* average pool forward accumulator: window sum (|s| <= 127 * window) times M: <= 2**30 */
static int32_t avgpool_forward_at(const void *vctx, size_t b, size_t ch, size_t p, size_t q)
{
    const pool_ctx_t *c = (const pool_ctx_t *)vctx;
    const int8_t *win = c->a + ((b * c->s->channels + ch) * c->s->in_h + p * c->sh) * c->s->in_w + q * c->sw;
    size_t i, j;
    int32_t sum = 0;
    for (i = 0; i < c->kh; ++i) {
        for (j = 0; j < c->kw; ++j) {
            sum += win[i * c->s->in_w + j];
        }
    }
    return sum * c->mult;
}

/* average pool input error at (b, c, y, x): sum of err * M over the covering windows (at most
 * ceil(kH/sH) * ceil(kW/sW) <= window terms of |e * M| <= 2**30 / window) */
static int32_t avgpool_error_at(const void *vctx, size_t b, size_t ch, size_t y, size_t x)
{
    const pool_ctx_t *c = (const pool_ctx_t *)vctx;
    const int8_t *e = c->a + (b * c->s->channels + ch) * c->out_h * c->out_w;
    size_t p, q, p_lo, p_hi, q_lo, q_hi;
    int32_t acc = 0;
    tt_pool_covering(y, c->kh, c->sh, c->out_h, &p_lo, &p_hi);
    tt_pool_covering(x, c->kw, c->sw, c->out_w, &q_lo, &q_hi);
    for (p = p_lo; p < p_hi; ++p) {
        for (q = q_lo; q < q_hi; ++q) {
            acc += e[p * c->out_w + q] * c->mult;
        }
    }
    return acc;
}

tt_status_t tt_avgpool2d_forward_s8(const int8_t *x, tt_scale_t x_scale, const tt_pool2d_shape_t *shape,
                                    tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    pool_ctx_t c;
    tt_multiplier_t m;
    size_t dims[4];
    tt_status_t st = pool_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (x == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_avgpool_multiplier(c.kh * c.kw, &m);
    if (st != TT_OK) {
        return st;
    }
    c.a = x;
    c.mult = m.m;
    dims[0] = shape->batch;
    dims[1] = shape->channels;
    dims[2] = c.out_h;
    dims[3] = c.out_w;
    *y_scale = x_scale;
    y_scale->S = tt_exp16((int32_t)x_scale.S - m.n);
    tt_rescale_acc4(avgpool_forward_at, &c, dims, acc, y_scale, mode, y);
    return TT_OK;
}

tt_status_t tt_avgpool2d_backward_s8(const int8_t *err, tt_scale_t err_scale, const tt_pool2d_shape_t *shape,
                                     tt_scale_mode_t mode, int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    pool_ctx_t c;
    tt_multiplier_t m;
    size_t dims[4];
    tt_status_t st = pool_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (err == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_avgpool_multiplier(c.kh * c.kw, &m);
    if (st != TT_OK) {
        return st;
    }
    c.a = err;
    c.mult = m.m;
    dims[0] = shape->batch;
    dims[1] = shape->channels;
    dims[2] = shape->in_h;
    dims[3] = shape->in_w;
    *err_in_scale = err_scale;
    err_in_scale->S = tt_exp16((int32_t)err_scale.S - m.n);
    tt_rescale_acc4(avgpool_error_at, &c, dims, acc, err_in_scale, mode, err_in);
    return TT_OK;
}

/* ---- global average pool ------------------------------------------------------------------- */

typedef struct {
    const int8_t *a;
    size_t channels, positions;
    int32_t mult;
} gap_ctx_t;

static int32_t gap_forward_at(const void *vctx, size_t b, size_t ch, size_t p, size_t q)
{
    const gap_ctx_t *c = (const gap_ctx_t *)vctx;
    const int8_t *xc = c->a + (b * c->channels + ch) * c->positions;
    size_t k;
    int32_t sum = 0;
    (void)p;
    (void)q;
    for (k = 0; k < c->positions; ++k) {
        sum += xc[k];
    }
    return sum * c->mult;
}

static int32_t gap_error_at(const void *vctx, size_t b, size_t ch, size_t p, size_t q)
{
    const gap_ctx_t *c = (const gap_ctx_t *)vctx;
    (void)p;
    (void)q;
    return c->a[b * c->channels + ch] * c->mult;
}

tt_status_t tt_global_avgpool_forward_s8(const int8_t *x, tt_scale_t x_scale, size_t batch, size_t channels,
                                         size_t positions, tt_scale_mode_t mode, int8_t *y, tt_scale_t *y_scale)
{
    gap_ctx_t c;
    tt_multiplier_t m;
    size_t dims[4];
    tt_status_t st;
    if (x == NULL || y == NULL || y_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_avgpool_multiplier(positions, &m);
    if (st != TT_OK) {
        return st;
    }
    c.a = x;
    c.channels = channels;
    c.positions = positions;
    c.mult = m.m;
    dims[0] = batch;
    dims[1] = channels;
    dims[2] = 1;
    dims[3] = 1;
    *y_scale = x_scale;
    y_scale->S = tt_exp16((int32_t)x_scale.S - m.n);
    tt_rescale_acc4(gap_forward_at, &c, dims, NULL, y_scale, mode, y);
    return TT_OK;
}

tt_status_t tt_global_avgpool_backward_s8(const int8_t *err, tt_scale_t err_scale, size_t batch, size_t channels,
                                          size_t positions, tt_scale_mode_t mode, int8_t *err_in,
                                          tt_scale_t *err_in_scale)
{
    gap_ctx_t c;
    tt_multiplier_t m;
    size_t bc, k;
    tt_status_t st;
    if (err == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    st = tt_avgpool_multiplier(positions, &m);
    if (st != TT_OK) {
        return st;
    }
    c.a = err;
    c.channels = channels;
    c.positions = positions;
    c.mult = m.m;
    *err_in_scale = err_scale;
    err_in_scale->S = tt_exp16((int32_t)err_scale.S - m.n);
    /* rescale the (B, C) errors err * M (two passes, no scratch), then write each one to every
     * position of its channel; err_in must not alias err */
    {
        tt_rescale_t choice;
        uint32_t amax = 0;
        uint8_t change;
        for (bc = 0; bc < batch * channels; ++bc) {
            uint32_t a = tt_mag32(gap_error_at(&c, 0, bc, 0, 0));
            if (a > amax) {
                amax = a;
            }
        }
        change = tt_choose_rescale(amax, 8, mode, &choice);
        for (bc = 0; bc < batch * channels; ++bc) {
            int32_t v = gap_error_at(&c, 0, bc, 0, 0);
            int8_t q = (int8_t)(change ? tt_rescale_apply(v, &choice, 127, TT_ROUND_NEAREST, 0, 0) : v);
            for (k = 0; k < positions; ++k) {
                err_in[bc * positions + k] = q;
            }
        }
        if (change) {
            *err_in_scale = tt_rescaled_scale(*err_in_scale, &choice);
        }
    }
    return TT_OK;
}

/* ---- max pooling with one-byte window offsets -------------------------------------------------- */

/* pool_init for one-byte offsets: windows of at most 256 elements */
static tt_status_t pool8_init(pool_ctx_t *c, const tt_pool2d_shape_t *s)
{
    tt_status_t st = pool_init(c, s);
    if (st == TT_OK && tt_size_above(c->kh * c->kw, 256UL)) {
        return TT_ERR_SHAPE;
    }
    return st;
}

tt_status_t tt_maxpool2d_forward_idx8_s8(const int8_t *x, const tt_pool2d_shape_t *shape, int8_t *y,
                                         uint8_t *argmax)
{
    pool_ctx_t c;
    size_t bc, p, q, i, j, n = 0;
    tt_status_t st = pool8_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (bc = 0; bc < shape->batch * shape->channels; ++bc) {
        const int8_t *xc = x + bc * shape->in_h * shape->in_w;
        for (p = 0; p < c.out_h; ++p) {
            for (q = 0; q < c.out_w; ++q, ++n) {
                const int8_t *win = xc + p * c.sh * shape->in_w + q * c.sw;
                int8_t best = win[0];
                uint8_t arg = 0, k = 0;
                /* row-major window order, strictly greater: the first maximum wins */
                for (i = 0; i < c.kh; ++i) {
                    for (j = 0; j < c.kw; ++j, ++k) {
                        if (win[i * shape->in_w + j] > best) {
                            best = win[i * shape->in_w + j];
                            arg = k;
                        }
                    }
                }
                y[n] = best;
                if (argmax != NULL) {
                    argmax[n] = arg;
                }
            }
        }
    }
    return TT_OK;
}

tt_status_t tt_maxpool2d_backward_idx8_s8(const int8_t *err, tt_scale_t err_scale, const uint8_t *argmax,
                                          const tt_pool2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                          int8_t *err_in, tt_scale_t *err_in_scale)
{
    pool_ctx_t c;
    size_t bc, p, q, n = 0, i, in_plane;
    tt_status_t st = pool8_init(&c, shape);
    if (st != TT_OK) {
        return st;
    }
    if (err == NULL || argmax == NULL || err_in == NULL || err_in_scale == NULL) {
        return TT_ERR_ARG;
    }
    *err_in_scale = err_scale;
    if (c.sh < c.kh || c.sw < c.kw) {
        size_t dims[4];
        c.a = err;
        c.argmax8 = argmax;
        dims[0] = shape->batch;
        dims[1] = shape->channels;
        dims[2] = shape->in_h;
        dims[3] = shape->in_w;
        tt_rescale_acc4(maxpool_error_at, &c, dims, acc, err_in_scale, mode, err_in);
        return TT_OK;
    }
    /* windows do not overlap: every input receives at most one error (|e| <= 127), so nothing is
     * rescaled and the error keeps its mantissas and scale, as in the Python */
    in_plane = shape->in_h * shape->in_w;
    for (i = 0; i < shape->batch * shape->channels * in_plane; ++i) {
        err_in[i] = 0;
    }
    for (bc = 0; bc < shape->batch * shape->channels; ++bc) {
        int8_t *ec = err_in + bc * in_plane;
        for (p = 0; p < c.out_h; ++p) {
            for (q = 0; q < c.out_w; ++q, ++n) {
                size_t a = argmax[n], r = 0;
                while (a >= c.kw) { /* a / kw without a division (windows are small) */
                    a -= c.kw;
                    ++r;
                }
                ec[(p * c.sh + r) * shape->in_w + q * c.sw + a] = err[n];
            }
        }
    }
    return TT_OK;
}
