/* conv2d: forward, weight gradient, input gradient over an output-channel range.
 *
 * No scratch memory; the loops are blocked so that each load feeds several multiply-adds:
 *  - forward (and the stride-1 input gradient, a correlation of gy with the flipped kernel): 4 adjacent
 *    output columns of 2 channels of the same group at a time, wherever every kernel tap of the 4 columns
 *    lies inside the input: one weight load serves 4 columns, one input load 2 channels;
 *  - weight gradient: the 3 taps of a kernel row (3-wide kernels) for 2 output channels at a time;
 *  - strided input gradient: a scatter that adds 2 output channels' contributions per store.
 * Borders and other shapes take the straightforward loops. The common shapes (3x3 and 1x1 kernels, stride
 * 1 or 2, no dilation) get versions with the kernel width and strides as constants, so the tap loop unrolls
 * and overlapping input loads are shared. The forward blocks sum in the same order as the straightforward
 * loop (bias, then input channel, kernel row, kernel column), so both give the same floats.
 */
#include "mt_internal.h"

#if defined(__GNUC__)
#define MT_INLINE   static inline __attribute__((always_inline))
#define MT_NOINLINE __attribute__((noinline))
#else
#define MT_INLINE static inline
#define MT_NOINLINE
#endif

/* The specialised versions of a loop nest are separate functions (MT_NOINLINE), so that the stack frame
 * of a kernel is the largest of theirs rather than their sum. */
enum { V_K3S1, V_K3S2, V_K1S1, V_ANY };

size_t mt_conv2d_fw_scratch_bytes(const mt_conv2d_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_conv2d_bw_wgrad_scratch_bytes(const mt_conv2d_dims_t *d)
{
    (void)d;
    return 0u;
}

size_t mt_conv2d_bw_igrad_scratch_bytes(const mt_conv2d_dims_t *d)
{
    (void)d;
    return 0u;
}

/* 2 when co and co + 1 are both in [co, co_end) and in the same group (they then read the same input
 * channels), else 1. */
static int32_t pair_of(const mt_conv_geom_t *g, int32_t co, int32_t co_end)
{
    return (co + 1 < co_end && (co + 1) / g->cout_g == co / g->cout_g) ? 2 : 1;
}

/* ---- forward ----------------------------------------------------------------------------------- */

/* One output of one channel: bias plus the taps [ky0, ky1) x [kx0, kx1) that lie inside the input. */
static float fw_point(const mt_conv_geom_t *g, const float *xg, const float *wc, float bias, int32_t iy0,
                      int32_t ky0, int32_t ky1, int32_t ix0, int32_t kx0, int32_t kx1)
{
    const int32_t nkx = kx1 - kx0;
    float acc = bias;
    for (int32_t ci = 0; ci < g->cin_g && nkx > 0; ++ci) {
        const float *xc = xg + ci * g->plane;
        const float *wk = wc + ci * g->ksize;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const float *xp = xc + ((iy0 + ky * g->dh) * g->in_w + ix0 + kx0 * g->dw);
            const float *wp = wk + ky * g->kw + kx0;
            for (int32_t t = 0; t < nkx; ++t) {
                acc += wp[t] * xp[t * g->dw];
            }
        }
    }
    return acc;
}

/* One kernel tap of a block of nc (4 or 1) columns: weights wu (channel a), wv (channel b), inputs x0..x3
 * (x1..x3 only read when nc == 4). */
#define MT_FW_TAP(wu_, wv_, x0_, x1_, x2_, x3_)                                 \
    do {                                                                        \
        const float t0_ = (x0_);                                                \
        const float t1_ = nc == 4 ? (x1_) : 0.0f, t2_ = nc == 4 ? (x2_) : 0.0f, \
                    t3_ = nc == 4 ? (x3_) : 0.0f;                               \
        const float tu_ = (wu_);                                                \
        a0 += tu_ * t0_;                                                        \
        if (nc == 4) {                                                          \
            a1 += tu_ * t1_;                                                    \
            a2 += tu_ * t2_;                                                    \
            a3 += tu_ * t3_;                                                    \
        }                                                                       \
        if (np == 2) {                                                          \
            const float tv_ = (wv_);                                            \
            b0 += tv_ * t0_;                                                    \
            if (nc == 4) {                                                      \
                b1 += tv_ * t1_;                                                \
                b2 += tv_ * t2_;                                                \
                b3 += tv_ * t3_;                                                \
            }                                                                   \
        }                                                                       \
    } while (0)

