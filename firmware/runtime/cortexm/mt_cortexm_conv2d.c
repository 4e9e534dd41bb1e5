/* conv2d for Cortex-M4F/M7/M55: the three passes as register-blocked steps (mt_cortexm_internal.h).
 *
 * Every pass works on blocks of 4 lanes x 4 adjacent columns (forward: 4 output channels of one group x 4
 * output columns; stride-1 input gradient: 4 input channels x 4 input columns; weight gradient: 4 output
 * channels x the 3 taps of a kernel row, summed over 4 pixels per step). A step loads the inputs its 4
 * columns need with one VLDM and each lane's kernel row (or output gradients) with one VLDMIA, then issues
 * one VMLA per multiply-accumulate: 16 MACs per lane and 3-tap row, about 1.1 instructions per MAC
 * before the loops around it. Rows whose width is not a multiple of 4 end with a block that overlaps the
 * one before it (the forward recomputes equal values; the input gradient adds only the new columns); a
 * block whose inputs reach one column into the padding reads that column as 0 (LEFT, RIGHT), any other
 * block reads a zero-padded copy of its span (COPY). Channels past the end of a range or group repeat the
 * last lane and are not stored.
 *
 * Blocked: kernels 3 wide with dilation 1, or 1 wide; horizontal stride 1 or 2 (forward, weight gradient),
 * strides (1, 1) or (2, 2) (input gradient); any height, vertical stride and dilation, padding, groups;
 * at least 2 channels per lane block (output channels of the range and the group; input channels of a
 * group for the input gradient). Everything else is the portable kernel's.
 *
 * Summation order: the forward and the stride-1 input gradient sum each output as the portable kernels
 * do (input channel or output channel, kernel row, kernel column), the weight gradient over the pixels in
 * raster order as they do: the same floats. The stride-2 input gradient sums each input position over
 * output channels, then taps, where the portable scatter adds channel pairs straight into the gradient.
 */
#include "mt_cortexm_internal.h"
#include "mt_cortexm_kernels.h"

/* ---- blocks ------------------------------------------------------------------------------------ */

/* Lane j of block element (l, j): the 16 accumulators as rows of 4, or 12 as rows of 3. */
#define MT_CM_EACH16(M) \
    M(0, 0)             \
    M(0, 1)             \
    M(0, 2)             \
    M(0, 3) M(1, 0) M(1, 1) M(1, 2) M(1, 3) M(2, 0) M(2, 1) M(2, 2) M(2, 3) M(3, 0) M(3, 1) M(3, 2) M(3, 3)
#define MT_CM_EACH12(M) \
    M(0, 0) M(0, 1) M(0, 2) M(1, 0) M(1, 1) M(1, 2) M(2, 0) M(2, 1) M(2, 2) M(3, 0) M(3, 1) M(3, 2)

/* A row of 4-column blocks by class: `n` blocks whose unclamped first columns are start, start + 4, ...
 * A block that would reach past the row's `width` starts at width - 4 (width >= 4) or 0 instead. */
typedef struct {
    int32_t start, n, edge;
} seg_t;

enum { MAX_SEGS = 6 }; /* the classes run COPY, LEFT, NONE, RIGHT, COPY along a row */

static int32_t clamp_block(int32_t start, int32_t width)
{
    return start + 4 > width ? (width > 4 ? width - 4 : 0) : start;
}

/* The segments of a row of `width` outputs whose block at column o reads the span of `span` inputs from
 * column o * step + first of a row of `size`. `plain`: LEFT and RIGHT become COPY (1-wide kernels). */
static int32_t row_segments(int32_t width, int32_t first, int32_t step, int32_t span, int32_t size,
                            int32_t plain, seg_t segs[MAX_SEGS])
{
    int32_t ns = 0;
    for (int32_t o = 0; o < width; o += 4) {
        int32_t e = mt_edge_of(first + clamp_block(o, width) * step, span, size);
        if (plain && e != MT_EDGE_NONE) {
            e = MT_EDGE_COPY;
        }
        if (ns > 0 && segs[ns - 1].edge == e) {
            segs[ns - 1].n++;
        } else {
            segs[ns].start = o;
            segs[ns].n = 1;
            segs[ns].edge = e;
            ++ns;
        }
    }
    return ns;
}

/* The part of a block's results t (copied out of the registers) in lanes l < nl, columns [j0, j1). */
static MT_CM_NOINLINE void put_partial(const float t[16], float *r, int32_t stride, int32_t nl, int32_t j0,
                                       int32_t j1, int32_t add)
{
    for (int32_t l = 0; l < nl; ++l) {
        for (int32_t j = j0; j < j1; ++j) {
            r[l * stride + j] = add ? r[l * stride + j] + t[4 * l + j] : t[4 * l + j];
        }
    }
}

/* Store (add = 0) or add (add = 1) the block into rows r, r + stride, ... of lanes l < nl, columns
 * [j0, j1): whole blocks straight from the registers, others through a copy (so that `a` never has its
 * address taken and stays in registers). */
