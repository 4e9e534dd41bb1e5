/* conv2d, conv_transpose2d and linear on the cluster (groups == 1), tiled through the L1 buffer:
 *
 * - forward: tiles of output channels; L1 holds [x if staged][weight rows][bias][output channels];
 * - weight gradient: tiles of output channels; L1 holds [x if staged][output gradient][gw rows][gb];
 * - input gradient: tiles of input channels; L1 holds [output gradient of the range if staged]
 *   [the weights' columns of the tile, one packed block per core][input gradient channels].
 *
 * The master core moves a tile in with the cluster DMA, the team splits the tile's channels and each
 * core calls the portable kernel on its slice through dims narrowed to the tile, then the master moves
 * the results out. Each output value is summed by the same loop as on one core, so results are the
 * kernels' bits. Tile sizes come from the plan (mcutrain/emit/pulp.py), which computes the same layout. */
#include "mt_cl_internal.h"

typedef enum { CONV, CONVT, LINEAR } kind_t;

typedef struct {
    kind_t kind;
    const void *dims;
    int32_t in_c, plane, out_c, oplane, ksize, row;    /* geometry; row = in_c * ksize */
    int32_t co_begin, co_end, units, tile, stage, acc; /* the call */
    const float *x, *w, *b, *gy;                       /* L2 inputs (x, b, gy may be NULL) */
    float *y, *gw, *gb, *gx;                           /* L2 outputs (gw, gb may be NULL) */
    int32_t t0, nt;                                    /* the current tile */
    const float *src;                                  /* x or the range's gy: in L1 when staged */
    float *lw, *lb, *lt;                               /* L1: weights or gw, bias or gb, y or gy or gx */
} job_t;

typedef union {
    mt_conv2d_dims_t conv;
    mt_conv_transpose2d_dims_t convt;
    mt_linear_dims_t lin;
} dims_t;

/* The job's dims with in_c and out_c replaced (the tile's view). */
static dims_t narrow(const job_t *j, int32_t in_c, int32_t out_c)
{
    dims_t d;
    if (j->kind == CONV) {
        d.conv = *(const mt_conv2d_dims_t *)j->dims;
        d.conv.in_c = in_c;
        d.conv.out_c = out_c;
    } else if (j->kind == CONVT) {
        d.convt = *(const mt_conv_transpose2d_dims_t *)j->dims;
        d.convt.in_c = in_c;
        d.convt.out_c = out_c;
    } else {
        d.lin.in_features = in_c;
        d.lin.out_features = out_c;
    }
    return d;
}

static job_t make(kind_t kind, const void *dims, int32_t co_begin, int32_t co_end, int32_t tile,
                  int32_t stage)
{
    job_t j = {
        .kind = kind, .dims = dims, .co_begin = co_begin, .co_end = co_end, .tile = tile, .stage = stage};
    if (kind == LINEAR) {
        const mt_linear_dims_t *d = (const mt_linear_dims_t *)dims;
        j.in_c = d->in_features;
        j.out_c = d->out_features;
        j.plane = j.oplane = j.ksize = 1;
    } else {
        /* conv2d and conv_transpose2d dims have the same fields */
        const mt_conv2d_dims_t *d = (const mt_conv2d_dims_t *)dims;
        j.in_c = d->in_c;
        j.out_c = d->out_c;
        j.plane = d->in_h * d->in_w;
        j.oplane = d->out_h * d->out_w;
        j.ksize = d->kernel_h * d->kernel_w;
    }
    j.row = j.in_c * j.ksize;
    return j;
}

static int32_t min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

/* The tensor every tile reads: moved to the start of the L1 space p when the call stages it (n floats),
 * else read from L2 in place. Returns the L1 space after it. */
static float *stage(job_t *j, float *p, const float *l2, int32_t n)
{
    j->src = l2;
    if (!j->stage) {
        return p;
    }
    mt_cl_get(p, l2, n);
    j->src = p;
    return p + n;
}

/* ---- forward ------------------------------------------------------------------------------------ */

static void fw_worker(void *arg)
{
    const job_t *j = (const job_t *)arg;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo >= hi) {
        return;
    }
    dims_t d = narrow(j, j->in_c, j->nt);
    const float *w = j->lw + lo * j->row, *b = j->b != NULL ? j->lb + lo : NULL;
    if (j->kind == CONV) {
        mt_conv2d_fw_f32(&d.conv, lo, hi, j->src, w, b, j->lt, NULL);
    } else if (j->kind == CONVT) {
        mt_conv_transpose2d_fw_f32(&d.convt, lo, hi, j->src, w, b, j->lt, NULL);
    } else {
        mt_linear_fw_f32(&d.lin, lo, hi, j->src, w, b, j->lt, NULL);
    }
}

