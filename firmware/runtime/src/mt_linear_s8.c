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
    /* Fast path. V = u * mant * 2^exp2 exactly, D its double rounding (|D - V| <= V 2^-53), the result
     * floor(D + 1/2). a * 2^-s with a = u * (mant >> 21), s = -(exp2 + 21), is V truncated:
     * V - V 2^-31 < a 2^-s <= V. Where r = floor(a 2^-s + 1/2) < 2^23 (so V < 2^23 (1 + 2^-30)) and
     * the fraction f of a 2^-s + 1/2 keeps 2^-6 from 0 and from 1, D + 1/2 lies in
     * (r + f - 2^-30, r + f + 2^-8 + 2^-30), inside (r, r + 1): floor(D + 1/2) = r. Else (about 3% of
     * the outputs, and scales outside the shift range) the exact computation below. In integers: with
     * v = floor((a 2^-s + 1/2) 2^6) = floor(a / 2^(s-6)) + 32, r = v / 2^6 and the fraction's top 6 bits
     * are v mod 2^6, which must be neither 0 nor 63; r < 2^23 is v < 2^29. */
    const int32_t s = -(exp2 + 21);
    if (s >= 7 && s <= 62) {
        const uint64_t a = (uint64_t)u * (uint32_t)(mant >> 21); /* < 2^63 */
        const uint64_t v = (a >> (s - 6)) + 32u;
        if (v < ((uint64_t)1 << 29) && (uint32_t)(v & 63u) - 1u < 62u) {
            const int32_t r = (int32_t)((uint32_t)v >> 6);
            return acc < 0 ? -r : r;
        }
    }
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

/* The sums of 4 weight rows over n4 words of x (assembly: every register is needed). */
typedef struct {
    const int8_t *x, *xend; /*  0,  4 */
    const int8_t *w0, *w2;  /*  8, 12: rows 0 and 2; rows 1 and 3 at + n */
    int32_t n;              /* 16 */
    uint32_t zz;            /* 20: the input zero point in both halves */
    int32_t a[4];           /* 24: the sums */
} mt_linear_dot4_t;

/* Per word of x: (x0, x2) and (x1, x3) minus the zero point (5 instructions), then per row one load, two
 * SXTB16 and two SMLADs: 27 instructions per 16 MACs with the loop. */
static void __attribute__((noinline)) mt_linear_dot4(mt_linear_dot4_t *s)
{
    register mt_linear_dot4_t *r0 __asm__("r0") = s;
    __asm__ volatile("push {r0}\n\t"
                     "ldrd r2, r3, [r0, #8]\n\t"
                     "ldrd r4, r5, [r0, #16]\n\t"
                     "ldrd r6, r7, [r0, #24]\n\t"
                     "ldrd r8, r9, [r0, #32]\n\t"
                     "ldrd r0, r1, [r0]\n\t"
                     "1:\n\t"
                     "ldr r12, [r0], #4\n\t"
                     "sxtb16 r10, r12\n\t"
                     "ssub16 r10, r10, r5\n\t"
                     "sxtb16 r11, r12, ror #8\n\t"
                     "ssub16 r11, r11, r5\n\t"
                     "ldr r12, [r2, r4]\n\t"
                     "sxtb16 lr, r12\n\t"
                     "smlad r7, lr, r10, r7\n\t"
                     "sxtb16 lr, r12, ror #8\n\t"
                     "smlad r7, lr, r11, r7\n\t"
                     "ldr r12, [r2], #4\n\t"
                     "sxtb16 lr, r12\n\t"
                     "smlad r6, lr, r10, r6\n\t"
                     "sxtb16 lr, r12, ror #8\n\t"
                     "smlad r6, lr, r11, r6\n\t"
                     "ldr r12, [r3, r4]\n\t"
                     "sxtb16 lr, r12\n\t"
                     "smlad r9, lr, r10, r9\n\t"
                     "sxtb16 lr, r12, ror #8\n\t"
                     "smlad r9, lr, r11, r9\n\t"
                     "ldr r12, [r3], #4\n\t"
                     "sxtb16 lr, r12\n\t"
                     "smlad r8, lr, r10, r8\n\t"
                     "sxtb16 lr, r12, ror #8\n\t"
                     "smlad r8, lr, r11, r8\n\t"
                     "cmp r0, r1\n\t"
                     "bne 1b\n\t"
                     "pop {r0}\n\t"
                     "strd r6, r7, [r0, #24]\n\t"
                     "strd r8, r9, [r0, #32]\n\t"
                     : "+r"(r0)
                     :
                     : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "lr", "cc",
                       "memory");
}

