/* conv2d on the host, vectorized: the three passes as matrix products over im2col tiles.
 *
 * With K = cin_g*kh*kw and P = out_h*out_w, and per group:
 *  - forward:          y[co][p]   = b[co] + sum_k w[co][k] * col[k][p]
 *  - weight gradient:  gw[co][k]  = sum_p gy[co][p] * col[k][p]
 *  - input gradient:   gcol[k][p] = sum_co w[co][k] * gy[co][p], then gcol is added back onto gx (col2im)
 * where col[k][p] is the input value that kernel tap k reads for output pixel p (0 in the padding).
 *
 * col is packed tile by tile (rows k, contiguous pixels) into stack buffers of MT_FAST_TILE_FLOATS floats;
 * with stride 1 and equal input and output widths a tap's row is one shifted copy of the input plane.
 * Vectors are GCC vector extensions of MT_VL floats (16 with AVX-512, 8 with AVX, else 4).
 *
 * Micro-kernels:
 *  - "broadcast": a tile of rows x 1 or 2 vectors of the result in registers, each step one broadcast
 *    scalar per row times the loaded vectors. Forward: rows = output channels, vectors = pixels; input
 *    gradient: rows = taps, vectors = pixels; weight gradient of ranges of >= MT_VL/2 channels: rows =
 *    taps, vectors = channels (gy transposed per tile), so that no sum runs across lanes.
 *  - "dot": the weight gradient of narrower ranges, MRW channels x NKW taps of pixel vectors, each summed
 *    across its lanes once per tile.
 * Rounding: the forward rounds every product and sum (like the portable kernels and PyTorch's float32
 * convolution); the backward passes fuse multiply-adds where the machine has FMA (docs/kernels.md).
 */
#include <string.h>

#include "../src/mt_internal.h"
#include "mt_fast_kernels.h"

#if defined(__AVX512F__)
#define MT_VL 16
#elif defined(__AVX__)
#define MT_VL 8
#else
#define MT_VL 4
#endif

typedef float vf __attribute__((vector_size(MT_VL * sizeof(float))));

#define MT_INLINE static inline __attribute__((always_inline))

/* c + s*b with one rounding where the machine has FMA (the backward passes), else two. */
#if MT_VL == 16
#include <immintrin.h>
MT_INLINE vf fmadd(float s, vf b, vf c)
{
    return (vf)_mm512_fmadd_ps(_mm512_set1_ps(s), (__m512)b, (__m512)c);
}
MT_INLINE vf fmaddv(vf a, vf b, vf c)
{
    return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
}
#elif MT_VL == 8 && defined(__FMA__)
#include <immintrin.h>
MT_INLINE vf fmadd(float s, vf b, vf c)
{
    return (vf)_mm256_fmadd_ps(_mm256_set1_ps(s), (__m256)b, (__m256)c);
}
MT_INLINE vf fmaddv(vf a, vf b, vf c)
{
    return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
}
#else
MT_INLINE vf fmadd(float s, vf b, vf c)
{
    return c + s * b;
}
MT_INLINE vf fmaddv(vf a, vf b, vf c)
{
    return c + a * b;
}
#endif

#define NR (2 * MT_VL) /* pixels of a broadcast tile */
#if MT_VL == 16
#define MR  8 /* rows of a broadcast tile: 16 accumulators out of 32 registers */
#define MRW 4 /* output channels x taps of a dot tile: 24 accumulators */
#define NKW 6
#else
#define MR  4
#define MRW 4
#define NKW 3
#endif
/* The widest pixel tile: a tile of col then still holds at least 64 taps (forward) or NKW taps (weight
 * gradient, which reduces over pixels and prefers long rows). */
#define NB_MAX  (MT_FAST_TILE_FLOATS / 64)
#define NBW_MAX (MT_FAST_TILE_FLOATS / (4 * NKW))
/* Ranges of this many channels take the weight gradient by taps (at most a tile of channels per tap). */
#ifndef WGRAD_BY_TAPS
#define WGRAD_BY_TAPS(cnt) ((cnt) >= MT_VL / 2 && round_up((cnt), NR) * MR <= MT_FAST_TILE_FLOATS)
#endif

