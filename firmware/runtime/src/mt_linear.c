/* linear: y = W x + b over an output-feature range. */
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
    (void)scratch;
    for (int32_t o = co_begin; o < co_end; ++o) {
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
    for (int32_t o = co_begin; o < co_end; ++o) {
        const float g = gy[o];
        if (gb != NULL) {
            gb[o - co_begin] = accumulate ? gb[o - co_begin] + g : g;
        }
        if (gw == NULL) {
            continue;
        }
        float *gr = gw + (o - co_begin) * nin;
        if (accumulate) {
            for (int32_t i = 0; i < nin; ++i) {
                gr[i] += g * x[i];
            }
        } else {
            for (int32_t i = 0; i < nin; ++i) {
                gr[i] = g * x[i];
            }
        }
    }
}

void mt_linear_bw_igrad_f32(const mt_linear_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                            const float *gy, float *gx, int32_t accumulate, float *scratch)
{
    const int32_t nin = d->in_features;
    (void)scratch;
    if (!accumulate) {
        mt_zero_f32(nin, gx);
    }
    for (int32_t o = co_begin; o < co_end; ++o) {
        const float g = gy[o];
        const float *wr = w + (o - co_begin) * nin;
        for (int32_t i = 0; i < nin; ++i) {
            gx[i] += g * wr[i];
        }
    }
}
