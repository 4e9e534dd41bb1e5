/* linear int8 forward (FULLY_CONNECTED) over an output-channel range. LiteRT's reference kernel rounds
 * double(acc) * scale with scale a double; mt_round_mul_f64 computes that IEEE double product and its
 * rounding exactly in integer arithmetic, so the kernel needs neither an FPU nor a double library. */
#include "mt_s8_internal.h"

/* round(double(acc) * mant * 2^exp2), halves away from zero, where the product is rounded to 53
 * significant bits (to nearest, ties to even) as an IEEE binary64 multiplication rounds it; mant is 0 or
 * a significand in [2^52, 2^53). The magnitude saturates at 2^24 (the int8 clamp follows). */
static int32_t mt_round_mul_f64(int32_t acc, uint64_t mant, int32_t exp2)
{
    const uint64_t sat = (uint64_t)1 << 24;
    if (acc == 0 || mant == 0) {
        return 0;
    }
    const uint32_t u = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    /* p = u * mant < 2^85, as hi * 2^64 + lo */
    const uint64_t p0 = (uint64_t)u * (uint32_t)mant;
    const uint64_t p1 = (uint64_t)u * (uint32_t)(mant >> 32);
    const uint64_t lo = p0 + (p1 << 32);
    const uint64_t hi = (p1 >> 32) + (lo < p0 ? 1u : 0u);
    const int32_t len = hi ? 64 + mt_bitlen64(hi) : mt_bitlen64(lo);
    uint64_t m = lo;
    int32_t e = exp2;
    if (len > 53) {
        const int32_t k = len - 53; /* 1 .. 32: drop k bits, round to nearest even */
        const uint64_t low_mask = ((uint64_t)1 << k) - 1u;
        const uint64_t half = (uint64_t)1 << (k - 1);
        const uint64_t rem = lo & low_mask;
        m = (lo >> k) | (hi << (64 - k));
        if (rem > half || (rem == half && (m & 1u))) {
            m += 1u;
        }
        e += k;
    }
    /* |double(acc) * scale| = m * 2^e, m < 2^54: round half away from zero to an integer */
    uint64_t r;
    if (e >= 0) {
        r = (e > 30 || m > (sat >> e)) ? sat : m << e;
    } else if (e < -63) {
        r = 0u;
    } else {
        r = (m >> -e) + ((m >> (-e - 1)) & 1u);
    }
    if (r > sat) {
        r = sat;
    }
    return acc < 0 ? -(int32_t)r : (int32_t)r;
}

size_t mt_linear_fw_s8_scratch_bytes(const mt_linear_dims_t *d)
{
    (void)d;
    return 0u;
}

void mt_linear_fw_s8(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                     const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch)
{
    const int32_t n = d->in_features, in_zp = q->in_zp;
    (void)scratch;
    for (int32_t o = co_begin; o < co_end; ++o) {
        const int32_t r = o - co_begin;
        const int8_t *wr = w + r * n;
        int32_t acc = 0;
        for (int32_t i = 0; i < n; ++i) {
            acc += (int32_t)wr[i] * ((int32_t)x[i] - in_zp);
        }
        if (b) {
            acc += b[r];
        }
        const int32_t v = mt_round_mul_f64(acc, q->scale_mant[r], q->scale_exp[r]);
        y[o] = mt_clamp_s8(v + q->out_zp, q->act_min, q->act_max);
    }
}