/* Column k of a block's span: p points at column 0 (column 1 for MT_EDGE_LEFT, the copy for MT_EDGE_COPY). */
#define MT_XV(k) \
    ((edge == MT_EDGE_LEFT && (k) == 0) || (edge == MT_EDGE_RIGHT && (k) == last) ? 0.0f : p[(k)-left])

/* Outputs ox..ox+nc-1 (input column ix0 = ox*sw - pad_left) of np (1 or 2) channels. 3-wide kernels
 * (dw = 1, sw <= 2) run unrolled with any `edge`; other kernels need all taps inside (MT_EDGE_NONE). */
MT_INLINE void fw_block(const mt_conv_geom_t *g, int32_t unroll, int32_t np, int32_t nc, int32_t edge,
                        int32_t kw, int32_t sw, int32_t dw, const float *xg, const float *wa, const float *wb,
                        float ba, float bb, int32_t iy0, int32_t ky0, int32_t ky1, int32_t ix0, float *ya,
                        float *yb)
{
    float a0 = ba, a1 = ba, a2 = ba, a3 = ba;
    float b0 = bb, b1 = bb, b2 = bb, b3 = bb;
    const int32_t last = (nc - 1) * sw + 2, left = edge == MT_EDGE_LEFT;
    float tmp[3 * 2 + 3];
    for (int32_t ci = 0; ci < g->cin_g; ++ci) {
        const float *xc = xg + ci * g->plane;
        const float *wca = wa + ci * g->ksize;
        const float *wcb = wb + ci * g->ksize;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const float *row = xc + (iy0 + ky * g->dh) * g->in_w;
            const float *u = wca + ky * kw;
            const float *v = wcb + ky * kw;
            if (unroll) { /* 3-wide: the columns' overlapping inputs are loaded once */
                const float *p = mt_span_of(edge, row, ix0, last + 1, g->in_w, tmp);
                MT_FW_TAP(u[0], v[0], MT_XV(0), MT_XV(sw), MT_XV(2 * sw), MT_XV(3 * sw));
                MT_FW_TAP(u[1], v[1], MT_XV(1), MT_XV(sw + 1), MT_XV(2 * sw + 1), MT_XV(3 * sw + 1));
                MT_FW_TAP(u[2], v[2], MT_XV(2), MT_XV(sw + 2), MT_XV(2 * sw + 2), MT_XV(3 * sw + 2));
                continue;
            }
            for (int32_t kx = 0; kx < kw; ++kx) {
                const float *p = row + ix0 + kx * dw;
                MT_FW_TAP(u[kx], v[kx], p[0], p[sw], p[2 * sw], p[3 * sw]);
            }
        }
    }
    ya[0] = a0;
    if (np == 2) {
        yb[0] = b0;
    }
    if (nc == 4) {
        ya[1] = a1;
        ya[2] = a2;
        ya[3] = a3;
        if (np == 2) {
            yb[1] = b1;
            yb[2] = b2;
            yb[3] = b3;
        }
    }
}

#define MT_FW_BLOCK(nc_, edge_)                                                                        \
    fw_block(g, unrolled, np, nc_, edge_, kw, sw, dw, xg, wa, wb, ba, bb, iy0, ky0, ky1, ix0, ra + ox, \
             rb + ox)

/* All rows of np channels starting at co, in blocks of 4 (then 1) columns; with other kernels than the
 * unrolled 3-wide ones, border outputs one by one. kw, sw, dw equal the dims' (constants at the
 * specialised call sites). */
