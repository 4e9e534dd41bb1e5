/**
 * @file mt_link_le.h
 * @brief Internal: little-endian loads and stores of the link's wire format, independent of the CPU.
 */
#ifndef MT_LINK_LE_H
#define MT_LINK_LE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t mt_le_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t mt_le_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline float mt_le_f32(const uint8_t *p)
{
    const uint32_t u = mt_le_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void mt_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void mt_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void mt_put_u64(uint8_t *p, uint64_t v)
{
    mt_put_u32(p, (uint32_t)v);
    mt_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline void mt_put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    mt_put_u32(p, u);
}

#endif /* MT_LINK_LE_H */
