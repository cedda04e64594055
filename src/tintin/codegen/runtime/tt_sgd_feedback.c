/* tt_sgd_feedback.c - the update of an int8 weight with an error-feedback plane (mirrors
 * tintin.optim.sgd.IntegerSGD with OptimConfig.error_feedback / feedback_bits; see tt_optim.h).
 *
 * Element i of the weight keeps an L-bit remainder r (L = bits in {2, 4, 8}) in the packed plane:
 * the two's-complement field at bits [(i*L) % 8, (i*L) % 8 + L) of byte (i*L) / 8 (little-endian
 * within the byte, tintin.numerics.bitplane). The master value is W = 2**L * w + r. One step:
 *   fine = round(g * M / 2**(n - L))   (the configured rounding, draw index i, key of site 4*p + 1)
 *   W    = 2**L * w + r - fine
 *   w    = (W + 2**(L-1)) >> L,  r = W - 2**L * w  in [-2**(L-1), 2**(L-1) - 1]
 * A full tensor whose new w leaves [-127, 127] is rescaled: W is rounded (nearest) to the coarser
 * grid scale, clipped to +-((127 << L) + 2**(L-1) - 1), and split again; without weight_rescale,
 * and for sparse rows always, W saturates at that bound.
 *
 * Bounds (int64 arithmetic throughout, products as the Python's): |g| < 2**31 and M < 2**15, so
 * |g * M| < 2**46. With n - L >= 0, |fine| <= 2**46; with n - L < 0 the call requires
 * max|g| * M * 2**(L - n) < 2**46 (else TT_ERR_OVERFLOW, nothing changes: the simulator raises
 * FeedbackOverflowError on the same condition). So |W| < 2**47: W, W + 2**(L-1) and the rescale
 * product W * M' (M' < 2**15) stay inside int64. */
#include "tt_optim.h"
#include "tt_internal.h"

#define TT_FEEDBACK_FINE_BITS 46

/* remainder field i of a plane of `bits`-bit fields, sign-extended */
static int32_t plane_get(const uint8_t *plane, size_t i, uint8_t bits)
{
    size_t at = i * bits;
    uint32_t field = ((uint32_t)plane[at >> 3] >> (at & 7u)) & ((1u << bits) - 1u);
    return field >= (1u << (bits - 1)) ? (int32_t)field - (int32_t)(1u << bits) : (int32_t)field;
}

/* store r (in range) in field i; the other fields of the byte keep their bits */
static void plane_set(uint8_t *plane, size_t i, uint8_t bits, int32_t r)
{
    size_t at = i * bits;
    uint8_t shift = (uint8_t)(at & 7u);
    uint32_t mask = ((1u << bits) - 1u) << shift;
    plane[at >> 3] = (uint8_t)(((uint32_t)plane[at >> 3] & ~mask) | (((uint32_t)r << shift) & mask));
}

/* w = (W + 2**(L-1)) >> L (arithmetic shift), r = W - 2**L * w; |W| < 2**47 */
static void split_store(int8_t *w, uint8_t *plane, size_t i, uint8_t bits, int64_t master)
{
    int64_t hi = (master + ((int64_t)1 << (bits - 1))) >> bits;
    *w = (int8_t)hi;
    plane_set(plane, i, bits, (int32_t)(master - hi * ((int64_t)1 << bits)));
}

/* the saturation bound of W: +-((127 << L) + 2**(L-1) - 1) */
static int64_t wide_limit_of(uint8_t bits)
{
    return ((int64_t)127 << bits) + ((int64_t)1 << (bits - 1)) - 1;
}

/* whether a gradient with max |g| = gmax leaves the bound of a left-shifting fine step (fine.n < 0):
 * gmax * M * 2**-n >= 2**46 */
static uint8_t fine_step_too_large(uint32_t gmax, tt_multiplier_t fine)
{
    uint64_t top = (uint64_t)gmax * (uint64_t)(uint32_t)fine.m;
    return fine.n < 0 && top != 0 &&
           (-fine.n >= TT_FEEDBACK_FINE_BITS || (top >> (TT_FEEDBACK_FINE_BITS + fine.n)) != 0);
}

/* whether every W = 2**L w + r - fine of a gradient with max |g| = gmax fits int32 (|fine| <=
 * (gmax M >> n) + 1 and |2**L w + r| < 2**15), so a kernel may keep W in the int32 gradient buffer */
