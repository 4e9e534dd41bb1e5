/**
 * @file cortexm.c
 * @brief Cortex-M start-up: vector table, reset handler, fault reporting, SysTick counter, exit.
 *
 * Shared by every Arm board (M4F, M7, M55). Board-specific numbers come from -D defines
 * (see mt_board_port.h). Reset enables the FPU (CPACR CP10/CP11) in assembly, before any
 * compiled code can touch an FP register, then calls mt_board_c_start().
 */
#include <stdint.h>

#include "mt_board.h"
#include "mt_board_port.h"

#ifndef MT_BOARD_EXIT_SEMIHOSTING
#define MT_BOARD_EXIT_SEMIHOSTING 0
#endif
#ifndef MT_BOARD_QEMU
#define MT_BOARD_QEMU 0
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

#define SCB_ICSR  REG32(0xE000ED04u)
#define SCB_VTOR  REG32(0xE000ED08u)
#define SCB_CFSR  REG32(0xE000ED28u)
#define SCB_HFSR  REG32(0xE000ED2Cu)
#define SCB_MMFAR REG32(0xE000ED34u)
#define SCB_BFAR  REG32(0xE000ED38u)
#define SCB_DHCSR REG32(0xE000EDF0u)
#define SYST_CSR  REG32(0xE000E010u)
#define SYST_RVR  REG32(0xE000E014u)
#define SYST_CVR  REG32(0xE000E018u)

#define CFSR_STKOF     (1u << 20) /* UsageFault: stack limit violation (Armv8-M) */
#define ICSR_PENDSTSET (1u << 26)
/* 24-bit counter: one wrap = 2^24 ticks. Tests lower it to exercise the 64-bit extension. */
#ifndef MT_CORTEXM_SYSTICK_RELOAD
#define MT_CORTEXM_SYSTICK_RELOAD 0x00FFFFFFu
#endif
#define SYST_RELOAD MT_CORTEXM_SYSTICK_RELOAD
#define SYST_PERIOD (SYST_RELOAD + 1u)

/* Number of device interrupts in the table: enough for every board here (STM32F746: 98). */
#define NUM_DEVICE_IRQ 112

void _start(void);
void mt_fault_handler(void);
void mt_irq_handler(void);
void mt_systick_handler(void);

/* ---- vector table ---------------------------------------------------------------------------- */

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) static const vector_t g_vectors[16 + NUM_DEVICE_IRQ] = {
    [0] = (vector_t)(uintptr_t)__stack_top,
    [1] = _start,
    [2] = mt_fault_handler,  /* NMI */
    [3] = mt_fault_handler,  /* HardFault */
    [4] = mt_fault_handler,  /* MemManage */
    [5] = mt_fault_handler,  /* BusFault */
    [6] = mt_fault_handler,  /* UsageFault */
    [7] = mt_fault_handler,  /* SecureFault (v8-M) */
    [11] = mt_fault_handler, /* SVCall */
    [12] = mt_fault_handler, /* DebugMonitor */
    [14] = mt_irq_handler,   /* PendSV */
    [15] = mt_systick_handler,
    [16 ... 16 + NUM_DEVICE_IRQ - 1] = mt_irq_handler,
};

/* ---- reset ----------------------------------------------------------------------------------- */

/*
 * Naked and in assembly so that no FP register is used before CPACR grants access.
 * Also sets VTOR (boards whose flash is not at 0x0, e.g. STM32 at 0x08000000, boot through an
 * alias) and, on Armv8-M Mainline, MSPLIM so that a stack overflow faults instead of
 * overwriting .data/.bss (the stack sits at the bottom of RAM, see sections.ld).
 */
__attribute__((naked, section(".text.start"))) void _start(void)
{
    __asm__ volatile("ldr r0, =__stack_top\n"
                     "mov sp, r0\n"
                     "ldr r0, =0xE000ED88\n" /* CPACR */
                     "ldr r1, [r0]\n"
                     "orr r1, r1, #(0xF << 20)\n" /* CP10, CP11 full access */
                     "str r1, [r0]\n"
                     "dsb\n"
                     "isb\n"
                     "ldr r0, =0xE000ED08\n" /* VTOR */
                     "ldr r1, =g_vectors\n"
                     "str r1, [r0]\n"
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
                     "ldr r0, =__stack_limit\n"
                     "msr msplim, r0\n"
#endif
                     "dsb\n"
                     "isb\n"
                     "bl mt_board_c_start\n"
                     "b .\n"
                     ".ltorg\n");
}

/* ---- faults ---------------------------------------------------------------------------------- */

