/* conv2d, conv_transpose2d and linear over binary16 operands with float32 sums (straightforward loops:
 * per output value, bias first, then input channel, kernel row, kernel column, as the portable kernels).
 * Each product of two binary16 values is exact in float32; only the float32 additions round. */
#include "../runtime/src/mt_internal.h"
#include "mt_cl_f16_internal.h"

/* The small-plane positions [y0, y1) x [x0, x1) whose big partner under tap (ky, kx) lies inside. */
typedef struct {
    int32_t y0, y1, x0, x1, offy, offx;
} span_t;

static span_t span_of(const mt_hgeom_t *g, int32_t ky, int32_t kx)
{
    span_t s;
    s.offy = ky * g->dh - g->pt;
    s.offx = kx * g->dw - g->pl;
    mt_valid_range(s.offy, g->sh, g->sm_h, g->bg_h, &s.y0, &s.y1);
    mt_valid_range(s.offx, g->sw, g->sm_w, g->bg_w, &s.x0, &s.x1);
    return s;
}

/* small[p] += wv * big[partner of p] (gather, to_big == 0) or big[partner] += wv * small[p] (scatter). */
static void tap_axpy(const mt_hgeom_t *g, const span_t *s, int32_t to_big, float wv, const mt_half_t *src,
                     float *dst)
{
    for (int32_t sy = s->y0; sy < s->y1; ++sy) {
        const int32_t srow = sy * g->sm_w, brow = (sy * g->sh + s->offy) * g->bg_w + s->offx;
        for (int32_t sx = s->x0; sx < s->x1; ++sx) {
            const int32_t ps = srow + sx, pb = brow + sx * g->sw;
            if (to_big) {
                dst[pb] += wv * mt_f16_to_f32(src[ps]);
            } else {
                dst[ps] += wv * mt_f16_to_f32(src[pb]);
            }
        }
    }
}

/* sum over the tap's pairs of small[p] * big[partner of p] */
static float tap_dot(const mt_hgeom_t *g, const span_t *s, const mt_half_t *small, const mt_half_t *big)
{
    float acc = 0.0f;
    for (int32_t sy = s->y0; sy < s->y1; ++sy) {
        const int32_t srow = sy * g->sm_w, brow = (sy * g->sh + s->offy) * g->bg_w + s->offx;
        for (int32_t sx = s->x0; sx < s->x1; ++sx) {
            acc += mt_f16_to_f32(small[srow + sx]) * mt_f16_to_f32(big[brow + sx * g->sw]);
        }
    }
    return acc;
}

void mt_f16_fw(const mt_hgeom_t *g, int32_t co0, int32_t co1, const mt_half_t *x, const mt_half_t *w,
               const float *b, float *y)
{
    const int32_t plane = mt_hgeom_in_plane(g), oplane = mt_hgeom_out_plane(g), ksize = g->kh * g->kw;
    for (int32_t co = co0; co < co1; ++co) {
        float *yc = y + co * oplane;
        const mt_half_t *wc = w + (co - co0) * g->in_c * ksize;
        const float bias = b != NULL ? b[co - co0] : 0.0f;
        for (int32_t i = 0; i < oplane; ++i) {
            yc[i] = bias;
        }
        for (int32_t ci = 0; ci < g->in_c; ++ci) {
            for (int32_t k = 0; k < ksize; ++k) {
                const span_t s = span_of(g, k / g->kw, k % g->kw);
                tap_axpy(g, &s, g->transposed, mt_f16_to_f32(wc[ci * ksize + k]), x + ci * plane, yc);
            }
        }
    }
}

void mt_f16_wgrad(const mt_hgeom_t *g, int32_t co0, int32_t co1, const mt_half_t *x, const mt_half_t *gy,
                  float *gw, float *gb, int32_t accumulate)
{
    const int32_t plane = mt_hgeom_in_plane(g), oplane = mt_hgeom_out_plane(g), ksize = g->kh * g->kw;
    for (int32_t co = co0; co < co1; ++co) {
        const mt_half_t *gyc = gy + co * oplane;
        if (gb != NULL) {
            float sum = 0.0f;
            for (int32_t i = 0; i < oplane; ++i) {
                sum += mt_f16_to_f32(gyc[i]);
            }
            gb[co - co0] = accumulate ? gb[co - co0] + sum : sum;
        }
        if (gw == NULL) {
            continue;
        }
        float *gwc = gw + (co - co0) * g->in_c * ksize;
        for (int32_t ci = 0; ci < g->in_c; ++ci) {
            const mt_half_t *xc = x + ci * plane;
            for (int32_t k = 0; k < ksize; ++k) {
                const span_t s = span_of(g, k / g->kw, k % g->kw);
                const float v = g->transposed ? tap_dot(g, &s, xc, gyc) : tap_dot(g, &s, gyc, xc);
                float *dst = gwc + ci * ksize + k;
                *dst = accumulate ? *dst + v : v;
            }
        }
    }
}

void mt_f16_igrad(const mt_hgeom_t *g, int32_t co0, int32_t co1, const mt_half_t *w, const mt_half_t *gy,
                  float *gx, int32_t accumulate)
{
    const int32_t plane = mt_hgeom_in_plane(g), oplane = mt_hgeom_out_plane(g), ksize = g->kh * g->kw;
    if (!accumulate) {
        mt_zero_f32(g->in_c * plane, gx);
    }
    for (int32_t co = co0; co < co1; ++co) {
        const mt_half_t *wc = w + (co - co0) * g->in_c * ksize;
        for (int32_t ci = 0; ci < g->in_c; ++ci) {
            for (int32_t k = 0; k < ksize; ++k) {
                const span_t s = span_of(g, k / g->kw, k % g->kw);
                tap_axpy(g, &s, !g->transposed, mt_f16_to_f32(wc[ci * ksize + k]), gy + co * oplane,
                         gx + ci * plane);
            }
        }
    }
}
