/* The int8 conv2d and linear forwards on cores with the Arm DSP extension (Cortex-M4, M7, M33, M55):
 * the selection between them and the portable reference kernels, and the DSP helpers they share.
 *
 * Selection, at compile time: where the compiler defines __ARM_FEATURE_DSP (and the build does not define
 * MT_S8_REFERENCE), mt_conv2d_fw_s8 and mt_linear_fw_s8 first offer the call to their _dsp version, which
 * returns 0 for the cases it leaves to the reference (mt_*_fw_s8_ref, the portable C of every other
 * target). Both compute the same integers: the DSP versions reorder only the exact int32 sums and evaluate
 * TFLite's requantization with other instructions (docs/quantization.md, "Cortex-M DSP kernels").
 */
#ifndef MT_S8_DSP_H
#define MT_S8_DSP_H

#include <stddef.h>

#include "mt_s8_internal.h"

#if defined(__ARM_FEATURE_DSP) && !defined(MT_S8_REFERENCE)
#define MT_S8_DSP 1
#else
#define MT_S8_DSP 0
#endif

/* The portable reference kernels (every target; the DSP versions fall back to them). */
void mt_conv2d_fw_s8_ref(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                         const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y);
void mt_linear_fw_s8_ref(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                         const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y);

/* The conv2d's scratch: the DSP path's working memory, the same bytes on every target (the plan does not
 * know the target; mcutrain.core.int8_scratch.conv2d_s8_scratch_bytes mirrors these functions).
 * Depthwise with 3-wide kernels (or 3-high ones on tall planes, transposed): mt_s8_dw_scratch(d), the
 * input plane padded with the zero point. Otherwise the column tiles of mt_s8_gemm_positions(d) output
 * positions (a multiple of 4, at most MT_S8_COL_BYTES of tiles unless one tile of 4 is larger) and one weight
 * row, each K taps rounded up to 4, as int16 (mt_s8_taps(d)). A build may set another budget (-D): more
 * bytes, longer runs, fewer passes per channel (benchmarks/int8_instructions.py --col-bytes); the plan's
 * scratch must then be sized with the same budget (mcutrain.core.int8_scratch S8_COL_BYTES). */
#ifndef MT_S8_COL_BYTES
#define MT_S8_COL_BYTES 4096
#endif

/* 2^30 - 255 * 128 * taps when the taps' sums cannot overflow the doubled int32 sums (and the WIDE
 * channels' sign is their bias's): 255 * 128 * taps < 2^29; else 0 (the reference runs). */
static inline int32_t mt_s8_room(int32_t taps)
{
    return taps < (1 << 29) / 32640 ? (1 << 30) - 32640 * taps : 0;
}

/* A depthwise convolution the row loop of mt_dwconv_dsp_s8.c can run as it is: kernels 3 taps wide. */
static inline int32_t mt_s8_dw_rowwise(const mt_conv2d_dims_t *d)
{
    return d->groups == d->in_c && d->kernel_w == 3 && d->dilation_w == 1 && d->dilation_h == 1 &&
           (d->stride_w == 1 || d->stride_w == 2) && d->pad_left >= 0 && d->pad_top >= 0;
}

/* d with rows and columns exchanged (input, output, kernel, stride, dilation, padding). */
static inline mt_conv2d_dims_t mt_s8_dw_swap(const mt_conv2d_dims_t *d)
{
    mt_conv2d_dims_t t = *d;
    t.in_h = d->in_w;
    t.in_w = d->in_h;
    t.out_h = d->out_w;
    t.out_w = d->out_h;
    t.kernel_h = d->kernel_w;
    t.kernel_w = d->kernel_h;
    t.stride_h = d->stride_w;
    t.stride_w = d->stride_h;
    t.dilation_h = d->dilation_w;
    t.dilation_w = d->dilation_h;
    t.pad_top = d->pad_left;
    t.pad_left = d->pad_top;
    return t;
}

/* Whether the row loop runs on the transposed plane: outputs less than 8 wide (a row is at most one block
 * of 4 and a tail) and more of them high, the kernel 3 high and at most 3 wide (audio models' tall,
 * narrow time x frequency planes). */
