/* A static buffer of BIG_BYTES bytes (a stand-in for a training arena) in .bss. */
#include <stdint.h>

#include "mt_board.h"

#ifndef BIG_BYTES
#error "define BIG_BYTES"
#endif

static uint8_t g_big[BIG_BYTES] __attribute__((aligned(16)));

int main(void)
{
    volatile uint8_t *p = g_big;
    p[0] = 1u;
    p[BIG_BYTES - 1] = 2u;
    return p[0] + p[BIG_BYTES - 1] == 3 ? 0 : 1;
}
