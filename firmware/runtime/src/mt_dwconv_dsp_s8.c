/* Depthwise conv2d int8 forward with the Arm DSP extension, kernels 3 taps wide (up to 3 high), stride 1
 * or 2 (mt_s8_dw_path; part of mt_conv2d_fw_s8_dsp).
 *
 * Per output channel, its input plane is copied into the scratch with a border of in_zp, so that every
 * output sees all its taps (transposed, rows becoming columns, where the plane is less than 8 outputs
 * wide and taller than wide and the kernel 3 high: mt_s8_dw_transposed; the outputs of a transposed row
 * go to their column of y): sum w * x - in_zp * sum w (a per-channel constant) is the reference's sum over
 * the taps inside the input. Four outputs of a row at a time (mt_s8_dw_row3): per kernel row the words at
 * p and p+2 (stride 2: p, p+2, p+4, p+6) unpack (SXTB16) to the pairs of outer taps (kx 0 and 2), each
 * times the doubled weight pair in one SMLAD, the middle tap by SMLABB / SMLATB (the pairs' other halves). */
#include "mt_s8_dsp.h"

#if MT_S8_DSP

/* Kernel row at weight offset WO (bytes in mt_s8_chan_t) over the 4 outputs, input row pointer P. Stride 1:
 * output j takes p[j], p[j+1], p[j+2]: words p[0..3] and p[2..5] give the pairs (0,2), (1,3), (2,4),
 * (3,5). Stride 2: output j takes p[2j], p[2j+1], p[2j+2]. */
