/* conv2d for Cortex-M55 with Helium (MVE): the three passes on vectors of 4 adjacent outputs.
 *
 * Forward and stride-1 input gradient: a block is 4 lanes (output channels; input channels) times one vector
 * of 4 adjacent columns. For every row of the reduction (input channel or output channel, kernel row) and
 * every tap, one vector load of the 4 inputs the columns need (a gather of every second input at stride 2)
 * serves the 4 lanes: per lane one VMUL by the tap's weight (a scalar from a core register) and one VADD,
 * the two roundings of the portable kernel's `acc += w * x` in its order: the same floats. Columns whose
 * inputs lie in the padding, and the columns past the end of a row, are lanes of a predicated load (they
 * read 0 without touching memory) and of a predicated store.
 *
 * Weight gradient: per lane (output channel) a vector accumulates the products of 4 adjacent pixels for
 * one tap, and its 4 partial sums are added at the end: the order of the sum differs from the portable
 * kernel's raster order (float round-off).
 *
 * Blocked: kernels 3 wide with dilation 1, or 1 wide; horizontal stride 1 or 2 (forward, weight gradient),
 * strides (1, 1) (input gradient); at least 2 lanes of work. Other geometries, the stride-2 input gradient
 * included, take the Cortex-M kernels (which fall back to the portable ones in turn).
 */
#include <arm_mve.h>
#include <stdint.h>

#include "../src/mt_internal.h"
#include "mt_cortexm_kernels.h"
#include "mt_helium_kernels.h"

#define MT_HE_INLINE   static inline __attribute__((always_inline))
#define MT_HE_NOINLINE __attribute__((noinline))

static int32_t min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* The predicate of the lanes j < n (n in 0..4). */
static mve_pred16_t lanes_below(int32_t n)
{
    return (mve_pred16_t)((1u << (4 * n)) - 1u);
}

/* The lanes j < n whose input c + j*s lies in [0, size). */
static mve_pred16_t inside(int32_t c, int32_t s, int32_t n, int32_t size)
{
    int32_t lo, hi;
    mt_valid_range(c, s, n, size, &lo, &hi);
    return (mve_pred16_t)(lanes_below(hi) & ~lanes_below(lo));
}

/* x[c + j*s] for j = 0..3 (s 1 or 2); with `pred`, lanes outside p read 0 and touch no memory. */
MT_HE_INLINE float32x4_t load4(const float *row, int32_t c, int32_t s, int32_t pred, mve_pred16_t p)
{
    if (s == 1) {
        return pred ? vldrwq_z_f32(row + c, p) : vldrwq_f32(row + c);
    }
    const uint32x4_t even = vidupq_n_u32(0u, 2);
    return pred ? vldrwq_gather_shifted_offset_z_f32(row + c, even, p)
                : vldrwq_gather_shifted_offset_f32(row + c, even);
}

/* ---- forward and stride-1 input gradient ------------------------------------------------------- */

/*
 * One block: for the reduction rows r = (outer o, kernel row ky), o < n_outer, ky in [ky0, ky1):
 *   acc_L += sum_kx W_L(r)[kx] * X_r[c0 + dir*kx + j*s]
 * with X_r = base + o*x_outer + ky*x_ky, W_L(r) = w[L] + o*w_outer + ky*kw. Forward: outer = input channel,
 * dir = +1; input gradient: outer = output channel, dir = -1 (the flipped kernel).
 */
typedef struct {
    const float *base;
    int32_t x_outer, x_ky, size; /* row steps (floats), row length */
    const float *w[4];
    int32_t w_outer; /* weight step per outer index (floats) */
    int32_t n_outer, ky0, ky1, dir;
} red_t;

/*
 * One row of the reduction as one asm statement: the kw taps' input vectors into q5.. (a contiguous load at
 * stride 1; at stride 2 VIDUP makes the vector of addresses p, p+8, p+16, p+24 and gathers read the taps),
 * predicated by the masks m0..m2 when `pred` (lanes outside the row read 0 and touch no memory); then per
 * lane its kw weights (one LDM into r10-r12, the lane pointer stepping on) and per tap a VMUL by the weight
 * and a VADD into the lane's accumulator (q0-q3, chosen by GCC). The input gradient (flip) reads the taps
 * from column c0 - 2 up and multiplies them by the weights in reverse: kernel column 0 first, as the
 * portable kernel sums.
 */
