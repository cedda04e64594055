/* startup_cm.c - vector table, reset and fault handlers for every Cortex-M target.
 *
 * Memory layout (cortex_m.ld): the stack sits at the *bottom* of RAM, below .data/.bss, so an
 * overflow runs off the start of RAM (guarded by the MPU on ARMv7-M, unmapped on the micro:bit)
 * and faults instead of silently overwriting variables. The free stack is painted at reset and
 * tt_exit() reports the high-water mark. */
#include <stdint.h>
#include "tt_platform.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _sstack, _estack;
#define TT_STACK_PAINT 0xC5ACCE55u   /* must match platform_cm.c */
int main(void);

#define SCB_CCR   (*(volatile uint32_t *)0xE000ED14u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define MPU_CTRL  (*(volatile uint32_t *)0xE000ED94u)
#define MPU_RNR   (*(volatile uint32_t *)0xE000ED98u)
#define MPU_RBAR  (*(volatile uint32_t *)0xE000ED9Cu)
#define MPU_RASR  (*(volatile uint32_t *)0xE000EDA0u)

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    uint32_t *paint, sp;
#if !defined(__ARM_ARCH_6M__)
    /* Stack guard (ARMv7-M): on QEMU's mps2 boards 0x01010000-0x1FFFFFFF is a reserved area that
       silently ignores writes, so an overflow would go unnoticed. MPU region 0 forbids every
       access to 0x10000000-0x1FFFFFFF (256 MB, XN); the default map stays in force elsewhere
       (PRIVDEFENA). The ARMv6-M build skips this: a Cortex-M0 has no MPU (QEMU's microbit
       faults when MPU_CTRL is written), the memory below its RAM is unmapped and faults, and on
       mps2-an385 the painted stack below still reveals an overflow at exit. */
    MPU_RNR = 0u;
    MPU_RBAR = 0x10000000u;
    MPU_RASR = (1u << 28) | (27u << 1) | 1u;   /* XN, AP=no access, SIZE=2^(27+1), ENABLE */
    MPU_CTRL = (1u << 2) | 1u;                  /* PRIVDEFENA | ENABLE */
    __asm__ volatile ("dsb\n\tisb" ::: "memory");
#endif
    /* paint the unused stack so tt_exit() can report the high-water mark */
    __asm__ volatile ("mov %0, sp" : "=r"(sp));
    for (paint = &_sstack; paint < (uint32_t *)(sp - 64u); ) *paint++ = TT_STACK_PAINT;
#if defined(__ARM_ARCH_6M__)
    /* ARMv6-M faults on every unaligned access. CCR is read-only on a real v6-M core, but when
       the same binary runs on an ARMv7-M machine (QEMU mps2-an385) this makes unaligned
       accesses fault there too, so both machines behave like a Cortex-M0. */
    SCB_CCR |= 1u << 3;   /* UNALIGN_TRP */
#endif
#if defined(__ARM_FP)
    /* FPU (VFP) build: grant CP10/CP11 access before the first VFP instruction */
    SCB_CPACR |= 0xFu << 20;
    __asm__ volatile ("dsb\n\tisb" ::: "memory");
#endif
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; ) *dst++ = 0;
    tt_exit(main());
}

void tt_cm_report(const char *tag, uint32_t a, uint32_t b);   /* platform_cm.c */

/* Report the exception number and the stacked pc on the emulator's stderr, then exit with
   status 99. Reached from the naked entry below with r0 = the exception stack frame (stacked
   pc at word 6) and r1 = IPSR. */
__attribute__((noreturn, used)) void tt_fault_report(const uint32_t *frame, uint32_t ipsr)
{
    tt_cm_report("tt-fault", ipsr & 0x1FFu, frame[6]);
    tt_exit(99);
}

__attribute__((naked)) void tt_fault_entry(void)
{
    __asm__ volatile ("mrs r0, msp\n\t"
                      "mrs r1, ipsr\n\t"
                      "bl tt_fault_report\n\t");
}

__attribute__((section(".vectors"), used))
static const void *const tt_vectors[16] = {
    &_estack,                    /* initial stack pointer */
    (const void *)Reset_Handler,
    (const void *)tt_fault_entry,   /* NMI */
    (const void *)tt_fault_entry,   /* HardFault */
    (const void *)tt_fault_entry,   /* MemManage (v7-M) */
    (const void *)tt_fault_entry,   /* BusFault (v7-M) */
    (const void *)tt_fault_entry,   /* UsageFault (v7-M) */
    0, 0, 0, 0,
    (const void *)tt_fault_entry,   /* SVCall */
    (const void *)tt_fault_entry,   /* DebugMonitor */
    0,
    (const void *)tt_fault_entry,   /* PendSV */
    (const void *)tt_fault_entry,   /* SysTick */
};
