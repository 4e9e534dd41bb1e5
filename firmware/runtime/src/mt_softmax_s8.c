/* softmax int8 forward (SOFTMAX int8 -> int8, output scale 1/256, zero point -128): LiteRT's reference
 * kernel, gemmlowp's fixed-point algorithm. The differences to the row maximum are rescaled to Q5.26
 * (beta and the input scale in one multiplier), exp() is evaluated in Q0.31 and summed in Q12.19; the
 * sum's reciprocal (Newton-Raphson) scales each exp to the output. */
#include "mt_s8_internal.h"

/* exp(a) for a Q0.31 a in [-1/4, 0): Taylor expansion around -1/8 (gemmlowp). */
static int32_t mt_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = mt_srdhm(x, x);
    const int32_t x3 = mt_srdhm(x2, x);
    const int32_t x4 = mt_srdhm(x2, x2);
    const int32_t x4_over_4 = mt_rdbpot(x4, 2);
    const int32_t poly = mt_rdbpot(mt_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return constant_term + mt_srdhm(constant_term, x + poly);
}

/* gemmlowp exp_on_negative_values for a Q5.26 a <= 0, as a Q0.31 value. */
static int32_t mt_exp_on_negative_values_q5_26(int32_t a)
{
    /* exp(-2^k) for k = -2 .. 4 in Q0.31 */
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = 1 << 24;
    const int32_t a_mod = (int32_t)((uint32_t)a & (uint32_t)(one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod - a;
    int32_t result = mt_exp_quarter(mt_sat_shl32(a_mod, 5));
    for (int32_t k = 0; k < 7; ++k) {
        if ((uint32_t)remainder & (1u << (24 + k))) {
            result = mt_srdhm(result, barrel[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a Q0.31 a in [0, 1), Q0.31. */
static int32_t mt_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = (int32_t)(((int64_t)a + INT32_MAX + 1) / 2); /* RoundingHalfSum(a, 1) */
    int32_t x = 1515870810 + mt_srdhm(half_denominator, -1010580540); /* 48/17 - 32/17 * d, Q2.29 */
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - mt_srdhm(half_denominator, x);
        x = x + mt_sat_shl32(mt_srdhm(x, one_minus), 2);
    }
    return mt_sat_shl32(x, 1);
}

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
