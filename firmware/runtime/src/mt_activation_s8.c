/* int8 activations: relu / relu6 as a clamp, leaky relu (LiteRT's reference QuantizeLeakyRelu, two
 * requantizations), logistic (LiteRT's reference kernel is a 256-entry table, built at code generation
 * time). */
#include "mt_s8_dsp.h"

void mt_clamp_fw_s8(int32_t lo, int32_t hi, int32_t n, const int8_t *x, int8_t *y)
{
    int32_t i = 0;
#if MT_S8_DSP /* 4 bytes at a time: SSUB8 sets the GE flags per byte, SEL takes the bound where they say */
    const uint32_t lo4 = ((uint32_t)lo & 0xFFu) * 0x01010101u, hi4 = ((uint32_t)hi & 0xFFu) * 0x01010101u;
    for (; i + 4 <= n; i += 4) { /* in place (y == x) too: each word is read before it is written */
        uint32_t v = mt_ld32(x + i);
        (void)__ssub8((int8x4_t)v, (int8x4_t)lo4);
        v = __sel(v, lo4);
        (void)__ssub8((int8x4_t)hi4, (int8x4_t)v);
        mt_st32(y + i, __sel(v, hi4));
    }
#endif
    for (; i < n; ++i) {
        y[i] = mt_clamp_s8(x[i], lo, hi);
    }
}

void mt_leaky_relu_fw_s8(const mt_leaky_relu_q8_t *q, int32_t n, const int8_t *x, int8_t *y)
{
    for (int32_t i = 0; i < n; ++i) {
        const int32_t v = (int32_t)x[i] - q->in_zp;
        const int32_t r = v >= 0 ? mt_mbqm(v, q->identity_mult, q->identity_shift)
                                 : mt_mbqm(v, q->alpha_mult, q->alpha_shift);
        y[i] = mt_clamp_s8(r + q->out_zp, -128, 127);
    }
}

void mt_logistic_fw_s8(const int8_t *lut, int32_t n, const int8_t *x, int8_t *y)
{
    for (int32_t i = 0; i < n; ++i) {
        y[i] = lut[(int32_t)x[i] + 128];
    }
}
