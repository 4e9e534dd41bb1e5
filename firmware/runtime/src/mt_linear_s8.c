/* linear int8 forward (FULLY_CONNECTED) over an output-channel range. LiteRT's reference kernel rounds
 * double(acc) * scale with scale a double; mt_round_mul_f64 computes that IEEE double product and its
 * rounding exactly in integer arithmetic, so the kernel needs neither an FPU nor a double library. */
#include "mt_s8_dsp.h"

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

/* y[o] of one output from its accumulator (bias included). */
static inline int8_t mt_linear_out(const mt_linear_q8_t *q, int32_t r, int32_t acc)
{
    return mt_clamp_s8(mt_round_mul_f64(acc, q->scale_mant[r], q->scale_exp[r]) + q->out_zp, q->act_min,
                       q->act_max);
}

size_t mt_linear_fw_s8_scratch_bytes(const mt_linear_dims_t *d)
{
    (void)d;
    return 0u;
}

void mt_linear_fw_s8(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                     const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch)
{
    (void)scratch;
#if MT_S8_DSP
    if (mt_linear_fw_s8_dsp(d, q, co_begin, co_end, x, w, b, y)) {
        return;
    }
#endif
    mt_linear_fw_s8_ref(d, q, co_begin, co_end, x, w, b, y);
}

void mt_linear_fw_s8_ref(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                         const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y)
{
    const int32_t n = d->in_features, in_zp = q->in_zp;
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
        y[o] = mt_linear_out(q, r, acc);
    }
}

#if MT_S8_DSP

/* R (1 or 4) outputs from rows w .. w + (R-1)*n: each word of x unpacks to (x0, x2), (x1, x3) minus the
 * zero point once for the R rows, each weight word to the same pairs, two SMLADs per row and word. */
static inline void mt_linear_rows_dsp(const int32_t R, const mt_linear_q8_t *q, int32_t r, int32_t n,
                                      const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y)
{
    const uint32_t zz = (uint32_t)(uint16_t)q->in_zp * 0x00010001u;
    int32_t acc[4] = {0, 0, 0, 0};
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t xv = mt_ld32(x + i);
        const uint32_t xa = __ssub16(__sxtb16(xv), zz), xb = __ssub16(mt_sxtb16_ror8(xv), zz);
        for (int32_t j = 0; j < R; ++j) {
            const uint32_t t = mt_ld32(w + j * n + i);
            acc[j] = __smlad(mt_sxtb16_ror8(t), xb, __smlad(__sxtb16(t), xa, acc[j]));
        }
    }
    for (; i < n; ++i) {
        for (int32_t j = 0; j < R; ++j) {
            acc[j] += (int32_t)w[j * n + i] * ((int32_t)x[i] - q->in_zp);
        }
    }
    for (int32_t j = 0; j < R; ++j) {
        y[j] = mt_linear_out(q, r + j, acc[j] + (b ? b[r + j] : 0));
    }
}

int32_t mt_linear_fw_s8_dsp(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin,
                            int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y)
{
    const int32_t n = d->in_features;
    int32_t o = co_begin;
    for (; o + 4 <= co_end; o += 4) {
        mt_linear_rows_dsp(4, q, o - co_begin, n, x, w + (o - co_begin) * n, b, y + o);
    }
    for (; o < co_end; ++o) {
        mt_linear_rows_dsp(1, q, o - co_begin, n, x, w + (o - co_begin) * n, b, y + o);
    }
    return 1;
}

#endif /* MT_S8_DSP */
