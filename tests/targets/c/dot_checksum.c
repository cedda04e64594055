/* dot_checksum.c - integer test program for every target: an int8 dot product and an
 * FNV-1a checksum over pseudo-random data. TT_TEST_N sets the vector length.
 * Marks: [fill] mark [dot product] mark [checksum] mark, so counts = (dot, checksum). */
#include "tt_platform.h"

#ifndef TT_TEST_N
#define TT_TEST_N 64
#endif

static int8_t xs[TT_TEST_N], ys[TT_TEST_N];
static uint32_t lcg_state;

static int8_t next_s8(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (int8_t)((int16_t)(lcg_state >> 24) - 128);
}

__attribute__((noinline)) int32_t dot_s8(const int8_t *x, const int8_t *y, uint16_t n)
{
    int32_t acc = 0;
    uint16_t i;
    for (i = 0; i < n; i++)
        acc += (int16_t)(x[i] * y[i]);   /* |x*y| <= 16384 fits a 16-bit int */
    return acc;
}

__attribute__((noinline)) uint32_t fnv1a(uint32_t h, const int8_t *p, uint16_t n)
{
    uint16_t i;
    for (i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

int main(void)
{
    uint16_t i;
    int32_t dot;
    uint32_t h;

    tt_platform_init();
    lcg_state = 12345u;
    for (i = 0; i < TT_TEST_N; i++) {
        xs[i] = next_s8();
        ys[i] = next_s8();
    }
    tt_bench_mark();
    dot = dot_s8(xs, ys, TT_TEST_N);
    tt_bench_mark();
    h = fnv1a(2166136261u, xs, TT_TEST_N);
    h = fnv1a(h, ys, TT_TEST_N);
    tt_bench_mark();
    tt_puts("n=");
    tt_put_u32(TT_TEST_N);
    tt_puts("\ndot=");
    tt_put_i32(dot);
    tt_puts("\nfnv=");
    tt_put_hex32(h);
    tt_putc('\n');
    return 0;
}
