/**
 * @file mt_kernels_s8.h
 * @brief mcutrain int8 forward kernels: full-integer layers (frozen int8 layers, full-integer models).
 *
 * Each kernel computes exactly what LiteRT's reference int8 kernel computes (bit for bit), in portable
 * C99 integer arithmetic; docs/quantization.md describes the scheme. The conventions are those of
 * mt_kernels.h (whose dims structs these kernels reuse):
 *
 * - **Tensors** are per sample, channels first: int8 activations `(C, H, W)` or `(F,)`, each with one
 *   scale and zero point (`real = scale * (q - zp)`).
 * - **Weights** are int8 in PyTorch layouts (conv2d `[Cout, Cin/groups, kh, kw]`, depthwise =
 *   `groups == in_c`; linear `[out, in]`), symmetric (zero point 0), one scale per output channel.
 *   **Biases** are int32 with scale `in_scale * w_scale[c]` and zero point 0.
 * - **Integer parameters** (multipliers, shifts, zero points, the fused activation's clamp) come in one
 *   const struct per op kind, `mt_<op>_q8_t`, computed at build time (mcutrain.core.int8_params).
 * - **Output-channel ranges** (conv2d, linear): `[co_begin, co_end)`; `w` points at the weight row of
 *   `co_begin`, and `b` and the per-channel arrays of the params struct point at their entry for
 *   `co_begin`, like `w` (a struct per range: its arrays offset by `co_begin`); `x` and `y` are the full
 *   tensors, and only the range's channels of `y` are written.
 * - **Requantization** `MBQM(acc, mult, shift)`: TFLite's `MultiplyByQuantizedMultiplier`,
 *   `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc << max(shift, 0), mult), max(-shift, 0))`
 *   with `mult` a Q0.31 integer in `[2^30, 2^31)` (or 0): `acc * mult * 2^(shift - 31)`, rounded.
 * - Names `mt_<op>_fw_s8`; no dynamic memory, no mutable static state, re-entrant. Outputs must not
 *   overlap inputs unless a function says so.
 */
#ifndef MT_KERNELS_S8_H
#define MT_KERNELS_S8_H

#include <stddef.h>
#include <stdint.h>

#include "mt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================================================== */
/* conv2d (CONV_2D, DEPTHWISE_CONV_2D)                                                                */
/* ================================================================================================== */

/** @brief Integer parameters of an int8 conv2d (also depthwise). */
typedef struct {
    int32_t in_zp;        /**< zero point of `x` */
    int32_t out_zp;       /**< zero point of `y` */
    int32_t act_min;      /**< lower clamp of `y` (fused activation), in output integers, >= -128 */
    int32_t act_max;      /**< upper clamp of `y`, <= 127 */
    const int32_t *mult;  /**< Q0.31 multiplier per output channel, from channel `co_begin` */
    const int32_t *shift; /**< shift per output channel (> 0 left, < 0 right), from channel `co_begin` */
} mt_conv2d_q8_t;

/** Scratch bytes of ::mt_conv2d_fw_s8 (0 for the reference kernel). */
size_t mt_conv2d_fw_s8_scratch_bytes(const mt_conv2d_dims_t *d);

/**
 * @brief `y[co] = clamp(out_zp + MBQM(b[co] + sum w[co] * (x - in_zp), mult[co], shift[co]))` for `co` in
 * `[co_begin, co_end)`; taps outside the input (padding) contribute nothing.
 * @param x  input `(in_c, in_h, in_w)`
 * @param w  weight rows of the range `[co_end-co_begin, in_c/groups, kernel_h, kernel_w]`
 * @param b  bias of the range, or NULL for none
 * @param y  full output `(out_c, out_h, out_w)`; only the range's channels are written
 * @param scratch ::mt_conv2d_fw_s8_scratch_bytes bytes, 4-byte aligned (NULL when 0)
 */
void mt_conv2d_fw_s8(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                     const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch);

/* ================================================================================================== */
/* linear (FULLY_CONNECTED)                                                                           */
/* ================================================================================================== */

/**
 * @brief Integer parameters of an int8 linear layer. LiteRT's reference FULLY_CONNECTED rounds
 * `double(acc) * scale[o]` (halves away from zero) with `scale[o] = double(in_scale) * double(w_scale[o])
 * / double(out_scale)`; the kernel evaluates that double product exactly in integer arithmetic (no FPU,
 * no double library), from the double's significand and exponent.
 */
