/* Private helpers shared by the kernel sources (not part of the public API). */
#ifndef MT_INTERNAL_H
#define MT_INTERNAL_H

#include <stdint.h>

#include "mt_kernels.h"

/*
 * The indices i in [*lo, *hi) of [0, n) with 0 <= base + i * step < size (step >= 1). Used to clip a
 * kernel's taps to the input, or an output row range to the taps that land inside a tensor, so that
 * the inner loops run without bounds checks. Divides only when the range is actually clipped.
 */
static inline void mt_valid_range(int32_t base, int32_t step, int32_t n, int32_t size, int32_t *lo,
                                  int32_t *hi)
{
    int32_t a = 0;
    int32_t b = n;
    if (base < 0) {
        a = (-base + step - 1) / step;
    }
    if (n > 0 && base + (n - 1) * step >= size) {
        b = (size - base > 0) ? (size - base + step - 1) / step : 0;
    }
    if (a > b) {
        a = b;
    }
    *lo = a;
    *hi = b;
}

static inline void mt_zero_f32(int32_t n, float *dst)
{
    for (int32_t i = 0; i < n; ++i) {
        dst[i] = 0.0f;
    }
}

/*
 * for i in [0, n): dst[i] = expr (accumulate == 0) or dst[i] += expr (accumulate != 0), with the branch
 * taken once outside the loop. `expr` may use the loop index `i`.
 */
#define MT_STORE_LOOP(n, accumulate, dst, expr) \
    do {                                        \
        if (accumulate) {                       \
            for (int32_t i = 0; i < (n); ++i) { \
                (dst)[i] += (expr);             \
            }                                   \
        } else {                                \
            for (int32_t i = 0; i < (n); ++i) { \
                (dst)[i] = (expr);              \
            }                                   \
        }                                       \
    } while (0)

/*
 * How a block of a kernel reads its span of input columns [first, first + span) of a row of `size`: all
 * inside (NONE); with exactly its first (LEFT) or last (RIGHT) column in the padding, read as 0; or through
 * a zero-padded copy (COPY). The portable conv2d and the Cortex-M kernels share this classification.
 */
enum { MT_EDGE_NONE, MT_EDGE_COPY, MT_EDGE_LEFT, MT_EDGE_RIGHT };

static inline int32_t mt_edge_of(int32_t first, int32_t span, int32_t size)
{
    if (first >= 0 && first + span <= size) {
        return MT_EDGE_NONE;
    }
    if (first == -1 && span - 1 <= size) {
        return MT_EDGE_LEFT;
    }
    if (first >= 0 && first + span == size + 1) {
        return MT_EDGE_RIGHT;
    }
    return MT_EDGE_COPY;
}

/* Where a block of class `edge` reads its span: the row itself (from its second column for LEFT), or for
 * COPY `tmp`, filled with the span and zeros outside the row. */
static inline const float *mt_span_of(int32_t edge, const float *row, int32_t first, int32_t span,
                                      int32_t size, float *tmp)
{
    if (edge != MT_EDGE_COPY) {
        return row + first + (edge == MT_EDGE_LEFT);
    }
    for (int32_t k = 0; k < span; ++k) {
        const int32_t c = first + k;
        tmp[k] = (c >= 0 && c < size) ? row[c] : 0.0f;
    }
    return tmp;
}

/* A conv2d's dims with the per-group sizes derived once (the portable and the fast host kernels). */
typedef struct {
    int32_t cin_g, cout_g, kh, kw, sh, sw, dh, dw, pt, pl;
    int32_t in_h, in_w, out_h, out_w;
    int32_t plane;  /**< in_h * in_w */
    int32_t oplane; /**< out_h * out_w */
    int32_t ksize;  /**< kernel_h * kernel_w */
    int32_t K;      /**< cin_g * ksize: the length of one output channel's weight row */
} mt_conv_geom_t;

static inline mt_conv_geom_t mt_conv2d_geom(const mt_conv2d_dims_t *d)
{
    mt_conv_geom_t g;
    g.cin_g = d->in_c / d->groups;
    g.cout_g = d->out_c / d->groups;
    g.kh = d->kernel_h;
    g.kw = d->kernel_w;
    g.sh = d->stride_h;
    g.sw = d->stride_w;
    g.dh = d->dilation_h;
    g.dw = d->dilation_w;
    g.pt = d->pad_top;
    g.pl = d->pad_left;
    g.in_h = d->in_h;
    g.in_w = d->in_w;
    g.out_h = d->out_h;
    g.out_w = d->out_w;
    g.plane = d->in_h * d->in_w;
    g.oplane = d->out_h * d->out_w;
    g.ksize = d->kernel_h * d->kernel_w;
    g.K = g.cin_g * g.ksize;
    return g;
}

#endif /* MT_INTERNAL_H */
