/* tt_print.c - integer formatting on top of tt_putc(); portable C99, no division, no libc.
 * Decimal digits come from subtracting powers of ten, so AVR and Cortex-M0 need no division
 * helper from libgcc. On AVR the table stays in flash (a plain const array would be copied
 * into the 2 KB of SRAM). */
#include "tt_platform.h"

#if defined(__AVR__)
#include <avr/pgmspace.h>
#define TT_ROM PROGMEM
#define TT_ROM_U32(table, i) pgm_read_dword(&(table)[i])
#else
#define TT_ROM
#define TT_ROM_U32(table, i) ((table)[i])
#endif

static const uint32_t tt_pow10[10] TT_ROM = {
    1000000000u, 100000000u, 10000000u, 1000000u, 100000u, 10000u, 1000u, 100u, 10u, 1u
};

void tt_put_hex32(uint32_t v)
{
    int8_t shift;
    tt_putc('0');
    tt_putc('x');
    for (shift = 28; shift >= 0; shift -= 4) {
        uint8_t d = (uint8_t)((v >> shift) & 15u);
        tt_putc((char)(d < 10u ? (uint8_t)('0' + d) : (uint8_t)('a' - 10 + d)));
    }
}

void tt_put_u32(uint32_t v)
{
    uint8_t i, started = 0;
    for (i = 0; i < 10u; i++) {
        uint32_t p = TT_ROM_U32(tt_pow10, i);
        char d = '0';
        while (v >= p) { v -= p; d++; }
        if (d != '0' || started || i == 9u) { tt_putc(d); started = 1; }
    }
}

void tt_put_i32(int32_t v)
{
    if (v < 0) {
        tt_putc('-');
        tt_put_u32(0u - (uint32_t)v);   /* well defined for INT32_MIN */
    } else {
        tt_put_u32((uint32_t)v);
    }
}