static int32_t min_i(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static int32_t round_up(int32_t n, int32_t m)
{
    return (n + m - 1) / m * m;
}

MT_INLINE vf ld(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

MT_INLINE void st(float *p, vf v)
{
    memcpy(p, &v, sizeof v);
}

static float hsum(vf v)
{
    float s[MT_VL];
    memcpy(s, &v, sizeof v);
    for (int32_t w = MT_VL / 2; w >= 1; w /= 2) {
        for (int32_t i = 0; i < w; ++i) {
            s[i] += s[i + w];
        }
    }
    return s[0];
}

/* ---- im2col tiles ------------------------------------------------------------------------------ */

/* Stride 1 and input rows as wide as output rows: the tap's col row is the input plane shifted by
 * dy*in_w + dx, one contiguous run, except for whole rows outside the input and the columns outside
 * [flo, fhi), which read 0 (packing) or are skipped (unpacking: zeroed in buf first, then added as 0). */
MT_INLINE void move_shifted(int32_t unpack, const mt_conv_geom_t *g, float *chan, int32_t dy, int32_t dx,
                            int32_t flo, int32_t fhi, int32_t p0, int32_t nb, float *dst)
{
    const int32_t w = g->out_w, shift = dy * w + dx;
    int32_t oy_lo, oy_hi; /* output rows whose input row lies inside */
    mt_valid_range(dy, 1, g->out_h, g->in_h, &oy_lo, &oy_hi);
    /* tile pixels [a, b): rows inside; [ca, cb): their part that also lies inside the plane */
    const int32_t a = oy_lo * w - p0 > 0 ? oy_lo * w - p0 : 0;
    const int32_t b = oy_hi * w - p0 < nb ? (oy_hi * w - p0 > a ? oy_hi * w - p0 : a) : nb;
    const int32_t ca = -p0 - shift > a ? (-p0 - shift < b ? -p0 - shift : b) : a;
    const int32_t cb =
        g->plane - p0 - shift < b ? (g->plane - p0 - shift > ca ? g->plane - p0 - shift : ca) : b;
    float *src = chan + p0 + shift;
    if (!unpack) {
        mt_zero_f32(ca, dst);
        memcpy(dst + ca, src + ca, (size_t)(cb - ca) * sizeof(float));
        mt_zero_f32(nb - cb, dst + cb);
    }
    /* the columns outside [flo, fhi) of the rows in [a, b): 0 in buf */
    if (flo > 0 || fhi < w) {
        for (int32_t r = (p0 + a) / w * w - p0; r < b; r += w) {
            for (int32_t ox = 0; ox < flo; ++ox) {
                if (r + ox >= a && r + ox < b) {
                    dst[r + ox] = 0.0f;
                }
            }
            for (int32_t ox = fhi; ox < w; ++ox) {
                if (r + ox >= a && r + ox < b) {
                    dst[r + ox] = 0.0f;
                }
            }
        }
    }
    if (unpack) {
        for (int32_t j = ca; j < cb; ++j) {
            src[j] += dst[j];
        }
    }
}

/* Any stride: one output-row segment at a time. */
MT_INLINE void move_rows(int32_t unpack, const mt_conv_geom_t *g, float *chan, int32_t ky, int32_t base,
                         int32_t flo, int32_t fhi, int32_t oy0, int32_t ox0, int32_t nb, float *dst)
{
    const int32_t sw = g->sw;
    {
        int32_t oy = oy0, ox = ox0;
        for (int32_t pp = 0; pp < nb; ++oy, ox = 0) {
            const int32_t n = min_i(g->out_w - ox, nb - pp);
            const int32_t iy = oy * g->sh - g->pt + ky * g->dh;
            float *d = dst + pp;
            pp += n;
            if (iy < 0 || iy >= g->in_h) {
                if (!unpack) {
                    mt_zero_f32(n, d);
                }
                continue;
            }
            const int32_t lo = flo - ox > 0 ? flo - ox : 0;
            const int32_t hi = fhi - ox < n ? (fhi - ox > lo ? fhi - ox : lo) : n;
            float *src = chan + iy * g->in_w + ox * sw + base;
            if (unpack && sw == 1) {
                for (int32_t j = lo; j < hi; ++j) {
                    src[j] += d[j];
                }
                continue;
            }
            if (unpack) {
                for (int32_t j = lo; j < hi; ++j) {
                    src[j * sw] += d[j];
                }
                continue;
            }
            for (int32_t j = 0; j < lo; ++j) {
                d[j] = 0.0f;
            }
            if (sw == 1) {
                memcpy(d + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
            } else if (sw == 2) { /* a constant stride: vectorized as a gather of even elements */
                for (int32_t j = lo; j < hi; ++j) {
                    d[j] = src[2 * j];
                }
            } else {
                for (int32_t j = lo; j < hi; ++j) {
                    d[j] = src[j * sw];
                }
            }
            for (int32_t j = hi; j < n; ++j) {
                d[j] = 0.0f;
            }
        }
    }
}

/* Moves a tile of col between buf[kk*ldb + pp] (taps k0..k0+kc, pixels p0..p0+nb) and the group's input
 * (or input gradient) t: unpack == 0 packs (col values; 0 in the padding; columns nb..ldb of each row 0),
 * unpack == 1 adds the tile onto the input positions its taps read. The columns inside the input are
 * computed once per tap; then one shifted run (stride 1, equal widths) or one row segment at a time. */
MT_INLINE void move_col(int32_t unpack, const mt_conv_geom_t *g, float *t, int32_t k0, int32_t kc, int32_t p0,
                        int32_t nb, float *buf, int32_t ldb)
{
    const int32_t sw = g->sw, oy0 = p0 / g->out_w, ox0 = p0 % g->out_w;
    int32_t ci = k0 / g->ksize, ky = k0 % g->ksize / g->kw, kx = k0 % g->kw; /* tap k0 + kk */
    for (int32_t kk = 0; kk < kc; ++kk, ++kx) {
        if (kx == g->kw) {
            kx = 0;
            if (++ky == g->kh) {
                ky = 0;
                ++ci;
            }
        }
        const int32_t base = kx * g->dw - g->pl; /* input column of output column ox: ox*sw + base */
        float *chan = t + ci * g->plane;
        float *dst = buf + kk * ldb;
        int32_t flo, fhi; /* output columns [flo, fhi) read inside the input */
        mt_valid_range(base, sw, g->out_w, g->in_w, &flo, &fhi);
        if (sw == 1 && g->in_w == g->out_w) {
            move_shifted(unpack, g, chan, ky * g->dh - g->pt, base, flo, fhi, p0, nb, dst);
        } else {
            move_rows(unpack, g, chan, ky, base, flo, fhi, oy0, ox0, nb, dst);
        }
        if (!unpack) {
            mt_zero_f32(ldb - nb, dst + nb);
        }
    }
}

static void pack_col(const mt_conv_geom_t *g, const float *xg, int32_t k0, int32_t kc, int32_t p0, int32_t nb,
                     float *buf, int32_t ldb)
{
    move_col(0, g, (float *)xg, k0, kc, p0, nb, buf, ldb);
}

static void unpack_add(const mt_conv_geom_t *g, float *gxg, int32_t k0, int32_t kc, int32_t p0, int32_t nb,
                       const float *buf, int32_t ldb)
{
    move_col(1, g, gxg, k0, kc, p0, nb, (float *)buf, ldb);
}

/* ---- broadcast micro-kernel: c[i][0..nv*VL) (+)= sum_r a[i*ars + r*acs] * b[r*ldb + 0..nv*VL) -------- */

/* Rows i < mr and nv (1 or 2) vectors of columns, constants at each instantiation: a wide tile (nv 2, up
 * to MR rows) or a narrow one (nv 1, up to 2*MR rows), both 2*MR accumulators; fused (the backward
 * passes) or with the product rounded before the sum (the forward). The accumulators start from bias[i]
 * (bias != NULL), from c (load) or from 0; the first ncols columns are stored. */
MT_INLINE void bcast_tile(int32_t fused, int32_t nv, int32_t mr, int32_t kd, const float *a, int32_t ars,
                          int32_t acs, const float *b, int32_t ldb, float *c, int32_t ldc, int32_t ncols,
                          const float *bias, int32_t load)
{
    vf acc[2 * MR][2];
    float tmp[NR];
    for (int32_t i = 0; i < mr; ++i) {
        if (load) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, c + i * ldc, (size_t)ncols * sizeof(float));
            for (int32_t v = 0; v < nv; ++v) {
                acc[i][v] = ld(tmp + v * MT_VL);
            }
        } else {
            const float s = bias != NULL ? bias[i] : 0.0f;
            for (int32_t v = 0; v < nv; ++v) {
                acc[i][v] = (vf){0} + s;
            }
        }
    }
    for (int32_t r = 0; r < kd; ++r) {
        const vf b0 = ld(b + r * ldb), b1 = nv == 2 ? ld(b + r * ldb + MT_VL) : b0;
        const float *ar = a + r * acs;
#pragma GCC unroll 16
        for (int32_t i = 0; i < mr; ++i) {
            const float s = ar[i * ars];
            if (fused) {
                acc[i][0] = fmadd(s, b0, acc[i][0]);
                acc[i][1] = nv == 2 ? fmadd(s, b1, acc[i][1]) : acc[i][1];
            } else {
                acc[i][0] += s * b0;
                if (nv == 2) {
                    acc[i][1] += s * b1;
                }
            }
        }
    }
    for (int32_t i = 0; i < mr; ++i) {
        if (ncols == nv * MT_VL) {
            for (int32_t v = 0; v < nv; ++v) {
                st(c + i * ldc + v * MT_VL, acc[i][v]);
            }
        } else {
            for (int32_t v = 0; v < nv; ++v) {
                st(tmp + v * MT_VL, acc[i][v]);
            }
            memcpy(c + i * ldc, tmp, (size_t)ncols * sizeof(float));
        }
    }
}

typedef void (*bcast_fn)(int32_t, const float *, int32_t, int32_t, const float *, int32_t, float *, int32_t,
                         int32_t, const float *, int32_t);

#define MT_BCAST(f, nv, m)                                                                               \
    static void bcast##f##nv##_##m(int32_t kd, const float *a, int32_t ars, int32_t acs, const float *b, \
                                   int32_t ldb, float *c, int32_t ldc, int32_t ncols, const float *bias, \
                                   int32_t load)                                                         \
    {                                                                                                    \
        bcast_tile(f, nv, m, kd, a, ars, acs, b, ldb, c, ldc, ncols, bias, load);                        \
    }
