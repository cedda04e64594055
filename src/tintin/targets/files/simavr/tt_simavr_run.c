/* tt_simavr_run.c - run an AVR ELF on libsimavr with exact cycle counts.
 *
 * Built by tintin.targets into its cache:
 *     gcc -O2 -I/usr/include/simavr -o tt_simavr_run tt_simavr_run.c -lsimavr
 * Usage:
 *     tt_simavr_run ELF MCU FREQ_HZ MARK_ADDR EXIT_ADDRS MAX_CYCLES STACK_FLOOR
 *   MARK_ADDR   byte address of tt_bench_mark (hex, 0 = none)
 *   EXIT_ADDRS  comma-separated byte addresses (hex) of tt_exit and libgcc's exit
 *   MAX_CYCLES  stop with "tt-limit" after this many cycles (0 = no limit)
 *   STACK_FLOOR data address (hex) of the first byte after .bss/.noinit (symbol _end minus
 *               0x800000): the stack may grow down to it. The runner tracks the lowest stack
 *               pointer of the run (exact, checked before every instruction) and reports
 *               the bytes used (0 = no stack report)
 *
 * stdout: the bytes the program writes to USART0, unchanged.
 * stderr: "tt-mark <cycle>" each time the instruction at MARK_ADDR is about to execute,
 *         "tt-stack <bytes used> <bytes available>" at exit,
 *         then one of "tt-exit <status> <cycle>", "tt-crash <pc> <cycle>",
 *         "tt-done <cycle>" (sleep with interrupts off), "tt-limit <cycle>".
 * simavr is cycle-accurate; the cycle counter starts at 0 at reset. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include "avr_uart.h"

#define MAX_EXITS 4
#define SPL_ADDR 0x5Du   /* data-space address of SPL (I/O 0x3D) on megaAVR; SPH follows */

static uint32_t stack_floor, lowest_sp = 0xFFFFFFFFu;

static void report_stack(avr_t *avr)
{
    uint32_t used;
    if (!stack_floor || stack_floor > avr->ramend || lowest_sp > avr->ramend) return;
    /* SP points at the next free byte: RAMEND - SP bytes are in use */
    used = avr->ramend - lowest_sp;
    fprintf(stderr, "tt-stack %u %u\n", (unsigned)used, (unsigned)(avr->ramend + 1 - stack_floor));
}

/* simavr's messages go to stderr (prefixed), never into the program's stdout */
static void log_to_stderr(struct avr_t *avr, const int level, const char *format, va_list ap)
{
    (void)avr;
    if (level > LOG_WARNING) return;
    fputs("simavr: ", stderr);
    vfprintf(stderr, format, ap);
}

static void uart_byte_out(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    putchar((int)(value & 0xFFu));
}

int main(int argc, char **argv)
{
    elf_firmware_t firmware;
    avr_t *avr;
    uint32_t mark, exits[MAX_EXITS], flags = 0;
    unsigned long long max_cycles;
    int n_exits = 0, state, i;
    char *list, *tok;

    if (argc != 8) {
        fprintf(stderr, "usage: %s ELF MCU FREQ_HZ MARK_ADDR EXIT_ADDRS MAX_CYCLES STACK_FLOOR\n",
                argv[0]);
        return 2;
    }
    mark = (uint32_t)strtoul(argv[4], NULL, 16);
    list = argv[5];
    for (tok = strtok(list, ","); tok && n_exits < MAX_EXITS; tok = strtok(NULL, ","))
        exits[n_exits++] = (uint32_t)strtoul(tok, NULL, 16);
    max_cycles = strtoull(argv[6], NULL, 0);
    stack_floor = (uint32_t)strtoul(argv[7], NULL, 16);

    avr_global_logger_set(log_to_stderr);
    memset(&firmware, 0, sizeof firmware);
    if (elf_read_firmware(argv[1], &firmware) != 0) {
        fprintf(stderr, "tt-error cannot read ELF %s\n", argv[1]);
        return 2;
    }
    strncpy(firmware.mmcu, argv[2], sizeof firmware.mmcu - 1);
    firmware.frequency = (uint32_t)strtoul(argv[3], NULL, 0);
    avr = avr_make_mcu_by_name(firmware.mmcu);
    if (!avr) {
        fprintf(stderr, "tt-error unknown MCU %s\n", firmware.mmcu);
        return 2;
    }
    avr_init(avr);
    avr->log = LOG_WARNING;
    avr_load_firmware(avr, &firmware);

    /* raw USART0 bytes to stdout instead of simavr's coloured line echo */
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(uint32_t)AVR_UART_FLAG_STDIO;
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT),
                            uart_byte_out, NULL);

    for (;;) {
        if (avr->state == cpu_Running) {
            uint32_t pc = avr->pc;
            uint32_t sp = avr->data[SPL_ADDR] | ((uint32_t)avr->data[SPL_ADDR + 1] << 8);
            if (sp < lowest_sp && sp > 0) lowest_sp = sp;
            if (pc == mark && mark != 0)
                fprintf(stderr, "tt-mark %llu\n", (unsigned long long)avr->cycle);
            for (i = 0; i < n_exits; i++) {
                if (pc == exits[i]) {
                    int status = (int)(avr->data[24] | (avr->data[25] << 8));
                    fflush(stdout);
                    report_stack(avr);
                    fprintf(stderr, "tt-exit %d %llu\n", status, (unsigned long long)avr->cycle);
                    avr_terminate(avr);
                    return 0;
                }
            }
        }
        if (max_cycles && avr->cycle >= max_cycles) {
            fflush(stdout);
            fprintf(stderr, "tt-limit %llu\n", (unsigned long long)avr->cycle);
            return 0;
        }
        state = avr_run(avr);
        if (state == cpu_Done) {
            fflush(stdout);
            fprintf(stderr, "tt-done %llu\n", (unsigned long long)avr->cycle);
            return 0;
        }
        if (state == cpu_Crashed) {
            fflush(stdout);
            report_stack(avr);
            fprintf(stderr, "tt-crash 0x%x %llu\n", (unsigned)avr->pc, (unsigned long long)avr->cycle);
            return 0;
        }
    }
}
