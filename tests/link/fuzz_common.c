/**
 * @file fuzz_common.c
 * @brief The fuzzed device and the checker of its output (see fuzz_common.h).
 */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>

toy_t fuzz_toy;
mt_link_t fuzz_dev;
uint64_t fuzz_restarts;

static float dev_buf[MT_LINK_MAX_FRAME / 4];
static uint8_t replay_bytes[FUZZ_REPLAY_SLOTS * MT_REPLAY_SLOT_BYTES(FUZZ_X, FUZZ_T, 1u)];
static mt_replay_state_t replay_state;
static const mt_replay_t replay = {replay_bytes, FUZZ_REPLAY_SLOTS, 2u, 0x2545F491u, 1u, &replay_state};
static float chk_buf[MT_LINK_MAX_FRAME / 4];
static mt_link_t chk;
static uint64_t replies;

static void fail(const char *what, unsigned type, size_t len)
{
    fprintf(stderr, "fuzz: device output invalid: %s (type 0x%02x, %zu payload bytes)\n", what, type, len);
    abort();
}

static void chk_putc(void *ctx, uint8_t b)
{
    (void)ctx;
    (void)b; /* the checker never sends */
}

/* Every byte the device sends goes through a second receiver: only valid reply frames may come out. */
static void dev_putc(void *ctx, uint8_t b)
{
    const int r = mt_link_feed(&chk, b);
    const mt_link_frame_t *f = mt_link_last_frame(&chk);
    size_t want = 0;
    (void)ctx;
    if (r == MT_LINK_NEED_MORE)
        return;
    if (r < 0)
        fail("damaged frame", 0, 0);
    replies++;
    if (f->version != MT_LINK_VERSION || !(f->type & 0x80u))
        fail("not a v1 reply", f->type, f->len);
    switch (f->type) {
    case MT_MSG_ACK:
        want = MT_LINK_ACK_BYTES;
        break;
    case MT_MSG_ERROR:
        want = 12;
        break;
    case MT_MSG_STATS_REPLY:
        want = 72;
        break;
    case MT_MSG_EVAL_RESULT:
        want = 12;
        break;
    case MT_MSG_PARAMS:
    case MT_MSG_OUTPUT:
        if (f->len < 8 || (f->len - 8u) % 4u)
            fail("bad chunk length", f->type, f->len);
        return;
    case MT_MSG_INFO:
        if (f->len < 75 || f->len > 72u + 3u + 64u + 96u + 32u + 20u) /* + the reservoir's record */
            fail("bad INFO length", f->type, f->len);
        return;
    case MT_MSG_LOG:
        return;
    default:
        fail("unknown reply type", f->type, f->len);
    }
    if (f->len != want)
        fail("bad payload length", f->type, f->len);
}

static int sparse_app;

void fuzz_device_init(size_t cap, int sparse)
{
    sparse_app = sparse;
    toy_init(&fuzz_toy, FUZZ_C, FUZZ_H, FUZZ_W, FUZZ_T, !sparse, FUZZ_PARAMS, sparse ? 0u : FUZZ_VAL);
    if (sparse) {
        fuzz_toy.app.infer = NULL;
        fuzz_toy.app.eval = NULL;
        fuzz_toy.app.write_params = NULL;
        fuzz_toy.app.read_params = NULL;
        fuzz_toy.app.snapshot = NULL;
        fuzz_toy.app.restore = NULL;
        fuzz_toy.app.reset = NULL;
        fuzz_toy.app.stats = NULL;
        fuzz_toy.app.train = NULL;
    } else {
        mt_replay_reset(&replay);
        fuzz_toy.app.replay = &replay;
    }
    if (mt_link_init(&fuzz_dev, (uint8_t *)dev_buf, cap, dev_putc, NULL, NULL) != 0 ||
        mt_link_init(&chk, (uint8_t *)chk_buf, sizeof chk_buf, chk_putc, NULL, NULL) != 0) {
        fprintf(stderr, "fuzz: cannot init a link with %zu bytes\n", cap);
        abort();
    }
}

void fuzz_feed(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (mt_link_service(&fuzz_dev, &fuzz_toy.app, p[i]) == MT_LINK_SVC_EXIT) {
            fuzz_device_init(fuzz_dev.cap, sparse_app); /* the program would end: start a fresh one */
            fuzz_restarts++;
        }
}

uint64_t fuzz_replies(void)
{
    return replies;
}

void fuzz_one_input(const uint8_t *data, size_t size)
{
    static const size_t caps[4] = {MT_LINK_MIN_FRAME, 512, 1024, MT_LINK_MAX_FRAME};
    if (size == 0)
        return;
    fuzz_device_init(caps[data[0] & 3u], (data[0] & 4u) != 0);
    fuzz_feed(data + 1, size - 1);
}
