/**
 * @file uart_stm32_usart.c
 * @brief STM32F7 USART1 on the 32F746GDISCOVERY (ST-LINK virtual COM port: PA9 TX, PB7 RX,
 *        alternate function 7), polled, 8N1.
 *
 * Assumes the reset clock tree: HSI 16 MHz drives the core and APB2 (MT_BOARD_CPU_HZ and
 * MT_BOARD_UART_CLOCK_HZ in board.toml). Built and size-checked in CI; not run there
 * (no emulator for this board), so treat it as a starting point on hardware.
 */
#include <stdint.h>

#include "mt_board_port.h"

#ifndef MT_BOARD_UART_BASE
#define MT_BOARD_UART_BASE 0x40011000u /* USART1 */
#endif
#ifndef MT_BOARD_UART_CLOCK_HZ
#define MT_BOARD_UART_CLOCK_HZ MT_BOARD_CPU_HZ
#endif
#ifndef MT_BOARD_UART_BAUD
#define MT_BOARD_UART_BAUD 115200u
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

#define RCC_BASE             0x40023800u
#define RCC_AHB1ENR          REG32(RCC_BASE + 0x30u)
#define RCC_APB2ENR          REG32(RCC_BASE + 0x44u)
#define RCC_AHB1ENR_GPIOAEN  (1u << 0)
#define RCC_AHB1ENR_GPIOBEN  (1u << 1)
#define RCC_APB2ENR_USART1EN (1u << 4)

#define GPIOA_BASE       0x40020000u
#define GPIOB_BASE       0x40020400u
#define GPIO_MODER(base) REG32((base) + 0x00u)
#define GPIO_AFRL(base)  REG32((base) + 0x20u)
#define GPIO_AFRH(base)  REG32((base) + 0x24u)

#define USART_CR1 REG32(MT_BOARD_UART_BASE + 0x00u)
#define USART_BRR REG32(MT_BOARD_UART_BASE + 0x0Cu)
#define USART_ISR REG32(MT_BOARD_UART_BASE + 0x1Cu)
#define USART_ICR REG32(MT_BOARD_UART_BASE + 0x20u)
#define USART_RDR REG32(MT_BOARD_UART_BASE + 0x24u)
#define USART_TDR REG32(MT_BOARD_UART_BASE + 0x28u)

#define CR1_UE    (1u << 0)
#define CR1_RE    (1u << 2)
#define CR1_TE    (1u << 3)
#define ISR_ORE   (1u << 3)
#define ISR_RXNE  (1u << 5)
#define ISR_TC    (1u << 6)
#define ISR_TXE   (1u << 7)
#define ICR_ORECF (1u << 3)

/* Puts pin @p pin of a GPIO port into alternate function @p af. */
static void gpio_af(uint32_t base, unsigned pin, unsigned af)
{
    GPIO_MODER(base) = (GPIO_MODER(base) & ~(3u << (2u * pin))) | (2u << (2u * pin));
    if (pin < 8u) {
        GPIO_AFRL(base) = (GPIO_AFRL(base) & ~(0xFu << (4u * pin))) | (af << (4u * pin));
    } else {
        const unsigned p = pin - 8u;
        GPIO_AFRH(base) = (GPIO_AFRH(base) & ~(0xFu << (4u * p))) | (af << (4u * p));
    }
}

void mt_port_uart_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR;           /* read back: the clock is running before the first register access */
    gpio_af(GPIOA_BASE, 9u, 7u); /* PA9 = USART1_TX */
    gpio_af(GPIOB_BASE, 7u, 7u); /* PB7 = USART1_RX */
    USART_CR1 = 0u;
    USART_BRR = (MT_BOARD_UART_CLOCK_HZ + MT_BOARD_UART_BAUD / 2u) / MT_BOARD_UART_BAUD;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void mt_port_uart_putc(uint8_t c)
{
    while ((USART_ISR & ISR_TXE) == 0u) {
    }
    USART_TDR = c;
}

int mt_port_uart_getc_nb(void)
{
    const uint32_t isr = USART_ISR;
    if ((isr & ISR_ORE) != 0u) {
        USART_ICR = ICR_ORECF; /* an overrun blocks further reception until cleared */
    }
    if ((isr & ISR_RXNE) == 0u) {
        return -1;
    }
    return (int)(USART_RDR & 0xFFu);
}

void mt_port_uart_flush(void)
{
    while ((USART_ISR & ISR_TC) == 0u) {
    }
}
