/**
 * @file mt_store.h
 * @brief Persisted training state in two alternating slots (docs/protocol.md, "Persistence").
 *
 * A storage device (flash, or a semihosting file standing in for it in QEMU) holds two slots, each
 * a 48-byte header and the payload (the application's training state, raw bytes):
 *
 * | offset | field |
 * |---|---|
 * | 0 | u32 magic MT_STORE_MAGIC ("MTCK") |
 * | 4 | u16 format (1), u16 header bytes (48) |
 * | 8 | u32 generation (1, 2, ...: the newest valid slot wins) |
 * | 12 | u32 step (training updates applied when saved) |
 * | 16 | u32 payload bytes |
 * | 20 | u32 CRC-32 of the payload |
 * | 24 | 20 bytes: the model hash's first 20 characters |
 * | 44 | u32 CRC-32 of bytes 0..43 |
 *
 * Slot k starts at k * (48 + payload bytes). A save writes the payload, then the header, into the
 * slot that does not hold the newest valid record, so a write cut short anywhere leaves that record
 * intact: the torn slot fails its CRCs and the older one is loaded. Integers are little-endian; the
 * payload is whatever the application saves (native float32 on every supported CPU).
 */
#ifndef MT_STORE_H
#define MT_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MT_STORE_MAGIC        0x4B43544Du /* "MTCK" in little-endian */
#define MT_STORE_FORMAT       1u
#define MT_STORE_HEADER_BYTES 48u
#define MT_STORE_HASH_CHARS   20u

/** Byte access to the storage; both return 0 on success, a negative value on any failure (a short
 *  read of a file that ends early is a failure). */
typedef struct {
    void *ctx;
    int (*read)(void *ctx, uint32_t offset, void *buf, uint32_t n);
    int (*write)(void *ctx, uint32_t offset, const void *buf, uint32_t n);
} mt_store_io_t;

/** State of the two slots. Initialise with mt_store_load(). */
typedef struct {
    const mt_store_io_t *io;
    const char *model_hash;
    uint32_t payload_bytes;
    uint32_t generation; /**< of the newest valid record, 0: none */
    int8_t newest;       /**< slot of the newest valid record, -1: none */
    uint8_t bad;         /**< bit k: slot k holds a record that failed a check (torn, damaged, other model) */
} mt_store_t;

/**
 * Check both slots and load the newest valid record's payload into @p dst (@p payload_bytes).
 * @p dst is also the work buffer: on a return of -1 its contents are undefined.
 * @return the slot loaded (0 or 1) with *step set, or -1 when no slot holds a valid record of
 *         this model and size (an empty storage, or both slots bad: see s->bad).
 */
int mt_store_load(mt_store_t *s, const mt_store_io_t *io, const char *model_hash, uint32_t payload_bytes,
                  uint8_t *dst, uint32_t *step);

/**
 * Save @p payload (s->payload_bytes) with @p step into the slot not holding the newest record.
 * @return the slot written (0 or 1), or the negative value of the failing write.
 */
int mt_store_save(mt_store_t *s, const uint8_t *payload, uint32_t step);

#ifdef __cplusplus
}
#endif
#endif /* MT_STORE_H */