static uint8_t masters_fit_int32(uint32_t gmax, tt_multiplier_t fine)
{
    return fine.n >= 0 && (fine.n > 62 || ((((uint64_t)gmax * (uint64_t)(uint32_t)fine.m) >> fine.n) <
                                           ((uint64_t)1 << 30)));
}

/* The fine-step multiplier (M, n - L) of the aligned rule, after checking the settings and the bound. */
static tt_status_t fine_multiplier(const tt_sgd_config_t *cfg, uint8_t bits, tt_scale_t w_scale,
                                   tt_scale_t grad_scale, const int32_t *grad, size_t count, tt_multiplier_t *fine)
{
    tt_multiplier_t m;
    tt_status_t st;
    if (cfg == NULL || cfg->rule != TT_RULE_ALIGNED || cfg->momentum_shift != 0 || cfg->batch_size == 0 ||
        cfg->rounding > TT_ROUND_PSEUDO_STOCHASTIC || cfg->mode > TT_SCALE_COMPOUND ||
        (bits != 2 && bits != 4 && bits != 8)) {
        return TT_ERR_ARG;
    }
    st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, grad_scale), w_scale), &m);
    if (st != TT_OK) {
        return st;
    }
    st = tt_divide_multiplier(m, cfg->batch_size, fine);
    if (st != TT_OK) {
        return st;
    }
    fine->n -= bits;
    return fine->n < 0 && fine_step_too_large(tt_max_abs_s32(grad, count), *fine) ? TT_ERR_OVERFLOW : TT_OK;
}

/* W of element i: 2**L * w + r - fine */
static int64_t master_at(const int8_t *weight, const uint8_t *plane, uint8_t bits, size_t i, int32_t g,
                         tt_multiplier_t fine, const tt_sgd_config_t *cfg, uint32_t key, uint32_t index)
{
    int64_t f = tt_apply_multiplier_scalar(g, fine, (tt_rounding_t)cfg->rounding, key, index, -1);
    return (int64_t)weight[i] * ((int64_t)1 << bits) + plane_get(plane, i, bits) - f;
}

tt_status_t tt_sgd_update_weight_feedback_s8(int8_t *weight, tt_scale_t *w_scale, uint8_t *plane, uint8_t bits,
                                             size_t count, int32_t *grad, tt_scale_t grad_scale,
                                             const tt_sgd_config_t *cfg, uint32_t key)
{
    tt_multiplier_t fine, mult;
    tt_scale_t new_scale;
    tt_status_t st;
    uint64_t amax = 0;
    uint8_t changed = 0, narrow;
    int64_t wide_limit;
    size_t i;
    if (w_scale == NULL || (count && (weight == NULL || plane == NULL || grad == NULL))) {
        return TT_ERR_ARG;
    }
    st = fine_multiplier(cfg, bits, *w_scale, grad_scale, grad, count, &fine);
    if (st != TT_OK) {
        return st;
    }
    wide_limit = wide_limit_of(bits);
    /* narrow: pass 1 keeps W in the gradient buffer for a rescale; else pass 2 computes it again
     * (same draws) */
    narrow = masters_fit_int32(tt_max_abs_s32(grad, count), fine);
    for (i = 0; i < count; ++i) { /* pass 1: the new values, saturated, and max |w| */
        int64_t master = master_at(weight, plane, bits, i, grad[i], fine, cfg, key, (uint32_t)i);
        uint64_t a = tt_mag64((master + ((int64_t)1 << (bits - 1))) >> bits);
        if (a > amax) {
            amax = a;
        }
        if (narrow) {
            grad[i] = (int32_t)master;
            split_store(&weight[i], plane, i, bits, tt_clip64(master, wide_limit));
        }
    }
    if (cfg->weight_rescale && amax > 127u) {
        st = tt_choose_grid_rescale(amax, *w_scale, 8, (tt_scale_mode_t)cfg->mode, &changed, &new_scale, &mult);
    }
    if (!changed) {
        for (i = 0; !narrow && i < count; ++i) {
            int64_t master = master_at(weight, plane, bits, i, grad[i], fine, cfg, key, (uint32_t)i);
            split_store(&weight[i], plane, i, bits, tt_clip64(master, wide_limit));
        }
        return st;
    }
    for (i = 0; i < count; ++i) { /* pass 2 (rare): W to the coarser grid scale (nearest) */
        int64_t master = narrow ? (int64_t)grad[i]
                                : master_at(weight, plane, bits, i, grad[i], fine, cfg, key, (uint32_t)i);
        split_store(&weight[i], plane, i, bits,
                    tt_apply_multiplier_scalar(master, mult, TT_ROUND_NEAREST, 0, 0, wide_limit));
    }
    *w_scale = new_scale;
    return TT_OK;
}

