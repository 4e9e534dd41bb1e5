/* C models of the register-blocked steps of mt_cortexm_internal.h: what the host build runs, and the
 * definition that each step's inline assembly (Cortex-M) implements operation for operation. */
#include "mt_cortexm_internal.h"

/* The span of n inputs at p, class edge: for LEFT the first one and for RIGHT the last one is 0. */
static void load_span(float *x, const float *p, int32_t edge, int32_t n)
{
    const int32_t left = edge == MT_EDGE_LEFT;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t pad = (left && i == 0) || (edge == MT_EDGE_RIGHT && i == n - 1);
        x[i] = pad ? 0.0f : p[i - left];
    }
}

void mt_cm_corr_c(float a[16], const float *p, int32_t edge, int32_t kw, int32_t s, int32_t flip,
                  const float *w[4])
{
    float x[9];
    load_span(x, p, edge, 3 * s + kw);
    for (int32_t l = 0; l < 4; ++l) {
        for (int32_t k = 0; k < kw; ++k) {
            const float wk = w[l][k];
            const int32_t t = flip ? kw - 1 - k : k;
            for (int32_t j = 0; j < 4; ++j) {
                a[4 * l + j] += wk * x[j * s + t];
            }
        }
        w[l] += kw;
    }
}

void mt_cm_igrad_s2_c(float a[16], const float *p, int32_t edge, int32_t kw, const float *w[4])
{
    float g[3];
    load_span(g, p, edge, 3);
    for (int32_t l = 0; l < 4; ++l) {
        const float *u = w[l];
        float *r = a + 4 * l;
        r[0] += u[0] * g[1];
        if (kw == 3) {
            r[0] += u[2] * g[0];
            r[1] += u[1] * g[1];
        }
        r[2] += u[0] * g[2];
        if (kw == 3) {
            r[2] += u[2] * g[1];
            r[3] += u[1] * g[2];
        }
        w[l] += kw;
    }
}

void mt_cm_wgrad_c(float a[12], const float *p, int32_t edge, int32_t kw, int32_t s, int32_t npx,
                   const float *g[4])
{
    float x[9];
    load_span(x, p, edge, (npx - 1) * s + kw);
    for (int32_t l = 0; l < 4; ++l) {
        for (int32_t j = 0; j < npx; ++j) {
            for (int32_t k = 0; k < kw; ++k) {
                a[3 * l + k] += g[l][j] * x[j * s + k];
            }
        }
        g[l] += npx;
    }
}

void mt_cm_dot_c(float a[12], const float *x, int32_t n, const float *w[4])
{
    for (int32_t l = 0; l < 4; ++l) {
        for (int32_t i = 0; i < n; ++i) {
            a[3 * l] += w[l][i] * x[i];
        }
        w[l] += n;
    }
}

void mt_cm_axpy_c(float *gx, int32_t n, int32_t nl, const float g[4], const float *w[4])
{
    for (int32_t i = 0; i < n; ++i) {
        float v = gx[i];
        for (int32_t l = 0; l < nl; ++l) {
            v += g[l] * w[l][i];
        }
        gx[i] = v;
    }
    for (int32_t l = 0; l < nl; ++l) {
        w[l] += n;
    }
}

void mt_cm_outer_c(const float *x, int32_t n, int32_t nl, const float g[4], float *w[4], int32_t acc)
{
    for (int32_t l = 0; l < nl; ++l) {
        for (int32_t i = 0; i < n; ++i) {
            w[l][i] = acc ? w[l][i] + g[l] * x[i] : g[l] * x[i];
        }
        w[l] += n;
    }
}
