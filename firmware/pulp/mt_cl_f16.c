/* The FP16 option of conv2d, conv_transpose2d and linear on the cluster (mt_cl_f16.h), tiled through
 * the L1 buffer as in mt_cl_conv.c, with the float32 regions first and the binary16 ones after them:
 *
 * - forward: [output channels][bias] float32, [weight rows][x] binary16;
 * - weight gradient: [gw rows][gb] float32, [output gradient][x] binary16;
 * - input gradient: [input gradient channels] float32, [weight columns, one packed block per core]
 *   [output gradient of the range] binary16.
 *
 * The operands are converted while they are staged; the tensor every tile reads (x, or the range's
 * output gradient) is staged once per call. mcutrain/emit/pulp.py counts the same bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "mt_cl_f16_internal.h"
#include "mt_cl_internal.h"

typedef struct {
    mt_hgeom_t g;
    int32_t co_begin, co_end, tile, stage, acc, t0, nt;
    const float *x, *w, *b, *gy; /* L2 */
    float *y, *gw, *gb, *gx;     /* L2 */
    float *lf, *lb;              /* L1 float32: outputs (y, gw or gx), bias or gb */
    mt_half_t *lh, *src;         /* L1 binary16: weights or output gradient of the tile, the staged tensor */
} hjob_t;

void mt_cl_get_f16(mt_half_t *l1, const float *l2, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        l1[i] = mt_f32_to_f16(l2[i]);
    }
}

void mt_cl_get_2d_f16(mt_half_t *l1, const float *l2, int32_t rows, int32_t len, int32_t stride)
{
    for (int32_t r = 0; r < rows; ++r) {
        mt_cl_get_f16(l1 + r * len, l2 + r * stride, len);
    }
}

static int32_t min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* The L1 buffer for `floats` float32 then `halves` binary16 values, the staged tensor (n_src values of
 * l2_src) converted at its end; sets lf and src, returns the first binary16 slot. */
static mt_half_t *claim(hjob_t *j, int32_t floats, int32_t halves, const float *l2_src, int32_t n_src)
{
    if (l2_src != NULL && !j->stage) {
        printf("mt_cluster: an FP16 call needs its input staged in L1: re-emit the project\n");
        exit(MT_CL_EXIT_L1);
    }
    const int32_t n_src_l1 = l2_src != NULL ? n_src : 0;
    j->lf = mt_cl_l1_claim(floats + (halves + n_src_l1 + 1) / 2);
    mt_half_t *h = (mt_half_t *)(j->lf + floats);
    j->src = h + halves;
    if (l2_src != NULL) {
        mt_cl_get_f16(j->src, l2_src, n_src);
    }
    return h;
}

/* ---- forward ------------------------------------------------------------------------------------ */

static void fw_worker(void *arg)
{
    const hjob_t *j = (const hjob_t *)arg;
    const int32_t row = j->g.in_c * j->g.kh * j->g.kw;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo < hi) {
        mt_f16_fw(&j->g, lo, hi, j->src, j->lh + lo * row, j->b != NULL ? j->lb + lo : NULL, j->lf);
    }
}

static void fw_task(void *arg)
{
    hjob_t *j = (hjob_t *)arg;
    const int32_t row = j->g.in_c * j->g.kh * j->g.kw, oplane = mt_hgeom_out_plane(&j->g);
    const int32_t units = j->co_end - j->co_begin;
    j->lh = claim(j, j->tile * (oplane + 1), j->tile * row, j->x, j->g.in_c * mt_hgeom_in_plane(&j->g));
    j->lb = j->lf + j->tile * oplane;
    for (j->t0 = 0; j->t0 < units; j->t0 += j->tile) {
        j->nt = min32(j->tile, units - j->t0);
        mt_cl_get_f16(j->lh, j->w + j->t0 * row, j->nt * row);
        if (j->b != NULL) {
            mt_cl_get(j->lb, j->b + j->t0, j->nt);
        }
        pi_cl_team_fork(MT_CL_CORES, fw_worker, j);
        mt_cl_put(j->y + (j->co_begin + j->t0) * oplane, j->lf, j->nt * oplane);
    }
}

