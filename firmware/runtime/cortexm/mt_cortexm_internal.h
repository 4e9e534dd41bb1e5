/*
 * Private helpers of the Cortex-M kernel set: the register-blocked multiply-accumulate steps.
 *
 * A *step* adds one slice of a reduction to a block of accumulators that live in FPU registers between
 * steps. On Cortex-M4F/M7/M55 (MT_CM_ASM) a step is one inline-assembly statement: a VLDM loads a span of
 * inputs, a VLDMIA per lane loads (and steps over) that lane's weights, and one VMLA.F32 per
 * multiply-accumulate adds them up. VMLA.F32 is the *non-fused* multiply-accumulate: the product is
 * rounded, then added, the same two roundings as a separate VMUL and VADD, so a step computes exactly what
 * `acc += w * x` computes under -ffp-contract=off (GCC never emits VMLA for Cortex-M by itself: its cost
 * tables price it above VMUL + VADD). Elsewhere (the host build of the golden tests) each step is the C
 * function of the same name in mt_cortexm_steps.c, with the same semantics and pointer updates.
 *
 * Registers: spans of inputs in s16-s24, weights (or output gradients) in s25-s31; the accumulators are
 * asm operands that GCC keeps in the remaining registers across the loops of a kernel.
 *
 * Accumulator blocks (float a[16] or a[12], constant indices only, so GCC keeps them in registers):
 *  - correlation steps: a[4*L + j], lane L (an output channel of the forward pass, an input channel of
 *    the input gradient), column j of 4 adjacent outputs;
 *  - weight-gradient steps: a[3*L + k], lane L (output channel), kernel column k (k = 0 only for 1-wide
 *    kernels).
 */
#ifndef MT_CORTEXM_INTERNAL_H
#define MT_CORTEXM_INTERNAL_H

#include <stdint.h>

#include "../src/mt_internal.h"

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__) && !defined(MT_CM_PORTABLE_STEPS)
#define MT_CM_ASM 1
#else
#define MT_CM_ASM 0
#endif

#if defined(__GNUC__)
#define MT_CM_INLINE   static inline __attribute__((always_inline))
#define MT_CM_NOINLINE __attribute__((noinline))
#else
#define MT_CM_INLINE static inline
#define MT_CM_NOINLINE
#endif

/* A step reads its span of inputs at p by class (mt_edge_of, mt_span_of of mt_internal.h): all of it
 * from memory (MT_EDGE_NONE); the first element is the padding, read as 0, and p points at the second
 * (MT_EDGE_LEFT); the last element is the padding (MT_EDGE_RIGHT). A COPY span is read from a
 * zero-padded copy as NONE. */

/*
 * The steps (their C models in mt_cortexm_steps.c document each one):
 *
 * mt_cm_corr: a[4L+j] += sum_k W_L[k] * X[j*S + (flip ? kw-1-k : k)], k ascending, W_L = the kw floats at
 *   w[L] (then w[L] += kw), X = the span of 3*S + kw inputs at p (class edge). Forward (flip 0) and
 *   stride-1 input gradient (flip 1).
 * mt_cm_igrad_s2: the stride-2 input gradient of 4 columns (two phases): with W_L at w[L] (kw floats, 3 or
 *   1; then w[L] += kw) and G = the span of 3 output-gradient columns at p: a[4L+0] += W0*G1 (+ W2*G0),
 *   a[4L+1] += W1*G1, a[4L+2] += W0*G2 (+ W2*G1), a[4L+3] += W1*G2 (the bracketed and the odd columns'
 *   terms only for kw = 3).
 * mt_cm_wgrad: a[3L+k] += sum_j G_L[j] * X[j*S + k], j ascending, then k (k < kw, kw 3 or 1), G_L = the
 *   npx (4, 2 or 1) floats at g[L] (then g[L] += npx), X = the span of (npx-1)*S + kw inputs at p.
 */
/*
 * Steps of the linear kernels, 4 rows (lanes) at a time over n inputs (8 per step on Cortex-M; any n in C):
 * mt_cm_dot: a[3L] += sum_i W_L[i] * x[i], i ascending (W_L = the n floats at w[L], then w[L] += n).
 * mt_cm_axpy: for each i: gx[i] = gx[i] + g[0]*W_0[i] + ... + g[nl-1]*W_nl-1[i], added in lane order.
 * mt_cm_outer: W_L[i] = g[L] * x[i] (acc 0) or W_L[i] + g[L] * x[i] (acc 1) for L < nl, then w[L] += n.
 * (nl: the lanes used, 4 or 1.)
 */
void mt_cm_dot_c(float a[12], const float *x, int32_t n, const float *w[4]);
void mt_cm_axpy_c(float *gx, int32_t n, int32_t nl, const float g[4], const float *w[4]);
void mt_cm_outer_c(const float *x, int32_t n, int32_t nl, const float g[4], float *w[4], int32_t acc);