MT_CM_INLINE void put_block(const float a[16], float *r, int32_t stride, int32_t nl, int32_t j0, int32_t j1,
                            int32_t add)
{
    /* the forward may rewrite a clamped block's first columns: it recomputed the same floats */
    if (nl == 4 && (j0 == 0 || !add) && j1 == 4) {
#define MT_CM_PUT(l, j) r[(l)*stride + (j)] = add ? r[(l)*stride + (j)] + a[4 * (l) + (j)] : a[4 * (l) + (j)];
        MT_CM_EACH16(MT_CM_PUT)
#undef MT_CM_PUT
        return;
    }
    float t[16];
#define MT_CM_SAVE(l, j) t[4 * (l) + (j)] = a[4 * (l) + (j)];
    MT_CM_EACH16(MT_CM_SAVE)
#undef MT_CM_SAVE
    put_partial(t, r, stride, nl, j0, j1, add);
}

/* Lane pointers: base + l * stride for l < n, then repeats of lane n - 1. */
static void lanes(const float *base, int32_t stride, int32_t n, const float *p[4])
{
    for (int32_t l = 0; l < 4; ++l) {
        p[l] = base + (l < n ? l : n - 1) * stride;
    }
}

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* The correlation step of kernel width kw (3 or 1), input stride s (1 or 2), flip (input gradient). */
MT_CM_INLINE void corr(float a[16], const float *p, int32_t edge, int32_t kw, int32_t s, int32_t flip,
                       const float *w[4])
{
#if MT_CM_ASM
    if (edge == MT_EDGE_COPY) {
        edge = MT_EDGE_NONE; /* p points at the zero-padded copy */
    }
#define MT_CM_CORR(LANE, LOAD, ...) \
    MT_CM_STEP(MT_CM_ACC8, MT_CM_STEP_TEXT(LANE, LOAD, __VA_ARGS__), a, p, w, MT_CM_CLOB_W)
    if (kw == 3 && s == 1) {
        if (edge == MT_EDGE_NONE) {
            if (flip) {
                MT_CM_CORR(MT_CM_IG3S1, MT_CM_W3, MT_CM_X6_NONE);
            } else {
                MT_CM_CORR(MT_CM_FW3S1, MT_CM_W3, MT_CM_X6_NONE);
            }
        } else if (edge == MT_EDGE_LEFT) {
            if (flip) {
                MT_CM_CORR(MT_CM_IG3S1, MT_CM_W3, MT_CM_X6_LEFT);
            } else {
                MT_CM_CORR(MT_CM_FW3S1, MT_CM_W3, MT_CM_X6_LEFT);
            }
        } else if (flip) {
            MT_CM_CORR(MT_CM_IG3S1, MT_CM_W3, MT_CM_X6_RIGHT);
        } else {
            MT_CM_CORR(MT_CM_FW3S1, MT_CM_W3, MT_CM_X6_RIGHT);
        }
    } else if (kw == 3) {
        if (edge == MT_EDGE_NONE) {
            MT_CM_CORR(MT_CM_FW3S2, MT_CM_W3, MT_CM_X9_NONE);
        } else if (edge == MT_EDGE_LEFT) {
            MT_CM_CORR(MT_CM_FW3S2, MT_CM_W3, MT_CM_X9_LEFT);
        } else {
            MT_CM_CORR(MT_CM_FW3S2, MT_CM_W3, MT_CM_X9_RIGHT);
        }
    } else if (s == 1) {
        MT_CM_CORR(MT_CM_FW1S1, MT_CM_W1, MT_CM_X4_NONE);
    } else {
        MT_CM_CORR(MT_CM_FW1S2, MT_CM_W1, MT_CM_X7_NONE);
    }
#undef MT_CM_CORR
#else
    mt_cm_corr_c(a, p, edge, kw, s, flip, w);
#endif
}

/* Whether a pass runs blocked: kernels 3 wide with dilation 1, or 1 wide without horizontal padding, with
 * rows of at least 4 (`width`: the rows the pass writes) and every output column's input inside the row
 * (at stride 1: as wide as the input), so that their blocks never need a copy. */
static int32_t blocked_kernel(const mt_conv_geom_t *g, int32_t width)
{
    return (g->kw == 3 && g->dw == 1) ||
           (g->kw == 1 && g->pl == 0 && width >= 4 && (g->out_w - 1) * g->sw < g->in_w &&
            (g->sw > 1 || g->out_w == g->in_w));
}

/* ---- forward ----------------------------------------------------------------------------------- */

typedef struct {
    const mt_conv_geom_t *g;
    const float *x;    /* the input channels of the lanes' group */
    const float *w[4]; /* the lanes' weight rows [cin_g][kh][kw] */
    float b[4];        /* the lanes' biases */
    float *y;          /* the output plane of lane 0 */
    int32_t nl;        /* lanes to store */
} fw_lanes_t;

