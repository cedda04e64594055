/* tt_host_kernels_x86.c - vectorised host kernels of the native backend (x86-64 hosts only).
 *
 * Never part of an MCU build. The native backend (tintin.targets.native) compiles the runtime
 * with the kernels below renamed tt_portable_<name> and links this file, which defines the
 * public names: with AVX2 (built with -march=native on a CPU that has it) the int8 products and
 * the weight update run eight int32 lanes at a time; anything the vector code does not cover
 * (other shapes of arguments, other update rules, a weight tensor that outgrows its range) and
 * every build without AVX2 (or with -DTT_HOST_PORTABLE) calls the portable kernel.
 *
 * Same bits as the portable kernels, hence as the simulator: every sum is an exact int32 sum of
 * int8 x int8 products (int16 pairs through vpmaddwd: no saturation, no rounding), whose order
 * does not matter because the documented bounds keep every partial sum below 2**31; the update
 * evaluates the fast path of tt_sgd_tiled.c (the same 32-bit formula and draws) lane by lane.
 * tests/targets/test_native_kernels.py checks it against the simulator over random shapes.
 */
#include <stdlib.h>
#include <string.h>

#include "tt_runtime.h"
#include "tt_internal.h"

#if defined(__AVX2__) && !defined(TT_HOST_PORTABLE)
#define TT_HOST_AVX2 1
#include <immintrin.h>
#else
#define TT_HOST_AVX2 0
#endif

tt_status_t tt_portable_tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                                tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                                const tt_dense_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                                int8_t *y, tt_scale_t *y_scale);
tt_status_t tt_portable_tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                                       tt_scale_t w_scale, const tt_dense_shape_t *shape,
                                                       tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                                       tt_scale_t *err_in_scale);
tt_status_t tt_portable_tt_linear_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                           tt_scale_t x_scale, const tt_dense_shape_t *shape,
                                                           const tt_row_select_t *select, int32_t *grad,
                                                           tt_scale_t *grad_scale);
tt_status_t tt_portable_tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key);
tt_status_t tt_portable_tt_conv2d_forward_im2col_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                                    tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                                    const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                                    int8_t *cols, int8_t *y, tt_scale_t *y_scale);
tt_status_t tt_portable_tt_conv2d_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                                           tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                                           const tt_row_select_t *select, int32_t *grad,
                                                           tt_scale_t *grad_scale);
tt_status_t tt_portable_tt_linear_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                                  tt_scale_t w_scale, const int8_t *row_exp, const int32_t *bias,
                                                  tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                                  tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale);
tt_status_t tt_portable_tt_linear_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                                         tt_scale_t w_scale, const int8_t *row_exp,
                                                         const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                                         int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale);
tt_status_t tt_portable_tt_sgd_update_tiled_rows_scaled_s8(const tt_tiled_update_t *u, int8_t *row_exp,
                                                           uint8_t row_limit, const tt_sgd_config_t *cfg,
                                                           uint32_t key);

/* calls the vector kernels handed to the portable ones (tt_host_portable_calls: a diagnostic) */
static unsigned long g_portable_calls;

unsigned long tt_host_portable_calls(void)
{
    return g_portable_calls;
}

/* 2 when the AVX2 kernels are compiled in, 0 for the portable C (the Python side reports it) */
int tt_host_simd_level(void)
{
    return TT_HOST_AVX2 ? 2 : 0;
}

#if TT_HOST_AVX2

/* A scratch buffer that grows (host only; the kernels are not reentrant across threads). */
typedef struct {
    void *p;
    size_t bytes;
} scratch_t;

static void *scratch(scratch_t *s, size_t bytes)
{
    if (bytes > s->bytes) {
        void *p = NULL;
        size_t want = (bytes + 63u) & ~(size_t)63u;
        if (posix_memalign(&p, 64, want) != 0) {
            return NULL;
        }
        free(s->p);
        s->p = p;
        s->bytes = want;
    }
    return s->p;
}

static scratch_t g_xs16, g_ws16, g_pairs, g_epairs, g_grad, g_neww, g_tmp;

static inline int32_t hsum8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* acc[2r] += madd(a, e_r), acc[2r + 1] += madd(b, e_r) for four int16 pairs e_r broadcast: one
 * step of the kernels that update four output rows from the same two vectors */
static inline __attribute__((always_inline)) void madd_rows4(__m256i acc[8], __m256i a, __m256i b, int32_t e0,
                                                             int32_t e1, int32_t e2, int32_t e3)
{
    const __m256i e[4] = {_mm256_set1_epi32(e0), _mm256_set1_epi32(e1), _mm256_set1_epi32(e2), _mm256_set1_epi32(e3)};
    size_t r;
    for (r = 0; r < 4u; ++r) {
        acc[2u * r] = _mm256_add_epi32(acc[2u * r], _mm256_madd_epi16(a, e[r]));
        acc[2u * r + 1u] = _mm256_add_epi32(acc[2u * r + 1u], _mm256_madd_epi16(b, e[r]));
    }
}

/* int8 -> int16, rows of k values padded with zeros to kp (a multiple of 16) */
static void widen_rows(const int8_t *src, size_t rows, size_t k, size_t kp, int16_t *dst)
{
    size_t r, i;
    for (r = 0; r < rows; ++r) {
        const int8_t *s = src + r * k;
        int16_t *d = dst + r * kp;
        for (i = 0; i + 16u <= k; i += 16u) {
            _mm256_storeu_si256((__m256i *)(void *)(d + i), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(s + i))));
        }
        for (; i < k; ++i) {
            d[i] = s[i];
        }
        for (; i < kp; ++i) {
            d[i] = 0;
        }
    }
}

/* out[b * ldo + n] = sum_i a[b, i] * w[n, i] for b < nb, n < nn (a, w: int16 rows of kp) */
static void gemm_nt_s16(const int16_t *a, size_t nb, const int16_t *w, size_t nn, size_t kp, int32_t *out, size_t ldo)
{
    size_t b, n, i;
    for (n = 0; n + 4u <= nn; n += 4u) {
        const int16_t *w0 = w + n * kp, *w1 = w0 + kp, *w2 = w1 + kp, *w3 = w2 + kp;
        for (b = 0; b + 2u <= nb; b += 2u) {
            const int16_t *a0 = a + b * kp, *a1 = a0 + kp;
            __m256i s00 = _mm256_setzero_si256(), s01 = s00, s02 = s00, s03 = s00;
            __m256i s10 = s00, s11 = s00, s12 = s00, s13 = s00;
            for (i = 0; i < kp; i += 16u) {
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(a0 + i));
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(a1 + i));
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)(w0 + i));
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(const void *)(w1 + i));
                __m256i v2 = _mm256_loadu_si256((const __m256i *)(const void *)(w2 + i));
                __m256i v3 = _mm256_loadu_si256((const __m256i *)(const void *)(w3 + i));
                s00 = _mm256_add_epi32(s00, _mm256_madd_epi16(x0, v0));
                s01 = _mm256_add_epi32(s01, _mm256_madd_epi16(x0, v1));
                s02 = _mm256_add_epi32(s02, _mm256_madd_epi16(x0, v2));
                s03 = _mm256_add_epi32(s03, _mm256_madd_epi16(x0, v3));
                s10 = _mm256_add_epi32(s10, _mm256_madd_epi16(x1, v0));
                s11 = _mm256_add_epi32(s11, _mm256_madd_epi16(x1, v1));
                s12 = _mm256_add_epi32(s12, _mm256_madd_epi16(x1, v2));
                s13 = _mm256_add_epi32(s13, _mm256_madd_epi16(x1, v3));
            }
            out[b * ldo + n] = hsum8(s00);
            out[b * ldo + n + 1] = hsum8(s01);
            out[b * ldo + n + 2] = hsum8(s02);
            out[b * ldo + n + 3] = hsum8(s03);
            out[(b + 1) * ldo + n] = hsum8(s10);
            out[(b + 1) * ldo + n + 1] = hsum8(s11);
            out[(b + 1) * ldo + n + 2] = hsum8(s12);
            out[(b + 1) * ldo + n + 3] = hsum8(s13);
        }
        for (; b < nb; ++b) {
            const int16_t *a0 = a + b * kp;
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
            for (i = 0; i < kp; i += 16u) {
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(a0 + i));
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x0, _mm256_loadu_si256((const __m256i *)(const void *)(w0 + i))));
                s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(x0, _mm256_loadu_si256((const __m256i *)(const void *)(w1 + i))));
                s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(x0, _mm256_loadu_si256((const __m256i *)(const void *)(w2 + i))));
                s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(x0, _mm256_loadu_si256((const __m256i *)(const void *)(w3 + i))));
            }
            out[b * ldo + n] = hsum8(s0);
            out[b * ldo + n + 1] = hsum8(s1);
            out[b * ldo + n + 2] = hsum8(s2);
            out[b * ldo + n + 3] = hsum8(s3);
        }
    }
    for (; n < nn; ++n) {
        const int16_t *w0 = w + n * kp;
        for (b = 0; b < nb; ++b) {
            const int16_t *a0 = a + b * kp;
            __m256i s0 = _mm256_setzero_si256();
            for (i = 0; i < kp; i += 16u) {
                s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(a0 + i)),
                                                             _mm256_loadu_si256((const __m256i *)(const void *)(w0 + i))));
            }
            out[b * ldo + n] = hsum8(s0);
        }
    }
}

