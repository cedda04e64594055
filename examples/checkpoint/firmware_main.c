/* firmware_main.c - training state that survives a reboot, as firmware keeps it (tintin example).
 *
 * A hosted stand-in for firmware: "flash" is the file flash.bin (two 4 KB erase pages per slot
 * would be typical on an STM32 or nRF52; here 1 KB pages), programmed and erased through the
 * tt_flash_ops_t callbacks exactly as a flash driver would. Every boot restores the newest saved
 * state (or starts afresh), trains until step STEPS on made-up samples, saving every SAVE_EVERY
 * steps, and prints the parameter checksum.
 *
 *   tintin export mlp -d digits --checkpoint --out build/fw
 *   gcc -std=c99 -O2 -Ibuild/fw -Ibuild/fw/runtime examples/checkpoint/firmware_main.c
 *       build/fw/tt_model.c build/fw/tt_model_params.c build/fw/runtime/(every .c) -o build/fw/firmware
 *   build/fw/firmware 6     # "power off" after step 6 (the state is in flash.bin)
 *   build/fw/firmware 12    # boots, restores step 6, trains on to step 12
 */
#include <stdio.h>
#include <stdlib.h>
#include "tt_model.h"

#define PAGE_SIZE 1024u
#define REGION_PAGES 16u
#define SAVE_EVERY 3u

static uint8_t flash[PAGE_SIZE * REGION_PAGES];
static const char *flash_file = "flash.bin";

static void flash_persist(void)
{
    FILE *f = fopen(flash_file, "wb");
    if (f == NULL || fwrite(flash, 1, sizeof flash, f) != sizeof flash || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", flash_file);
        exit(1);
    }
}

/* the three callbacks a flash driver provides: erase a page to 0xFF, program (NOR: clear bits), read */
static int32_t erase_page(void *ctx, uint32_t addr)
{
    uint32_t i;
    (void)ctx;
    for (i = 0; i < PAGE_SIZE; ++i) {
        flash[addr + i] = 0xFFu;
    }
    flash_persist();
    return 0;
}

static int32_t program(void *ctx, uint32_t addr, const uint8_t *data, uint32_t len)
{
    uint32_t i;
    (void)ctx;
    for (i = 0; i < len; ++i) {
        flash[addr + i] &= data[i];
    }
    flash_persist();
    return 0;
}

static int32_t read_flash(void *ctx, uint32_t addr, uint8_t *data, uint32_t len)
{
    uint32_t i;
    (void)ctx;
    for (i = 0; i < len; ++i) {
        data[i] = flash[addr + i];
    }
    return 0;
}

static const tt_flash_ops_t flash_ops = {
    NULL, 0u, sizeof flash, PAGE_SIZE, 4u, erase_page, program, read_flash
};

/* a made-up sample for step `step` (a real device reads its sensor) */
static void sample(uint32_t step, int8_t *x, tt_label_t *y)
{
    uint32_t i;
    for (i = 0; i < TT_BATCH_SIZE * TT_INPUT_SIZE; ++i) {
        x[i] = (int8_t)((i * 37u + step * 11u) % 255u - 127);
    }
    for (i = 0; i < TT_BATCH_SIZE * TT_LABEL_SIZE; ++i) {
        y[i] = (tt_label_t)(step % 3u);
    }
}

int main(int argc, char **argv)
{
    uint32_t steps = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 10u;
    FILE *f = fopen(flash_file, "rb");
    tt_status_t st;
    if (f == NULL || fread(flash, 1, sizeof flash, f) != sizeof flash) {
        uint32_t i;
        for (i = 0; i < sizeof flash; ++i) {
            flash[i] = 0xFFu; /* a new, erased part */
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    tt_init(1u);                              /* every boot: the initial state ... */
    st = tt_checkpoint_restore(&flash_ops);   /* ... then the newest saved one, if any */
    if (st == TT_OK) {
        printf("restored the state of step %lu\n", (unsigned long)tt_step_count());
    } else if (st == TT_ERR_NO_STATE) {
        printf("no saved state: training from the start\n");
    } else {
        printf("restore failed (%d): training from the start\n", (int)st);
        tt_init(1u);
    }
    while (tt_step_count() < steps) {
        sample(tt_step_count(), tt_input_buffer(), tt_label_buffer());
        st = tt_train_step(tt_input_buffer(), tt_label_buffer());
        if (st != TT_OK && st != TT_ERR_OVERFLOW) {
            printf("step %lu: status %d\n", (unsigned long)tt_step_count(), (int)st);
            return 1;
        }
        if (tt_step_count() % SAVE_EVERY == 0u && tt_checkpoint_save(&flash_ops) != TT_OK) {
            printf("save failed\n");  /* the previous state is still in flash */
        }
    }
    printf("step %lu, parameter checksum 0x%08lx\n", (unsigned long)tt_step_count(),
           (unsigned long)tt_params_checksum());
    return 0;
}
