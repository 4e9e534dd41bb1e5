/* linear for Cortex-M55 with Helium (MVE): vectors of 4 inputs.
 *
 * Forward: per row a vector of partial sums over inputs i, i + 4, ... (4 rows share each input vector),
 * added across the lanes at the end (a different summation order than the portable kernel's: float
 * round-off). Input gradient: gx is updated 4 elements at a time with the rows' contributions in row order
 * (VMUL by the row's output gradient, then VADD: the portable kernel's floats). Weight gradient: each
 * row's 4 products per input vector are stored (or added) at once (the portable floats). Inputs past the
 * last multiple of 4 are lanes of predicated loads and stores.
 */
#include <arm_mve.h>

#include "../src/mt_internal.h"
#include "mt_helium_kernels.h"

static mve_pred16_t lanes_below(int32_t n)
{
    return (mve_pred16_t)((1u << (4 * n)) - 1u);
}

static float hsum(float32x4_t v)
{
    return (vgetq_lane_f32(v, 0) + vgetq_lane_f32(v, 1)) + (vgetq_lane_f32(v, 2) + vgetq_lane_f32(v, 3));
}

void mt_linear_fw_helium_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                             const float *w, const float *b, float *y, float *scratch)
{
    const int32_t nin = d->in_features, n4 = nin / 4 * 4;
    const mve_pred16_t tail = lanes_below(nin - n4);
    (void)scratch;
    for (int32_t o = co_begin; o < co_end; o += 4) {
        const int32_t r = o - co_begin, nl = co_end - o < 4 ? co_end - o : 4;
        const float *w0 = w + r * nin, *w1 = w0 + (nl > 1) * nin, *w2 = w0 + (nl > 2 ? 2 : nl - 1) * nin;
        const float *w3 = w0 + (nl - 1) * nin;
        float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int32_t i = 0; i < n4; i += 4) {
            const float32x4_t v = vldrwq_f32(x + i);
            a0 = vaddq_f32(a0, vmulq_f32(vldrwq_f32(w0 + i), v));
            a1 = vaddq_f32(a1, vmulq_f32(vldrwq_f32(w1 + i), v));
            a2 = vaddq_f32(a2, vmulq_f32(vldrwq_f32(w2 + i), v));
            a3 = vaddq_f32(a3, vmulq_f32(vldrwq_f32(w3 + i), v));
        }
        if (n4 < nin) {
            const float32x4_t v = vldrwq_z_f32(x + n4, tail);
            a0 = vaddq_f32(a0, vmulq_f32(vldrwq_z_f32(w0 + n4, tail), v));
            a1 = vaddq_f32(a1, vmulq_f32(vldrwq_z_f32(w1 + n4, tail), v));
            a2 = vaddq_f32(a2, vmulq_f32(vldrwq_z_f32(w2 + n4, tail), v));
            a3 = vaddq_f32(a3, vmulq_f32(vldrwq_z_f32(w3 + n4, tail), v));
        }
        const float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
        for (int32_t l = 0; l < nl; ++l) {
            y[o + l] = b != NULL ? b[r + l] + s[l] : s[l];
        }
    }
}

void mt_linear_bw_igrad_helium_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *w, const float *gy, float *gx, int32_t accumulate,
                                   float *scratch)
{
    const int32_t nin = d->in_features;
    (void)scratch;
    if (!accumulate) {
        mt_zero_f32(nin, gx);
    }
    int32_t o = co_begin;
    for (; o + 4 <= co_end; o += 4) { /* 4 rows per pass over gx */
        const float *w0 = w + (o - co_begin) * nin, *w1 = w0 + nin, *w2 = w1 + nin, *w3 = w2 + nin;
        const float e0 = gy[o], e1 = gy[o + 1], e2 = gy[o + 2], e3 = gy[o + 3];
        for (int32_t i = 0; i < nin; i += 4) {
            const mve_pred16_t p = vctp32q((uint32_t)(nin - i));
            float32x4_t v = vldrwq_z_f32(gx + i, p);
            v = vaddq_f32(v, vmulq_n_f32(vldrwq_z_f32(w0 + i, p), e0));
            v = vaddq_f32(v, vmulq_n_f32(vldrwq_z_f32(w1 + i, p), e1));
            v = vaddq_f32(v, vmulq_n_f32(vldrwq_z_f32(w2 + i, p), e2));
            v = vaddq_f32(v, vmulq_n_f32(vldrwq_z_f32(w3 + i, p), e3));
            vstrwq_p_f32(gx + i, v, p);
        }
    }
    for (; o < co_end; ++o) {
        const float *wr = w + (o - co_begin) * nin;
        const float e = gy[o];
        for (int32_t i = 0; i < nin; i += 4) {
            const mve_pred16_t p = vctp32q((uint32_t)(nin - i));
            const float32x4_t v = vaddq_f32(vldrwq_z_f32(gx + i, p), vmulq_n_f32(vldrwq_z_f32(wr + i, p), e));
            vstrwq_p_f32(gx + i, v, p);
        }
    }
}

void mt_linear_bw_wgrad_helium_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                   float *scratch)
{
    const int32_t nin = d->in_features;
    (void)scratch;
    if (gb != NULL) {
        MT_STORE_LOOP(co_end - co_begin, accumulate, gb, gy[co_begin + i]);
    }
    if (gw == NULL) {
        return;
    }
    for (int32_t o = co_begin; o < co_end; ++o) {
        float *gr = gw + (o - co_begin) * nin;
        const float e = gy[o];
        for (int32_t i = 0; i < nin; i += 4) {
            const mve_pred16_t p = vctp32q((uint32_t)(nin - i));
            float32x4_t v = vmulq_n_f32(vldrwq_z_f32(x + i, p), e);
            if (accumulate) {
                v = vaddq_f32(vldrwq_z_f32(gr + i, p), v);
            }
            vstrwq_p_f32(gr + i, v, p);
        }
    }
}
