/* avg_pool2d int8 forward (AVERAGE_POOL_2D): window sums over the taps inside the input, divided by
 * their count with LiteRT's rounding (half away from zero, C integer division). */
#include "mt_s8_internal.h"

void mt_avg_pool2d_fw_s8(const mt_avg_pool2d_dims_t *d, const mt_pool_q8_t *q, const int8_t *x, int8_t *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w, out_h = d->out_h, out_w = d->out_w;
    for (int32_t c = 0; c < d->c; ++c) {
        const int8_t *xc = x + c * in_h * in_w;
        int8_t *yc = y + c * out_h * out_w;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * d->stride_h - d->pad_top;
            int32_t ky0, ky1;
            mt_valid_range(iy0, 1, d->kernel_h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * d->stride_w - d->pad_left;
                int32_t kx0, kx1;
                mt_valid_range(ix0, 1, d->kernel_w, in_w, &kx0, &kx1);
                int32_t s = 0;
                for (int32_t iy = iy0 + ky0; iy < iy0 + ky1; ++iy) {
                    for (int32_t ix = ix0 + kx0; ix < ix0 + kx1; ++ix) {
                        s += xc[iy * in_w + ix];
                    }
                }
                const int32_t n =
                    d->count_include_pad ? d->kernel_h * d->kernel_w : (ky1 - ky0) * (kx1 - kx0);
                const int32_t avg = n == 0 ? 0 : (s > 0 ? (s + n / 2) / n : (s - n / 2) / n);
                yc[oy * out_w + ox] = mt_clamp_s8(avg, q->act_min, q->act_max);
            }
        }
    }
}
