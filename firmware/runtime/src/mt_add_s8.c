/* add int8 forward (ADD, both inputs of the same shape): LiteRT's reference 8-bit general rescaling. */
#include "mt_s8_dsp.h"

#if MT_S8_DSP
/* MultiplyByQuantizedMultiplier(x, mult, -e) for e in [0, 31] from x2 = 2 x (|x2| < 2^31): SMMLAR(2 x,
 * mult, c) is SaturatingRoundingDoublingHighMul(x, mult) plus c, and RoundingDivideByPOT(v, e) is
 * floor((v + 2^(e-1) - [v < 0]) / 2^e), where [v < 0] may be [x < 0] (mt_s8_dsp.h, FAST channels); e = 0
 * divides by nothing and rounds nothing (c = 0, neg = 0). */
static inline int32_t mt_add_rq(int32_t x2, int32_t mult, int32_t c, uint32_t neg, int32_t e)
{
    return mt_asr(mt_smmlar(x2, mult, c - (int32_t)(((uint32_t)x2 >> 31) & neg)), e);
}

/* 1 when it computed the call: the shifts are right shifts of at most 31 and (a - a_zp) << left_shift,
 * doubled, fits an int32 (LiteRT's left shift is 20). */
static int32_t mt_add_fw_s8_dsp(const mt_add_q8_t *q, int32_t n, const int8_t *a, const int8_t *b, int8_t *y)
{
    const int32_t ea = -q->a_shift, eb = -q->b_shift, eo = -q->out_shift, ls = q->left_shift + 1;
    if (ea < 0 || ea > 31 || eb < 0 || eb > 31 || eo < 0 || eo > 31 || ls < 1 || ls > 22) {
        return 0;
    }
    const int32_t ca = ea ? 1 << (ea - 1) : 0, cb = eb ? 1 << (eb - 1) : 0, co = eo ? 1 << (eo - 1) : 0;
    const uint32_t na = ea ? 1u : 0u, nb = eb ? 1u : 0u, no = eo ? 1u : 0u;
    /* locals: the byte stores to y may alias q, whose fields would be reloaded after each */
    const int32_t azp = q->a_zp, bzp = q->b_zp, am = q->a_mult, bm = q->b_mult, om = q->out_mult;
    const int32_t ozp = q->out_zp, lo = q->act_min, hi = q->act_max;
    for (int32_t i = 0; i < n; ++i) { /* |a - a_zp| <= 255: 2 (a - a_zp) 2^20 < 2^30; the sum likewise */
        const int32_t sa = mt_add_rq(mt_shl32((int32_t)a[i] - azp, ls), am, ca, na, ea);
        const int32_t sb = mt_add_rq(mt_shl32((int32_t)b[i] - bzp, ls), bm, cb, nb, eb);
        const int32_t v = mt_add_rq(2 * (sa + sb), om, co, no, eo) + ozp;
        y[i] = mt_clamp_s8(v, lo, hi);
    }
    return 1;
}
#endif

void mt_add_fw_s8(const mt_add_q8_t *q, int32_t n, const int8_t *a, const int8_t *b, int8_t *y)
{
#if MT_S8_DSP
    if (mt_add_fw_s8_dsp(q, n, a, b, y)) {
        return;
    }
#endif
    for (int32_t i = 0; i < n; ++i) {
        const int32_t sa = mt_mbqm(mt_shl32((int32_t)a[i] - q->a_zp, q->left_shift), q->a_mult, q->a_shift);
        const int32_t sb = mt_mbqm(mt_shl32((int32_t)b[i] - q->b_zp, q->left_shift), q->b_mult, q->b_shift);
        const int32_t v = mt_mbqm(sa + sb, q->out_mult, q->out_shift) + q->out_zp;
        y[i] = mt_clamp_s8(v, q->act_min, q->act_max);
    }
}