typedef struct {
    int32_t in_zp;              /**< zero point of `x` */
    int32_t out_zp;             /**< zero point of `y` */
    int32_t act_min;            /**< lower clamp of `y` (fused activation), >= -128 */
    int32_t act_max;            /**< upper clamp of `y`, <= 127 */
    const uint64_t *scale_mant; /**< per output channel from `co_begin`: significand in [2^52, 2^53), or 0 */
    const int32_t *scale_exp;   /**< per output channel: `scale = scale_mant * 2^scale_exp` */
} mt_linear_q8_t;

/** Scratch bytes of ::mt_linear_fw_s8 (0 for the reference kernel). */
size_t mt_linear_fw_s8_scratch_bytes(const mt_linear_dims_t *d);

/**
 * @brief `y[o] = clamp(out_zp + round(double(b[o] + w[o] . (x - in_zp)) * scale[o]))` for `o` in
 * `[co_begin, co_end)`; `w` holds the range's rows, `b` its biases (or NULL).
 */
void mt_linear_fw_s8(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                     const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch);

/* ================================================================================================== */
/* add (ADD)                                                                                          */
/* ================================================================================================== */

/**
 * @brief Integer parameters of an int8 add: both inputs are shifted left by `left_shift` (20) bits and
 * rescaled to twice the larger input scale, summed, and rescaled to the output.
 */
typedef struct {
    int32_t a_zp, b_zp, out_zp;  /**< zero points of `a`, `b`, `y` */
    int32_t left_shift;          /**< 20 for int8 */
    int32_t a_mult, a_shift;     /**< `a_scale / (2 * max scale)` (shift <= 0) */
    int32_t b_mult, b_shift;     /**< `b_scale / (2 * max scale)` (shift <= 0) */
    int32_t out_mult, out_shift; /**< `2 * max scale / (2^left_shift * out_scale)` (shift <= 0) */
    int32_t act_min, act_max;    /**< clamp of `y` (fused activation) */
} mt_add_q8_t;

/**
 * @brief `y = clamp(out_zp + MBQM(MBQM((a - a_zp) << left_shift, a_mult, a_shift) + MBQM((b - b_zp) <<
 * left_shift, b_mult, b_shift), out_mult, out_shift))` over `n` elements; `y` may alias `a` or `b`.
 */
void mt_add_fw_s8(const mt_add_q8_t *q, int32_t n, const int8_t *a, const int8_t *b, int8_t *y);

/* ================================================================================================== */
/* pooling (MAX_POOL_2D, AVERAGE_POOL_2D, MEAN over H and W)                                          */
/* ================================================================================================== */

/** @brief Integer parameters of int8 max and average pooling (input and output share quantization). */
typedef struct {
    int32_t act_min, act_max; /**< clamp of `y` (fused activation) */
} mt_pool_q8_t;

/** @brief Max over the taps of each window inside the input, clamped to `[act_min, act_max]`. */
void mt_max_pool2d_fw_s8(const mt_max_pool2d_dims_t *d, const mt_pool_q8_t *q, const int8_t *x, int8_t *y);

/**
 * @brief Average of each window: the sum `s` of its taps inside the input over the count `n` (those
 * taps, TFLite; or `kernel_h*kernel_w` with `count_include_pad`), rounded half away from zero as
 * `s > 0 ? (s + n/2) / n : (s - n/2) / n` in C integer division, clamped to `[act_min, act_max]`.
 */
void mt_avg_pool2d_fw_s8(const mt_avg_pool2d_dims_t *d, const mt_pool_q8_t *q, const int8_t *x, int8_t *y);

/**
 * @brief Integer parameters of an int8 mean over H and W: one multiplier for `in_scale / (out_scale *
 * hw)`, folded as LiteRT's reference `QuantizedMeanOrSum` folds the division by `hw`.
 */
typedef struct {
    int32_t in_zp, out_zp; /**< zero points of `x` and `y` */
    int32_t mult, shift;   /**< requantization of the sum of a channel */
} mt_global_avg_pool_q8_t;

/** @brief `(c, hw) -> (c,)`: `y[c] = clamp(out_zp + MBQM(sum(x[c]) - in_zp * hw, mult, shift))`. */
void mt_global_avg_pool_fw_s8(const mt_global_avg_pool_q8_t *q, int32_t c, int32_t hw, const int8_t *x,
                              int8_t *y);

