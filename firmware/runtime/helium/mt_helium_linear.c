/* linear for Cortex-M55 with Helium (MVE): 4 rows x vectors of 4 inputs.
 *
 * Forward: per row a vector of partial sums over inputs i, i + 4, ... (the 4 rows share each input
 * vector), added across the lanes at the end: a different summation order than the portable kernel's
 * (float round-off). Input gradient: gx is updated 4 elements at a time with the 4 rows' contributions in
 * row order (VMUL by the row's output gradient, then VADD: the portable kernel's floats). Weight gradient:
 * each input vector times the 4 rows' output gradients, stored (or added) at once (the portable floats).
 * Whole vectors run unpredicated; the last 1-3 inputs are the lanes of predicated loads and stores. Rows
 * past the last multiple of 4 repeat a row (forward: not stored) or run one by one (gradients).
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
        const float *xp = x; /* pointers stepped on: loads with writeback, no index arithmetic */
        for (int32_t i = 0; i < n4; i += 4, xp += 4, w0 += 4, w1 += 4, w2 += 4, w3 += 4) {
            const float32x4_t v = vldrwq_f32(xp);
            a0 = vaddq_f32(a0, vmulq_f32(vldrwq_f32(w0), v));
            a1 = vaddq_f32(a1, vmulq_f32(vldrwq_f32(w1), v));
            a2 = vaddq_f32(a2, vmulq_f32(vldrwq_f32(w2), v));
            a3 = vaddq_f32(a3, vmulq_f32(vldrwq_f32(w3), v));
        }
        if (n4 < nin) {
            const float32x4_t v = vldrwq_z_f32(xp, tail);
            a0 = vaddq_f32(a0, vmulq_f32(vldrwq_z_f32(w0, tail), v));
            a1 = vaddq_f32(a1, vmulq_f32(vldrwq_z_f32(w1, tail), v));
            a2 = vaddq_f32(a2, vmulq_f32(vldrwq_z_f32(w2, tail), v));
            a3 = vaddq_f32(a3, vmulq_f32(vldrwq_z_f32(w3, tail), v));
        }
        const float s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
        for (int32_t l = 0; l < nl; ++l) {
            y[o + l] = b != NULL ? b[r + l] + s[l] : s[l];
        }
    }
}

/* gx[i..i+4) (lanes p) += g0*W0 + ... in row order, for nl (4 or 1) rows */
#define MT_HE_AXPY(p, LOAD)                                 \
    do {                                                    \
        float32x4_t v = LOAD(gp, p);                        \
        v = vaddq_f32(v, vmulq_n_f32(LOAD(w0, p), e0));     \
        if (nl == 4) {                                      \
            v = vaddq_f32(v, vmulq_n_f32(LOAD(w1, p), e1)); \
            v = vaddq_f32(v, vmulq_n_f32(LOAD(w2, p), e2)); \
            v = vaddq_f32(v, vmulq_n_f32(LOAD(w3, p), e3)); \
        }                                                   \
        if (p == 0xFFFF) {                                  \
            vstrwq_f32(gp, v);                              \
        } else {                                            \
            vstrwq_p_f32(gp, v, p);                         \
        }                                                   \
    } while (0)
#define MT_HE_LD(ptr, p)  vldrwq_f32(ptr)
#define MT_HE_LDZ(ptr, p) vldrwq_z_f32(ptr, p)

static inline __attribute__((always_inline)) void igrad_rows(const float *w0, int32_t nin, const float *gy,
                                                             float *gx, int32_t nl)
{
    const int32_t n4 = nin / 4 * 4;
    const mve_pred16_t tail = lanes_below(nin - n4);
    const float *w1 = w0 + nin, *w2 = w1 + nin, *w3 = w2 + nin;
    const float e0 = gy[0], e1 = nl == 4 ? gy[1] : 0.0f, e2 = nl == 4 ? gy[2] : 0.0f,
                e3 = nl == 4 ? gy[3] : 0.0f;
    float *gp = gx;
    for (int32_t i = 0; i < n4; i += 4, gp += 4, w0 += 4, w1 += 4, w2 += 4, w3 += 4) {
        MT_HE_AXPY(0xFFFF, MT_HE_LD);
    }
    if (n4 < nin) {
        MT_HE_AXPY(tail, MT_HE_LDZ);
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
    for (; o + 4 <= co_end; o += 4) {
        igrad_rows(w + (o - co_begin) * nin, nin, gy + o, gx, 4);
    }
    for (; o < co_end; ++o) {
        igrad_rows(w + (o - co_begin) * nin, nin, gy + o, gx, 1);
    }
}

/* gw rows (4 or 1) = (+=) e_row * x[i..i+4) (lanes p) */
#define MT_HE_OUTER(p, LOAD, STORE)           \
    do {                                      \
        const float32x4_t v = LOAD(xp, p);    \
        STORE(g0, vmulq_n_f32(v, e0), p);     \
        if (nl == 4) {                        \
            STORE(g1, vmulq_n_f32(v, e1), p); \
            STORE(g2, vmulq_n_f32(v, e2), p); \
            STORE(g3, vmulq_n_f32(v, e3), p); \
        }                                     \
    } while (0)
#define MT_HE_ST(ptr, v, p)  vstrwq_f32(ptr, acc ? vaddq_f32(vldrwq_f32(ptr), v) : v)
#define MT_HE_STP(ptr, v, p) vstrwq_p_f32(ptr, acc ? vaddq_f32(vldrwq_z_f32(ptr, p), v) : v, p)

static inline __attribute__((always_inline)) void wgrad_rows(const float *x, int32_t nin, const float *gy,
                                                             float *g0, int32_t nl, int32_t acc)
{
    const int32_t n4 = nin / 4 * 4;
    const mve_pred16_t tail = lanes_below(nin - n4);
    float *g1 = g0 + nin, *g2 = g1 + nin, *g3 = g2 + nin;
    const float e0 = gy[0], e1 = nl == 4 ? gy[1] : 0.0f, e2 = nl == 4 ? gy[2] : 0.0f,
                e3 = nl == 4 ? gy[3] : 0.0f;
    const float *xp = x;
    for (int32_t i = 0; i < n4; i += 4, xp += 4, g0 += 4, g1 += 4, g2 += 4, g3 += 4) {
        MT_HE_OUTER(0xFFFF, MT_HE_LD, MT_HE_ST);
    }
    if (n4 < nin) {
        MT_HE_OUTER(tail, MT_HE_LDZ, MT_HE_STP);
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
    int32_t o = co_begin;
    for (; o + 4 <= co_end; o += 4) {
        if (accumulate) {
            wgrad_rows(x, nin, gy + o, gw + (o - co_begin) * nin, 4, 1);
        } else {
            wgrad_rows(x, nin, gy + o, gw + (o - co_begin) * nin, 4, 0);
        }
    }
    for (; o < co_end; ++o) {
        wgrad_rows(x, nin, gy + o, gw + (o - co_begin) * nin, 1, accumulate);
    }
}
