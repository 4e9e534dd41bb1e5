/*
 * Faults on purpose; the board must report it on the UART and exit with MT_BOARD_EXIT_FAULT.
 *   -DFAULT_KIND=1  an undefined instruction (__builtin_trap)
 *   -DFAULT_KIND=2  unbounded recursion: a stack overflow (caught by MSPLIM on Armv8-M)
 */
#include <stdint.h>

#include "mt_board.h"

#ifndef FAULT_KIND
#define FAULT_KIND 1
#endif

#if FAULT_KIND == 2
static volatile uint32_t g_depth_limit = 1u << 30; /* far deeper than any stack here */

static uint32_t __attribute__((noinline)) recurse(volatile uint32_t *prev, uint32_t depth)
{
    volatile uint32_t frame[64];
    if (depth >= g_depth_limit) {
        return depth;
    }
    frame[0] = depth + (prev != 0 ? prev[0] : 0u);
    return recurse(frame, depth + 1u) + frame[0];
}
#endif

int main(void)
{
    mt_board_puts("about to fault\n");
#if FAULT_KIND == 1
    __builtin_trap();
#else
    mt_board_put_u64(recurse(0, 0u));
#endif
    return 0;
}