void mt_cm_corr_c(float a[16], const float *p, int32_t edge, int32_t kw, int32_t s, int32_t flip,
                  const float *w[4]);
void mt_cm_igrad_s2_c(float a[16], const float *p, int32_t edge, int32_t kw, const float *w[4]);
void mt_cm_wgrad_c(float a[12], const float *p, int32_t edge, int32_t kw, int32_t s, int32_t npx,
                   const float *g[4]);

#if MT_CM_ASM

/* one VMLA.F32 into accumulator operand a<L><j>; w and x name registers (string literals) */
#define MT_CM_MLA(L, j, w, x) "vmla.f32 %[a" #L#j "], " w ", " x "\n\t"
#define MT_CM_ROW4(L, w, x0, x1, x2, x3) \
    MT_CM_MLA(L, 0, w, x0) MT_CM_MLA(L, 1, w, x1) MT_CM_MLA(L, 2, w, x2) MT_CM_MLA(L, 3, w, x3)
#define MT_CM_PX3(L, g, x0, x1, x2) MT_CM_MLA(L, 0, g, x0) MT_CM_MLA(L, 1, g, x1) MT_CM_MLA(L, 2, g, x2)
#define MT_CM_APPLY(m, ...)         m(__VA_ARGS__)
/* a half step: lanes 0 and 1 of the asm statement (lanes 2h and 2h + 1 of the block) */
#define MT_CM_LANES(LANE, LOAD, ...) LOAD(0) LANE(0, __VA_ARGS__) LOAD(1) LANE(1, __VA_ARGS__)

/* per-lane loads: 3 or 1 weights into s29.., 4 or 1 output gradients into s25.. */
#define MT_CM_W3(L) "vldmia %[w" #L "]!, {s29-s31}\n\t"
#define MT_CM_W1(L) "vldmia %[w" #L "]!, {s29}\n\t"
#define MT_CM_G4(L) "vldmia %[w" #L "]!, {s25-s28}\n\t"
#define MT_CM_G2(L) "vldmia %[w" #L "]!, {s25-s26}\n\t"
#define MT_CM_G1(L) "vldmia %[w" #L "]!, {s25}\n\t"

/* lanes of the correlation steps (X: span registers) */
#define MT_CM_FW3S1(L, X0, X1, X2, X3, X4, X5) \
    MT_CM_ROW4(L, "s29", X0, X1, X2, X3)       \
    MT_CM_ROW4(L, "s30", X1, X2, X3, X4) MT_CM_ROW4(L, "s31", X2, X3, X4, X5)
#define MT_CM_IG3S1(L, X0, X1, X2, X3, X4, X5) \
    MT_CM_ROW4(L, "s29", X2, X3, X4, X5)       \
    MT_CM_ROW4(L, "s30", X1, X2, X3, X4) MT_CM_ROW4(L, "s31", X0, X1, X2, X3)
#define MT_CM_FW3S2(L, X0, X1, X2, X3, X4, X5, X6, X7, X8) \
    MT_CM_ROW4(L, "s29", X0, X2, X4, X6)                   \
    MT_CM_ROW4(L, "s30", X1, X3, X5, X7) MT_CM_ROW4(L, "s31", X2, X4, X6, X8)
#define MT_CM_FW1S1(L, X0, X1, X2, X3)             MT_CM_ROW4(L, "s29", X0, X1, X2, X3)
#define MT_CM_FW1S2(L, X0, X1, X2, X3, X4, X5, X6) MT_CM_ROW4(L, "s29", X0, X2, X4, X6)
/* lanes of the stride-2 input gradient (G: 3 output-gradient columns) */
#define MT_CM_IG3S2(L, G0, G1, G2) \
    MT_CM_MLA(L, 0, "s29", G1)     \
    MT_CM_MLA(L, 0, "s31", G0)     \
    MT_CM_MLA(L, 1, "s30", G1)     \
    MT_CM_MLA(L, 2, "s29", G2) MT_CM_MLA(L, 2, "s31", G1) MT_CM_MLA(L, 3, "s30", G2)
#define MT_CM_IG1S2(L, G0, G1, G2) MT_CM_MLA(L, 0, "s29", G1) MT_CM_MLA(L, 2, "s29", G2)
/* lanes of the weight gradient (X: input span; output gradients of the 4 or 1 pixels in s25..s28) */
#define MT_CM_WG3S1(L, X0, X1, X2, X3, X4, X5) \
    MT_CM_PX3(L, "s25", X0, X1, X2)            \
    MT_CM_PX3(L, "s26", X1, X2, X3) MT_CM_PX3(L, "s27", X2, X3, X4) MT_CM_PX3(L, "s28", X3, X4, X5)
