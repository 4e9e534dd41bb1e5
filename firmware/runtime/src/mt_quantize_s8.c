/* float32 <-> int8 conversions (QUANTIZE, DEQUANTIZE) as LiteRT's reference kernels compute them. */
#include "mt_s8_internal.h"

void mt_quantize_fw_s8(const mt_quantize_q8_t *q, int32_t n, const float *x, int8_t *y)
{
    for (int32_t i = 0; i < n; ++i) {
        const float r = x[i] / q->scale;
        int32_t v;
        if (r != r) {
            v = 0; /* NaN */
        } else if (r >= 512.0f) {
            v = 512;
        } else if (r <= -512.0f) {
            v = -512;
        } else {
            /* round half away from zero: r - trunc(r) is exact */
            v = (int32_t)r;
            const float frac = r - (float)v;
            v += frac >= 0.5f ? 1 : (frac <= -0.5f ? -1 : 0);
        }
        y[i] = mt_clamp_s8(v + q->zp, -128, 127);
    }
}

void mt_dequantize_fw_s8(const mt_quantize_q8_t *q, int32_t n, const int8_t *x, float *y)
{
    for (int32_t i = 0; i < n; ++i) {
        y[i] = q->scale * (float)((int32_t)x[i] - q->zp);
    }
}