MT_INLINE void fw_channels(const mt_conv_geom_t *g, int32_t unroll, int32_t np, int32_t kw, int32_t sw,
                           int32_t dw, const float *xg, const float *wa, const float *b, float *ya)
{
    const float *wb = wa + g->cin_g * g->ksize;
    const float ba = b != NULL ? b[0] : 0.0f;
    const float bb = (b != NULL && np == 2) ? b[1] : 0.0f;
    float *yb = ya + g->oplane;
    const int32_t unrolled = unroll && kw == 3 && dw == 1 && sw <= 2;
    for (int32_t oy = 0; oy < g->out_h; ++oy) {
        const int32_t iy0 = oy * g->sh - g->pt;
        int32_t ky0, ky1;
        mt_valid_range(iy0, g->dh, g->kh, g->in_h, &ky0, &ky1);
        float *ra = ya + oy * g->out_w;
        float *rb = yb + oy * g->out_w;
        int32_t ox = 0;
        while (ox < g->out_w) {
            const int32_t ix0 = ox * sw - g->pl;
            const int32_t nc = ox + 4 <= g->out_w ? 4 : 1;
            const int32_t edge = mt_edge_of(ix0, (nc - 1) * sw + (kw - 1) * dw + 1, g->in_w);
            if (unrolled && nc == 4) {
                if (edge == MT_EDGE_NONE) {
                    MT_FW_BLOCK(4, MT_EDGE_NONE);
                } else if (edge == MT_EDGE_LEFT) {
                    MT_FW_BLOCK(4, MT_EDGE_LEFT);
                } else if (edge == MT_EDGE_RIGHT) {
                    MT_FW_BLOCK(4, MT_EDGE_RIGHT);
                } else {
                    MT_FW_BLOCK(4, MT_EDGE_COPY);
                }
                ox += 4;
            } else if (unrolled) {
                if (edge == MT_EDGE_NONE) {
                    MT_FW_BLOCK(1, MT_EDGE_NONE);
                } else {
                    MT_FW_BLOCK(1, MT_EDGE_COPY);
                }
                ++ox;
            } else if (edge == MT_EDGE_NONE) {
                if (nc == 4) {
                    MT_FW_BLOCK(4, MT_EDGE_NONE);
                } else {
                    MT_FW_BLOCK(1, MT_EDGE_NONE);
                }
                ox += nc;
            } else {
                int32_t kx0, kx1;
                mt_valid_range(ix0, dw, kw, g->in_w, &kx0, &kx1);
                ra[ox] = fw_point(g, xg, wa, ba, iy0, ky0, ky1, ix0, kx0, kx1);
                if (np == 2) {
                    rb[ox] = fw_point(g, xg, wb, bb, iy0, ky0, ky1, ix0, kx0, kx1);
                }
                ++ox;
            }
        }
    }
}

#define MT_FW_VARIANT(name, unroll_, np_, kw_, sw_, dw_)                                                    \
    static MT_NOINLINE void name(const mt_conv_geom_t *g, const float *xg, const float *wa, const float *b, \
                                 float *ya)                                                                 \
    {                                                                                                       \
        fw_channels(g, unroll_, np_, kw_, sw_, dw_, xg, wa, b, ya);                                         \
    }
MT_FW_VARIANT(fw_k3s1_2, 1, 2, 3, 1, 1)
MT_FW_VARIANT(fw_k3s1_1, 1, 1, 3, 1, 1)
MT_FW_VARIANT(fw_k3s2_2, 1, 2, 3, 2, 1)
MT_FW_VARIANT(fw_k3s2_1, 1, 1, 3, 2, 1)
MT_FW_VARIANT(fw_k1s1_2, 0, 2, 1, 1, 1)
MT_FW_VARIANT(fw_k1s1_1, 0, 1, 1, 1, 1)
MT_FW_VARIANT(fw_any_2, 0, 2, g->kw, g->sw, g->dw)
MT_FW_VARIANT(fw_any_1, 0, 1, g->kw, g->sw, g->dw)

void mt_conv2d_fw_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                      const float *w, const float *b, float *y, float *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    const int32_t v = (g.kw == 3 && g.dw == 1 && g.sw <= 2) ? (g.sw == 1 ? V_K3S1 : V_K3S2)
                      : (g.kw == 1 && g.sw == 1)            ? V_K1S1
                                                            : V_ANY;
    int32_t np;
    (void)scratch;
    for (int32_t co = co_begin; co < co_end; co += np) {
        np = pair_of(&g, co, co_end);
        const float *xg = x + (co / g.cout_g) * g.cin_g * g.plane;
        const float *wa = w + (co - co_begin) * g.cin_g * g.ksize;
        const float *bc = b != NULL ? b + (co - co_begin) : NULL;
        float *yc = y + co * g.oplane;
        if (v == V_K3S1) {
            if (np == 2) {
                fw_k3s1_2(&g, xg, wa, bc, yc);
            } else {
                fw_k3s1_1(&g, xg, wa, bc, yc);
            }
        } else if (v == V_K3S2) {
            if (np == 2) {
                fw_k3s2_2(&g, xg, wa, bc, yc);
            } else {
                fw_k3s2_1(&g, xg, wa, bc, yc);
            }
        } else if (v == V_K1S1) {
            if (np == 2) {
                fw_k1s1_2(&g, xg, wa, bc, yc);
            } else {
                fw_k1s1_1(&g, xg, wa, bc, yc);
            }
        } else {
            if (np == 2) {
                fw_any_2(&g, xg, wa, bc, yc);
            } else {
                fw_any_1(&g, xg, wa, bc, yc);
            }
        }
    }
}

