/* global_avg_pool int8 forward (MEAN over H and W): LiteRT's reference QuantizedMeanOrSum, the division
 * by H*W folded into the multiplier. */
#include "mt_s8_internal.h"

void mt_global_avg_pool_fw_s8(const mt_global_avg_pool_q8_t *q, int32_t c, int32_t hw, const int8_t *x,
                              int8_t *y)
{
    for (int32_t ch = 0; ch < c; ++ch) {
        const int8_t *xc = x + ch * hw;
        int32_t s = 0;
        for (int32_t i = 0; i < hw; ++i) {
            s += xc[i];
        }
        const int32_t v = mt_mbqm(s - q->in_zp * hw, q->mult, q->shift) + q->out_zp;
        y[ch] = mt_clamp_s8(v, -128, 127);
    }
}