/* acc[b, n] = sum_k x[b, k] * W[n, k] (int16 products summed in int32); 0 when the scratch cannot grow */
static uint8_t dense_products(const int8_t *x, const int8_t *weight, size_t batch, size_t in_f, size_t out_f,
                              int32_t *acc)
{
    size_t kp = (in_f + 15u) & ~(size_t)15u;
    int16_t *xs = (int16_t *)scratch(&g_xs16, batch * kp * sizeof(int16_t));
    int16_t *ws = (int16_t *)scratch(&g_ws16, out_f * kp * sizeof(int16_t));
    if (xs == NULL || ws == NULL) {
        return 0;
    }
    widen_rows(x, batch, in_f, kp, xs);
    widen_rows(weight, out_f, in_f, kp, ws);
    gemm_nt_s16(xs, batch, ws, out_f, kp, acc, out_f);
    return 1;
}

tt_status_t tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                    const int32_t *bias, tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                    tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    size_t batch, in_f, out_f, b, n;
    tt_scale_t acc_scale;
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint8_t change;
    if (shape == NULL || acc == NULL || x == NULL || weight == NULL || y == NULL || y_scale == NULL ||
        shape->in_features == 0 || shape->out_features == 0 || shape->batch == 0 ||
        tt_size_above(shape->in_features, TT_ACC_TERMS_LIMIT)) {
        return ++g_portable_calls, tt_portable_tt_linear_forward_x4_s8(x, x_scale, weight, w_scale, bias, bias_scale, shape, mode, acc, y,
                                                   y_scale);
    }
    batch = shape->batch;
    in_f = shape->in_features;
    out_f = shape->out_features;
    acc_scale = tt_scale_mul(x_scale, w_scale);
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    if (!dense_products(x, weight, batch, in_f, out_f, acc)) {
        return ++g_portable_calls, tt_portable_tt_linear_forward_x4_s8(x, x_scale, weight, w_scale, bias, bias_scale, shape, mode, acc, y,
                                                   y_scale);
    }
    if (bias != NULL) {
        for (n = 0; n < out_f; ++n) {
            int32_t bn = tt_align_bias_one(bias[n], bias_mult);
            for (b = 0; b < batch; ++b) {
                acc[b * out_f + n] = tt_add_sat32(bn, acc[b * out_f + n]);
            }
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, batch * out_f), 8, mode, &choice);
    tt_rescale_write_s8(acc, batch * out_f, change, &choice, y);
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                           tt_scale_t w_scale, const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                           int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    /* acc[b, i] = sum_n err[b, n] * W[n, i]: W transposed once, then the forward's product */
    size_t batch, in_f, out_f, np_, b, n, i;
    int16_t *es, *wt;
    uint8_t change;
    tt_rescale_t choice;
    tt_scale_t s;
    if (shape == NULL || acc == NULL || err == NULL || weight == NULL || err_in == NULL || err_in_scale == NULL ||
        shape->in_features == 0 || shape->out_features == 0 || shape->batch == 0 ||
        tt_size_above(shape->out_features, TT_ACC_TERMS_LIMIT)) {
        return ++g_portable_calls, tt_portable_tt_linear_backward_input_x4_s8(err, err_scale, weight, w_scale, shape, mode, acc, err_in,
                                                          err_in_scale);
    }
    batch = shape->batch;
    in_f = shape->in_features;
    out_f = shape->out_features;
    np_ = (out_f + 15u) & ~(size_t)15u;
    es = (int16_t *)scratch(&g_xs16, batch * np_ * sizeof(int16_t));
    wt = (int16_t *)scratch(&g_ws16, in_f * np_ * sizeof(int16_t));
    if (es == NULL || wt == NULL) {
        return ++g_portable_calls, tt_portable_tt_linear_backward_input_x4_s8(err, err_scale, weight, w_scale, shape, mode, acc, err_in,
                                                          err_in_scale);
    }
    widen_rows(err, batch, out_f, np_, es);
    for (i = 0; i < in_f; ++i) {
        int16_t *d = wt + i * np_;
        for (n = 0; n < out_f; ++n) {
            d[n] = weight[n * in_f + i];
        }
        for (; n < np_; ++n) {
            d[n] = 0;
        }
    }
    gemm_nt_s16(es, batch, wt, in_f, np_, acc, in_f);
    (void)b;
    change = tt_choose_rescale(tt_max_abs_s32(acc, batch * in_f), 8, mode, &choice);
    tt_rescale_write_s8(acc, batch * in_f, change, &choice, err_in);
    s = tt_scale_mul(err_scale, w_scale);
    *err_in_scale = change ? tt_rescaled_scale(s, &choice) : s;
    return TT_OK;
}

/* x as int16 pairs of batch rows: pairs[p * kp2 + k] = (x[2p, k], x[2p+1, k]) (zero past the batch
 * and past k), kp2 a multiple of 8 */
static void pair_rows(const int8_t *x, size_t batch, size_t k, size_t kp2, int16_t *pairs)
{
    size_t p, i, np_ = (batch + 1u) / 2u;
    for (p = 0; p < np_; ++p) {
        const int8_t *r0 = x + 2u * p * k, *r1 = 2u * p + 1u < batch ? r0 + k : NULL;
        int16_t *d = pairs + 2u * p * kp2;
        i = 0;
        if (r1 != NULL) {
            for (; i + 16u <= k; i += 16u) {
                __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(r0 + i)));
                __m256i c = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(r1 + i)));
                __m256i lo = _mm256_unpacklo_epi16(a, c), hi = _mm256_unpackhi_epi16(a, c);
                _mm256_storeu_si256((__m256i *)(void *)(d + 2u * i), _mm256_permute2x128_si256(lo, hi, 0x20));
                _mm256_storeu_si256((__m256i *)(void *)(d + 2u * i + 16u), _mm256_permute2x128_si256(lo, hi, 0x31));
            }
        }
        for (; i < k; ++i) {
            d[2u * i] = r0[i];
            d[2u * i + 1u] = r1 != NULL ? r1[i] : 0;
        }
        for (; i < kp2; ++i) {
            d[2u * i] = 0;
            d[2u * i + 1u] = 0;
        }
    }
}

