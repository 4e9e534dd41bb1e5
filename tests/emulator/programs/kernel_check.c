/*
 * An optimized kernel set against the portable kernels, on a board (tests/emulator/test_kernel_check.py).
 *
 * Built with the portable runtime, the board's kernel sets and
 *   -DMT_KERNEL_SELECT="mt_<set>_select.h"  the selection that the generated training step uses
 *   kernel_cases.h                          the cases (written by the test): conv2d and linear geometries
 * For every case and every pass (forward, weight gradient with accumulate 0 and 1, input gradient over
 * the case's output-channel ranges as a channel-subset update calls it) both kernels run on the same
 * pseudo-random data; the program prints the largest difference relative to the largest portable value,
 * the instructions of each and the MACs, and exits with 1 when a difference exceeds KC_TOL (0 otherwise).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mt_board.h"
#include "mt_kernels.h"

/* the portable entry points, taken before the selection renames them */
typedef void conv_fw_fn(const mt_conv2d_dims_t *, int32_t, int32_t, const float *, const float *,
                        const float *, float *, float *);
typedef void conv_wg_fn(const mt_conv2d_dims_t *, int32_t, int32_t, const float *, const float *, float *,
                        float *, int32_t, float *);
typedef void conv_ig_fn(const mt_conv2d_dims_t *, int32_t, int32_t, const float *, const float *, float *,
                        int32_t, float *);
typedef void lin_fw_fn(const mt_linear_dims_t *, int32_t, int32_t, const float *, const float *,
                       const float *, float *, float *);
typedef void lin_wg_fn(const mt_linear_dims_t *, int32_t, int32_t, const float *, const float *, float *,
                       float *, int32_t, float *);
typedef void lin_ig_fn(const mt_linear_dims_t *, int32_t, int32_t, const float *, const float *, float *,
                       int32_t, float *);

typedef void sgd_fn(int32_t, float *, const float *, float, float);
typedef void act_fw_fn(mt_act_t, float, int32_t, const float *, float *);
typedef void act_bw_fn(mt_act_t, float, int32_t, const float *, const float *, float *, int32_t);
typedef void pool_fw_fn(const mt_max_pool2d_dims_t *, const float *, float *);
typedef void pool_bw_fn(const mt_max_pool2d_dims_t *, const float *, const float *, float *, int32_t);

typedef struct {
    conv_fw_fn *conv_fw;
    conv_wg_fn *conv_wg;
    conv_ig_fn *conv_ig;
    lin_fw_fn *lin_fw;
    lin_wg_fn *lin_wg;
    lin_ig_fn *lin_ig;
    sgd_fn *sgd;
    act_fw_fn *act_fw;
    act_bw_fn *act_bw;
    pool_fw_fn *pool_fw;
    pool_bw_fn *pool_bw;
} kernel_set_t;

#define KC_SET                                                                                \
    {                                                                                         \
        mt_conv2d_fw_f32, mt_conv2d_bw_wgrad_f32, mt_conv2d_bw_igrad_f32, mt_linear_fw_f32,   \
            mt_linear_bw_wgrad_f32, mt_linear_bw_igrad_f32, mt_sgd_f32, mt_activation_fw_f32, \
            mt_activation_bw_f32, mt_max_pool2d_fw_f32, mt_max_pool2d_bw_igrad_f32            \
    }
static const kernel_set_t portable = KC_SET;
#include MT_KERNEL_SELECT
static const kernel_set_t optimized = KC_SET; /* the same names, now selected */

#define KC_MAX_RANGES 4
typedef struct {
    const char *name;
    mt_conv2d_dims_t d;
    int32_t nranges;
    int32_t ranges[KC_MAX_RANGES][2];
} kc_conv_t;

typedef struct {
    const char *name;
    mt_linear_dims_t d;
    int32_t nranges;
    int32_t ranges[KC_MAX_RANGES][2];
} kc_linear_t;

