/* Elementwise activations: forward, derivative bit mask, backward from the mask or from the output. */
#include <math.h>

#include "mt_internal.h"

void mt_activation_fw_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y)
{
    switch (fn) {
    /* Written so that NaN passes through as in PyTorch (a comparison with NaN is false): the
     * training step's NaN/Inf guard must see a NaN input, not a ReLU that turned it into 0. */
    case MT_ACT_RELU:
        for (int32_t i = 0; i < n; ++i) {
            const float v = x[i];
            y[i] = v < 0.0f ? 0.0f : v;
        }
        break;
    case MT_ACT_RELU6:
        for (int32_t i = 0; i < n; ++i) {
            const float v = x[i];
            y[i] = v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
        }
        break;
    case MT_ACT_LEAKY_RELU:
        for (int32_t i = 0; i < n; ++i) {
            const float v = x[i];
            y[i] = v > 0.0f ? v : v * alpha;
        }
        break;
    case MT_ACT_SIGMOID:
        for (int32_t i = 0; i < n; ++i) {
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        }
        break;
    case MT_ACT_TANH:
        for (int32_t i = 0; i < n; ++i) {
            y[i] = tanhf(x[i]);
        }
        break;
    default:
        break;
    }
}

/* 1 where the derivative is the identity branch, judged from the forward output. */
static inline int mt_identity_branch(mt_act_t fn, float y)
{
    if (fn == MT_ACT_RELU6) {
        return y > 0.0f && y < 6.0f;
    }
    if (fn == MT_ACT_RELU || fn == MT_ACT_LEAKY_RELU) {
        return y > 0.0f;
    }
    return 0;
}

void mt_activation_mask_f32(mt_act_t fn, int32_t n, const float *y, uint8_t *mask)
{
    const int32_t full = n / 8;
    for (int32_t j = 0; j < full; ++j) {
        const float *yb = y + 8 * j;
        uint32_t bits = 0u;
        for (int32_t k = 0; k < 8; ++k) {
            bits |= (uint32_t)mt_identity_branch(fn, yb[k]) << k;
        }
        mask[j] = (uint8_t)bits;
    }
    if (n % 8 != 0) {
        uint32_t bits = 0u;
        for (int32_t k = 0; k < n % 8; ++k) {
            bits |= (uint32_t)mt_identity_branch(fn, y[8 * full + k]) << k;
        }
        mask[full] = (uint8_t)bits;
    }
}

void mt_activation_bw_mask_f32(mt_act_t fn, float alpha, int32_t n, const uint8_t *mask, const float *gy,
                               float *gx, int32_t accumulate)
{
    const float slope = fn == MT_ACT_LEAKY_RELU ? alpha : 0.0f;
    MT_STORE_LOOP(n, accumulate, gx, ((mask[i >> 3] >> (i & 7)) & 1u) ? gy[i] : gy[i] * slope);
}

void mt_activation_bw_f32(mt_act_t fn, float alpha, int32_t n, const float *y, const float *gy, float *gx,
                          int32_t accumulate)
{
    switch (fn) {
    case MT_ACT_RELU:
        MT_STORE_LOOP(n, accumulate, gx, y[i] > 0.0f ? gy[i] : 0.0f);
        break;
    case MT_ACT_LEAKY_RELU:
        MT_STORE_LOOP(n, accumulate, gx, y[i] > 0.0f ? gy[i] : gy[i] * alpha);
        break;
    case MT_ACT_RELU6:
        MT_STORE_LOOP(n, accumulate, gx, (y[i] > 0.0f && y[i] < 6.0f) ? gy[i] : 0.0f);
        break;
    case MT_ACT_SIGMOID:
        MT_STORE_LOOP(n, accumulate, gx, gy[i] * (1.0f - y[i]) * y[i]);
        break;
    case MT_ACT_TANH:
        MT_STORE_LOOP(n, accumulate, gx, gy[i] * (1.0f - y[i] * y[i]));
        break;
    default:
        break;
    }
}