MT_BCAST(0, 2, 1)
MT_BCAST(0, 2, 2)
MT_BCAST(0, 2, 3)
MT_BCAST(0, 2, 4)
MT_BCAST(1, 2, 1)
MT_BCAST(1, 2, 2)
MT_BCAST(1, 2, 3)
MT_BCAST(1, 2, 4)
MT_BCAST(1, 1, 1)
MT_BCAST(1, 1, 2)
MT_BCAST(1, 1, 3)
MT_BCAST(1, 1, 4)
MT_BCAST(1, 1, 5)
MT_BCAST(1, 1, 6)
MT_BCAST(1, 1, 7)
MT_BCAST(1, 1, 8)
#if MR == 8
MT_BCAST(0, 2, 5)
MT_BCAST(0, 2, 6)
MT_BCAST(0, 2, 7)
MT_BCAST(0, 2, 8)
MT_BCAST(1, 2, 5)
MT_BCAST(1, 2, 6)
MT_BCAST(1, 2, 7)
MT_BCAST(1, 2, 8)
MT_BCAST(1, 1, 9)
MT_BCAST(1, 1, 10)
MT_BCAST(1, 1, 11)
MT_BCAST(1, 1, 12)
MT_BCAST(1, 1, 13)
MT_BCAST(1, 1, 14)
MT_BCAST(1, 1, 15)
MT_BCAST(1, 1, 16)
#endif

