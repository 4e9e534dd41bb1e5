/* Depthwise conv2d int8 forward with the Arm DSP extension, kernels 3 taps wide (up to 3 high), stride 1
 * or 2 (mt_s8_dw_path; part of mt_conv2d_fw_s8_dsp).
 *
 * Per output channel, its input plane is copied into the scratch with a border of in_zp, so that every
 * output sees all its taps (transposed, rows becoming columns, where the plane is less than 8 outputs
 * wide and taller than wide and the kernel 3 high: mt_s8_dw_transposed; the outputs of a transposed row
 * go to their column of y): sum w * x - in_zp * sum w (a per-channel constant) is the reference's sum over
 * the taps inside the input. One assembly loop runs all output rows of a channel (mt_s8_dw_rows3), four
 * outputs of a row at a time: per kernel row the words at p and p+2 (stride 2: p, p+2, p+4, p+6) unpack
 * (SXTB16) to the pairs of outer taps (kx 0 and 2), each times the doubled weight pair in one SMLAD, the
 * middle tap by SMLABB / SMLATB (the pairs' other halves). */
#include <stddef.h>

#include "mt_s8_dsp.h"

#if MT_S8_DSP

/* A channel's constants and, before them, what the row loop reads at negative offsets from them (r0). */
typedef struct {
    int32_t ystep;      /* -20: transposed: bytes between consecutive outputs of a row in y */
    int32_t skip;       /* -16: input pointers, from after a row's last block to the next row's start */
    int32_t yskip;      /* -12: output pointer, from after a row's last block to the next row's start */
    int32_t rstep;      /*  -8: bytes between the padded rows of consecutive output rows */
    const int8_t *stop; /*  -4: row 0's pointer after the last output row */
    mt_s8_chan_t c;     /*   0 */
} mt_s8_dw_chan_t;

_Static_assert(offsetof(mt_s8_dw_chan_t, c) - offsetof(mt_s8_dw_chan_t, ystep) == 20 &&
                   offsetof(mt_s8_dw_chan_t, c) - offsetof(mt_s8_dw_chan_t, skip) == 16 &&
                   offsetof(mt_s8_dw_chan_t, c) - offsetof(mt_s8_dw_chan_t, yskip) == 12 &&
                   offsetof(mt_s8_dw_chan_t, c) - offsetof(mt_s8_dw_chan_t, rstep) == 8 &&
                   offsetof(mt_s8_dw_chan_t, c) - offsetof(mt_s8_dw_chan_t, stop) == 4,
               "mt_s8_dw_chan_t: the offsets of the row loop");

/* Kernel row at weight offset WO (bytes in mt_s8_chan_t) over the 4 outputs, input row pointer P, which
 * moves on to the next block (4 outputs: by 4, stride 2 by 8). Stride 1: output j takes p[j], p[j+1],
 * p[j+2]: words p[0..3] and p[2..5] give the pairs (0,2), (1,3), (2,4), (3,5). Stride 2: output j takes
 * p[2j], p[2j+1], p[2j+2]. The _FIRST forms start the sums at c->b2 (kernel row 0). */
#define MT_S8_DW_S1(WO, P)           \
    "ldrd r8, r9, [r0, #" WO "]\n\t" \
    "ldr r11, [" P ", #2]\n\t"       \
    "ldr r10, [" P "], #4\n\t"       \
    "sxtb16 r12, r10\n\t"            \
    "smlad r4, r12, r8, r4\n\t"      \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlabb r4, r10, r9, r4\n\t"     \
    "smlad r5, r10, r8, r5\n\t"      \
    "smlatb r5, r12, r9, r5\n\t"     \
    "sxtb16 r12, r11\n\t"            \
    "smlad r6, r12, r8, r6\n\t"      \
    "sxtb16 r11, r11, ror #8\n\t"    \
    "smlabb r6, r11, r9, r6\n\t"     \
    "smlad r7, r11, r8, r7\n\t"      \
    "smlatb r7, r12, r9, r7\n\t"
