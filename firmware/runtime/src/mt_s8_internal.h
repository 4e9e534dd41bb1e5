/* Private integer arithmetic of the int8 kernels: TFLite's requantization (gemmlowp fixed point, the
 * "double rounding" MultiplyByQuantizedMultiplier) and bit tools. Each helper mirrors one function of
 * mcutrain/core/int8_arith.py. Right shifts of negative values go through mt_asr32 (a floor), so that
 * nothing depends on the implementation-defined >> of negative signed integers. */
#ifndef MT_S8_INTERNAL_H
#define MT_S8_INTERNAL_H

#include <stdint.h>

#include "mt_internal.h"
#include "mt_kernels_s8.h"

/* floor(x / 2^e) for 0 <= e <= 31. */
static inline int32_t mt_asr32(int32_t x, int32_t e)
{
    return x >= 0 ? (x >> e) : ~(~x >> e);
}

/* x << e as an int32 register holds it (two's-complement wrap), 0 <= e <= 31. */
static inline int32_t mt_shl32(int32_t x, int32_t e)
{
    return (int32_t)((uint32_t)x << e);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), the nudge of ARM's VQRDMULH, and
 * INT32_MIN * INT32_MIN saturated. */
static inline int32_t mt_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t v = ab + (ab >= 0 ? (int64_t)(1 << 30) : (int64_t)(1 - (1 << 30)));
    return (int32_t)(v >= 0 ? (v >> 31) : -((-v) >> 31)); /* v / 2^31, truncating as C++ division */
}

/* gemmlowp RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero, 0 <= e <= 31. */
static inline int32_t mt_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((1u << e) - 1u);
    const int32_t remainder = (int32_t)((uint32_t)x & (uint32_t)mask);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return mt_asr32(x, e) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier(int32 x, mult, shift), double rounding. */
static inline int32_t mt_mbqm(int32_t x, int32_t mult, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return mt_rdbpot(mt_srdhm(mt_shl32(x, left), mult), right);
}

static inline int8_t mt_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0: x << e, saturated to int32. */
static inline int32_t mt_sat_shl32(int32_t x, int32_t e)
{
    const int32_t threshold = (int32_t)((1u << (31 - e)) - 1u);
    return x > threshold ? INT32_MAX : (x < -threshold ? INT32_MIN : mt_shl32(x, e));
}

/* Number of significant bits of v (0 for 0). */
static inline int32_t mt_bitlen64(uint64_t v)
{
    int32_t n = 0;
    if (v >> 32) {
        v >>= 32;
        n += 32;
    }
    if (v >> 16) {
        v >>= 16;
        n += 16;
    }
    if (v >> 8) {
        v >>= 8;
        n += 8;
    }
    if (v >> 4) {
        v >>= 4;
        n += 4;
    }
    if (v >> 2) {
        v >>= 2;
        n += 2;
    }
    if (v >> 1) {
        v >>= 1;
        n += 1;
    }
    return n + (int32_t)v;
}

/* Leading zero bits of a 32-bit value (32 for 0). */
static inline int32_t mt_clz32(uint32_t v)
{
    return 32 - mt_bitlen64((uint64_t)v);
}

#endif /* MT_S8_INTERNAL_H */
