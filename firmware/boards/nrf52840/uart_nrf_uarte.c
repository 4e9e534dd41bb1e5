/**
 * @file uart_nrf_uarte.c
 * @brief nRF52840 UARTE0 (EasyDMA UART), polled, 8N1, 115200 baud, on the nRF52840-DK's
 *        interface-MCU pins (P0.06 TX, P0.08 RX).
 *
 * EasyDMA reads and writes RAM only, so bytes go through one-byte RAM buffers. Reception keeps
 * one STARTRX armed; a byte is ready when EVENTS_ENDRX fires. Built and size-checked in CI;
 * not run there (no emulator for this chip), so treat it as a starting point on hardware.
 */
#include <stdint.h>

#include "mt_board_port.h"

#ifndef MT_BOARD_UART_BASE
#define MT_BOARD_UART_BASE 0x40002000u /* UARTE0 */
#endif
#ifndef MT_BOARD_UART_TX_PIN
#define MT_BOARD_UART_TX_PIN 6u
#endif
#ifndef MT_BOARD_UART_RX_PIN
#define MT_BOARD_UART_RX_PIN 8u
#endif

#define REG32(off)    (*(volatile uint32_t *)(MT_BOARD_UART_BASE + (off)))
#define TASKS_STARTRX REG32(0x000u)
#define TASKS_STARTTX REG32(0x008u)
#define EVENTS_ENDRX  REG32(0x110u)
#define EVENTS_ENDTX  REG32(0x120u)
#define ENABLE        REG32(0x500u)
#define PSEL_RTS      REG32(0x508u)
#define PSEL_TXD      REG32(0x50Cu)
#define PSEL_CTS      REG32(0x510u)
#define PSEL_RXD      REG32(0x514u)
#define BAUDRATE      REG32(0x524u)
#define RXD_PTR       REG32(0x534u)
#define RXD_MAXCNT    REG32(0x538u)
#define TXD_PTR       REG32(0x544u)
#define TXD_MAXCNT    REG32(0x548u)
#define CONFIG        REG32(0x56Cu)

#define ENABLE_UARTE      8u
#define BAUDRATE_115200   0x01D60000u
#define PSEL_DISCONNECTED 0xFFFFFFFFu

static volatile uint8_t g_tx_byte;
static volatile uint8_t g_rx_byte;
static int g_tx_started;

static void start_rx(void)
{
    EVENTS_ENDRX = 0u;
    RXD_PTR = (uint32_t)(uintptr_t)&g_rx_byte;
    RXD_MAXCNT = 1u;
    TASKS_STARTRX = 1u;
}

void mt_port_uart_init(void)
{
    ENABLE = 0u;
    PSEL_TXD = MT_BOARD_UART_TX_PIN;
    PSEL_RXD = MT_BOARD_UART_RX_PIN;
    PSEL_RTS = PSEL_DISCONNECTED;
    PSEL_CTS = PSEL_DISCONNECTED;
    BAUDRATE = BAUDRATE_115200;
    CONFIG = 0u; /* no parity, one stop bit, no flow control */
    ENABLE = ENABLE_UARTE;
    g_tx_started = 0;
    start_rx();
}

void mt_port_uart_flush(void)
{
    if (g_tx_started) {
        while (EVENTS_ENDTX == 0u) {
        }
    }
}

void mt_port_uart_putc(uint8_t c)
{
    mt_port_uart_flush();
    g_tx_byte = c;
    EVENTS_ENDTX = 0u;
    TXD_PTR = (uint32_t)(uintptr_t)&g_tx_byte;
    TXD_MAXCNT = 1u;
    TASKS_STARTTX = 1u;
    g_tx_started = 1;
}

int mt_port_uart_getc_nb(void)
{
    if (EVENTS_ENDRX == 0u) {
        return -1;
    }
    const int c = g_rx_byte;
    start_rx();
    return c;
}