#define MT_CM_WG3S2(L, X0, X1, X2, X3, X4, X5, X6, X7, X8) \
    MT_CM_PX3(L, "s25", X0, X1, X2)                        \
    MT_CM_PX3(L, "s26", X2, X3, X4) MT_CM_PX3(L, "s27", X4, X5, X6) MT_CM_PX3(L, "s28", X6, X7, X8)
#define MT_CM_WG3S1P2(L, X0, X1, X2, X3)     MT_CM_PX3(L, "s25", X0, X1, X2) MT_CM_PX3(L, "s26", X1, X2, X3)
#define MT_CM_WG3S2P2(L, X0, X1, X2, X3, X4) MT_CM_PX3(L, "s25", X0, X1, X2) MT_CM_PX3(L, "s26", X2, X3, X4)
#define MT_CM_WG1S1P2(L, X0, X1)             MT_CM_MLA(L, 0, "s25", X0) MT_CM_MLA(L, 0, "s26", X1)
#define MT_CM_WG1S2P2(L, X0, X1, X2)         MT_CM_WG1S1P2(L, X0, X2)
#define MT_CM_WG3P1(L, X0, X1, X2)           MT_CM_PX3(L, "s25", X0, X1, X2)
#define MT_CM_WG1P1(L, X0)                   MT_CM_MLA(L, 0, "s25", X0)
#define MT_CM_WG1S1(L, X0, X1, X2, X3) \
    MT_CM_MLA(L, 0, "s25", X0)         \
    MT_CM_MLA(L, 0, "s26", X1) MT_CM_MLA(L, 0, "s27", X2) MT_CM_MLA(L, 0, "s28", X3)
#define MT_CM_WG1S2(L, X0, X1, X2, X3, X4, X5, X6) MT_CM_WG1S1(L, X0, X2, X4, X6)

/* lanes of the linear kernels: 8 inputs in s16-s23, a lane's 8 weights (or results) in s24-s31 */
#define MT_CM_W8(L) "vldmia %[w" #L "]!, {s24-s31}\n\t"
#define MT_CM_DOT4(L, w0, w1, w2, w3, x0, x1, x2, x3) \
    MT_CM_MLA(L, 0, w0, x0) MT_CM_MLA(L, 0, w1, x1) MT_CM_MLA(L, 0, w2, x2) MT_CM_MLA(L, 0, w3, x3)
#define MT_CM_DOT8(L)                                                     \
    MT_CM_DOT4(L, "s24", "s25", "s26", "s27", "s16", "s17", "s18", "s19") \
    MT_CM_DOT4(L, "s28", "s29", "s30", "s31", "s20", "s21", "s22", "s23")
#define MT_CM_VMLA8(g)                                                                       \
    "vmla.f32 s16, " g ", s24\n\t vmla.f32 s17, " g ", s25\n\t vmla.f32 s18, " g ", s26\n\t" \
    "vmla.f32 s19, " g ", s27\n\t vmla.f32 s20, " g ", s28\n\t vmla.f32 s21, " g ", s29\n\t" \
    "vmla.f32 s22, " g ", s30\n\t vmla.f32 s23, " g ", s31\n\t"
#define MT_CM_AXPY8(L) MT_CM_W8(L) MT_CM_VMLA8("%[g" #L "]")
#define MT_CM_OUTER8(L, op, load)                                                                        \
    load op " s24, %[g" #L "], s16\n\t" op " s25, %[g" #L "], s17\n\t" op " s26, %[g" #L "], s18\n\t" op \
            " s27, %[g" #L "], s19\n\t" op " s28, %[g" #L "], s20\n\t" op " s29, %[g" #L "], s21\n\t" op \
            " s30, %[g" #L "], s22\n\t" op " s31, %[g" #L "], s23\n\t"                                   \
            "vstmia %[w" #L "]!, {s24-s31}\n\t"
#define MT_CM_SET8(L)  MT_CM_OUTER8(L, "vmul.f32", "")
#define MT_CM_ADD8(L)  MT_CM_OUTER8(L, "vmla.f32", "vldm %[w" #L "], {s24-s31}\n\t")
#define MT_CM_CLOB_ALL MT_CM_SPAN_REGS, "s25", "s26", "s27", "s28", "s29", "s30", "s31", "memory"