/* The blocks of segment sg in output row oy (kw, sw and edge constants at the call sites). */
MT_CM_INLINE void fw_segment(const fw_lanes_t *c, int32_t kw, int32_t sw, int32_t edge, int32_t oy,
                             const seg_t *sg)
{
    const mt_conv_geom_t *g = c->g;
    const int32_t iy0 = oy * g->sh - g->pt;
    int32_t ky0, ky1;
    mt_valid_range(iy0, g->dh, g->kh, g->in_h, &ky0, &ky1);
    /* locals: the steps clobber memory, so fields of *g would be reloaded after each one */
    const int32_t in_w = g->in_w, cin_g = g->cin_g, plane = g->plane;
    const int32_t span = 3 * sw + kw, wskip = (g->kh - (ky1 - ky0)) * kw, rstep = g->dh * in_w;
    const float *x0 = c->x + (iy0 + ky0 * g->dh) * in_w;
    float tmp[9];
    for (int32_t blk = 0; blk < sg->n; ++blk) {
        const int32_t u = sg->start + 4 * blk, o = clamp_block(u, g->out_w);
        const int32_t ix0 = o * sw - g->pl;
        const float *w[4] = {c->w[0] + ky0 * kw, c->w[1] + ky0 * kw, c->w[2] + ky0 * kw, c->w[3] + ky0 * kw};
        float a[16];
#define MT_CM_BIAS(l, j) a[4 * (l) + (j)] = c->b[l];
        MT_CM_EACH16(MT_CM_BIAS)
#undef MT_CM_BIAS
        const float *xc = x0;
        for (int32_t ci = 0; ci < cin_g; ++ci, xc += plane) {
            const float *row = xc;
            for (int32_t ky = ky0; ky < ky1; ++ky, row += rstep) {
                corr(a, mt_span_of(edge, row, ix0, span, in_w, tmp), edge, kw, sw, 0, w);
            }
            if (wskip) {
                w[0] += wskip;
                w[1] += wskip;
                w[2] += wskip;
                w[3] += wskip;
            }
        }
        put_block(a, c->y + oy * g->out_w + o, g->oplane, c->nl, u - o, min_i32(4, g->out_w - o), 0);
    }
}

/* the segment's blocks in every output row */
#define MT_CM_FW_VARIANT(name, kw, sw, edge)                              \
    static MT_CM_NOINLINE void name(const fw_lanes_t *c, const seg_t *sg) \
    {                                                                     \
        for (int32_t oy = 0; oy < c->g->out_h; ++oy) {                    \
            fw_segment(c, kw, sw, edge, oy, sg);                          \
        }                                                                 \
    }
MT_CM_FW_VARIANT(fw_k3s1_none, 3, 1, MT_EDGE_NONE)
MT_CM_FW_VARIANT(fw_k3s1_left, 3, 1, MT_EDGE_LEFT)
MT_CM_FW_VARIANT(fw_k3s1_right, 3, 1, MT_EDGE_RIGHT)
MT_CM_FW_VARIANT(fw_k3s1_copy, 3, 1, MT_EDGE_COPY)
MT_CM_FW_VARIANT(fw_k3s2_none, 3, 2, MT_EDGE_NONE)
MT_CM_FW_VARIANT(fw_k3s2_left, 3, 2, MT_EDGE_LEFT)
MT_CM_FW_VARIANT(fw_k3s2_right, 3, 2, MT_EDGE_RIGHT)
MT_CM_FW_VARIANT(fw_k3s2_copy, 3, 2, MT_EDGE_COPY)
MT_CM_FW_VARIANT(fw_k1s1_none, 1, 1, MT_EDGE_NONE)
MT_CM_FW_VARIANT(fw_k1s2_none, 1, 2, MT_EDGE_NONE)

static void fw_dispatch(const fw_lanes_t *c, const seg_t *sg)
{
    const int32_t kw = c->g->kw, sw = c->g->sw, e = sg->edge;
    if (kw == 3 && sw == 1) {
        if (e == MT_EDGE_NONE) {
            fw_k3s1_none(c, sg);
        } else if (e == MT_EDGE_LEFT) {
            fw_k3s1_left(c, sg);
        } else if (e == MT_EDGE_RIGHT) {
            fw_k3s1_right(c, sg);
        } else {
            fw_k3s1_copy(c, sg);
        }
    } else if (kw == 3) {
        if (e == MT_EDGE_NONE) {
            fw_k3s2_none(c, sg);
        } else if (e == MT_EDGE_LEFT) {
            fw_k3s2_left(c, sg);
        } else if (e == MT_EDGE_RIGHT) {
            fw_k3s2_right(c, sg);
        } else {
            fw_k3s2_copy(c, sg);
        }
    } else if (sw == 1) { /* 1-wide kernels run without padding (see blocked_kernel): every block NONE */
        fw_k1s1_none(c, sg);
    } else {
        fw_k1s2_none(c, sg);
    }
}

/* The entry points decide in a function of their own and call either the blocked pass or the fallback, so
 * that a fallback's stack frame never sits on top of this file's larger ones. */
static MT_CM_NOINLINE int32_t fw_blocked(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    return blocked_kernel(&g, g.out_w) && g.sw <= 2 && g.cout_g >= 2 && co_end - co_begin >= 2;
}

static MT_CM_NOINLINE void fw_run(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                                  const float *w, const float *b, float *y)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    seg_t segs[MAX_SEGS];
    const int32_t ns = row_segments(g.out_w, -g.pl, g.sw, 3 * g.sw + g.kw, g.in_w, g.kw == 1, segs);
    fw_lanes_t c;
    c.g = &g;
    for (int32_t co = co_begin; co < co_end; co += c.nl) {
        const int32_t grp = co / g.cout_g;
        c.nl = min_i32(4, min_i32(co_end, (grp + 1) * g.cout_g) - co);
        c.x = x + grp * g.cin_g * g.plane;
        lanes(w + (co - co_begin) * g.K, g.K, c.nl, c.w);
        for (int32_t l = 0; l < 4; ++l) {
            c.b[l] = b != NULL ? b[co - co_begin + min_i32(l, c.nl - 1)] : 0.0f;
        }
        c.y = y + co * g.oplane;
        for (int32_t s = 0; s < ns; ++s) {
            fw_dispatch(&c, &segs[s]);
        }
    }
}