tt_status_t tt_linear_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_dense_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
{
    /* grad[j, k] = sum_b err[b, row_j] * x[b, k]: int16 pairs of batch rows against pairs of errors */
    size_t batch, in_f, out_f, kp2, np_, j, p, k;
    int16_t *pairs;
    int32_t *ep;
    if (shape == NULL || select == NULL || err == NULL || x == NULL || grad == NULL || grad_scale == NULL ||
        shape->batch < 2u || shape->in_features == 0 || shape->out_features == 0 ||
        tt_size_above(shape->batch, TT_ACC_TERMS_LIMIT) ||
        tt_check_selection(select->rows, select->first, select->count, shape->out_features) != TT_OK) {
        return ++g_portable_calls, tt_portable_tt_linear_backward_weight_rows_s32(err, err_scale, x, x_scale, shape, select, grad,
                                                              grad_scale);
    }
    batch = shape->batch;
    in_f = shape->in_features;
    out_f = shape->out_features;
    kp2 = (in_f + 7u) & ~(size_t)7u;
    np_ = (batch + 1u) / 2u;
    pairs = (int16_t *)scratch(&g_pairs, np_ * 2u * kp2 * sizeof(int16_t));
    ep = (int32_t *)scratch(&g_epairs, np_ * sizeof(int32_t) * 4u);
    if (pairs == NULL || ep == NULL) {
        return ++g_portable_calls, tt_portable_tt_linear_backward_weight_rows_s32(err, err_scale, x, x_scale, shape, select, grad,
                                                              grad_scale);
    }
    pair_rows(x, batch, in_f, kp2, pairs);
    for (j = 0; j < select->count; j += 4u) {
        size_t nr = select->count - j < 4u ? select->count - j : 4u, r;
        int32_t *g[4];
        for (r = 0; r < 4u; ++r) {
            /* rows past the selection repeat its last row (computed, not stored) */
            size_t jr = j + (r < nr ? r : nr - 1u), row = tt_selected_row(select->rows, select->first + jr);
            g[r] = grad + jr * in_f;
            for (p = 0; p < np_; ++p) {
                uint16_t e0 = (uint16_t)(int16_t)err[2u * p * out_f + row];
                uint16_t e1 = 2u * p + 1u < batch ? (uint16_t)(int16_t)err[(2u * p + 1u) * out_f + row] : 0u;
                ep[4u * p + r] = (int32_t)((uint32_t)e0 | ((uint32_t)e1 << 16));
            }
        }
        for (k = 0; k < kp2; k += 16u) {
            __m256i acc[8];
            int32_t tmp[16];
            for (r = 0; r < 8u; ++r) {
                acc[r] = _mm256_setzero_si256();
            }
            for (p = 0; p < np_; ++p) {
                const int16_t *d = pairs + 2u * p * kp2 + 2u * k;
                const int32_t *e = ep + 4u * p;
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)d);
                __m256i x1 = kp2 - k >= 16u ? _mm256_loadu_si256((const __m256i *)(const void *)(d + 16))
                                            : _mm256_setzero_si256();
                madd_rows4(acc, x0, x1, e[0], e[1], e[2], e[3]);
            }
            for (r = 0; r < nr; ++r) {
                size_t q;
                if (k + 16u <= in_f) {
                    _mm256_storeu_si256((__m256i *)(void *)(g[r] + k), acc[2u * r]);
                    _mm256_storeu_si256((__m256i *)(void *)(g[r] + k + 8), acc[2u * r + 1u]);
                    continue;
                }
                _mm256_storeu_si256((__m256i *)(void *)tmp, acc[2u * r]);
                _mm256_storeu_si256((__m256i *)(void *)(tmp + 8), acc[2u * r + 1u]);
                for (q = 0; q < 16u && k + q < in_f; ++q) {
                    g[r][k + q] = tmp[q];
                }
            }
        }
    }
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

/* ---- convolution (groups == 1) as int16 matrix products ----------------------------------------- */

/* Input coordinate of output position p, tap i: p * stride + i - pad; -1 when outside [0, in). */
static inline long conv_coord(size_t p, size_t i, size_t stride, size_t pad, size_t in)
{
    long c = (long)(p * stride + i) - (long)pad;
    return c >= 0 && c < (long)in ? c : -1;
}

static uint8_t conv_vector_ok(const tt_conv2d_shape_t *s, size_t *out_h, size_t *out_w)
{
    size_t overlap;
    if (s == NULL || s->groups != 1u || s->batch == 0 || s->in_channels == 0 || s->out_channels == 0 ||
        s->stride_h == 0 || s->stride_w == 0 || tt_conv2d_output_hw(s, out_h, out_w) != TT_OK) {
        return 0;
    }
    overlap = tt_ceil_div(s->kernel_h, s->stride_h) * tt_ceil_div(s->kernel_w, s->stride_w);
    return !tt_size_above(s->in_channels * s->kernel_h * s->kernel_w, TT_ACC_TERMS_LIMIT) &&
           !tt_size_above(s->out_channels * overlap, TT_ACC_TERMS_LIMIT);
}

/* Tap (i, jj) of channel image xc seen from output row p: d[q * dstride] = x[p*sh + i - ph,
 * q*sw + jj - pw] for q < out_w, zero outside the input. */
static void shifted_row(const int8_t *xc, const tt_conv2d_shape_t *s, size_t p, size_t i, size_t jj, size_t out_w,
                        int16_t *d, size_t dstride)
{
    long r = conv_coord(p, i, s->stride_h, s->pad_h, s->in_h);
    size_t q, q_lo, q_hi, sw = s->stride_w, pw = s->pad_w;
    const int8_t *xr;
    if (r < 0) {
        for (q = 0; q < out_w; ++q) {
            d[q * dstride] = 0;
        }
        return;
    }
    xr = xc + (size_t)r * s->in_w;
    q_lo = jj >= pw ? 0u : (pw - jj + sw - 1u) / sw;
    q_hi = s->in_w + pw > jj ? (s->in_w + pw - jj - 1u) / sw + 1u : 0u;
    q_hi = q_hi > out_w ? out_w : q_hi;
    q_lo = q_lo > q_hi ? q_hi : q_lo;
    for (q = 0; q < q_lo; ++q) {
        d[q * dstride] = 0;
    }
    if (sw == 1u) {
        const int8_t *src = xr + (q_lo + jj - pw);
        for (; q < q_hi; ++q) {
            d[q * dstride] = *src++;
        }
    } else {
        for (; q < q_hi; ++q) {
            d[q * dstride] = xr[q * sw + jj - pw];
        }
    }
    for (; q < out_w; ++q) {
        d[q * dstride] = 0;
    }
}

/* Sample xb's taps as pairs of shifted images: P[u * 2 * npp + 2 * pos + (t & 1)] for tap t = 2u or
 * 2u + 1, output position pos (zero past the taps and past npos; npp >= npos, a multiple of 16). */
static void shifted_pairs(const int8_t *xb, const tt_conv2d_shape_t *s, size_t out_h, size_t out_w, size_t npp,
                          int16_t *P)
{
    size_t kk = s->kernel_h * s->kernel_w, taps = s->in_channels * kk, nu = (taps + 1u) / 2u, t, p, npos = out_h * out_w;
    for (t = 0; t < 2u * nu; ++t) {
        int16_t *d = P + (t / 2u) * 2u * npp + (t & 1u);
        if (t < taps) {
            size_t ci = t / kk, i = (t % kk) / s->kernel_w, jj = t % s->kernel_w;
            const int8_t *xc = xb + ci * s->in_h * s->in_w;
            for (p = 0; p < out_h; ++p) {
                shifted_row(xc, s, p, i, jj, out_w, d + 2u * p * out_w, 2u);
            }
            p = npos;
        } else {
            p = 0;
        }
        for (; p < npp; ++p) {
            d[2u * p] = 0;
        }
    }
}

/* out[o * ldo + pos] = sum_u madd(wp[o * nu + u], pair u at pos) for o < nw, pos < npos, the pairs
 * of int16 values either
 * - laid out as P[u * 2 * npp + 2 * pos + (0 or 1)] (offs == NULL: shifted_pairs), or
 * - read from the padded grid of a stride-1 convolution (offs != NULL): pair u of taps (ci, i, jj),
 *   (ci, i, jj + 1) at grid position pos is (X[offs[u] + pos], X[offs[u] + pos + 1]) with
 *   offs[u] = ci * xlen + i * wp + jj, pos = p * wp + q (the caller keeps q < out_w). */
static void pair_products(const int32_t *wp, size_t nw, size_t nu, const int16_t *P, const size_t *offs, size_t npp,
                          size_t npos, int32_t *out, size_t ldo)
{
    size_t o, pos, u, r, q;
    for (o = 0; o < nw; o += 4u) {
        size_t nr = nw - o < 4u ? nw - o : 4u;
        const int32_t *w[4];
        for (r = 0; r < 4u; ++r) {
            w[r] = wp + (o + (r < nr ? r : nr - 1u)) * nu;
        }
        for (pos = 0; pos < npos; pos += 16u) {
            __m256i acc[8], lo, hi;
            int32_t tmp[16];
            for (r = 0; r < 8u; ++r) {
                acc[r] = _mm256_setzero_si256();
            }
            for (u = 0; u < nu; ++u) {
                if (offs == NULL) {
                    const int16_t *d = P + u * 2u * npp + 2u * pos;
                    madd_rows4(acc, _mm256_loadu_si256((const __m256i *)(const void *)d),
                               _mm256_loadu_si256((const __m256i *)(const void *)(d + 16)), w[0][u], w[1][u],
                               w[2][u], w[3][u]);
                } else {
                    const int16_t *xr = P + offs[u] + pos;
                    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)xr);
                    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(xr + 1));
                    madd_rows4(acc, _mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b), w[0][u], w[1][u],
                               w[2][u], w[3][u]);
                }
            }
            for (r = 0; r < nr; ++r) {
                int32_t *dst = out + (o + r) * ldo + pos;
                lo = acc[2u * r];
                hi = acc[2u * r + 1u];
                if (offs != NULL) {
                    /* unpacked low halves hold positions 0-3 and 8-11, the high halves 4-7 and 12-15 */
                    __m256i t = _mm256_permute2x128_si256(lo, hi, 0x20);
                    hi = _mm256_permute2x128_si256(lo, hi, 0x31);
                    lo = t;
                }
                if (pos + 16u <= npos) {
                    _mm256_storeu_si256((__m256i *)(void *)dst, lo);
                    _mm256_storeu_si256((__m256i *)(void *)(dst + 8), hi);
                    continue;
                }
                _mm256_storeu_si256((__m256i *)(void *)tmp, lo);
                _mm256_storeu_si256((__m256i *)(void *)(tmp + 8), hi);
                for (q = 0; pos + q < npos; ++q) {
                    dst[q] = tmp[q];
                }
            }
        }
    }
}

