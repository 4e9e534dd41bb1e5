/**
 * @file mt_link_sample.c
 * @brief SAMPLE payloads: parsing, checking and on-device conversion of the blocks to float.
 *
 * Payload: u32 sample_id, u8 slot, u8 0, u16 0, then three blocks (input, target, mask), each a
 * 16-byte header (u8 enc, u8 0, u16 0, u32 count, f32 scale, f32 offset) followed by its data.
 */
#include "mt_link.h"

#include "mt_link_le.h"

/* Bytes of data of a block with encoding enc and count elements; 0 with *ok = 0 when invalid. */
static uint64_t block_bytes(uint8_t enc, uint32_t count, int *ok)
{
    *ok = 1;
    switch (enc) {
    case MT_ENC_NONE:
        *ok = count == 0;
        return 0;
    case MT_ENC_F32:
        return (uint64_t)count * 4u;
    case MT_ENC_U8:
        return count;
    case MT_ENC_I16:
        return (uint64_t)count * 2u;
    case MT_ENC_LABEL:
        *ok = count > 0;
        return 2;
    case MT_ENC_BITS:
        return ((uint64_t)count + 7u) / 8u;
    default:
        *ok = 0;
        return 0;
    }
}

static int allowed(int role, uint8_t enc)
{
    switch (role) {
    case MT_ROLE_INPUT:
        return enc == MT_ENC_NONE || enc == MT_ENC_F32 || enc == MT_ENC_U8 || enc == MT_ENC_I16;
    case MT_ROLE_TARGET:
        return enc == MT_ENC_NONE || enc == MT_ENC_F32 || enc == MT_ENC_U8 || enc == MT_ENC_I16 ||
               enc == MT_ENC_LABEL;
    default:
        return enc == MT_ENC_NONE || enc == MT_ENC_BITS || enc == MT_ENC_F32 || enc == MT_ENC_U8;
    }
}

/* Parse one block at p[*pos .. len); advances *pos. */
static int parse_block(const uint8_t *p, size_t len, size_t *pos, int role, mt_link_block_t *b)
{
    const uint8_t *h = p + *pos;
    uint64_t nbytes;
    int ok;
    if (len - *pos < MT_LINK_BLOCK_HEADER_BYTES)
        return -MT_LINK_ERR_LENGTH;
    b->enc = h[0];
    b->count = mt_le_u32(h + 4);
    b->scale = mt_le_f32(h + 8);
    b->offset = mt_le_f32(h + 12);
    if (!allowed(role, b->enc))
        return -MT_LINK_ERR_ENCODING;
    nbytes = block_bytes(b->enc, b->count, &ok);
    if (!ok)
        return -MT_LINK_ERR_ENCODING;
    *pos += MT_LINK_BLOCK_HEADER_BYTES;
    if ((uint64_t)(len - *pos) < nbytes)
        return -MT_LINK_ERR_LENGTH;
    b->data = p + *pos;
    b->nbytes = (size_t)nbytes;
    *pos += (size_t)nbytes;
    return 0;
}

int mt_link_parse_sample(const uint8_t *p, size_t len, mt_link_sample_t *s)
{
    size_t pos = MT_LINK_SAMPLE_HEADER_BYTES;
    int r;
    if (len < MT_LINK_SAMPLE_HEADER_BYTES)
        return -MT_LINK_ERR_LENGTH;
    s->sample_id = mt_le_u32(p);
    s->slot = p[4];
    r = parse_block(p, len, &pos, MT_ROLE_INPUT, &s->input);
    if (r == 0)
        r = parse_block(p, len, &pos, MT_ROLE_TARGET, &s->target);
    if (r == 0)
        r = parse_block(p, len, &pos, MT_ROLE_MASK, &s->mask);
    if (r == 0 && pos != len)
        r = -MT_LINK_ERR_LENGTH;
    return r;
}

int mt_link_check_block(const mt_link_block_t *b, uint32_t numel, uint32_t *detail)
{
    if (b->enc == MT_ENC_NONE)
        return 0;
    if (b->count != numel) {
        *detail = numel;
        return -MT_LINK_ERR_SIZE;
    }
    if (b->enc == MT_ENC_LABEL && mt_le_u16(b->data) >= numel) {
        *detail = numel;
        return -MT_LINK_ERR_RANGE;
    }
    return 0;
}

void mt_link_decode_block(const mt_link_block_t *b, int role, float *dst, uint32_t numel)
{
    const uint8_t *d = b->data;
    const float scale = b->scale, offset = b->offset;
    uint32_t i;
    switch (b->enc) {
    case MT_ENC_NONE:
        if (role == MT_ROLE_MASK)
            for (i = 0; i < numel; i++)
                dst[i] = 1.0f;
        break;
    case MT_ENC_F32:
        for (i = 0; i < numel; i++)
            dst[i] = mt_le_f32(d + 4u * i);
        break;
    case MT_ENC_U8:
        if (role == MT_ROLE_MASK) {
            for (i = 0; i < numel; i++)
                dst[i] = d[i] ? 1.0f : 0.0f;
        } else {
            for (i = 0; i < numel; i++) {
                const float t = (float)d[i] * scale;
                dst[i] = t + offset;
            }
        }
        break;
    case MT_ENC_I16:
        for (i = 0; i < numel; i++) {
            const uint16_t raw = mt_le_u16(d + 2u * i);
            const int32_t v = raw >= 0x8000u ? (int32_t)raw - 65536 : (int32_t)raw;
            const float t = (float)v * scale;
            dst[i] = t + offset;
        }
        break;
    case MT_ENC_LABEL: {
        const uint32_t label = mt_le_u16(d);
        for (i = 0; i < numel; i++)
            dst[i] = i == label ? 1.0f : 0.0f;
        break;
    }
    case MT_ENC_BITS:
        for (i = 0; i < numel; i++)
            dst[i] = ((uint32_t)d[i >> 3] >> (i & 7u)) & 1u ? 1.0f : 0.0f;
        break;
    default:
        break;
    }
}

void mt_link_decode_sample(const mt_link_sample_t *s, const mt_link_app_t *app, float *x, float *target,
                           float *mask)
{
    mt_link_decode_block(&s->input, MT_ROLE_INPUT, x, app->x_numel);
    mt_link_decode_block(&s->target, MT_ROLE_TARGET, target, app->target_numel);
    if (mask != NULL)
        mt_link_decode_block(&s->mask, MT_ROLE_MASK, mask, app->target_numel);
}
