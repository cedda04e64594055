/* tt_patch.c - patch-based forward pass of a frozen first stage (mirrors tintin.compile.patch).
 *
 * Regions are [r0, r1) x [c0, c1) of a layer's output. A region of layer j needs the input range
 * [lo * stride - pad, (hi - 1) * stride - pad + kernel) of layer j (clipped to the map: the rest is
 * zero padding), which is the region of layer j - 1. Convolution k's output is rescaled with the
 * maximum of its whole accumulator, found by pass k; with it known, nearest rounding is per element.
 */
#include "tt_ops.h"
#include "tt_internal.h"

typedef struct {
    ptrdiff_t r0, r1, c0, c1;
} region_t;

typedef struct {
    const int8_t *x;
    tt_scale_t x_scale;
    size_t batch, count, patch;
    const tt_patch_layer_t *layers;
    tt_scale_mode_t mode;
    uint32_t amax[TT_PATCH_MAX_LAYERS];
    region_t reg[TT_PATCH_MAX_LAYERS];
} stage_t;

static void input_range(const tt_patch_layer_t *l, uint8_t axis, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t *a, ptrdiff_t *b)
{
    ptrdiff_t k, s, p;
    if (l->kind == TT_PATCH_RELU) {
        *a = lo;
        *b = hi;
        return;
    }
    k = (ptrdiff_t)(axis ? l->kernel_w : l->kernel_h);
    s = (ptrdiff_t)(axis ? l->stride_w : l->stride_h);
    p = l->kind == TT_PATCH_CONV ? (ptrdiff_t)(axis ? l->pad_w : l->pad_h) : 0;
    *a = lo * s - p;
    *b = (hi - 1) * s - p + k;
}

/* the regions of layers 0 .. target for `region` of layer target's output (tintin's `regions`) */
static void regions(stage_t *st, size_t target, region_t region)
{
    size_t j;
    st->reg[target] = region;
    for (j = target; j > 0; --j) {
        const tt_patch_layer_t *l = &st->layers[j];
        region_t r = st->reg[j], in;
        ptrdiff_t a0, a1, b0, b1;
        if (r.r1 <= r.r0 || r.c1 <= r.c0) {
            in.r0 = in.r1 = in.c0 = in.c1 = 0;
        } else {
            input_range(l, 0, r.r0, r.r1, &a0, &a1);
            input_range(l, 1, r.c0, r.c1, &b0, &b1);
            in.r0 = a0 > 0 ? a0 : 0; /* the rest of the range is the layer's zero padding */
            in.r1 = a1 < (ptrdiff_t)l->in_h ? a1 : (ptrdiff_t)l->in_h;
            in.c0 = b0 > 0 ? b0 : 0;
            in.c1 = b1 < (ptrdiff_t)l->in_w ? b1 : (ptrdiff_t)l->in_w;
        }
        st->reg[j - 1] = in;
    }
}

/* One region computation: layers 0 .. target; with find_max, only the target convolution's running
 * maximum is kept. Returns the scale of the target's values in *scale. */
