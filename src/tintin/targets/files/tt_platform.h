/* tt_platform.h - the portable harness contract between a program and a tintin target.
 *
 * A program supplies main() and calls only these functions for I/O, timing marks and exit.
 * Every target (host, Cortex-M under QEMU, ATmega328P under simavr) implements them; integer-only,
 * no libc and no heap on MCU targets. Freestanding memset/memcpy/memmove/memcmp are provided.
 *
 *   int main(void) {
 *       tt_platform_init();
 *       tt_bench_mark();            -- counts[0] = work between these two marks
 *       work();
 *       tt_bench_mark();
 *       tt_puts("result="); tt_put_i32(r); tt_putc('\n');
 *       return 0;                   -- same as tt_exit(0)
 *   }
 */
#ifndef TT_PLATFORM_H
#define TT_PLATFORM_H

#include <stdint.h>

#if defined(__GNUC__)
#define TT_NORETURN __attribute__((noreturn))
#else
#define TT_NORETURN
#endif

/* Set up the console (AVR: USART0). Call once, first thing in main(). */
void tt_platform_init(void);

/* Console output: one byte, a NUL-terminated string. */
void tt_putc(char c);
void tt_puts(const char *s);

/* Formatted integers without division or libc: "0x" + 8 lowercase hex digits;
   signed and unsigned decimal. */
void tt_put_hex32(uint32_t v);
void tt_put_i32(int32_t v);
void tt_put_u32(uint32_t v);

/* Measurement mark. Never inlined: the emulator watches this function's entry address and
   reports the instructions (Cortex-M) or cycles (AVR) executed between consecutive calls.
   The host target counts nothing. */
void tt_bench_mark(void);

/* Stop the program with an exit status (0..255 reach the host). Returning from main(c)
   is the same as tt_exit(c). */
void tt_exit(int code) TT_NORETURN;

#endif /* TT_PLATFORM_H */
