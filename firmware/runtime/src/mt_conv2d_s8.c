/* conv2d int8 forward (CONV_2D, DEPTHWISE_CONV_2D) over an output-channel range: int32 accumulation of
 * w * (x - in_zp) over the taps inside the input, then per-channel requantization (LiteRT's reference
 * ConvPerChannel / DepthwiseConvPerChannel). mt_conv2d_fw_s8 runs mt_conv2d_fw_s8_dsp where the core has the
 * DSP extension (mt_s8_dsp.h), this reference otherwise and for the cases the DSP version leaves to it. */
#include "mt_s8_dsp.h"

size_t mt_conv2d_fw_s8_scratch_bytes(const mt_conv2d_dims_t *d)
{
    if (mt_s8_room(d->in_c / d->groups * d->kernel_h * d->kernel_w) == 0) {
        return 0u; /* the reference runs */
    }
    if (mt_s8_dw_path(d)) {
        return (size_t)mt_s8_dw_scratch(d);
    }
    return 2u * (size_t)(mt_s8_gemm_positions(d) + 1) * (size_t)mt_s8_taps(d);
}

void mt_conv2d_fw_s8(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                     const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch)
{
#if MT_S8_DSP
    if (mt_conv2d_fw_s8_dsp(d, q, co_begin, co_end, x, w, b, y, scratch)) {
        return;
    }
#endif
    (void)scratch;
    mt_conv2d_fw_s8_ref(d, q, co_begin, co_end, x, w, b, y);
}

void mt_conv2d_fw_s8_ref(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                         const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    const int32_t in_zp = q->in_zp;
    for (int32_t co = co_begin; co < co_end; ++co) {
        const int32_t r = co - co_begin;
        const int8_t *wc = w + r * g.K;
        const int8_t *xg = x + (co / g.cout_g) * g.cin_g * g.plane;
        const int32_t bias = b ? b[r] : 0;
        int8_t *yc = y + co * g.oplane;
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * g.sh - g.pt;
            int32_t ky0, ky1;
            mt_valid_range(iy0, g.dh, g.kh, g.in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                const int32_t ix0 = ox * g.sw - g.pl;
                int32_t kx0, kx1;
                mt_valid_range(ix0, g.dw, g.kw, g.in_w, &kx0, &kx1);
                int32_t acc = 0;
                for (int32_t ci = 0; ci < g.cin_g; ++ci) {
                    const int8_t *xc = xg + ci * g.plane;
                    const int8_t *wk = wc + ci * g.ksize;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int8_t *xp = xc + (iy0 + ky * g.dh) * g.in_w + ix0;
                        const int8_t *wp = wk + ky * g.kw;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            acc += (int32_t)wp[kx] * ((int32_t)xp[kx * g.dw] - in_zp);
                        }
                    }
                }
                acc += bias;
                yc[oy * g.out_w + ox] =
                    mt_clamp_s8(mt_mbqm(acc, q->mult[r], q->shift[r]) + q->out_zp, q->act_min, q->act_max);
            }
        }
    }
}
