/* platform_cm.c - tt_platform.h on Cortex-M under QEMU: ARM semihosting (BKPT 0xAB).
 * QEMU runs with -semihosting-config enable=on; SYS_WRITEC/SYS_WRITE0 reach the host's
 * stdout, reports for the runner ("tt-stack", "tt-fault") go to the ":tt" stderr handle, and
 * SYS_EXIT_EXTENDED becomes QEMU's exit status. Integer-only, no libc. */
#include "tt_platform.h"

#define SYS_OPEN          0x01u
#define SYS_WRITEC        0x03u
#define SYS_WRITE0        0x04u
#define SYS_WRITE         0x05u
#define SYS_EXIT_EXTENDED 0x20u
#define ADP_Stopped_ApplicationExit 0x20026u
#define TT_STACK_PAINT    0xC5ACCE55u   /* must match startup_cm.c */

extern uint32_t _sstack, _estack;

volatile uint32_t tt_bench_mark_calls;
static uint32_t stderr_handle_plus_1;   /* 0 = not opened yet */

static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile ("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tt_platform_init(void)
{
    /* startup_cm.c already copied .data, cleared .bss, painted the stack, enabled the FPU */
    tt_bench_mark_calls = 0;
}

void tt_putc(char c) { (void)semihost(SYS_WRITEC, &c); }
void tt_puts(const char *s) { (void)semihost(SYS_WRITE0, s); }

/* QEMU's counting plugin watches this function's first instruction */
__attribute__((noinline)) void tt_bench_mark(void)
{
    tt_bench_mark_calls++;
    __asm__ volatile ("" ::: "memory");
}

static char *put_dec(char *p, uint32_t v)
{
    static const uint32_t pow10[10] = {
        1000000000u, 100000000u, 10000000u, 1000000u, 100000u, 10000u, 1000u, 100u, 10u, 1u
    };
    uint32_t i, started = 0;
    for (i = 0; i < 10u; i++) {
        char d = '0';
        while (v >= pow10[i]) { v -= pow10[i]; d++; }
        if (d != '0' || started || i == 9u) { *p++ = d; started = 1; }
    }
    return p;
}

/* "tag a b\n" (decimal) on the emulator's stderr, for the runner; not part of tt_platform.h */
void tt_cm_report(const char *tag, uint32_t a, uint32_t b)
{
    char line[64], *p = line;
    uint32_t block[3];
    while (*tag && p < line + 32) *p++ = *tag++;
    *p++ = ' ';
    p = put_dec(p, a);
    *p++ = ' ';
    p = put_dec(p, b);
    *p++ = '\n';
    if (!stderr_handle_plus_1) {
        block[0] = (uint32_t)":tt";
        block[1] = 8u;                   /* mode "a": stderr (SH_EXT_STDOUT_STDERR) */
        block[2] = 3u;
        stderr_handle_plus_1 = semihost(SYS_OPEN, block) + 1u;
    }
    block[0] = stderr_handle_plus_1 - 1u;
    block[1] = (uint32_t)line;
    block[2] = (uint32_t)(p - line);
    (void)semihost(SYS_WRITE, block);
}

void tt_exit(int code)
{
    uint32_t block[2];
    const uint32_t *w = &_sstack;
    while (w < &_estack && *w == TT_STACK_PAINT) w++;
    tt_cm_report("tt-stack",
                 (uint32_t)((const char *)&_estack - (const char *)w),     /* bytes ever used */
                 (uint32_t)((const char *)&_estack - (const char *)&_sstack)); /* reserved */
    block[0] = ADP_Stopped_ApplicationExit;
    block[1] = (uint32_t)code;
    (void)semihost(SYS_EXIT_EXTENDED, block);
    for (;;) { }
}
