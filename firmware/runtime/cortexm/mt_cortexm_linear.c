/* linear for Cortex-M4F/M7/M55: 4 rows x 8 inputs per register-blocked step (mt_cortexm_internal.h).
 *
 * Forward: one VLDM of 8 inputs serves the 4 rows' dot products (one VLDMIA of 8 weights and 8 VMLA per
 * row). Input gradient: 8 elements of gx are loaded, get the 4 rows' contributions in row order and are
 * stored back. Weight gradient: 8 inputs times the 4 rows' output gradients, stored (or added) with one
 * VSTMIA per row. Every sum runs in the order of the portable kernels (inputs ascending; rows ascending),
 * so the results are the same floats. Inputs past the last multiple of 8 and rows past the last multiple
 * of 4 run in C.
 */
#include "mt_cortexm_internal.h"
#include "mt_cortexm_kernels.h"

#define MT_CM_EACH_LANE(M) M(0) M(1) M(2) M(3)

/* a[3L] += the dot products of 8 inputs at x with lanes w[L] (advanced by 8) */
MT_CM_INLINE void dot8(float a[12], const float *x, const float *w[4])
{
#if MT_CM_ASM
#define MT_CM_DOT_LANE(L) MT_CM_W8(L) MT_CM_DOT8(L)
    __asm__("vldm %[p], {s16-s23}\n\t" MT_CM_EACH_LANE(MT_CM_DOT_LANE)
            : MT_CM_ACC4(a), [w0] "+r"(w[0]), [w1] "+r"(w[1]), [w2] "+r"(w[2]), [w3] "+r"(w[3])
            : [p] "r"(x)
            : MT_CM_CLOB_ALL);
#undef MT_CM_DOT_LANE
#else
    mt_cm_dot_c(a, x, 8, w);
#endif
}

/* gx[0..8) += g[0]*W_0 + ... + g[nl-1]*W_nl-1, added in lane order (w[L] and gx advanced by 8); nl 4 or 1 */
MT_CM_INLINE void axpy8(float **gx, int32_t nl, const float g[4], const float *w[4])
{
#if MT_CM_ASM
    if (nl == 4) {
        __asm__ volatile("vldm %[p], {s16-s23}\n\t" MT_CM_EACH_LANE(MT_CM_AXPY8) "vstmia %[p]!, {s16-s23}\n\t"
                         : [w0] "+r"(w[0]), [w1] "+r"(w[1]), [w2] "+r"(w[2]), [w3] "+r"(w[3]), [p] "+r"(*gx)
                         : [g0] "t"(g[0]), [g1] "t"(g[1]), [g2] "t"(g[2]), [g3] "t"(g[3])
                         : MT_CM_CLOB_ALL);
    } else {
        __asm__ volatile("vldm %[p], {s16-s23}\n\t" MT_CM_AXPY8(0) "vstmia %[p]!, {s16-s23}\n\t"
                         : [w0] "+r"(w[0]), [p] "+r"(*gx)
                         : [g0] "t"(g[0])
                         : MT_CM_CLOB_ALL);
    }
#else
    mt_cm_axpy_c(*gx, 8, nl, g, w);
    *gx += 8;
#endif
}

/* W_L[0..8) = g[L] * x (acc 0) or W_L + g[L] * x (acc 1) for L < nl (4 or 1), w[L] advanced by 8 */
MT_CM_INLINE void outer8(const float *x, int32_t nl, const float g[4], float *w[4], int32_t acc)
{
#if MT_CM_ASM
#define MT_CM_OUTER(LANES)                                                                        \
    __asm__ volatile("vldm %[p], {s16-s23}\n\t" LANES                                             \
                     : [w0] "+r"(w[0]), [w1] "+r"(w[1]), [w2] "+r"(w[2]), [w3] "+r"(w[3])         \
                     : [p] "r"(x), [g0] "t"(g[0]), [g1] "t"(g[1]), [g2] "t"(g[2]), [g3] "t"(g[3]) \
                     : MT_CM_CLOB_ALL)
    if (nl == 4 && acc) {
        MT_CM_OUTER(MT_CM_EACH_LANE(MT_CM_ADD8));
    } else if (nl == 4) {
        MT_CM_OUTER(MT_CM_EACH_LANE(MT_CM_SET8));
    } else if (acc) {
        MT_CM_OUTER(MT_CM_ADD8(0));
    } else {
        MT_CM_OUTER(MT_CM_SET8(0));
    }
#undef MT_CM_OUTER
#else
    mt_cm_outer_c(x, 8, nl, g, w, acc);
#endif
}

static int32_t lane_of(int32_t l, int32_t n)
{
    return l < n ? l : n - 1;
}