/* By rows: the forward's wide tiles (FW2, unfused, mr <= MR); the backward's wide (BW2, mr <= MR) and
 * narrow (BW1, mr <= 2*MR) tiles, fused. */
static const bcast_fn FW2[MR + 1] = {
    NULL,      bcast02_1, bcast02_2, bcast02_3, bcast02_4,
#if MR == 8
    bcast02_5, bcast02_6, bcast02_7, bcast02_8,
#endif
};
static const bcast_fn BW2[MR + 1] = {
    NULL,      bcast12_1, bcast12_2, bcast12_3, bcast12_4,
#if MR == 8
    bcast12_5, bcast12_6, bcast12_7, bcast12_8,
#endif
};
static const bcast_fn BW1[2 * MR + 1] = {
    NULL,      bcast11_1,  bcast11_2,  bcast11_3,  bcast11_4,  bcast11_5,  bcast11_6,  bcast11_7,  bcast11_8,
#if MR == 8
    bcast11_9, bcast11_10, bcast11_11, bcast11_12, bcast11_13, bcast11_14, bcast11_15, bcast11_16,
#endif
};

/* ---- dot micro-kernel: o[i*ldo + j] (+)= sum_p a[i*lda + p] * b[j*ldb + p] ---------------------------- */

/* Rows i < mr (a constant at each instantiation), taps j < NKW of which the first nk are stored (the
 * others repeat row nk-1 of b). Pixels p < n; b's rows are zero from n up to a multiple of MT_VL. */