tt_status_t tt_sgd_update_weight_feedback_rows_s8(int8_t *weight, tt_scale_t w_scale, uint8_t *plane, uint8_t bits,
                                                  size_t row_count, size_t cols, const uint16_t *rows, size_t nrows,
                                                  const int32_t *grad_rows, tt_scale_t grad_scale,
                                                  const tt_sgd_config_t *cfg, uint32_t key)
{
    tt_multiplier_t fine;
    tt_status_t st;
    int64_t wide_limit;
    size_t j, k;
    if (nrows && (weight == NULL || plane == NULL || rows == NULL || grad_rows == NULL || cols == 0)) {
        return TT_ERR_ARG;
    }
    if (tt_check_selection(rows, 0, nrows, row_count) != TT_OK) {
        return TT_ERR_ARG;
    }
    st = fine_multiplier(cfg, bits, w_scale, grad_scale, grad_rows, nrows * cols, &fine);
    if (st != TT_OK) {
        return st;
    }
    wide_limit = wide_limit_of(bits);
    for (j = 0; j < nrows; ++j) {
        size_t base = (size_t)rows[j] * cols;
        for (k = 0; k < cols; ++k) {
            size_t at = j * cols + k;
            int64_t master = master_at(weight, plane, bits, base + k, grad_rows[at], fine, cfg, key, (uint32_t)at);
            split_store(&weight[base + k], plane, base + k, bits, tt_clip64(master, wide_limit));
        }
    }
    return TT_OK;
}

/* ---- row-tiled (tintin.compile.update._fused_feedback) ------------------------------------------ */

/* W of element k of tile row j (gradient in u->tile; draw index: the flat index in the selection) */
static int64_t tile_master(const tt_tiled_update_t *u, const uint8_t *plane, uint8_t bits, size_t r0, size_t j,
                           size_t k, tt_multiplier_t fine, const tt_sgd_config_t *cfg, uint32_t key)
{
    size_t at = tt_selected_row(u->rows, r0 + j) * u->cols + k;
    return master_at(u->w8, plane, bits, at, u->tile[j * u->cols + k], fine, cfg, key,
                     (uint32_t)((r0 + j) * u->cols + k));
}