/* ================================================================================================== */
/* pad, concat (PAD, CONCATENATION)                                                                   */
/* ================================================================================================== */

/** @brief `y` = `x` surrounded by `value` (the zero point: input and output share quantization). */
void mt_pad_fw_s8(const mt_pad_dims_t *d, int8_t value, const int8_t *x, int8_t *y);

/**
 * @brief One input of a channel concatenation: `n` elements of `x` into its slice `y` of the output
 * (`y` = output + channel offset * H * W). `lut` NULL: a copy (input and output share quantization);
 * else `y[i] = lut[x[i] + 128]`, a 256-entry requantization table (mcutrain.core.int8_params.concat_q8).
 */
void mt_concat_fw_s8(const int8_t *lut, int32_t n, const int8_t *x, int8_t *y);

/* ================================================================================================== */
/* softmax, activations, quantize / dequantize                                                        */
/* ================================================================================================== */

/**
 * @brief Integer parameters of an int8 softmax (output scale 1/256, zero point -128): the input scale
 * times beta as a Q5.26 rescaling of the differences to the maximum, and the smallest difference that
 * still counts.
 */
typedef struct {
    int32_t mult;       /**< Q0.31 multiplier of `beta * in_scale * 2^26` */
    int32_t left_shift; /**< its left shift (>= 0) */
    int32_t diff_min;   /**< differences `x - max(x)` below this give -128 */
} mt_softmax_q8_t;

/**
 * @brief Softmax over a vector of `n`, LiteRT's reference int8 algorithm (gemmlowp fixed point: exp in
 * Q0.31, sum in Q12.19, reciprocal by Newton-Raphson): `y = round(256 * exp(d) / sum exp) - 128`,
 * saturated. May run in place.
 */
void mt_softmax_fw_s8(const mt_softmax_q8_t *q, int32_t n, const int8_t *x, int8_t *y);

/**
 * @brief relu / relu6 of an int8 tensor: `y = clamp(x, lo, hi)` with the activation's range in output
 * integers (`lo = zp + round(0 / scale)`, `hi` 127 or `zp + round(6 / scale)`, TFLite's
 * CalculateActivationRangeQuantized), which equals the activation fused into the producer. In place allowed.
 */
void mt_clamp_fw_s8(int32_t lo, int32_t hi, int32_t n, const int8_t *x, int8_t *y);

/** @brief Integer parameters of an int8 leaky relu: the identity and the alpha branch. */
typedef struct {
    int32_t in_zp, out_zp;                 /**< zero points of `x` and `y` */
    int32_t identity_mult, identity_shift; /**< `in_scale / out_scale` */
    int32_t alpha_mult, alpha_shift;       /**< `in_scale * alpha / out_scale` */
} mt_leaky_relu_q8_t;

/** @brief `y = clamp(out_zp + MBQM(x - in_zp, x >= in_zp ? identity : alpha))`; may run in place. */
void mt_leaky_relu_fw_s8(const mt_leaky_relu_q8_t *q, int32_t n, const int8_t *x, int8_t *y);

/**
 * @brief Logistic (sigmoid) as LiteRT's reference int8 kernel computes it: a 256-entry table,
 * `y[i] = lut[x[i] + 128]` (mcutrain.core.int8_params.logistic_q8). May run in place.
 */
void mt_logistic_fw_s8(const int8_t *lut, int32_t n, const int8_t *x, int8_t *y);

/** @brief Float <-> int8 conversion parameters of a tensor: `real = scale * (q - zp)`. */
typedef struct {
    float scale; /**< > 0 */
    int32_t zp;  /**< zero point */
} mt_quantize_q8_t;

/**
 * @brief float32 -> int8: `y = clamp(round(x / scale) + zp)`, the division in float32, rounding half
 * away from zero (TFLite QUANTIZE). Infinities saturate; NaN gives the zero point.
 */
void mt_quantize_fw_s8(const mt_quantize_q8_t *q, int32_t n, const float *x, int8_t *y);

/** @brief int8 -> float32: `y = scale * (x - zp)` in float32 (TFLite DEQUANTIZE). */
void mt_dequantize_fw_s8(const mt_quantize_q8_t *q, int32_t n, const int8_t *x, float *y);

#ifdef __cplusplus
}
#endif

#endif /* MT_KERNELS_S8_H */
