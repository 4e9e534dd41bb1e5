/* Optimizers (in place), PyTorch semantics: weight decay is L2 added to the gradient. */
#include <math.h>

#include "mt_internal.h"

void mt_sgd_f32(int32_t n, float *w, const float *g, float lr, float wd)
{
    if (wd == 0.0f) { /* the common case, without the decay term's load and multiply */
        for (int32_t i = 0; i < n; ++i) {
            w[i] -= lr * g[i];
        }
        return;
    }
    for (int32_t i = 0; i < n; ++i) {
        const float gi = g[i] + wd * w[i];
        w[i] -= lr * gi;
    }
}

void mt_sgd_momentum_f32(int32_t n, float *w, const float *g, float *m, float lr, float momentum, float wd)
{
    for (int32_t i = 0; i < n; ++i) {
        const float gi = g[i] + wd * w[i];
        const float mi = momentum * m[i] + gi;
        m[i] = mi;
        w[i] -= lr * mi;
    }
}

void mt_adam_f32(int32_t n, float *w, const float *g, float *m, float *v, float lr, float beta1, float beta2,
                 float eps, float wd, int32_t step)
{
    const float bc1 = 1.0f - powf(beta1, (float)step);
    const float bc2 = 1.0f - powf(beta2, (float)step);
    const float step_size = lr / bc1;
    const float inv_bc2_sqrt = 1.0f / sqrtf(bc2);
    const float a1 = 1.0f - beta1;
    const float a2 = 1.0f - beta2;
    for (int32_t i = 0; i < n; ++i) {
        const float gi = g[i] + wd * w[i];
        const float mi = m[i] + a1 * (gi - m[i]); /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        const float vi = beta2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
    }
}
