/**
 * @file shim.c
 * @brief ctypes entry points into firmware/link for tests/test_protocol.py (host build, no sanitizer).
 */
#include <string.h>

#include "mt_link.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
} sink_t;

static void sink_putc(void *ctx, uint8_t b)
{
    sink_t *s = (sink_t *)ctx;
    if (s->n < s->cap)
        s->p[s->n] = b;
    s->n++;
}

static float frame_buf[MT_LINK_MAX_FRAME / 4];

/** Encode one frame as the device does; returns its wire size (bytes past out_cap are dropped). */
size_t shim_encode(uint8_t type, uint8_t flags, uint32_t seq, const uint8_t *payload, size_t len,
                   uint8_t *out, size_t out_cap)
{
    mt_link_t l;
    sink_t s = {out, 0, out_cap};
    if (mt_link_init(&l, (uint8_t *)frame_buf, sizeof frame_buf, sink_putc, NULL, &s) != 0)
        return 0;
    if (mt_link_send(&l, type, flags, seq, payload, len) == 0)
        return 0;
    return s.n;
}

/**
 * Feed wire bytes to a fresh receiver with a cap-byte buffer and record every event in out:
 * i32 code, then for a frame: u8 version, u8 type, u8 flags, u8 0, u32 seq, u32 len, payload.
 * Returns the bytes written, or -1 when out is too small.
 */
long shim_parse(const uint8_t *wire, size_t n, size_t cap, uint8_t *out, size_t out_cap)
{
    mt_link_t l;
    sink_t s = {NULL, 0, 0};
    size_t i, pos = 0;
    if (mt_link_init(&l, (uint8_t *)frame_buf, cap, sink_putc, NULL, &s) != 0)
        return -2;
    for (i = 0; i < n; i++) {
        const int32_t r = mt_link_feed(&l, wire[i]);
        if (r == 0)
            continue;
        if (pos + 4 > out_cap)
            return -1;
        memcpy(out + pos, &r, 4);
        pos += 4;
        if (r == MT_LINK_FRAME) {
            const mt_link_frame_t *f = mt_link_last_frame(&l);
            const uint32_t len = (uint32_t)f->len;
            if (pos + 12 + len > out_cap)
                return -1;
            out[pos] = f->version;
            out[pos + 1] = f->type;
            out[pos + 2] = f->flags;
            out[pos + 3] = 0;
            memcpy(out + pos + 4, &f->seq, 4);
            memcpy(out + pos + 8, &len, 4);
            memcpy(out + pos + 12, f->payload, len);
            pos += 12 + len;
        }
    }
    return (long)pos;
}

/**
 * Parse, check and decode a SAMPLE payload the way the service does for a model with x_numel inputs
 * and t_numel targets (mask: t_numel floats). Returns 0 or -MT_LINK_ERR_* (detail in *detail).
 */
int shim_decode_sample(const uint8_t *p, size_t len, uint32_t x_numel, uint32_t t_numel, float *x, float *t,
                       float *m, uint32_t *detail, uint32_t *sample_id)
{
    mt_link_sample_t s;
    int r = mt_link_parse_sample(p, len, &s);
    if (r < 0)
        return r;
    if ((r = mt_link_check_block(&s.input, x_numel, detail)) < 0)
        return r;
    if ((r = mt_link_check_block(&s.target, t_numel, detail)) < 0)
        return r;
    if ((r = mt_link_check_block(&s.mask, t_numel, detail)) < 0)
        return r;
    mt_link_decode_block(&s.input, MT_ROLE_INPUT, x, x_numel);
    mt_link_decode_block(&s.target, MT_ROLE_TARGET, t, t_numel);
    mt_link_decode_block(&s.mask, MT_ROLE_MASK, m, t_numel);
    *sample_id = s.sample_id;
    return 0;
}

uint32_t shim_crc32(const uint8_t *p, size_t n)
{
    return mt_link_crc32(0, p, n);
}
