/* The int8 forwards of conv2d (depthwise and grouped included) and linear on the cluster, tiled through the
 * L1 buffer like the float forward (mt_cl_conv.c). A unit is one output channel when groups == 1 (every
 * tile reads all of x: staged in L1 once, or read from L2 in place) and one group otherwise (the tile
 * moves its groups' input channels into L1 with it). L1 holds, each region rounded up to 8 bytes:
 *
 *   [x if staged, int8][per-channel params: mult + shift (conv), scale_mant + scale_exp (linear)]
 *   [bias, int32][weight rows, int8][x of the tile's groups, int8 (grouped)][output channels, int8]
 *
 * The team splits the tile's units and each core calls the portable kernel (mt_conv2d_fw_s8,
 * mt_linear_fw_s8) on its channel range through dims narrowed to the tile and a params struct whose arrays
 * point at the tile's copies; the portable kernel computes each output channel by itself, so the integers
 * are the kernel's. No scratch: the DSP working memory is the Cortex-M's (MT_NO_SCRATCH on the cluster).
 * mcutrain/emit/pulp.py (s8_l1_bytes) counts the same layout. */
#include "mt_cl_internal.h"

typedef struct {
    int32_t linear, grouped;
    const void *dims;
    const void *q;
    int32_t upc, cin_g, plane, oplane, K, qb0, qb1; /* channels per unit; per-channel param bytes */
    int32_t co_begin, units, tile, stage;
    const int8_t *x, *w;
    const int32_t *b;
    int8_t *y;
    int32_t nt;            /* units of the current tile */
    const int8_t *lx;      /* x: in L1 when staged (or the tile's groups), else in L2 */
    uint8_t *lq0, *lq1;    /* L1: per-channel params of the tile */
    int32_t *lb;           /* L1: bias of the tile (unused when b is NULL) */
    int8_t *lw, *ly, *lgx; /* L1: weight rows, output channels, the tile's groups' input */
} job8_t;

static int32_t r8(int32_t n)
{
    return (n + 7) & ~7;
}

static int32_t min32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static void worker(void *arg)
{
    const job8_t *j = (const job8_t *)arg;
    int32_t lo, hi;
    mt_cl_share(j->nt, 1, &lo, &hi);
    if (lo >= hi) {
        return;
    }
    const int32_t c0 = lo * j->upc, c1 = hi * j->upc, nc = j->nt * j->upc;
    const int32_t *b = j->b != NULL ? j->lb + c0 : NULL;
    if (j->linear) {
        mt_linear_dims_t d = *(const mt_linear_dims_t *)j->dims;
        mt_linear_q8_t q = *(const mt_linear_q8_t *)j->q;
        d.out_features = nc;
        q.scale_mant = (const uint64_t *)(const void *)j->lq0 + c0;
        q.scale_exp = (const int32_t *)(const void *)j->lq1 + c0;
        mt_linear_fw_s8(&d, &q, c0, c1, j->lx, j->lw + c0 * j->K, b, j->ly, NULL);
        return;
    }
    mt_conv2d_dims_t d = *(const mt_conv2d_dims_t *)j->dims;
    mt_conv2d_q8_t q = *(const mt_conv2d_q8_t *)j->q;
    d.out_c = nc;
    if (j->grouped) {
        d.groups = j->nt;
        d.in_c = j->nt * j->cin_g;
    }
    q.mult = (const int32_t *)(const void *)j->lq0 + c0;
    q.shift = (const int32_t *)(const void *)j->lq1 + c0;
    mt_conv2d_fw_s8(&d, &q, c0, c1, j->grouped ? j->lgx : j->lx, j->lw + c0 * j->K, b, j->ly, NULL);
}

