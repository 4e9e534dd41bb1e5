/**
 * @file fuzz_common.h
 * @brief Fuzzing support: a toy device behind mt_link_service() whose every output byte is checked.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "toy_app.h"

/** Toy model sizes of the fuzzed device: input 3x4x4, 8 targets, masked, 700 parameters, 2 slots,
 *  a replay reservoir of 3 samples (2 replayed steps per SAMPLE with REPLAY). */
#define FUZZ_C            3u
#define FUZZ_H            4u
#define FUZZ_W            4u
#define FUZZ_X            (FUZZ_C * FUZZ_H * FUZZ_W)
#define FUZZ_T            8u
#define FUZZ_PARAMS       700u
#define FUZZ_VAL          2u
#define FUZZ_REPLAY_SLOTS 3u

extern toy_t fuzz_toy;
extern mt_link_t fuzz_dev;
/** Times the device was restarted because it acknowledged RESET(EXIT). */
extern uint64_t fuzz_restarts;

/**
 * (Re)start the device with a frame buffer of cap bytes (MT_LINK_MIN_FRAME..MT_LINK_MAX_FRAME).
 * @p sparse: an application without a mask, validation slots and most callbacks (the UNSUPPORTED paths).
 */
void fuzz_device_init(size_t cap, int sparse);

/** Feed bytes to the device; aborts when its output is not a sequence of valid reply frames. */
void fuzz_feed(const uint8_t *p, size_t n);

/**
 * One fuzz input, the format of libFuzzer and of the regression corpus: byte 0 picks the frame buffer
 * (bits 0-1: 320, 512, 1024 or 6144 bytes) and a sparse application (bit 2, also without a reservoir); the
 * rest is fed to a fresh device.
 */
void fuzz_one_input(const uint8_t *data, size_t size);

/** Reply frames the device sent since start-up (all valid, or we would have aborted). */
uint64_t fuzz_replies(void);

#endif /* FUZZ_COMMON_H */
