/* add int8 forward (ADD, both inputs of the same shape): LiteRT's reference 8-bit general rescaling. */
#include "mt_s8_internal.h"

void mt_add_fw_s8(const mt_add_q8_t *q, int32_t n, const int8_t *a, const int8_t *b, int8_t *y)
{
    for (int32_t i = 0; i < n; ++i) {
        const int32_t sa = mt_mbqm(mt_shl32((int32_t)a[i] - q->a_zp, q->left_shift), q->a_mult, q->a_shift);
        const int32_t sb = mt_mbqm(mt_shl32((int32_t)b[i] - q->b_zp, q->left_shift), q->b_mult, q->b_shift);
        const int32_t v = mt_mbqm(sa + sb, q->out_mult, q->out_shift) + q->out_zp;
        y[i] = mt_clamp_s8(v, q->act_min, q->act_max);
    }
}
