/* Global average / max pooling (C, H*W) -> (C,). */
#include "mt_internal.h"

void mt_global_avg_pool_fw_f32(int32_t c, int32_t hw, const float *x, float *y)
{
    const float scale = 1.0f / (float)hw;
    for (int32_t k = 0; k < c; ++k) {
        const float *xc = x + k * hw;
        float s = 0.0f;
        for (int32_t i = 0; i < hw; ++i) {
            s += xc[i];
        }
        y[k] = s * scale;
    }
}

void mt_global_avg_pool_bw_igrad_f32(int32_t c, int32_t hw, const float *gy, float *gx, int32_t accumulate)
{
    const float scale = 1.0f / (float)hw;
    for (int32_t k = 0; k < c; ++k) {
        const float g = gy[k] * scale;
        float *gxc = gx + k * hw;
        MT_STORE_LOOP(hw, accumulate, gxc, g);
    }
}

void mt_global_max_pool_fw_f32(int32_t c, int32_t hw, const float *x, float *y)
{
    for (int32_t k = 0; k < c; ++k) {
        const float *xc = x + k * hw;
        float m = xc[0];
        for (int32_t i = 1; i < hw; ++i) {
            m = xc[i] > m ? xc[i] : m;
        }
        y[k] = m;
    }
}

/* Like PyTorch's amax backward: the gradient is shared evenly by all elements equal to the maximum. */
void mt_global_max_pool_bw_igrad_f32(int32_t c, int32_t hw, const float *x, const float *gy, float *gx,
                                     int32_t accumulate)
{
    for (int32_t k = 0; k < c; ++k) {
        const float *xc = x + k * hw;
        float *gxc = gx + k * hw;
        float m = xc[0];
        for (int32_t i = 1; i < hw; ++i) {
            m = xc[i] > m ? xc[i] : m;
        }
        int32_t count = 0;
        for (int32_t i = 0; i < hw; ++i) {
            count += xc[i] == m;
        }
        const float g = gy[k] / (float)count;
        MT_STORE_LOOP(hw, accumulate, gxc, xc[i] == m ? g : 0.0f);
    }
}