static inline int32_t mt_s8_dw_transposed(const mt_conv2d_dims_t *d)
{
    const mt_conv2d_dims_t t = mt_s8_dw_swap(d);
    return d->out_w < 8 && d->out_h > d->out_w && t.kernel_h <= 3 && mt_s8_dw_rowwise(&t);
}

static inline int32_t mt_s8_dw_path(const mt_conv2d_dims_t *d)
{
    return mt_s8_dw_rowwise(d) || mt_s8_dw_transposed(d);
}

/* The padded plane of the row loop on d as it runs (transposed or not): rows and bytes per row. */
static inline int32_t mt_s8_dw_row_bytes(const mt_conv2d_dims_t *d)
{
    return ((d->out_w + 3) / 4 * 4 * d->stride_w + 8 + 3) / 4 * 4;
}

static inline int32_t mt_s8_dw_rows(const mt_conv2d_dims_t *d)
{
    return (d->out_h - 1) * d->stride_h + d->kernel_h;
}

/* The depthwise scratch of d: the padded plane (transposed: of the transposed plane). */
static inline int32_t mt_s8_dw_scratch(const mt_conv2d_dims_t *d)
{
    if (mt_s8_dw_transposed(d)) {
        const mt_conv2d_dims_t t = mt_s8_dw_swap(d);
        return mt_s8_dw_rows(&t) * mt_s8_dw_row_bytes(&t);
    }
    return mt_s8_dw_rows(d) * mt_s8_dw_row_bytes(d);
}

static inline int32_t mt_s8_taps(const mt_conv2d_dims_t *d)
{
    return (d->in_c / d->groups * d->kernel_h * d->kernel_w + 3) / 4 * 4;
}

static inline int32_t mt_s8_gemm_positions(const mt_conv2d_dims_t *d)
{
    const int32_t most = MT_S8_COL_BYTES / (2 * mt_s8_taps(d)) / 4 * 4;
    const int32_t all = (d->out_h * d->out_w + 3) / 4 * 4;
    return all < most ? all : (most > 4 ? most : 4);
}

#if MT_S8_DSP

#include <arm_acle.h>
#include <string.h>

/* 1 when the DSP version computed the call, 0 when the caller must run the reference. */
int32_t mt_conv2d_fw_s8_dsp(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin,
                            int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y,
                            int8_t *scratch);
int32_t mt_linear_fw_s8_dsp(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin,
                            int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y);

/* An unaligned 32-bit load (LDR allows it on these cores). */
static inline uint32_t mt_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4u);
    return v;
}

static inline void mt_st32(void *p, uint32_t v)
{
    memcpy(p, &v, 4u);
}

/* Bytes 1 and 3 of v, sign-extended to two int16. */
static inline uint32_t mt_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* (a * b + 2^31) / 2^32 + c, floored: SMMLAR. */
static inline int32_t mt_smmlar(int32_t a, int32_t b, int32_t c)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

/* a + (bytes 0 and 2 of u, sign-extended), per int16 half: SXTAB16. */
static inline uint32_t mt_sxtab16(uint32_t a, uint32_t u)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(u));
    return r;
}

static inline uint32_t mt_sxtab16_ror8(uint32_t a, uint32_t u)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(u));
    return r;
}

