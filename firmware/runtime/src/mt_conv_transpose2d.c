/* conv_transpose2d: forward, weight gradient, input gradient over an output-channel range.
 * Weights are output-major [Cout, Cin/groups, kh, kw] (see mt_kernels.h for the permutation). Input
 * (ci, iy, ix) with tap (ky, kx) meets output (iy*sh + ky*dh - pad_top, ix*sw + kx*dw - pad_left). */
#include "mt_internal.h"

size_t mt_conv_transpose2d_fw_scratch_bytes(const mt_conv_transpose2d_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_conv_transpose2d_bw_wgrad_scratch_bytes(const mt_conv_transpose2d_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_conv_transpose2d_bw_igrad_scratch_bytes(const mt_conv_transpose2d_dims_t *d)
{
    (void)d;
    return 0u;
}

/* Scatter per tap into the output channel: y[co] = bias, then y rows += w * x rows. */
void mt_conv_transpose2d_fw_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                const float *x, const float *w, const float *b, float *y, float *scratch)
{
    const int32_t cin_g = d->in_c / d->groups;
    const int32_t cout_g = d->out_c / d->groups;
    const int32_t kh = d->kernel_h, kw = d->kernel_w;
    const int32_t sh = d->stride_h, sw = d->stride_w;
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    const int32_t oplane = out_h * out_w;
    const int32_t ksize = kh * kw;
    (void)scratch;

    for (int32_t co = co_begin; co < co_end; ++co) {
        const float *xg = x + (co / cout_g) * cin_g * plane;
        const float *wc = w + (co - co_begin) * cin_g * ksize;
        const float bias = b != NULL ? b[co - co_begin] : 0.0f;
        float *yc = y + co * oplane;
        for (int32_t i = 0; i < oplane; ++i) {
            yc[i] = bias;
        }
        for (int32_t ky = 0; ky < kh; ++ky) {
            /* input rows whose tap ky lands inside the (cropped) output */
            const int32_t offy = ky * d->dilation_h - d->pad_top;
            int32_t iy0, iy1;
            mt_valid_range(offy, sh, in_h, out_h, &iy0, &iy1);
            for (int32_t kx = 0; kx < kw; ++kx) {
                const int32_t offx = kx * d->dilation_w - d->pad_left;
                int32_t ix0, ix1;
                mt_valid_range(offx, sw, in_w, out_w, &ix0, &ix1);
                const int32_t nix = ix1 - ix0;
                for (int32_t ci = 0; ci < cin_g; ++ci) {
                    const float wv = wc[ci * ksize + ky * kw + kx];
                    const float *xc = xg + ci * plane;
                    for (int32_t iy = iy0; iy < iy1 && nix > 0; ++iy) {
                        const float *xp = xc + (iy * in_w + ix0);
                        float *yp = yc + ((iy * sh + offy) * out_w + ix0 * sw + offx);
                        for (int32_t t = 0; t < nix; ++t) {
                            yp[t * sw] += wv * xp[t];
                        }
                    }
                }
            }
        }
    }
}

void mt_conv_transpose2d_bw_wgrad_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                      const float *x, const float *gy, float *gw, float *gb,
                                      int32_t accumulate, float *scratch)
{
    const int32_t cin_g = d->in_c / d->groups;
    const int32_t cout_g = d->out_c / d->groups;
    const int32_t kh = d->kernel_h, kw = d->kernel_w;
    const int32_t sh = d->stride_h, sw = d->stride_w;
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    const int32_t oplane = out_h * out_w;
    const int32_t ksize = kh * kw;
    (void)scratch;

    for (int32_t co = co_begin; co < co_end; ++co) {
        const float *gyc = gy + co * oplane;
        if (gb != NULL) {
            float s = 0.0f;
            for (int32_t i = 0; i < oplane; ++i) {
                s += gyc[i];
            }
            gb[co - co_begin] = accumulate ? gb[co - co_begin] + s : s;
        }
        if (gw == NULL) {
            continue;
        }
        const float *xg = x + (co / cout_g) * cin_g * plane;
        float *gwc = gw + (co - co_begin) * cin_g * ksize;
        for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t offy = ky * d->dilation_h - d->pad_top;
            int32_t iy0, iy1;
            mt_valid_range(offy, sh, in_h, out_h, &iy0, &iy1);
            for (int32_t kx = 0; kx < kw; ++kx) {
                const int32_t offx = kx * d->dilation_w - d->pad_left;
                int32_t ix0, ix1;
                mt_valid_range(offx, sw, in_w, out_w, &ix0, &ix1);
                const int32_t nix = ix1 - ix0;
                for (int32_t ci = 0; ci < cin_g; ++ci) {
                    const float *xc = xg + ci * plane;
                    float acc = 0.0f;
                    for (int32_t iy = iy0; iy < iy1 && nix > 0; ++iy) {
                        const float *xp = xc + (iy * in_w + ix0);
                        const float *gp = gyc + ((iy * sh + offy) * out_w + ix0 * sw + offx);
                        for (int32_t t = 0; t < nix; ++t) {
                            acc += xp[t] * gp[t * sw];
                        }
                    }
                    float *dst = gwc + ci * ksize + ky * kw + kx;
                    *dst = accumulate ? *dst + acc : acc;
                }
            }
        }
    }
}

void mt_conv_transpose2d_bw_igrad_f32(const mt_conv_transpose2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                      const float *w, const float *gy, float *gx, int32_t accumulate,
                                      float *scratch)
{
    const int32_t cin_g = d->in_c / d->groups;
    const int32_t cout_g = d->out_c / d->groups;
    const int32_t kh = d->kernel_h, kw = d->kernel_w;
    const int32_t sh = d->stride_h, sw = d->stride_w;
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    const int32_t oplane = out_h * out_w;
    const int32_t ksize = kh * kw;
    (void)scratch;

    if (!accumulate) {
        mt_zero_f32(d->in_c * plane, gx);
    }
    for (int32_t co = co_begin; co < co_end; ++co) {
        const float *gyc = gy + co * oplane;
        float *gxg = gx + (co / cout_g) * cin_g * plane;
        const float *wc = w + (co - co_begin) * cin_g * ksize;
        for (int32_t ky = 0; ky < kh; ++ky) {
            const int32_t offy = ky * d->dilation_h - d->pad_top;
            int32_t iy0, iy1;
            mt_valid_range(offy, sh, in_h, out_h, &iy0, &iy1);
            for (int32_t kx = 0; kx < kw; ++kx) {
                const int32_t offx = kx * d->dilation_w - d->pad_left;
                int32_t ix0, ix1;
                mt_valid_range(offx, sw, in_w, out_w, &ix0, &ix1);
                const int32_t nix = ix1 - ix0;
                for (int32_t ci = 0; ci < cin_g; ++ci) {
                    const float wv = wc[ci * ksize + ky * kw + kx];
                    float *gxc = gxg + ci * plane;
                    for (int32_t iy = iy0; iy < iy1 && nix > 0; ++iy) {
                        float *xp = gxc + (iy * in_w + ix0);
                        const float *gp = gyc + ((iy * sh + offy) * out_w + ix0 * sw + offx);
                        for (int32_t t = 0; t < nix; ++t) {
                            xp[t] += wv * gp[t * sw];
                        }
                    }
                }
            }
        }
    }
}