#include "kernel_cases.h" /* kc_conv_cases[], kc_linear_cases[], KC_TOL, KC_MAX_FLOATS */

static float buf_x[KC_MAX_FLOATS], buf_w[KC_MAX_FLOATS], buf_b[1024], buf_gy[KC_MAX_FLOATS];
static float out_a[KC_MAX_FLOATS], out_b[KC_MAX_FLOATS], gb_a[1024], gb_b[1024];
static uint32_t rng_state = 12345u;

static float rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(int32_t)(rng_state >> 8) / 8388608.0f - 1.0f; /* [-1, 1) */
}

static void fill(float *p, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        p[i] = rnd();
    }
}

static int failures;

/* the largest |a - b| relative to the largest |b|; a failure past KC_TOL */
static void compare(const char *name, const char *pass, const float *a, const float *b, int32_t n,
                    uint64_t ins_opt, uint64_t ins_ref, int64_t macs)
{
    float diff = 0.0f, scale = 0.0f;
    int finite = 1;
    for (int32_t i = 0; i < n; ++i) {
        const float d = fabsf(a[i] - b[i]);
        finite &= isfinite(a[i]) != 0;
        diff = d > diff ? d : diff;
        scale = fabsf(b[i]) > scale ? fabsf(b[i]) : scale;
    }
    const float rel = diff / (scale > 0.0f ? scale : 1.0f);
    const int ok = finite && rel <= KC_TOL;
    failures += !ok;
    printf("%s %s %s: rel %.3e instret %lu portable %lu macs %ld\n", ok ? "ok" : "FAIL", name, pass,
           (double)rel, (unsigned long)ins_opt, (unsigned long)ins_ref, (long)macs);
}

static void check_conv(const kc_conv_t *c)
{
    const mt_conv2d_dims_t *d = &c->d;
    const int32_t nx = d->in_c * d->in_h * d->in_w, ny = d->out_c * d->out_h * d->out_w;
    const int32_t k = d->in_c / d->groups * d->kernel_h * d->kernel_w;
    const int64_t macs = (int64_t)ny * k;
    fill(buf_x, nx);
    fill(buf_w, d->out_c * k);
    fill(buf_b, d->out_c);
    fill(buf_gy, ny);
    const kernel_set_t *sets[2] = {&optimized, &portable};
    float *outs[2] = {out_a, out_b}, *gbs[2] = {gb_a, gb_b};
    uint64_t ins[2];
    /* forward, range by range */
    for (int s = 0; s < 2; ++s) {
        memset(outs[s], 0, sizeof(float) * (size_t)ny);
        const uint64_t t0 = mt_board_instret();
        for (int32_t r = 0; r < c->nranges; ++r) {
            const int32_t cb = c->ranges[r][0], ce = c->ranges[r][1];
            sets[s]->conv_fw(d, cb, ce, buf_x, buf_w + cb * k, buf_b + cb, outs[s], NULL);
        }
        ins[s] = mt_board_instret() - t0;
    }
    compare(c->name, "fw", out_a, out_b, ny, ins[0], ins[1], macs);
    /* weight and bias gradient, overwriting then accumulating */
    for (int32_t acc = 0; acc < 2; ++acc) {
        for (int s = 0; s < 2; ++s) {
            for (int32_t i = 0; i < d->out_c * k; ++i) {
                outs[s][i] = (float)(i % 7) * 0.25f;
            }
            for (int32_t i = 0; i < d->out_c; ++i) {
                gbs[s][i] = (float)(i % 3);
            }
            const uint64_t t0 = mt_board_instret();
            for (int32_t r = 0; r < c->nranges; ++r) {
                const int32_t cb = c->ranges[r][0], ce = c->ranges[r][1];
                sets[s]->conv_wg(d, cb, ce, buf_x, buf_gy, outs[s] + cb * k, gbs[s] + cb, acc, NULL);
            }
            ins[s] = mt_board_instret() - t0;
        }
        compare(c->name, acc ? "bw_wgrad_acc" : "bw_wgrad", out_a, out_b, d->out_c * k, ins[0], ins[1], macs);
        compare(c->name, acc ? "bw_bias_acc" : "bw_bias", gb_a, gb_b, d->out_c, 0, 0, 0);
    }
    /* input gradient: the first range overwrites, the others add */
    for (int s = 0; s < 2; ++s) {
        fill(outs[s], nx); /* overwritten */
        const uint64_t t0 = mt_board_instret();
        for (int32_t r = 0; r < c->nranges; ++r) {
            const int32_t cb = c->ranges[r][0], ce = c->ranges[r][1];
            sets[s]->conv_ig(d, cb, ce, buf_w + cb * k, buf_gy, outs[s], r > 0, NULL);
        }
        ins[s] = mt_board_instret() - t0;
    }
    compare(c->name, "bw_igrad", out_a, out_b, nx, ins[0], ins[1], macs);
}

