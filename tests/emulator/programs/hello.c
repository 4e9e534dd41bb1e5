/*
 * Board-support smoke test: UART output, FPU math, the instruction counter and stack
 * measurement. Built by tests/emulator/test_boards.py with
 *   -DHELLO_EXIT_CODE=<n>  the status main() returns (QEMU's exit status must equal it)
 *   -DHELLO_LOOP_N=<n>     iterations of the counted loop
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "mt_board.h"

#ifndef HELLO_EXIT_CODE
#define HELLO_EXIT_CODE 0
#endif
#ifndef HELLO_LOOP_N
#define HELLO_LOOP_N 10000
#endif

/* A loop of a known, fixed number of instructions per iteration (2: decrement, branch). */
static void __attribute__((noinline)) counted_loop(uint32_t n)
{
#if defined(__arm__)
    __asm__ volatile("1: subs %0, %0, #1\n"
                     "   bne 1b\n"
                     : "+r"(n)::"cc");
#elif defined(__riscv)
    __asm__ volatile("1: addi %0, %0, -1\n"
                     "   bnez %0, 1b\n"
                     : "+r"(n));
#else
#error "unsupported architecture"
#endif
}

/* noinline: both measurements run the very same instructions around the loop. */
static uint64_t __attribute__((noinline)) measure_loop(uint32_t n)
{
    const uint64_t t0 = mt_board_instret();
    counted_loop(n);
    return mt_board_instret() - t0;
}

/* Uses the stack so that the measured peak is clearly above the start-up depth. */
static float __attribute__((noinline)) stack_user(volatile float *scratch, int n)
{
    float buf[256];
    for (int i = 0; i < 256; ++i) {
        buf[i] = scratch[i % n] * (float)i;
    }
    float s = 0.0f;
    for (int i = 0; i < 256; ++i) {
        s += buf[(i * 7) % 256];
    }
    return s;
}

int main(void)
{
    printf("hello from %s\n", mt_board_name());

    /* Float math through the FPU and picolibc's libm. volatile: computed at run time. */
    volatile float x = 0.5f;
    const float e = expf(x);
    const float t = tanhf(x);
    const float r = sqrtf(2.0f * x + 1.0f);
    const float p = powf(x, 3.0f);
    const int ok = fabsf(e - 1.6487213f) < 1e-5f && fabsf(t - 0.46211716f) < 1e-6f &&
                   fabsf(r - 1.4142135f) < 1e-6f && fabsf(p - 0.125f) < 1e-7f;
    printf("math: expf=%.6f tanhf=%.6f sqrtf=%.6f powf=%.6f %s\n", (double)e, (double)t, (double)r, (double)p,
           ok ? "ok" : "WRONG");

    volatile float scratch[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    printf("stack_user=%.1f\n", (double)stack_user(scratch, 4));

    const uint64_t i1 = measure_loop(HELLO_LOOP_N);
    const uint64_t i2 = measure_loop(2u * HELLO_LOOP_N);
    printf("loop n=%lu instret=%llu\n", (unsigned long)HELLO_LOOP_N, (unsigned long long)i1);
    printf("loop n=%lu instret=%llu\n", (unsigned long)(2u * HELLO_LOOP_N), (unsigned long long)i2);
    printf("instret_resolution=%lu\n", (unsigned long)mt_board_instret_resolution());
    printf("stack used=%lu of %lu\n", (unsigned long)mt_board_stack_used(),
           (unsigned long)mt_board_stack_size());
    printf("exit %d\n", HELLO_EXIT_CODE);
    return ok ? HELLO_EXIT_CODE : 99;
}
