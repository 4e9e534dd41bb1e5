/* int8 activations: relu / relu6 as a clamp, leaky relu (LiteRT's reference QuantizeLeakyRelu, two
 * requantizations), logistic (LiteRT's reference kernel is a 256-entry table, built at code generation
 * time). */
#include "mt_s8_internal.h"

void mt_clamp_fw_s8(int32_t lo, int32_t hi, int32_t n, const int8_t *x, int8_t *y)
{
    for (int32_t i = 0; i < n; ++i) {
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
