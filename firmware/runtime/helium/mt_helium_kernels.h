/**
 * @file mt_helium_kernels.h
 * @brief Kernels for Cortex-M55 with Helium (MVE, float32): the `helium` kernel set.
 *
 * Each function has the signature, semantics and layouts of the portable kernel of mt_kernels.h whose name
 * it carries with `_helium` before `_f32` (output-channel ranges, `accumulate`, NULL `gw`/`gb`/`b`, every
 * conv2d geometry); a build selects them with mt_helium_select.h, on top of the Cortex-M set
 * (docs/kernels.md, "Helium kernels"). No scratch: the arena is the planned one. Geometries a kernel does
 * not vectorize take the Cortex-M kernel of the same pass. Multiply-adds are a VMUL then a VADD (two
 * roundings, as the portable kernels under -ffp-contract=off), never the fused VFMA.
 */
#ifndef MT_HELIUM_KERNELS_H
#define MT_HELIUM_KERNELS_H

#include "mt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief ::mt_conv2d_fw_f32: 4 output channels x a vector of 4 output columns per block. */
void mt_conv2d_fw_helium_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                             const float *w, const float *b, float *y, float *scratch);
/** @brief ::mt_conv2d_bw_wgrad_f32: per tap, 4 output channels x vectors of 4 pixels. */
void mt_conv2d_bw_wgrad_helium_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                   float *scratch);
/** @brief ::mt_conv2d_bw_igrad_f32: stride 1, 4 input channels x a vector of 4 input columns per block. */
void mt_conv2d_bw_igrad_helium_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *w, const float *gy, float *gx, int32_t accumulate,
                                   float *scratch);
/** @brief ::mt_linear_fw_f32: 4 rows x vectors of 4 inputs. */
void mt_linear_fw_helium_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                             const float *w, const float *b, float *y, float *scratch);
/** @brief ::mt_linear_bw_wgrad_f32: vectors of 4 inputs per row. */
void mt_linear_bw_wgrad_helium_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                   float *scratch);
/** @brief ::mt_linear_bw_igrad_f32: vectors of 4 elements of gx, 4 rows per pass. */
void mt_linear_bw_igrad_helium_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *w, const float *gy, float *gx, int32_t accumulate,
                                   float *scratch);

#ifdef __cplusplus
}
#endif

#endif /* MT_HELIUM_KERNELS_H */