static tt_status_t run(stage_t *st, size_t target, uint8_t find_max, region_t region, tt_scale_t *scale)
{
    size_t j, b, o, p, q;
    tt_scale_t cur = st->x_scale;
    const int8_t *src = st->x;
    int8_t *prev = NULL; /* the previous layer's patch buffer (src after layer 0) */
    ptrdiff_t sr0 = 0, sc0 = 0, sh = 0, sw = 0; /* the source region's origin and size */
    regions(st, target, region);
    for (j = 0; j <= target; ++j) {
        const tt_patch_layer_t *l = &st->layers[j];
        region_t r = st->reg[j];
        ptrdiff_t rh = r.r1 > r.r0 ? r.r1 - r.r0 : 0, rw = r.c1 > r.c0 ? r.c1 - r.c0 : 0;
        if (j == 0) {
            sr0 = 0;
            sc0 = 0;
            sh = (ptrdiff_t)l->in_h;
            sw = (ptrdiff_t)l->in_w;
        }
        if (l->kind == TT_PATCH_RELU) { /* in place: the source region is the output region */
            size_t n = st->batch * l->out_c * (size_t)rh * (size_t)rw, i;
            if (prev == NULL) {
                return TT_ERR_SHAPE; /* a stage does not start with a ReLU */
            }
            for (i = 0; i < n; ++i) {
                prev[i] = prev[i] > 0 ? prev[i] : 0;
            }
            continue;
        }
        if (l->kind == TT_PATCH_MAXPOOL) {
            for (b = 0; b < st->batch; ++b) {
                for (o = 0; o < l->out_c; ++o) {
                    const int8_t *xc = src + (b * l->in_c + o) * (size_t)sh * (size_t)sw;
                    int8_t *yc = l->patch + (b * l->out_c + o) * (size_t)rh * (size_t)rw;
                    for (p = 0; p < (size_t)rh; ++p) {
                        for (q = 0; q < (size_t)rw; ++q) {
                            ptrdiff_t y0 = (r.r0 + (ptrdiff_t)p) * (ptrdiff_t)l->stride_h - sr0;
                            ptrdiff_t x0 = (r.c0 + (ptrdiff_t)q) * (ptrdiff_t)l->stride_w - sc0;
                            size_t i, k;
                            int8_t m = xc[(size_t)y0 * (size_t)sw + (size_t)x0];
                            for (i = 0; i < l->kernel_h; ++i) {
                                for (k = 0; k < l->kernel_w; ++k) {
                                    int8_t v = xc[(size_t)(y0 + (ptrdiff_t)i) * (size_t)sw + (size_t)(x0 + (ptrdiff_t)k)];
                                    m = v > m ? v : m;
                                }
                            }
                            yc[p * (size_t)rw + q] = m;
                        }
                    }
                }
            }
        } else { /* convolution */
            tt_scale_t acc_scale = tt_scale_mul(cur, l->w_scale);
            tt_multiplier_t bias_mult = {0, 0};
            tt_rescale_t choice;
            uint8_t change = 0;
            size_t cin_g = l->in_c / l->groups, cout_g = l->out_c / l->groups;
            tt_status_t s;
            if (l->bias != NULL) {
                s = tt_ratio_multiplier(tt_scale_div(l->bias_scale, acc_scale), &bias_mult);
                if (s != TT_OK) {
                    return s;
                }
            }
            if (!(find_max && j == target)) {
                change = tt_choose_rescale(st->amax[j], 8, st->mode, &choice);
                cur = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
            }
            for (b = 0; b < st->batch; ++b) {
                for (o = 0; o < l->out_c; ++o) {
                    size_t g = o / cout_g;
                    int32_t bias = 0;
                    int8_t *yc = l->patch + (b * l->out_c + o) * (size_t)rh * (size_t)rw;
                    if (l->bias != NULL) {
                        bias = (int32_t)tt_apply_multiplier_scalar(l->bias[o], bias_mult, TT_ROUND_NEAREST, 0, 0,
                                                                  TT_BIAS_ALIGN_LIMIT);
                    }
                    for (p = 0; p < (size_t)rh; ++p) {
                        for (q = 0; q < (size_t)rw; ++q) {
                            int32_t acc = 0;
                            size_t ci, i, k;
                            for (ci = 0; ci < cin_g; ++ci) {
                                const int8_t *xc = src + (b * l->in_c + g * cin_g + ci) * (size_t)sh * (size_t)sw;
                                const int8_t *wc = l->weight + (o * cin_g + ci) * l->kernel_h * l->kernel_w;
                                for (i = 0; i < l->kernel_h; ++i) {
                                    ptrdiff_t y = (r.r0 + (ptrdiff_t)p) * (ptrdiff_t)l->stride_h + (ptrdiff_t)i -
                                                  (ptrdiff_t)l->pad_h;
                                    if (y < 0 || y >= (ptrdiff_t)l->in_h) {
                                        continue; /* zero padding */
                                    }
                                    for (k = 0; k < l->kernel_w; ++k) {
                                        ptrdiff_t x = (r.c0 + (ptrdiff_t)q) * (ptrdiff_t)l->stride_w + (ptrdiff_t)k -
                                                      (ptrdiff_t)l->pad_w;
                                        if (x < 0 || x >= (ptrdiff_t)l->in_w) {
                                            continue;
                                        }
                                        acc += (int16_t)((int16_t)wc[i * l->kernel_w + k] *
                                                         (int16_t)xc[(size_t)(y - sr0) * (size_t)sw + (size_t)(x - sc0)]);
                                    }
                                }
                            }
                            acc = tt_add_sat32(bias, acc);
                            if (find_max && j == target) {
                                uint32_t m = tt_mag32(acc);
                                st->amax[j] = m > st->amax[j] ? m : st->amax[j];
                            } else {
                                yc[p * (size_t)rw + q] = (int8_t)(change ? tt_rescale_apply(acc, &choice, 127,
                                                                                              TT_ROUND_NEAREST, 0, 0)
                                                                         : acc);
                            }
                        }
                    }
                }
            }
            if (find_max && j == target) {
                return TT_OK;
            }
        }
        src = prev = l->patch;
        sr0 = r.r0;
        sc0 = r.c0;
        sh = rh;
        sw = rw;
    }
    *scale = cur;
    return TT_OK;
}