/* ---- weight gradient --------------------------------------------------------------------------- */

/* gw[co][ci][ky][kx] for np channels and one (ci, ky, kx): sum over the outputs whose tap lands inside. */
static void wgrad_tap(const mt_conv_geom_t *g, int32_t np, const float *xc, const float *gya, int32_t ky,
                      int32_t kx, float *sa, float *sb)
{
    const float *gyb = gya + g->oplane;
    const int32_t offy = ky * g->dh - g->pt, offx = kx * g->dw - g->pl;
    int32_t oy0, oy1, ox0, ox1;
    mt_valid_range(offy, g->sh, g->out_h, g->in_h, &oy0, &oy1);
    mt_valid_range(offx, g->sw, g->out_w, g->in_w, &ox0, &ox1);
    float a = 0.0f, b = 0.0f;
    for (int32_t oy = oy0; oy < oy1 && ox0 < ox1; ++oy) {
        const float *xp = xc + ((oy * g->sh + offy) * g->in_w + offx);
        const float *pa = gya + oy * g->out_w;
        const float *pb = gyb + oy * g->out_w;
        for (int32_t ox = ox0; ox < ox1; ++ox) {
            const float xv = xp[ox * g->sw];
            a += pa[ox] * xv;
            if (np == 2) {
                b += pb[ox] * xv;
            }
        }
    }
    *sa = a;
    *sb = b;
}

/* Adds the products of output column ox's gy (pa, pb) with its 3 taps' inputs x0..x2. */
#define MT_WG_COL(ox_, x0_, x1_, x2_)                                     \
    do {                                                                  \
        const float t0_ = (x0_), t1_ = (x1_), t2_ = (x2_), ga_ = pa[ox_]; \
        a0 += ga_ * t0_;                                                  \
        a1 += ga_ * t1_;                                                  \
        a2 += ga_ * t2_;                                                  \
        if (np == 2) {                                                    \
            const float gb_ = pb[ox_];                                    \
            b0 += gb_ * t0_;                                              \
            b1 += gb_ * t1_;                                              \
            b2 += gb_ * t2_;                                              \
        }                                                                 \
    } while (0)

/* Input column c of row xr, 0 outside the input. */
#define MT_WG_X(c_) ((c_) >= 0 && (c_) < g->in_w ? xr[c_] : 0.0f)

/* The 3 taps of kernel row ky (kernel width 3, dilation 1; input column ox*sw - pad_left + kx) for np
 * channels: per output, one input load per tap and one gy load per channel serve 3 * np sums; inside,
 * two outputs at a time share their overlapping inputs. Border outputs read the padding as 0. */
MT_INLINE void wgrad_row3(const mt_conv_geom_t *g, int32_t np, int32_t sw, const float *xc, const float *gya,
                          int32_t ky, float sa[3], float sb[3])
{
    const float *gyb = gya + g->oplane;
    const int32_t offy = ky * g->dh - g->pt;
    int32_t oy0, oy1, A, B;
    mt_valid_range(offy, g->sh, g->out_h, g->in_h, &oy0, &oy1);
    mt_valid_range(-g->pl, sw, g->out_w, g->in_w - 2, &A, &B); /* outputs whose 3 taps are all inside */
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f;
    for (int32_t oy = oy0; oy < oy1; ++oy) {
        const float *xr = xc + (oy * g->sh + offy) * g->in_w;
        const float *pa = gya + oy * g->out_w;
        const float *pb = gyb + oy * g->out_w;
        int32_t ox = 0;
        for (; ox < A; ++ox) {
            const int32_t c = ox * sw - g->pl;
            MT_WG_COL(ox, MT_WG_X(c), MT_WG_X(c + 1), MT_WG_X(c + 2));
        }
        for (; ox + 2 <= B; ox += 2) {
            const float *q = xr + ox * sw - g->pl;
            MT_WG_COL(ox, q[0], q[1], q[2]);
            MT_WG_COL(ox + 1, q[sw], q[sw + 1], q[sw + 2]);
        }
        for (; ox < g->out_w; ++ox) {
            const int32_t c = ox * sw - g->pl;
            if (ox < B) {
                MT_WG_COL(ox, xr[c], xr[c + 1], xr[c + 2]);
            } else {
                MT_WG_COL(ox, MT_WG_X(c), MT_WG_X(c + 1), MT_WG_X(c + 2));
            }
        }
    }
    sa[0] = a0;
    sa[1] = a1;
    sa[2] = a2;
    sb[0] = b0;
    sb[1] = b1;
    sb[2] = b2;
}