/* span registers by length and class: NONE, LEFT (the first one is the zero operand), RIGHT (the last) */
#define MT_CM_X1_NONE  "vldm %[p], {s16}\n\t", "s16"
#define MT_CM_X2_NONE  "vldm %[p], {s16-s17}\n\t", "s16", "s17"
#define MT_CM_X3_NONE  "vldm %[p], {s16-s18}\n\t", "s16", "s17", "s18"
#define MT_CM_X3_LEFT  "vldm %[p], {s17-s18}\n\t", "%[z]", "s17", "s18"
#define MT_CM_X3_RIGHT "vldm %[p], {s16-s17}\n\t", "s16", "s17", "%[z]"
#define MT_CM_X5_NONE  "vldm %[p], {s16-s20}\n\t", "s16", "s17", "s18", "s19", "s20"
#define MT_CM_X4_NONE  "vldm %[p], {s16-s19}\n\t", "s16", "s17", "s18", "s19"
#define MT_CM_X6_NONE  "vldm %[p], {s16-s21}\n\t", "s16", "s17", "s18", "s19", "s20", "s21"
#define MT_CM_X6_LEFT  "vldm %[p], {s17-s21}\n\t", "%[z]", "s17", "s18", "s19", "s20", "s21"
#define MT_CM_X6_RIGHT "vldm %[p], {s16-s20}\n\t", "s16", "s17", "s18", "s19", "s20", "%[z]"
#define MT_CM_X7_NONE  "vldm %[p], {s16-s22}\n\t", "s16", "s17", "s18", "s19", "s20", "s21", "s22"
#define MT_CM_X9_NONE \
    "vldm %[p], {s16-s24}\n\t", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24"
#define MT_CM_X9_LEFT \
    "vldm %[p], {s17-s24}\n\t", "%[z]", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24"
#define MT_CM_X9_RIGHT \
    "vldm %[p], {s16-s23}\n\t", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "%[z]"

/* the text of a step: the span load, then per lane its load and its multiply-accumulates */
#define MT_CM_TEXT(LANE, LOAD, load, ...) load MT_CM_LANES(LANE, LOAD, __VA_ARGS__)
#define MT_CM_STEP_TEXT(LANE, LOAD, ...)  MT_CM_APPLY(MT_CM_TEXT, LANE, LOAD, __VA_ARGS__)

/* The accumulators of half h of a block, as operands a<lane of the half><column or tap>: correlation
 * steps a[4L + j] (L = 2h + lane), weight-gradient steps a[3L + k], 3 or 1 taps. GCC takes at most 30
 * operands (an in-out one counts twice), so a step is two asm statements of 2 lanes each; each loads the
 * span, one VLDM more per step than one statement of 4 lanes would need. */
#define MT_CM_ACC8(a, h)                                                                    \
    [a00] "+t"(a[8 * (h)]), [a01] "+t"(a[8 * (h) + 1]), [a02] "+t"(a[8 * (h) + 2]),         \
        [a03] "+t"(a[8 * (h) + 3]), [a10] "+t"(a[8 * (h) + 4]), [a11] "+t"(a[8 * (h) + 5]), \
        [a12] "+t"(a[8 * (h) + 6]), [a13] "+t"(a[8 * (h) + 7])
#define MT_CM_ACC6(a, h)                                                            \
    [a00] "+t"(a[6 * (h)]), [a01] "+t"(a[6 * (h) + 1]), [a02] "+t"(a[6 * (h) + 2]), \
        [a10] "+t"(a[6 * (h) + 3]), [a11] "+t"(a[6 * (h) + 4]), [a12] "+t"(a[6 * (h) + 5])
#define MT_CM_ACC2(a, h) [a00] "+t"(a[6 * (h)]), [a10] "+t"(a[6 * (h) + 3])
/* the 4 lanes of a linear step (a[3L], one statement) */
#define MT_CM_ACC4(a)   [a00] "+t"(a[0]), [a10] "+t"(a[3]), [a20] "+t"(a[6]), [a30] "+t"(a[9])
#define MT_CM_SPAN_REGS "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24"
/* registers a step overwrites: the span and the weights (corr, igrad_s2) or output gradients (wgrad) */
#define MT_CM_CLOB_W MT_CM_SPAN_REGS, "s29", "s30", "s31", "memory"
#define MT_CM_CLOB_G MT_CM_SPAN_REGS, "s25", "s26", "s27", "s28", "memory"

/* One step: `text` on the accumulators `acc(a, h)` of each half h, the lane pointers w[0..3] (advanced),
 * the span at p; the registers listed last are overwritten. */
#define MT_CM_HALF(acc, text, a, h, p, w, ...)                            \
    __asm__(text                                                          \
            : acc(a, h), [w0] "+r"(w[2 * (h)]), [w1] "+r"(w[2 * (h) + 1]) \
            : [p] "r"(p), [z] "t"(0.0f)                                   \
            : __VA_ARGS__)
#define MT_CM_STEP(acc, text, a, p, w, ...)             \
    do {                                                \
        MT_CM_HALF(acc, text, a, 0, p, w, __VA_ARGS__); \
        MT_CM_HALF(acc, text, a, 1, p, w, __VA_ARGS__); \
    } while (0)

#endif /* MT_CM_ASM */

#endif /* MT_CORTEXM_INTERNAL_H */
