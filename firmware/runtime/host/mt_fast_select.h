/*
 * Kernel selection of the host build's fast flavour.
 *
 * The generated Makefile force-includes this header into mt_model.c only (`-include mt_fast_select.h`
 * in the libmt_fast.so rule): the conv2d calls of the generated training step then name the fast host
 * kernels of mt_fast_kernels.h, which fall back to the portable kernels for the cases they do not
 * accelerate. Every other call, and every other build (Cortex-M, RISC-V, the portable host build), uses
 * the portable kernels of runtime/src unchanged.
 */
#ifndef MT_FAST_SELECT_H
#define MT_FAST_SELECT_H

#include "mt_fast_kernels.h"

#define mt_conv2d_fw_f32       mt_conv2d_fw_fast_f32
#define mt_conv2d_bw_wgrad_f32 mt_conv2d_bw_wgrad_fast_f32
#define mt_conv2d_bw_igrad_f32 mt_conv2d_bw_igrad_fast_f32

#endif /* MT_FAST_SELECT_H */
