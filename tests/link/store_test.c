/**
 * @file store_test.c
 * @brief mt_store against a RAM "flash" that can lose power in the middle of a write.
 *
 * Every cut point of a save (0 .. header + payload bytes written) must leave the storage loading either
 * the new record (a complete save) or the previous one, never a mix; a damaged newest slot falls back to
 * the older one; both slots damaged, an empty storage or another model's records load nothing. Exit
 * status 0 when every check holds; the first failure is printed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_store.h"

#define PAYLOAD 40u
#define HASH    "0123456789abcdef0123456789abcdef"

static uint8_t flash[2u * (MT_STORE_HEADER_BYTES + PAYLOAD)];
static uint32_t flash_len; /* bytes of the "file" */
static long budget = -1;   /* bytes the next writes may still store before power is lost; -1: no limit */

static int ram_read(void *ctx, uint32_t offset, void *buf, uint32_t n)
{
    (void)ctx;
    if (offset + n > flash_len)
        return -1;
    memcpy(buf, flash + offset, n);
    return 0;
}

static int ram_write(void *ctx, uint32_t offset, const void *buf, uint32_t n)
{
    uint32_t i;
    (void)ctx;
    for (i = 0; i < n; i++) {
        if (budget == 0)
            return -1; /* power lost: nothing more reaches the flash */
        if (budget > 0)
            budget--;
        flash[offset + i] = ((const uint8_t *)buf)[i];
        if (offset + i + 1u > flash_len)
            flash_len = offset + i + 1u;
    }
    return 0;
}

static const mt_store_io_t io = {NULL, ram_read, ram_write};

static void fail(const char *what, long a, long b)
{
    printf("FAIL: %s (%ld, %ld)\n", what, a, b);
    exit(1);
}

static void payload_of(uint32_t step, uint8_t *p)
{
    uint32_t i;
    for (i = 0; i < PAYLOAD; i++)
        p[i] = (uint8_t)(step * 31u + i);
}

/* Load into a fresh mt_store_t; returns the step loaded (checking its payload) or -1. */
static long load(mt_store_t *s, const char *hash)
{
    uint8_t got[PAYLOAD], want[PAYLOAD];
    uint32_t step = 0;
    if (mt_store_load(s, &io, hash, PAYLOAD, got, &step) < 0)
        return -1;
    payload_of(step, want);
    if (memcmp(got, want, PAYLOAD) != 0)
        fail("payload differs from the one saved with its step", (long)step, 0);
    return (long)step;
}

static void save(mt_store_t *s, uint32_t step)
{
    uint8_t p[PAYLOAD];
    payload_of(step, p);
    (void)mt_store_save(s, p, step);
}

int main(void)
{
    mt_store_t s;
    uint8_t saved[sizeof flash];
    uint32_t saved_len;
    long cut, step;
    const long whole = (long)(MT_STORE_HEADER_BYTES + PAYLOAD);

    if (load(&s, HASH) != -1 || s.bad != 0)
        fail("an empty storage loads nothing and is not damaged", s.bad, 0);
    save(&s, 1);
    save(&s, 2);
    if (load(&s, HASH) != 2 || s.newest != 1 || s.generation != 2)
        fail("two saves: the second one in slot 1", s.newest, (long)s.generation);

    /* power lost after every possible number of bytes of the third save */
    memcpy(saved, flash, sizeof flash);
    saved_len = flash_len;
    for (cut = 0; cut <= whole; cut++) {
        memcpy(flash, saved, sizeof flash);
        flash_len = saved_len;
        (void)load(&s, HASH);
        budget = cut;
        save(&s, 3);
        budget = -1;
        step = load(&s, HASH);
        if (step != (cut == whole ? 3 : 2))
            fail("a save cut short after N bytes loads the previous record", cut, step);
        save(&s, 4); /* the next save never overwrites the record just loaded */
        if (load(&s, HASH) != 4)
            fail("a save after a cut", cut, 0);
        if (cut < whole && s.newest != 0)
            fail("the save after a cut goes to the torn slot", cut, s.newest);
    }

    /* a flipped byte in the newest slot (header or payload), then in both */
    memcpy(flash, saved, sizeof flash);
    flash_len = saved_len;
    for (cut = 0; cut < whole; cut++) {
        memcpy(flash, saved, sizeof flash);
        flash[(uint32_t)whole + (uint32_t)cut] ^= 0x10u;
        step = load(&s, HASH);
        if (step != 1 || s.bad != 2u)
            fail("a damaged slot 1 falls back to slot 0 and is reported", cut, step);
    }
    flash[3] ^= 0x01u;
    if (load(&s, HASH) != -1 || s.bad != 3u)
        fail("both slots damaged load nothing, both reported", s.bad, 0);
    memcpy(flash, saved, sizeof flash);
    if (load(&s, "fedcba9876543210fedcba9876543210") != -1 || s.bad != 3u)
        fail("another model's records are not loaded", s.bad, 0);
    flash_len = (uint32_t)whole + MT_STORE_HEADER_BYTES + 10u; /* a file truncated inside slot 1's payload */
    if (load(&s, HASH) != 1 || s.bad != 2u)
        fail("a truncated slot 1 falls back to slot 0, reported", s.bad, 0);
    flash_len = (uint32_t)whole + 10u; /* inside its header: as if never written */
    if (load(&s, HASH) != 1 || s.bad != 0u)
        fail("a slot 1 without a whole header is empty", s.bad, 0);
    puts("PASS");
    return 0;
}
