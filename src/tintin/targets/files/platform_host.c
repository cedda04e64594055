/* platform_host.c - tt_platform.h on a hosted system (stdio). */
#include <stdio.h>
#include <stdlib.h>
#include "tt_platform.h"

/* number of marks so far; a distinct body also keeps the mark from being merged with
   another empty function by identical-code folding */
volatile uint32_t tt_bench_mark_calls;

void tt_platform_init(void) { setvbuf(stdout, NULL, _IOFBF, 1u << 16); }
void tt_putc(char c) { putchar((unsigned char)c); }
void tt_puts(const char *s) { fputs(s, stdout); }
__attribute__((noinline)) void tt_bench_mark(void) { tt_bench_mark_calls++; }
void tt_exit(int code)
{
    fflush(stdout);
    exit(code);
}
