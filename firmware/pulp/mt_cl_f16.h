/**
 * @file mt_cl_f16.h
 * @brief The FP16 option of the cluster's tiled passes: half-precision operands in L1, float32 sums.
 *
 * With `precision="fp16"` (docs/gap9.md) the generated mt_model.c calls `mt_cl_<op>_<pass>_f16` in place
 * of `mt_cl_<op>_<pass>_f32` for conv2d, conv_transpose2d and linear (`groups == 1`). Arguments, layouts
 * and tiles have the meaning of mt_cluster.h; L2 (the arena, master weights, optimizer state) stays
 * float32. Inside the task the operands of each pass are converted to FP16 while they are staged into L1
 * (forward: input and weights; weight gradient: input and output gradient; input gradient: weights and
 * output gradient), the bias and every result stay float32, and each product of two FP16 values (exact
 * in float32) is summed in float32. The tensor every tile reads is always staged (the plan refuses a
 * call where it does not fit).
 *
 * FP16 values are stored as `mt_half_t` (IEEE binary16 bits). The conversions round to nearest, ties to
 * even, keep subnormals, infinities and NaN; with a compiler that has `_Float16` (x86-64 GCC 12) they
 * are its casts, else (rv32imfc GCC 12) the bit-exact software versions below (define MT_F16_SOFT to
 * force them).
 */
#ifndef MT_CL_F16_H
#define MT_CL_F16_H

#include <stdint.h>
#include <string.h>

#include "mt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An IEEE binary16 value (its bits). */
typedef uint16_t mt_half_t;

/** The float of a binary16 value (exact). */
static inline float mt_f16_to_f32(mt_half_t h)
{
#if defined(__FLT16_MANT_DIG__) && !defined(MT_F16_SOFT)
    _Float16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
#else
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t bits;
    float f;
    if (e == 0x1fu) {
        bits = sign | 0x7f800000u | (m << 13); /* infinity, NaN */
    } else if (e != 0u) {
        bits = sign | ((e + 112u) << 23) | (m << 13); /* normal: rebias 15 -> 127 */
    } else {
        f = (float)m * 5.9604644775390625e-8f; /* zero, subnormal: m * 2^-24 */
        return sign ? -f : f;
    }
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

/** The binary16 value nearest to f (ties to even; beyond 65504 + half an ulp: infinity). */
static inline mt_half_t mt_f32_to_f16(float f)
{
#if defined(__FLT16_MANT_DIG__) && !defined(MT_F16_SOFT)
    const _Float16 v = (_Float16)f;
    mt_half_t h;
    memcpy(&h, &v, sizeof h);
    return h;
#else
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return (mt_half_t)(sign | 0x7e00u | ((a >> 13) & 0x1ffu)); /* NaN, quiet */
    }
    if (a >= 0x477ff000u) {
        return (mt_half_t)(sign | 0x7c00u); /* >= 65520: infinity */
    }
    if (a >= 0x38800000u) { /* normal: rebias 127 -> 15, round 23 -> 10 mantissa bits */
        const uint32_t r = a - 0x38000000u;
        return (mt_half_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
    }
    if (a < 0x33000000u) {
        return (mt_half_t)sign; /* below 2^-25: zero */
    }
    /* subnormal: (mantissa with its hidden bit) * 2^(e - 150) in units of 2^-24 */
    const uint32_t shift = 126u - (a >> 23), mant = (a & 0x7fffffu) | 0x800000u;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    uint32_t m = mant >> shift;
    m += (rem > halfway || (rem == halfway && (m & 1u))) ? 1u : 0u;
    return (mt_half_t)(sign | m);
#endif
}

/** n floats of L2 as binary16 in L1 (the staging of an operand). */
void mt_cl_get_f16(mt_half_t *l1, const float *l2, int32_t n);
/** `rows` lines of `len` floats, `stride` floats apart in L2, packed as binary16 in L1. */
void mt_cl_get_2d_f16(mt_half_t *l1, const float *l2, int32_t rows, int32_t len, int32_t stride);

void mt_cl_conv2d_fw_f16(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                         const float *w, const float *b, float *y, float *scratch, int32_t tile_units,
                         int32_t tile_stage);
void mt_cl_conv2d_bw_wgrad_f16(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                               const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);
void mt_cl_conv2d_bw_igrad_f16(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                               const float *gy, float *gx, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);
void mt_cl_conv_transpose2d_fw_f16(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *x, const float *w, const float *b, float *y, float *scratch,
                                   int32_t tile_units, int32_t tile_stage);
void mt_cl_conv_transpose2d_bw_wgrad_f16(const mt_conv_transpose2d_dims_t *d, int32_t co_begin,
                                         int32_t co_end, const float *x, const float *gy, float *gw,
                                         float *gb, int32_t accumulate, float *scratch, int32_t tile_units,
                                         int32_t tile_stage);
void mt_cl_conv_transpose2d_bw_igrad_f16(const mt_conv_transpose2d_dims_t *d, int32_t co_begin,
                                         int32_t co_end, const float *w, const float *gy, float *gx,
                                         int32_t accumulate, float *scratch, int32_t tile_units,
                                         int32_t tile_stage);
void mt_cl_linear_fw_f16(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                         const float *w, const float *b, float *y, float *scratch, int32_t tile_units,
                         int32_t tile_stage);
void mt_cl_linear_bw_wgrad_f16(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                               const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);
void mt_cl_linear_bw_igrad_f16(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                               const float *gy, float *gx, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);

#ifdef __cplusplus
}
#endif

#endif /* MT_CL_F16_H */
