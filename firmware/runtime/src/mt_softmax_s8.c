/* softmax int8 forward (SOFTMAX int8 -> int8, output scale 1/256, zero point -128): LiteRT's reference
 * kernel, gemmlowp's fixed-point algorithm. The differences to the row maximum are rescaled to Q5.26
 * (beta and the input scale in one multiplier), exp() is evaluated in Q0.31 and summed in Q12.19; the
 * sum's reciprocal (Newton-Raphson) scales each exp to the output. */
#include "mt_s8_internal.h"

void mt_softmax_fw_s8(const mt_softmax_q8_t *q, int32_t n, const int8_t *x, int8_t *y)
{
    int32_t max = -128;
    for (int32_t i = 0; i < n; ++i) {
        max = x[i] > max ? x[i] : max;
    }
    int32_t sum = 0; /* Q12.19 */
    for (int32_t i = 0; i < n; ++i) {
        const int32_t diff = (int32_t)x[i] - max;
        if (diff >= q->diff_min) {
            const int32_t scaled = mt_srdhm(mt_shl32(diff, q->left_shift), q->mult);
            sum += mt_rdbpot(mt_exp_on_negative_values_q5_26(scaled), 12);
        }
    }
    /* GetReciprocal(sum, 12 integer bits) */
    const int32_t headroom_plus_one = mt_clz32((uint32_t)sum);
    const int32_t bits_over_unit = 12 - headroom_plus_one;
    const int32_t shifted_minus_one = (int32_t)(((uint32_t)sum << headroom_plus_one) - (1u << 31));
    const int32_t scale = mt_one_over_one_plus_x(shifted_minus_one);
    const int32_t exponent = bits_over_unit + 31 - 8;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t diff = (int32_t)x[i] - max;
        if (diff >= q->diff_min) {
            const int32_t scaled = mt_srdhm(mt_shl32(diff, q->left_shift), q->mult);
            const int32_t e = mt_exp_on_negative_values_q5_26(scaled);
            y[i] = mt_clamp_s8(mt_rdbpot(mt_srdhm(scale, e), exponent) - 128, -128, 127);
        } else {
            y[i] = -128;
        }
    }
}
