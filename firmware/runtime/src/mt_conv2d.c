/* conv2d: forward, weight gradient, input gradient over an output-channel range. */
#include "mt_internal.h"

size_t mt_conv2d_fw_scratch_bytes(const mt_conv2d_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_conv2d_bw_wgrad_scratch_bytes(const mt_conv2d_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_conv2d_bw_igrad_scratch_bytes(const mt_conv2d_dims_t *d)
{
    (void)d;
    return 0u;
}

/* Output-stationary: each output element accumulates in a register over the taps that lie inside the
 * input (clipped once per output row / column, so the tap loops have no bounds checks). */
void mt_conv2d_fw_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                      const float *w, const float *b, float *y, float *scratch)
{
    const int32_t cin_g = d->in_c / d->groups;
    const int32_t cout_g = d->out_c / d->groups;
    const int32_t kh = d->kernel_h, kw = d->kernel_w;
    const int32_t sh = d->stride_h, sw = d->stride_w;
    const int32_t dh = d->dilation_h, dw = d->dilation_w;
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    const int32_t plane = in_h * in_w;
    const int32_t ksize = kh * kw;
    (void)scratch;

    for (int32_t co = co_begin; co < co_end; ++co) {
        const float *xg = x + (co / cout_g) * cin_g * plane;
        const float *wc = w + (co - co_begin) * cin_g * ksize;
        const float bias = b != NULL ? b[co - co_begin] : 0.0f;
        float *yc = y + co * out_h * out_w;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * sh - d->pad_top;
            int32_t ky0, ky1;
            mt_valid_range(iy0, dh, kh, in_h, &ky0, &ky1);
            float *yr = yc + oy * out_w;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * sw - d->pad_left;
                int32_t kx0, kx1;
                mt_valid_range(ix0, dw, kw, in_w, &kx0, &kx1);
                const int32_t nkx = kx1 - kx0;
                float acc = bias;
                for (int32_t ci = 0; ci < cin_g && nkx > 0; ++ci) {
                    const float *xc = xg + ci * plane;
                    const float *wk = wc + ci * ksize;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const float *xp = xc + ((iy0 + ky * dh) * in_w + ix0 + kx0 * dw);
                        const float *wp = wk + ky * kw + kx0;
                        for (int32_t t = 0; t < nkx; ++t) {
                            acc += wp[t] * xp[t * dw];
                        }
                    }
                }
                yr[ox] = acc;
            }
        }
    }
}

void mt_conv2d_bw_wgrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                            const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch)
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
            /* output rows whose tap ky lands inside the input */
            const int32_t offy = ky * d->dilation_h - d->pad_top;
            int32_t oy0, oy1;
            mt_valid_range(offy, sh, out_h, in_h, &oy0, &oy1);
            for (int32_t kx = 0; kx < kw; ++kx) {
                const int32_t offx = kx * d->dilation_w - d->pad_left;
                int32_t ox0, ox1;
                mt_valid_range(offx, sw, out_w, in_w, &ox0, &ox1);
                const int32_t nox = ox1 - ox0;
                for (int32_t ci = 0; ci < cin_g; ++ci) {
                    const float *xc = xg + ci * plane;
                    float acc = 0.0f;
                    for (int32_t oy = oy0; oy < oy1 && nox > 0; ++oy) {
                        const float *gp = gyc + oy * out_w + ox0;
                        const float *xp = xc + ((oy * sh + offy) * in_w + ox0 * sw + offx);
                        for (int32_t t = 0; t < nox; ++t) {
                            acc += gp[t] * xp[t * sw];
                        }
                    }
                    float *dst = gwc + ci * ksize + ky * kw + kx;
                    *dst = accumulate ? *dst + acc : acc;
                }
            }
        }
    }
}

/* Scatter per tap: gx rows receive w * gy along the output rows that read them. */
void mt_conv2d_bw_igrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                            const float *gy, float *gx, int32_t accumulate, float *scratch)
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
            int32_t oy0, oy1;
            mt_valid_range(offy, sh, out_h, in_h, &oy0, &oy1);
            for (int32_t kx = 0; kx < kw; ++kx) {
                const int32_t offx = kx * d->dilation_w - d->pad_left;
                int32_t ox0, ox1;
                mt_valid_range(offx, sw, out_w, in_w, &ox0, &ox1);
                const int32_t nox = ox1 - ox0;
                for (int32_t ci = 0; ci < cin_g; ++ci) {
                    const float wv = wc[ci * ksize + ky * kw + kx];
                    float *gxc = gxg + ci * plane;
                    for (int32_t oy = oy0; oy < oy1 && nox > 0; ++oy) {
                        const float *gp = gyc + oy * out_w + ox0;
                        float *xp = gxc + ((oy * sh + offy) * in_w + ox0 * sw + offx);
                        for (int32_t t = 0; t < nox; ++t) {
                            xp[t * sw] += wv * gp[t];
                        }
                    }
                }
            }
        }
    }
}
