/**
 * @file mt_cortexm_kernels.h
 * @brief Kernels for Cortex-M4F/M7/M55 (FPv4/FPv5 single precision): the `cortexm` kernel set.
 *
 * Each function has the signature, the semantics (output-channel ranges, `accumulate`, NULL `gw`/`gb`/`b`,
 * every conv2d geometry) and the layouts of the portable kernel of mt_kernels.h whose name it carries with
 * `_cortexm` before `_f32`; a build selects them with mt_cortexm_select.h (docs/kernels.md, "Cortex-M
 * kernels"). They need no scratch: the portable `*_scratch_bytes` (0) stay the truth, so the arena of a
 * Cortex-M build is byte for byte the planned one. Geometries a kernel does not block fall back to the
 * portable kernel.
 *
 * On Cortex-M the multiply-accumulates are VMLA.F32 (non-fused: the product is rounded before the add, as
 * with -ffp-contract=off); anywhere else (the host golden tests) the same blocking runs in C.
 */
#ifndef MT_CORTEXM_KERNELS_H
#define MT_CORTEXM_KERNELS_H

#include "mt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief ::mt_conv2d_fw_f32: blocks of 4 output channels x 4 output columns. */
void mt_conv2d_fw_cortexm_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                              const float *w, const float *b, float *y, float *scratch);
/** @brief ::mt_conv2d_bw_wgrad_f32: blocks of 4 output channels x 3 taps, 4 pixels per step. */
void mt_conv2d_bw_wgrad_cortexm_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                    float *scratch);
/** @brief ::mt_conv2d_bw_igrad_f32: blocks of 4 input channels x 4 input columns (stride 1: a
 *  correlation with the flipped kernel; stride 2: the two column phases in one block). */
void mt_conv2d_bw_igrad_cortexm_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *w, const float *gy, float *gx, int32_t accumulate,
                                    float *scratch);

/** @brief ::mt_linear_fw_f32: 4 rows x 8 inputs per step (each row sums in input order). */
void mt_linear_fw_cortexm_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                              const float *w, const float *b, float *y, float *scratch);
/** @brief ::mt_linear_bw_wgrad_f32: 4 rows x 8 inputs per step. */
void mt_linear_bw_wgrad_cortexm_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                    float *scratch);
/** @brief ::mt_linear_bw_igrad_f32: 8 inputs x 4 rows per step (each input sums in row order). */
void mt_linear_bw_igrad_cortexm_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *w, const float *gy, float *gx, int32_t accumulate,
                                    float *scratch);

/** @brief ::mt_sgd_f32, 8 weights per step (one VMLS.F32 each, two VLDM and one VSTM per step). */
void mt_sgd_cortexm_f32(int32_t n, float *w, const float *g, float lr, float wd);
/** @brief ::mt_activation_fw_f32, ReLU 8 elements per step (other functions: the portable kernel). */
void mt_activation_fw_cortexm_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y);
/** @brief ::mt_activation_bw_f32, ReLU 8 elements per step (other functions: the portable kernel). */
void mt_activation_bw_cortexm_f32(mt_act_t fn, float alpha, int32_t n, const float *y, const float *gy,
                                  float *gx, int32_t accumulate);
/** @brief ::mt_max_pool2d_fw_f32, 2x2 windows of stride 2 without padding one per iteration. */
void mt_max_pool2d_fw_cortexm_f32(const mt_max_pool2d_dims_t *d, const float *x, float *y);
/** @brief ::mt_max_pool2d_bw_igrad_f32, 2x2 windows of stride 2 without padding one per iteration. */
void mt_max_pool2d_bw_igrad_cortexm_f32(const mt_max_pool2d_dims_t *d, const float *x, const float *gy,
                                        float *gx, int32_t accumulate);

#ifdef __cplusplus
}
#endif

#endif /* MT_CORTEXM_KERNELS_H */
