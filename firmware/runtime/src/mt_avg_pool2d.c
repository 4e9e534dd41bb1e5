/* avg_pool2d: padding acts as zeros; divisor kernel_h*kernel_w or the in-bounds count. */
#include "mt_internal.h"

/* 1 / divisor of the window whose in-bounds part has nky x nkx elements. */
static inline float mt_avg_scale(const mt_avg_pool2d_dims_t *d, int32_t nky, int32_t nkx)
{
    const int32_t count = d->count_include_pad ? d->kernel_h * d->kernel_w : nky * nkx;
    return count > 0 ? 1.0f / (float)count : 0.0f;
}

void mt_avg_pool2d_fw_f32(const mt_avg_pool2d_dims_t *d, const float *x, float *y)
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
                float s = 0.0f;
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    const float *xr = xc + iy * in_w;
                    for (int32_t ix = ix0 + kx0; ix < ix0 + kx1; ++ix) {
                        s += xr[ix];
                    }
                }
                yc[oy * out_w + ox] = s * mt_avg_scale(d, ky1 - ky0, kx1 - kx0);
            }
        }
    }
}

void mt_avg_pool2d_bw_igrad_f32(const mt_avg_pool2d_dims_t *d, const float *gy, float *gx, int32_t accumulate)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    if (!accumulate) {
        mt_zero_f32(d->c * plane, gx);
    }
    for (int32_t c = 0; c < d->c; ++c) {
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
                const float g = gc[oy * out_w + ox] * mt_avg_scale(d, ky1 - ky0, kx1 - kx0);
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    float *xr = gxc + iy * in_w;
                    for (int32_t ix = ix0 + kx0; ix < ix0 + kx1; ++ix) {
                        xr[ix] += g;
                    }
                }
            }
        }
    }
}