/* ---- weight gradient ---------------------------------------------------------------------------- */

static void wgrad_worker(void *arg)
{
    const hjob_t *j = (const hjob_t *)arg;
    const int32_t row = j->g.in_c * j->g.kh * j->g.kw;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo < hi) {
        mt_f16_wgrad(&j->g, lo, hi, j->src, j->lh, j->gw != NULL ? j->lf + lo * row : NULL,
                     j->gb != NULL ? j->lb + lo : NULL, j->acc);
    }
}

static void wgrad_task(void *arg)
{
    hjob_t *j = (hjob_t *)arg;
    const int32_t oplane = mt_hgeom_out_plane(&j->g), units = j->co_end - j->co_begin;
    const int32_t nw = j->gw != NULL ? j->g.in_c * j->g.kh * j->g.kw : 0, nb = j->gb != NULL ? 1 : 0;
    j->lh = claim(j, j->tile * (nw + nb), j->tile * oplane, j->x, j->g.in_c * mt_hgeom_in_plane(&j->g));
    j->lb = j->lf + j->tile * nw;
    for (j->t0 = 0; j->t0 < units; j->t0 += j->tile) {
        j->nt = min32(j->tile, units - j->t0);
        mt_cl_get_f16(j->lh, j->gy + (j->co_begin + j->t0) * oplane, j->nt * oplane);
        if (j->acc) {
            mt_cl_get(j->lf, j->gw + j->t0 * nw, j->nt * nw);
            mt_cl_get(j->lb, j->gb + j->t0 * nb, j->nt * nb);
        }
        pi_cl_team_fork(MT_CL_CORES, wgrad_worker, j);
        if (nw) {
            mt_cl_put(j->gw + j->t0 * nw, j->lf, j->nt * nw);
        }
        if (nb) {
            mt_cl_put(j->gb + j->t0, j->lb, j->nt);
        }
    }
}

/* ---- input gradient: tiles of input channels, each core's weight columns packed ------------------ */

static void igrad_worker(void *arg)
{
    const hjob_t *j = (const hjob_t *)arg;
    const int32_t n_co = j->co_end - j->co_begin, ksize = j->g.kh * j->g.kw;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo < hi) {
        mt_hgeom_t g = j->g;
        g.in_c = hi - lo;
        mt_f16_igrad(&g, 0, n_co, j->lh + n_co * lo * ksize, j->src, j->lf + lo * mt_hgeom_in_plane(&g),
                     j->acc);
    }
}

static void igrad_task(void *arg)
{
    hjob_t *j = (hjob_t *)arg;
    const int32_t n_co = j->co_end - j->co_begin, ksize = j->g.kh * j->g.kw, row = j->g.in_c * ksize;
    const int32_t plane = mt_hgeom_in_plane(&j->g), oplane = mt_hgeom_out_plane(&j->g);
    j->lh = claim(j, j->tile * plane, j->tile * n_co * ksize, j->gy + j->co_begin * oplane, n_co * oplane);
    for (j->t0 = 0; j->t0 < j->g.in_c; j->t0 += j->tile) {
        j->nt = min32(j->tile, j->g.in_c - j->t0);
        for (int32_t k = 0; k < MT_CL_CORES; ++k) {
            int32_t lo, hi;
            mt_cl_share_of(j->nt, 1, k, MT_CL_CORES, &lo, &hi);
            mt_cl_get_2d_f16(j->lh + n_co * lo * ksize, j->w + (j->t0 + lo) * ksize, n_co, (hi - lo) * ksize,
                             row);
        }
        if (j->acc) {
            mt_cl_get(j->lf, j->gx + j->t0 * plane, j->nt * plane);
        }
        pi_cl_team_fork(MT_CL_CORES, igrad_worker, j);
        mt_cl_put(j->gx + j->t0 * plane, j->lf, j->nt * plane);
    }
}