/* (a & 0xFFFF) | (b << 16): PKHBT. */
static inline uint32_t mt_pkhbt(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* (a & 0xFFFF0000) | (b >> 16): PKHTB. */
static inline uint32_t mt_pkhtb(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline int32_t mt_asr(int32_t v, int32_t e)
{
    int32_t r;
    __asm__("asr %0, %1, %2" : "=r"(r) : "r"(v), "r"(e));
    return r;
}

/* ---- requantization of one output channel ------------------------------------------------------ */

/* The kernels' sums s of an output channel: 2 * acc (FAST, FOLDED: columns or weights doubled, the bias in
 * the start value b2) or 2 * (acc - bias') (WIDE, SLOW: started at 0), where acc is TFLite's int32
 * accumulator and bias' the channel's constant (the bias; the depthwise path also folds -in_zp * sum w).
 * mt_s8_chan_init sorts the channels by what reproduces out_zp + MBQM(acc, mult, shift) exactly:
 *
 * FAST, right shift e in [1, 31], no left shift, |bias'| + 255 * 128 * taps < 2^30 (so |acc| < 2^30):
 *     floor(SMMLAR(2 acc, mult, 2^(e-1) - [acc < 0]) / 2^e) + out_zp.
 *   SMMLAR(2 acc, m, c) = floor((acc * m + 2^30) / 2^31) + c is gemmlowp's SaturatingRoundingDoublingHighMul
 *   v (its rounding toward zero of a negative product is the same floor; m < 2^31 never saturates), and
 *   RoundingDivideByPOT(v, e) = floor((v + 2^(e-1) - [v < 0]) / 2^e), where [v < 0] may be [acc < 0]
 *   (when they differ v = 0, and both give 0); |v| < 2^30 keeps the sum inside int32.
 * FOLDED: FAST with e <= 22, out_zp * 2^e in the constant (still inside int32).
 * WIDE, e in [1, 31], no left shift, |bias'| >= 2^30 - 255 * 128 * taps: acc has the sign of bias' (|bias'|
 *   exceeds the taps' sum: the kernels ask 255 * 128 * taps < 2^29), so both roundings fold into one
 *   64-bit constant: floor(((s / 2) * mult + C) / 2^(31+e)) + out_zp with C = bias' * mult + 2^30 +
 *   (2^(e-1) - [bias' < 0]) * 2^31 (|C| < 2^63), the nested floors of MBQM being one floor.
 * SLOW, every other channel (a left shift, no shift): acc = s / 2 + bias' in C and
 *   mt_mbqm, as the reference. */
#define MT_S8_SLOW   0
#define MT_S8_FAST   1
#define MT_S8_FOLDED 2
#define MT_S8_WIDE   3

/* One output channel's constants; the assembly loops read them at these offsets. */
typedef struct {
    int32_t b2;        /*  0: the sums' start value */
    int32_t mult, cst; /*  4,  8: Q0.31 multiplier; FAST/FOLDED: 2^(e-1) (FOLDED: + out_zp * 2^e) */
    int32_t right, zp; /* 12, 16: e; out_zp added after the shift (0 when FOLDED) */
    uint32_t lo4, hi4; /* 20, 24: the activation's clamp as byte vectors */
    int32_t clamp;     /* 28: it clamps inside [-128, 127] */
    const void *end;   /* 32: where an assembly loop stops */
    uint32_t *wq;      /* 36: gemm: the weight row as int16 pairs */
    int32_t g4, g1;    /* 40, 44: gemm: the row's groups of 4 taps after the first, by 4 and single (0..3) */
    uint32_t w[6];     /* 48: depthwise: per kernel row the doubled outer taps as a pair, the middle one */
    int8_t *y, *yend;  /* 72, 76: gemm: the next output, the end of the outputs of the tiles */
    const int8_t *w8;  /* 80: gemm: the int8 weight row, unpacked into wq by the first tile */
    int32_t count;     /* 84: an assembly loop's counter */
    uint32_t c_lo, c_hi;         /* 88, 92: WIDE: C (and right = e - 1) */
    int32_t kind;                /* 96: MT_S8_* */
    int32_t shift, out_zp, bias; /* 100..: SLOW */
} mt_s8_chan_t;

/* The offsets the assembly reads. */
_Static_assert(offsetof(mt_s8_chan_t, mult) == 4 && offsetof(mt_s8_chan_t, right) == 12 &&
                   offsetof(mt_s8_chan_t, lo4) == 20 && offsetof(mt_s8_chan_t, clamp) == 28 &&
                   offsetof(mt_s8_chan_t, end) == 32 && offsetof(mt_s8_chan_t, wq) == 36 &&
                   offsetof(mt_s8_chan_t, g4) == 40 && offsetof(mt_s8_chan_t, g1) == 44 &&
                   offsetof(mt_s8_chan_t, w) == 48 && offsetof(mt_s8_chan_t, y) == 72 &&
                   offsetof(mt_s8_chan_t, yend) == 76 && offsetof(mt_s8_chan_t, w8) == 80 &&
                   offsetof(mt_s8_chan_t, count) == 84 && offsetof(mt_s8_chan_t, c_lo) == 88,
               "mt_s8_chan_t: the offsets of the assembly loops");

/* The activation part of c (once per call). */
static inline void mt_s8_chan_act(mt_s8_chan_t *c, int32_t act_min, int32_t act_max)
{
    c->lo4 = ((uint32_t)act_min & 0xFFu) * 0x01010101u;
    c->hi4 = ((uint32_t)act_max & 0xFFu) * 0x01010101u;
    c->clamp = act_min > -128 || act_max < 127;
}

/* The requantization part of c for one channel; `room` = 2^30 - 255 * 128 * taps. */
static inline void mt_s8_chan_init(mt_s8_chan_t *c, int32_t mult, int32_t shift, int32_t out_zp, int32_t bias,
                                   int32_t room)
{
    const int32_t e = -shift, shifts = (uint32_t)(e - 1) < 31u; /* e in [1, 31] */
    c->mult = mult;
    if (shifts && bias != INT32_MIN && (bias < 0 ? -bias : bias) < room) { /* FAST, FOLDED: most channels */
        c->right = e;
        c->b2 = 2 * bias;
        c->cst = (int32_t)(1u << (e - 1));
        if (e <= 22) {
            c->kind = MT_S8_FOLDED;
            c->cst += out_zp * (int32_t)(1u << e);
            c->zp = 0;
        } else {
            c->kind = MT_S8_FAST;
            c->zp = out_zp;
        }
        return;
    }
    c->shift = shift;
    c->out_zp = out_zp;
    c->bias = bias;
    c->zp = out_zp;
    c->b2 = 0;
    if (!shifts) {
        c->kind = MT_S8_SLOW;
        c->right = 1;
    } else {
        c->kind = MT_S8_WIDE;
        const int64_t k = (int64_t)bias * mult + ((int64_t)1 << 30) +
                          (((int64_t)1 << (e - 1)) - (bias < 0 ? 1 : 0)) * ((int64_t)1 << 31);
        c->c_lo = (uint32_t)(uint64_t)k;
        c->c_hi = (uint32_t)((uint64_t)k >> 32);
        c->right = e - 1;
    }
}

/* The output of one sum s, saturated to [-128, 127] (the activation's clamp follows). */
static inline int32_t mt_s8_out(int32_t s, const mt_s8_chan_t *c)
{
    int32_t v;
    if (c->kind == MT_S8_FAST || c->kind == MT_S8_FOLDED) {
        v = mt_asr(mt_smmlar(s, c->mult, c->cst - (int32_t)((uint32_t)s >> 31)), c->right) + c->zp;
    } else if (c->kind == MT_S8_WIDE) {
        const int64_t t = (int64_t)(((uint64_t)c->c_hi << 32) | c->c_lo) + (int64_t)mt_asr32(s, 1) * c->mult;
        v = mt_asr((int32_t)(t >> 32), c->right) + c->zp;
    } else {
        const int32_t acc = (int32_t)((uint32_t)mt_asr32(s, 1) + (uint32_t)c->bias);
        v = mt_mbqm(acc, c->mult, c->shift) + c->out_zp;
        v = v < -128 ? -128 : (v > 127 ? 127 : v);
    }
    return __ssat(v, 8);
}

/* Four outputs in [-128, 127] as the bytes of a word, clamped to the activation's range per byte (SSUB8
 * sets the GE flags that SEL reads). */
static inline uint32_t mt_s8_pack4(const mt_s8_chan_t *c, int32_t r0, int32_t r1, int32_t r2, int32_t r3)
{
    uint32_t v = ((uint32_t)r0 & 0xFFu) | (((uint32_t)r1 & 0xFFu) << 8) | (((uint32_t)r2 & 0xFFu) << 16) |
                 ((uint32_t)r3 << 24);
    if (c->clamp) {
        (void)__ssub8((int8x4_t)v, (int8x4_t)c->lo4);
        v = __sel(v, c->lo4);
        (void)__ssub8((int8x4_t)c->hi4, (int8x4_t)v);
        v = __sel(v, c->hi4);
    }
    return v;
}

/* The outputs of r4..r7 (assembly, after the sums; r8..r12 free), packed into r4. MT_S8_OUT4: FAST and
 * FOLDED channels, and the clamp when c->clamp; MT_S8_OUT4_FOLDED: FOLDED without clamp; MT_S8_OUT4_WIDE:
 * WIDE, and the clamp when c->clamp (lr and r2, r3 free too). */
#define MT_S8_RQ(r)                    \
    "sub r12, r9, " r ", lsr #31\n\t"  \
    "smmlar " r ", " r ", r8, r12\n\t" \
    "asr " r ", " r ", r10\n\t"        \
    "add " r ", " r ", r11\n\t"        \
    "ssat " r ", #8, " r "\n\t"
#define MT_S8_RQ_FOLDED(r)             \
    "sub r12, r9, " r ", lsr #31\n\t"  \
    "smmlar " r ", " r ", r8, r12\n\t" \
    "asr " r ", " r ", r10\n\t"        \
    "ssat " r ", #8, " r "\n\t"
#define MT_S8_RQ_WIDE(r)           \
    "asr " r ", " r ", #1\n\t"     \
    "mov r12, r2\n\t"              \
    "mov lr, r3\n\t"               \
    "smlal r12, lr, " r ", r8\n\t" \
    "asr " r ", lr, r10\n\t"       \
    "add " r ", " r ", r11\n\t"    \
    "ssat " r ", #8, " r "\n\t"
#define MT_S8_PACK4           \
    "bfi r4, r5, #8, #8\n\t"  \
    "bfi r4, r6, #16, #8\n\t" \
    "bfi r4, r7, #24, #8\n\t"
#define MT_S8_CLAMP4             \
    "ldr r12, [r0, #28]\n\t"     \
    "cmp r12, #0\n\t"            \
    "beq 5f\n\t"                 \
    "ldrd r8, r9, [r0, #20]\n\t" \
    "ssub8 r5, r4, r8\n\t"       \
    "sel r4, r4, r8\n\t"         \
    "ssub8 r5, r9, r4\n\t"       \
    "sel r4, r4, r9\n\t"         \
    "5:\n\t"
#define MT_S8_OUT4                                                                             \
    "ldrd r8, r9, [r0, #4]\n\t"                                                                \
    "ldrd r10, r11, [r0, #12]\n\t" MT_S8_RQ("r4") MT_S8_RQ("r5") MT_S8_RQ("r6") MT_S8_RQ("r7") \
        MT_S8_PACK4 MT_S8_CLAMP4
#define MT_S8_OUT4_FOLDED                                                                      \
    "ldrd r8, r9, [r0, #4]\n\t"                                                                \
    "ldr r10, [r0, #12]\n\t" MT_S8_RQ_FOLDED("r4") MT_S8_RQ_FOLDED("r5") MT_S8_RQ_FOLDED("r6") \
        MT_S8_RQ_FOLDED("r7") MT_S8_PACK4
#define MT_S8_OUT4_WIDE                                                                      \
    "ldr r8, [r0, #4]\n\t"                                                                   \
    "ldrd r10, r11, [r0, #12]\n\t"                                                           \
    "ldrd r2, r3, [r0, #88]\n\t" MT_S8_RQ_WIDE("r4") MT_S8_RQ_WIDE("r5") MT_S8_RQ_WIDE("r6") \
        MT_S8_RQ_WIDE("r7") MT_S8_PACK4 MT_S8_CLAMP4

/* The depthwise path (mt_dwconv_dsp_s8.c): output channels [co_begin, co_end) of a depthwise convolution
 * with 3-wide kernels (mt_s8_dw_path), `plane` the scratch. 0 when it leaves the call to the reference. */
int32_t mt_s8_conv_dw(const mt_conv_geom_t *g, const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q,
                      int32_t co_begin, int32_t co_end, const int8_t *x, const int8_t *w, const int32_t *b,
                      int8_t *y, int8_t *plane);

#endif /* MT_S8_DSP */

#endif /* MT_S8_DSP_H */
