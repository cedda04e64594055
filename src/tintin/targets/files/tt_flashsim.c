/* tt_flashsim.c - NOR flash in RAM with power-cut injection (see tt_flashsim.h). */
#include "tt_flashsim.h"

static uint32_t next_rand(tt_flashsim_t *sim)
{
    /* xorshift32: any nonzero seed */
    uint32_t x = sim->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    sim->rng = x;
    return x;
}

/* The operation about to run: 1 = do it, 0 = power is (now) off; *torn = do it partially. */
static uint8_t begin_op(tt_flashsim_t *sim, uint8_t *torn)
{
    *torn = 0;
    if (!sim->powered) {
        return 0;
    }
    if (sim->cut_kind != TT_CUT_NONE && sim->ops == sim->cut_at) {
        if (sim->cut_kind == TT_CUT_BEFORE) {
            sim->powered = 0;
            return 0;
        }
        if (sim->cut_kind == TT_CUT_TORN) {
            *torn = 1;
        }
    }
    return 1;
}

static void end_op(tt_flashsim_t *sim)
{
    if (sim->cut_kind != TT_CUT_NONE && sim->ops == sim->cut_at) {
        sim->powered = 0; /* TT_CUT_AFTER or TT_CUT_TORN: power fails now */
    }
    sim->ops++;
}

/* a torn byte: 0 = old, 1 = new, 2 = garbage */
static uint8_t torn_byte(tt_flashsim_t *sim, uint8_t old, uint8_t want, uint8_t erase)
{
    uint32_t r = next_rand(sim);
    uint32_t pick = (r >> 8) % 3u;
    uint8_t g = (uint8_t)(r >> 24);
    if (pick == 0u) {
        return old;
    }
    if (pick == 1u) {
        return want;
    }
    return erase ? (uint8_t)(old | g) : (uint8_t)(old & (uint8_t)(want | g));
}

static int32_t sim_erase(void *ctx, uint32_t addr)
{
    tt_flashsim_t *sim = (tt_flashsim_t *)ctx;
    uint32_t off, i;
    uint8_t torn;
    if (addr < sim->base || addr - sim->base >= sim->size || (addr - sim->base) % sim->page_size != 0u) {
        sim->misuse++;
        return -2;
    }
    if (!begin_op(sim, &torn)) {
        return -1;
    }
    off = addr - sim->base;
    for (i = 0; i < sim->page_size; ++i) {
        sim->mem[off + i] = torn ? torn_byte(sim, sim->mem[off + i], 0xFFu, 1u) : 0xFFu;
    }
    sim->erases++;
    end_op(sim);
    return 0;
}

static int32_t sim_program(void *ctx, uint32_t addr, const uint8_t *data, uint32_t len)
{
    tt_flashsim_t *sim = (tt_flashsim_t *)ctx;
    uint32_t off, i;
    uint8_t torn;
    if (addr < sim->base || len == 0u || addr - sim->base > sim->size || len > sim->size - (addr - sim->base) ||
        (addr - sim->base) % sim->write_align != 0u || len % sim->write_align != 0u ||
        (addr - sim->base) / sim->page_size != (addr - sim->base + len - 1u) / sim->page_size) {
        sim->misuse++;
        return -2;
    }
    if (!begin_op(sim, &torn)) {
        return -1;
    }
    off = addr - sim->base;
    for (i = 0; i < len; ++i) {
        uint8_t old = sim->mem[off + i];
        sim->mem[off + i] = torn ? torn_byte(sim, old, (uint8_t)(old & data[i]), 0u) : (uint8_t)(old & data[i]);
    }
    sim->programs++;
    sim->bytes_programmed += len;
    end_op(sim);
    return 0;
}

static int32_t sim_read(void *ctx, uint32_t addr, uint8_t *data, uint32_t len)
{
    tt_flashsim_t *sim = (tt_flashsim_t *)ctx;
    uint32_t off, i;
    if (!sim->powered) {
        return -1;
    }
    if (addr < sim->base || addr - sim->base > sim->size || len > sim->size - (addr - sim->base)) {
        sim->misuse++;
        return -2;
    }
    off = addr - sim->base;
    for (i = 0; i < len; ++i) {
        data[i] = sim->mem[off + i];
    }
    return 0;
}

void tt_flashsim_power_on(tt_flashsim_t *sim)
{
    sim->ops = 0;
    sim->erases = 0;
    sim->programs = 0;
    sim->bytes_programmed = 0;
    sim->cut_kind = TT_CUT_NONE;
    sim->cut_at = 0;
    sim->powered = 1;
}

void tt_flashsim_init(tt_flashsim_t *sim, uint8_t *mem, uint32_t base, uint32_t size, uint32_t page_size,
                      uint32_t write_align)
{
    uint32_t i;
    sim->mem = mem;
    sim->base = base;
    sim->size = size;
    sim->page_size = page_size;
    sim->write_align = write_align;
    sim->misuse = 0;
    sim->rng = 1u;
    for (i = 0; i < size; ++i) {
        mem[i] = 0xFFu;
    }
    tt_flashsim_power_on(sim);
}

void tt_flashsim_ops(tt_flashsim_t *sim, tt_flash_ops_t *ops)
{
    ops->ctx = sim;
    ops->base = sim->base;
    ops->size = sim->size;
    ops->page_size = sim->page_size;
    ops->write_align = sim->write_align;
    ops->erase_page = sim_erase;
    ops->program = sim_program;
    ops->read = sim_read;
}

void tt_flashsim_arm(tt_flashsim_t *sim, uint32_t at, uint8_t kind, uint32_t seed)
{
    sim->cut_at = at;
    sim->cut_kind = kind;
    sim->rng = seed != 0u ? seed : 0x9E3779B9UL;
}

void tt_flashsim_flip(tt_flashsim_t *sim, uint32_t offset, uint8_t bit)
{
    if (offset < sim->size) {
        sim->mem[offset] ^= (uint8_t)(1u << (bit & 7u));
    }
}

uint32_t tt_flashsim_sizeof(void)
{
    return (uint32_t)sizeof(tt_flashsim_t);
}