void mt_conv2d_fw_cortexm_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                              const float *w, const float *b, float *y, float *scratch)
{
    if (fw_blocked(d, co_begin, co_end)) {
        fw_run(d, co_begin, co_end, x, w, b, y);
    } else {
        mt_conv2d_fw_f32(d, co_begin, co_end, x, w, b, y, scratch);
    }
}

/* ---- input gradient, stride 1 ------------------------------------------------------------------ */

typedef struct {
    const mt_conv_geom_t *g;
    const float *gy;   /* the output gradient of the first output channel of the reduction */
    const float *w[4]; /* the lanes' weights of that channel: [kh][kw] of input channel ci + l */
    int32_t nco;       /* output channels of the reduction */
    float *gx;         /* the input-gradient plane of lane 0 */
    int32_t nl;        /* lanes to store */
} ig_lanes_t;

/* The blocks of segment sg of input-gradient row iy: gx(ci + l, iy, ix + j) gathers
 * w[co][ci + l][ky][kx] * gy(co, iy + pad_top - ky*dh, ix + j + pad_left - kx) (flipped correlation). */
MT_CM_INLINE void igrad_segment(const ig_lanes_t *c, int32_t kw, int32_t edge, int32_t iy, const seg_t *sg)
{
    const mt_conv_geom_t *g = c->g;
    int32_t ky0, ky1;
    mt_valid_range(g->out_h - 1 - (iy + g->pt), g->dh, g->kh, g->out_h, &ky0, &ky1); /* row inside gy */
    const int32_t out_w = g->out_w, oplane = g->oplane, nco = c->nco; /* locals: see fw_segment */
    const int32_t span = 3 + kw, wskip = g->K - (ky1 - ky0) * kw, rstep = g->dh * out_w;
    const float *g0 = c->gy + (iy + g->pt - ky0 * g->dh) * out_w;
    float tmp[9];
    for (int32_t blk = 0; blk < sg->n; ++blk) {
        const int32_t u = sg->start + 4 * blk, o = clamp_block(u, g->in_w);
        const int32_t first = o + g->pl - (kw - 1);
        const float *w[4] = {c->w[0] + ky0 * kw, c->w[1] + ky0 * kw, c->w[2] + ky0 * kw, c->w[3] + ky0 * kw};
        float a[16];
#define MT_CM_ZERO(l, j) a[4 * (l) + (j)] = 0.0f;
        MT_CM_EACH16(MT_CM_ZERO)
#undef MT_CM_ZERO
        const float *gc = g0;
        for (int32_t co = 0; co < nco; ++co, gc += oplane) {
            const float *row = gc;
            for (int32_t ky = ky0; ky < ky1; ++ky, row -= rstep) {
                corr(a, mt_span_of(edge, row, first, span, out_w, tmp), edge, kw, 1, 1, w);
            }
            w[0] += wskip;
            w[1] += wskip;
            w[2] += wskip;
            w[3] += wskip;
        }
        put_block(a, c->gx + iy * g->in_w + o, g->plane, c->nl, u - o, min_i32(4, g->in_w - o), 1);
    }
}

#define MT_CM_IG_VARIANT(name, kw, edge)                                              \
    static MT_CM_NOINLINE void name(const ig_lanes_t *c, int32_t iy, const seg_t *sg) \
    {                                                                                 \
        igrad_segment(c, kw, edge, iy, sg);                                           \
    }
MT_CM_IG_VARIANT(ig_k3_none, 3, MT_EDGE_NONE)
MT_CM_IG_VARIANT(ig_k3_left, 3, MT_EDGE_LEFT)
MT_CM_IG_VARIANT(ig_k3_right, 3, MT_EDGE_RIGHT)
MT_CM_IG_VARIANT(ig_k3_copy, 3, MT_EDGE_COPY)
MT_CM_IG_VARIANT(ig_k1_none, 1, MT_EDGE_NONE)

static void igrad_dispatch(const ig_lanes_t *c, int32_t iy, const seg_t *sg)
{
    const int32_t e = sg->edge;
    if (c->g->kw == 1) { /* unpadded (see blocked_kernel): every block NONE */
        ig_k1_none(c, iy, sg);
    } else if (e == MT_EDGE_NONE) {
        ig_k3_none(c, iy, sg);
    } else if (e == MT_EDGE_LEFT) {
        ig_k3_left(c, iy, sg);
    } else if (e == MT_EDGE_RIGHT) {
        ig_k3_right(c, iy, sg);
    } else {
        ig_k3_copy(c, iy, sg);
    }
}

/* ---- input gradient, stride 2 ------------------------------------------------------------------ */