#define MT_HE_LD(q, off)     "vldrw.u32 " q ", [%[p], #" off "]\n\t"
#define MT_HE_LDP(q, off, m) "vmsr p0, %[" m "]\n\tvpst\n\tvldrwt.u32 " q ", [%[p], #" off "]\n\t"
#define MT_HE_GA(q, off)     "vldrw.u32 " q ", [q4, #" off "]\n\t"
#define MT_HE_GAP(q, off, m) "vmsr p0, %[" m "]\n\tvpst\n\tvldrwt.u32 " q ", [q4, #" off "]\n\t"
#define MT_HE_MAC(a, x, w)   "vmul.f32 q4, " x ", " w "\n\tvadd.f32 %q[" a "], %q[" a "], q4\n\t"
#define MT_HE_LANE3(L, x0, x1, x2)                                                                   \
    "ldm %[w" #L "]!, {r10, r11, r12}\n\t" MT_HE_MAC("a" #L, x0, "r10") MT_HE_MAC("a" #L, x1, "r11") \
        MT_HE_MAC("a" #L, x2, "r12")
#define MT_HE_LANE1(L) "ldr r10, [%[w" #L "]], #4\n\t" MT_HE_MAC("a" #L, "q5", "r10")
#define MT_HE_FW3(L)   MT_HE_LANE3(L, "q5", "q6", "q7")
#define MT_HE_IG3(L)   MT_HE_LANE3(L, "q7", "q6", "q5")
#define MT_HE_LANES(M) M(0) M(1) M(2) M(3)
#define MT_HE_OUT                                                                                            \
    [a0] "+w"(a0), [a1] "+w"(a1), [a2] "+w"(a2), [a3] "+w"(a3), [w0] "+r"(u0), [w1] "+r"(u1), [w2] "+r"(u2), \
        [w3] "+r"(u3)
#define MT_HE_CLOB       "q4", "q5", "q6", "q7", "r10", "r11", "r12", "memory"
#define MT_HE_STEP(text) __asm__(text:MT_HE_OUT : [p] "r"(row) : MT_HE_CLOB)
#define MT_HE_STEP_P(text) \
    __asm__(text:MT_HE_OUT : [p] "r"(row), [m0] "r"(m0), [m1] "r"(m1), [m2] "r"(m2) : MT_HE_CLOB)

/* One block of 4 columns from c0 of the lanes' rows (flip: the input gradient; pred: the taps are predicated
 * by their masks p[k]; constants at the call sites). */
MT_HE_INLINE void block(const red_t *r, int32_t kw, int32_t s, int32_t flip, int32_t pred, int32_t c0,
                        const mve_pred16_t p[3], const float bias[4], float *y, int32_t stride, int32_t nl,
                        mve_pred16_t ps, int32_t add)
{
    const int32_t nky = r->ky1 - r->ky0, x_ky = r->x_ky, n_outer = r->n_outer;
    const int32_t x_next = r->x_outer - nky * x_ky, w_next = r->w_outer - nky * kw;
    const uint32_t m0 = p[0], m1 = p[1], m2 = p[2];
    float32x4_t a0 = vdupq_n_f32(bias[0]), a1 = vdupq_n_f32(bias[1]);
    float32x4_t a2 = vdupq_n_f32(bias[2]), a3 = vdupq_n_f32(bias[3]);
    const float *row = r->base + r->ky0 * x_ky + c0 - (flip ? kw - 1 : 0);
    const float *u0 = r->w[0] + r->ky0 * kw, *u1 = r->w[1] + r->ky0 * kw;
    const float *u2 = r->w[2] + r->ky0 * kw, *u3 = r->w[3] + r->ky0 * kw;
    for (int32_t i = 0; i < n_outer; ++i, row += x_next) {
        for (int32_t ky = 0; ky < nky; ++ky, row += x_ky) {
            if (kw == 1 && s == 1) {
                if (pred) {
                    MT_HE_STEP_P(MT_HE_LDP("q5", "0", "m0") MT_HE_LANES(MT_HE_LANE1));
                } else {
                    MT_HE_STEP(MT_HE_LD("q5", "0") MT_HE_LANES(MT_HE_LANE1));
                }
            } else if (kw == 1) {
                if (pred) {
                    MT_HE_STEP_P("mov r10, %[p]\n\tvidup.u32 q4, r10, #8\n\t" MT_HE_GAP("q5", "0", "m0")
                                     MT_HE_LANES(MT_HE_LANE1));
                } else {
                    MT_HE_STEP("mov r10, %[p]\n\tvidup.u32 q4, r10, #8\n\t" MT_HE_GA("q5", "0")
                                   MT_HE_LANES(MT_HE_LANE1));
                }
            } else if (s == 2) { /* forward only */
                if (pred) {
                    MT_HE_STEP_P("mov r10, %[p]\n\tvidup.u32 q4, r10, #8\n\t" MT_HE_GAP("q5", "0", "m0")
                                     MT_HE_GAP("q6", "4", "m1") MT_HE_GAP("q7", "8", "m2")
                                         MT_HE_LANES(MT_HE_FW3));
                } else {
                    MT_HE_STEP("mov r10, %[p]\n\tvidup.u32 q4, r10, #8\n\t" MT_HE_GA("q5", "0")
                                   MT_HE_GA("q6", "4") MT_HE_GA("q7", "8") MT_HE_LANES(MT_HE_FW3));
                }
            } else if (flip) { /* input gradient: columns c0 - 2 .. c0 + 3, masks of taps 2, 1, 0 */
                if (pred) {
                    MT_HE_STEP_P(MT_HE_LDP("q5", "0", "m2") MT_HE_LDP("q6", "4", "m1")
                                     MT_HE_LDP("q7", "8", "m0") MT_HE_LANES(MT_HE_IG3));
                } else {
                    MT_HE_STEP(MT_HE_LD("q5", "0") MT_HE_LD("q6", "4") MT_HE_LD("q7", "8")
                                   MT_HE_LANES(MT_HE_IG3));
                }
            } else if (pred) {
                MT_HE_STEP_P(MT_HE_LDP("q5", "0", "m0") MT_HE_LDP("q6", "4", "m1") MT_HE_LDP("q7", "8", "m2")
                                 MT_HE_LANES(MT_HE_FW3));
            } else {
                MT_HE_STEP(MT_HE_LD("q5", "0") MT_HE_LD("q6", "4") MT_HE_LD("q7", "8")
                               MT_HE_LANES(MT_HE_FW3));
            }
        }
        u0 += w_next;
        u1 += w_next;
        u2 += w_next;
        u3 += w_next;
    }
    const float32x4_t acc[4] = {a0, a1, a2, a3};
    for (int32_t l = 0; l < nl; ++l, y += stride) {
        vstrwq_p_f32(y, add ? vaddq_f32(vldrwq_z_f32(y, ps), acc[l]) : acc[l], ps);
    }
}

#define MT_HE_BLOCK_VARIANT(name, kw, s, flip, pred)                                           \
    static MT_HE_NOINLINE void name(const red_t *r, int32_t c0, const mve_pred16_t p[3],       \
                                    const float bias[4], float *y, int32_t stride, int32_t nl, \
                                    mve_pred16_t ps, int32_t add)                              \
    {                                                                                          \
        block(r, kw, s, flip, pred, c0, p, bias, y, stride, nl, ps, add);                      \
    }
MT_HE_BLOCK_VARIANT(fw_k3s1_none, 3, 1, 0, 0)
MT_HE_BLOCK_VARIANT(fw_k3s1_pred, 3, 1, 0, 1)
MT_HE_BLOCK_VARIANT(fw_k3s2_none, 3, 2, 0, 0)
MT_HE_BLOCK_VARIANT(fw_k3s2_pred, 3, 2, 0, 1)
MT_HE_BLOCK_VARIANT(fw_k1s1_none, 1, 1, 0, 0)
MT_HE_BLOCK_VARIANT(fw_k1s1_pred, 1, 1, 0, 1)
MT_HE_BLOCK_VARIANT(fw_k1s2_none, 1, 2, 0, 0)
MT_HE_BLOCK_VARIANT(fw_k1s2_pred, 1, 2, 0, 1)
MT_HE_BLOCK_VARIANT(ig_k3_none, 3, 1, 1, 0)
MT_HE_BLOCK_VARIANT(ig_k3_pred, 3, 1, 1, 1)

/* The blocks of one output (or input-gradient) row: columns [o, o + 4) read tap k from column
 * o*s + c_off + dir*k of the reduction rows; `bias` starts the sums; lane l's results go to
 * y + l*stride + o (stored, or added with add = 1). */
static void rows(const red_t *r, int32_t kw, int32_t s, int32_t width, int32_t c_off, const float bias[4],
                 float *y, int32_t stride, int32_t nl, int32_t add)
{
    for (int32_t o = 0; o < width; o += 4) {
        const int32_t n = min_i32(4, width - o), c0 = o * s + c_off;
        mve_pred16_t p[3] = {0xFFFF, 0xFFFF, 0xFFFF};
        int32_t partial = 0; /* bit k: tap k reads outside the row */
        for (int32_t k = 0; k < kw; ++k) {
            p[k] = inside(c0 + r->dir * k, s, n, r->size);
            partial |= (p[k] != 0xFFFF) << k;
        }
        const int32_t pred = partial != 0;
        const mve_pred16_t ps = lanes_below(n);
        float *yo = y + o;
#define MT_HE_CALL(name) name(r, c0, p, bias, yo, stride, nl, ps, add)
        if (r->dir < 0 && kw == 3) { /* stride-1 input gradient; its 1-wide kernel is the forward's */
            if (pred) {
                MT_HE_CALL(ig_k3_pred);
            } else {
                MT_HE_CALL(ig_k3_none);
            }
        } else if (kw == 3 && s == 1) {
            if (pred) {
                MT_HE_CALL(fw_k3s1_pred);
            } else {
                MT_HE_CALL(fw_k3s1_none);
            }
        } else if (kw == 3) {
            if (pred) {
                MT_HE_CALL(fw_k3s2_pred);
            } else {
                MT_HE_CALL(fw_k3s2_none);
            }
        } else if (s == 1) {
            if (pred) {
                MT_HE_CALL(fw_k1s1_pred);
            } else {
                MT_HE_CALL(fw_k1s1_none);
            }
        } else if (pred) {
            MT_HE_CALL(fw_k1s2_pred);
        } else {
            MT_HE_CALL(fw_k1s2_none);
        }
#undef MT_HE_CALL
    }
}

static int32_t blocked_kernel(const mt_conv_geom_t *g)
{
    return (g->kw == 3 && g->dw == 1) || g->kw == 1;
}

/* Lane pointers: base + l * stride for l < n, then repeats of lane n - 1. */
static void lanes(const float *base, int32_t stride, int32_t n, const float *p[4])
{
    for (int32_t l = 0; l < 4; ++l) {
        p[l] = base + min_i32(l, n - 1) * stride;
    }
}

/* The entry points decide in a function of their own and call either the vectorized pass or the Cortex-M
 * kernel, so that the fallback's stack frames never sit on top of this file's larger ones. */
static MT_HE_NOINLINE int32_t fw_blocked(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    return blocked_kernel(&g) && g.sw <= 2 && g.cout_g >= 2 && co_end - co_begin >= 2;
}

static MT_HE_NOINLINE void fw_run(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                                  const float *w, const float *b, float *y)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    red_t r;
    r.x_outer = g.plane;
    r.x_ky = g.dh * g.in_w;
    r.size = g.in_w;
    r.w_outer = g.ksize;
    r.n_outer = g.cin_g;
    r.dir = 1;
    int32_t nl;
    for (int32_t co = co_begin; co < co_end; co += nl) {
        const int32_t grp = co / g.cout_g;
        nl = min_i32(4, min_i32(co_end, (grp + 1) * g.cout_g) - co);
        lanes(w + (co - co_begin) * g.K, g.K, nl, r.w);
        float bias[4];
        for (int32_t l = 0; l < 4; ++l) {
            bias[l] = b != NULL ? b[co - co_begin + min_i32(l, nl - 1)] : 0.0f;
        }
        for (int32_t oy = 0; oy < g.out_h; ++oy) {
            const int32_t iy0 = oy * g.sh - g.pt;
            mt_valid_range(iy0, g.dh, g.kh, g.in_h, &r.ky0, &r.ky1);
            r.base = x + grp * g.cin_g * g.plane + iy0 * g.in_w;
            rows(&r, g.kw, g.sw, g.out_w, -g.pl, bias, y + co * g.oplane + oy * g.out_w, g.oplane, nl, 0);
        }
    }
}

