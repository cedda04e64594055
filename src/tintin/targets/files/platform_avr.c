/* platform_avr.c - tt_platform.h on the ATmega328P under simavr: console on USART0.
 * The simavr harness (simavr/tt_simavr_run.c) collects USART0 bytes, reads the cycle counter
 * when tt_bench_mark() is entered and stops at tt_exit() (or libgcc's exit() when main
 * returns) with the status taken from r24:r25. Integer-only, no libc. */
#include <avr/io.h>
#include "tt_platform.h"

volatile uint16_t tt_bench_mark_calls;

void tt_platform_init(void)
{
    UBRR0 = 0;                               /* fastest rate: 1 Mbit/s at 16 MHz */
    UCSR0A = 0;
    UCSR0C = (1 << UCSZ01) | (1 << UCSZ00);  /* 8N1 */
    UCSR0B = (1 << TXEN0);
    tt_bench_mark_calls = 0;
}

void tt_putc(char c)
{
    while (!(UCSR0A & (1 << UDRE0))) { }
    UDR0 = (uint8_t)c;
}

void tt_puts(const char *s)
{
    while (*s) tt_putc(*s++);
}

__attribute__((noinline)) void tt_bench_mark(void)
{
    tt_bench_mark_calls++;
    __asm__ volatile ("" ::: "memory");
}

void tt_exit(int code)
{
    /* the harness stops at this function's entry; on a real part: stop here */
    volatile int status = code;
    (void)status;
    __asm__ volatile ("cli");
    for (;;) {
        __asm__ volatile ("sleep");
    }
}