/* The stride-2 step (see mt_cortexm_internal.h) of kernel width kw (3 or 1). */
MT_CM_INLINE void igrad_s2_step(float a[16], const float *p, int32_t edge, int32_t kw, const float *w[4])
{
#if MT_CM_ASM
#define MT_CM_IG2(LANE, LOAD, ...) \
    MT_CM_STEP(MT_CM_ACC8, MT_CM_STEP_TEXT(LANE, LOAD, __VA_ARGS__), a, p, w, MT_CM_CLOB_W)
    if (kw == 3) {
        if (edge == MT_EDGE_LEFT) {
            MT_CM_IG2(MT_CM_IG3S2, MT_CM_W3, MT_CM_X3_LEFT);
        } else if (edge == MT_EDGE_RIGHT) {
            MT_CM_IG2(MT_CM_IG3S2, MT_CM_W3, MT_CM_X3_RIGHT);
        } else {
            MT_CM_IG2(MT_CM_IG3S2, MT_CM_W3, MT_CM_X3_NONE);
        }
    } else if (edge == MT_EDGE_LEFT) {
        MT_CM_IG2(MT_CM_IG1S2, MT_CM_W1, MT_CM_X3_LEFT);
    } else if (edge == MT_EDGE_RIGHT) {
        MT_CM_IG2(MT_CM_IG1S2, MT_CM_W1, MT_CM_X3_RIGHT);
    } else {
        MT_CM_IG2(MT_CM_IG1S2, MT_CM_W1, MT_CM_X3_NONE);
    }
#undef MT_CM_IG2
#else
    mt_cm_igrad_s2_c(a, p, edge == MT_EDGE_COPY ? MT_EDGE_NONE : edge, kw, w);
#endif
}

/* The kernel rows of an input-gradient row iy at stride 2: ky = k0, k0 + kstep, ... (nky of them) reach it
 * (iy + pad_top - ky*dh even, its output row inside); rows of gy from g0 down by rstep, weights from k0. */
typedef struct {
    int32_t iy, k0, kstep, nky;
    const float *g0;
} s2_row_t;

/* The block of 4 input-gradient columns from ix0 (ix0 + pad_left even: columns ix0 and ix0 + 2 take the
 * even kernel columns, ix0 + 1 and ix0 + 3 the odd one) of row r: it reads output-gradient columns
 * m - 1 .. m + 1, m = (ix0 + pad_left) / 2 (kw and edge constants at the call sites). */
MT_CM_INLINE void igrad_s2_block(const ig_lanes_t *c, const s2_row_t *r, int32_t ix0, int32_t kw,
                                 int32_t edge)
{
    const mt_conv_geom_t *g = c->g;
    const int32_t out_w = g->out_w, oplane = g->oplane, nco = c->nco, nky = r->nky; /* locals: see fw */
    const int32_t rstep = r->kstep * g->dh / 2 * out_w, m = (ix0 + g->pl) / 2;
    const int32_t wgap = (r->kstep - 1) * kw, wskip = g->K - nky * r->kstep * kw;
    const int32_t k0 = r->k0 * kw;
    const float *w[4] = {c->w[0] + k0, c->w[1] + k0, c->w[2] + k0, c->w[3] + k0};
    float a[16], tmp[3];
#define MT_CM_ZERO(l, j) a[4 * (l) + (j)] = 0.0f;
    MT_CM_EACH16(MT_CM_ZERO)
#undef MT_CM_ZERO
    const float *gc = r->g0;
    for (int32_t co = 0; co < nco; ++co, gc += oplane) {
        const float *row = gc;
        for (int32_t k = 0; k < nky; ++k, row -= rstep) {
            igrad_s2_step(a, mt_span_of(edge, row, m - 1, 3, out_w, tmp), edge, kw, w);
            if (wgap) {
                w[0] += wgap;
                w[1] += wgap;
                w[2] += wgap;
                w[3] += wgap;
            }
        }
        w[0] += wskip;
        w[1] += wskip;
        w[2] += wskip;
        w[3] += wskip;
    }
    const int32_t j0 = ix0 < 0 ? -ix0 : 0;
    put_block(a, c->gx + r->iy * g->in_w + ix0, g->plane, c->nl, j0, min_i32(4, g->in_w - ix0), 1);
}

#define MT_CM_IG2_VARIANT(name, kw, edge)                                                \
    static MT_CM_NOINLINE void name(const ig_lanes_t *c, const s2_row_t *r, int32_t ix0) \
    {                                                                                    \
        igrad_s2_block(c, r, ix0, kw, edge);                                             \
    }
MT_CM_IG2_VARIANT(ig2_k3_none, 3, MT_EDGE_NONE)
MT_CM_IG2_VARIANT(ig2_k3_left, 3, MT_EDGE_LEFT)
MT_CM_IG2_VARIANT(ig2_k3_right, 3, MT_EDGE_RIGHT)
MT_CM_IG2_VARIANT(ig2_k3_copy, 3, MT_EDGE_COPY)