MT_INLINE void wgrad_channels(const mt_conv_geom_t *g, int32_t np, int32_t sw, int32_t dw, const float *xg,
                              const float *gya, float *gwa, int32_t accumulate)
{
    float *gwb = gwa + g->cin_g * g->ksize;
    for (int32_t ci = 0; ci < g->cin_g; ++ci) {
        const float *xc = xg + ci * g->plane;
        for (int32_t ky = 0; ky < g->kh; ++ky) {
            float *da = gwa + ci * g->ksize + ky * g->kw;
            float *db = gwb + ci * g->ksize + ky * g->kw;
            if (g->kw == 3 && dw == 1) {
                float sa[3], sb[3];
                wgrad_row3(g, np, sw, xc, gya, ky, sa, sb);
                for (int32_t kx = 0; kx < 3; ++kx) {
                    da[kx] = accumulate ? da[kx] + sa[kx] : sa[kx];
                    if (np == 2) {
                        db[kx] = accumulate ? db[kx] + sb[kx] : sb[kx];
                    }
                }
                continue;
            }
            for (int32_t kx = 0; kx < g->kw; ++kx) {
                float sa, sb;
                wgrad_tap(g, np, xc, gya, ky, kx, &sa, &sb);
                da[kx] = accumulate ? da[kx] + sa : sa;
                if (np == 2) {
                    db[kx] = accumulate ? db[kx] + sb : sb;
                }
            }
        }
    }
}

#define MT_WGRAD_VARIANT(name, np_, sw_, dw_)                                                            \
    static MT_NOINLINE void name(const mt_conv_geom_t *g, const float *xg, const float *gya, float *gwa, \
                                 int32_t accumulate)                                                     \
    {                                                                                                    \
        wgrad_channels(g, np_, sw_, dw_, xg, gya, gwa, accumulate);                                      \
    }
MT_WGRAD_VARIANT(wgrad_s1_2, 2, 1, 1)
MT_WGRAD_VARIANT(wgrad_s1_1, 1, 1, 1)
MT_WGRAD_VARIANT(wgrad_s2_2, 2, 2, 1)
MT_WGRAD_VARIANT(wgrad_s2_1, 1, 2, 1)
MT_WGRAD_VARIANT(wgrad_any_2, 2, g->sw, g->dw)
MT_WGRAD_VARIANT(wgrad_any_1, 1, g->sw, g->dw)

void mt_conv2d_bw_wgrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                            const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    (void)scratch;
    if (gb != NULL) {
        for (int32_t co = co_begin; co < co_end; ++co) {
            const float *gyc = gy + co * g.oplane;
            float s = 0.0f;
            for (int32_t i = 0; i < g.oplane; ++i) {
                s += gyc[i];
            }
            gb[co - co_begin] = accumulate ? gb[co - co_begin] + s : s;
        }
    }
    if (gw == NULL) {
        return;
    }
    const int32_t v = (g.kw == 3 && g.dw == 1 && g.sw <= 2) ? (g.sw == 1 ? V_K3S1 : V_K3S2) : V_ANY;
    int32_t np;
    for (int32_t co = co_begin; co < co_end; co += np) {
        np = pair_of(&g, co, co_end);
        const float *xg = x + (co / g.cout_g) * g.cin_g * g.plane;
        const float *gyc = gy + co * g.oplane;
        float *gwa = gw + (co - co_begin) * g.cin_g * g.ksize;
        if (v == V_K3S1) {
            if (np == 2) {
                wgrad_s1_2(&g, xg, gyc, gwa, accumulate);
            } else {
                wgrad_s1_1(&g, xg, gyc, gwa, accumulate);
            }
        } else if (v == V_K3S2) {
            if (np == 2) {
                wgrad_s2_2(&g, xg, gyc, gwa, accumulate);
            } else {
                wgrad_s2_1(&g, xg, gyc, gwa, accumulate);
            }
        } else {
            if (np == 2) {
                wgrad_any_2(&g, xg, gyc, gwa, accumulate);
            } else {
                wgrad_any_1(&g, xg, gyc, gwa, accumulate);
            }
        }
    }
}

