/* tt_ckpt_sweep.c - power cuts at every flash operation of every save, on any target.
 *
 * A test program for a generated project built with checkpoints (tt_model.h) and the embedded
 * run data of tintin.codegen.driver (tt_driver_data.h). It trains TT_RUN_STEPS steps; after every
 * TT_SWEEP_EVERY steps (TT_SWEEP_SAVES times) it saves the training state into a simulated flash
 * (tt_flashsim.c) and then, for every TT_SWEEP_STRIDE-th operation k of that save and every cut
 * kind (before k, after k, k torn), starts from the flash as it was before the save, cuts power
 * at k, boots afresh (tt_init) and restores. The restored state must be byte for byte the state
 * being saved or the last committed one; from the last committed one, training again must reach
 * the state being saved bit for bit. Then TT_SWEEP_FLIPS single-bit flips in the stored slots.
 * The run continues from the restored state and its final parameters are printed for the host to
 * compare with the simulator.
 *
 * Output (decimal unless noted):
 *   S <step> <status> <loss hi hex> <loss lo hex> <S>,<U>,<D> <prediction>...  every training step
 *   K <save> <step> <ops> <erases> <programs> <bytes programmed> <save status> <restore ok>
 *   X <save> <cut points> <new> <previous> <none> <corrupt> <lost> <resumes> <resumes exact>
 *   F <save> <flips> <new> <previous> <none> <corrupt> <lost>
 *   T 0 <hex>                       the final training state as a save writes it, 32 bytes a line
 *   P / H / C records of the final parameters (tt_report.h, as tt_driver.c), then END
 * tt_bench_mark() brackets the clean save and the clean restore of every save (counts 4i, 4i+2).
 */
#include "tt_platform.h"
#include "tt_model.h"
#include "tt_rom.h"
#include "tt_driver_data.h"
#include "tt_report.h"
#include "tt_flashsim.h"

#ifndef TT_SWEEP_SAVES
#define TT_SWEEP_SAVES 2UL
#endif
#ifndef TT_SWEEP_EVERY
#define TT_SWEEP_EVERY 2UL
#endif
#ifndef TT_SWEEP_STRIDE
#define TT_SWEEP_STRIDE 1UL
#endif
#ifndef TT_SWEEP_FLIPS
#define TT_SWEEP_FLIPS 16UL
#endif
#ifndef TT_SWEEP_PAGE
#define TT_SWEEP_PAGE 1024UL
#endif
#ifndef TT_SWEEP_ALIGN
#define TT_SWEEP_ALIGN 4UL
#endif
#ifndef TT_SWEEP_REGION
#error "TT_SWEEP_REGION: bytes of the flash region (whole pages, two slots or more)"
#endif
#define TT_SWEEP_BASE 0x08040000UL

static uint8_t flash_mem[TT_SWEEP_REGION];
static uint8_t image_before[TT_SWEEP_REGION];
static uint8_t image_after[TT_SWEEP_REGION];
static uint8_t state_prev[TT_CHECKPOINT_PAYLOAD_BYTES];
static uint8_t state_cur[TT_CHECKPOINT_PAYLOAD_BYTES];
static uint8_t state_tmp[TT_CHECKPOINT_PAYLOAD_BYTES];
static tt_flashsim_t sim;
static tt_flash_ops_t ops;

