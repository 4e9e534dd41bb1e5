/* softmax over a vector. */
#include <math.h>

#include "mt_internal.h"

void mt_softmax_fw_f32(int32_t n, const float *x, float *y)
{
    float m = x[0];
    for (int32_t i = 1; i < n; ++i) {
        m = x[i] > m ? x[i] : m;
    }
    float s = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        const float e = expf(x[i] - m);
        y[i] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (int32_t i = 0; i < n; ++i) {
        y[i] *= inv;
    }
}

void mt_softmax_bw_igrad_f32(int32_t n, const float *y, const float *gy, float *gx, int32_t accumulate)
{
    float dot = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        dot += gy[i] * y[i];
    }
    MT_STORE_LOOP(n, accumulate, gx, y[i] * (gy[i] - dot));
}