static void check_linear(const kc_linear_t *c)
{
    const mt_linear_dims_t *d = &c->d;
    const int32_t nin = d->in_features, nout = d->out_features;
    const int64_t macs = (int64_t)nin * nout;
    fill(buf_x, nin);
    fill(buf_w, nin * nout);
    fill(buf_b, nout);
    fill(buf_gy, nout);
    const kernel_set_t *sets[2] = {&optimized, &portable};
    float *outs[2] = {out_a, out_b}, *gbs[2] = {gb_a, gb_b};
    uint64_t ins[2];
    for (int s = 0; s < 2; ++s) {
        const uint64_t t0 = mt_board_instret();
        for (int32_t r = 0; r < c->nranges; ++r) {
            const int32_t cb = c->ranges[r][0], ce = c->ranges[r][1];
            sets[s]->lin_fw(d, cb, ce, buf_x, buf_w + cb * nin, buf_b + cb, outs[s], NULL);
        }
        ins[s] = mt_board_instret() - t0;
    }
    compare(c->name, "fw", out_a, out_b, nout, ins[0], ins[1], macs);
    for (int32_t acc = 0; acc < 2; ++acc) {
        for (int s = 0; s < 2; ++s) {
            for (int32_t i = 0; i < nin * nout; ++i) {
                outs[s][i] = (float)(i % 5) * 0.5f;
            }
            const uint64_t t0 = mt_board_instret();
            for (int32_t r = 0; r < c->nranges; ++r) {
                const int32_t cb = c->ranges[r][0], ce = c->ranges[r][1];
                sets[s]->lin_wg(d, cb, ce, buf_x, buf_gy, outs[s] + cb * nin, gbs[s] + cb, acc, NULL);
            }
            ins[s] = mt_board_instret() - t0;
        }
        compare(c->name, acc ? "bw_wgrad_acc" : "bw_wgrad", out_a, out_b, nin * nout, ins[0], ins[1], macs);
    }
    for (int s = 0; s < 2; ++s) {
        fill(outs[s], nin);
        const uint64_t t0 = mt_board_instret();
        for (int32_t r = 0; r < c->nranges; ++r) {
            const int32_t cb = c->ranges[r][0], ce = c->ranges[r][1];
            sets[s]->lin_ig(d, cb, ce, buf_w + cb * nin, buf_gy, outs[s], r > 0, NULL);
        }
        ins[s] = mt_board_instret() - t0;
    }
    compare(c->name, "bw_igrad", out_a, out_b, nin, ins[0], ins[1], macs);
}

/* elementwise results must be the same bits (same operations in the same order, NaN included) */
static void compare_bits(const char *name, const char *pass, const float *a, const float *b, int32_t n)
{
    const int ok = memcmp(a, b, sizeof(float) * (size_t)n) == 0;
    failures += !ok;
    printf("%s %s %s: rel %.3e instret 0 portable 0 macs 0\n", ok ? "ok" : "FAIL", name, pass,
           ok ? 0.0 : 1.0);
}