/* ---- geometry and entry points ------------------------------------------------------------------ */

/* conv2d and conv_transpose2d dims have the same fields */
static mt_hgeom_t conv_geom(const mt_conv2d_dims_t *d, int32_t transposed)
{
    mt_hgeom_t g = {d->in_c,     d->out_c,      d->kernel_h,   d->kernel_w, d->stride_h,
                    d->stride_w, d->dilation_h, d->dilation_w, d->pad_top,  d->pad_left,
                    d->out_h,    d->out_w,      d->in_h,       d->in_w,     transposed};
    if (transposed) {
        g.sm_h = d->in_h;
        g.sm_w = d->in_w;
        g.bg_h = d->out_h;
        g.bg_w = d->out_w;
    }
    return g;
}

static mt_hgeom_t linear_geom(const mt_linear_dims_t *d)
{
    mt_hgeom_t g = {d->in_features, d->out_features, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0};
    return g;
}

static hjob_t job(mt_hgeom_t g, int32_t co_begin, int32_t co_end, int32_t tile, int32_t stage)
{
    hjob_t j = {.g = g, .co_begin = co_begin, .co_end = co_end, .tile = tile, .stage = stage};
    return j;
}

#define MT_CL_F16_ENTRIES(op_, dims_t_, geom_)                                                              \
    void mt_cl_##op_##_fw_f16(const dims_t_ *d, int32_t co_begin, int32_t co_end, const float *x,           \
                              const float *w, const float *b, float *y, float *scratch, int32_t tile_units, \
                              int32_t tile_stage)                                                           \
    {                                                                                                       \
        hjob_t j = job(geom_, co_begin, co_end, tile_units, tile_stage);                                    \
        (void)scratch;                                                                                      \
        j.x = x;                                                                                            \
        j.w = w;                                                                                            \
        j.b = b;                                                                                            \
        j.y = y;                                                                                            \
        mt_cl_offload(fw_task, &j);                                                                         \
    }                                                                                                       \
    void mt_cl_##op_##_bw_wgrad_f16(const dims_t_ *d, int32_t co_begin, int32_t co_end, const float *x,     \
                                    const float *gy, float *gw, float *gb, int32_t accumulate,              \
                                    float *scratch, int32_t tile_units, int32_t tile_stage)                 \
    {                                                                                                       \
        hjob_t j = job(geom_, co_begin, co_end, tile_units, tile_stage);                                    \
        (void)scratch;                                                                                      \
        j.x = x;                                                                                            \
        j.gy = gy;                                                                                          \
        j.gw = gw;                                                                                          \
        j.gb = gb;                                                                                          \
        j.acc = accumulate;                                                                                 \
        mt_cl_offload(wgrad_task, &j);                                                                      \
    }                                                                                                       \
    void mt_cl_##op_##_bw_igrad_f16(const dims_t_ *d, int32_t co_begin, int32_t co_end, const float *w,     \
                                    const float *gy, float *gx, int32_t accumulate, float *scratch,         \
                                    int32_t tile_units, int32_t tile_stage)                                 \
    {                                                                                                       \
        hjob_t j = job(geom_, co_begin, co_end, tile_units, tile_stage);                                    \
        (void)scratch;                                                                                      \
        j.w = w;                                                                                            \
        j.gy = gy;                                                                                          \
        j.gx = gx;                                                                                          \
        j.acc = accumulate;                                                                                 \
        mt_cl_offload(igrad_task, &j);                                                                      \
    }

MT_CL_F16_ENTRIES(conv2d, mt_conv2d_dims_t, conv_geom(d, 0))
MT_CL_F16_ENTRIES(conv_transpose2d, mt_conv_transpose2d_dims_t,
                  conv_geom((const mt_conv2d_dims_t *)(const void *)d, 1))
MT_CL_F16_ENTRIES(linear, mt_linear_dims_t, linear_geom(d))