/* Input-gradient row iy at stride 2, in blocks of 4 columns from ix0 = -(pad_left & 1). */
static void igrad_s2_row(const ig_lanes_t *c, int32_t iy)
{
    const mt_conv_geom_t *g = c->g;
    s2_row_t r;
    r.iy = iy;
    r.k0 = 0;
    r.kstep = 1;
    int32_t ky1 = g->kh;
    if (g->dh % 2) { /* the parity of ky is fixed */
        r.k0 = (iy + g->pt) & 1;
        r.kstep = 2;
    } else if ((iy + g->pt) & 1) {
        return;
    }
    /* output row (iy + pt - ky*dh) / 2 inside [0, out_h) */
    while (r.k0 < ky1 && iy + g->pt - r.k0 * g->dh >= 2 * g->out_h) {
        r.k0 += r.kstep;
    }
    while (ky1 > r.k0 && iy + g->pt - (ky1 - 1) * g->dh < 0) {
        --ky1;
    }
    if (r.k0 >= ky1) {
        return;
    }
    r.nky = (ky1 - r.k0 + r.kstep - 1) / r.kstep;
    r.g0 = c->gy + (iy + g->pt - r.k0 * g->dh) / 2 * g->out_w;
    for (int32_t ix0 = -(g->pl & 1); ix0 < g->in_w; ix0 += 4) {
        const int32_t e = mt_edge_of((ix0 + g->pl) / 2 - 1, 3, g->out_w);
        if (e == MT_EDGE_NONE) { /* 3-wide kernels only (1-wide ones take the portable kernel) */
            ig2_k3_none(c, &r, ix0);
        } else if (e == MT_EDGE_LEFT) {
            ig2_k3_left(c, &r, ix0);
        } else if (e == MT_EDGE_RIGHT) {
            ig2_k3_right(c, &r, ix0);
        } else {
            ig2_k3_copy(c, &r, ix0);
        }
    }
}

static MT_CM_NOINLINE int32_t igrad_blocked(const mt_conv2d_dims_t *d)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    const int32_t s1 = g.sh == 1 && g.sw == 1, s2 = g.sh == 2 && g.sw == 2 && g.kw == 3;
    return blocked_kernel(&g, g.in_w) && (s1 || s2) && g.cin_g >= 2;
}

static MT_CM_NOINLINE void igrad_run(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                     const float *w, const float *gy, float *gx, int32_t accumulate)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    const int32_t s2 = g.sh == 2;
    if (!accumulate) {
        mt_zero_f32(d->in_c * g.plane, gx);
    }
    seg_t segs[MAX_SEGS];
    const int32_t ns = row_segments(g.in_w, g.pl - (g.kw - 1), 1, 3 + g.kw, g.out_w, g.kw == 1, segs);
    ig_lanes_t c;
    c.g = &g;
    for (int32_t grp = co_begin / g.cout_g; grp * g.cout_g < co_end; ++grp) {
        const int32_t ca = co_begin > grp * g.cout_g ? co_begin : grp * g.cout_g;
        c.nco = min_i32(co_end, (grp + 1) * g.cout_g) - ca;
        c.gy = gy + ca * g.oplane;
        for (int32_t ci = 0; ci < g.cin_g; ci += c.nl) {
            c.nl = min_i32(4, g.cin_g - ci);
            lanes(w + ((ca - co_begin) * g.cin_g + ci) * g.ksize, g.ksize, c.nl, c.w);
            c.gx = gx + (grp * g.cin_g + ci) * g.plane;
            for (int32_t iy = 0; iy < g.in_h; ++iy) {
                if (s2) {
                    igrad_s2_row(&c, iy);
                    continue;
                }
                for (int32_t s = 0; s < ns; ++s) {
                    igrad_dispatch(&c, iy, &segs[s]);
                }
            }
        }
    }
}

void mt_conv2d_bw_igrad_cortexm_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *w, const float *gy, float *gx, int32_t accumulate,
                                    float *scratch)
{
    if (igrad_blocked(d)) {
        igrad_run(d, co_begin, co_end, w, gy, gx, accumulate);
    } else {
        mt_conv2d_bw_igrad_f32(d, co_begin, co_end, w, gy, gx, accumulate, scratch);
    }
}

/* ---- weight gradient --------------------------------------------------------------------------- */

/* The weight-gradient step: npx (4, 2 or 1) pixels, kernel width kw (3 or 1), input stride s. */
MT_CM_INLINE void wgrad_step(float a[12], const float *p, int32_t edge, int32_t kw, int32_t s, int32_t npx,
                             const float *gl[4])
{
#if MT_CM_ASM
#define MT_CM_WG(acc, LANE, LOAD, ...) \
    MT_CM_STEP(acc, MT_CM_STEP_TEXT(LANE, LOAD, __VA_ARGS__), a, p, gl, MT_CM_CLOB_G)
    if (kw == 1) {
        if (npx == 1) {
            MT_CM_WG(MT_CM_ACC2, MT_CM_WG1P1, MT_CM_G1, MT_CM_X1_NONE);
        } else if (npx == 2 && s == 1) {
            MT_CM_WG(MT_CM_ACC2, MT_CM_WG1S1P2, MT_CM_G2, MT_CM_X2_NONE);
        } else if (npx == 2) {
            MT_CM_WG(MT_CM_ACC2, MT_CM_WG1S2P2, MT_CM_G2, MT_CM_X3_NONE);
        } else if (s == 1) {
            MT_CM_WG(MT_CM_ACC2, MT_CM_WG1S1, MT_CM_G4, MT_CM_X4_NONE);
        } else {
            MT_CM_WG(MT_CM_ACC2, MT_CM_WG1S2, MT_CM_G4, MT_CM_X7_NONE);
        }
    } else if (npx == 1) {
        if (edge == MT_EDGE_RIGHT) {
            MT_CM_WG(MT_CM_ACC6, MT_CM_WG3P1, MT_CM_G1, MT_CM_X3_RIGHT);
        } else {
            MT_CM_WG(MT_CM_ACC6, MT_CM_WG3P1, MT_CM_G1, MT_CM_X3_NONE);
        }
    } else if (npx == 2 && s == 1) {
        MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S1P2, MT_CM_G2, MT_CM_X4_NONE);
    } else if (npx == 2) {
        MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S2P2, MT_CM_G2, MT_CM_X5_NONE);
    } else if (s == 1) {
        if (edge == MT_EDGE_LEFT) {
            MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S1, MT_CM_G4, MT_CM_X6_LEFT);
        } else if (edge == MT_EDGE_RIGHT) {
            MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S1, MT_CM_G4, MT_CM_X6_RIGHT);
        } else {
            MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S1, MT_CM_G4, MT_CM_X6_NONE);
        }
    } else if (edge == MT_EDGE_LEFT) {
        MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S2, MT_CM_G4, MT_CM_X9_LEFT);
    } else if (edge == MT_EDGE_RIGHT) {
        MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S2, MT_CM_G4, MT_CM_X9_RIGHT);
    } else {
        MT_CM_WG(MT_CM_ACC6, MT_CM_WG3S2, MT_CM_G4, MT_CM_X9_NONE);
    }
