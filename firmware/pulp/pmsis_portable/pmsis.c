/* The portable PMSIS subset (pmsis.h): a sequential cluster, memcpy DMA. */
#include "pmsis.h"

#include <string.h>

static int core_id;
static int team_cores = 1;

void pi_cluster_conf_init(struct pi_cluster_conf *conf)
{
    conf->id = 0;
}

void pi_open_from_conf(struct pi_device *device, void *conf)
{
    device->config = conf;
    device->open = 0;
}

int pi_cluster_open(struct pi_device *device)
{
    device->open = 1;
    return 0;
}

int pi_cluster_close(struct pi_device *device)
{
    device->open = 0;
    return 0;
}

struct pi_cluster_task *pi_cluster_task(struct pi_cluster_task *task, void (*entry)(void *), void *arg)
{
    task->entry = entry;
    task->arg = arg;
    task->nb_cores = ARCHI_CLUSTER_NB_PE;
    return task;
}

int pi_cluster_send_task_to_cl(struct pi_device *device, struct pi_cluster_task *task)
{
    if (!device->open) {
        return -1;
    }
    task->entry(task->arg);
    return 0;
}

int pi_core_id(void)
{
    return core_id;
}

int pi_cl_team_nb_cores(void)
{
    return team_cores;
}

void pi_cl_team_fork(int nb_cores, void (*entry)(void *), void *arg)
{
    team_cores = nb_cores;
    for (core_id = 0; core_id < nb_cores; ++core_id) {
        entry(arg);
    }
    core_id = 0;
    team_cores = 1;
}

void pi_cl_team_barrier(void)
{
}

/* Word-aligned transfers (all of mcutrain's: floats) copy a word at a time; picolibc's memcpy for small
 * rv32 builds moves bytes, which would make the stand-in's DMA cost 4x what it copies. GCC would turn the
 * loop back into a memcpy call without the attribute. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif
static void
copy(uintptr_t dst, uintptr_t src, uint32_t size)
{
    if (((dst | src | size) & 3u) != 0u) {
        memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, size);
        return;
    }
    uint32_t *d = (uint32_t *)(uintptr_t)dst;
    const uint32_t *s = (const uint32_t *)(uintptr_t)src;
    for (uint32_t i = 0u; i < size / 4u; ++i) {
        d[i] = s[i];
    }
}

void pi_cl_dma_cmd(uintptr_t ext, uintptr_t loc, uint32_t size, pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd)
{
    if (dir == PI_CL_DMA_DIR_EXT2LOC) {
        copy(loc, ext, size);
    } else {
        copy(ext, loc, size);
    }
    cmd->id = 0u;
}

void pi_cl_dma_cmd_2d(uintptr_t ext, uintptr_t loc, uint32_t size, uint32_t stride, uint32_t length,
                      pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd)
{
    for (uint32_t done = 0u; done < size; done += length) {
        pi_cl_dma_cmd(ext, loc + done, length, dir, cmd);
        ext += stride;
    }
}

void pi_cl_dma_cmd_wait(pi_cl_dma_cmd_t *cmd)
{
    (void)cmd;
}