/* ---- input gradient ---------------------------------------------------------------------------- */

/* Taps t in [0, k) with 0 <= pos - t*dil < n: [*lo, *hi). */
static void taps_reaching(int32_t pos, int32_t dil, int32_t k, int32_t n, int32_t *lo, int32_t *hi)
{
    int32_t a = 0, b = 0;
    if (pos >= 0) {
        b = pos / dil + 1;
        if (b > k) {
            b = k;
        }
        if (pos - n + 1 > 0) {
            a = (pos - n + 1 + dil - 1) / dil;
        }
    }
    *lo = a;
    *hi = a < b ? b : a;
}

/* gx columns ix..ix+nc-1 of row iy of input channels ci_g (and ci_g + 1 when np == 2) of the group of
 * output channels [ca, cb), added to ra (rb). Column ix + j gathers gy columns ix + j + pad_left - kx*dw:
 * the block's span starts at gy column ix + pad_left - (kw-1)*dw. 3-wide kernels (dw = 1) run unrolled
 * with any `edge` (see fw_block); other kernels need the whole span inside gy. */
MT_INLINE void igrad_block(const mt_conv_geom_t *g, int32_t unroll, int32_t np, int32_t nc, int32_t edge,
                           int32_t kw, int32_t dw, int32_t ca, int32_t cb, int32_t co_begin, const float *w,
                           int32_t ci_g, const float *gy, int32_t iy, int32_t ky0, int32_t ky1, int32_t ix,
                           float *ra, float *rb)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
    const int32_t first = ix + g->pl - (kw - 1) * dw;
    const int32_t last = nc + 1, left = edge == MT_EDGE_LEFT;
    float tmp[4 + 2];
    for (int32_t co = ca; co < cb; ++co) {
        const float *wu = w + ((co - co_begin) * g->cin_g + ci_g) * g->ksize;
        const float *wv = wu + g->ksize;
        for (int32_t ky = ky0; ky < ky1; ++ky) {
            const float *row = gy + co * g->oplane + (iy + g->pt - ky * g->dh) * g->out_w;
            const float *u = wu + ky * kw;
            const float *v = wv + ky * kw;
            if (unroll) { /* 3-wide: overlapping gy loads shared */
                const float *p = mt_span_of(edge, row, first, last + 1, g->out_w, tmp);
                MT_FW_TAP(u[0], v[0], MT_XV(2), MT_XV(3), MT_XV(4), MT_XV(5));
                MT_FW_TAP(u[1], v[1], MT_XV(1), MT_XV(2), MT_XV(3), MT_XV(4));
                MT_FW_TAP(u[2], v[2], MT_XV(0), MT_XV(1), MT_XV(2), MT_XV(3));
                continue;
            }
            for (int32_t kx = 0; kx < kw; ++kx) {
                const float *q = row + ix + g->pl - kx * dw;
                MT_FW_TAP(u[kx], v[kx], q[0], q[1], q[2], q[3]);
            }
        }
    }
    ra[0] += a0;
    if (np == 2) {
        rb[0] += b0;
    }
    if (nc == 4) {
        ra[1] += a1;
        ra[2] += a2;
        ra[3] += a3;
        if (np == 2) {
            rb[1] += b1;
            rb[2] += b2;
            rb[3] += b3;
        }
    }
}

#define MT_IGRAD_BLOCK(nc_, edge_)                                                                    \
    igrad_block(g, unrolled, np, nc_, edge_, kw, dw, ca, cb, co_begin, w, ci_g, gy, iy, ky0, ky1, ix, \
                ra + ix, rb + ix)

/* Stride 1: gx is the correlation of gy with the flipped kernel. gx(ci, iy, ix) gathers
 * w[co][ci][ky][kx] * gy(co, iy + pad_top - ky*dh, ix + pad_left - kx*dw) over the range's channels of
 * its group and the taps that land inside gy; 4 (then 1) columns of np input channels per block. */
