/*
 * Serial receive path: prints "ready", then echoes every received byte upper-cased until '\n'
 * or until no byte arrives for 2 s of board time; exits with the number of bytes before '\n'.
 */
#include <stdint.h>

#include "mt_board.h"

int main(void)
{
    mt_board_puts("ready\n");
    int n = 0;
    for (;;) {
        const int c = mt_board_getc_timeout(2000000u);
        if (c < 0) {
            mt_board_puts("\ntimeout\n");
            return 200;
        }
        if (c == '\n') {
            break;
        }
        mt_board_putc((char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c));
        ++n;
    }
    mt_board_puts("\ndone\n");
    return n;
}