/* The channels of sample xb as zero-padded int16 images of hp x wp (plus zeros up to xlen each). */
static void pad_images(const int8_t *xb, const tt_conv2d_shape_t *s, size_t xlen, int16_t *xbuf)
{
    const size_t wp = s->in_w + 2u * s->pad_w;
    size_t ci, p, q;
    for (ci = 0; ci < s->in_channels; ++ci) {
        const int8_t *xc = xb + ci * s->in_h * s->in_w;
        int16_t *d = xbuf + ci * xlen;
        memset(d, 0, xlen * sizeof(int16_t));
        for (p = 0; p < s->in_h; ++p) {
            int16_t *dr = d + (p + s->pad_h) * wp + s->pad_w;
            for (q = 0; q < s->in_w; ++q) {
                dr[q] = xc[p * s->in_w + q];
            }
        }
    }
}

tt_status_t tt_conv2d_forward_im2col_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                        const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *cols, int8_t *y, tt_scale_t *y_scale)
{
    /* acc[b, o, pos] = sum_t W[o, t] * x shifted by tap t at pos: pairs of taps through vpmaddwd */
    size_t out_h, out_w, fan, nu, npos, npp, cout, b, o, i;
    tt_scale_t acc_scale;
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint8_t change;
    int16_t *P;
    int32_t *wp;
    if (cols == NULL || x == NULL || weight == NULL || y == NULL || y_scale == NULL || acc == NULL ||
        !conv_vector_ok(shape, &out_h, &out_w)) {
        return ++g_portable_calls, tt_portable_tt_conv2d_forward_im2col_s8(x, x_scale, weight, w_scale, bias, bias_scale, shape, mode, acc,
                                                       cols, y, y_scale);
    }
    acc_scale = tt_scale_mul(x_scale, w_scale);
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    cout = shape->out_channels;
    fan = shape->in_channels * shape->kernel_h * shape->kernel_w;
    nu = (fan + 1u) / 2u;
    npos = out_h * out_w;
    npp = (npos + 15u) & ~(size_t)15u;
    P = (int16_t *)scratch(&g_xs16, nu * 2u * npp * sizeof(int16_t));
    wp = (int32_t *)scratch(&g_ws16, cout * nu * sizeof(int32_t));
    if (P == NULL || wp == NULL) {
        return ++g_portable_calls, tt_portable_tt_conv2d_forward_im2col_s8(x, x_scale, weight, w_scale, bias, bias_scale, shape, mode, acc,
                                                       cols, y, y_scale);
    }
    for (o = 0; o < cout; ++o) {
        for (i = 0; i < nu; ++i) {
            uint16_t w0 = (uint16_t)(int16_t)weight[o * fan + 2u * i];
            uint16_t w1 = 2u * i + 1u < fan ? (uint16_t)(int16_t)weight[o * fan + 2u * i + 1u] : 0u;
            wp[o * nu + i] = (int32_t)((uint32_t)w0 | ((uint32_t)w1 << 16));
        }
    }
    if (shape->stride_h == 1u && shape->stride_w == 1u) {
        const size_t kh = shape->kernel_h, kw = shape->kernel_w, pw = (kw + 1u) / 2u, wpad = shape->in_w + 2u * shape->pad_w;
        const size_t len = ((out_h * wpad) + 15u) & ~(size_t)15u;
        const size_t xlen = (shape->in_h + 2u * shape->pad_h) * wpad + len + 32u;
        const size_t ng = shape->in_channels * kh * pw;
        int16_t *xbuf = (int16_t *)scratch(&g_tmp, shape->in_channels * xlen * sizeof(int16_t));
        int32_t *grid = (int32_t *)scratch(&g_grad, cout * len * sizeof(int32_t));
        int32_t *wg = (int32_t *)scratch(&g_epairs, cout * ng * sizeof(int32_t));
        size_t *offs = (size_t *)scratch(&g_neww, ng * sizeof(size_t));
        if (xbuf == NULL || grid == NULL || wg == NULL || offs == NULL) {
            return ++g_portable_calls, tt_portable_tt_conv2d_forward_im2col_s8(x, x_scale, weight, w_scale, bias,
                                                                               bias_scale, shape, mode, acc, cols, y,
                                                                               y_scale);
        }
        for (i = 0; i < ng; ++i) {
            size_t ci = i / (kh * pw), ki = (i / pw) % kh, jj = 2u * (i % pw);
            offs[i] = ci * xlen + ki * wpad + jj;
            for (o = 0; o < cout; ++o) {
                const int8_t *wr = weight + o * fan + (ci * kh + ki) * kw;
                uint16_t w0 = (uint16_t)(int16_t)wr[jj], w1 = jj + 1u < kw ? (uint16_t)(int16_t)wr[jj + 1u] : 0u;
                wg[o * ng + i] = (int32_t)((uint32_t)w0 | ((uint32_t)w1 << 16));
            }
        }
        for (b = 0; b < shape->batch; ++b) {
            int32_t *ab = acc + b * cout * npos;
            size_t p, q;
            pad_images(x + b * shape->in_channels * shape->in_h * shape->in_w, shape, xlen, xbuf);
            pair_products(wg, cout, ng, xbuf, offs, 0, len, grid, len);
            for (o = 0; o < cout; ++o) {
                int32_t bo = bias != NULL ? tt_align_bias_one(bias[o], bias_mult) : 0;
                for (p = 0; p < out_h; ++p) {
                    const int32_t *gr = grid + o * len + p * wpad;
                    int32_t *ar = ab + o * npos + p * out_w;
                    if (bias != NULL) {
                        for (q = 0; q < out_w; ++q) {
                            ar[q] = tt_add_sat32(bo, gr[q]);
                        }
                    } else {
                        memcpy(ar, gr, out_w * sizeof(int32_t));
                    }
                }
            }
        }
        b = shape->batch; /* every sample done */
    }
    for (b = b == shape->batch ? b : 0; b < shape->batch; ++b) {
        int32_t *ab = acc + b * cout * npos;
        shifted_pairs(x + b * shape->in_channels * shape->in_h * shape->in_w, shape, out_h, out_w, npp, P);
        pair_products(wp, cout, nu, P, NULL, npp, npos, ab, npos);
        if (bias != NULL) {
            for (o = 0; o < cout; ++o) {
                int32_t bo = tt_align_bias_one(bias[o], bias_mult);
                for (i = 0; i < npos; ++i) {
                    ab[o * npos + i] = tt_add_sat32(bo, ab[o * npos + i]);
                }
            }
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, shape->batch * cout * npos), 8, mode, &choice);
    tt_rescale_write_s8(acc, shape->batch * cout * npos, change, &choice, y);
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

/* Stride 1: dot products on the padded grid. With Wp = in_w + 2 pw, grid position m = p * Wp + q
 * (q < Wp; the errors are zero for q >= out_w), tap (ci, i, jj) reads the padded image of channel ci
 * at m + i * Wp + jj: grad[o, t] = sum_b sum_m E[b, o, m] * X[b, ci, m + i * Wp + jj]. */
static void conv_weight_grad_grid(const int8_t *err, const int8_t *x, const tt_conv2d_shape_t *s, size_t out_h,
                                  size_t out_w, const tt_row_select_t *select, int32_t *grad, int16_t *ebuf,
                                  int16_t *xbuf)
{
    const size_t hp = s->in_h + 2u * s->pad_h, wp = s->in_w + 2u * s->pad_w, kh = s->kernel_h, kw = s->kernel_w;
    const size_t len = ((out_h * wp) + 15u) & ~(size_t)15u, xlen = hp * wp + len + 32u;
    const size_t npos = out_h * out_w, cin = s->in_channels, taps = cin * kh * kw, nsel = select->count;
    size_t b, j, ci, i, jj, m, p, q;
    for (j = 0; j < nsel * taps; ++j) {
        grad[j] = 0;
    }
    for (b = 0; b < s->batch; ++b) {
        /* errors of the selected rows on the grid, the padded images of the sample */
        for (j = 0; j < nsel; ++j) {
            const int8_t *eo = err + (b * s->out_channels + tt_selected_row(select->rows, select->first + j)) * npos;
            int16_t *d = ebuf + j * len;
            memset(d, 0, len * sizeof(int16_t));
            for (p = 0; p < out_h; ++p) {
                for (q = 0; q < out_w; ++q) {
                    d[p * wp + q] = eo[p * out_w + q];
                }
            }
        }
        pad_images(x + b * cin * s->in_h * s->in_w, s, xlen, xbuf);
        for (j = 0; j < nsel; j += 2u) {
            const int16_t *e0 = ebuf + j * len, *e1 = ebuf + (j + 1u < nsel ? j + 1u : j) * len;
            for (ci = 0; ci < cin; ++ci) {
                for (i = 0; i < kh; ++i) {
                    for (jj = 0; jj < kw; jj += 5u) {
                        /* five taps of the kernel row against two error channels: ten accumulators */
                        const int16_t *xr = xbuf + ci * xlen + i * wp + jj;
                        size_t nt = kw - jj < 5u ? kw - jj : 5u, t;
                        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0;
                        __m256i c0 = a0, c1 = a0, c2 = a0, c3 = a0, c4 = a0;
                        for (m = 0; m < len; m += 16u) {
                            __m256i ev0 = _mm256_loadu_si256((const __m256i *)(const void *)(e0 + m));
                            __m256i ev1 = _mm256_loadu_si256((const __m256i *)(const void *)(e1 + m));
                            __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)(xr + m));
                            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(ev0, xv));
                            c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(ev1, xv));
                            xv = _mm256_loadu_si256((const __m256i *)(const void *)(xr + m + 1));
                            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(ev0, xv));
                            c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(ev1, xv));
                            xv = _mm256_loadu_si256((const __m256i *)(const void *)(xr + m + 2));
                            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(ev0, xv));
                            c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(ev1, xv));
                            xv = _mm256_loadu_si256((const __m256i *)(const void *)(xr + m + 3));
                            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(ev0, xv));
                            c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(ev1, xv));
                            xv = _mm256_loadu_si256((const __m256i *)(const void *)(xr + m + 4));
                            a4 = _mm256_add_epi32(a4, _mm256_madd_epi16(ev0, xv));
                            c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(ev1, xv));
                        }
                        {
                            int32_t sa[5], sc[5];
                            int32_t *g0 = grad + j * taps + (ci * kh + i) * kw + jj;
                            sa[0] = hsum8(a0); sa[1] = hsum8(a1); sa[2] = hsum8(a2); sa[3] = hsum8(a3);
                            sa[4] = hsum8(a4);
                            sc[0] = hsum8(c0); sc[1] = hsum8(c1); sc[2] = hsum8(c2); sc[3] = hsum8(c3);
                            sc[4] = hsum8(c4);
                            for (t = 0; t < nt; ++t) {
                                g0[t] += sa[t];
                                if (j + 1u < nsel) {
                                    g0[taps + t] += sc[t];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

tt_status_t tt_conv2d_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
{
    size_t out_h, out_w, len, xlen;
    int16_t *es, *xs;
    const tt_conv2d_shape_t *s = shape;
    if (select == NULL || err == NULL || x == NULL || grad == NULL || grad_scale == NULL ||
        !conv_vector_ok(shape, &out_h, &out_w) || s->stride_h != 1u || s->stride_w != 1u ||
        tt_size_above(shape->batch * out_h * out_w, TT_ACC_TERMS_LIMIT) ||
        tt_check_selection(select->rows, select->first, select->count, shape->out_channels) != TT_OK) {
        return ++g_portable_calls, tt_portable_tt_conv2d_backward_weight_rows_s32(err, err_scale, x, x_scale, shape, select, grad,
                                                              grad_scale);
    }
    len = ((out_h * (s->in_w + 2u * s->pad_w)) + 15u) & ~(size_t)15u;
    xlen = (s->in_h + 2u * s->pad_h) * (s->in_w + 2u * s->pad_w) + len + 32u;
    es = (int16_t *)scratch(&g_pairs, (select->count + 1u) * len * sizeof(int16_t));
    xs = (int16_t *)scratch(&g_tmp, s->in_channels * xlen * sizeof(int16_t));
    if (es == NULL || xs == NULL) {
        return ++g_portable_calls, tt_portable_tt_conv2d_backward_weight_rows_s32(err, err_scale, x, x_scale, shape, select, grad,
                                                              grad_scale);
    }
    conv_weight_grad_grid(err, x, s, out_h, out_w, select, grad, es, xs);
    *grad_scale = tt_scale_mul(err_scale, x_scale);
    return TT_OK;
}

/* Gradient rows per chunk of the tiled updates: saturating updates check the whole gradient
 * before writing anything; the others take about 64 KB of int32 at a time */
static size_t update_chunk_rows(uint8_t saturate, size_t nrows, size_t cols)
{
    size_t chunk = saturate ? nrows : (cols >= 16384u ? 1u : 16384u / cols);
    return chunk > nrows ? nrows : chunk;
}

/* The aligned rule's multiplier (M, n) of lr * grad_scale / w_scale / batch */
static tt_status_t aligned_multiplier(const tt_sgd_config_t *cfg, tt_scale_t grad_scale, tt_scale_t w_scale,
                                      tt_multiplier_t *mult)
{
    tt_multiplier_t m0;
    tt_status_t st = tt_ratio_multiplier(tt_scale_div(tt_scale_mul(cfg->lr, grad_scale), w_scale), &m0);
    return st == TT_OK ? tt_divide_multiplier(m0, cfg->batch_size, mult) : st;
}

/* New values of one row under the fast path of tt_sgd_tiled.c (row_fast_s8_stochastic):
 * q = stochastic round(|g * m| / 2**n) with the draw key + index * golden, w - sign(g) * q.
 * Saturating: written clipped into w; else into nw and max |w - delta| returned. */
static uint32_t row_update_avx2(int8_t *w, int32_t *nw, const int32_t *g, size_t cols, int32_t m, uint8_t n,
                                uint32_t draw, uint8_t saturate, int32_t limit, uint8_t wide)
{
    const __m256i m64 = _mm256_set1_epi64x(m), even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m128i sh_r = _mm_cvtsi32_si128(n < 32u ? 32 - n : n - 32), sh_n64 = _mm_cvtsi32_si128(n);
    const __m256i golden8 = _mm256_set1_epi32((int32_t)(uint32_t)(8u * (uint32_t)TT_GOLDEN32));
    const __m256i mm = _mm256_set1_epi32(m);
    const __m256i lim = _mm256_set1_epi32(limit), nlim = _mm256_set1_epi32(-limit);
    const __m128i sh_n = _mm_cvtsi32_si128(n < 32u ? n : 0), sh_d = _mm_cvtsi32_si128(n < 32u ? 32 - n : 0);
    const __m128i sh_a = _mm_cvtsi32_si128(n >= 32u ? n - 32 : 0);
    __m256i dr = _mm256_add_epi32(_mm256_set1_epi32((int32_t)draw),
                                  _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                     _mm256_set1_epi32((int32_t)(uint32_t)TT_GOLDEN32)));
    __m256i amax = _mm256_setzero_si256();
    size_t k = 0;
    uint32_t out = 0;
    for (; k + 8u <= cols; k += 8u) {
        __m256i gv = _mm256_loadu_si256((const __m256i *)(const void *)(g + k));
        __m256i p = _mm256_mullo_epi32(gv, mm);
        __m256i sm = _mm256_srai_epi32(wide ? gv : p, 31);
        __m256i mag = _mm256_abs_epi32(p), q, wv, d;
        if (wide) {
            /* the general path: |g| * m in 64 bits (< 2**46), plus the draw's top n bits (n < 32)
             * or the draw shifted left by n - 32, shifted right by n; q < 2**29 (checked) */
            __m256i ga = _mm256_abs_epi32(gv), ql, qh;
            __m256i pl = _mm256_mul_epu32(_mm256_cvtepu32_epi64(_mm256_castsi256_si128(ga)), m64);
            __m256i ph = _mm256_mul_epu32(_mm256_cvtepu32_epi64(_mm256_extracti128_si256(ga, 1)), m64);
            __m256i dl = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(dr));
            __m256i dh = _mm256_cvtepu32_epi64(_mm256_extracti128_si256(dr, 1));
            if (n < 32u) {
                dl = _mm256_srl_epi64(dl, sh_r);
                dh = _mm256_srl_epi64(dh, sh_r);
            } else {
                dl = _mm256_sll_epi64(dl, sh_r);
                dh = _mm256_sll_epi64(dh, sh_r);
            }
            ql = _mm256_permutevar8x32_epi32(_mm256_srl_epi64(_mm256_add_epi64(pl, dl), sh_n64), even);
            qh = _mm256_permutevar8x32_epi32(_mm256_srl_epi64(_mm256_add_epi64(ph, dh), sh_n64), even);
            q = _mm256_permute2x128_si256(ql, qh, 0x20);
        } else if (n < 32u) {
            q = _mm256_srl_epi32(_mm256_add_epi32(mag, _mm256_srl_epi32(dr, sh_d)), sh_n);
        } else {
            /* the carry of a + draw (a = mag >> (n - 32)) */
            __m256i a = _mm256_srl_epi32(mag, sh_a), s = _mm256_add_epi32(a, dr);
            __m256i c = _mm256_or_si256(_mm256_and_si256(a, dr), _mm256_andnot_si256(s, _mm256_or_si256(a, dr)));
            q = _mm256_srli_epi32(c, 31);
        }
        d = _mm256_sub_epi32(_mm256_xor_si256(q, sm), sm);
        wv = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(w + k)));
        wv = _mm256_sub_epi32(wv, d);
        if (saturate) {
            wv = _mm256_max_epi32(_mm256_min_epi32(wv, lim), nlim);
        } else {
            amax = _mm256_max_epu32(amax, _mm256_abs_epi32(wv));
        }
        if (saturate) {
            /* 8 int32 in [-limit, limit] -> 8 int8 */
            __m256i t16 = _mm256_packs_epi32(wv, wv);
            __m128i lo = _mm256_castsi256_si128(t16), hi = _mm256_extracti128_si256(t16, 1);
            __m128i p16 = _mm_unpacklo_epi64(lo, hi);
            _mm_storel_epi64((__m128i *)(void *)(w + k), _mm_packs_epi16(p16, p16));
        } else {
            _mm256_storeu_si256((__m256i *)(void *)(nw + k), wv);
        }
        dr = _mm256_add_epi32(dr, golden8);
    }
    {
        uint32_t lanes[8];
        size_t q;
        _mm256_storeu_si256((__m256i *)(void *)lanes, amax);
        for (q = 0; q < 8u; ++q) {
            out = lanes[q] > out ? lanes[q] : out;
        }
    }
    draw += (uint32_t)k * (uint32_t)TT_GOLDEN32;
    for (; k < cols; ++k, draw += (uint32_t)TT_GOLDEN32) {
        int32_t gk = g[k], v = w[k];
        if (gk != 0 && wide) {
            int64_t pr = (int64_t)gk * m, sm = pr < 0 ? -1 : 0;
            uint64_t mag = (uint64_t)(pr < 0 ? -pr : pr);
            uint64_t r = n < 32u ? (uint64_t)(draw >> (32u - n)) : (uint64_t)draw << (n - 32u);
            v -= (int32_t)((((int64_t)((mag + r) >> n)) ^ sm) - sm);
        } else if (gk != 0) {
            int32_t p = gk * m, sm = -(int32_t)((uint32_t)p >> 31);
            uint32_t mag = (uint32_t)((p ^ sm) - sm), q;
            q = (n >= 32u && (mag >> (n - 32u)) == 0) ? 0u : tt_sr_mag32(mag, n, draw);
            v -= ((int32_t)q ^ sm) - sm;
        }
        if (saturate) {
            w[k] = (int8_t)tt_clip32(v, limit);
        } else {
            uint32_t a = tt_mag32(v);
            out = a > out ? a : out;
            nw[k] = v;
        }
    }
    return out;
}

