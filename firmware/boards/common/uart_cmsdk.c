/**
 * @file uart_cmsdk.c
 * @brief Arm CMSDK APB UART (MPS2 at 0x40004000, MPS3 AN547 at 0x59303000), polled.
 *
 * Registers: DATA +0x0, STATE +0x4 (bit0 TXFULL, bit1 RXFULL), CTRL +0x8 (bit0 TXEN,
 * bit1 RXEN), BAUDDIV +0x10. QEMU drops transmitted bytes unless BAUDDIV >= 16, and the first
 * host bytes wait about 1 s in QEMU unless DATA is read once after RX is enabled.
 */
#include <stdint.h>

#include "mt_board_port.h"

#ifndef MT_BOARD_UART_BASE
#error "MT_BOARD_UART_BASE is not defined"
#endif
#ifndef MT_BOARD_UART_CLOCK_HZ
#define MT_BOARD_UART_CLOCK_HZ MT_BOARD_CPU_HZ
#endif
#ifndef MT_BOARD_UART_BAUD
#define MT_BOARD_UART_BAUD 115200u
#endif

#define UART_DATA    (*(volatile uint32_t *)(MT_BOARD_UART_BASE + 0x00u))
#define UART_STATE   (*(volatile uint32_t *)(MT_BOARD_UART_BASE + 0x04u))
#define UART_CTRL    (*(volatile uint32_t *)(MT_BOARD_UART_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(MT_BOARD_UART_BASE + 0x10u))

#define STATE_TXFULL (1u << 0)
#define STATE_RXFULL (1u << 1)
#define CTRL_TXEN    (1u << 0)
#define CTRL_RXEN    (1u << 1)

#define BAUDDIV (MT_BOARD_UART_CLOCK_HZ / MT_BOARD_UART_BAUD)
_Static_assert(BAUDDIV >= 16u, "CMSDK UART: BAUDDIV must be >= 16 (QEMU drops bytes otherwise)");

void mt_port_uart_init(void)
{
    UART_CTRL = 0u;
    UART_BAUDDIV = BAUDDIV;
    UART_CTRL = CTRL_TXEN | CTRL_RXEN;
    (void)UART_DATA; /* see the file comment: wakes QEMU's receive path */
}

void mt_port_uart_putc(uint8_t c)
{
    while ((UART_STATE & STATE_TXFULL) != 0u) {
    }
    UART_DATA = c;
}

int mt_port_uart_getc_nb(void)
{
    if ((UART_STATE & STATE_RXFULL) == 0u) {
        return -1;
    }
    return (int)(UART_DATA & 0xFFu);
}

void mt_port_uart_flush(void)
{
    while ((UART_STATE & STATE_TXFULL) != 0u) {
    }
}
