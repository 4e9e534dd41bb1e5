/* upsample by integer factors: nearest and bilinear, as F.interpolate(x, size=(H*sh, W*sw), mode=...). */
#include "mt_internal.h"

/* Nearest: output (oy, ox) reads input (oy / sh, ox / sw). (PyTorch computes floor(o * (float)in/out);
 * for integer factors that equals o / s.) */
void mt_upsample_nearest_fw_f32(const mt_upsample_dims_t *d, const float *x, float *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, sh = d->scale_h, sw = d->scale_w;
    const int32_t out_w = in_w * sw;
    for (int32_t c = 0; c < d->c; ++c) {
        for (int32_t iy = 0; iy < in_h; ++iy) {
            const float *xr = x + (c * in_h + iy) * in_w;
            float *y0 = y + (c * in_h + iy) * sh * out_w;
            for (int32_t ix = 0; ix < in_w; ++ix) {
                const float v = xr[ix];
                float *yp = y0 + ix * sw;
                for (int32_t k = 0; k < sw; ++k) {
                    yp[k] = v;
                }
            }
            for (int32_t r = 1; r < sh; ++r) { /* repeat the row */
                float *yr = y0 + r * out_w;
                for (int32_t i = 0; i < out_w; ++i) {
                    yr[i] = y0[i];
                }
            }
        }
    }
}

void mt_upsample_nearest_bw_igrad_f32(const mt_upsample_dims_t *d, const float *gy, float *gx,
                                      int32_t accumulate)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, sh = d->scale_h, sw = d->scale_w;
    const int32_t out_w = in_w * sw;
    for (int32_t c = 0; c < d->c; ++c) {
        for (int32_t iy = 0; iy < in_h; ++iy) {
            const float *g0 = gy + (c * in_h + iy) * sh * out_w;
            float *gr = gx + (c * in_h + iy) * in_w;
            for (int32_t ix = 0; ix < in_w; ++ix) {
                float s = 0.0f;
                for (int32_t r = 0; r < sh; ++r) {
                    const float *gp = g0 + r * out_w + ix * sw;
                    for (int32_t k = 0; k < sw; ++k) {
                        s += gp[k];
                    }
                }
                gr[ix] = accumulate ? gr[ix] + s : s;
            }
        }
    }
}

/* Source position scale, as PyTorch's area_pixel_compute_scale (float arithmetic). */
static inline float mt_bilinear_scale(int32_t in, int32_t out, int32_t align_corners)
{
    if (align_corners) {
        return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    }
    return (float)in / (float)out;
}

/* Output index o -> neighbours i0, i1 and weights l0, l1, as PyTorch (half-pixel source clamped at 0,
 * i1 == i0 at the last row/column). */
static inline void mt_bilinear_src(int32_t o, float scale, int32_t align_corners, int32_t in, int32_t *i0,
                                   int32_t *i1, float *l0, float *l1)
{
    float src = align_corners ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0.0f) {
        src = 0.0f;
    }
    int32_t i = (int32_t)src; /* floor: src >= 0 */
    if (i > in - 1) {
        i = in - 1;
    }
    const float lam = src - (float)i;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *l1 = lam;
    *l0 = 1.0f - lam;
}

/* Loop order oy, ox, c: the source indices and weights are computed once per output position and
 * shared by all channels. */
void mt_upsample_bilinear_fw_f32(const mt_upsample_dims_t *d, const float *x, float *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w;
    const int32_t out_h = in_h * d->scale_h, out_w = in_w * d->scale_w;
    const int32_t plane = in_h * in_w, oplane = out_h * out_w;
    const float scale_h = mt_bilinear_scale(in_h, out_h, d->align_corners);
    const float scale_w = mt_bilinear_scale(in_w, out_w, d->align_corners);
    for (int32_t oy = 0; oy < out_h; ++oy) {
        int32_t h0, h1;
        float lh0, lh1;
        mt_bilinear_src(oy, scale_h, d->align_corners, in_h, &h0, &h1, &lh0, &lh1);
        for (int32_t ox = 0; ox < out_w; ++ox) {
            int32_t w0, w1;
            float lw0, lw1;
            mt_bilinear_src(ox, scale_w, d->align_corners, in_w, &w0, &w1, &lw0, &lw1);
            const float *x00 = x + h0 * in_w + w0;
            const int32_t dw = w1 - w0, dh = (h1 - h0) * in_w;
            float *yp = y + oy * out_w + ox;
            for (int32_t c = 0; c < d->c; ++c) {
                const float *p = x00 + c * plane;
                yp[c * oplane] = lh0 * (lw0 * p[0] + lw1 * p[dw]) + lh1 * (lw0 * p[dh] + lw1 * p[dh + dw]);
            }
        }
    }
}

void mt_upsample_bilinear_bw_igrad_f32(const mt_upsample_dims_t *d, const float *gy, float *gx,
                                       int32_t accumulate)
{
    const int32_t in_h = d->in_h, in_w = d->in_w;
    const int32_t out_h = in_h * d->scale_h, out_w = in_w * d->scale_w;
    const int32_t plane = in_h * in_w, oplane = out_h * out_w;
    const float scale_h = mt_bilinear_scale(in_h, out_h, d->align_corners);
    const float scale_w = mt_bilinear_scale(in_w, out_w, d->align_corners);
    if (!accumulate) {
        mt_zero_f32(d->c * plane, gx);
    }
    for (int32_t oy = 0; oy < out_h; ++oy) {
        int32_t h0, h1;
        float lh0, lh1;
        mt_bilinear_src(oy, scale_h, d->align_corners, in_h, &h0, &h1, &lh0, &lh1);
        for (int32_t ox = 0; ox < out_w; ++ox) {
            int32_t w0, w1;
            float lw0, lw1;
            mt_bilinear_src(ox, scale_w, d->align_corners, in_w, &w0, &w1, &lw0, &lw1);
            const float c00 = lh0 * lw0, c01 = lh0 * lw1, c10 = lh1 * lw0, c11 = lh1 * lw1;
            float *g00 = gx + h0 * in_w + w0;
            const int32_t dw = w1 - w0, dh = (h1 - h0) * in_w;
            const float *gp = gy + oy * out_w + ox;
            for (int32_t c = 0; c < d->c; ++c) {
                float *p = g00 + c * plane;
                const float g = gp[c * oplane];
                p[0] += c00 * g;
                p[dw] += c01 * g;
                p[dh] += c10 * g;
                p[dh + dw] += c11 * g;
            }
        }
    }
}
