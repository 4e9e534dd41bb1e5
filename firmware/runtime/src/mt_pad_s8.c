/* pad int8 forward (PAD): the zero point around each channel. */
#include "mt_s8_internal.h"

void mt_pad_fw_s8(const mt_pad_dims_t *d, int8_t value, const int8_t *x, int8_t *y)
{
    const int32_t in_h = d->in_h, in_w = d->in_w;
    const int32_t out_w = in_w + d->pad_left + d->pad_right;
    const int32_t out_h = in_h + d->pad_top + d->pad_bottom;
    for (int32_t c = 0; c < d->c; ++c) {
        const int8_t *xc = x + c * in_h * in_w;
        int8_t *yc = y + c * out_h * out_w;
        for (int32_t i = 0; i < d->pad_top * out_w; ++i) {
            yc[i] = value;
        }
        for (int32_t iy = 0; iy < in_h; ++iy) {
            int8_t *yr = yc + (iy + d->pad_top) * out_w;
            const int8_t *xr = xc + iy * in_w;
            for (int32_t i = 0; i < d->pad_left; ++i) {
                yr[i] = value;
            }
            for (int32_t i = 0; i < in_w; ++i) {
                yr[d->pad_left + i] = xr[i];
            }
            for (int32_t i = d->pad_left + in_w; i < out_w; ++i) {
                yr[i] = value;
            }
        }
        for (int32_t i = (d->pad_top + in_h) * out_w; i < out_h * out_w; ++i) {
            yc[i] = value;
        }
    }
}
