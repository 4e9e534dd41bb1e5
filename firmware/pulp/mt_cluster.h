/**
 * @file mt_cluster.h
 * @brief Cluster versions of the training kernels for PULP (GAP9): each call is one cluster task.
 *
 * The fabric controller calls these in place of the `mt_*_f32` kernels (the generated mt_model.c of a
 * `gap9*` target does); each sends one task to the cluster and returns when it is done. Inside the task:
 *
 * - conv2d / conv_transpose2d / linear (`groups == 1`): tiles of `tile_units` output channels (forward,
 *   weight gradient) or input channels (input gradient) are moved from L2 into the L1 buffer by the
 *   cluster DMA, the MT_CL_CORES cores of a team fork split the tile's channels and call the portable
 *   kernel on their slice, and the results go back to L2. `tile_stage` 1 also moves the tensor that every
 *   tile reads (the input `x`, or the output gradient of the range for the input gradient) into L1 once;
 *   0 leaves it in L2, read in place. The tiles come from the plan (mcutrain/emit/pulp.py), which checks that
 *   each working set fits MT_CL_L1_BYTES; a call whose tile would not fit ends the program (exit 13).
 * - elementwise kernels and the optimizers: the cores split the elements (in multiples of 8), in L2.
 *
 * Arguments are those of the kernels in mt_kernels.h (same layouts, ranges and accumulate flags), plus
 * the tile for the parameterized ones. Results equal the kernels' bit for bit (docs/gap9.md).
 */
#ifndef MT_CLUSTER_H
#define MT_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "mt_cl_f16.h" /* the FP16 option of the tiled passes */
#include "mt_cluster_plan.h"
#include "mt_kernels.h"
#include "mt_kernels_s8.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Exit status when a tile does not fit the L1 buffer (the plan and the code disagree). */
#define MT_CL_EXIT_L1 13

void mt_cl_conv2d_fw_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                         const float *w, const float *b, float *y, float *scratch, int32_t tile_units,
                         int32_t tile_stage);
void mt_cl_conv2d_bw_wgrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                               const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);
void mt_cl_conv2d_bw_igrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                               const float *gy, float *gx, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);

void mt_cl_conv_transpose2d_fw_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *x, const float *w, const float *b, float *y, float *scratch,
                                   int32_t tile_units, int32_t tile_stage);
void mt_cl_conv_transpose2d_bw_wgrad_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin,
                                         int32_t co_end, const float *x, const float *gy, float *gw,
                                         float *gb, int32_t accumulate, float *scratch, int32_t tile_units,
                                         int32_t tile_stage);
void mt_cl_conv_transpose2d_bw_igrad_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin,
                                         int32_t co_end, const float *w, const float *gy, float *gx,
                                         int32_t accumulate, float *scratch, int32_t tile_units,
                                         int32_t tile_stage);

void mt_cl_linear_fw_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                         const float *w, const float *b, float *y, float *scratch, int32_t tile_units,
                         int32_t tile_stage);
void mt_cl_linear_bw_wgrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                               const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);
void mt_cl_linear_bw_igrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                               const float *gy, float *gx, int32_t accumulate, float *scratch,
                               int32_t tile_units, int32_t tile_stage);

/* The int8 forwards (frozen int8 layers): tiles of output channels (of groups for grouped and depthwise
 * convolutions) in L1, each core running the portable mt_*_fw_s8 kernel on its channels; `scratch` is
 * ignored (the Cortex-M DSP path's working memory). Same integers as the portable kernels. */
void mt_cl_conv2d_fw_s8(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                        const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch,
                        int32_t tile_units, int32_t tile_stage);
void mt_cl_linear_fw_s8(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                        const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch,
                        int32_t tile_units, int32_t tile_stage);

void mt_cl_activation_fw_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y);
void mt_cl_activation_mask_f32(mt_act_t fn, int32_t n, const float *y, uint8_t *mask);
void mt_cl_activation_bw_mask_f32(mt_act_t fn, float alpha, int32_t n, const uint8_t *mask, const float *gy,
                                  float *gx, int32_t accumulate);
void mt_cl_activation_bw_f32(mt_act_t fn, float alpha, int32_t n, const float *y, const float *gy, float *gx,
                             int32_t accumulate);
void mt_cl_add_fw_f32(int32_t n, const float *a, const float *b, float *y);
void mt_cl_copy_f32(int32_t n, const float *src, float *dst);
void mt_cl_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate);
void mt_cl_scale_f32(int32_t n, float *x, float s);
void mt_cl_sgd_f32(int32_t n, float *w, const float *g, float lr, float wd);
void mt_cl_sgd_momentum_f32(int32_t n, float *w, const float *g, float *m, float lr, float momentum,
                            float wd);
void mt_cl_adam_f32(int32_t n, float *w, const float *g, float *m, float *v, float lr, float beta1,
                    float beta2, float eps, float wd, int32_t step);

/** The largest L1 working set of any call so far, in bytes (at most MT_CL_L1_BYTES). */
size_t mt_cl_l1_high_water(void);
/** Powers the cluster off (the next call opens it again). */
void mt_cl_close(void);

#ifdef __cplusplus
}
#endif

#endif /* MT_CLUSTER_H */
