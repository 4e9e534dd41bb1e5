/**
 * @file mt_board_port.h
 * @brief Internal interface between the portable board code (mt_board_common.c) and the
 *        architecture start-up (cortexm/, riscv/) and UART drivers (uart_*.c).
 *
 * Board parameters arrive as -D defines generated from board.toml by mcutrain.boards.targets
 * (Target.c_defines()): MT_BOARD_NAME, MT_BOARD_CPU_HZ, MT_BOARD_UART_BASE,
 * MT_BOARD_UART_CLOCK_HZ, MT_BOARD_UART_BAUD, MT_BOARD_EXIT_SEMIHOSTING, MT_BOARD_QEMU.
 */
#ifndef MT_BOARD_PORT_H
#define MT_BOARD_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifndef MT_BOARD_NAME
#error "MT_BOARD_NAME is not defined: build through mcutrain (Target.c_defines())"
#endif
#ifndef MT_BOARD_CPU_HZ
#error "MT_BOARD_CPU_HZ is not defined: build through mcutrain (Target.c_defines())"
#endif

/** Word written over the whole stack at start-up; mt_board_stack_used() looks for it. */
#define MT_STACK_PAINT 0x57AC57ACu

/* Symbols of firmware/boards/common/sections.ld. */
extern uint32_t __stack_limit[], __stack_top[];
extern uint32_t __data_start[], __data_end[], __data_source[];
extern uint32_t __bss_start[], __bss_end[];
extern char __tls_base[];

/* UART driver (one of uart_*.c). */
void mt_port_uart_init(void);
void mt_port_uart_putc(uint8_t c);
int mt_port_uart_getc_nb(void); /* -1 when no byte is waiting */
void mt_port_uart_flush(void);  /* waits until the last byte has left */

/* Architecture (cortexm/ or riscv/). */
void mt_port_counter_init(void);
uint64_t mt_port_cycles(void);
uint64_t mt_port_instret(void);
uint32_t mt_port_instret_resolution(void);
__attribute__((noreturn)) void mt_port_exit(int code);

/* Portable C start-up: .data/.bss/TLS, stack paint, mt_board_init(), main(), exit(). */
__attribute__((noreturn)) void mt_board_c_start(void);

#endif /* MT_BOARD_PORT_H */
