/**
 * @file mt_board.h
 * @brief Board support API of mcutrain: console UART, counters, stack measurement, exit.
 *
 * Every board package in firmware/boards/<name>/ implements this header. The board's start-up
 * code enables the FPU, initialises .data/.bss/TLS, paints the stack, calls mt_board_init() and
 * then main(); main's return value becomes the exit status (see mt_board_exit()).
 *
 * The C library is picolibc on every board: printf()/puts() write to the board UART through
 * stdout, exit(n) ends up in mt_board_exit(n).
 *
 * Units:
 *  - sizes are bytes;
 *  - timeouts are microseconds of *board time*, measured with mt_board_cycles() and
 *    mt_board_cpu_hz(). Under `qemu -icount shift=0` board time is virtual time (1 ns per
 *    executed instruction), which runs slower than wall-clock time on the host;
 *  - cycles are ticks of the core clock (MT_BOARD_CPU_HZ); instructions are retired instructions.
 */
#ifndef MT_BOARD_H
#define MT_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Exit status used by the fault handlers (HardFault, RISC-V traps, unexpected interrupts). */
#define MT_BOARD_EXIT_FAULT 250

/** Value of a byte-wide timeout meaning "wait for ever". */
#define MT_BOARD_WAIT_FOREVER UINT32_MAX

/** Name of the board package, e.g. "mps2-an386". */
const char *mt_board_name(void);

/**
 * Initialise the console UART and the cycle counter. Start-up calls it before main();
 * calling it again is harmless.
 */
void mt_board_init(void);

/** Write one byte to the console UART (blocking, no newline translation). */
void mt_board_putc(char c);

/** Write @p len bytes to the console UART (blocking). */
void mt_board_write(const void *buf, size_t len);

/** Write a NUL-terminated string (no newline appended). */
void mt_board_puts(const char *s);

/** Write an unsigned integer in decimal (printf-free, usable from fault handlers). */
void mt_board_put_u64(uint64_t v);

/** Write a 32-bit value as "0x" followed by 8 hex digits. */
void mt_board_put_hex32(uint32_t v);

/**
 * Read one byte from the console UART.
 * @param timeout_us  microseconds of board time to wait; 0 polls once;
 *                    MT_BOARD_WAIT_FOREVER blocks.
 * @return the byte (0..255), or -1 on timeout.
 */
int mt_board_getc_timeout(uint32_t timeout_us);

/**
 * Read up to @p len bytes; stops early when no byte arrives within @p timeout_us
 * (an inter-byte timeout, board time).
 * @return the number of bytes stored in @p buf.
 */
size_t mt_board_read(void *buf, size_t len, uint32_t timeout_us);

/** Core clock frequency in Hz that mt_board_cycles() counts. */
uint32_t mt_board_cpu_hz(void);

/**
 * Core clock cycles since mt_board_init() (64 bit, monotonic).
 * Cortex-M: SysTick at the core clock, extended to 64 bit by its wrap interrupt.
 * RISC-V: the mcycle CSR. Under QEMU these follow virtual time, not a cycle model.
 */
uint64_t mt_board_cycles(void);

/**
 * Retired instructions since reset (64 bit, monotonic).
 * RISC-V: the minstret CSR; exact under `qemu -icount shift=0`.
 * Cortex-M: no such counter exists; under `-icount shift=0` every instruction takes 1 ns of
 * virtual time, so the count is derived from SysTick as cycles * 1e9 / MT_BOARD_CPU_HZ,
 * exact to one SysTick period (mt_board_instret_resolution() instructions). On real
 * Cortex-M hardware (no -icount) the value is core time in ns, not instructions.
 */
uint64_t mt_board_instret(void);

/** Granularity of mt_board_instret() in instructions (1 when exact). */
uint32_t mt_board_instret_resolution(void);

/** Size of the stack region reserved by the linker script, in bytes. */
size_t mt_board_stack_size(void);

/**
 * Peak stack use since reset, in bytes, measured from the start-up paint pattern
 * (the deepest word that no longer holds the pattern). Returns mt_board_stack_size()
 * when the whole stack was used, i.e. it has probably overflowed.
 */
size_t mt_board_stack_used(void);

/**
 * End the program with exit status @p code (0..255). Flushes the UART first.
 * QEMU boards: the status becomes QEMU's own exit status (semihosting SYS_EXIT_EXTENDED on
 * Arm, the SiFive test device on RISC-V). Real boards: prints "[mt_board] exit <code>" and
 * halts (semihosting only when a debugger is attached).
 */
__attribute__((noreturn)) void mt_board_exit(int code);

#ifdef __cplusplus
}
#endif

#endif /* MT_BOARD_H */
