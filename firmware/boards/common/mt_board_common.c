/**
 * @file mt_board_common.c
 * @brief Portable part of the board support: C start-up, stdio over the UART, helpers.
 */
#include <picolibc.h> /* defines PICOLIBC_TLS, which picotls.h needs */
#include <picotls.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mt_board.h"
#include "mt_board_port.h"

extern int main(void);
extern void __libc_init_array(void);

static int g_initialised;

/* ---- start-up ------------------------------------------------------------------------------ */

/* Fill the stack below the caller's frame with MT_STACK_PAINT (volatile: no memset call here). */
static void __attribute__((noinline)) paint_stack(void)
{
    volatile uint32_t *p = __stack_limit;
    char probe;
    /* Keep a margin below this frame: the loop runs on the stack it paints. */
    volatile uint32_t *end = (volatile uint32_t *)(((uintptr_t)&probe - 256u) & ~(uintptr_t)3u);
    while (p < end) {
        *p++ = MT_STACK_PAINT;
    }
}

void mt_board_c_start(void)
{
    /* .data from its load image, .bss to zero; then TLS (.tdata copy, .tbss zero) for picolibc. */
    const uint32_t *src = __data_source;
    for (uint32_t *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0u;
    }
    _init_tls(__tls_base);
    _set_tls(__tls_base);
    paint_stack();
    __libc_init_array();
    mt_board_init();
    exit(main());
}

void mt_board_init(void)
{
    if (g_initialised) {
        return;
    }
    g_initialised = 1;
    mt_port_uart_init();
    mt_port_counter_init();
}

const char *mt_board_name(void)
{
    return MT_BOARD_NAME;
}

/* ---- console ------------------------------------------------------------------------------- */

void mt_board_putc(char c)
{
    mt_port_uart_putc((uint8_t)c);
}

void mt_board_write(const void *buf, size_t len)
{
    const uint8_t *p = (const uint8_t *)buf;
    for (size_t i = 0; i < len; ++i) {
        mt_port_uart_putc(p[i]);
    }
}

void mt_board_puts(const char *s)
{
    while (*s != '\0') {
        mt_port_uart_putc((uint8_t)*s++);
    }
}

void mt_board_put_u64(uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    while (n > 0u) {
        mt_port_uart_putc((uint8_t)digits[--n]);
    }
}

void mt_board_put_hex32(uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    mt_board_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        mt_port_uart_putc((uint8_t)hex[(v >> shift) & 0xFu]);
    }
}

int mt_board_getc_timeout(uint32_t timeout_us)
{
    int c = mt_port_uart_getc_nb();
    if (c >= 0 || timeout_us == 0u) {
        return c;
    }
    const uint64_t start = mt_port_cycles();
    const uint64_t limit = (uint64_t)timeout_us * (MT_BOARD_CPU_HZ / 1000000u);
    while (timeout_us == MT_BOARD_WAIT_FOREVER || mt_port_cycles() - start < limit) {
        c = mt_port_uart_getc_nb();
        if (c >= 0) {
            return c;
        }
    }
    return -1;
}

size_t mt_board_read(void *buf, size_t len, uint32_t timeout_us)
{
    uint8_t *p = (uint8_t *)buf;
    size_t n = 0;
    while (n < len) {
        const int c = mt_board_getc_timeout(timeout_us);
        if (c < 0) {
            break;
        }
        p[n++] = (uint8_t)c;
    }
    return n;
}

/* ---- counters, stack, exit ------------------------------------------------------------------ */

uint32_t mt_board_cpu_hz(void)
{
    return MT_BOARD_CPU_HZ;
}

uint64_t mt_board_cycles(void)
{
    return mt_port_cycles();
}

uint64_t mt_board_instret(void)
{
    return mt_port_instret();
}

uint32_t mt_board_instret_resolution(void)
{
    return mt_port_instret_resolution();
}

size_t mt_board_stack_size(void)
{
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

size_t mt_board_stack_used(void)
{
    const volatile uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == MT_STACK_PAINT) {
        ++p;
    }
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

void mt_board_exit(int code)
{
    fflush(stdout);
    mt_port_uart_flush();
    mt_port_exit(code);
}

/* picolibc: exit() -> _exit() */
void _exit(int code)
{
    mt_board_exit(code);
}

/* ---- picolibc stdio on the UART -------------------------------------------------------------- */

static int stdio_put(char c, FILE *f)
{
    (void)f;
    mt_port_uart_putc((uint8_t)c);
    return (unsigned char)c;
}

static int stdio_get(FILE *f)
{
    (void)f;
    const int c = mt_board_getc_timeout(MT_BOARD_WAIT_FOREVER);
    return c < 0 ? EOF : c;
}

static FILE g_stdio = FDEV_SETUP_STREAM(stdio_put, stdio_get, NULL, _FDEV_SETUP_RW);
FILE *const stdin = &g_stdio;
FILE *const stdout = &g_stdio;
FILE *const stderr = &g_stdio;
