/* Private integer arithmetic of the int8 kernels: TFLite's requantization (gemmlowp fixed point, the
 * "double rounding" MultiplyByQuantizedMultiplier), bit tools, and the fixed-point exp and reciprocal of
 * the softmax. Each helper mirrors one function of
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

/* ---- gemmlowp fixed-point functions of the int8 softmax ------------------------------------------ */

/* exp(a) for a Q0.31 a in [-1/4, 0): Taylor expansion around -1/8 (gemmlowp). */
static inline int32_t mt_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = mt_srdhm(x, x);
    const int32_t x3 = mt_srdhm(x2, x);
    const int32_t x4 = mt_srdhm(x2, x2);
    const int32_t x4_over_4 = mt_rdbpot(x4, 2);
    const int32_t poly = mt_rdbpot(mt_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + mt_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values for a Q5.26 a <= 0, as a Q0.31 value. */
static inline int32_t mt_exp_on_negative_values_q5_26(int32_t a)
{
    /* exp(-2^k) for k = -2 .. 4 in Q0.31 */
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = 1 << 24;
    const int32_t a_mod = (int32_t)((uint32_t)a & (uint32_t)(one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod - a;
    int32_t result = mt_exp_quarter(mt_sat_shl32(a_mod, 5));
    for (int32_t k = 0; k < 7; ++k) {
        if ((uint32_t)remainder & (1u << (24 + k))) {
            result = mt_srdhm(result, barrel[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a Q0.31 a in [0, 1), Q0.31. */
static inline int32_t mt_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = (int32_t)(((int64_t)a + INT32_MAX + 1) / 2); /* RoundingHalfSum(a, 1) */
    int32_t x = 1515870810 + mt_srdhm(half_denominator, -1010580540); /* 48/17 - 32/17 * d, Q2.29 */
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - mt_srdhm(half_denominator, x);
        x = x + mt_sat_shl32(mt_srdhm(x, one_minus), 2);
    }
    return mt_sat_shl32(x, 1);
}

#endif /* MT_S8_INTERNAL_H */