static void copy_bytes(uint8_t *dst, const uint8_t *src, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

static uint8_t same_bytes(const uint8_t *a, const uint8_t *b, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

static void put_sp(uint32_t v)
{
    tt_putc(' ');
    tt_put_u32(v);
}

/* Train until tt_step_count() == end, in the embedded order; print S records when `report`. */
static void train_to(uint32_t end, uint8_t report)
{
    uint32_t step, e, i;
    size_t b;
    while ((step = tt_step_count()) < end) {
        int8_t *x = tt_input_buffer();
        tt_label_t *y = tt_label_buffer();
        tt_status_t st;
        for (e = 0; e < TT_RUN_EPOCH_MARKS; ++e) {
            if (tt_rom32_at(tt_epoch_step, e) == step) {
                tt_set_epoch(tt_rom32_at(tt_epoch_value, e));
            }
        }
        for (b = 0; b < TT_BATCH_SIZE; ++b) {
            uint32_t idx = tt_rom16_at(tt_data_order, step * TT_BATCH_SIZE + (uint32_t)b);
            uint8_t *yb = (uint8_t *)(void *)(y + b * TT_LABEL_SIZE);
            for (i = 0; i < TT_INPUT_SIZE; ++i) {
                x[b * TT_INPUT_SIZE + i] = (int8_t)tt_rom8_at(tt_data_x, idx * TT_INPUT_SIZE + i);
            }
            for (i = 0; i < (uint32_t)(TT_LABEL_SIZE * sizeof(tt_label_t)); ++i) {
                yb[i] = tt_rom8_at(tt_data_y, idx * (uint32_t)(TT_LABEL_SIZE * sizeof(tt_label_t)) + i);
            }
        }
        st = tt_train_step(x, y);
        if (report) {
            int64_t loss = 0;
            tt_scale_t ls;
            tt_last_loss(&loss, &ls);
            tt_putc('S'); put_sp(step); put_sp((uint32_t)st); tt_putc(' ');
            tt_put_hex32((uint32_t)((uint64_t)loss >> 32)); tt_putc(' '); tt_put_hex32((uint32_t)(uint64_t)loss);
            tt_putc(' ');
            tt_put_scale(&ls);
#if TT_LOSS_CROSS_ENTROPY
            {
                const uint16_t *pred = tt_last_predictions();
                for (b = 0; b < TT_BATCH_SIZE; ++b) {
                    put_sp(pred[b]);
                }
            }
#endif
            tt_putc('\n');
        }
    }
}

/* A fresh boot: RAM state from tt_init with another seed, power back on the flash. */
static void reboot(void)
{
    tt_init(TT_RUN_SEED ^ 0xA5A5A5A5UL);
    tt_flashsim_power_on(&sim);
}

/* 0: restored the state being saved, 1: the previous one, 2: none, 3: corrupt or other */
static uint8_t restore_outcome(void)
{
    tt_status_t st = tt_checkpoint_restore(&ops);
    if (st == TT_ERR_NO_STATE) {
        return 2;
    }
    if (st != TT_OK) {
        return 3;
    }
    tt_checkpoint_state(state_tmp);
    if (same_bytes(state_tmp, state_cur, TT_CHECKPOINT_PAYLOAD_BYTES)) {
        return 0;
    }
    if (same_bytes(state_tmp, state_prev, TT_CHECKPOINT_PAYLOAD_BYTES)) {
        return 1;
    }
    return 3;
}

/* Back to the state just saved (flash as after the save, restored); 1 when that worked. */
static uint8_t back_to_saved(void)
{
    copy_bytes(flash_mem, image_after, TT_SWEEP_REGION);
    reboot();
    return restore_outcome() == 0 ? 1u : 0u;
}

int main(void)
{
    uint32_t s, k, n_ops, slot_bytes, newest = 0, seq = 0;
    uint8_t kind;
    tt_ckpt_layout_t lay;
    tt_platform_init();
    tt_flashsim_init(&sim, flash_mem, TT_SWEEP_BASE, TT_SWEEP_REGION, TT_SWEEP_PAGE, TT_SWEEP_ALIGN);
    tt_flashsim_ops(&sim, &ops);
    if (tt_ckpt_layout(&ops, TT_CHECKPOINT_PAYLOAD_BYTES, &lay) != TT_OK) {
        tt_puts("layout refused\n");
        return 3;
    }
    slot_bytes = lay.slot_bytes;
    tt_init(TT_RUN_SEED);
    tt_checkpoint_state(state_prev);
    for (s = 1; s <= TT_SWEEP_SAVES; ++s) {
        uint32_t points = 0, out[4] = {0, 0, 0, 0}, resumes = 0, exact = 0, lost = 0;
        uint32_t flips = 0, fout[4] = {0, 0, 0, 0}, flost = 0;
        uint8_t resumed_prev = 0, resumed_none = 0, restored_ok;
        tt_status_t save_st;
        train_to(s * TT_SWEEP_EVERY, 1);
        tt_checkpoint_state(state_cur);
        copy_bytes(image_before, flash_mem, TT_SWEEP_REGION);
        tt_flashsim_power_on(&sim);
        tt_bench_mark();
        save_st = tt_checkpoint_save(&ops);
        tt_bench_mark();
        n_ops = sim.ops;
        tt_putc('K'); put_sp(s); put_sp(tt_step_count()); put_sp(n_ops); put_sp(sim.erases); put_sp(sim.programs);
        put_sp(sim.bytes_programmed); put_sp((uint32_t)save_st);
        copy_bytes(image_after, flash_mem, TT_SWEEP_REGION);
        reboot();
        tt_bench_mark();
        restored_ok = restore_outcome() == 0 ? 1u : 0u;
        tt_bench_mark();
        put_sp(restored_ok && sim.misuse == 0u);
        tt_putc('\n');
        /* power cuts at every TT_SWEEP_STRIDE-th operation (and the last), every kind */
        for (k = 0; k < n_ops; ++k) {
            if (k % TT_SWEEP_STRIDE != 0u && k + 1u != n_ops) {
                continue;
            }
            for (kind = TT_CUT_BEFORE; kind <= TT_CUT_TORN; ++kind) {
                uint8_t o;
                copy_bytes(flash_mem, image_before, TT_SWEEP_REGION);
                tt_flashsim_power_on(&sim);
                tt_flashsim_arm(&sim, k, kind, (TT_RUN_SEED ^ (s * 2654435761UL) ^ (k * 40503UL)) + kind);
                (void)tt_checkpoint_save(&ops);
                reboot();
                o = restore_outcome();
                ++points;
                if (o == 2u && s > 1u) {
                    ++lost; /* a committed state was lost */
                } else {
                    ++out[o];
                }
                if (o == 1u && !resumed_prev) {
                    /* training on from the previous state reaches the state being saved */
                    resumed_prev = 1;
                    ++resumes;
                    train_to(s * TT_SWEEP_EVERY, 0);
                    tt_checkpoint_state(state_tmp);
                    exact += same_bytes(state_tmp, state_cur, TT_CHECKPOINT_PAYLOAD_BYTES);
                } else if (o == 2u && s == 1u && !resumed_none) {
                    /* nothing committed yet: a fresh start reaches it too */
                    resumed_none = 1;
                    ++resumes;
                    tt_init(TT_RUN_SEED);
                    train_to(s * TT_SWEEP_EVERY, 0);
                    tt_checkpoint_state(state_tmp);
                    exact += same_bytes(state_tmp, state_cur, TT_CHECKPOINT_PAYLOAD_BYTES);
                }
                /* the next cut saves the same state again */
                if (!back_to_saved()) {
                    tt_puts("restore of the saved state failed\n");
                    return 4;
                }
            }
        }
        tt_putc('X'); put_sp(s); put_sp(points); put_sp(out[0]); put_sp(out[1]); put_sp(out[2]); put_sp(out[3]);
        put_sp(lost); put_sp(resumes); put_sp(exact); tt_putc('\n');
        /* bit rot: one flipped bit in the newest slot (falls back) or in another slot (no effect) */
        (void)tt_ckpt_newest(&ops, TT_MODEL_HASH, TT_CHECKPOINT_PAYLOAD_BYTES, &seq, &newest);
        for (k = 0; k < TT_SWEEP_FLIPS; ++k) {
            uint32_t r = (k + 1u) * 2654435761UL ^ (s * 40503UL) ^ TT_RUN_SEED;
            uint32_t slot = (k & 1u) ? (newest + 1u) % lay.slots : newest;
            uint32_t span = lay.commit_offset + TT_CKPT_COMMIT_BYTES;
            uint32_t off = slot * slot_bytes + (r >> 3) % span;
            uint8_t o;
            copy_bytes(flash_mem, image_after, TT_SWEEP_REGION);
            tt_flashsim_flip(&sim, off, (uint8_t)(r & 7u));
            reboot();
            o = restore_outcome();
            ++flips;
            if (o == 2u && s > 1u) {
                ++flost;
            } else {
                ++fout[o];
            }
        }
        tt_putc('F'); put_sp(s); put_sp(flips); put_sp(fout[0]); put_sp(fout[1]); put_sp(fout[2]); put_sp(fout[3]);
        put_sp(flost);
        tt_putc('\n');
        /* go on from the restored saved state */
        if (!back_to_saved()) {
            tt_puts("restore of the saved state failed\n");
            return 4;
        }
        copy_bytes(state_prev, state_cur, TT_CHECKPOINT_PAYLOAD_BYTES);
    }
    train_to(TT_RUN_STEPS, 1);
    tt_checkpoint_state(state_tmp);
    tt_put_hex_lines('T', 0, state_tmp, TT_CHECKPOINT_PAYLOAD_BYTES);
    tt_put_params(1);
    tt_puts("END\n");
    return 0;
}