/* Four outputs from rows w .. w + 3n (mt_linear_dot4 over the whole words of x, then the rest). */
static void mt_linear_rows4_dsp(const mt_linear_q8_t *q, int32_t r, int32_t n, const int8_t *x,
                                const int8_t *w, const int32_t *b, int8_t *y)
{
    const int32_t n4 = n & ~3;
    mt_linear_dot4_t s = {x,           x + n4, w, w + 2 * n, n, (uint32_t)(uint16_t)q->in_zp * 0x00010001u,
                          {0, 0, 0, 0}};
    if (n4) {
        mt_linear_dot4(&s);
    }
    for (int32_t i = n4; i < n; ++i) {
        const int32_t xi = (int32_t)x[i] - q->in_zp;
        for (int32_t j = 0; j < 4; ++j) {
            s.a[j] += (int32_t)w[j * n + i] * xi;
        }
    }
    for (int32_t j = 0; j < 4; ++j) {
        y[j] = mt_linear_out(q, r + j, s.a[j] + (b ? b[r + j] : 0));
    }
}

/* Two outputs from rows w and w + n: per word of x its pairs once, per row two SMLADs. */
static void mt_linear_rows2_dsp(const mt_linear_q8_t *q, int32_t r, int32_t n, const int8_t *x,
                                const int8_t *w, const int32_t *b, int8_t *y)
{
    const uint32_t zz = (uint32_t)(uint16_t)q->in_zp * 0x00010001u;
    const int8_t *w1 = w + n;
    int32_t a0 = 0, a1 = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t xv = mt_ld32(x + i), t0 = mt_ld32(w + i), t1 = mt_ld32(w1 + i);
        const uint32_t xa = __ssub16(__sxtb16(xv), zz), xb = __ssub16(mt_sxtb16_ror8(xv), zz);
        a0 = __smlad(mt_sxtb16_ror8(t0), xb, __smlad(__sxtb16(t0), xa, a0));
        a1 = __smlad(mt_sxtb16_ror8(t1), xb, __smlad(__sxtb16(t1), xa, a1));
    }
    for (; i < n; ++i) {
        const int32_t xi = (int32_t)x[i] - q->in_zp;
        a0 += (int32_t)w[i] * xi;
        a1 += (int32_t)w1[i] * xi;
    }
    y[0] = mt_linear_out(q, r, a0 + (b ? b[r] : 0));
    y[1] = mt_linear_out(q, r + 1, a1 + (b ? b[r + 1] : 0));
}

/* One output from row w: two SMLADs per word of x and row. */
static void mt_linear_row1_dsp(const mt_linear_q8_t *q, int32_t r, int32_t n, const int8_t *x,
                               const int8_t *w, const int32_t *b, int8_t *y)
{
    const uint32_t zz = (uint32_t)(uint16_t)q->in_zp * 0x00010001u;
    int32_t a0 = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t xv = mt_ld32(x + i), t = mt_ld32(w + i);
        const uint32_t xa = __ssub16(__sxtb16(xv), zz), xb = __ssub16(mt_sxtb16_ror8(xv), zz);
        a0 = __smlad(mt_sxtb16_ror8(t), xb, __smlad(__sxtb16(t), xa, a0));
    }
    for (; i < n; ++i) {
        a0 += (int32_t)w[i] * ((int32_t)x[i] - q->in_zp);
    }
    y[0] = mt_linear_out(q, r, a0 + (b ? b[r] : 0));
}

int32_t mt_linear_fw_s8_dsp(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin,
                            int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y)
{
    const int32_t n = d->in_features;
    int32_t o = co_begin;
    for (; o + 4 <= co_end; o += 4) {
        mt_linear_rows4_dsp(q, o - co_begin, n, x, w + (o - co_begin) * n, b, y + o);
    }
    if (o + 2 <= co_end) {
        mt_linear_rows2_dsp(q, o - co_begin, n, x, w + (o - co_begin) * n, b, y + o);
        o += 2;
    }
    if (o < co_end) {
        mt_linear_row1_dsp(q, o - co_begin, n, x, w + (o - co_begin) * n, b, y + o);
    }
    return 1;
}

#endif /* MT_S8_DSP */