#define MT_S8_DW_S1_FIRST(WO, P)     \
    "ldr r4, [r0]\n\t"               \
    "ldrd r8, r9, [r0, #" WO "]\n\t" \
    "ldr r11, [" P ", #2]\n\t"       \
    "ldr r10, [" P "], #4\n\t"       \
    "sxtb16 r6, r11\n\t"             \
    "sxtb16 r11, r11, ror #8\n\t"    \
    "smlad r7, r11, r8, r4\n\t"      \
    "smlatb r7, r6, r9, r7\n\t"      \
    "smlad r6, r6, r8, r4\n\t"       \
    "smlabb r6, r11, r9, r6\n\t"     \
    "sxtb16 r12, r10\n\t"            \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlad r5, r10, r8, r4\n\t"      \
    "smlatb r5, r12, r9, r5\n\t"     \
    "smlad r4, r12, r8, r4\n\t"      \
    "smlabb r4, r10, r9, r4\n\t"
#define MT_S8_DW_S2(WO, P)           \
    "ldrd r8, r9, [r0, #" WO "]\n\t" \
    "ldr r10, [" P "], #8\n\t"       \
    "sxtb16 r11, r10\n\t"            \
    "smlad r4, r11, r8, r4\n\t"      \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlabb r4, r10, r9, r4\n\t"     \
    "smlatb r5, r10, r9, r5\n\t"     \
    "ldr r10, [" P ", #-6]\n\t"      \
    "sxtb16 r10, r10\n\t"            \
    "smlad r5, r10, r8, r5\n\t"      \
    "ldr r10, [" P ", #-4]\n\t"      \
    "sxtb16 r11, r10\n\t"            \
    "smlad r6, r11, r8, r6\n\t"      \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlabb r6, r10, r9, r6\n\t"     \
    "smlatb r7, r10, r9, r7\n\t"     \
    "ldr r10, [" P ", #-2]\n\t"      \
    "sxtb16 r10, r10\n\t"            \
    "smlad r7, r10, r8, r7\n\t"
#define MT_S8_DW_S2_FIRST(WO, P)     \
    "ldr r4, [r0]\n\t"               \
    "ldrd r8, r9, [r0, #" WO "]\n\t" \
    "ldr r10, [" P "], #8\n\t"       \
    "ldr r6, [" P ", #-4]\n\t"       \
    "sxtb16 r7, r6, ror #8\n\t"      \
    "sxtb16 r6, r6\n\t"              \
    "smlad r6, r6, r8, r4\n\t"       \
    "smlabb r6, r7, r9, r6\n\t"      \
    "smlatb r7, r7, r9, r4\n\t"      \
    "ldr r11, [" P ", #-2]\n\t"      \
    "sxtb16 r11, r11\n\t"            \
    "smlad r7, r11, r8, r7\n\t"      \
    "sxtb16 r11, r10\n\t"            \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlatb r5, r10, r9, r4\n\t"     \
    "smlad r4, r11, r8, r4\n\t"      \
    "smlabb r4, r10, r9, r4\n\t"     \
    "ldr r11, [" P ", #-6]\n\t"      \
    "sxtb16 r11, r11\n\t"            \
    "smlad r5, r11, r8, r5\n\t"

/* Transposed rows: the 4 outputs go to lr, lr + ystep, lr + 2 ystep, lr + 3 ystep (their column of y) and
 * lr moves 4 ystep on; FOLDED channels without clamp leave them in r4..r7 unpacked (MT_S8_DW_RQ4_FOLDED,
 * MT_S8_DW_STEP4), the others packed in r4 (MT_S8_OUT4, MT_S8_DW_STEP4_PACKED). */
#define MT_S8_DW_RQ4_FOLDED                                                                    \
    "ldrd r8, r9, [r0, #4]\n\t"                                                                \
    "ldr r10, [r0, #12]\n\t" MT_S8_RQ_FOLDED("r4") MT_S8_RQ_FOLDED("r5") MT_S8_RQ_FOLDED("r6") \
        MT_S8_RQ_FOLDED("r7")
#define MT_S8_DW_STORES4          \
    "strb r4, [lr]\n\t"           \
    "strb r5, [lr, r12]\n\t"      \
    "add lr, lr, r12, lsl #1\n\t" \
    "strb r6, [lr]\n\t"           \
    "strb r7, [lr, r12]\n\t"      \
    "add lr, lr, r12, lsl #1\n\t"
#define MT_S8_DW_STEP4 "ldr r12, [r0, #-20]\n\t" MT_S8_DW_STORES4
#define MT_S8_DW_STEP4_PACKED \
    "ldr r12, [r0, #-20]\n\t" \
    "lsr r5, r4, #8\n\t"      \
    "lsr r6, r4, #16\n\t"     \
    "lsr r7, r4, #24\n\t" MT_S8_DW_STORES4

/* The blocks of every output row: per block FIRST and ROW for the 3 kernel rows, OUT, STORE; at the row's
 * end (r1 at c->end) every pointer moves on to the next row, c->end by rstep, until r1 reaches stop. */
#define MT_S8_DW_LOOP(FIRST, ROW, OUT, STORE)                                             \
    __asm__ volatile("0:\n\t" FIRST("48", "r1") ROW("56", "r2") ROW("64", "r3") OUT STORE \
                     "ldr r12, [r0, #32]\n\t"                                             \
                     "cmp r1, r12\n\t"                                                    \
                     "bne 0b\n\t"                                                         \
                     "ldrd r8, r9, [r0, #-16]\n\t"                                        \
                     "add r1, r1, r8\n\t"                                                 \
                     "add r2, r2, r8\n\t"                                                 \
                     "add r3, r3, r8\n\t"                                                 \
                     "add lr, lr, r9\n\t"                                                 \
                     "ldrd r10, r11, [r0, #-8]\n\t"                                       \
                     "add r12, r12, r10\n\t"                                              \
                     "str r12, [r0, #32]\n\t"                                             \
                     "cmp r1, r11\n\t"                                                    \
                     "bne 0b\n\t"                                                         \
                     : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(rl)                   \
                     :                                                                    \
                     : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "cc", "memory")

/* The loops of one stride (FIRST, ROW): transposed or not, a FOLDED channel without clamp or not. */
#define MT_S8_DW_LOOPS(FIRST, ROW)                                            \
    if (transposed && folded) {                                               \
        MT_S8_DW_LOOP(FIRST, ROW, MT_S8_DW_RQ4_FOLDED, MT_S8_DW_STEP4);       \
    } else if (transposed) {                                                  \
        MT_S8_DW_LOOP(FIRST, ROW, MT_S8_OUT4, MT_S8_DW_STEP4_PACKED);         \
    } else if (folded) {                                                      \
        MT_S8_DW_LOOP(FIRST, ROW, MT_S8_OUT4_FOLDED, "str r4, [lr], #4\n\t"); \
    } else {                                                                  \
        MT_S8_DW_LOOP(FIRST, ROW, MT_S8_OUT4, "str r4, [lr], #4\n\t");        \
    }

/* Blocks of 4 outputs of a FAST or FOLDED channel with a 3x3 kernel over every output row (dc's fields):
 * input rows p0, p0 + rb, p0 + 2 rb (padded) of the first output row, each row's blocks from its start to
 * c->end; the outputs from y, 4 bytes a block (transposed: ystep apart). */
static void __attribute__((noinline))
mt_s8_dw_rows3(mt_s8_dw_chan_t *dc, const int8_t *p0, int32_t rb, int8_t *y, int32_t sw, int32_t transposed)
{
    register const mt_s8_chan_t *r0 __asm__("r0") = &dc->c;
    register const int8_t *r1 __asm__("r1") = p0;
    register const int8_t *r2 __asm__("r2") = p0 + rb;
    register const int8_t *r3 __asm__("r3") = p0 + 2 * rb;
    register int8_t *rl __asm__("lr") = y;
    const int32_t folded = dc->c.kind == MT_S8_FOLDED && !dc->c.clamp;
    if (sw == 1) {
        MT_S8_DW_LOOPS(MT_S8_DW_S1_FIRST, MT_S8_DW_S1);
    } else {
        MT_S8_DW_LOOPS(MT_S8_DW_S2_FIRST, MT_S8_DW_S2);
    }
}

/* The sum of one output, from c's start value: taps p[0], p[1], p[2] of each kernel row. */
static int32_t mt_s8_dw_one(const mt_s8_chan_t *c, const int8_t *p, int32_t rb, int32_t kh)
{
    int32_t a = c->b2;
    for (int32_t ky = 0; ky < kh; ++ky, p += rb) {
        const uint32_t u = mt_ld32(p);
        a = __smlabb((int32_t)mt_sxtb16_ror8(u), (int32_t)c->w[2 * ky + 1],
                     __smlad(__sxtb16(u), c->w[2 * ky], a));
    }
    return a;
}

/* Outputs ox0 .. out_w - 1 of every output row of t in C, output (oy, ox) at y[oy * ys + ox * xs]. */
static void mt_s8_dw_cols(const mt_conv_geom_t *t, const int8_t *plane, int32_t rb, const mt_s8_chan_t *c,
                          int32_t ox0, int8_t *y, int32_t ys, int32_t xs)
{
    const int32_t lo = (int8_t)c->lo4, hi = (int8_t)c->hi4;
    for (int32_t oy = 0; oy < t->out_h; ++oy) {
        const int8_t *row = plane + oy * t->sh * rb;
        for (int32_t ox = ox0; ox < t->out_w; ++ox) {
            const int32_t v = mt_s8_out(mt_s8_dw_one(c, row + ox * t->sw, rb, t->kh), c);
            y[oy * ys + ox * xs] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
        }
    }
}

/* The 4 x 4 bytes at s (4 rows, `ss` bytes apart) transposed to d (4 rows, rb bytes apart): byte k of row j
 * to byte j of row k. Bytes 0, 2 and 1, 3 of row pairs interleave (masks), then PKHBT / PKHTB join the
 * halfwords of the pairs. */
static inline void mt_s8_dw_t4x4(const int8_t *s, int32_t ss, int8_t *d, int32_t rb)
{
    const uint32_t m = 0x00FF00FFu, a = mt_ld32(s), b = mt_ld32(s + ss), c = mt_ld32(s + 2 * ss),
                   e = mt_ld32(s + 3 * ss);
    const uint32_t ab02 = (a & m) | ((b & m) << 8), ab13 = ((a >> 8) & m) | (b & ~m); /* a0 b0 a2 b2 ... */
    const uint32_t ce02 = (c & m) | ((e & m) << 8), ce13 = ((c >> 8) & m) | (e & ~m);
    mt_st32(d, mt_pkhbt(ab02, ce02));
    mt_st32(d + rb, mt_pkhbt(ab13, ce13));
    mt_st32(d + 2 * rb, mt_pkhtb(ce02, ab02));
    mt_st32(d + 3 * rb, mt_pkhtb(ce13, ab13));
}

/* Channel co's input plane (xc) into the padded plane: n_in bytes of each of the first iy1 rows of the
 * running geometry t (the input's rows, or its columns when transposed). */
static inline void mt_s8_dw_fill(const mt_conv_geom_t *t, const int8_t *xc, int32_t rb, int32_t n_in,
                                 int32_t iy1, int32_t transposed, int8_t *plane)
{
    int8_t *dst = plane + t->pt * rb + t->pl;
    if (transposed) { /* row iy of t is column iy of the input (t->in_h input columns) */
        const int32_t iw = t->in_h, iy4 = iy1 & ~3, n4 = n_in & ~3;
        for (int32_t iy = 0; iy < iy4; iy += 4, dst += 4 * rb) { /* 4 x 4 bytes at a time */
            for (int32_t i = 0; i < n4; i += 4) {
                mt_s8_dw_t4x4(xc + i * iw + iy, iw, dst + i, rb);
            }
            for (int32_t i = n4; i < n_in; ++i) {
                for (int32_t k = 0; k < 4; ++k) {
                    dst[k * rb + i] = xc[i * iw + iy + k];
                }
            }
        }
        for (int32_t iy = iy4; iy < iy1; ++iy, dst += rb) {
            const int8_t *src = xc + iy;
            int32_t i = 0;
            for (; i + 2 <= n_in; i += 2, src += 2 * iw) {
                const int8_t v0 = src[0], v1 = src[iw];
                dst[i] = v0;
                dst[i + 1] = v1;
            }
            if (i < n_in) {
                dst[i] = *src;
            }
        }
        return;
    }
    const int8_t *src = xc;
    if (n_in < 4) { /* a halfword and a byte */
        for (int32_t iy = 0; iy < iy1; ++iy, dst += rb, src += t->in_w) {
            if (n_in & 2) {
                memcpy(dst, src, 2u);
            }
            if (n_in & 1) {
                dst[n_in - 1] = src[n_in - 1];
            }
        }
        return;
    }
    /* words at 0, 4, ... and the row's last 4 bytes as one more (overlapping) word */
    for (int32_t iy = 0; iy < iy1; ++iy, dst += rb, src += t->in_w) {
        for (int32_t i = 0; i < n_in - 4; i += 4) {
            mt_st32(dst + i, mt_ld32(src + i));
        }
        mt_st32(dst + n_in - 4, mt_ld32(src + n_in - 4));
    }
}

int32_t mt_s8_conv_dw(const mt_conv_geom_t *g, const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q,
                      int32_t co_begin, int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b,
                      int8_t *y, int8_t *plane)
{
    /* t: the geometry the row loop runs, d's or (tall, narrow planes) the transposed one */
    const int32_t transposed = mt_s8_dw_transposed(d);
    const mt_conv2d_dims_t dt = transposed ? mt_s8_dw_swap(d) : *d;
    const mt_conv_geom_t t = transposed ? mt_conv2d_geom(&dt) : *g;
    const int32_t kh = t.kh, rb = mt_s8_dw_row_bytes(&dt), rows = mt_s8_dw_rows(&dt), room = mt_s8_room(g->K);
    const uint32_t zp4 = ((uint32_t)q->in_zp & 0xFFu) * 0x01010101u;
    const int32_t n_in = t.in_w < rb - t.pl ? t.in_w : rb - t.pl;
    const int32_t iy1 = t.in_h < rows - t.pt ? t.in_h : rows - t.pt;
    /* tap kx of t's kernel row ky: w[ky * row_step + kx * tap_step] (transposed: d's tap (kx, ky)) */
    const int32_t tap_step = transposed ? g->kw : 1, row_step = transposed ? 1 : 3;
    /* output (oy, ox) of t at y[oy * ys + ox * xs] of its channel (transposed: d's output (ox, oy)) */
    const int32_t ys = transposed ? 1 : t.out_w, xs = transposed ? g->out_w : 1;
    /* A row takes its blocks of 4 rounded up where the last block's extra outputs fall on outputs written
     * later: the next row's (not transposed) or, past the channel's plane, the next channels' (at most
     * `spill` bytes, within co_end); otherwise its whole blocks, the rest in C. */
    const int32_t nb_up = (t.out_w + 3) / 4, spill = (4 * nb_up - t.out_w) * xs;
    if (kh > 3) {
        return 0;
    }
    mt_s8_dw_chan_t dc;
    mt_s8_chan_t *c = &dc.c;
    mt_s8_chan_act(c, q->act_min, q->act_max);
    dc.ystep = xs;
    dc.rstep = rb * t.sh;
    dc.stop = plane + t.out_h * dc.rstep;
    for (int32_t i = 0; i < rows * rb; i += 4) { /* the border: in_zp */
        mt_st32(plane + i, zp4);
    }
    for (int32_t co = co_begin; co < co_end; ++co) {
        const int32_t r = co - co_begin;
        const int8_t *wr = w + r * g->K;
        mt_s8_dw_fill(&t, x + (co / g->cout_g) * g->plane, rb, n_in, iy1, transposed, plane);
        int32_t sumw = 0;
        if (kh == 3) { /* 3x3 (either way): the words at 0, 3 or 4, and 5 hold the 9 taps */
            const uint32_t u0 = mt_ld32(wr), u1 = mt_ld32(wr + (transposed ? 4 : 3)), u2 = mt_ld32(wr + 5);
            const uint32_t e0 = (uint32_t)__sxtb16(u0), e1 = (uint32_t)__sxtb16(u1), o2 = mt_sxtb16_ror8(u2);
            uint32_t p0 = e0, p1 = e1, p2 = o2; /* row ky: taps 3 ky .. 3 ky + 2; u1 = w3..w6, u2 = w5..w8 */
            int32_t m0 = (int8_t)(u0 >> 8), m1 = (int8_t)(u1 >> 8), m2 = (int8_t)(u2 >> 16);
            if (transposed) { /* t's row ky: taps ky, ky + 3, ky + 6; u1 = w4..w7 */
                const uint32_t o0 = mt_sxtb16_ror8(u0), o1 = mt_sxtb16_ror8(u1);
                p0 = (e0 & 0xFFFFu) | (e1 & 0xFFFF0000u); /* (w0, w6) */
                p1 = (o0 & 0xFFFFu) | (o1 & 0xFFFF0000u); /* (w1, w7) */
                p2 = mt_pkhtb(o2, e0);                    /* (w2, w8) */
                m0 = (int8_t)(u0 >> 24);
                m1 = (int8_t)u1;
                m2 = (int8_t)(u1 >> 8);
            }
            /* doubled weights: the sums are 2 * (w * x) */
            c->w[0] = (uint32_t)__sadd16((int16x2_t)p0, (int16x2_t)p0);
            c->w[1] = (uint32_t)(2 * m0);
            c->w[2] = (uint32_t)__sadd16((int16x2_t)p1, (int16x2_t)p1);
            c->w[3] = (uint32_t)(2 * m1);
            c->w[4] = (uint32_t)__sadd16((int16x2_t)p2, (int16x2_t)p2);
            c->w[5] = (uint32_t)(2 * m2);
            sumw = __smlad((int16x2_t)p0, 0x10001,
                           __smlad((int16x2_t)p1, 0x10001, __smuad((int16x2_t)p2, 0x10001))) +
                   m0 + m1 + m2;
        } else {
            for (int32_t ky = 0; ky < kh; ++ky) {
                const int8_t *wk = wr + ky * row_step;
                const int32_t w0 = wk[0], w1 = wk[tap_step], w2 = wk[2 * tap_step];
                c->w[2 * ky] = (uint32_t)(uint16_t)(2 * w0) | ((uint32_t)(uint16_t)(2 * w2) << 16);
                c->w[2 * ky + 1] = (uint32_t)(uint16_t)(2 * w1);
                sumw += w0 + w1 + w2;
            }
        }
        const int32_t bias = (int32_t)((uint32_t)(b ? b[r] : 0) - (uint32_t)(q->in_zp * sumw));
        mt_s8_chan_init(c, q->mult[r], q->shift[r], q->out_zp, bias, room);
        int8_t *yc = y + co * g->oplane;
        int32_t ox = 0;
        if (kh == 3 && (c->kind == MT_S8_FAST || c->kind == MT_S8_FOLDED)) {
            const int32_t nb = (co_end - 1 - co) * g->oplane >= spill ? nb_up : t.out_w / 4;
            if (nb > 0) {
                c->end = plane + 4 * nb * t.sw;
                dc.skip = dc.rstep - 4 * nb * t.sw;
                dc.yskip = ys - 4 * nb * xs;
                mt_s8_dw_rows3(&dc, plane, rb, yc, t.sw, transposed);
                ox = 4 * nb;
            }
        }
        if (ox < t.out_w) {
            mt_s8_dw_cols(&t, plane, rb, c, ox, yc, ys, xs);
        }
    }
    return 1;
}

#else
typedef int mt_dwconv_dsp_s8_unused_t; /* ISO C: a translation unit declares something */
#endif /* MT_S8_DSP */