tt_status_t tt_sgd_update_tiled_feedback_s8(const tt_tiled_update_t *u, uint8_t *plane, uint8_t bits,
                                            const tt_sgd_config_t *cfg, uint32_t key)
{
    tt_multiplier_t fine, mult;
    tt_scale_t gs, new_scale;
    tt_status_t st;
    size_t nrows, tiles, t, j, k, trows;
    uint64_t amax = 0;
    int64_t wide_limit, half;
    uint8_t saturate, changed = 0, low = 0, phase;
    if (u == NULL || cfg == NULL || u->w_scale == NULL || u->grad == NULL || u->tile == NULL || u->w8 == NULL ||
        u->w16 != NULL || u->momentum != NULL || u->tile_rows == 0 || u->cols == 0 || plane == NULL) {
        return TT_ERR_ARG;
    }
    if (tt_tiled_rows(u, cfg, &nrows, &tiles, &saturate) != TT_OK) {
        return TT_ERR_ARG;
    }
    if (nrows == 0) {
        return TT_OK;
    }
    trows = u->tile_rows;
    st = u->grad(u->grad_ctx, 0, 0, u->tile, &gs); /* the gradient scale (no rows) */
    if (st != TT_OK) {
        return st;
    }
    st = fine_multiplier(cfg, bits, *u->w_scale, gs, NULL, 0, &fine);
    if (st != TT_OK) {
        return st;
    }
    if (fine.n < 0) { /* a left shift: bound max |g| of the whole gradient before anything changes */
        uint32_t gmax = 0;
        for (t = 0; t < tiles; ++t) {
            size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
            uint32_t a;
            st = u->grad(u->grad_ctx, r0, cnt, u->tile, &gs);
            if (st != TT_OK) {
                return st;
            }
            a = tt_max_abs_s32(u->tile, cnt * u->cols);
            gmax = a > gmax ? a : gmax;
        }
        if (fine_step_too_large(gmax, fine)) {
            return TT_ERR_OVERFLOW;
        }
    }
    half = (int64_t)1 << (bits - 1);
    wide_limit = wide_limit_of(bits);
    if (!saturate) {
        for (t = 0; t < (tiles + 7u) / 8u; ++t) {
            u->tile_flags[t] = 0;
        }
    }
    for (t = 0; t < tiles; ++t) { /* pass 1: saturated tiles are final; others are written when they fit */
        size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
        uint64_t tmax = 0;
        uint8_t narrow;
        st = u->grad(u->grad_ctx, r0, cnt, u->tile, &gs);
        if (st != TT_OK) {
            return st;
        }
        /* narrow: the first loop keeps W in the tile for the store; else the store computes it again */
        narrow = !saturate && masters_fit_int32(tt_max_abs_s32(u->tile, cnt * u->cols), fine);
        for (j = 0; !saturate && j < cnt; ++j) {
            for (k = 0; k < u->cols; ++k) {
                int64_t master = tile_master(u, plane, bits, r0, j, k, fine, cfg, key);
                uint64_t a = tt_mag64((master + half) >> bits);
                tmax = a > tmax ? a : tmax;
                if (narrow) {
                    u->tile[j * u->cols + k] = (int32_t)master;
                }
            }
        }
        amax = tmax > amax ? tmax : amax;
        if (!saturate && tmax > 127u) {
            continue; /* written by the rescale pass */
        }
        for (j = 0; j < cnt; ++j) {
            size_t base = tt_selected_row(u->rows, r0 + j) * u->cols;
            for (k = 0; k < u->cols; ++k) {
                int64_t master = narrow ? (int64_t)u->tile[j * u->cols + k]
                                        : tile_master(u, plane, bits, r0, j, k, fine, cfg, key);
                if (saturate) {
                    master = tt_clip64(master, wide_limit);
                } else if (master < -wide_limit) {
                    low = 1; /* W = -wide - 1: written as is, so a rescale can rebuild it */
                }
                split_store(&u->w8[base + k], plane, base + k, bits, master);
            }
        }
        if (!saturate) {
            u->tile_flags[t >> 3] = (uint8_t)(u->tile_flags[t >> 3] | (1u << (t & 7u)));
        }
    }
    if (saturate) {
        return TT_OK;
    }
    if (amax > 127u) {
        st = tt_choose_grid_rescale(amax, *u->w_scale, 8, (tt_scale_mode_t)cfg->mode, &changed, &new_scale, &mult);
        if (st != TT_OK) {
            return st;
        }
    }
    if (!changed) { /* every tile was written: saturate the one value below the bound (r = 1 - 2**(L-1)) */
        for (j = 0; low && j < u->row_count * u->cols; ++j) {
            if (u->w8[j] == -127 && plane_get(plane, j, bits) == -(int32_t)half) {
                plane_set(plane, j, bits, 1 - (int32_t)half);
            }
        }
        return TT_OK;
    }
    for (phase = 0; phase < 2u; ++phase) { /* pass 2 (rare): unwritten tiles (recomputed), then written ones */
        for (t = 0; t < tiles; ++t) {
            size_t r0 = t * trows, cnt = nrows - r0 < trows ? nrows - r0 : trows;
            uint8_t committed = (uint8_t)((u->tile_flags[t >> 3] >> (t & 7u)) & 1u);
            if (committed != phase) {
                continue;
            }
            if (!committed) {
                st = u->grad(u->grad_ctx, r0, cnt, u->tile, &gs);
                if (st != TT_OK) {
                    return st;
                }
            }
            for (j = 0; j < cnt; ++j) {
                size_t base = tt_selected_row(u->rows, r0 + j) * u->cols;
                for (k = 0; k < u->cols; ++k) {
                    int64_t master = committed ? (int64_t)u->w8[base + k] * ((int64_t)1 << bits) +
                                                     plane_get(plane, base + k, bits)
                                               : tile_master(u, plane, bits, r0, j, k, fine, cfg, key);
                    split_store(&u->w8[base + k], plane, base + k, bits,
                                tt_apply_multiplier_scalar(master, mult, TT_ROUND_NEAREST, 0, 0, wide_limit));
                }
            }
        }
    }
    *u->w_scale = new_scale;
    return TT_OK;
}
