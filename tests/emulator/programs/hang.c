/* Never finishes: the runner must kill QEMU at its timeout. */
#include "mt_board.h"

int main(void)
{
    mt_board_puts("hanging\n");
    for (;;) {
        __asm__ volatile("" ::: "memory");
    }
}
