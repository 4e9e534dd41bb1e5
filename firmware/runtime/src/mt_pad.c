/* pad: constant border around each channel; backward crops. */
#include "mt_internal.h"

void mt_pad_fw_f32(const mt_pad_dims_t *d, float value, const float *x, float *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w;
    const int32_t out_w = in_w + d->pad_left + d->pad_right;
    const int32_t out_h = in_h + d->pad_top + d->pad_bottom;
    for (int32_t c = 0; c < d->c; ++c) {
        const float *xc = x + c * in_h * in_w;
        float *yc = y + c * out_h * out_w;
        for (int32_t i = 0; i < d->pad_top * out_w; ++i) {
            yc[i] = value;
        }
        for (int32_t iy = 0; iy < in_h; ++iy) {
            float *yr = yc + (iy + d->pad_top) * out_w;
            const float *xr = xc + iy * in_w;
            for (int32_t i = 0; i < d->pad_left; ++i) {
                yr[i] = value;
            }
            for (int32_t i = 0; i < in_w; ++i) {
                yr[d->pad_left + i] = xr[i];
            }
            for (int32_t i = d->pad_left + in_w; i < out_w; ++i) {
                yr[i] = value;
            }
        }
        for (int32_t i = (d->pad_top + in_h) * out_w; i < out_h * out_w; ++i) {
            yc[i] = value;
        }
    }
}

void mt_pad_bw_igrad_f32(const mt_pad_dims_t *d, const float *gy, float *gx, int32_t accumulate)
{
    const int32_t in_h = d->in_h, in_w = d->in_w;
    const int32_t out_w = in_w + d->pad_left + d->pad_right;
    const int32_t out_h = in_h + d->pad_top + d->pad_bottom;
    for (int32_t c = 0; c < d->c; ++c) {
        for (int32_t iy = 0; iy < in_h; ++iy) {
            const float *src = gy + (c * out_h + iy + d->pad_top) * out_w + d->pad_left;
            float *dst = gx + (c * in_h + iy) * in_w;
            MT_STORE_LOOP(in_w, accumulate, dst, src[i]);
        }
    }
}
