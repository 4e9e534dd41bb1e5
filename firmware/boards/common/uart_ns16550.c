/**
 * @file uart_ns16550.c
 * @brief NS16550A UART (QEMU riscv virt at 0x10000000, byte-spaced registers), polled.
 *
 * The FIFO is left off, as QEMU resets it: enabling it (FCR) after the host may already have sent
 * bytes makes QEMU flush them, and under -icount it made the serial link slower. Without the FIFO
 * QEMU accepts one byte at a time from its character backend and holds the rest back until the
 * guest reads RBR, so no byte is lost while a training step keeps the firmware from polling
 * (docs/boards.md, "The serial link on the rv32 virt machine"). Used by rv32-qemu and
 * gap9-rv32-qemu.
 */
#include <stdint.h>

#include "mt_board_port.h"

#ifndef MT_BOARD_UART_BASE
#error "MT_BOARD_UART_BASE is not defined"
#endif

#define REG8(off) (*(volatile uint8_t *)(MT_BOARD_UART_BASE + (off)))
#define UART_RBR  REG8(0u) /* read */
#define UART_THR  REG8(0u) /* write */
#define UART_IER  REG8(1u)
#define UART_LCR  REG8(3u)
#define UART_LSR  REG8(5u)

#define LSR_DR   (1u << 0)
#define LSR_THRE (1u << 5)
#define LSR_TEMT (1u << 6)

void mt_port_uart_init(void)
{
    UART_IER = 0u;    /* polled */
    UART_LCR = 0x03u; /* 8N1; QEMU ignores the divisor, so it is not programmed */
}

void mt_port_uart_putc(uint8_t c)
{
    while ((UART_LSR & LSR_THRE) == 0u) {
    }
    UART_THR = c;
}

int mt_port_uart_getc_nb(void)
{
    if ((UART_LSR & LSR_DR) == 0u) {
        return -1;
    }
    return (int)UART_RBR;
}

void mt_port_uart_flush(void)
{
    while ((UART_LSR & LSR_TEMT) == 0u) {
    }
}