static void fault_report(uint32_t frame_sp, uint32_t exc_return, uint32_t pc)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    mt_board_puts("\r\n[mt_board] fault: exception ");
    mt_board_put_u64(ipsr & 0x1FFu);
    mt_board_puts(" CFSR=");
    mt_board_put_hex32(SCB_CFSR);
    mt_board_puts(" HFSR=");
    mt_board_put_hex32(SCB_HFSR);
    mt_board_puts(" MMFAR=");
    mt_board_put_hex32(SCB_MMFAR);
    mt_board_puts(" BFAR=");
    mt_board_put_hex32(SCB_BFAR);
    mt_board_puts(" EXC_RETURN=");
    mt_board_put_hex32(exc_return);
    mt_board_puts(" SP=");
    mt_board_put_hex32(frame_sp);
    mt_board_puts(" PC=");
    mt_board_put_hex32(pc);
    if ((SCB_CFSR & CFSR_STKOF) != 0u) {
        mt_board_puts(" (stack overflow: MSPLIM)");
    }
    mt_board_puts("\r\n");
    mt_board_exit(MT_BOARD_EXIT_FAULT);
}

/*
 * Reads the stacked PC (when the frame lies inside the stack region) and continues on a fresh
 * stack at __stack_top: after an overflow (or an MSPLIM fault on v8-M) the old one is unusable.
 */
__attribute__((naked)) void mt_fault_handler(void)
{
    __asm__ volatile("tst lr, #4\n"
                     "ite eq\n"
                     "mrseq r0, msp\n"
                     "mrsne r0, psp\n"
                     "mov r1, lr\n"
                     "movs r2, #0\n"
                     "ldr r3, =__stack_limit\n"
                     "cmp r0, r3\n"
                     "bls 1f\n"            /* at or below the limit: no readable frame */
                     "ldr r2, [r0, #24]\n" /* stacked PC */
                     "1:\n"
                     "ldr r3, =__stack_top\n"
                     "mov sp, r3\n"
                     "b mt_fault_c\n"
                     ".ltorg\n");
}

void mt_fault_c(uint32_t frame_sp, uint32_t exc_return, uint32_t pc);
void mt_fault_c(uint32_t frame_sp, uint32_t exc_return, uint32_t pc)
{
    fault_report(frame_sp, exc_return, pc);
}

void mt_irq_handler(void)
{
    fault_report(0u, 0u, 0u);
}

/* ---- SysTick: 64-bit cycle counter ------------------------------------------------------------ */

static volatile uint32_t g_systick_wraps;

void mt_systick_handler(void)
{
    g_systick_wraps = g_systick_wraps + 1u;
}

void mt_port_counter_init(void)
{
    SYST_CSR = 0u;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;
    g_systick_wraps = 0u;
    SYST_CSR = 7u; /* ENABLE | TICKINT | CLKSOURCE=core clock */
}

/* Cycles since mt_port_counter_init. The counter loads SYST_RELOAD on the tick after it reads 0 and raises
 * the exception when it reaches 0: a period's ticks read RELOAD, ..., 1, 0, and at 0 the period is
 * complete (its wrap may be counted already, or still pending). */
uint64_t mt_port_cycles(void)
{
    uint32_t hi, hi2, val, pending;
    do {
        hi = g_systick_wraps;
        val = SYST_CVR;
        pending = SCB_ICSR & ICSR_PENDSTSET;
        hi2 = g_systick_wraps;
    } while (hi != hi2);
    if (pending != 0u && (val == 0u || val > SYST_PERIOD / 2u)) {
        ++hi; /* wrapped, but the exception has not run yet */
    }
    if (val == 0u) {
        return (uint64_t)hi * SYST_PERIOD;
    }
    return (uint64_t)hi * SYST_PERIOD + (SYST_PERIOD - val);
}

/* Under -icount shift=0 one instruction is 1 ns of virtual time. */
uint64_t mt_port_instret(void)
{
    return mt_port_cycles() * 1000000000ull / MT_BOARD_CPU_HZ;
}

uint32_t mt_port_instret_resolution(void)
{
    return (uint32_t)((1000000000ull + MT_BOARD_CPU_HZ - 1u) / MT_BOARD_CPU_HZ);
}

/* ---- exit ------------------------------------------------------------------------------------ */

/* Semihosting SYS_EXIT_EXTENDED (0x20): the full 0..255 status reaches QEMU's exit status. */
static void semihost_exit(int code)
{
    const uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register const uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

void mt_port_exit(int code)
{
    __asm__ volatile("cpsid i" ::: "memory");
    /* On hardware bkpt without a debugger escalates to a lock-up: use it only when attached. */
    if (MT_BOARD_EXIT_SEMIHOSTING || (SCB_DHCSR & 1u) != 0u) {
        semihost_exit(code & 0xFF);
    }
    mt_board_puts("[mt_board] exit ");
    mt_board_put_u64((uint64_t)(code & 0xFF));
    mt_board_puts("\r\n");
    mt_port_uart_flush();
    for (;;) {
        __asm__ volatile("wfi");
    }
}
