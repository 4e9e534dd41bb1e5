/**
 * @file mt_store.c
 * @brief Two alternating slots of persisted training state: headers, CRCs, newest-valid selection.
 */
#include "mt_store.h"

#include <string.h>

#include "mt_link.h"
#include "mt_link_le.h"

static uint32_t slot_offset(const mt_store_t *s, int slot)
{
    return (uint32_t)slot * (MT_STORE_HEADER_BYTES + s->payload_bytes);
}

static void make_header(const mt_store_t *s, uint8_t *h, uint32_t generation, uint32_t step, uint32_t crc)
{
    size_t n = 0;
    memset(h, 0, MT_STORE_HEADER_BYTES);
    mt_put_u32(h, MT_STORE_MAGIC);
    mt_put_u16(h + 4, (uint16_t)MT_STORE_FORMAT);
    mt_put_u16(h + 6, (uint16_t)MT_STORE_HEADER_BYTES);
    mt_put_u32(h + 8, generation);
    mt_put_u32(h + 12, step);
    mt_put_u32(h + 16, s->payload_bytes);
    mt_put_u32(h + 20, crc);
    while (n < MT_STORE_HASH_CHARS && s->model_hash[n] != '\0') {
        h[24 + n] = (uint8_t)s->model_hash[n];
        n++;
    }
    mt_put_u32(h + 44, mt_link_crc32(0, h, 44));
}

/* Header of a slot: 1 = a record of this model and size (generation, step, payload CRC filled),
 * 0 = no record (never written), -1 = a record that fails a check. */
static int read_header(const mt_store_t *s, int slot, uint32_t *generation, uint32_t *step, uint32_t *crc)
{
    uint8_t h[MT_STORE_HEADER_BYTES], want[MT_STORE_HEADER_BYTES];
    if (s->io->read(s->io->ctx, slot_offset(s, slot), h, sizeof h) < 0)
        return 0; /* the file ends before: never written */
    if (mt_le_u32(h) != MT_STORE_MAGIC)
        return mt_le_u32(h) == 0u || mt_le_u32(h) == 0xFFFFFFFFu ? 0 : -1; /* erased flash / zeros: empty */
    *generation = mt_le_u32(h + 8);
    *step = mt_le_u32(h + 12);
    *crc = mt_le_u32(h + 20);
    make_header(s, want, *generation, *step, *crc);
    return memcmp(h, want, sizeof h) == 0 && *generation != 0u ? 1 : -1;
}

/* Read a slot's payload into dst and check its CRC. */
static int read_payload(const mt_store_t *s, int slot, uint8_t *dst, uint32_t crc)
{
    if (s->io->read(s->io->ctx, slot_offset(s, slot) + MT_STORE_HEADER_BYTES, dst, s->payload_bytes) < 0)
        return 0;
    return mt_link_crc32(0, dst, s->payload_bytes) == crc;
}

int mt_store_load(mt_store_t *s, const mt_store_io_t *io, const char *model_hash, uint32_t payload_bytes,
                  uint8_t *dst, uint32_t *step)
{
    uint32_t gen[2] = {0, 0}, stp[2] = {0, 0}, crc[2] = {0, 0};
    int ok[2], order[2], i, k;
    s->io = io;
    s->model_hash = model_hash;
    s->payload_bytes = payload_bytes;
    s->generation = 0;
    s->newest = -1;
    s->bad = 0;
    for (k = 0; k < 2; k++) {
        ok[k] = read_header(s, k, &gen[k], &stp[k], &crc[k]);
        if (ok[k] < 0)
            s->bad |= (uint8_t)(1u << k);
    }
    /* newest first (serial arithmetic: generations may wrap) */
    order[0] = ok[0] == 1 && ok[1] == 1 ? (gen[1] - gen[0] < 0x80000000u ? 1 : 0) : (ok[1] == 1 ? 1 : 0);
    order[1] = 1 - order[0];
    for (i = 0; i < 2; i++) {
        k = order[i];
        if (ok[k] != 1)
            continue;
        if (read_payload(s, k, dst, crc[k])) {
            s->newest = (int8_t)k;
            s->generation = gen[k];
            *step = stp[k];
            return k;
        }
        s->bad |= (uint8_t)(1u << k); /* torn or damaged payload */
    }
    return -1;
}

int mt_store_save(mt_store_t *s, const uint8_t *payload, uint32_t step)
{
    const int slot = s->newest < 0 ? 0 : 1 - s->newest;
    const uint32_t generation = s->generation + 1u == 0u ? 1u : s->generation + 1u;
    uint8_t h[MT_STORE_HEADER_BYTES];
    int r;
    make_header(s, h, generation, step, mt_link_crc32(0, payload, s->payload_bytes));
    /* payload first, header last: until the header is complete the slot fails its checks */
    r = s->io->write(s->io->ctx, slot_offset(s, slot) + MT_STORE_HEADER_BYTES, payload, s->payload_bytes);
    if (r >= 0)
        r = s->io->write(s->io->ctx, slot_offset(s, slot), h, sizeof h);
    if (r < 0) {
        s->bad |= (uint8_t)(1u << slot);
        return r;
    }
    s->newest = (int8_t)slot;
    s->generation = generation;
    s->bad &= (uint8_t) ~(1u << slot);
    return slot;
}