MT_INLINE void dot_tile(int32_t mr, int32_t nk, int32_t n, const float *a, int32_t lda, const float *b,
                        int32_t ldb, float *o, int32_t ldo, int32_t load)
{
    vf acc[MRW][NKW];
    const float *bj[NKW];
    for (int32_t j = 0; j < NKW; ++j) {
        bj[j] = b + min_i(j, nk - 1) * ldb;
        for (int32_t i = 0; i < mr; ++i) {
            acc[i][j] = (vf){0};
        }
    }
    const int32_t full = n / MT_VL * MT_VL;
    for (int32_t p = 0; p < full; p += MT_VL) {
        vf x[NKW];
        for (int32_t j = 0; j < NKW; ++j) {
            x[j] = ld(bj[j] + p);
        }
        for (int32_t i = 0; i < mr; ++i) {
            const vf u = ld(a + i * lda + p);
            for (int32_t j = 0; j < NKW; ++j) {
                acc[i][j] = fmaddv(u, x[j], acc[i][j]);
            }
        }
    }
    if (full < n) { /* last partial vector: a's tail through a zero-padded copy */
        float tmp[MT_VL];
        for (int32_t i = 0; i < mr; ++i) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, a + i * lda + full, (size_t)(n - full) * sizeof(float));
            const vf u = ld(tmp);
            for (int32_t j = 0; j < NKW; ++j) {
                acc[i][j] = fmaddv(u, ld(bj[j] + full), acc[i][j]);
            }
        }
    }
    for (int32_t i = 0; i < mr; ++i) {
        for (int32_t j = 0; j < nk; ++j) {
            const float s = hsum(acc[i][j]);
            o[i * ldo + j] = load ? o[i * ldo + j] + s : s;
        }
    }
}

#define MT_DOT(m)                                                                                        \
    static void dot_##m(int32_t nk, int32_t n, const float *a, int32_t lda, const float *b, int32_t ldb, \
                        float *o, int32_t ldo, int32_t load)                                             \
    {                                                                                                    \
        dot_tile(m, nk, n, a, lda, b, ldb, o, ldo, load);                                                \
    }
MT_DOT(1)
MT_DOT(2)
MT_DOT(3)
MT_DOT(4)

typedef void (*dot_fn)(int32_t, int32_t, const float *, int32_t, const float *, int32_t, float *, int32_t,
                       int32_t);
static const dot_fn DOT[MRW + 1] = {NULL, dot_1, dot_2, dot_3, dot_4};

/* ---- the three passes -------------------------------------------------------------------------- */

/* The groups that the range [co_begin, co_end) touches, each as its channels [ca, cb). */
#define MT_FOR_GROUPS(g, co_begin, co_end)                                                                   \
    for (int32_t grp = (co_begin) / (g).cout_g, ca, cb;                                                      \
         grp * (g).cout_g < (co_end) && (ca = (co_begin) > grp * (g).cout_g ? (co_begin) : grp * (g).cout_g, \
                                        cb = min_i((co_end), (grp + 1) * (g).cout_g), 1);                    \
         ++grp)

void mt_conv2d_fw_fast_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                           const float *w, const float *b, float *y, float *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    float col[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    const int32_t nb_max = min_i(round_up(g.oplane, NR), NB_MAX);
    const int32_t kc_max = MT_FAST_TILE_FLOATS / nb_max;
    (void)scratch;
    MT_FOR_GROUPS(g, co_begin, co_end)
    {
        const float *xg = x + grp * g.cin_g * g.plane;
        for (int32_t p0 = 0; p0 < g.oplane; p0 += nb_max) {
            const int32_t nb = min_i(nb_max, g.oplane - p0), ldb = round_up(nb, NR);
            for (int32_t k0 = 0; k0 < g.K; k0 += kc_max) {
                const int32_t kc = min_i(kc_max, g.K - k0);
                pack_col(&g, xg, k0, kc, p0, nb, col, ldb);
                for (int32_t j = 0; j < nb; j += NR) {
                    for (int32_t co = ca; co < cb; co += MR) {
                        const int32_t mr = min_i(MR, cb - co);
                        const float *bias = (k0 == 0 && b != NULL) ? b + (co - co_begin) : NULL;
                        FW2[mr](kc, w + (co - co_begin) * g.K + k0, g.K, 1, col + j, ldb,
                                y + co * g.oplane + p0 + j, g.oplane, min_i(NR, nb - j), bias, k0 > 0);
                    }
                }
            }
        }
    }
}