#undef MT_CM_WG
#else
    mt_cm_wgrad_c(a, p, edge, kw, s, npx, gl);
#endif
}

/*
 * The steps of a row of output pixels, the same for every row: a first 4-pixel step that is LEFT or
 * NONE (`lead`), `mid` NONE ones, a last 4-pixel step that is RIGHT (`tail`); then the remaining pixels: a
 * 2-pixel step (n2), 1-pixel steps (n1), all NONE, and a last 1-pixel step that is RIGHT (`right1`). Rows
 * that need anything else (padding of 2 or more, narrow padded rows) take the portable kernel.
 */
typedef struct {
    int32_t lead, mid, tail, n2, n1, right1;
} wg_row_t;

static int32_t wgrad_row_plan(const mt_conv_geom_t *g, wg_row_t *r)
{
    const int32_t n4 = g->out_w / 4, span4 = 3 * g->sw + g->kw;
    r->lead = r->tail = r->n2 = r->n1 = r->right1 = 0;
    r->mid = n4;
    if (n4 > 0 && mt_edge_of(-g->pl, span4, g->in_w) == MT_EDGE_LEFT && g->kw == 3) {
        r->lead = 1;
        r->mid--;
    }
    if (r->mid > 0 && mt_edge_of((n4 - 1) * 4 * g->sw - g->pl, span4, g->in_w) == MT_EDGE_RIGHT &&
        g->kw == 3) {
        r->tail = 1;
        r->mid--;
    }
    for (int32_t i = r->lead; i < r->lead + r->mid; ++i) {
        if (mt_edge_of(4 * i * g->sw - g->pl, span4, g->in_w) != MT_EDGE_NONE) {
            return 0;
        }
    }
    for (int32_t ox = 4 * n4; ox < g->out_w; ++ox) {
        const int32_t e = mt_edge_of(ox * g->sw - g->pl, g->kw, g->in_w);
        if (e == MT_EDGE_RIGHT && ox == g->out_w - 1 && g->kw == 3) {
            r->right1 = 1;
        } else if (e != MT_EDGE_NONE) {
            return 0;
        } else {
            r->n1++;
        }
    }
    if (r->n1 >= 2) { /* two of the NONE pixels as one 2-pixel step */
        r->n2 = 1;
        r->n1 -= 2;
    }
    return 1;
}

typedef struct {
    const mt_conv_geom_t *g;
    const float *x;     /* the input channels of the lanes' group */
    const float *gy[4]; /* the lanes' output gradients */
    float *gw;          /* gw of lane 0 */
    int32_t nl;         /* lanes to store */
    int32_t accumulate;
    wg_row_t row;
} wg_lanes_t;

/* gw of the block's lanes, every input channel and kernel row: the sums over the output rows that a
 * kernel row reaches, each in raster order (kw, sw constants at the call sites). */
