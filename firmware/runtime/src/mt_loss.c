/* Losses: each returns the loss value and overwrites d loss / d pred (when the pointer is not NULL). */
#include <math.h>

#include "mt_internal.h"

float mt_loss_softmax_xent_f32(int32_t n, const float *logits, const float *target_prob, float *glogits)
{
    float m = logits[0];
    for (int32_t i = 1; i < n; ++i) {
        m = logits[i] > m ? logits[i] : m;
    }
    float s = 0.0f;
    float tsum = 0.0f;
    float tz = 0.0f; /* sum t * (z - m) */
    for (int32_t i = 0; i < n; ++i) {
        const float z = logits[i] - m;
        const float e = expf(z);
        tsum += target_prob[i];
        tz += target_prob[i] * z;
        s += e;
        if (glogits != NULL) {
            glogits[i] = e; /* after reading logits[i]: glogits may alias logits */
        }
    }
    /* loss = -sum t * (z - m - log s); both terms are >= 0 for t >= 0, so no cancellation */
    const float loss = tsum * logf(s) - tz;
    if (glogits != NULL) {
        const float scale = tsum / s;
        for (int32_t i = 0; i < n; ++i) {
            glogits[i] = glogits[i] * scale - target_prob[i];
        }
    }
    return loss;
}

/* Number of valid elements of a mask (NULL = all n valid; nonzero = valid). */
static int32_t mt_valid_count(int32_t n, const float *mask)
{
    if (mask == NULL) {
        return n;
    }
    int32_t count = 0;
    for (int32_t i = 0; i < n; ++i) {
        count += mask[i] != 0.0f;
    }
    return count;
}

static inline int mt_is_valid(const float *mask, int32_t i)
{
    return mask == NULL || mask[i] != 0.0f;
}

float mt_loss_mse_f32(int32_t n, const float *pred, const float *target, const float *mask, float *gpred)
{
    const int32_t count = mt_valid_count(n, mask);
    const float inv = count > 0 ? 1.0f / (float)count : 0.0f;
    float s = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        const float dlt = mt_is_valid(mask, i) ? pred[i] - target[i] : 0.0f;
        s += dlt * dlt;
        if (gpred != NULL) {
            gpred[i] = 2.0f * dlt * inv;
        }
    }
    return s * inv;
}

float mt_loss_l1_f32(int32_t n, const float *pred, const float *target, const float *mask, float *gpred)
{
    const int32_t count = mt_valid_count(n, mask);
    const float inv = count > 0 ? 1.0f / (float)count : 0.0f;
    float s = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        const float dlt = mt_is_valid(mask, i) ? pred[i] - target[i] : 0.0f;
        s += fabsf(dlt);
        if (gpred != NULL) {
            gpred[i] = dlt > 0.0f ? inv : (dlt < 0.0f ? -inv : 0.0f);
        }
    }
    return s * inv;
}

float mt_loss_berhu_f32(int32_t n, const float *pred, const float *target, const float *mask, float *gpred)
{
    const int32_t count = mt_valid_count(n, mask);
    const float inv = count > 0 ? 1.0f / (float)count : 0.0f;
    float amax = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        if (mt_is_valid(mask, i)) {
            const float a = fabsf(pred[i] - target[i]);
            amax = a > amax ? a : amax;
        }
    }
    const float c = 0.2f * amax;
    const float inv_c = c > 0.0f ? 1.0f / c : 0.0f;
    float s = 0.0f;
    for (int32_t i = 0; i < n; ++i) {
        const float dlt = mt_is_valid(mask, i) ? pred[i] - target[i] : 0.0f;
        const float a = fabsf(dlt);
        float g;
        if (a <= c) {
            s += a;
            g = dlt > 0.0f ? 1.0f : (dlt < 0.0f ? -1.0f : 0.0f);
        } else {
            s += (dlt * dlt + c * c) * 0.5f * inv_c;
            g = dlt * inv_c;
        }
        if (gpred != NULL) {
            gpred[i] = g * inv;
        }
    }
    return s * inv;
}
