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

/* The sums of a window inside the input, kept as uint32 (two's complement: exact modulo 2^32, so the int32
 * total is the reference's whenever it fits, as LiteRT's int32 accumulator): w * x over every tap of every
 * input channel, x at the window's top-left input position, w the channel's weight row. The caller
 * subtracts in_zp times the row's sum. */
static uint32_t __attribute__((noinline))
mt_s8_window(const mt_conv_geom_t *g, const int8_t *x, const int8_t *w)
{
    uint32_t acc = 0;
    const int32_t rstep = g->dh * g->in_w, plane = g->plane, n = g->cin_g;
    if (g->ksize == 1) { /* 1x1: one tap per input channel */
        int32_t ci = 0;
        for (; ci + 4 <= n; ci += 4, x += 4 * plane) {
            acc += (uint32_t)(w[ci] * x[0] + w[ci + 1] * x[plane]) +
                   (uint32_t)(w[ci + 2] * x[2 * plane] + w[ci + 3] * x[3 * plane]);
        }
        for (; ci < n; ++ci, x += plane) {
            acc += (uint32_t)(w[ci] * x[0]);
        }
        return acc;
    }
    if (g->kw == 3 && g->dw == 1) { /* rows of 3 taps */
        for (int32_t ci = 0; ci < n; ++ci, x += plane) {
            const int8_t *xp = x;
            for (int32_t ky = 0; ky < g->kh; ++ky, xp += rstep, w += 3) {
                acc += (uint32_t)(w[0] * xp[0] + w[1] * xp[1] + w[2] * xp[2]);
            }
        }
        return acc;
    }
    for (int32_t ci = 0; ci < n; ++ci, x += plane) {
        const int8_t *xp = x;
        for (int32_t ky = 0; ky < g->kh; ++ky, xp += rstep, w += g->kw) {
            for (int32_t kx = 0; kx < g->kw; ++kx) {
                acc += (uint32_t)(w[kx] * xp[kx * g->dw]);
            }
        }
    }
    return acc;
}

/* The sum of a window that reaches outside the input, as the reference states it: w * (x - in_zp) over
 * the taps inside ([ky0, ky1) x [kx0, kx1) of each input channel), the window's top-left at (iy0, ix0). */
static uint32_t __attribute__((noinline))
mt_s8_window_edge(const mt_conv_geom_t *g, const int8_t *xg, const int8_t *w, int32_t in_zp, int32_t iy0,
                  int32_t ix0, const int32_t k[4])
{
    uint32_t acc = 0;
    for (int32_t ci = 0; ci < g->cin_g; ++ci, w += g->ksize) {
        const int8_t *xc = xg + ci * g->plane;
        for (int32_t ky = k[0]; ky < k[1]; ++ky) {
            const int8_t *xp = xc + (iy0 + ky * g->dh) * g->in_w + ix0;
            const int8_t *wp = w + ky * g->kw;
            for (int32_t kx = k[2]; kx < k[3]; ++kx) {
                acc += (uint32_t)(wp[kx] * ((int32_t)xp[kx * g->dw] - in_zp));
            }
        }
    }
    return acc;
}

/* Output channel r's requantization of an accumulator (bias included). */
static inline int8_t mt_s8_requant(const mt_conv2d_q8_t *q, int32_t r, uint32_t acc)
{
    return mt_clamp_s8(mt_mbqm((int32_t)acc, q->mult[r], q->shift[r]) + q->out_zp, q->act_min, q->act_max);
}

/* n outputs of a row whose windows lie inside the input, the first one's top-left at x, the next ones
 * sw further: sum w * x plus `base` (the bias minus in_zp times the row's sum), requantized. */
static void __attribute__((noinline))
mt_s8_run_inside(const mt_conv_geom_t *g, const mt_conv2d_q8_t *q, int32_t r, const int8_t *x,
                 const int8_t *w, uint32_t base, int32_t n, int8_t *y)
{
    for (int32_t i = 0; i < n; ++i, x += g->sw) {
        y[i] = mt_s8_requant(q, r, mt_s8_window(g, x, w) + base);
    }
}

void mt_conv2d_fw_s8_ref(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                         const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    /* the outputs [oxa, oxb) of a row whose windows lie inside the input's columns */
    const int32_t oxa = (g.pl + g.sw - 1) / g.sw;
    const int32_t last = g.in_w - 1 - (g.kw - 1) * g.dw + g.pl; /* the last window's leftmost column + pl */
    const int32_t oxb = last < 0 ? 0 : (last / g.sw + 1 < g.out_w ? last / g.sw + 1 : g.out_w);
    for (int32_t co = co_begin; co < co_end; ++co) {
        const int32_t r = co - co_begin;
        const int8_t *wc = w + r * g.K;
        const int8_t *xg = x + (co / g.cout_g) * g.cin_g * g.plane;
        const uint32_t bias = (uint32_t)(b ? b[r] : 0);
        int32_t wsum = 0;
        for (int32_t k = 0; k < g.K; ++k) {
            wsum += wc[k];
        }
        const uint32_t base = bias - (uint32_t)q->in_zp * (uint32_t)wsum;
        int8_t *yc = y + co * g.oplane;
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * g.sh - g.pt;
            int32_t k[4]; /* the taps inside: [ky0, ky1) x [kx0, kx1) */
            mt_valid_range(iy0, g.dh, g.kh, g.in_h, &k[0], &k[1]);
            const int32_t rows = k[0] == 0 && k[1] == g.kh; /* every kernel row inside */
            const int32_t a = rows && oxa < oxb ? oxa : g.out_w, e = rows && oxa < oxb ? oxb : g.out_w;
            int8_t *yr = yc + oy * g.out_w;
            for (int32_t ox = 0; ox < g.out_w; ++ox) {
                if (ox == a) {
                    mt_s8_run_inside(&g, q, r, xg + iy0 * g.in_w + a * g.sw - g.pl, wc, base, e - a, yr + a);
                    ox = e - 1;
                    continue;
                }
                const int32_t ix0 = ox * g.sw - g.pl;
                mt_valid_range(ix0, g.dw, g.kw, g.in_w, &k[2], &k[3]);
                yr[ox] = mt_s8_requant(q, r, mt_s8_window_edge(&g, xg, wc, q->in_zp, iy0, ix0, k) + bias);
            }
        }
    }
}
