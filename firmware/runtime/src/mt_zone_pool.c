/* Zone pooling: means of a dense (1, h, w) map over a rows x cols grid of rectangular zones. */
#include "mt_internal.h"

void mt_zone_pool_fw_f32(const mt_zone_dims_t *d, const float *pred, float *zones)
{
    const float scale = 1.0f / (float)(d->zone_h * d->zone_w);
    for (int32_t i = 0; i < d->rows; ++i) {
        for (int32_t j = 0; j < d->cols; ++j) {
            const float *p = pred + (d->top + i * d->zone_h) * d->w + d->left + j * d->zone_w;
            float s = 0.0f;
            for (int32_t y = 0; y < d->zone_h; ++y) {
                const float *r = p + y * d->w;
                for (int32_t x = 0; x < d->zone_w; ++x) {
                    s += r[x];
                }
            }
            zones[i * d->cols + j] = s * scale;
        }
    }
}

void mt_zone_pool_bw_f32(const mt_zone_dims_t *d, const float *gzones, float *gpred, int32_t accumulate)
{
    const float scale = 1.0f / (float)(d->zone_h * d->zone_w);
    if (!accumulate) {
        mt_zero_f32(d->h * d->w, gpred);
    }
    for (int32_t i = 0; i < d->rows; ++i) {
        for (int32_t j = 0; j < d->cols; ++j) {
            const float g = gzones[i * d->cols + j] * scale;
            float *p = gpred + (d->top + i * d->zone_h) * d->w + d->left + j * d->zone_w;
            for (int32_t y = 0; y < d->zone_h; ++y) {
                float *r = p + y * d->w;
                for (int32_t x = 0; x < d->zone_w; ++x) {
                    r[x] += g;
                }
            }
        }
    }
}
