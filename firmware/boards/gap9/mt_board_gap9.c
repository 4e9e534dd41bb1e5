/* The board API (mt_board.h) on GAP9 over PMSIS and the GAP SDK's C library: output through printf (the
 * SDK routes stdout to the UART or the debug bridge), counters from the fabric controller's performance
 * counters, exit through pmsis_exit. Built only with the GAP SDK (Makefile.gap9); see docs/gap9.md.
 * No input: the serial-link firmware is not ported to GAP9 yet (mt_board_getc_timeout() returns -1).
 * The stack is not painted: mt_board_stack_used() returns 0. */
#include <stdio.h>

#include "mt_board.h"
#include "pmsis.h"

static uint64_t cycles_high, instr_high;
static uint32_t cycles_last, instr_last;

const char *mt_board_name(void)
{
    return "gap9";
}

void mt_board_init(void)
{
    pi_perf_conf((1 << PI_PERF_CYCLES) | (1 << PI_PERF_INSTR));
    pi_perf_reset();
    pi_perf_start();
}

/* The GAP SDK's start-up runs constructors before main(); our boards' start-up calls mt_board_init(). */
__attribute__((constructor)) static void board_start(void)
{
    mt_board_init();
}

void mt_board_putc(char c)
{
    putchar(c);
}

void mt_board_write(const void *buf, size_t len)
{
    const char *p = (const char *)buf;
    for (size_t i = 0; i < len; ++i) {
        putchar(p[i]);
    }
}

void mt_board_puts(const char *s)
{
    fputs(s, stdout);
}

void mt_board_put_u64(uint64_t v)
{
    printf("%llu", (unsigned long long)v);
}

void mt_board_put_hex32(uint32_t v)
{
    printf("0x%08lx", (unsigned long)v);
}

int mt_board_getc_timeout(uint32_t timeout_us)
{
    (void)timeout_us;
    return -1;
}

size_t mt_board_read(void *buf, size_t len, uint32_t timeout_us)
{
    (void)buf;
    (void)len;
    (void)timeout_us;
    return 0u;
}

uint32_t mt_board_cpu_hz(void)
{
    return pi_freq_get(PI_FREQ_DOMAIN_FC);
}

/* The 32-bit counters extended to 64 bits (read at least once per wrap: every few seconds). */
static uint64_t extend(uint32_t now, uint32_t *last, uint64_t *high)
{
    if (now < *last) {
        *high += 1ull << 32;
    }
    *last = now;
    return *high | now;
}

uint64_t mt_board_cycles(void)
{
    return extend(pi_perf_read(PI_PERF_CYCLES), &cycles_last, &cycles_high);
}

uint64_t mt_board_instret(void)
{
    return extend(pi_perf_read(PI_PERF_INSTR), &instr_last, &instr_high);
}

uint32_t mt_board_instret_resolution(void)
{
    return 1u;
}

size_t mt_board_stack_size(void)
{
    return 0u;
}

size_t mt_board_stack_used(void)
{
    return 0u;
}

void mt_board_exit(int code)
{
    printf("[mt_board] exit %d\n", code);
    pmsis_exit(code);
    for (;;) {
    }
}