void mt_conv2d_fw_helium_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end, const float *x,
                             const float *w, const float *b, float *y, float *scratch)
{
    if (fw_blocked(d, co_begin, co_end)) {
        fw_run(d, co_begin, co_end, x, w, b, y);
    } else {
        mt_conv2d_fw_cortexm_f32(d, co_begin, co_end, x, w, b, y, scratch);
    }
}

static MT_HE_NOINLINE int32_t igrad_blocked(const mt_conv2d_dims_t *d)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    return blocked_kernel(&g) && g.sh == 1 && g.sw == 1 && g.cin_g >= 2;
}

static MT_HE_NOINLINE void igrad_run(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                     const float *w, const float *gy, float *gx, int32_t accumulate)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    if (!accumulate) {
        mt_zero_f32(d->in_c * g.plane, gx);
    }
    static const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    red_t r;
    r.x_outer = g.oplane;
    r.x_ky = -g.dh * g.out_w;
    r.size = g.out_w;
    r.w_outer = g.K;
    r.dir = -1;
    for (int32_t grp = co_begin / g.cout_g; grp * g.cout_g < co_end; ++grp) {
        const int32_t ca = co_begin > grp * g.cout_g ? co_begin : grp * g.cout_g;
        r.n_outer = min_i32(co_end, (grp + 1) * g.cout_g) - ca;
        int32_t nl;
        for (int32_t ci = 0; ci < g.cin_g; ci += nl) {
            nl = min_i32(4, g.cin_g - ci);
            lanes(w + ((ca - co_begin) * g.cin_g + ci) * g.ksize, g.ksize, nl, r.w);
            for (int32_t iy = 0; iy < g.in_h; ++iy) {
                /* kernel rows whose output row iy + pad_top - ky*dh lies inside gy */
                mt_valid_range(g.out_h - 1 - (iy + g.pt), g.dh, g.kh, g.out_h, &r.ky0, &r.ky1);
                r.base = gy + ca * g.oplane + (iy + g.pt) * g.out_w;
                rows(&r, g.kw, 1, g.in_w, g.pl, zero, gx + (grp * g.cin_g + ci) * g.plane + iy * g.in_w,
                     g.plane, nl, 1);
            }
        }
    }
}

