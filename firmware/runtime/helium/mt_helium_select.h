/*
 * Kernel selection of the `helium` kernel set (Cortex-M55 boards whose board.toml lists ["cortexm",
 * "helium"]).
 *
 * The generated mt_model.c includes this header when the build defines MT_KERNEL_SELECT="mt_helium_select.h":
 * the Cortex-M selection (elementwise, pooling, optimizers), with the conv2d and linear passes replaced by
 * the Helium kernels of mt_helium_kernels.h.
 */
#ifndef MT_HELIUM_SELECT_H
#define MT_HELIUM_SELECT_H

#include "mt_cortexm_select.h"
#include "mt_helium_kernels.h"

#undef mt_conv2d_fw_f32
#undef mt_conv2d_bw_wgrad_f32
#undef mt_conv2d_bw_igrad_f32
#undef mt_linear_fw_f32
#undef mt_linear_bw_wgrad_f32
#undef mt_linear_bw_igrad_f32
#define mt_conv2d_fw_f32       mt_conv2d_fw_helium_f32
#define mt_conv2d_bw_wgrad_f32 mt_conv2d_bw_wgrad_helium_f32
#define mt_conv2d_bw_igrad_f32 mt_conv2d_bw_igrad_helium_f32
#define mt_linear_fw_f32       mt_linear_fw_helium_f32
#define mt_linear_bw_wgrad_f32 mt_linear_bw_wgrad_helium_f32
#define mt_linear_bw_igrad_f32 mt_linear_bw_igrad_helium_f32

#endif /* MT_HELIUM_SELECT_H */