static void fw_task(void *arg)
{
    job_t *j = (job_t *)arg;
    const int32_t xs = j->in_c * j->plane;
    float *p = mt_cl_l1_claim((j->stage ? xs : 0) + j->tile * (j->row + 1 + j->oplane));
    j->lw = stage(j, p, j->x, xs);
    j->lb = j->lw + j->tile * j->row;
    j->lt = j->lb + j->tile;
    for (j->t0 = 0; j->t0 < j->units; j->t0 += j->tile) {
        j->nt = min32(j->tile, j->units - j->t0);
        mt_cl_get(j->lw, j->w + j->t0 * j->row, j->nt * j->row);
        if (j->b != NULL) {
            mt_cl_get(j->lb, j->b + j->t0, j->nt);
        }
        pi_cl_team_fork(MT_CL_CORES, fw_worker, j);
        mt_cl_put(j->y + (j->co_begin + j->t0) * j->oplane, j->lt, j->nt * j->oplane);
    }
}

static void fw(job_t *j, const float *x, const float *w, const float *b, float *y)
{
    j->units = j->co_end - j->co_begin;
    j->x = x;
    j->w = w;
    j->b = b;
    j->y = y;
    mt_cl_offload(fw_task, j);
}

/* ---- weight gradient ---------------------------------------------------------------------------- */

static void wgrad_worker(void *arg)
{
    const job_t *j = (const job_t *)arg;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo >= hi) {
        return;
    }
    dims_t d = narrow(j, j->in_c, j->nt);
    float *gw = j->gw != NULL ? j->lw + lo * j->row : NULL, *gb = j->gb != NULL ? j->lb + lo : NULL;
    if (j->kind == CONV) {
        mt_conv2d_bw_wgrad_f32(&d.conv, lo, hi, j->src, j->lt, gw, gb, j->acc, NULL);
    } else if (j->kind == CONVT) {
        mt_conv_transpose2d_bw_wgrad_f32(&d.convt, lo, hi, j->src, j->lt, gw, gb, j->acc, NULL);
    } else {
        mt_linear_bw_wgrad_f32(&d.lin, lo, hi, j->src, j->lt, gw, gb, j->acc, NULL);
    }
}

static void wgrad_task(void *arg)
{
    job_t *j = (job_t *)arg;
    const int32_t xs = j->in_c * j->plane, nw = j->gw != NULL ? j->row : 0, nb = j->gb != NULL ? 1 : 0;
    float *p = mt_cl_l1_claim((j->stage ? xs : 0) + j->tile * (j->oplane + nw + nb));
    j->lt = stage(j, p, j->x, xs);
    j->lw = j->lt + j->tile * j->oplane;
    j->lb = j->lw + j->tile * nw;
    for (j->t0 = 0; j->t0 < j->units; j->t0 += j->tile) {
        j->nt = min32(j->tile, j->units - j->t0);
        mt_cl_get(j->lt, j->gy + (j->co_begin + j->t0) * j->oplane, j->nt * j->oplane);
        if (j->acc) {
            mt_cl_get(j->lw, j->gw + j->t0 * nw, j->nt * nw);
            mt_cl_get(j->lb, j->gb + j->t0 * nb, j->nt * nb);
        }
        pi_cl_team_fork(MT_CL_CORES, wgrad_worker, j);
        if (nw) {
            mt_cl_put(j->gw + j->t0 * nw, j->lw, j->nt * nw);
        }
        if (nb) {
            mt_cl_put(j->gb + j->t0, j->lb, j->nt);
        }
    }
}

static void wgrad(job_t *j, const float *x, const float *gy, float *gw, float *gb, int32_t accumulate)
{
    j->units = j->co_end - j->co_begin;
    j->x = x;
    j->gy = gy;
    j->gw = gw;
    j->gb = gb;
    j->acc = accumulate;
    mt_cl_offload(wgrad_task, j);
}

/* ---- input gradient ----------------------------------------------------------------------------- */

