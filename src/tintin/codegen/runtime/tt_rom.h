/* tt_rom.h - read-only tables that stay in flash on Harvard-architecture AVR.
 *
 * On AVR a `const` array is copied to SRAM at start-up unless it is placed in program memory,
 * which the CPU reads with the `lpm` instruction only. TT_ROM marks such a table and
 * tt_rom_u8 / tt_rom_u16 / tt_rom_u32 read one element from it (plain loads everywhere else). Strict C99:
 * no named address spaces (`__flash` needs -std=gnu99), no avr-libc header.
 */
#ifndef TT_ROM_H
#define TT_ROM_H

#include <stdint.h>

#if defined(__AVR__)

#define TT_ROM __attribute__((__progmem__))

static inline uint8_t tt_rom_u8(const uint8_t *p)
{
    uint8_t r;
    __asm__("lpm %0, Z" : "=r"(r) : "z"(p));
    return r;
}

static inline uint16_t tt_rom_u16(const uint16_t *p)
{
    uint16_t r;
    __asm__("lpm %A0, Z+\n\tlpm %B0, Z" : "=r"(r), "+z"(p));
    return r;
}

static inline uint32_t tt_rom_u32(const uint32_t *p)
{
    uint32_t r;
    __asm__("lpm %A0, Z+\n\tlpm %B0, Z+\n\tlpm %C0, Z+\n\tlpm %D0, Z" : "=r"(r), "+z"(p));
    return r;
}

#else

#define TT_ROM
#define tt_rom_u8(p) (*(p))
#define tt_rom_u16(p) (*(p))
#define tt_rom_u32(p) (*(p))

#endif

#endif /* TT_ROM_H */
