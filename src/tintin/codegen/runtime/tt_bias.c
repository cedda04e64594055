/* tt_bias.c - bias gradient of selected channels, shared by the fully connected, convolution and
 * channel-scale layers (mirrors tintin.ops.*_backward_bias_s32 restricted to rows). */
#include "tt_ops.h"
#include "tt_internal.h"

tt_status_t tt_bias_backward_rows_s32(const int8_t *err, tt_scale_t err_scale, const tt_channel_shape_t *shape,
                                      const tt_row_select_t *select, int32_t *grad, tt_scale_t *grad_scale)
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
    if (grad == NULL || grad_scale == NULL || (count && err == NULL)) {
        return TT_ERR_ARG;
    }
    /* |sum| <= batch * positions * 127 */
    if (tt_size_above(batch * positions, TT_ACC_TERMS_LIMIT)) {
        return TT_ERR_SHAPE;
    }
    if (tt_check_selection(rows, first, count, channels) != TT_OK) {
        return TT_ERR_ARG;
    }
    if (batch == 1u && positions == 1u) {
        /* one term per channel (a fully connected layer at batch 1): the errors themselves */
        if (rows == NULL) {
            const int8_t *e = err + first;
            for (j = 0; j < count; ++j) {
                grad[j] = e[j];
            }
        } else {
            for (j = 0; j < count; ++j) {
                grad[j] = err[rows[first + j]];
            }
        }
        *grad_scale = err_scale;
        return TT_OK;
    }
    for (j = 0; j < count; ++j) {
        size_t c = tt_selected_row(rows, first + j);
        int32_t acc = 0;
        for (b = 0; b < batch; ++b) {
            const int8_t *e = err + (b * channels + c) * positions;
            for (p = 0; p < positions; ++p) {
                acc += e[p];
            }
        }
        grad[j] = acc;
    }
    *grad_scale = err_scale;
    return TT_OK;
}
