/* max_pool2d: padding acts as -inf; the backward recomputes the argmax from the forward input. */
#include <math.h>

#include "mt_internal.h"

void mt_max_pool2d_fw_f32(const mt_max_pool2d_dims_t *d, const float *x, float *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    for (int32_t c = 0; c < d->c; ++c) {
        const float *xc = x + c * plane;
        float *yc = y + c * out_h * out_w;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * d->stride_h - d->pad_top;
            int32_t ky0, ky1;
            mt_valid_range(iy0, 1, d->kernel_h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * d->stride_w - d->pad_left;
                int32_t kx0, kx1;
                mt_valid_range(ix0, 1, d->kernel_w, in_w, &kx0, &kx1);
                float m = -INFINITY;
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    const float *xr = xc + iy * in_w;
                    for (int32_t ix = ix0 + kx0; ix < ix0 + kx1; ++ix) {
                        m = xr[ix] > m ? xr[ix] : m;
                    }
                }
                yc[oy * out_w + ox] = m;
            }
        }
    }
}

void mt_max_pool2d_bw_igrad_f32(const mt_max_pool2d_dims_t *d, const float *x, const float *gy, float *gx,
                                int32_t accumulate)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    if (!accumulate) {
        mt_zero_f32(d->c * plane, gx);
    }
    for (int32_t c = 0; c < d->c; ++c) {
        const float *xc = x + c * plane;
        const float *gc = gy + c * out_h * out_w;
        float *gxc = gx + c * plane;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * d->stride_h - d->pad_top;
            int32_t ky0, ky1;
            mt_valid_range(iy0, 1, d->kernel_h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * d->stride_w - d->pad_left;
                int32_t kx0, kx1;
                mt_valid_range(ix0, 1, d->kernel_w, in_w, &kx0, &kx1);
                float m = -INFINITY;
                int32_t arg = -1;
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    for (int32_t ix = ix0 + kx0; ix < ix0 + kx1; ++ix) {
                        const int32_t k = iy * in_w + ix;
                        if (xc[k] > m || arg < 0) { /* first maximum wins, as PyTorch */
                            m = xc[k];
                            arg = k;
                        }
                    }
                }
                if (arg >= 0) {
                    gxc[arg] += gc[oy * out_w + ox];
                }
            }
        }
    }
}