MT_INLINE void igrad_s1_channels(const mt_conv_geom_t *g, int32_t unroll, int32_t np, int32_t kw, int32_t dw,
                                 int32_t ca, int32_t cb, int32_t co_begin, const float *w, int32_t ci_g,
                                 const float *gy, float *gxa)
{
    float *gxb = gxa + g->plane;
    const int32_t unrolled = unroll && kw == 3 && dw == 1;
    for (int32_t iy = 0; iy < g->in_h; ++iy) {
        int32_t ky0, ky1;
        taps_reaching(iy + g->pt, g->dh, g->kh, g->out_h, &ky0, &ky1);
        float *ra = gxa + iy * g->in_w;
        float *rb = gxb + iy * g->in_w;
        int32_t ix = 0;
        while (ix < g->in_w) {
            const int32_t nc = ix + 4 <= g->in_w ? 4 : 1;
            const int32_t edge = mt_edge_of(ix + g->pl - (kw - 1) * dw, nc + (kw - 1) * dw, g->out_w);
            if (unrolled && nc == 4) {
                if (edge == MT_EDGE_NONE) {
                    MT_IGRAD_BLOCK(4, MT_EDGE_NONE);
                } else if (edge == MT_EDGE_LEFT) {
                    MT_IGRAD_BLOCK(4, MT_EDGE_LEFT);
                } else if (edge == MT_EDGE_RIGHT) {
                    MT_IGRAD_BLOCK(4, MT_EDGE_RIGHT);
                } else {
                    MT_IGRAD_BLOCK(4, MT_EDGE_COPY);
                }
                ix += 4;
                continue;
            }
            if (unrolled) {
                if (edge == MT_EDGE_NONE) {
                    MT_IGRAD_BLOCK(1, MT_EDGE_NONE);
                } else {
                    MT_IGRAD_BLOCK(1, MT_EDGE_COPY);
                }
                ++ix;
                continue;
            }
            if (edge == MT_EDGE_NONE) {
                if (nc == 4) {
                    MT_IGRAD_BLOCK(4, MT_EDGE_NONE);
                } else {
                    MT_IGRAD_BLOCK(1, MT_EDGE_NONE);
                }
                ix += nc;
                continue;
            }
            int32_t kx0, kx1;
            taps_reaching(ix + g->pl, dw, kw, g->out_w, &kx0, &kx1);
            for (int32_t j = 0; j < np; ++j) {
                float acc = 0.0f;
                for (int32_t co = ca; co < cb; ++co) {
                    const float *wc = w + ((co - co_begin) * g->cin_g + ci_g + j) * g->ksize;
                    const float *gyc = gy + co * g->oplane + ix + g->pl;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const float *gr = gyc + (iy + g->pt - ky * g->dh) * g->out_w;
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            acc += wc[ky * kw + kx] * gr[-kx * dw];
                        }
                    }
                }
                (j == 0 ? ra : rb)[ix] += acc;
            }
            ++ix;
        }
    }
}

#define MT_IGRAD_VARIANT(name, unroll_, np_, kw_, dw_)                                              \
    static MT_NOINLINE void name(const mt_conv_geom_t *g, int32_t ca, int32_t cb, int32_t co_begin, \
                                 const float *w, int32_t ci_g, const float *gy, float *gxa)         \
    {                                                                                               \
        igrad_s1_channels(g, unroll_, np_, kw_, dw_, ca, cb, co_begin, w, ci_g, gy, gxa);           \
    }
MT_IGRAD_VARIANT(igrad_k3_2, 1, 2, 3, 1)
MT_IGRAD_VARIANT(igrad_k3_1, 1, 1, 3, 1)
MT_IGRAD_VARIANT(igrad_k1_2, 0, 2, 1, 1)
MT_IGRAD_VARIANT(igrad_k1_1, 0, 1, 1, 1)
MT_IGRAD_VARIANT(igrad_any_2, 0, 2, g->kw, g->dw)
MT_IGRAD_VARIANT(igrad_any_1, 0, 1, g->kw, g->dw)

