/*
 * The instruction counter only moves forward: reads mt_board_instret() back to back across many counter
 * wraps (build with a short SysTick period, -DMT_CORTEXM_SYSTICK_RELOAD=0x3FF, for a wrap every 1,024
 * cycles) and exits with the number of readings below their predecessor (0 passes; capped at 200).
 *   -DCOUNTER_READS=<n>  readings
 */
#include <stdint.h>
#include <stdio.h>

#include "mt_board.h"

#ifndef COUNTER_READS
#define COUNTER_READS 500000
#endif

int main(void)
{
    uint32_t backwards = 0u;
    uint64_t last = mt_board_instret();
    const uint64_t first = last;
    for (uint32_t i = 0; i < COUNTER_READS; ++i) {
        const uint64_t now = mt_board_instret();
        if (now < last) {
            if (backwards < 5u) {
                printf("reading %lu: %llu after %llu\n", (unsigned long)i, (unsigned long long)now,
                       (unsigned long long)last);
            }
            ++backwards;
        }
        last = now;
    }
    printf("counter reads=%lu span=%llu backwards=%lu\n", (unsigned long)COUNTER_READS,
           (unsigned long long)(last - first), (unsigned long)backwards);
    return backwards < 200u ? (int)backwards : 200;
}
