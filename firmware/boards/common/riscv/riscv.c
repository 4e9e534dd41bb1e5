/**
 * @file riscv.c
 * @brief RISC-V (rv32) port: mcycle/minstret counters, trap report, exit through the SiFive
 *        test device of QEMU's virt machine.
 */
#include <stdint.h>

#include "mt_board.h"
#include "mt_board_port.h"

#ifndef MT_BOARD_SIFIVE_TEST_BASE
#define MT_BOARD_SIFIVE_TEST_BASE 0x00100000u
#endif

/* Reads a 64-bit counter CSR pair on rv32 without tearing (hi, lo, hi again). */
#define READ_CSR64(lo_name, hi_name)                                \
    __extension__({                                                 \
        uint32_t hi_, lo_, hi2_;                                    \
        do {                                                        \
            __asm__ volatile(".option push\n.option arch, +zicsr\n" \
                             "csrr %0, " hi_name "\n"               \
                             "csrr %1, " lo_name "\n"               \
                             "csrr %2, " hi_name "\n"               \
                             ".option pop\n"                        \
                             : "=r"(hi_), "=r"(lo_), "=r"(hi2_));   \
        } while (hi_ != hi2_);                                      \
        ((uint64_t)hi_ << 32) | lo_;                                \
    })

void mt_port_counter_init(void)
{
}

uint64_t mt_port_cycles(void)
{
    return READ_CSR64("mcycle", "mcycleh");
}

/* minstret: exact under qemu -icount shift=0. */
uint64_t mt_port_instret(void)
{
    return READ_CSR64("minstret", "minstreth");
}

uint32_t mt_port_instret_resolution(void)
{
    return 1u;
}

void mt_trap_c(uint32_t mcause, uint32_t mepc, uint32_t mtval);
void mt_trap_c(uint32_t mcause, uint32_t mepc, uint32_t mtval)
{
    mt_board_puts("\r\n[mt_board] fault: trap mcause=");
    mt_board_put_hex32(mcause);
    mt_board_puts(" mepc=");
    mt_board_put_hex32(mepc);
    mt_board_puts(" mtval=");
    mt_board_put_hex32(mtval);
    mt_board_puts("\r\n");
    mt_board_exit(MT_BOARD_EXIT_FAULT);
}

/* SiFive test device: 0x5555 = pass (status 0), (code << 16) | 0x3333 = fail with status code. */
void mt_port_exit(int code)
{
    volatile uint32_t *const test = (volatile uint32_t *)MT_BOARD_SIFIVE_TEST_BASE;
    const uint32_t status = (uint32_t)code & 0xFFu;
    *test = status == 0u ? 0x5555u : ((status << 16) | 0x3333u);
    for (;;) {
        __asm__ volatile("wfi");
    }
}