/* Stride 1, per group of the range and pair of its input channels. */
static MT_NOINLINE void igrad_s1(const mt_conv_geom_t *g, int32_t co_begin, int32_t co_end, const float *w,
                                 const float *gy, float *gx)
{
    const int32_t v = (g->kw == 3 && g->dw == 1) ? V_K3S1 : g->kw == 1 ? V_K1S1 : V_ANY;
    for (int32_t grp = co_begin / g->cout_g; grp * g->cout_g < co_end; ++grp) {
        const int32_t ca = co_begin > grp * g->cout_g ? co_begin : grp * g->cout_g;
        const int32_t cb = co_end < (grp + 1) * g->cout_g ? co_end : (grp + 1) * g->cout_g;
        int32_t np;
        for (int32_t ci_g = 0; ci_g < g->cin_g; ci_g += np) {
            np = ci_g + 1 < g->cin_g ? 2 : 1;
            float *gxc = gx + (grp * g->cin_g + ci_g) * g->plane;
            if (v == V_K3S1) {
                if (np == 2) {
                    igrad_k3_2(g, ca, cb, co_begin, w, ci_g, gy, gxc);
                } else {
                    igrad_k3_1(g, ca, cb, co_begin, w, ci_g, gy, gxc);
                }
            } else if (v == V_K1S1) {
                if (np == 2) {
                    igrad_k1_2(g, ca, cb, co_begin, w, ci_g, gy, gxc);
                } else {
                    igrad_k1_1(g, ca, cb, co_begin, w, ci_g, gy, gxc);
                }
            } else {
                if (np == 2) {
                    igrad_any_2(g, ca, cb, co_begin, w, ci_g, gy, gxc);
                } else {
                    igrad_any_1(g, ca, cb, co_begin, w, ci_g, gy, gxc);
                }
            }
        }
    }
}

/* Any stride: scatter per tap, the contributions of np output channels added per store. */
static MT_NOINLINE void igrad_scatter(const mt_conv_geom_t *g, int32_t co_begin, int32_t co_end,
                                      const float *w, const float *gy, float *gx)
{
    int32_t np;
    for (int32_t co = co_begin; co < co_end; co += np) {
        np = pair_of(g, co, co_end);
        const float *ga = gy + co * g->oplane;
        const float *gb = ga + g->oplane;
        float *gxg = gx + (co / g->cout_g) * g->cin_g * g->plane;
        const float *wa = w + (co - co_begin) * g->cin_g * g->ksize;
        const float *wb = wa + g->cin_g * g->ksize;
        for (int32_t ky = 0; ky < g->kh; ++ky) {
            const int32_t offy = ky * g->dh - g->pt;
            int32_t oy0, oy1;
            mt_valid_range(offy, g->sh, g->out_h, g->in_h, &oy0, &oy1);
            for (int32_t kx = 0; kx < g->kw; ++kx) {
                const int32_t offx = kx * g->dw - g->pl;
                int32_t ox0, ox1;
                mt_valid_range(offx, g->sw, g->out_w, g->in_w, &ox0, &ox1);
                const int32_t nox = ox1 - ox0;
                for (int32_t ci = 0; ci < g->cin_g; ++ci) {
                    const int32_t k = ci * g->ksize + ky * g->kw + kx;
                    const float u = wa[k];
                    const float v = np == 2 ? wb[k] : 0.0f;
                    float *gxc = gxg + ci * g->plane;
                    for (int32_t oy = oy0; oy < oy1 && nox > 0; ++oy) {
                        const float *pa = ga + oy * g->out_w + ox0;
                        const float *pb = gb + oy * g->out_w + ox0;
                        float *xp = gxc + ((oy * g->sh + offy) * g->in_w + ox0 * g->sw + offx);
                        if (np == 2) {
                            for (int32_t t = 0; t < nox; ++t) {
                                xp[t * g->sw] += u * pa[t] + v * pb[t];
                            }
                        } else {
                            for (int32_t t = 0; t < nox; ++t) {
                                xp[t * g->sw] += u * pa[t];
                            }
                        }
                    }
                }
            }
        }
    }
}

void mt_conv2d_bw_igrad_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                            const float *gy, float *gx, int32_t accumulate, float *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    (void)scratch;
    if (!accumulate) {
        mt_zero_f32(d->in_c * g.plane, gx);
    }
    if (g.sh != 1 || g.sw != 1) {
        igrad_scatter(&g, co_begin, co_end, w, gy, gx);
    } else {
        igrad_s1(&g, co_begin, co_end, w, gy, gx);
    }
}