MT_CM_INLINE void wgrad_block(const wg_lanes_t *c, int32_t kw, int32_t sw)
{
    const mt_conv_geom_t *g = c->g;
    /* locals: the steps clobber memory, so fields of *c would be reloaded after each one */
    const int32_t lead = c->row.lead, tail = c->row.tail;
    const int32_t mid = c->row.mid, n2 = c->row.n2, n1 = c->row.n1, right1 = c->row.right1;
    const int32_t cstep = 4 * sw, col0 = -g->pl + lead, rstep = g->sh * g->in_w;
    for (int32_t ci = 0; ci < g->cin_g; ++ci) {
        const float *xc = c->x + ci * g->plane;
        for (int32_t ky = 0; ky < g->kh; ++ky) {
            const int32_t offy = ky * g->dh - g->pt;
            int32_t oy0, oy1;
            mt_valid_range(offy, g->sh, g->out_h, g->in_h, &oy0, &oy1);
            const int32_t skip = oy0 * g->out_w;
            const float *gl[4] = {c->gy[0] + skip, c->gy[1] + skip, c->gy[2] + skip, c->gy[3] + skip};
            float a[12];
#define MT_CM_ZERO(l, k) a[3 * (l) + (k)] = 0.0f;
            MT_CM_EACH12(MT_CM_ZERO)
#undef MT_CM_ZERO
            const float *xr = xc + (oy0 * g->sh + offy) * g->in_w + col0;
            for (int32_t oy = oy0; oy < oy1; ++oy, xr += rstep) {
                const float *p = xr;
                if (lead) {
                    wgrad_step(a, p, MT_EDGE_LEFT, kw, sw, 4, gl);
                    p += cstep - 1;
                }
                for (int32_t i = 0; i < mid; ++i, p += cstep) {
                    wgrad_step(a, p, MT_EDGE_NONE, kw, sw, 4, gl);
                }
                if (tail) {
                    wgrad_step(a, p, MT_EDGE_RIGHT, kw, sw, 4, gl);
                    p += cstep;
                }
                if (n2) {
                    wgrad_step(a, p, MT_EDGE_NONE, kw, sw, 2, gl);
                    p += 2 * sw;
                }
                for (int32_t i = 0; i < n1; ++i, p += sw) {
                    wgrad_step(a, p, MT_EDGE_NONE, kw, sw, 1, gl);
                }
                if (right1) {
                    wgrad_step(a, p, MT_EDGE_RIGHT, kw, sw, 1, gl);
                }
            }
            float *dst = c->gw + ci * g->ksize + ky * kw;
            if (c->nl == 4 && kw == 3) {
#define MT_CM_PUT(l, k) \
    dst[(l)*g->K + (k)] = c->accumulate ? dst[(l)*g->K + (k)] + a[3 * (l) + (k)] : a[3 * (l) + (k)];
                MT_CM_EACH12(MT_CM_PUT)
#undef MT_CM_PUT
                continue;
            }
            float t[12];
#define MT_CM_SAVE(l, k) t[3 * (l) + (k)] = a[3 * (l) + (k)];
            MT_CM_EACH12(MT_CM_SAVE)
#undef MT_CM_SAVE
            for (int32_t l = 0; l < c->nl; ++l) {
                for (int32_t k = 0; k < kw; ++k) {
                    dst[l * g->K + k] = c->accumulate ? dst[l * g->K + k] + t[3 * l + k] : t[3 * l + k];
                }
            }
        }
    }
}

#define MT_CM_WG_VARIANT(name, kw, sw)                   \
    static MT_CM_NOINLINE void name(const wg_lanes_t *c) \
    {                                                    \
        wgrad_block(c, kw, sw);                          \
    }
MT_CM_WG_VARIANT(wg_k3s1, 3, 1)
MT_CM_WG_VARIANT(wg_k3s2, 3, 2)
MT_CM_WG_VARIANT(wg_k1s1, 1, 1)
MT_CM_WG_VARIANT(wg_k1s2, 1, 2)

static void wgrad_dispatch(const wg_lanes_t *c)
{
    if (c->g->kw == 1) {
        if (c->g->sw == 1) {
            wg_k1s1(c);
        } else {
            wg_k1s2(c);
        }
    } else if (c->g->sw == 1) {
        wg_k3s1(c);
    } else {
        wg_k3s2(c);
    }
}

static void bias_grad(const float *gy, int32_t n, int32_t nch, float *gb, int32_t accumulate)
{
    for (int32_t c = 0; c < nch; ++c, gy += n) {
        float s = 0.0f;
        int32_t i = 0;
        for (; i + 4 <= n; i += 4) {
            s += gy[i];
            s += gy[i + 1];
            s += gy[i + 2];
            s += gy[i + 3];
        }
        for (; i < n; ++i) {
            s += gy[i];
        }
        gb[c] = accumulate ? gb[c] + s : s;
    }
}

static MT_CM_NOINLINE int32_t wgrad_blocked(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    wg_row_t row;
    return blocked_kernel(&g, g.out_w) && g.sw <= 2 && g.cout_g >= 2 && co_end - co_begin >= 2 &&
           wgrad_row_plan(&g, &row);
}

static MT_CM_NOINLINE void wgrad_run(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                     const float *x, const float *gy, float *gw, int32_t accumulate)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    wg_lanes_t c;
    wgrad_row_plan(&g, &c.row);
    c.g = &g;
    c.accumulate = accumulate;
    for (int32_t co = co_begin; co < co_end; co += c.nl) {
        const int32_t grp = co / g.cout_g;
        c.nl = min_i32(4, min_i32(co_end, (grp + 1) * g.cout_g) - co);
        lanes(gy + co * g.oplane, g.oplane, c.nl, c.gy);
        c.x = x + grp * g.cin_g * g.plane;
        c.gw = gw + (co - co_begin) * g.K;
        wgrad_dispatch(&c);
    }
}

void mt_conv2d_bw_wgrad_cortexm_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                    const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                    float *scratch)
{
    if (gb != NULL) {
        const int32_t oplane = d->out_h * d->out_w;
        bias_grad(gy + co_begin * oplane, oplane, co_end - co_begin, gb, accumulate);
    }
    if (gw == NULL) {
        return;
    }
    if (wgrad_blocked(d, co_begin, co_end)) {
        wgrad_run(d, co_begin, co_end, x, gy, gw, accumulate);
    } else {
        mt_conv2d_bw_wgrad_f32(d, co_begin, co_end, x, gy, gw, NULL, accumulate, scratch);
    }
}