#define MT_S8_DW_S1(WO, P)           \
    "ldrd r8, r9, [r0, #" WO "]\n\t" \
    "ldr r10, [" P "]\n\t"           \
    "ldr r11, [" P ", #2]\n\t"       \
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
#define MT_S8_DW_S2(WO, P)           \
    "ldrd r8, r9, [r0, #" WO "]\n\t" \
    "ldr r10, [" P "]\n\t"           \
    "sxtb16 r11, r10\n\t"            \
    "smlad r4, r11, r8, r4\n\t"      \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlabb r4, r10, r9, r4\n\t"     \
    "smlatb r5, r10, r9, r5\n\t"     \
    "ldr r10, [" P ", #2]\n\t"       \
    "sxtb16 r10, r10\n\t"            \
    "smlad r5, r10, r8, r5\n\t"      \
    "ldr r10, [" P ", #4]\n\t"       \
    "sxtb16 r11, r10\n\t"            \
    "smlad r6, r11, r8, r6\n\t"      \
    "sxtb16 r10, r10, ror #8\n\t"    \
    "smlabb r6, r10, r9, r6\n\t"     \
    "smlatb r7, r10, r9, r7\n\t"     \
    "ldr r10, [" P ", #6]\n\t"       \
    "sxtb16 r10, r10\n\t"            \
    "smlad r7, r10, r8, r7\n\t"
#define MT_S8_DW_LOOP(ROW, STEP, OUT)                                                           \
    __asm__ volatile("0:\n\t"                                                                   \
                     "ldr r4, [r0]\n\t"                                                         \
                     "mov r5, r4\n\t"                                                           \
                     "mov r6, r4\n\t"                                                           \
                     "mov r7, r4\n\t" ROW("48", "r1") ROW("56", "r2")                           \
                         ROW("64", "r3") "add r1, r1, #" STEP "\n\t"                            \
                                         "add r2, r2, #" STEP "\n\t"                            \
                                         "add r3, r3, #" STEP "\n\t" OUT "str r4, [lr], #4\n\t" \
                                         "ldr r12, [r0, #32]\n\t"                               \
                                         "cmp r1, r12\n\t"                                      \
                                         "bne 0b\n\t"                                           \
                     : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(rl)                         \
                     :                                                                          \
                     : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12", "cc", "memory")

/* Whole blocks of 4 outputs of a FAST or FOLDED channel with a 3x3 kernel: input rows p0, p1, p2 (padded),
 * from p0 to c->end (row 0's pointer after the last block), outputs at y. */
static void __attribute__((noinline)) mt_s8_dw_row3(const mt_s8_chan_t *c, const int8_t *p0, const int8_t *p1,
                                                    const int8_t *p2, int8_t *y, int32_t sw)
{
    register const mt_s8_chan_t *r0 __asm__("r0") = c;
    register const int8_t *r1 __asm__("r1") = p0;
    register const int8_t *r2 __asm__("r2") = p1;
    register const int8_t *r3 __asm__("r3") = p2;
    register int8_t *rl __asm__("lr") = y;
    const int32_t folded = c->kind == MT_S8_FOLDED && !c->clamp;
    if (sw == 1 && folded) {
        MT_S8_DW_LOOP(MT_S8_DW_S1, "4", MT_S8_OUT4_FOLDED);
    } else if (sw == 1) {
        MT_S8_DW_LOOP(MT_S8_DW_S1, "4", MT_S8_OUT4);
    } else if (folded) {
        MT_S8_DW_LOOP(MT_S8_DW_S2, "8", MT_S8_OUT4_FOLDED);
    } else {
        MT_S8_DW_LOOP(MT_S8_DW_S2, "8", MT_S8_OUT4);
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

/* One output row of a channel from padded input row `row` (kernel row ky at row + ky * rb). */
static void mt_s8_dw_out_row(const mt_conv_geom_t *g, const int8_t *row, int32_t rb, mt_s8_chan_t *c,
                             int8_t *y)
{
    const int32_t sw = g->sw, ow = g->out_w, kh = g->kh;
    int32_t ox = 0;
    if (kh == 3 && (c->kind == MT_S8_FAST || c->kind == MT_S8_FOLDED) && ow >= 4) {
        ox = ow & ~3;
        c->end = row + ox * sw;
        mt_s8_dw_row3(c, row, row + rb, row + 2 * rb, y, sw);
    }
    const int32_t lo = (int8_t)c->lo4, hi = (int8_t)c->hi4;
    for (; ox < ow; ++ox) {
        const int32_t v = mt_s8_out(mt_s8_dw_one(c, row + ox * sw, rb, kh), c);
        y[ox] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
    }
}

/* Channel co's input plane (xc) into the padded plane: n_in bytes of each of the first iy1 rows of the
 * running geometry t (the input's rows, or its columns when transposed). */
static inline void mt_s8_dw_fill(const mt_conv_geom_t *t, const int8_t *xc, int32_t rb, int32_t n_in,
                                 int32_t iy1, int32_t transposed, int8_t *plane)
{
    int8_t *dst = plane + t->pt * rb + t->pl;
    if (transposed) { /* row iy of t is column iy of the input (t->in_h input columns) */
        for (int32_t iy = 0; iy < iy1; ++iy, dst += rb) {
            const int8_t *src = xc + iy;
            int32_t i = 0;
            for (; i + 2 <= n_in; i += 2, src += 2 * t->in_h) {
                const int8_t v0 = src[0], v1 = src[t->in_h];
                dst[i] = v0;
                dst[i + 1] = v1;
            }
            if (i < n_in) {
                dst[i] = *src;
            }
        }
        return;
    }
    for (int32_t iy = 0; iy < iy1; ++iy, dst += rb) {
        const int8_t *src = xc + iy * t->in_w;
        int32_t i = 0;
        for (; i + 4 <= n_in; i += 4) {
            mt_st32(dst + i, mt_ld32(src + i));
        }
        for (; i < n_in; ++i) {
            dst[i] = src[i];
        }
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
    int8_t *out_row = plane + rows * rb; /* transposed: one output row of t, then its bytes go to y */
    if (kh > 3) {
        return 0;
    }
    mt_s8_chan_t c;
    mt_s8_chan_act(&c, q->act_min, q->act_max);
    for (int32_t i = 0; i < rows * rb; i += 4) { /* the border: in_zp */
        mt_st32(plane + i, zp4);
    }
    for (int32_t co = co_begin; co < co_end; ++co) {
        const int32_t r = co - co_begin;
        const int8_t *wr = w + r * g->K;
        mt_s8_dw_fill(&t, x + (co / g->cout_g) * g->plane, rb, n_in, iy1, transposed, plane);
        int32_t sumw = 0;
        for (int32_t ky = 0; ky < kh; ++ky) { /* doubled weights: the sums are 2 * (w * x) */
            const int8_t *wk = wr + ky * row_step;
            const int32_t w0 = wk[0], w1 = wk[tap_step], w2 = wk[2 * tap_step];
            c.w[2 * ky] = (uint32_t)(uint16_t)(2 * w0) | ((uint32_t)(uint16_t)(2 * w2) << 16);
            c.w[2 * ky + 1] = (uint32_t)(uint16_t)(2 * w1);
            sumw += w0 + w1 + w2;
        }
        const int32_t bias = (int32_t)((uint32_t)(b ? b[r] : 0) - (uint32_t)(q->in_zp * sumw));
        mt_s8_chan_init(&c, q->mult[r], q->shift[r], q->out_zp, bias, room);
        int8_t *yc = y + co * g->oplane;
        for (int32_t oy = 0; oy < t.out_h; ++oy) {
            if (!transposed) {
                mt_s8_dw_out_row(&t, plane + oy * t.sh * rb, rb, &c, yc + oy * t.out_w);
                continue;
            }
            mt_s8_dw_out_row(&t, plane + oy * t.sh * rb, rb, &c, out_row); /* t's row oy: d's column oy */
            for (int32_t i = 0; i < t.out_w; ++i) {
                yc[i * g->out_w + oy] = out_row[i];
            }
        }
    }
    return 1;
}

#else
typedef int mt_dwconv_dsp_s8_unused_t; /* ISO C: a translation unit declares something */
#endif /* MT_S8_DSP */
