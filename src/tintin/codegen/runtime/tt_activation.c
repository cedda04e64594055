/* tt_activation.c - ReLU and prediction helpers (mirrors tintin.ops.activation). */
#include "tt_ops.h"
#include "tt_internal.h"

#if TT_DOT_DSP
/* Four int8 lanes at a time on the DSP cores: SSUB8 of 0 - g sets a lane's GE bit where g <= 0,
 * then SEL takes 0 there and v elsewhere: v where g > 0, else 0. Word loads and stores at any
 * alignment (ARMv7-M); in place or into a separate buffer (a partial overlap takes the byte loop). */
static inline uint32_t relu_mask4(uint32_t v, uint32_t g)
{
    uint32_t t, r;
    __asm__("ssub8 %[t], %[z], %[g]\n\tsel %[r], %[z], %[v]" : [t] "=&r"(t), [r] "=&r"(r)
            : [z] "r"(0u), [g] "r"(g), [v] "r"(v));
    (void)t;
    return r;
}

static uint8_t words_ok(const int8_t *a, const int8_t *b, size_t count)
{
    const uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return (uint8_t)(pa == pb || pa + count <= pb || pb + count <= pa);
}
#endif

tt_status_t tt_relu_forward_s8(const int8_t *x, size_t count, int8_t *y)
{
    size_t i = 0;
    if (count && (x == NULL || y == NULL)) {
        return TT_ERR_ARG;
    }
#if TT_DOT_DSP
    if (words_ok(x, y, count)) {
        for (; i + 4u <= count; i += 4u) {
            uint32_t v;
            __builtin_memcpy(&v, x + i, 4);
            v = relu_mask4(v, v);
            __builtin_memcpy(y + i, &v, 4);
        }
    }
#endif
    for (; i < count; ++i) {
        y[i] = x[i] > 0 ? x[i] : 0;
    }
    return TT_OK;
}

tt_status_t tt_relu_backward_s8(const int8_t *err, const int8_t *y, size_t count, int8_t *err_in)
{
    size_t i = 0;
    if (count && (err == NULL || y == NULL || err_in == NULL)) {
        return TT_ERR_ARG;
    }
#if TT_DOT_DSP
    if (words_ok(err, err_in, count) && words_ok(y, err_in, count)) {
        for (; i + 4u <= count; i += 4u) {
            uint32_t e, g;
            __builtin_memcpy(&e, err + i, 4);
            __builtin_memcpy(&g, y + i, 4);
            e = relu_mask4(e, g);
            __builtin_memcpy(err_in + i, &e, 4);
        }
    }
#endif
    for (; i < count; ++i) {
        err_in[i] = y[i] > 0 ? err[i] : 0;
    }
    return TT_OK;
}

size_t tt_argmax_s8(const int8_t *x, size_t count)
{
    size_t i, best = 0;
    for (i = 1; i < count; ++i) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return best;
}

tt_status_t tt_argmax_rows_s8(const int8_t *x, size_t rows, size_t cols, uint16_t *out)
{
    size_t r;
    if (rows && (x == NULL || out == NULL || cols == 0)) {
        return TT_ERR_ARG;
    }
    for (r = 0; r < rows; ++r) {
        out[r] = (uint16_t)tt_argmax_s8(x + r * cols, cols);
    }
    return TT_OK;
}

tt_status_t tt_weight_view_s16_to_s8(const int16_t *weight, tt_scale_t w_scale, size_t count,
                                     tt_scale_mode_t mode, int8_t *view, tt_scale_t *view_scale)
{
    if (view_scale == NULL) {
        return TT_ERR_ARG;
    }
    *view_scale = w_scale;
    return tt_rescale_s16_to_s8(weight, count, view_scale, mode, view);
}

/* ---- ReLU masks ------------------------------------------------------------------------------ */

tt_status_t tt_relu_mask_pack_u1(const int8_t *y, size_t count, uint8_t *mask)
{
    size_t i, full = count / 8u;
    if (count && (y == NULL || mask == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < full; ++i) {
        const int8_t *v = y + 8u * i;
        mask[i] = (uint8_t)((v[0] > 0 ? 0x80u : 0u) | (v[1] > 0 ? 0x40u : 0u) | (v[2] > 0 ? 0x20u : 0u) |
                            (v[3] > 0 ? 0x10u : 0u) | (v[4] > 0 ? 0x08u : 0u) | (v[5] > 0 ? 0x04u : 0u) |
                            (v[6] > 0 ? 0x02u : 0u) | (v[7] > 0 ? 0x01u : 0u));
    }
    if (count > 8u * full) {
        uint8_t m = 0;
        for (i = 8u * full; i < count; ++i) {
            if (y[i] > 0) {
                m = (uint8_t)(m | (0x80u >> (i & 7u)));
            }
        }
        mask[full] = m;
    }
    return TT_OK;
}

tt_status_t tt_relu_backward_mask_s8(const int8_t *err, const uint8_t *mask, size_t count, int8_t *err_in)
{
    size_t i;
    if (count && (err == NULL || mask == NULL || err_in == NULL)) {
        return TT_ERR_ARG;
    }
    for (i = 0; i < count; ++i) {
        err_in[i] = (mask[i >> 3] & (0x80u >> (i & 7u))) ? err[i] : 0;
    }
    return TT_OK;
}