void mt_conv2d_bw_igrad_helium_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *w, const float *gy, float *gx, int32_t accumulate,
                                   float *scratch)
{
    if (igrad_blocked(d)) {
        igrad_run(d, co_begin, co_end, w, gy, gx, accumulate);
    } else {
        mt_conv2d_bw_igrad_cortexm_f32(d, co_begin, co_end, w, gy, gx, accumulate, scratch);
    }
}

/* ---- weight gradient --------------------------------------------------------------------------- */

/* Narrower rows take the Cortex-M weight gradient: per row, this kernel's border pixels and loop set-up
 * cost more than its vectors save (on the 8-wide rows of ResNet-8, for example). */
#ifndef MT_HE_WG_MIN_WIDTH
#define MT_HE_WG_MIN_WIDTH 16
#endif

/* The input x(row, c) of kernel column k at a border pixel: 0 outside the row. */
static float x_at(const float *row, int32_t c, int32_t size)
{
    return c >= 0 && c < size ? row[c] : 0.0f;
}

/* One kernel row ky of input channel xc for the 4 lanes (output channels) at once: a[k] gathers lane l's
 * output gradient gy(co + l, oy, ox) (one gather load, lanes `offs` bytes apart) times the input
 * x(oy*sh + offy, ox*sw - pl + k),
 * summed over the output rows that the kernel row reaches, pixel by pixel in raster order (the portable
 * kernel's order). Pixels with taps in the padding read those inputs as 0. */
