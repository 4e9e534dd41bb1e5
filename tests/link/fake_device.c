/**
 * @file fake_device.c
 * @brief A host "device": the link service over stdin/stdout with the toy model behind it.
 *
 * Usage: fake_device [--shape C H W] [--target N] [--mask 0|1] [--params N] [--val K] [--frame BYTES]
 *                    [--log FILE] [--banner] [--replay SLOTS STEPS NEW SEED] [--blend A]
 * Ends at EOF on stdin or after RESET(EXIT) (status 0). --banner prints a line of text before the
 * first frame, like a firmware's boot message on the same UART. --replay adds a replay reservoir of
 * SLOTS (at most FAKE_REPLAY_MAX) samples, STEPS replayed steps per sample, NEW 0/1, SEED (SAMPLE REPLAY).
 * --blend adds the running mean of the targets with weight A (INFER BLEND; the output is the targets).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toy_app.h"

static toy_t toy;
static float frame_buf[MT_LINK_MAX_FRAME / 4];
static uint8_t out[8192];
static size_t out_n;

#define FAKE_REPLAY_MAX 64u
static uint8_t replay_bytes[FAKE_REPLAY_MAX * MT_REPLAY_SLOT_BYTES(TOY_MAX_X, TOY_MAX_T, 1u)];
static mt_replay_state_t replay_state;
static mt_replay_t replay = {replay_bytes, 0, 0, 1, 1, &replay_state};

static float blend_mean[TOY_MAX_T], blend_out[TOY_MAX_T];
static uint32_t blend_count[TOY_MAX_T];
static mt_blend_t blend = {blend_mean, blend_count, blend_out, -1.0f, NULL};

static void out_flush(void *ctx)
{
    size_t done = 0;
    (void)ctx;
    while (done < out_n) {
        const ssize_t k = write(1, out + done, out_n - done);
        if (k <= 0)
            exit(3);
        done += (size_t)k;
    }
    out_n = 0;
}

static void out_putc(void *ctx, uint8_t b)
{
    if (out_n == sizeof out)
        out_flush(ctx);
    out[out_n++] = b;
}

int main(int argc, char **argv)
{
    unsigned c = 1, h = 64, w = 80, target = 64, masked = 1, params = 3000, val = 2,
             frame = MT_LINK_MAX_FRAME;
    int banner = 0, i;
    mt_link_t link;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--shape") && i + 3 < argc) {
            c = (unsigned)atoi(argv[++i]);
            h = (unsigned)atoi(argv[++i]);
            w = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--target") && i + 1 < argc) {
            target = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--mask") && i + 1 < argc) {
            masked = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--params") && i + 1 < argc) {
            params = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--val") && i + 1 < argc) {
            val = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--frame") && i + 1 < argc) {
            frame = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--log") && i + 1 < argc) {
            toy.log = fopen(argv[++i], "w");
        } else if (!strcmp(a, "--replay") && i + 4 < argc) {
            replay.slots = (uint32_t)strtoul(argv[++i], NULL, 0);
            replay.replay = (uint32_t)strtoul(argv[++i], NULL, 0);
            replay.train_new = (uint8_t)atoi(argv[++i]);
            replay.seed = (uint32_t)strtoul(argv[++i], NULL, 0);
            if (replay.slots == 0 || replay.slots > FAKE_REPLAY_MAX || replay.seed == 0)
                return 2;
        } else if (!strcmp(a, "--blend") && i + 1 < argc) {
            blend.a = strtof(argv[++i], NULL);
        } else if (!strcmp(a, "--banner")) {
            banner = 1;
        } else {
            return 2;
        }
    }
    {
        FILE *log = toy.log;
        toy_init(&toy, (uint16_t)c, (uint16_t)h, (uint16_t)w, target, (int)masked, params, val);
        toy.log = log;
    }
    if (replay.slots) {
        mt_replay_reset(&replay);
        toy.app.replay = &replay;
    }
    if (blend.a >= 0.0f)
        toy.app.blend = &blend;
    if (mt_link_init(&link, (uint8_t *)frame_buf, frame, out_putc, out_flush, NULL) != 0)
        return 2;
    if (banner) {
        static const char text[] = "[fake_device] booting, protocol v1\n";
        size_t k;
        for (k = 0; k < sizeof text - 1; k++)
            out_putc(NULL, (uint8_t)text[k]);
        out_flush(NULL);
    }
    for (;;) {
        uint8_t in[4096];
        const ssize_t n = read(0, in, sizeof in);
        ssize_t k;
        if (n <= 0)
            break;
        for (k = 0; k < n; k++)
            if (mt_link_service(&link, &toy.app, in[k]) == MT_LINK_SVC_EXIT) {
                out_flush(NULL);
                return 0;
            }
    }
    out_flush(NULL);
    return 0;
}