static void igrad_worker(void *arg)
{
    const job_t *j = (const job_t *)arg;
    const int32_t n_co = j->co_end - j->co_begin;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo >= hi) {
        return;
    }
    dims_t d = narrow(j, hi - lo, n_co);
    const float *w = j->lw + n_co * lo * j->ksize;
    float *gx = j->lt + lo * j->plane;
    if (j->kind == CONV) {
        mt_conv2d_bw_igrad_f32(&d.conv, 0, n_co, w, j->src, gx, j->acc, NULL);
    } else if (j->kind == CONVT) {
        mt_conv_transpose2d_bw_igrad_f32(&d.convt, 0, n_co, w, j->src, gx, j->acc, NULL);
    } else {
        mt_linear_bw_igrad_f32(&d.lin, 0, n_co, w, j->src, gx, j->acc, NULL);
    }
}

static void igrad_task(void *arg)
{
    job_t *j = (job_t *)arg;
    const int32_t n_co = j->co_end - j->co_begin, gys = n_co * j->oplane;
    float *p = mt_cl_l1_claim((j->stage ? gys : 0) + j->tile * (n_co * j->ksize + j->plane));
    j->lw = stage(j, p, j->gy + j->co_begin * j->oplane, gys);
    j->lt = j->lw + j->tile * n_co * j->ksize;
    for (j->t0 = 0; j->t0 < j->units; j->t0 += j->tile) {
        j->nt = min32(j->tile, j->units - j->t0);
        for (int32_t k = 0; k < MT_CL_CORES; ++k) { /* each core's columns of the weights, packed */
            int32_t lo, hi;
            mt_cl_share_of(j->nt, 1, k, MT_CL_CORES, &lo, &hi);
            mt_cl_get_2d(j->lw + n_co * lo * j->ksize, j->w + (j->t0 + lo) * j->ksize, n_co,
                         (hi - lo) * j->ksize, j->row);
        }
        if (j->acc) {
            mt_cl_get(j->lt, j->gx + j->t0 * j->plane, j->nt * j->plane);
        }
        pi_cl_team_fork(MT_CL_CORES, igrad_worker, j);
        mt_cl_put(j->gx + j->t0 * j->plane, j->lt, j->nt * j->plane);
    }
}

static void igrad(job_t *j, const float *w, const float *gy, float *gx, int32_t accumulate)
{
    j->units = j->in_c;
    j->w = w;
    j->gy = gy;
    j->gx = gx;
    j->acc = accumulate;
    mt_cl_offload(igrad_task, j);
}

/* ---- entry points ------------------------------------------------------------------------------- */

#define MT_CL_ENTRIES(op_, kind_, dims_t_)                                                                  \
    void mt_cl_##op_##_fw_f32(const dims_t_ *d, int32_t co_begin, int32_t co_end, const float *x,           \
                              const float *w, const float *b, float *y, float *scratch, int32_t tile_units, \
                              int32_t tile_stage)                                                           \
    {                                                                                                       \
        job_t j = make(kind_, d, co_begin, co_end, tile_units, tile_stage);                                 \
        (void)scratch;                                                                                      \
        fw(&j, x, w, b, y);                                                                                 \
    }                                                                                                       \
    void mt_cl_##op_##_bw_wgrad_f32(const dims_t_ *d, int32_t co_begin, int32_t co_end, const float *x,     \
                                    const float *gy, float *gw, float *gb, int32_t accumulate,              \
                                    float *scratch, int32_t tile_units, int32_t tile_stage)                 \
    {                                                                                                       \
        job_t j = make(kind_, d, co_begin, co_end, tile_units, tile_stage);                                 \
        (void)scratch;                                                                                      \
        wgrad(&j, x, gy, gw, gb, accumulate);                                                               \
    }                                                                                                       \
    void mt_cl_##op_##_bw_igrad_f32(const dims_t_ *d, int32_t co_begin, int32_t co_end, const float *w,     \
                                    const float *gy, float *gx, int32_t accumulate, float *scratch,         \
                                    int32_t tile_units, int32_t tile_stage)                                 \
    {                                                                                                       \
        job_t j = make(kind_, d, co_begin, co_end, tile_units, tile_stage);                                 \
        (void)scratch;                                                                                      \
        igrad(&j, w, gy, gx, accumulate);                                                                   \
    }

MT_CL_ENTRIES(conv2d, CONV, mt_conv2d_dims_t)
MT_CL_ENTRIES(conv_transpose2d, CONVT, mt_conv_transpose2d_dims_t)
MT_CL_ENTRIES(linear, LINEAR, mt_linear_dims_t)
