/* Internal interface of the FP16 passes (firmware/pulp/mt_cl_f16*.c): one geometry for conv2d,
 * conv_transpose2d and linear, and the three passes over binary16 operands with float32 sums. */
#ifndef MT_CL_F16_INTERNAL_H
#define MT_CL_F16_INTERNAL_H

#include "mt_cl_f16.h"

/* A tap (ky, kx) pairs a position (sy, sx) of the "small" plane with (sy*sh + ky*dh - pt,
 * sx*sw + kx*dw - pl) of the "big" one: conv2d's small plane is its output and the big one its input;
 * conv_transpose2d's are the other way round; linear is a 1x1 convolution of 1x1 planes. */
typedef struct {
    int32_t in_c, out_c, kh, kw, sh, sw, dh, dw, pt, pl;
    int32_t sm_h, sm_w, bg_h, bg_w; /* the small and the big plane */
    int32_t transposed;             /* 1: the input is the small plane */
} mt_hgeom_t;

static inline int32_t mt_hgeom_in_plane(const mt_hgeom_t *g)
{
    return g->transposed ? g->sm_h * g->sm_w : g->bg_h * g->bg_w;
}

static inline int32_t mt_hgeom_out_plane(const mt_hgeom_t *g)
{
    return g->transposed ? g->bg_h * g->bg_w : g->sm_h * g->sm_w;
}

/** Forward of channels [co0, co1): w and b hold the range's rows (from co0), y the full output. */
void mt_f16_fw(const mt_hgeom_t *g, int32_t co0, int32_t co1, const mt_half_t *x, const mt_half_t *w,
               const float *b, float *y);
/** Weight (and bias) gradient of [co0, co1): gy full, gw and gb the range's rows (either may be NULL). */
void mt_f16_wgrad(const mt_hgeom_t *g, int32_t co0, int32_t co1, const mt_half_t *x, const mt_half_t *gy,
                  float *gw, float *gb, int32_t accumulate);
/** Input gradient of all g->in_c channels from [co0, co1): w the range's rows, gy full. */
void mt_f16_igrad(const mt_hgeom_t *g, int32_t co0, int32_t co1, const mt_half_t *w, const mt_half_t *gy,
                  float *gx, int32_t accumulate);

#endif /* MT_CL_F16_INTERNAL_H */
