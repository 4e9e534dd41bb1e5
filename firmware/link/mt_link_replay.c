/**
 * @file mt_link_replay.c
 * @brief The replay reservoir of the link firmware: samples stored as they arrived, algorithm R, xorshift32.
 *
 * The exact semantics of mcutrain.demos.replay (the simulator draws the same schedule): all arithmetic is
 * uint32. A slot holds, in this order: f32 input scale, f32 input offset, f32 target scale, f32 target
 * offset (little-endian), the uint8 input, the int16 target (little-endian), and in masked plans the mask
 * bits (LSB first; a NONE mask is stored as all ones). Replaying a slot decodes it with
 * mt_link_decode_block, so it gives bit for bit the floats the SAMPLE gave when it arrived.
 */
#include "mt_link.h"

#include "mt_link_le.h"

#define SLOT_HEADER 16u

uint32_t mt_replay_rand(mt_replay_state_t *st)
{
    uint32_t x = st->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    st->rng = x;
    return x;
}

void mt_replay_reset(const mt_replay_t *r)
{
    r->st->rng = r->seed;
    r->st->seen = 0;
    r->st->filled = 0;
}

int mt_replay_check(const mt_link_sample_t *s, int masked)
{
    const int mask_ok = s->mask.enc == MT_ENC_NONE || (masked && s->mask.enc == MT_ENC_BITS);
    if (s->input.enc != MT_ENC_U8 || s->target.enc != MT_ENC_I16 || !mask_ok)
        return -MT_LINK_ERR_ENCODING;
    return 0;
}

static size_t slot_bytes(const mt_link_app_t *app)
{
    return MT_REPLAY_SLOT_BYTES((size_t)app->x_numel, (size_t)app->target_numel, app->mask != NULL);
}

static void store(const mt_replay_t *r, const mt_link_app_t *app, uint32_t k, const mt_link_sample_t *s)
{
    uint8_t *p = r->bytes + (size_t)k * slot_bytes(app);
    const size_t nx = app->x_numel, nt = app->target_numel;
    mt_put_f32(p, s->input.scale);
    mt_put_f32(p + 4, s->input.offset);
    mt_put_f32(p + 8, s->target.scale);
    mt_put_f32(p + 12, s->target.offset);
    p += SLOT_HEADER;
    memcpy(p, s->input.data, nx);
    memcpy(p + nx, s->target.data, 2u * nt);
    if (app->mask == NULL)
        return;
    if (s->mask.enc == MT_ENC_BITS)
        memcpy(p + nx + 2u * nt, s->mask.data, (nt + 7u) / 8u);
    else
        memset(p + nx + 2u * nt, 0xFF, (nt + 7u) / 8u);
}

int32_t mt_replay_offer(const mt_replay_t *r, const mt_link_app_t *app, const mt_link_sample_t *s)
{
    const uint32_t n = r->st->seen++;
    uint32_t j;
    if (n < r->slots) {
        j = n;
        r->st->filled = n + 1u;
    } else {
        j = mt_replay_rand(r->st) % (n + 1u);
        if (j >= r->slots)
            return -1;
    }
    store(r, app, j, s);
    return (int32_t)j;
}

uint32_t mt_replay_draw(const mt_replay_t *r)
{
    return mt_replay_rand(r->st) % r->st->filled;
}

/* A block of slot data, as mt_link_parse_sample would have given it. */
static mt_link_block_t block(uint8_t enc, uint32_t count, float scale, float offset, const uint8_t *data)
{
    mt_link_block_t b;
    b.enc = enc;
    b.count = count;
    b.scale = scale;
    b.offset = offset;
    b.data = data;
    b.nbytes = 0; /* not read by mt_link_decode_block */
    return b;
}

void mt_replay_load(const mt_replay_t *r, const mt_link_app_t *app, uint32_t k)
{
    const uint8_t *p = r->bytes + (size_t)k * slot_bytes(app);
    const uint8_t *data = p + SLOT_HEADER;
    const uint32_t nx = app->x_numel, nt = app->target_numel;
    mt_link_sample_t s;
    memset(&s, 0, sizeof s);
    s.input = block(MT_ENC_U8, nx, mt_le_f32(p), mt_le_f32(p + 4), data);
    s.target = block(MT_ENC_I16, nt, mt_le_f32(p + 8), mt_le_f32(p + 12), data + nx);
    s.mask = block(MT_ENC_BITS, nt, 1.0f, 0.0f, data + nx + 2u * (size_t)nt);
    mt_link_decode_sample(&s, app, app->x, app->target, app->mask);
}

/* One training step on the working buffers; keeps the first step's loss and any skip in *res. */
static int step(const mt_link_app_t *app, int first, mt_link_result_t *res)
{
    mt_link_result_t one;
    int r;
    memset(&one, 0, sizeof one);
    r = app->train(app->ctx, app->x, app->target, app->mask, &one);
    if (r < 0)
        return r;
    if (first)
        res->loss = one.loss;
    if (one.result == MT_RESULT_NONFINITE)
        res->result = MT_RESULT_NONFINITE;
    res->step = one.step;
    return 0;
}

int mt_replay_train(const mt_link_app_t *app, const mt_link_sample_t *s, mt_link_result_t *res)
{
    const mt_replay_t *r = app->replay;
    uint32_t i;
    int rc = 0, first = 1;
    (void)mt_replay_offer(r, app, s);
    if (r->train_new) {
        rc = step(app, first, res);
        first = 0;
    }
    for (i = 0; i < r->replay && rc == 0; i++) {
        mt_replay_load(r, app, mt_replay_draw(r));
        rc = step(app, first, res);
        first = 0;
    }
    if (r->replay > 0) /* the working sample is the incoming one again (INFER, EVAL, TRAIN use it) */
        mt_link_decode_sample(s, app, app->x, app->target, app->mask);
    return rc;
}
