/**
 * @file pmsis.h
 * @brief A portable subset of the PMSIS API (the PULP/GAP SDK programming model), enough for the
 *        cluster code that mcutrain generates (firmware/pulp/mt_cl_*.c), on any single-core C target.
 *
 * The GAP SDK's own pmsis.h replaces this file on GAP9 (target `gap9`); on `gap9-rv32-qemu` the same
 * generated sources build against this one. Semantics (docs/gap9.md):
 *
 * - the cluster is the calling core: pi_cluster_send_task_to_cl() runs the task's entry at once;
 * - pi_cl_team_fork(n, fn, arg) runs fn(arg) n times in turn with pi_core_id() = 0, 1, ..., n-1, so
 *   results are deterministic; pi_cl_team_barrier() is then a no-op (each "core" ran to completion);
 * - the cluster DMA is memcpy, complete when the command returns; pi_cl_dma_cmd_wait() is a no-op;
 * - PI_L1 places data in the `.l1` section (the board's L1 region, ordinary memory), PI_L2 in plain RAM.
 *
 * Only what mcutrain uses is here; every function has the GAP SDK's name and argument order.
 */
#ifndef MT_PMSIS_PORTABLE_H
#define MT_PMSIS_PORTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Data in the cluster's shared L1 (TCDM): a separate section, linked into the board's L1 region. */
#define PI_L1 __attribute__((section(".l1")))
/** Data in L2: ordinary RAM. */
#define PI_L2

/** Number of cluster cores a team fork may use. */
#define ARCHI_CLUSTER_NB_PE 8

/* ---- devices and the cluster (fabric-controller side) ---------------------------------------- */

struct pi_device {
    void *config;
    int open;
};

struct pi_cluster_conf {
    int id;
};

struct pi_cluster_task {
    void (*entry)(void *arg);
    void *arg;
    int nb_cores;
};

void pi_cluster_conf_init(struct pi_cluster_conf *conf);
void pi_open_from_conf(struct pi_device *device, void *conf);
/** Powers the cluster on; 0 on success. */
int pi_cluster_open(struct pi_device *device);
int pi_cluster_close(struct pi_device *device);
struct pi_cluster_task *pi_cluster_task(struct pi_cluster_task *task, void (*entry)(void *), void *arg);
/** Runs task->entry(task->arg) on the cluster's master core and returns when it has finished. */
int pi_cluster_send_task_to_cl(struct pi_device *device, struct pi_cluster_task *task);

/* ---- cluster side ---------------------------------------------------------------------------- */

/** The calling core's index in the running team (0 outside a fork). */
int pi_core_id(void);
/** Cores of the running team (1 outside a fork). */
int pi_cl_team_nb_cores(void);
/** Runs entry(arg) on nb_cores cores (here: one after another, core 0 first) and waits for all. */
void pi_cl_team_fork(int nb_cores, void (*entry)(void *), void *arg);
/** Waits until every core of the team has arrived (here: nothing to wait for). */
void pi_cl_team_barrier(void);

/* ---- cluster DMA ------------------------------------------------------------------------------ */

typedef enum {
    PI_CL_DMA_DIR_LOC2EXT = 0, /**< L1 -> L2 */
    PI_CL_DMA_DIR_EXT2LOC = 1, /**< L2 -> L1 */
} pi_cl_dma_dir_e;

typedef struct {
    uint32_t id;
} pi_cl_dma_cmd_t;

/** Copies size bytes between ext (L2) and loc (L1) in direction dir. Addresses are uintptr_t here (the
 * SDK's uint32_t on GAP9), so that the same sources also run in a 64-bit host build. */
void pi_cl_dma_cmd(uintptr_t ext, uintptr_t loc, uint32_t size, pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd);
/**
 * 2-D copy of size bytes: on the L2 side, lines of `length` bytes that start `stride` bytes apart;
 * on the L1 side, the lines back to back.
 */
void pi_cl_dma_cmd_2d(uintptr_t ext, uintptr_t loc, uint32_t size, uint32_t stride, uint32_t length,
                      pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd);
/** Waits for a DMA command to complete. */
void pi_cl_dma_cmd_wait(pi_cl_dma_cmd_t *cmd);

#ifdef __cplusplus
}
#endif

#endif /* MT_PMSIS_PORTABLE_H */