/* inputs with the branch points of ReLU: 0, -0, NaN, and both signs */
static void fill_special(float *p, int32_t n)
{
    fill(p, n);
    const float special[] = {0.0f, -0.0f, NAN, -NAN, 1e-30f, -1e-30f, INFINITY, -INFINITY};
    for (int32_t i = 0; i < n && i < 8; ++i) {
        p[3 * i % n] = special[i];
    }
}

static void check_elementwise(int32_t n)
{
    char name[32];
    snprintf(name, sizeof(name), "elementwise_n%ld", (long)n);
    const kernel_set_t *sets[2] = {&optimized, &portable};
    float *outs[2] = {out_a, out_b};
    for (int32_t wd = 0; wd < 2; ++wd) { /* SGD without and with weight decay */
        fill(buf_gy, n);
        fill(out_a, n);
        memcpy(out_b, out_a, sizeof(float) * (size_t)n);
        for (int s = 0; s < 2; ++s) {
            sets[s]->sgd(n, outs[s], buf_gy, 0.05f, wd ? 0.01f : 0.0f);
        }
        compare_bits(name, wd ? "sgd_wd" : "sgd", out_a, out_b, n);
    }
    fill_special(buf_x, n);
    for (int s = 0; s < 2; ++s) {
        sets[s]->act_fw(MT_ACT_RELU, 0.0f, n, buf_x, outs[s]);
    }
    compare_bits(name, "relu_fw", out_a, out_b, n);
    fill(buf_gy, n);
    for (int32_t acc = 0; acc < 2; ++acc) {
        fill_special(out_a, n);
        memcpy(out_b, out_a, sizeof(float) * (size_t)n);
        for (int s = 0; s < 2; ++s) {
            sets[s]->act_bw(MT_ACT_RELU, 0.0f, n, buf_x, buf_gy, outs[s], acc);
        }
        compare_bits(name, acc ? "relu_bw_acc" : "relu_bw", out_a, out_b, n);
    }
}

static void check_max_pool(int32_t c, int32_t h, int32_t w)
{
    char name[32];
    snprintf(name, sizeof(name), "max_pool_%ldx%ldx%ld", (long)c, (long)h, (long)w);
    const mt_max_pool2d_dims_t d = {c, h, w, h / 2, w / 2, 2, 2, 2, 2, 0, 0};
    const kernel_set_t *sets[2] = {&optimized, &portable};
    float *outs[2] = {out_a, out_b};
    for (int32_t i = 0; i < c * h * w; ++i) { /* ties, as after a ReLU */
        buf_x[i] = (float)((int32_t)(rnd() * 3.0f));
    }
    fill(buf_gy, c * (h / 2) * (w / 2));
    for (int s = 0; s < 2; ++s) {
        sets[s]->pool_fw(&d, buf_x, outs[s]);
    }
    compare_bits(name, "fw", out_a, out_b, c * (h / 2) * (w / 2));
    for (int32_t acc = 0; acc < 2; ++acc) {
        fill(out_a, c * h * w);
        memcpy(out_b, out_a, sizeof(float) * (size_t)(c * h * w));
        for (int s = 0; s < 2; ++s) {
            sets[s]->pool_bw(&d, buf_x, buf_gy, outs[s], acc);
        }
        compare_bits(name, acc ? "bw_igrad_acc" : "bw_igrad", out_a, out_b, c * h * w);
    }
}

int main(void)
{
    printf("kernel check on %s: %s against the portable kernels\n", mt_board_name(), MT_KERNEL_SELECT);
    for (size_t i = 0; i < sizeof(kc_conv_cases) / sizeof(kc_conv_cases[0]); ++i) {
        check_conv(&kc_conv_cases[i]);
    }
    for (size_t i = 0; i < sizeof(kc_linear_cases) / sizeof(kc_linear_cases[0]); ++i) {
        check_linear(&kc_linear_cases[i]);
    }
    check_elementwise(45);
    check_elementwise(2304);
    check_max_pool(3, 6, 6);
    check_max_pool(2, 7, 5);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