MT_HE_INLINE void wgrad_row_taps(const mt_conv_geom_t *g, int32_t kw, int32_t s, const float *xc,
                                 const float *gy0, uint32x4_t offs, int32_t offy, int32_t ox_a, int32_t ox_b,
                                 float32x4_t a[3])
{
    int32_t oy0, oy1;
    mt_valid_range(offy, g->sh, g->out_h, g->in_h, &oy0, &oy1);
    float32x4_t a0 = a[0], a1 = a[1], a2 = a[2];
    const int32_t out_w = g->out_w, in_w = g->in_w, pl = g->pl;
#define MT_HE_PIXEL(x0, x1, x2)                     \
    do {                                            \
        a0 = vaddq_f32(a0, vmulq_n_f32(v, x0));     \
        if (kw == 3) {                              \
            a1 = vaddq_f32(a1, vmulq_n_f32(v, x1)); \
            a2 = vaddq_f32(a2, vmulq_n_f32(v, x2)); \
        }                                           \
    } while (0)
    for (int32_t oy = oy0; oy < oy1; ++oy) {
        const float *row = xc + (oy * g->sh + offy) * in_w;
        const float *gp = gy0 + oy * out_w;
        const int32_t ox_lo = ox_a, ox_hi = ox_b;
        for (int32_t ox = 0; ox < out_w; ++ox) {
            if (ox == ox_lo && ox_hi > ox_lo) { /* the pixels whose taps are all inside: one asm loop */
                const float *xp = row + ox * s - pl;
                /* q6: the lanes' addresses of pixel ox - 1; each gather steps them on by one pixel */
                uint32x4_t addr = vaddq_n_u32(offs, (uint32_t)(uintptr_t)(gp + ox - 1));
                uint32_t n = (uint32_t)(ox_hi - ox);
#define MT_HE_WG_LOOP(ldx, macs, xstep)                                                                     \
    __asm__("dls lr, %[n]\n"                                                                                \
            "1:\n\t"                                                                                        \
            "vldrw.u32 q4, [%q[addr], #4]!\n\t" ldx "add %[xp], %[xp], #" xstep "\n\t" macs "le lr, 1b\n\t" \
            : [a0] "+w"(a0), [a1] "+w"(a1), [a2] "+w"(a2), [addr] "+w"(addr), [xp] "+r"(xp), [n] "+r"(n)    \
            :                                                                                               \
            : "q4", "q5", "r10", "r11", "r12", "lr", "memory")
#define MT_HE_WG_MAC(a, r) "vmul.f32 q5, q4, " r "\n\tvadd.f32 %q[" a "], %q[" a "], q5\n\t"
#define MT_HE_WG_MAC3      MT_HE_WG_MAC("a0", "r10") MT_HE_WG_MAC("a1", "r11") MT_HE_WG_MAC("a2", "r12")
                if (kw == 3 && s == 1) {
                    MT_HE_WG_LOOP("ldm %[xp], {r10, r11, r12}\n\t", MT_HE_WG_MAC3, "4");
                } else if (kw == 3) {
                    MT_HE_WG_LOOP("ldm %[xp], {r10, r11, r12}\n\t", MT_HE_WG_MAC3, "8");
                } else if (s == 1) {
                    MT_HE_WG_LOOP("ldr r10, [%[xp]]\n\t", MT_HE_WG_MAC("a0", "r10"), "4");
                } else {
                    MT_HE_WG_LOOP("ldr r10, [%[xp]]\n\t", MT_HE_WG_MAC("a0", "r10"), "8");
                }
#undef MT_HE_WG_MAC3
#undef MT_HE_WG_MAC
#undef MT_HE_WG_LOOP
                ox = ox_hi;
                if (ox == out_w) {
                    break;
                }
            }
            const float32x4_t v = vldrwq_gather_offset_f32(gp + ox, offs);
            const int32_t c = ox * s - pl;
            MT_HE_PIXEL(x_at(row, c, in_w), x_at(row, c + 1, in_w), x_at(row, c + 2, in_w));
        }
    }
#undef MT_HE_PIXEL
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
}

