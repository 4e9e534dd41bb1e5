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

#endif /* MT_INTERNAL_H */