/* The tiled update where the fast path of tt_sgd_tiled.c holds for the whole tensor: int8
 * weights, aligned rule, stochastic rounding, no momentum, no outer-product form. The gradient
 * comes in chunks of rows through u->grad; the new values w - delta go to a side buffer and are
 * written when they all fit the weight range, or else moved to a coarser grid: then every element
 * of the portable kernel, committed or not, ends as tt_grid_rescale_one(w - delta). Anything else
 * runs the portable kernel from the unchanged weights. */
tt_status_t tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key)
{
    size_t nrows, cols, chunk, r0, j, i, total;
    uint8_t saturate, wide;
    int32_t limit;
    tt_multiplier_t mult = {0, 0};
    uint32_t amax = 0;
    int32_t *g, *nw;
    if (u == NULL || cfg == NULL || u->w8 == NULL || u->w16 != NULL || u->w_scale == NULL || u->grad == NULL ||
        u->cols == 0 || cfg->rule != TT_RULE_ALIGNED || cfg->momentum_shift != 0 ||
        cfg->rounding != TT_ROUND_STOCHASTIC || cfg->batch_size == 0 || cfg->mode > TT_SCALE_COMPOUND ||
        (u->rank1_err != NULL && u->rank1_x != NULL && u->rank_batch <= 8u) ||
        (u->rows != NULL && tt_check_selection(u->rows, 0, u->nrows, u->row_count) != TT_OK)) {
        return ++g_portable_calls, tt_portable_tt_sgd_update_tiled(u, cfg, key);
    }
    nrows = u->rows != NULL ? u->nrows : u->row_count;
    if (nrows == 0) {
        return TT_OK;
    }
    cols = u->cols;
    total = nrows * cols;
    saturate = u->rows != NULL || !cfg->weight_rescale;
    if (!saturate && u->tile_flags == NULL) {
        return TT_ERR_ARG;
    }
    limit = tt_limit_for_bits(8);
    /* saturating updates write rows as they go: the whole gradient is checked first */
    chunk = update_chunk_rows(saturate, nrows, cols);
    g = (int32_t *)scratch(&g_grad, chunk * cols * sizeof(int32_t));
    nw = saturate ? NULL : (int32_t *)scratch(&g_neww, total * sizeof(int32_t));
    if (g == NULL || (!saturate && nw == NULL)) {
        return ++g_portable_calls, tt_portable_tt_sgd_update_tiled(u, cfg, key);
    }
    for (r0 = 0; r0 < nrows; r0 += chunk) {
        size_t cnt = nrows - r0 < chunk ? nrows - r0 : chunk;
        tt_scale_t gs;
        uint32_t gmax;
        tt_status_t st = u->grad(u->grad_ctx, r0, cnt, g, &gs);
        if (st != TT_OK) {
            return st;
        }
        if (r0 == 0) {
            st = aligned_multiplier(cfg, gs, *u->w_scale, &mult);
            if (st != TT_OK) {
                return st;
            }
            if (mult.n < 1 || mult.n > 62 || mult.m <= 0) {
                return ++g_portable_calls, tt_portable_tt_sgd_update_tiled(u, cfg, key);
            }
        }
        gmax = tt_max_abs_s32(g, cnt * cols);
        /* |g| * M <= 2**30: the 32-bit fast path; else the 64-bit general one while every step
         * |delta| stays below 2**29 (|g| * M < 2**(n + 29)), so that w - delta is an int32 */
        wide = gmax > ((uint32_t)1 << 30) / (uint32_t)mult.m;
        if (wide && mult.n + 29 < 64 && ((uint64_t)gmax * (uint64_t)mult.m) >> (mult.n + 29) != 0) {
            return ++g_portable_calls, tt_portable_tt_sgd_update_tiled(u, cfg, key); /* nothing written yet */
        }
        for (j = 0; j < cnt; ++j) {
            size_t row = tt_selected_row(u->rows, r0 + j);
            uint32_t index = (uint32_t)((r0 + j) * cols);
            uint32_t a = row_update_avx2(u->w8 + row * cols, saturate ? NULL : nw + (r0 + j) * cols, g + j * cols,
                                         cols, mult.m, (uint8_t)mult.n, key + index * (uint32_t)TT_GOLDEN32,
                                         saturate, limit, wide);
            amax = a > amax ? a : amax;
        }
    }
    if (saturate) {
        return TT_OK;
    }
    if (amax > (uint32_t)limit) {
        tt_scale_t new_scale;
        tt_multiplier_t gm;
        uint8_t changed = 0;
        tt_status_t st = tt_choose_grid_rescale(amax, *u->w_scale, 8, (tt_scale_mode_t)cfg->mode, &changed,
                                                &new_scale, &gm);
        if (st != TT_OK || !changed) {
            return ++g_portable_calls, tt_portable_tt_sgd_update_tiled(u, cfg, key); /* weights still unchanged */
        }
        {
            int8_t *w8 = u->w8;
            for (i = 0; i < total; ++i) {
                w8[i] = (int8_t)tt_grid_rescale_one(nw[i], gm, limit);
            }
        }
        *u->w_scale = new_scale;
        return TT_OK;
    }
    {
        /* every |value| <= 127: pack 32 int32 to int8 at a time */
        int8_t *w8 = u->w8;
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (i = 0; i + 32u <= total; i += 32u) {
            __m256i a = _mm256_packs_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(nw + i)),
                                           _mm256_loadu_si256((const __m256i *)(const void *)(nw + i + 8)));
            __m256i b = _mm256_packs_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(nw + i + 16)),
                                           _mm256_loadu_si256((const __m256i *)(const void *)(nw + i + 24)));
            _mm256_storeu_si256((__m256i *)(void *)(w8 + i), _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), order));
        }
        for (; i < total; ++i) {
            w8[i] = (int8_t)nw[i];
        }
    }
    return TT_OK;
}


