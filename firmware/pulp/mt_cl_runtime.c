/* The cluster layer's runtime: the cluster device, the L1 buffer, DMA helpers and work splits. */
#include <stdio.h>
#include <stdlib.h>

#include "mt_cl_internal.h"

/* The plan sizes the buffer to the largest working set of the step (mt_cluster_plan.h); 8-byte aligned for
 * the uint64 requantization arrays of the int8 linear tiles (mt_cl_conv_s8.c). */
PI_L1 static float l1_buffer[(MT_CL_L1_BYTES + 3) / 4] __attribute__((aligned(8)));
static size_t l1_high;
static struct pi_device cluster;
static struct pi_cluster_conf cluster_conf;
static int cluster_open;

void mt_cl_offload(void (*entry)(void *), void *arg)
{
    struct pi_cluster_task task;
    if (!cluster_open) {
        pi_cluster_conf_init(&cluster_conf);
        pi_open_from_conf(&cluster, &cluster_conf);
        if (pi_cluster_open(&cluster) != 0) {
            printf("mt_cluster: the cluster did not open\n");
            exit(MT_CL_EXIT_L1);
        }
        cluster_open = 1;
    }
    pi_cluster_send_task_to_cl(&cluster, pi_cluster_task(&task, entry, arg));
}

void mt_cl_close(void)
{
    if (cluster_open) {
        pi_cluster_close(&cluster);
        cluster_open = 0;
    }
}

size_t mt_cl_l1_high_water(void)
{
    return l1_high;
}

float *mt_cl_l1_claim(int32_t floats)
{
    const size_t bytes = (size_t)floats * sizeof(float);
    if (bytes > sizeof(l1_buffer)) {
        printf("mt_cluster: a working set of %u B does not fit the %u B L1 buffer: re-emit the project\n",
               (unsigned)bytes, (unsigned)sizeof(l1_buffer));
        exit(MT_CL_EXIT_L1);
    }
    if (bytes > l1_high) {
        l1_high = bytes;
    }
    return l1_buffer;
}

static void dma(const float *l2, const float *l1, int32_t n, pi_cl_dma_dir_e dir)
{
    pi_cl_dma_cmd_t cmd;
    if (n <= 0) {
        return;
    }
    pi_cl_dma_cmd((uintptr_t)l2, (uintptr_t)l1, (uint32_t)n * 4u, dir, &cmd);
    pi_cl_dma_cmd_wait(&cmd);
}

static void dma_bytes(const void *l2, const void *l1, int32_t n, pi_cl_dma_dir_e dir)
{
    pi_cl_dma_cmd_t cmd;
    if (n <= 0) {
        return;
    }
    pi_cl_dma_cmd((uintptr_t)l2, (uintptr_t)l1, (uint32_t)n, dir, &cmd);
    pi_cl_dma_cmd_wait(&cmd);
}

void mt_cl_get_bytes(void *l1, const void *l2, int32_t n)
{
    dma_bytes(l2, l1, n, PI_CL_DMA_DIR_EXT2LOC);
}

void mt_cl_put_bytes(void *l2, const void *l1, int32_t n)
{
    dma_bytes(l2, l1, n, PI_CL_DMA_DIR_LOC2EXT);
}

void mt_cl_get(float *l1, const float *l2, int32_t n)
{
    dma(l2, l1, n, PI_CL_DMA_DIR_EXT2LOC);
}

void mt_cl_put(float *l2, const float *l1, int32_t n)
{
    dma(l2, l1, n, PI_CL_DMA_DIR_LOC2EXT);
}

void mt_cl_get_2d(float *l1, const float *l2, int32_t rows, int32_t len, int32_t stride)
{
    pi_cl_dma_cmd_t cmd;
    if (rows <= 0 || len <= 0) {
        return;
    }
    if (len == stride) {
        mt_cl_get(l1, l2, rows * len);
        return;
    }
    pi_cl_dma_cmd_2d((uintptr_t)l2, (uintptr_t)l1, (uint32_t)(rows * len) * 4u, (uint32_t)stride * 4u,
                     (uint32_t)len * 4u, PI_CL_DMA_DIR_EXT2LOC, &cmd);
    pi_cl_dma_cmd_wait(&cmd);
}

void mt_cl_share(int32_t n, int32_t unit, int32_t *lo, int32_t *hi)
{
    mt_cl_share_of(n, unit, pi_core_id(), pi_cl_team_nb_cores(), lo, hi);
}

void mt_cl_share_of(int32_t n, int32_t unit, int32_t k, int32_t cores, int32_t *lo, int32_t *hi)
{
    const int32_t units = (n + unit - 1) / unit;
    const int32_t per = (units + cores - 1) / cores;
    *lo = k * per * unit < n ? k * per * unit : n;
    *hi = (k + 1) * per * unit < n ? (k + 1) * per * unit : n;
}