#define MT_HE_WG_VARIANT(name, kw, s)                                                           \
    static MT_HE_NOINLINE void name(const mt_conv_geom_t *g, const float *xc, const float *gy0, \
                                    uint32x4_t offs, int32_t offy, int32_t ox_a, int32_t ox_b,  \
                                    float32x4_t a[3])                                           \
    {                                                                                           \
        wgrad_row_taps(g, kw, s, xc, gy0, offs, offy, ox_a, ox_b, a);                           \
    }
MT_HE_WG_VARIANT(wgrad_k3s1, 3, 1)
MT_HE_WG_VARIANT(wgrad_k3s2, 3, 2)
MT_HE_WG_VARIANT(wgrad_k1s1, 1, 1)
MT_HE_WG_VARIANT(wgrad_k1s2, 1, 2)

static void bias_grad(const float *gy, int32_t n, int32_t nch, float *gb, int32_t accumulate)
{
    for (int32_t c = 0; c < nch; ++c, gy += n) {
        float s = 0.0f;
        for (int32_t i = 0; i < n; ++i) {
            s += gy[i];
        }
        gb[c] = accumulate ? gb[c] + s : s;
    }
}

static MT_HE_NOINLINE int32_t wgrad_blocked(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    return blocked_kernel(&g) && g.sw <= 2 && g.cout_g >= 2 && co_end - co_begin >= 2 &&
           g.out_w >= MT_HE_WG_MIN_WIDTH;
}