void mt_linear_fw_cortexm_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                              const float *w, const float *b, float *y, float *scratch)
{
    const int32_t nin = d->in_features, n8 = nin / 8 * 8;
    (void)scratch;
    for (int32_t o = co_begin; o < co_end; o += 4) {
        const int32_t r = o - co_begin, nl = co_end - o < 4 ? co_end - o : 4;
        const float *wl[4] = {w + r * nin, w + (r + lane_of(1, nl)) * nin, w + (r + lane_of(2, nl)) * nin,
                              w + (r + lane_of(3, nl)) * nin};
        float a[12];
        a[0] = b != NULL ? b[r] : 0.0f;
        a[3] = b != NULL ? b[r + lane_of(1, nl)] : 0.0f;
        a[6] = b != NULL ? b[r + lane_of(2, nl)] : 0.0f;
        a[9] = b != NULL ? b[r + lane_of(3, nl)] : 0.0f;
        for (int32_t i = 0; i < n8; i += 8) {
            dot8(a, x + i, wl);
        }
        if (n8 < nin) { /* through copies: a and wl stay in registers */
            float t[12] = {a[0], 0.0f, 0.0f, a[3], 0.0f, 0.0f, a[6], 0.0f, 0.0f, a[9], 0.0f, 0.0f};
            const float *tw[4] = {wl[0], wl[1], wl[2], wl[3]};
            mt_cm_dot_c(t, x + n8, nin - n8, tw);
            a[0] = t[0];
            a[3] = t[3];
            a[6] = t[6];
            a[9] = t[9];
        }
        y[o] = a[0];
        if (nl > 1) {
            y[o + 1] = a[3];
        }
        if (nl > 2) {
            y[o + 2] = a[6];
        }
        if (nl > 3) {
            y[o + 3] = a[9];
        }
    }
}

/* The input gradient of rows [o, o + nl) (nl 4 or 1; a constant where inlined). */
MT_CM_INLINE void igrad_rows(const float *w, const float *gy, float *gx, int32_t nin, int32_t nl)
{
    const int32_t n8 = nin / 8 * 8;
    const float *wl[4] = {w, w + nin, w + 2 * nin, w + 3 * nin};
    const float g[4] = {gy[0], nl > 1 ? gy[1] : 0.0f, nl > 2 ? gy[2] : 0.0f, nl > 3 ? gy[3] : 0.0f};
    float *p = gx;
    for (int32_t i = 0; i < n8; i += 8) {
        axpy8(&p, nl, g, wl);
    }
    if (n8 < nin) { /* through copies: wl and g stay in registers */
        const float *tw[4] = {wl[0], wl[1], wl[2], wl[3]};
        const float tg[4] = {g[0], g[1], g[2], g[3]};
        mt_cm_axpy_c(gx + n8, nin - n8, nl, tg, tw);
    }
}

void mt_linear_bw_igrad_cortexm_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *w, const float *gy, float *gx, int32_t accumulate,
                                    float *scratch)
{
    const int32_t nin = d->in_features;
    int32_t o = co_begin;
    (void)scratch;
    if (!accumulate) {
        mt_zero_f32(nin, gx);
    }
    for (; o + 4 <= co_end; o += 4) {
        igrad_rows(w + (o - co_begin) * nin, gy + o, gx, nin, 4);
    }
    for (; o < co_end; ++o) {
        igrad_rows(w + (o - co_begin) * nin, gy + o, gx, nin, 1);
    }
}

/* The weight gradient of rows [o, o + nl) (nl 4 or 1). */
MT_CM_INLINE void wgrad_rows(const float *x, const float *gy, float *gw, int32_t nin, int32_t nl, int32_t acc)
{
    const int32_t n8 = nin / 8 * 8;
    float *wl[4] = {gw, gw + nin, gw + 2 * nin, gw + 3 * nin};
    const float g[4] = {gy[0], nl > 1 ? gy[1] : 0.0f, nl > 2 ? gy[2] : 0.0f, nl > 3 ? gy[3] : 0.0f};
    for (int32_t i = 0; i < n8; i += 8) {
        outer8(x + i, nl, g, wl, acc);
    }
    if (n8 < nin) { /* through copies: wl and g stay in registers */
        float *tw[4] = {wl[0], wl[1], wl[2], wl[3]};
        const float tg[4] = {g[0], g[1], g[2], g[3]};
        mt_cm_outer_c(x + n8, nin - n8, nl, tg, tw, acc);
    }
}

void mt_linear_bw_wgrad_cortexm_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end,
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
        wgrad_rows(x, gy + o, gw + (o - co_begin) * nin, nin, 4, accumulate);
    }
    for (; o < co_end; ++o) {
        wgrad_rows(x, gy + o, gw + (o - co_begin) * nin, nin, 1, accumulate);
    }
}
