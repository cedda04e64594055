/* tt_report.h - what every measurement program on a target shares: reading the run data embedded
 * in flash (TT_ROM tables: program memory on AVR) and printing the parameters for the host to
 * compare with the simulator.
 *
 * Included by the drivers of tintin.codegen.driver (tt_driver.c) and by the power-cut sweep
 * (tt_ckpt_sweep.c), after tt_model.h. Records printed (decimal unless noted):
 *   P <entry> <role> <dtype> <count> <S>,<U>,<D> <fnv1a hex>   one per parameter-table entry
 *   H <entry> <hex bytes>                                    the entry's bytes, 32 a line (dump)
 *   C <checksum hex>                                         tt_params_checksum()
 * Functions are static inline: a program that leaves one unused gets no warning.
 */
#ifndef TT_REPORT_H
#define TT_REPORT_H

#include "tt_platform.h"
#include "tt_model.h"
#include "tt_rom.h"

/* bytes of one H line */
#define TT_REPORT_HEX_BYTES 32u

/* element i of a table in flash (little-endian bytes) */
static inline uint8_t tt_rom8_at(const void *table, uint32_t i)
{
    return tt_rom_u8((const uint8_t *)table + i);
}

static inline uint16_t tt_rom16_at(const uint16_t *table, uint32_t i)
{
    return (uint16_t)(tt_rom8_at(table, 2u * i) | ((uint16_t)tt_rom8_at(table, 2u * i + 1u) << 8));
}

static inline uint32_t tt_rom32_at(const uint32_t *table, uint32_t i)
{
    uint32_t v = 0;
    uint8_t k;
    for (k = 0; k < 4u; ++k) {
        v |= (uint32_t)tt_rom8_at(table, 4u * i + k) << (8u * k);
    }
    return v;
}

/* "<S>,<U>,<D>" */
static inline void tt_put_scale(const tt_scale_t *s)
{
    tt_put_i32(s->S); tt_putc(','); tt_put_i32(s->U); tt_putc(','); tt_put_i32(s->D);
}

/* "<tag> <entry> <hex>" lines of TT_REPORT_HEX_BYTES bytes */
static inline void tt_put_hex_lines(char tag, uint32_t entry, const uint8_t *p, uint32_t count)
{
    static const char digits[] = "0123456789abcdef";
    char line[2u * TT_REPORT_HEX_BYTES + 1u];
    uint32_t i = 0, k;
    while (i < count) {
        uint32_t n = count - i < TT_REPORT_HEX_BYTES ? count - i : TT_REPORT_HEX_BYTES;
        for (k = 0; k < n; ++k) {
            line[2u * k] = digits[p[i + k] >> 4];
            line[2u * k + 1u] = digits[p[i + k] & 15u];
        }
        line[2u * n] = 0;
        tt_putc(tag); tt_putc(' '); tt_put_u32(entry); tt_putc(' ');
        tt_puts(line);
        tt_putc('\n');
        i += n;
    }
}

/* P records of every parameter-table entry (with H records when `dump`), then the C record */
static inline void tt_put_params(uint8_t dump)
{
    static const uint8_t dtype_bytes[6] = {0, 1, 2, 4, 8, 1}; /* by TT_DTYPE_* (5: uint8 bytes) */
    tt_param_info_t info;
    uint32_t j;
    for (j = 0; j < TT_PARAM_COUNT; ++j) {
        tt_scale_t zero = {0, 0, 0};
        const uint8_t *data;
        uint32_t nbytes;
        (void)tt_param_get(j, &info);
        data = (const uint8_t *)info.data;
        nbytes = (uint32_t)info.count * dtype_bytes[info.dtype];
        tt_putc('P'); tt_putc(' '); tt_put_u32(j); tt_putc(' '); tt_put_u32(info.role); tt_putc(' ');
        tt_put_u32(info.dtype); tt_putc(' '); tt_put_u32((uint32_t)info.count); tt_putc(' ');
        tt_put_scale(info.scale != NULL ? info.scale : &zero);
        tt_putc(' ');
        tt_put_hex32(tt_fnv1a_u32(0x811C9DC5UL, data, nbytes));
        tt_putc('\n');
        if (dump) {
            tt_put_hex_lines('H', j, data, nbytes);
        }
    }
    tt_putc('C'); tt_putc(' '); tt_put_hex32(tt_params_checksum()); tt_putc('\n');
}

#endif