static void task(void *arg)
{
    job8_t *j = (job8_t *)arg;
    const int32_t xs = j->grouped ? 0 : j->cin_g * j->plane, nc = j->tile * j->upc;
    const int32_t bytes = (j->stage && !j->grouped ? r8(xs) : 0) + r8(nc * j->qb0) + r8(nc * j->qb1) +
                          r8(nc * 4) + r8(nc * j->K) + (j->grouped ? r8(j->tile * j->cin_g * j->plane) : 0) +
                          r8(nc * j->oplane);
    uint8_t *p = (uint8_t *)mt_cl_l1_claim((bytes + 3) / 4);
    j->lx = j->x;
    if (j->stage && !j->grouped) {
        mt_cl_get_bytes(p, j->x, xs);
        j->lx = (const int8_t *)p;
        p += r8(xs);
    }
    j->lq0 = p;
    p += r8(nc * j->qb0);
    j->lq1 = p;
    p += r8(nc * j->qb1);
    j->lb = (int32_t *)(void *)p;
    p += r8(nc * 4);
    j->lw = (int8_t *)p;
    p += r8(nc * j->K);
    j->lgx = (int8_t *)p;
    p += j->grouped ? r8(j->tile * j->cin_g * j->plane) : 0;
    j->ly = (int8_t *)p;
    const uint8_t *q0, *q1;
    if (j->linear) {
        const mt_linear_q8_t *q = (const mt_linear_q8_t *)j->q;
        q0 = (const uint8_t *)q->scale_mant;
        q1 = (const uint8_t *)q->scale_exp;
    } else {
        const mt_conv2d_q8_t *q = (const mt_conv2d_q8_t *)j->q;
        q0 = (const uint8_t *)q->mult;
        q1 = (const uint8_t *)q->shift;
    }
    for (int32_t t0 = 0; t0 < j->units; t0 += j->tile) {
        j->nt = min32(j->tile, j->units - t0);
        const int32_t c0 = t0 * j->upc, n = j->nt * j->upc;
        mt_cl_get_bytes(j->lq0, q0 + c0 * j->qb0, n * j->qb0);
        mt_cl_get_bytes(j->lq1, q1 + c0 * j->qb1, n * j->qb1);
        if (j->b != NULL) {
            mt_cl_get_bytes(j->lb, j->b + c0, n * 4);
        }
        mt_cl_get_bytes(j->lw, j->w + c0 * j->K, n * j->K);
        if (j->grouped) { /* the input channels of the tile's groups */
            const int32_t g0 = j->co_begin / j->upc + t0;
            mt_cl_get_bytes(j->lgx, j->x + g0 * j->cin_g * j->plane, j->nt * j->cin_g * j->plane);
        }
        pi_cl_team_fork(MT_CL_CORES, worker, j);
        mt_cl_put_bytes(j->y + (j->co_begin + c0) * j->oplane, j->ly, n * j->oplane);
    }
}

void mt_cl_conv2d_fw_s8(const mt_conv2d_dims_t *d, const mt_conv2d_q8_t *q, int32_t co_begin, int32_t co_end,
                        const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch,
                        int32_t tile_units, int32_t tile_stage)
{
    const int32_t cin_g = d->in_c / d->groups, cout_g = d->out_c / d->groups;
    job8_t j = {.linear = 0,
                .grouped = d->groups > 1,
                .dims = d,
                .q = q,
                .upc = d->groups > 1 ? cout_g : 1,
                .cin_g = d->groups > 1 ? cin_g : d->in_c,
                .plane = d->in_h * d->in_w,
                .oplane = d->out_h * d->out_w,
                .K = cin_g * d->kernel_h * d->kernel_w,
                .qb0 = 4,
                .qb1 = 4,
                .co_begin = co_begin,
                .tile = tile_units,
                .stage = tile_stage,
                .x = x,
                .w = w,
                .b = b,
                .y = y};
    (void)scratch;
    j.units = (co_end - co_begin) / j.upc;
    mt_cl_offload(task, &j);
}

void mt_cl_linear_fw_s8(const mt_linear_dims_t *d, const mt_linear_q8_t *q, int32_t co_begin, int32_t co_end,
                        const int8_t *x, const int8_t *w, const int32_t *b, int8_t *y, int8_t *scratch,
                        int32_t tile_units, int32_t tile_stage)
{
    job8_t j = {.linear = 1,
                .grouped = 0,
                .dims = d,
                .q = q,
                .upc = 1,
                .cin_g = d->in_features,
                .plane = 1,
                .oplane = 1,
                .K = d->in_features,
                .qb0 = 8,
                .qb1 = 4,
                .co_begin = co_begin,
                .units = co_end - co_begin,
                .tile = tile_units,
                .stage = tile_stage,
                .x = x,
                .w = w,
                .b = b,
                .y = y};
    (void)scratch;
    mt_cl_offload(task, &j);
}
