/* max_pool2d for Cortex-M4F/M7/M55: 2x2 windows with stride 2 and no padding, one window per iteration
 * without the clipping and index arithmetic of the general kernel (other geometries: the portable one).
 * Same comparisons in the same order (first maximum in row-major window order; NaN is never selected
 * after the first element): the same results. */
#include <math.h>

#include "mt_cortexm_internal.h"
#include "mt_cortexm_kernels.h"

static int32_t plain_2x2(const mt_max_pool2d_dims_t *d)
{
    return d->kernel_h == 2 && d->kernel_w == 2 && d->stride_h == 2 && d->stride_w == 2 && d->pad_top == 0 &&
           d->pad_left == 0 && 2 * d->out_h <= d->in_h && 2 * d->out_w <= d->in_w;
}

void mt_max_pool2d_fw_cortexm_f32(const mt_max_pool2d_dims_t *d, const float *x, float *y)
{
    if (!plain_2x2(d)) {
        mt_max_pool2d_fw_f32(d, x, y);
        return;
    }
    const int32_t in_w = d->in_w, out_w = d->out_w;
    for (int32_t c = 0; c < d->c; ++c) {
        for (int32_t oy = 0; oy < d->out_h; ++oy) {
            const float *r0 = x + (c * d->in_h + 2 * oy) * in_w, *r1 = r0 + in_w;
            for (int32_t ox = 0; ox < out_w; ++ox, r0 += 2, r1 += 2) {
                float m = -INFINITY;
                m = r0[0] > m ? r0[0] : m;
                m = r0[1] > m ? r0[1] : m;
                m = r1[0] > m ? r1[0] : m;
                m = r1[1] > m ? r1[1] : m;
                *y++ = m;
            }
        }
    }
}

void mt_max_pool2d_bw_igrad_cortexm_f32(const mt_max_pool2d_dims_t *d, const float *x, const float *gy,
                                        float *gx, int32_t accumulate)
{
    if (!plain_2x2(d)) {
        mt_max_pool2d_bw_igrad_f32(d, x, gy, gx, accumulate);
        return;
    }
    const int32_t in_w = d->in_w, out_w = d->out_w;
    /* overwrite: the windows write their 4 gradients, anything they do not cover is zeroed first */
    const int32_t write = !accumulate && 2 * d->out_h == d->in_h && 2 * d->out_w == in_w;
    if (!accumulate && !write) {
        mt_zero_f32(d->c * d->in_h * in_w, gx);
    }
    for (int32_t c = 0; c < d->c; ++c) {
        for (int32_t oy = 0; oy < d->out_h; ++oy) {
            const int32_t row = (c * d->in_h + 2 * oy) * in_w;
            const float *r0 = x + row, *r1 = r0 + in_w;
            float *g0 = gx + row, *g1 = g0 + in_w;
            for (int32_t ox = 0; ox < out_w; ++ox, r0 += 2, r1 += 2, g0 += 2, g1 += 2) {
                float m = r0[0];
                int32_t a = 0;
                if (r0[1] > m) {
                    m = r0[1];
                    a = 1;
                }
                if (r1[0] > m) {
                    m = r1[0];
                    a = 2;
                }
                if (r1[1] > m) {
                    a = 3;
                }
                const float g = *gy++;
                if (write) { /* 0 + g, as the zeroed gradient plus g (also for g = -0) */
                    g0[0] = a == 0 ? 0.0f + g : 0.0f;
                    g0[1] = a == 1 ? 0.0f + g : 0.0f;
                    g1[0] = a == 2 ? 0.0f + g : 0.0f;
                    g1[1] = a == 3 ? 0.0f + g : 0.0f;
                } else {
                    float *t = a < 2 ? g0 + a : g1 + (a - 2);
                    *t += g;
                }
            }
        }
    }
}
