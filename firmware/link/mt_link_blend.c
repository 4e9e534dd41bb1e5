/**
 * @file mt_link_blend.c
 * @brief The running mean of the trained-on targets and the blended prediction of INFER BLEND (mt_link.h).
 *
 * Shrinking a noisy prediction toward a mean of what the sensor has measured is the textbook remedy for
 * variance (docs/depth.md, "The blend on the device"). Each mean is updated in place, mean += (t - mean)
 * / count, rather than kept as a sum: a float32 sum of a device's lifetime of distances loses its low
 * digits (after 10^6 samples of 0.3, its unit in the last place is 0.03), the update's error stays at the
 * size of one rounding. float32, in the order the samples arrived, so that the host reproduces it bit for
 * bit (mcutrain.demos.blend).
 */
#include "mt_link.h"

#include <math.h>
#include <string.h>

void mt_blend_reset(const mt_blend_t *b, uint32_t target_numel)
{
    memset(b->mean, 0, sizeof(float) * target_numel);
    memset(b->count, 0, sizeof(uint32_t) * target_numel);
}

void mt_blend_observe(const mt_blend_t *b, const float *target, const float *mask, uint32_t target_numel)
{
    for (uint32_t i = 0; i < target_numel; i++) {
        if ((mask == NULL || mask[i] != 0.0f) && isfinite(target[i])) { /* a NaN target would stay */
            const float d = target[i] - b->mean[i];
            b->count[i]++;
            b->mean[i] += d / (float)b->count[i];
        }
    }
}

void mt_blend_predict(const mt_blend_t *b, const float *y, uint32_t target_numel)
{
    const float a = b->a, rest = 1.0f - b->a;
    if (b->to_targets != NULL)
        b->to_targets(y, b->out);
    else
        memcpy(b->out, y, sizeof(float) * target_numel);
    for (uint32_t i = 0; i < target_numel; i++) {
        if (b->count[i] != 0u) {
            const float p = a * b->out[i];
            b->out[i] = p + rest * b->mean[i];
        }
    }
}
