/*
 * Fast host kernels: vectorized conv2d for the host build's `fast` flavour (`make libmt_fast.so`).
 *
 * Same signatures, semantics, output-channel ranges and scratch-size functions as the portable kernels of
 * mt_kernels.h (`mt_conv2d_*_f32`); only the name carries `_fast`. They pack the convolution into a
 * matrix product (im2col tiles on the stack) and run register-blocked GEMM micro-kernels written with GCC
 * vector extensions, which GCC lowers to AVX-512, AVX2 or SSE with `-march=native`. They need no
 * caller-provided scratch: their `*_scratch_bytes` are the portable ones (0), and the arena of a fast
 * build is byte for byte the planned one. Their working tiles live on the stack, at most
 * ::MT_FAST_STACK_BYTES per call (host stacks are megabytes; these kernels are never built for an MCU).
 *
 * Host only: they use GCC vector extensions and sum in a different order than the portable kernels
 * (see docs/kernels.md, "Fast host kernels", for the tolerance).
 */
#ifndef MT_FAST_KERNELS_H
#define MT_FAST_KERNELS_H

#include "mt_kernels.h"

/** Floats of one working tile (an im2col block, a packed output-gradient block or an input-gradient
 *  column block). */
#define MT_FAST_TILE_FLOATS 16384
/** Upper bound of the stack the fast kernels use for their tiles (one tile for the forward, two for the
 *  input gradient, three for the weight gradient), 192 KiB. */
#define MT_FAST_STACK_BYTES (3u * MT_FAST_TILE_FLOATS * sizeof(float))

/** @brief ::mt_conv2d_fw_f32, vectorized. */
void mt_conv2d_fw_fast_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                           const float *w, const float *b, float *y, float *scratch);

/** @brief ::mt_conv2d_bw_wgrad_f32, vectorized. */
void mt_conv2d_bw_wgrad_fast_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                                 const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch);

/** @brief ::mt_conv2d_bw_igrad_f32, vectorized. */
void mt_conv2d_bw_igrad_fast_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                                 const float *gy, float *gx, int32_t accumulate, float *scratch);

#endif /* MT_FAST_KERNELS_H */
