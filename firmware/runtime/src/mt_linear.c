/* linear: y = W x + b over an output-feature range.
 *
 * Rows are processed 4 at a time so that one load of x (forward, weight gradient) or of gx (input
 * gradient) serves 4 rows; each output still sums in the order of the straightforward loop, so the
 * results are the same floats. */
#include "mt_internal.h"

size_t mt_linear_fw_scratch_bytes(const mt_linear_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_linear_bw_wgrad_scratch_bytes(const mt_linear_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_linear_bw_igrad_scratch_bytes(const mt_linear_dims_t *d)
{
    (void)d;
    return 0u;
}

void mt_linear_fw_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                      const float *w, const float *b, float *y, float *scratch)
{
    const int32_t nin = d->in_features;
    int32_t o = co_begin;
    (void)scratch;
    for (; o + 4 <= co_end; o += 4) {
        const int32_t r = o - co_begin;
        const float *w0 = w + r * nin, *w1 = w0 + nin, *w2 = w1 + nin, *w3 = w2 + nin;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        if (b != NULL) {
            a0 = b[r];
            a1 = b[r + 1];
            a2 = b[r + 2];
            a3 = b[r + 3];
        }
        for (int32_t i = 0; i < nin; ++i) {
            const float xv = x[i];
            a0 += w0[i] * xv;
            a1 += w1[i] * xv;
            a2 += w2[i] * xv;
            a3 += w3[i] * xv;
        }
        y[o] = a0;
        y[o + 1] = a1;
        y[o + 2] = a2;
        y[o + 3] = a3;
    }
    for (; o < co_end; ++o) {
        const float *wr = w + (o - co_begin) * nin;
        float acc = b != NULL ? b[o - co_begin] : 0.0f;
        for (int32_t i = 0; i < nin; ++i) {
            acc += wr[i] * x[i];
        }
        y[o] = acc;
    }
}

void mt_linear_bw_wgrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                            const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch)
{
    const int32_t nin = d->in_features;
    (void)scratch;
    if (gb != NULL) {
        for (int32_t o = co_begin; o < co_end; ++o) {
            gb[o - co_begin] = accumulate ? gb[o - co_begin] + gy[o] : gy[o];
        }
    }
    if (gw == NULL) {
        return;
    }
    int32_t o = co_begin;
    for (; o + 4 <= co_end; o += 4) {
        float *g0 = gw + (o - co_begin) * nin, *g1 = g0 + nin, *g2 = g1 + nin, *g3 = g2 + nin;
        const float e0 = gy[o], e1 = gy[o + 1], e2 = gy[o + 2], e3 = gy[o + 3];
        if (accumulate) {
            for (int32_t i = 0; i < nin; ++i) {
                const float xv = x[i];
                g0[i] += e0 * xv;
                g1[i] += e1 * xv;
                g2[i] += e2 * xv;
                g3[i] += e3 * xv;
            }
        } else {
            for (int32_t i = 0; i < nin; ++i) {
                const float xv = x[i];
                g0[i] = e0 * xv;
                g1[i] = e1 * xv;
                g2[i] = e2 * xv;
                g3[i] = e3 * xv;
            }
        }
    }
    for (; o < co_end; ++o) {
        const float g = gy[o];
        float *gr = gw + (o - co_begin) * nin;
        MT_STORE_LOOP(nin, accumulate, gr, g * x[i]);
    }
}

void mt_linear_bw_igrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                            const float *gy, float *gx, int32_t accumulate, float *scratch)
{
    const int32_t nin = d->in_features;
    int32_t o = co_begin;
    (void)scratch;
    if (!accumulate) {
        mt_zero_f32(nin, gx);
    }
    for (; o + 4 <= co_end; o += 4) {
        const float *w0 = w + (o - co_begin) * nin, *w1 = w0 + nin, *w2 = w1 + nin, *w3 = w2 + nin;
        const float e0 = gy[o], e1 = gy[o + 1], e2 = gy[o + 2], e3 = gy[o + 3];
        for (int32_t i = 0; i < nin; ++i) {
            float v = gx[i];
            v += e0 * w0[i];
            v += e1 * w1[i];
            v += e2 * w2[i];
            v += e3 * w3[i];
            gx[i] = v;
        }
    }
    for (; o < co_end; ++o) {
        const float g = gy[o];
        const float *wr = w + (o - co_begin) * nin;
        for (int32_t i = 0; i < nin; ++i) {
            gx[i] += g * wr[i];
        }
    }
}
