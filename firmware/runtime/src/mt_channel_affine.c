/* channel_affine: y[c] = x[c] * w[c] + b[c] over a channel range. */
#include "mt_internal.h"

void mt_channel_affine_fw_f32(const mt_channel_affine_dims_t *d, int32_t co_begin, int32_t co_end,
                              const float *x, const float *w, const float *b, float *y)
{
    const int32_t plane = d->h * d->w;
    for (int32_t c = co_begin; c < co_end; ++c) {
        const float s = w[c - co_begin];
        const float t = b != NULL ? b[c - co_begin] : 0.0f;
        const float *xc = x + c * plane;
        float *yc = y + c * plane;
        for (int32_t i = 0; i < plane; ++i) {
            yc[i] = xc[i] * s + t;
        }
    }
}

void mt_channel_affine_bw_wgrad_f32(const mt_channel_affine_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *x, const float *gy, float *gw, float *gb, int32_t accumulate)
{
    const int32_t plane = d->h * d->w;
    for (int32_t c = co_begin; c < co_end; ++c) {
        const float *xc = x + c * plane;
        const float *gc = gy + c * plane;
        float sw = 0.0f;
        float sb = 0.0f;
        for (int32_t i = 0; i < plane; ++i) {
            sw += gc[i] * xc[i];
            sb += gc[i];
        }
        const int32_t r = c - co_begin;
        if (gw != NULL) {
            gw[r] = accumulate ? gw[r] + sw : sw;
        }
        if (gb != NULL) {
            gb[r] = accumulate ? gb[r] + sb : sb;
        }
    }
}

void mt_channel_affine_bw_igrad_f32(const mt_channel_affine_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *w, const float *gy, float *gx, int32_t accumulate)
{
    const int32_t plane = d->h * d->w;
    if (!accumulate) {
        /* channels outside the range get zero; those inside are overwritten below */
        mt_zero_f32(co_begin * plane, gx);
        mt_zero_f32((d->c - co_end) * plane, gx + co_end * plane);
    }
    for (int32_t c = co_begin; c < co_end; ++c) {
        const float s = w[c - co_begin];
        const float *gc = gy + c * plane;
        float *xc = gx + c * plane;
        if (accumulate) {
            for (int32_t i = 0; i < plane; ++i) {
                xc[i] += gc[i] * s;
            }
        } else {
            for (int32_t i = 0; i < plane; ++i) {
                xc[i] = gc[i] * s;
            }
        }
    }
}
