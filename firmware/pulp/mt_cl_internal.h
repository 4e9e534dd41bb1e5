/* Internal interface of the cluster layer (firmware/pulp): offload, the L1 buffer, DMA, work splits. */
#ifndef MT_CL_INTERNAL_H
#define MT_CL_INTERNAL_H

#include "mt_cluster.h"
#include "pmsis.h"

/** Runs entry(arg) as one cluster task (opening the cluster on first use); returns when it is done. */
void mt_cl_offload(void (*entry)(void *), void *arg);
/** The L1 buffer for a working set of `floats` floats; ends the program if it does not fit. */
float *mt_cl_l1_claim(int32_t floats);
/** DMA of n floats L2 -> L1 and L1 -> L2, complete on return. */
void mt_cl_get(float *l1, const float *l2, int32_t n);
void mt_cl_put(float *l2, const float *l1, int32_t n);
/** DMA of n bytes L2 -> L1 and L1 -> L2 (int8 tensors, int32 and int64 tables), complete on return. */
void mt_cl_get_bytes(void *l1, const void *l2, int32_t n);
void mt_cl_put_bytes(void *l2, const void *l1, int32_t n);
/** DMA of `rows` lines of `len` floats that lie `stride` floats apart in L2, packed in L1. */
void mt_cl_get_2d(float *l1, const float *l2, int32_t rows, int32_t len, int32_t stride);
/** Core k's share [*lo, *hi) of n items among `cores`, split in multiples of `unit` (the last takes the
 * rest). */
void mt_cl_share_of(int32_t n, int32_t unit, int32_t k, int32_t cores, int32_t *lo, int32_t *hi);
/** The calling core's share of n items in its team (mt_cl_share_of with pi_core_id()). */
void mt_cl_share(int32_t n, int32_t unit, int32_t *lo, int32_t *hi);

#endif /* MT_CL_INTERNAL_H */
