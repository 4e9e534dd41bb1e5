/**
 * @file toy_app.h
 * @brief A deterministic stand-in for the generated model behind mt_link_app_t (host tests and fuzzing).
 *
 * Training on a sample computes c = CRC-32 of its decoded floats (x, target, mask bytes as stored)
 * and updates every parameter as p = p * 0.5 + bit(c, j % 32); the loss is (c & 0xFFFF) / 65536.
 * A target whose first value is not finite is skipped like the generated NaN/Inf guard does.
 * Each applied step can be logged as "sample_crc" lines, so tests compare what was applied, in order.
 */
#ifndef TOY_APP_H
#define TOY_APP_H

#include <stdio.h>

#include "mt_link.h"

#define TOY_MAX_X      (64u * 80u)
#define TOY_MAX_T      256u
#define TOY_MAX_PARAMS 8192u
#define TOY_MAX_VAL    4u

typedef struct {
    mt_link_app_t app;
    float x[TOY_MAX_X], target[TOY_MAX_T], mask[TOY_MAX_T], y[TOY_MAX_T];
    float val_x[TOY_MAX_VAL * TOY_MAX_X], val_target[TOY_MAX_VAL * TOY_MAX_T],
        val_mask[TOY_MAX_VAL * TOY_MAX_T];
    float params[TOY_MAX_PARAMS], snapshot[TOY_MAX_PARAMS];
    uint32_t snap_step;
    int have_snap; /* ROLLBACK before any CHECKPOINT fails (APP error -1) */
    uint32_t n_params, step, trained, nonfinite;
    float last_loss, loss_avg;
    uint64_t total_instr;
    FILE *log; /* applied samples, one CRC per line; NULL: none */
} toy_t;

/** Set up the toy model and its app table. Sizes are clamped to the TOY_MAX_* limits. */
void toy_init(toy_t *t, uint16_t c, uint16_t h, uint16_t w, uint32_t target_numel, int masked,
              uint32_t n_params, uint32_t val_slots);

/** CRC-32 of the floats a training step sees (what the log records). */
uint32_t toy_sample_crc(const toy_t *t, const float *x, const float *target, const float *mask);

#endif /* TOY_APP_H */