/* ---- per-row weight scales (tt_rows.c) ------------------------------------------------------------ */

static scratch_t g_rows_acc, g_rows_new, g_rows_amax, g_rows_order;

/* the largest row exponent, or -1 when some exponent is outside [0, 15] (the portable kernel reports it) */
static int rows_top(const int8_t *row_exp, size_t n)
{
    uint8_t top;
    return tt_rows_top(row_exp, n, &top) ? (int)top : -1;
}

tt_status_t tt_linear_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                      const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                                      const tt_dense_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                      tt_scale_t *y_scale)
{
    /* the products as tt_linear_forward_x4_s8, then output n shifted right by row_exp[n] (nearest),
     * the aligned bias added: the portable kernel's values in another order of exact int32 sums */
    size_t batch, in_f, out_f, b, n;
    tt_scale_t acc_scale;
    tt_multiplier_t bias_mult = {0, 0};
    tt_rescale_t choice;
    uint8_t change;
    int32_t *bn;
    if (shape == NULL || acc == NULL || x == NULL || weight == NULL || row_exp == NULL || y == NULL ||
        y_scale == NULL || shape->in_features == 0 || shape->out_features == 0 || shape->batch == 0 ||
        tt_size_above(shape->in_features, TT_ACC_TERMS_LIMIT) || rows_top(row_exp, shape->out_features) < 0) {
        return ++g_portable_calls, tt_portable_tt_linear_forward_rows_s8(x, x_scale, weight, w_scale, row_exp, bias,
                                                                         bias_scale, shape, mode, acc, y, y_scale);
    }
    batch = shape->batch;
    in_f = shape->in_features;
    out_f = shape->out_features;
    acc_scale = tt_scale_mul(x_scale, w_scale);
    if (bias != NULL) {
        tt_status_t st = tt_ratio_multiplier(tt_scale_div(bias_scale, acc_scale), &bias_mult);
        if (st != TT_OK) {
            return st;
        }
    }
    bn = (int32_t *)scratch(&g_rows_acc, out_f * sizeof(int32_t));
    if (bn == NULL || !dense_products(x, weight, batch, in_f, out_f, acc)) {
        return ++g_portable_calls, tt_portable_tt_linear_forward_rows_s8(x, x_scale, weight, w_scale, row_exp, bias,
                                                                         bias_scale, shape, mode, acc, y, y_scale);
    }
    for (n = 0; n < out_f; ++n) {
        bn[n] = bias != NULL ? tt_align_bias_one(bias[n], bias_mult) : 0;
    }
    for (b = 0; b < batch; ++b) {
        int32_t *row = acc + b * out_f;
        for (n = 0; n < out_f; ++n) {
            uint8_t e = (uint8_t)row_exp[n];
            int32_t v = row[n]; /* |v| <= in_f * 127 * 127 < 2**31 */
            row[n] = tt_add_sat32(bn[n], e ? tt_rs32_nearest(v, e) : v);
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, batch * out_f), 8, mode, &choice);
    tt_rescale_write_s8(acc, batch * out_f, change, &choice, y);
    *y_scale = change ? tt_rescaled_scale(acc_scale, &choice) : acc_scale;
    return TT_OK;
}

