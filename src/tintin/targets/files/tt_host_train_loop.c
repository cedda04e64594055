/* tt_host_train_loop.c - many training steps of a generated program in one call (host only).
 *
 * The native host backend (tintin.targets.native) links this file with a generated training
 * program (tt_model.c) and loads the result with ctypes: one call trains `steps` batches, so
 * Python is crossed once per chunk of steps, never per layer. Batch s takes the samples
 * order[s * TT_BATCH_SIZE + b] of x (row-major, TT_INPUT_SIZE int8 each) and y (TT_LABEL_SIZE
 * labels each); the loss total and scale and the number of correct predictions of every step
 * are written out, exactly what the simulator's train_step returns.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tt_model.h"

/* Returns TT_OK, or the first status other than TT_OK / TT_ERR_OVERFLOW (the step numbered
 * *done failed). *done: steps completed; *overflow: 1 when a value saturated in any step. */
int tt_host_train_steps(const int8_t *x, const tt_label_t *y, const int64_t *order, size_t steps,
                        int64_t *loss_total, int16_t *loss_scale, uint32_t *correct, size_t *done,
                        int *overflow)
{
    size_t s, b;
    *done = 0;
    *overflow = 0;
    for (s = 0; s < steps; ++s) {
        int8_t *in = tt_input_buffer();
        tt_label_t *lb = tt_label_buffer();
        tt_scale_t sc;
        tt_status_t st;
        for (b = 0; b < TT_BATCH_SIZE; ++b) {
            size_t idx = (size_t)order[s * TT_BATCH_SIZE + b];
            memcpy(in + b * TT_INPUT_SIZE, x + idx * TT_INPUT_SIZE, TT_INPUT_SIZE);
            memcpy(lb + b * TT_LABEL_SIZE, y + idx * TT_LABEL_SIZE, TT_LABEL_SIZE * sizeof(tt_label_t));
        }
        st = tt_train_step(in, lb);
        if (st == TT_ERR_OVERFLOW) {
            *overflow = 1;
        } else if (st != TT_OK) {
            return (int)st;
        }
        tt_last_loss(&loss_total[s], &sc);
        loss_scale[3 * s] = sc.S;
        loss_scale[3 * s + 1] = sc.U;
        loss_scale[3 * s + 2] = sc.D;
#if defined(TT_NUM_CLASSES)
        {
            const uint16_t *pred = tt_last_predictions();
            uint32_t c = 0;
            for (b = 0; b < TT_BATCH_SIZE; ++b) {
                size_t idx = (size_t)order[s * TT_BATCH_SIZE + b];
                c += (uint32_t)(pred[b] == (uint16_t)y[idx]); /* the planner may reuse the label buffer */
            }
            correct[s] = c;
        }
#else
        correct[s] = 0;
#endif
        *done = s + 1;
    }
    return (int)TT_OK;
}

/* Scalars of the program the Python side checks against what it compiled. */
size_t tt_host_batch_size(void) { return TT_BATCH_SIZE; }
size_t tt_host_input_size(void) { return TT_INPUT_SIZE; }
size_t tt_host_label_size(void) { return TT_LABEL_SIZE; }
size_t tt_host_label_bytes(void) { return sizeof(tt_label_t); }
