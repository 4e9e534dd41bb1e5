/**
 * @file mt_semihost.c
 * @brief Arm semihosting file calls (SYS_OPEN, SYS_CLOSE, SYS_SEEK, SYS_READ, SYS_WRITE).
 */
#include "mt_semihost.h"

#include <stddef.h>

#if !defined(__arm__)
#error "mt_semihost.c uses Arm semihosting (bkpt 0xab): compile it for Cortex-M only"
#endif

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_SEEK = 0x0A };

static int32_t semihost_call(uint32_t op, const uint32_t *args)
{
    register uint32_t r0 __asm__("r0") = op;
    register const uint32_t *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

int mt_semihost_open(const char *name, int mode)
{
    size_t n = 0;
    uint32_t args[3];
    int32_t h;
    while (name[n] != '\0')
        n++;
    args[0] = (uint32_t)(uintptr_t)name;
    args[1] = (uint32_t)mode;
    args[2] = (uint32_t)n;
    h = semihost_call(SYS_OPEN, args);
    return h < 0 ? -1 : (int)h;
}

int mt_semihost_close(int handle)
{
    const uint32_t args[1] = {(uint32_t)handle};
    return semihost_call(SYS_CLOSE, args) == 0 ? 0 : -1;
}

int mt_semihost_seek(int handle, uint32_t offset)
{
    const uint32_t args[2] = {(uint32_t)handle, offset};
    return semihost_call(SYS_SEEK, args) == 0 ? 0 : -1;
}

/* SYS_READ and SYS_WRITE return the number of bytes *not* transferred. */
int mt_semihost_read(int handle, void *buf, uint32_t n)
{
    const uint32_t args[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, n};
    return semihost_call(SYS_READ, args) == 0 ? 0 : -1;
}

int mt_semihost_write(int handle, const void *buf, uint32_t n)
{
    const uint32_t args[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, n};
    return semihost_call(SYS_WRITE, args) == 0 ? 0 : -1;
}