tt_status_t tt_linear_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                             tt_scale_t w_scale, const int8_t *row_exp, const tt_dense_shape_t *shape,
                                             tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                             tt_scale_t *err_in_scale)
{
    /* acc[b, i] = sum_d 2**(top - d) * sum_{n: e[n] = d} err[b, n] * W[n, i]: one int16 product per
     * exponent d present, over its rows only (the same products in all). Every partial sum is a
     * sum of terms of the portable kernel's sum, so |partial| <= out_f * 127 * 127 * 2**top <= 2**30. */
    size_t batch, in_f, out_f, b, n, i, cnt, cp, start[17];
    int16_t *es, *wt;
    int32_t *part;
    size_t *order;
    int top, d;
    uint8_t change, first = 1;
    tt_rescale_t choice;
    tt_scale_t s;
    if (shape == NULL || acc == NULL || err == NULL || weight == NULL || row_exp == NULL || err_in == NULL ||
        err_in_scale == NULL || shape->in_features == 0 || shape->out_features == 0 || shape->batch == 0 ||
        tt_size_above(shape->out_features, TT_ACC_TERMS_LIMIT) || (top = rows_top(row_exp, shape->out_features)) < 0 ||
        tt_size_above(shape->out_features, (uint32_t)(TT_ACC_TERMS_LIMIT >> top))) {
        return ++g_portable_calls, tt_portable_tt_linear_backward_input_rows_s8(err, err_scale, weight, w_scale, row_exp,
                                                                                shape, mode, acc, err_in, err_in_scale);
    }
    batch = shape->batch;
    in_f = shape->in_features;
    out_f = shape->out_features;
    cp = (out_f + 15u) & ~(size_t)15u;
    es = (int16_t *)scratch(&g_xs16, batch * cp * sizeof(int16_t));
    wt = (int16_t *)scratch(&g_ws16, in_f * cp * sizeof(int16_t));
    part = (int32_t *)scratch(&g_rows_acc, batch * in_f * sizeof(int32_t));
    order = (size_t *)scratch(&g_rows_order, out_f * sizeof(size_t));
    if (es == NULL || wt == NULL || part == NULL || order == NULL) {
        return ++g_portable_calls, tt_portable_tt_linear_backward_input_rows_s8(err, err_scale, weight, w_scale, row_exp,
                                                                                shape, mode, acc, err_in, err_in_scale);
    }
    /* the rows by exponent (counting sort): those of exponent d are order[start[d] .. start[d + 1]) */
    for (d = 0; d <= 16; ++d) {
        start[d] = 0;
    }
    for (n = 0; n < out_f; ++n) {
        ++start[row_exp[n] + 1];
    }
    for (d = 1; d <= 16; ++d) {
        start[d] += start[d - 1];
    }
    {
        size_t fill[16];
        for (d = 0; d < 16; ++d) {
            fill[d] = start[d];
        }
        for (n = 0; n < out_f; ++n) {
            order[fill[row_exp[n]]++] = n;
        }
    }
    for (d = top; d >= 0; --d) {
        /* the rows of exponent d, gathered: errors (batch, cp) and transposed weights (in_f, cp) */
        const size_t *rows = order + start[d];
        size_t j;
        cnt = start[d + 1] - start[d];
        if (cnt == 0) {
            continue;
        }
        cp = (cnt + 15u) & ~(size_t)15u;
        for (b = 0; b < batch; ++b) {
            int16_t *dst = es + b * cp;
            const int8_t *src = err + b * out_f;
            for (j = 0; j < cnt; ++j) {
                dst[j] = src[rows[j]];
            }
            for (; j < cp; ++j) {
                dst[j] = 0;
            }
        }
        for (i = 0; i < in_f; ++i) {
            int16_t *dst = wt + i * cp;
            for (j = 0; j < cnt; ++j) {
                dst[j] = weight[rows[j] * in_f + i];
            }
            for (; j < cp; ++j) {
                dst[j] = 0;
            }
        }
        if (first) { /* the coarsest rows first: acc = part << (top - d) */
            gemm_nt_s16(es, batch, wt, in_f, cp, acc, in_f);
            if (top != d) {
                for (i = 0; i < batch * in_f; ++i) {
                    acc[i] = (int32_t)((uint32_t)acc[i] << (top - d));
                }
            }
            first = 0;
        } else {
            gemm_nt_s16(es, batch, wt, in_f, cp, part, in_f);
            for (i = 0; i < batch * in_f; ++i) {
                acc[i] += (int32_t)((uint32_t)part[i] << (top - d));
            }
        }
    }
    change = tt_choose_rescale(tt_max_abs_s32(acc, batch * in_f), 8, mode, &choice);
    tt_rescale_write_s8(acc, batch * in_f, change, &choice, err_in);
    s = tt_scale_mul(err_scale, w_scale);
    s.S = (int16_t)(s.S - top);
    *err_in_scale = change ? tt_rescaled_scale(s, &choice) : s;
    return TT_OK;
}

/* The row-scaled tiled update with stochastic rounding: row r is row_update_avx2 at n - e[r] (every
 * row's n - e[r] in [1, 62] and |delta| < 2**29, checked before anything is written); saturating
 * updates (selected rows, no rescale) check the whole gradient first, renormalising ones keep the
 * new values aside and renormalise at the end (tt_rows_renormalise_row_s8 / _tensor_s8, as the
 * portable kernel). Anything else runs the portable kernel from the unchanged weights. */