/* Weight gradient, one tap per row: gwt[k][c] = sum_p col[k][p] * gy[ca + c][p] through the broadcast
 * micro-kernel, with gy transposed per pixel tile (gyt[p][c]) and the taps x channels result transposed
 * into gw at the end. Lanes hold channels, so no sums across lanes; for ranges of at least NR/2 channels. */
static void wgrad_by_taps(const mt_conv_geom_t *g, int32_t ca, int32_t cb, int32_t co_begin, const float *xg,
                          const float *gy, float *gw, int32_t accumulate)
{
    float col[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    float gyt[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    float gwt[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    const int32_t cnt = cb - ca, narrow = cnt <= MT_VL; /* narrow: one vector of channels, 2*MR taps */
    const int32_t ldg = narrow ? MT_VL : round_up(cnt, NR), rows = narrow ? 2 * MR : MR;
    /* all taps in one tile where they fit (gy is then transposed once per pixel tile) */
    const int32_t kc_max = min_i(g->K, MT_FAST_TILE_FLOATS / ldg / rows * rows);
    const int32_t nb_max = min_i(g->oplane, MT_FAST_TILE_FLOATS / ldg < MT_FAST_TILE_FLOATS / kc_max
                                                ? MT_FAST_TILE_FLOATS / ldg
                                                : MT_FAST_TILE_FLOATS / kc_max);
    for (int32_t k0 = 0; k0 < g->K; k0 += kc_max) {
        const int32_t kc = min_i(kc_max, g->K - k0);
        for (int32_t p0 = 0; p0 < g->oplane; p0 += nb_max) {
            const int32_t nb = min_i(nb_max, g->oplane - p0);
            pack_col(g, xg, k0, kc, p0, nb, col, nb);
            for (int32_t pp = 0; pp < nb; ++pp) {
                for (int32_t c = 0; c < cnt; ++c) {
                    gyt[pp * ldg + c] = gy[(ca + c) * g->oplane + p0 + pp];
                }
                mt_zero_f32(ldg - cnt, gyt + pp * ldg + cnt);
            }
            for (int32_t j = 0; j < cnt; j += ldg < NR ? ldg : NR) {
                for (int32_t kk = 0; kk < kc; kk += rows) {
                    const int32_t mr = min_i(rows, kc - kk);
                    (narrow ? BW1 : BW2)[mr](nb, col + kk * nb, nb, 1, gyt + j, ldg, gwt + kk * ldg + j, ldg,
                                             ldg < NR ? ldg : NR, NULL, p0 > 0);
                }
            }
        }
        for (int32_t c = 0; c < cnt; ++c) {
            float *o = gw + (ca + c - co_begin) * g->K + k0;
            for (int32_t kk = 0; kk < kc; ++kk) {
                o[kk] = accumulate ? o[kk] + gwt[kk * ldg + c] : gwt[kk * ldg + c];
            }
        }
    }
}

/* Weight gradient, one output channel per row: MRW channels x NKW taps of dot products over pixels, each
 * summed across its lanes once per pixel tile; for narrow ranges (cheap when the tiles are long). */
static void wgrad_by_channels(const mt_conv_geom_t *g, int32_t ca, int32_t cb, int32_t co_begin,
                              const float *xg, const float *gy, float *gw, int32_t accumulate)
{
    float col[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    const int32_t nb_max = min_i(round_up(g->oplane, MT_VL), NBW_MAX);
    for (int32_t p0 = 0; p0 < g->oplane; p0 += nb_max) {
        const int32_t nb = min_i(nb_max, g->oplane - p0), ldb = round_up(nb, MT_VL);
        const int32_t kc_max = MT_FAST_TILE_FLOATS / ldb / NKW * NKW;
        const int32_t load = accumulate || p0 > 0;
        for (int32_t k0 = 0; k0 < g->K; k0 += kc_max) {
            const int32_t kc = min_i(kc_max, g->K - k0);
            pack_col(g, xg, k0, kc, p0, nb, col, ldb);
            for (int32_t co = ca; co < cb; co += MRW) {
                const int32_t mr = min_i(MRW, cb - co);
                for (int32_t kk = 0; kk < kc; kk += NKW) {
                    DOT[mr](min_i(NKW, kc - kk), nb, gy + co * g->oplane + p0, g->oplane, col + kk * ldb, ldb,
                            gw + (co - co_begin) * g->K + k0 + kk, g->K, load);
                }
            }
        }
    }
}

void mt_conv2d_bw_wgrad_fast_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                                 const float *gy, float *gw, float *gb, int32_t accumulate, float *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    (void)scratch;
    if (gb != NULL) {
        for (int32_t co = co_begin; co < co_end; ++co) {
            const float *gyc = gy + co * g.oplane;
            const int32_t full = g.oplane / MT_VL * MT_VL;
            vf acc = {0};
            float s = 0.0f;
            for (int32_t p = 0; p < full; p += MT_VL) {
                acc += ld(gyc + p);
            }
            for (int32_t p = full; p < g.oplane; ++p) {
                s += gyc[p];
            }
            s += hsum(acc);
            gb[co - co_begin] = accumulate ? gb[co - co_begin] + s : s;
        }
    }
    if (gw == NULL) {
        return;
    }
    MT_FOR_GROUPS(g, co_begin, co_end)
    {
        const float *xg = x + grp * g.cin_g * g.plane;
        if (WGRAD_BY_TAPS(cb - ca)) {
            wgrad_by_taps(&g, ca, cb, co_begin, xg, gy, gw, accumulate);
        } else {
            wgrad_by_channels(&g, ca, cb, co_begin, xg, gy, gw, accumulate);
        }
    }
}

void mt_conv2d_bw_igrad_fast_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *w,
                                 const float *gy, float *gx, int32_t accumulate, float *scratch)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    float gyt[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    float gcol[MT_FAST_TILE_FLOATS] __attribute__((aligned(64)));
    const int32_t nb_max = min_i(round_up(g.oplane, NR), NB_MAX);
    const int32_t rows_max = MT_FAST_TILE_FLOATS / nb_max; /* taps of gcol, channels of gyt per tile */
    (void)scratch;
    if (!accumulate) {
        mt_zero_f32(d->in_c * g.plane, gx);
    }
    MT_FOR_GROUPS(g, co_begin, co_end)
    {
        float *gxg = gx + grp * g.cin_g * g.plane;
        for (int32_t p0 = 0; p0 < g.oplane; p0 += nb_max) {
            const int32_t nb = min_i(nb_max, g.oplane - p0), ldb = round_up(nb, NR);
            /* gy rows are read in place when the tile is whole panels, else through zero-padded copies */
            const int32_t direct = nb == ldb, ldy = direct ? g.oplane : ldb;
            int32_t packed = -1; /* first channel of the gy rows in gyt */
            for (int32_t k0 = 0; k0 < g.K; k0 += rows_max) {
                const int32_t kc = min_i(rows_max, g.K - k0);
                for (int32_t c0 = ca; c0 < cb; c0 += rows_max) {
                    const int32_t cc = min_i(rows_max, cb - c0);
                    const float *gyb = direct ? gy + c0 * g.oplane + p0 : gyt;
                    if (!direct && packed != c0) {
                        for (int32_t i = 0; i < cc; ++i) {
                            memcpy(gyt + i * ldb, gy + (c0 + i) * g.oplane + p0, (size_t)nb * sizeof(float));
                            mt_zero_f32(ldb - nb, gyt + i * ldb + nb);
                        }
                        packed = c0;
                    }
                    for (int32_t j = 0; j < nb; j += NR) {
                        for (int32_t kk = 0; kk < kc; kk += MR) {
                            const int32_t mr = min_i(MR, kc - kk);
                            BW2[mr](cc, w + (c0 - co_begin) * g.K + k0 + kk, 1, g.K, gyb + j, ldy,
                                    gcol + kk * ldb + j, ldb, NR, NULL, c0 > ca);
                        }
                    }
                }
                unpack_add(&g, gxg, k0, kc, p0, nb, gcol, ldb);
            }
        }
    }
}
