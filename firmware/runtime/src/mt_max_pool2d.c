/* max_pool2d: padding acts as -inf; the backward recomputes the argmax from the forward input. */
#include <math.h>

#include "mt_internal.h"

/* Outputs [*lo, *hi) of a row whose window lies fully inside the input (no clipping needed). */
static void mt_interior(int32_t pad, int32_t stride, int32_t k, int32_t in, int32_t out, int32_t *lo,
                        int32_t *hi)
{
    int32_t a = (pad + stride - 1) / stride;
    int32_t b = in - k + pad >= 0 ? (in - k + pad) / stride + 1 : 0;
    a = a < out ? a : out;
    b = b < out ? b : out;
    *lo = a;
    *hi = b > a ? b : a;
}

void mt_max_pool2d_fw_f32(const mt_max_pool2d_dims_t *d, const float *x, float *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t kw = d->kernel_w, sw = d->stride_w;
    const int32_t plane = in_h * in_w;
    int32_t ox_lo, ox_hi;
    mt_interior(d->pad_left, sw, kw, in_w, out_w, &ox_lo, &ox_hi);
    for (int32_t c = 0; c < d->c; ++c) {
        const float *xc = x + c * plane;
        float *yc = y + c * out_h * out_w;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * d->stride_h - d->pad_top;
            int32_t ky0, ky1;
            mt_valid_range(iy0, 1, d->kernel_h, in_h, &ky0, &ky1);
            float *yr = yc + oy * out_w;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * sw - d->pad_left;
                int32_t kx0 = 0, kx1 = kw;
                if (ox < ox_lo || ox >= ox_hi) {
                    mt_valid_range(ix0, 1, kw, in_w, &kx0, &kx1);
                }
                float m = -INFINITY;
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    const float *xr = xc + iy * in_w + ix0;
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        m = xr[kx] > m ? xr[kx] : m;
                    }
                }
                yr[ox] = m;
            }
        }
    }
}

void mt_max_pool2d_bw_igrad_f32(const mt_max_pool2d_dims_t *d, const float *x, const float *gy, float *gx,
                                int32_t accumulate)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t kw = d->kernel_w, sw = d->stride_w;
    const int32_t plane = in_h * in_w;
    int32_t ox_lo, ox_hi;
    mt_interior(d->pad_left, sw, kw, in_w, out_w, &ox_lo, &ox_hi);
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
                const int32_t ix0 = ox * sw - d->pad_left;
                int32_t kx0 = 0, kx1 = kw;
                if (ox < ox_lo || ox >= ox_hi) {
                    mt_valid_range(ix0, 1, kw, in_w, &kx0, &kx1);
                }
                float m = -INFINITY;
                int32_t arg = -1;
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    const int32_t row = iy * in_w + ix0;
                    for (int32_t kx = kx0; kx < kx1; ++kx) {
                        const float v = xc[row + kx];
                        if (v > m || arg < 0) { /* first maximum wins, as PyTorch */
                            m = v;
                            arg = row + kx;
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
