/* copy / accumulate / scale: forward of concat, backward of add, reshape and concat, and the 1/B of
 * gradients accumulated over a mini-batch. */
#include "mt_internal.h"

void mt_copy_f32(int32_t n, const float *src, float *dst)
{
    if (src == dst) {
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}

void mt_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate)
{
    if (!accumulate) {
        mt_copy_f32(n, src, dst);
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        dst[i] += src[i];
    }
}

void mt_scale_f32(int32_t n, float *x, float s)
{
    for (int32_t i = 0; i < n; ++i) {
        x[i] *= s;
    }
}