tt_status_t tt_sgd_update_tiled_rows_scaled_s8(const tt_tiled_update_t *u, int8_t *row_exp, uint8_t row_limit,
                                               const tt_sgd_config_t *cfg, uint32_t key)
{
    size_t nrows, cols, chunk, r0, j;
    uint8_t saturate;
    int top, low = 15;
    int32_t lo = 0;
    tt_multiplier_t mult = {0, 0};
    int32_t *g, *nw;
    uint32_t *amax;
    if (u == NULL || cfg == NULL || row_exp == NULL || u->w8 == NULL || u->w16 != NULL || u->w_scale == NULL ||
        u->grad == NULL || u->cols == 0 || u->row_count == 0 || u->momentum != NULL || cfg->rule != TT_RULE_ALIGNED ||
        cfg->momentum_shift != 0 || cfg->rounding != TT_ROUND_STOCHASTIC || cfg->batch_size == 0 || row_limit > 15 ||
        (top = rows_top(row_exp, u->row_count)) < 0 || top > row_limit ||
        (u->rows != NULL && tt_check_selection(u->rows, 0, u->nrows, u->row_count) != TT_OK)) {
        return ++g_portable_calls, tt_portable_tt_sgd_update_tiled_rows_scaled_s8(u, row_exp, row_limit, cfg, key);
    }
    for (j = 0; j < u->row_count; ++j) {
        low = row_exp[j] < low ? row_exp[j] : low;
    }
    nrows = u->rows != NULL ? u->nrows : u->row_count;
    cols = u->cols;
    saturate = u->rows != NULL || !cfg->weight_rescale;
    chunk = update_chunk_rows(saturate, nrows, cols);
    g = (int32_t *)scratch(&g_grad, chunk * cols * sizeof(int32_t));
    nw = saturate ? NULL : (int32_t *)scratch(&g_rows_new, nrows * cols * sizeof(int32_t));
    amax = (uint32_t *)scratch(&g_rows_amax, nrows * sizeof(uint32_t));
    if (g == NULL || amax == NULL || (!saturate && nw == NULL)) {
        return ++g_portable_calls, tt_portable_tt_sgd_update_tiled_rows_scaled_s8(u, row_exp, row_limit, cfg, key);
    }
    for (r0 = 0; r0 < nrows; r0 += chunk) {
        size_t cnt = nrows - r0 < chunk ? nrows - r0 : chunk;
        tt_scale_t gs;
        tt_status_t st = u->grad(u->grad_ctx, r0, cnt, g, &gs);
        if (st != TT_OK) {
            return st;
        }
        if (r0 == 0) {
            st = aligned_multiplier(cfg, gs, *u->w_scale, &mult);
            if (st != TT_OK) {
                return st;
            }
            if (mult.n - top < 1 || mult.n - low > 62 || mult.m <= 0) {
                return ++g_portable_calls, tt_portable_tt_sgd_update_tiled_rows_scaled_s8(u, row_exp, row_limit, cfg,
                                                                                          key);
            }
        }
        for (j = 0; j < cnt; ++j) { /* |g| * M < 2**(n - e + 29): every w - delta is an int32 */
            uint32_t gmax = tt_max_abs_s32(g + j * cols, cols);
            int32_t n = mult.n - row_exp[tt_selected_row(u->rows, r0 + j)];
            if (n + 29 < 64 && ((uint64_t)gmax * (uint64_t)mult.m) >> (n + 29) != 0) {
                return ++g_portable_calls, tt_portable_tt_sgd_update_tiled_rows_scaled_s8(u, row_exp, row_limit, cfg,
                                                                                          key); /* nothing written */
            }
            amax[r0 + j] = gmax; /* for now: the row's max |g| */
        }
        for (j = 0; j < cnt; ++j) {
            size_t row = tt_selected_row(u->rows, r0 + j);
            uint32_t index = (uint32_t)((r0 + j) * cols);
            uint8_t wide = amax[r0 + j] > ((uint32_t)1 << 30) / (uint32_t)mult.m;
            amax[r0 + j] = row_update_avx2(u->w8 + row * cols, saturate ? NULL : nw + (r0 + j) * cols, g + j * cols,
                                           cols, mult.m, (uint8_t)(mult.n - row_exp[row]),
                                           key + index * (uint32_t)TT_GOLDEN32, saturate, 127, wide);
        }
    }
    if (saturate) {
        return TT_OK;
    }
    for (j = 0; j < nrows; ++j) {
        int32_t t = tt_rows_renormalise_row_s8(nw + j * cols, u->w8 + j * cols, cols, row_exp[j], amax[j]);
        row_exp[j] = (int8_t)t;
        lo = (j == 0 || t < lo) ? t : lo;
    }
    tt_rows_renormalise_tensor_s8(u->w8, u->w_scale, row_exp, nrows, cols, lo, row_limit);
    return TT_OK;
}

#else /* portable build: the runtime's kernels under their own names */

tt_status_t tt_linear_forward_x4_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                    const int32_t *bias, tt_scale_t bias_scale, const tt_dense_shape_t *shape,
                                    tt_scale_mode_t mode, int32_t *acc, int8_t *y, tt_scale_t *y_scale)
{
    return tt_portable_tt_linear_forward_x4_s8(x, x_scale, weight, w_scale, bias, bias_scale, shape, mode, acc, y,
                                               y_scale);
}

tt_status_t tt_linear_backward_input_x4_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                           tt_scale_t w_scale, const tt_dense_shape_t *shape, tt_scale_mode_t mode,
                                           int32_t *acc, int8_t *err_in, tt_scale_t *err_in_scale)
{
    return tt_portable_tt_linear_backward_input_x4_s8(err, err_scale, weight, w_scale, shape, mode, acc, err_in,
                                                      err_in_scale);
}

tt_status_t tt_linear_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_dense_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
{
    return tt_portable_tt_linear_backward_weight_rows_s32(err, err_scale, x, x_scale, shape, select, grad, grad_scale);
}

tt_status_t tt_sgd_update_tiled(const tt_tiled_update_t *u, const tt_sgd_config_t *cfg, uint32_t key)
{
    return tt_portable_tt_sgd_update_tiled(u, cfg, key);
}

tt_status_t tt_conv2d_forward_im2col_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight,
                                        tt_scale_t w_scale, const int32_t *bias, tt_scale_t bias_scale,
                                        const tt_conv2d_shape_t *shape, tt_scale_mode_t mode, int32_t *acc,
                                        int8_t *cols, int8_t *y, tt_scale_t *y_scale)
{
    return tt_portable_tt_conv2d_forward_im2col_s8(x, x_scale, weight, w_scale, bias, bias_scale, shape, mode, acc,
                                                   cols, y, y_scale);
}

tt_status_t tt_conv2d_backward_weight_rows_s32(const int8_t *err, tt_scale_t err_scale, const int8_t *x,
                                               tt_scale_t x_scale, const tt_conv2d_shape_t *shape,
                                               const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
{
    return tt_portable_tt_conv2d_backward_weight_rows_s32(err, err_scale, x, x_scale, shape, select, grad, grad_scale);
}

tt_status_t tt_linear_forward_rows_s8(const int8_t *x, tt_scale_t x_scale, const int8_t *weight, tt_scale_t w_scale,
                                      const int8_t *row_exp, const int32_t *bias, tt_scale_t bias_scale,
                                      const tt_dense_shape_t *shape, tt_scale_mode_t mode, int32_t *acc, int8_t *y,
                                      tt_scale_t *y_scale)
{
    return tt_portable_tt_linear_forward_rows_s8(x, x_scale, weight, w_scale, row_exp, bias, bias_scale, shape, mode,
                                                 acc, y, y_scale);
}

tt_status_t tt_linear_backward_input_rows_s8(const int8_t *err, tt_scale_t err_scale, const int8_t *weight,
                                             tt_scale_t w_scale, const int8_t *row_exp, const tt_dense_shape_t *shape,
                                             tt_scale_mode_t mode, int32_t *acc, int8_t *err_in,
                                             tt_scale_t *err_in_scale)
{
    return tt_portable_tt_linear_backward_input_rows_s8(err, err_scale, weight, w_scale, row_exp, shape, mode, acc,
                                                        err_in, err_in_scale);
}

tt_status_t tt_sgd_update_tiled_rows_scaled_s8(const tt_tiled_update_t *u, int8_t *row_exp, uint8_t row_limit,
                                               const tt_sgd_config_t *cfg, uint32_t key)
{
    return tt_portable_tt_sgd_update_tiled_rows_scaled_s8(u, row_exp, row_limit, cfg, key);
}

#endif