/* the tile of layer target's output that a patch x patch tile of the stage output needs (unclipped) */
static void tile_size(const stage_t *st, size_t target, ptrdiff_t *h, ptrdiff_t *w)
{
    ptrdiff_t lr = 0, hr = (ptrdiff_t)st->patch, lc = 0, hc = (ptrdiff_t)st->patch, a, b;
    size_t j;
    for (j = st->count - 1; j > target; --j) {
        input_range(&st->layers[j], 0, lr, hr, &a, &b);
        lr = a;
        hr = b;
        input_range(&st->layers[j], 1, lc, hc, &a, &b);
        lc = a;
        hc = b;
    }
    *h = hr - lr;
    *w = hc - lc;
}

tt_status_t tt_patch_stage_forward_s8(const int8_t *x, tt_scale_t x_scale, size_t batch,
                                      const tt_patch_layer_t *layers, size_t count, size_t patch,
                                      tt_scale_mode_t mode, int8_t *out, tt_scale_t *out_scale)
{
    stage_t st;
    size_t j, b, o;
    ptrdiff_t th, tw, r, c;
    const tt_patch_layer_t *last;
    tt_scale_t scale = x_scale;
    if (x == NULL || layers == NULL || out == NULL || out_scale == NULL || count == 0 || patch == 0) {
        return TT_ERR_ARG;
    }
    if (count > TT_PATCH_MAX_LAYERS || layers[0].kind == TT_PATCH_RELU) {
        return TT_ERR_SHAPE;
    }
    st.x = x;
    st.x_scale = x_scale;
    st.batch = batch;
    st.count = count;
    st.patch = patch;
    st.layers = layers;
    st.mode = mode;
    for (j = 0; j < count; ++j) {
        st.amax[j] = 0;
    }
    for (j = 0; j < count; ++j) { /* one maximum pass per convolution */
        const tt_patch_layer_t *l = &layers[j];
        if (l->kind != TT_PATCH_CONV) {
            continue;
        }
        if (j == 0) {
            th = (ptrdiff_t)l->out_h;
            tw = (ptrdiff_t)l->out_w;
        } else {
            tile_size(&st, j, &th, &tw);
        }
        for (r = 0; r < (ptrdiff_t)l->out_h; r += th) {
            for (c = 0; c < (ptrdiff_t)l->out_w; c += tw) {
                region_t t;
                tt_status_t s;
                t.r0 = r;
                t.r1 = r + th < (ptrdiff_t)l->out_h ? r + th : (ptrdiff_t)l->out_h;
                t.c0 = c;
                t.c1 = c + tw < (ptrdiff_t)l->out_w ? c + tw : (ptrdiff_t)l->out_w;
                s = run(&st, j, 1, t, &scale);
                if (s != TT_OK) {
                    return s;
                }
            }
        }
    }
    last = &layers[count - 1];
    for (r = 0; r < (ptrdiff_t)last->out_h; r += (ptrdiff_t)patch) { /* the output pass */
        for (c = 0; c < (ptrdiff_t)last->out_w; c += (ptrdiff_t)patch) {
            region_t t;
            tt_status_t s;
            size_t rh, rw, p;
            const int8_t *y;
            t.r0 = r;
            t.r1 = r + (ptrdiff_t)patch < (ptrdiff_t)last->out_h ? r + (ptrdiff_t)patch : (ptrdiff_t)last->out_h;
            t.c0 = c;
            t.c1 = c + (ptrdiff_t)patch < (ptrdiff_t)last->out_w ? c + (ptrdiff_t)patch : (ptrdiff_t)last->out_w;
            s = run(&st, count - 1, 0, t, &scale);
            if (s != TT_OK) {
                return s;
            }
            rh = (size_t)(t.r1 - t.r0);
            rw = (size_t)(t.c1 - t.c0);
            y = last->patch;
            for (b = 0; b < batch; ++b) {
                for (o = 0; o < last->out_c; ++o) {
                    for (p = 0; p < rh; ++p) {
                        size_t q;
                        for (q = 0; q < rw; ++q) {
                            out[((b * last->out_c + o) * last->out_h + (size_t)t.r0 + p) * last->out_w + (size_t)t.c0 + q] =
                                y[((b * last->out_c + o) * rh + p) * rw + q];
                        }
                    }
                }
            }
        }
    }
    *out_scale = scale;
    return TT_OK;
}