static MT_HE_NOINLINE void wgrad_run(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                     const float *x, const float *gy, float *gw, float *gb,
                                     int32_t accumulate)
{
    const mt_conv_geom_t g = mt_conv2d_geom(d);
    if (gb != NULL) {
        bias_grad(gy + co_begin * g.oplane, g.oplane, co_end - co_begin, gb, accumulate);
    }
    if (gw == NULL) {
        return;
    }
    /* output columns whose kw taps all lie inside the input */
    int32_t ox_a, ox_b;
    mt_valid_range(-g.pl, g.sw, g.out_w, g.in_w - (g.kw - 1), &ox_a, &ox_b);
    int32_t nl;
    for (int32_t co = co_begin; co < co_end; co += nl) {
        const int32_t grp = co / g.cout_g;
        nl = min_i32(4, min_i32(co_end, (grp + 1) * g.cout_g) - co);
        /* lane l gathers channel co + l (lanes past nl repeat the last one) */
        const uint32x4_t offs = vminq_u32(vidupq_n_u32(0u, 1), vdupq_n_u32((uint32_t)(nl - 1)));
        const uint32x4_t lane_offs = vmulq_n_u32(offs, (uint32_t)g.oplane * 4u); /* bytes */
        const float *gy0 = gy + co * g.oplane;
        for (int32_t ci = 0; ci < g.cin_g; ++ci) {
            const float *xc = x + (grp * g.cin_g + ci) * g.plane;
            for (int32_t ky = 0; ky < g.kh; ++ky) {
                float32x4_t a[3] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
                const int32_t offy = ky * g.dh - g.pt;
                if (g.kw == 3) {
                    if (g.sw == 1) {
                        wgrad_k3s1(&g, xc, gy0, lane_offs, offy, ox_a, ox_b, a);
                    } else {
                        wgrad_k3s2(&g, xc, gy0, lane_offs, offy, ox_a, ox_b, a);
                    }
                } else if (g.sw == 1) {
                    wgrad_k1s1(&g, xc, gy0, lane_offs, offy, ox_a, ox_b, a);
                } else {
                    wgrad_k1s2(&g, xc, gy0, lane_offs, offy, ox_a, ox_b, a);
                }
                float *dst = gw + (co - co_begin) * g.K + (ci * g.kh + ky) * g.kw;
                for (int32_t k = 0; k < g.kw; ++k) {
                    float lane[4];
                    vst1q_f32(lane, a[k]);
                    for (int32_t l = 0; l < nl; ++l) {
                        dst[l * g.K + k] = accumulate ? dst[l * g.K + k] + lane[l] : lane[l];
                    }
                }
            }
        }
    }
}

void mt_conv2d_bw_wgrad_helium_f32(const mt_conv2d_dims_t *d, int32_t co_begin, int32_t co_end,
                                   const float *x, const float *gy, float *gw, float *gb, int32_t accumulate,
                                   float *scratch)
{
    if (wgrad_blocked(d, co_begin, co_end)) {
        wgrad_run(d, co_begin, co_end, x, gy, gw, gb, accumulate);
    } else {
        mt_conv2d_bw_wgrad_cortexm_f32(d, co_begin, co_end, x, gy, gw, gb, accumulate, scratch);
    }
}
