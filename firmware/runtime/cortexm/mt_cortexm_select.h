/*
 * Kernel selection of the `cortexm` kernel set (Cortex-M4F/M7/M55 boards whose board.toml lists it).
 *
 * The generated mt_model.c includes this header when the build defines
 * MT_KERNEL_SELECT="mt_cortexm_select.h" (the firmware Makefile and `mcutrain build` do for those boards):
 * the calls of the generated training step then name the kernels of mt_cortexm_kernels.h. The portable
 * kernels stay linked (the Cortex-M kernels fall back to them for the shapes they do not block) and every
 * other build uses them unchanged.
 */
#ifndef MT_CORTEXM_SELECT_H
#define MT_CORTEXM_SELECT_H

#include "mt_cortexm_kernels.h"

#define mt_conv2d_fw_f32           mt_conv2d_fw_cortexm_f32
#define mt_conv2d_bw_wgrad_f32     mt_conv2d_bw_wgrad_cortexm_f32
#define mt_conv2d_bw_igrad_f32     mt_conv2d_bw_igrad_cortexm_f32
#define mt_linear_fw_f32           mt_linear_fw_cortexm_f32
#define mt_linear_bw_wgrad_f32     mt_linear_bw_wgrad_cortexm_f32
#define mt_linear_bw_igrad_f32     mt_linear_bw_igrad_cortexm_f32
#define mt_sgd_f32                 mt_sgd_cortexm_f32
#define mt_activation_fw_f32       mt_activation_fw_cortexm_f32
#define mt_activation_bw_f32       mt_activation_bw_cortexm_f32
#define mt_max_pool2d_fw_f32       mt_max_pool2d_fw_cortexm_f32
#define mt_max_pool2d_bw_igrad_f32 mt_max_pool2d_bw_igrad_cortexm_f32

#endif /* MT_CORTEXM_SELECT_H */
