/* tt_flashsim.h - NOR flash in RAM with power-cut injection, for testing tt_checkpoint.
 *
 * Fault model (docs/field.md, "Power cuts"):
 *   - erase sets a page to 0xFF; program clears bits only (new = old AND data), like NOR flash;
 *   - every erase and program is one operation, numbered from 0 after tt_flashsim_power_on;
 *   - an armed cut at operation k:
 *       TT_CUT_BEFORE  power fails before operation k: it does not happen;
 *       TT_CUT_AFTER   operation k completes, then power fails;
 *       TT_CUT_TORN    operation k is interrupted: each byte it touches ends up old, new, or
 *                      with garbage bits (a seeded mix; for a program, garbage can only clear
 *                      bits of what was there, for an erase only set them);
 *     after the cut every operation (and read) fails until tt_flashsim_power_on;
 *   - tt_flashsim_flip flips one stored bit (bit rot).
 * Integer-only, no allocation: the caller owns the memory.
 */
#ifndef TT_FLASHSIM_H
#define TT_FLASHSIM_H

#include <stdint.h>
#include "tt_checkpoint.h"

#define TT_CUT_NONE 0u
#define TT_CUT_BEFORE 1u
#define TT_CUT_AFTER 2u
#define TT_CUT_TORN 3u

typedef struct {
    uint8_t *mem;              /* size bytes, the region's contents */
    uint32_t base, size, page_size, write_align;
    uint32_t ops;              /* erases + programs since power on */
    uint32_t erases, programs; /* of each kind since power on */
    uint32_t bytes_programmed;
    uint32_t misuse;           /* calls that broke the flash rules (alignment, page, range) */
    uint32_t cut_at;           /* operation index of the armed cut */
    uint8_t cut_kind;          /* TT_CUT_* (TT_CUT_NONE: not armed) */
    uint8_t powered;           /* 0 after a cut */
    uint32_t rng;              /* state of the torn-write garbage */
} tt_flashsim_t;

/* A region of `size` bytes at address `base`, all erased. */
void tt_flashsim_init(tt_flashsim_t *sim, uint8_t *mem, uint32_t base, uint32_t size, uint32_t page_size,
                      uint32_t write_align);
/* The tt_flash_ops_t of the simulator. */
void tt_flashsim_ops(tt_flashsim_t *sim, tt_flash_ops_t *ops);
/* Power back: counters to 0, no cut armed, contents kept. */
void tt_flashsim_power_on(tt_flashsim_t *sim);
/* Arm a cut of `kind` at operation `at`; `seed` drives the torn bytes. */
void tt_flashsim_arm(tt_flashsim_t *sim, uint32_t at, uint8_t kind, uint32_t seed);
/* Flip bit `bit` (0-7) of the byte at offset `offset` of the region. */
void tt_flashsim_flip(tt_flashsim_t *sim, uint32_t offset, uint8_t bit);
/* Size of tt_flashsim_t (for callers that allocate it without the header, e.g. ctypes). */
uint32_t tt_flashsim_sizeof(void);

#endif /* TT_FLASHSIM_H */
