/**
 * @file mt_link.c
 * @brief Framing of the mcutrain link: CRC-32, the byte-at-a-time COBS receiver, the streaming sender.
 */
#include "mt_link.h"

#include "mt_link_le.h"

/* Receiver states. */
enum { RX_START = 0, RX_BODY = 1, RX_DISCARD = 2 };

/* CRC-32 (reflected polynomial 0xEDB88320) with a 16-entry table: 64 bytes of flash, 2 steps a byte. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t mt_link_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return ~crc;
}

static void rx_restart(mt_link_t *l)
{
    l->len = 0;
    l->code = 0xFF; /* no implied zero before the first block */
    l->left = 0;
    l->state = RX_START;
}

int mt_link_init(mt_link_t *l, uint8_t *buf, size_t cap, mt_link_putc_fn putc, mt_link_flush_fn flush,
                 void *io_ctx)
{
    if (l == NULL || buf == NULL || putc == NULL || cap < MT_LINK_MIN_FRAME || ((uintptr_t)buf & 3u) != 0)
        return -1;
    memset(l, 0, sizeof *l);
    l->buf = buf;
    l->cap = cap > MT_LINK_MAX_FRAME ? MT_LINK_MAX_FRAME : cap;
    l->putc = putc;
    l->flush = flush;
    l->io_ctx = io_ctx;
    l->last_sample_id = 0xFFFFFFFFu;
    rx_restart(l);
    return 0;
}

/* End of a frame (a delimiter): classify what was received. */
static int rx_finish(mt_link_t *l)
{
    uint32_t crc;
    size_t body;
    if (l->state == RX_START)
        return MT_LINK_NEED_MORE; /* empty frame: 0x00 0x00 */
    if (l->state == RX_DISCARD) {
        l->count.bad_frames++;
        return -MT_LINK_ERR_OVERSIZE;
    }
    if (l->left != 0) {
        l->count.bad_frames++;
        return -MT_LINK_ERR_FRAMING;
    }
    if (l->len < MT_LINK_OVERHEAD) {
        l->count.bad_frames++;
        return -MT_LINK_ERR_SHORT;
    }
    body = l->len - MT_LINK_CRC_BYTES;
    crc = mt_link_crc32(0, l->buf, body);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* coverage-guided fuzzers cannot forge CRCs */
    if (crc != mt_le_u32(l->buf + body)) {
        l->count.crc_errors++;
        return -MT_LINK_ERR_CRC;
    }
#else
    (void)crc;
#endif
    l->frame.version = l->buf[0];
    l->frame.type = l->buf[1];
    l->frame.flags = l->buf[2];
    l->frame.seq = mt_le_u32(l->buf + 4);
    l->frame.payload = l->buf + MT_LINK_HEADER_BYTES;
    l->frame.len = body - MT_LINK_HEADER_BYTES;
    l->count.frames++;
    return MT_LINK_FRAME;
}

static void rx_put(mt_link_t *l, uint8_t b)
{
    if (l->len >= l->cap) {
        l->state = RX_DISCARD;
        return;
    }
    l->buf[l->len++] = b;
}

int mt_link_feed(mt_link_t *l, uint8_t b)
{
    if (b == 0) {
        const int r = rx_finish(l);
        rx_restart(l);
        return r;
    }
    if (l->state == RX_DISCARD)
        return MT_LINK_NEED_MORE;
    if (l->left == 0) { /* a code byte: starts a block */
        if (l->code != 0xFF)
            rx_put(l, 0); /* the zero that ended the previous block */
        if (l->state == RX_DISCARD)
            return MT_LINK_NEED_MORE;
        l->state = RX_BODY;
        l->code = b;
        l->left = (uint8_t)(b - 1u);
        return MT_LINK_NEED_MORE;
    }
    rx_put(l, b);
    l->left--;
    return MT_LINK_NEED_MORE;
}

const mt_link_frame_t *mt_link_last_frame(const mt_link_t *l)
{
    return &l->frame;
}

/* The frame to send as three segments (header, payload, CRC) read through one index. */
typedef struct {
    const uint8_t *seg[3];
    size_t n[3];
} tx_src_t;

static uint8_t tx_at(const tx_src_t *s, size_t i)
{
    if (i < s->n[0])
        return s->seg[0][i];
    i -= s->n[0];
    if (i < s->n[1])
        return s->seg[1][i];
    return s->seg[2][i - s->n[1]];
}

size_t mt_link_send(mt_link_t *l, uint8_t type, uint8_t flags, uint32_t seq, const uint8_t *payload,
                    size_t len)
{
    uint8_t hdr[MT_LINK_HEADER_BYTES];
    uint8_t crc_le[MT_LINK_CRC_BYTES];
    tx_src_t src;
    size_t total, i = 0, wire = 0;
    uint32_t crc;
    if (len > l->cap - MT_LINK_OVERHEAD || (len > 0 && payload == NULL))
        return 0;
    hdr[0] = (uint8_t)MT_LINK_VERSION;
    hdr[1] = type;
    hdr[2] = flags;
    hdr[3] = 0;
    mt_put_u32(hdr + 4, seq);
    crc = mt_link_crc32(0, hdr, sizeof hdr);
    crc = mt_link_crc32(crc, payload, len);
    mt_put_u32(crc_le, crc);
    src.seg[0] = hdr;
    src.n[0] = sizeof hdr;
    src.seg[1] = payload;
    src.n[1] = len;
    src.seg[2] = crc_le;
    src.n[2] = sizeof crc_le;
    total = sizeof hdr + len + sizeof crc_le;

    l->putc(l->io_ctx, 0); /* leading delimiter: ends any noise the receiver has half-read */
    wire++;
    for (;;) {
        size_t run = 0, k;
        while (run < 254u && i + run < total && tx_at(&src, i + run) != 0)
            run++;
        l->putc(l->io_ctx, (uint8_t)(run + 1u));
        for (k = 0; k < run; k++)
            l->putc(l->io_ctx, tx_at(&src, i + k));
        wire += run + 1u;
        i += run;
        if (run == 254u)
            continue; /* a full block implies no zero */
        if (i >= total)
            break;
        i++; /* the zero that ended this block */
    }
    l->putc(l->io_ctx, 0);
    wire++;
    if (l->flush)
        l->flush(l->io_ctx);
    return wire;
}
