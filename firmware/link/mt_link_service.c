/**
 * @file mt_link_service.c
 * @brief The protocol v1 dispatcher: sequencing, idempotence, requests -> application callbacks -> replies.
 *
 * Sequenced requests (SAMPLE, TRAIN, PUT_PARAMS, CHECKPOINT, ROLLBACK, RESET) are applied only when
 * their sequence number is the last applied one plus one; a repeated or older one is acknowledged
 * again with the stored ACK (flag DUP) and not applied; a gap is an ERROR (SEQUENCE). Queries
 * (HELLO, INFER, EVAL, STATS, GET_PARAMS) change nothing the host relies on, are answered whatever
 * their sequence number and echo it. Replies are built in the frame buffer once the request has
 * been read, so the link needs no second buffer.
 */
#include "mt_link.h"

#include "mt_link_le.h"

#define MT_HASH_MAX  64u
#define MT_PLAN_MAX  96u
#define MT_BOARD_MAX 32u

/* INFO flag bits. */
enum {
    INFO_MASK = 1,
    INFO_TRAIN = 2,
    INFO_CHECKPOINT = 4,
    INFO_PUT_PARAMS = 8,
    INFO_PERSIST = 16,
    INFO_REPLAY = 32,
    INFO_BLEND = 64
};

static int is_sequenced(uint8_t type)
{
    return type == MT_MSG_SAMPLE || type == MT_MSG_TRAIN || type == MT_MSG_PUT_PARAMS ||
           type == MT_MSG_CHECKPOINT || type == MT_MSG_ROLLBACK || type == MT_MSG_RESET;
}

static void send_error(mt_link_t *l, uint32_t seq, uint8_t req_type, int code, uint32_t detail)
{
    uint8_t p[12];
    mt_put_u16(p, (uint16_t)code);
    p[2] = req_type;
    p[3] = 0;
    mt_put_u32(p + 4, l->last_seq);
    mt_put_u32(p + 8, detail);
    l->count.errors_sent++;
    (void)mt_link_send(l, MT_MSG_ERROR, 0, seq, p, sizeof p);
}

static uint32_t app_step(const mt_link_app_t *app)
{
    mt_link_app_stats_t st;
    if (app->stats == NULL)
        return 0;
    memset(&st, 0, sizeof st);
    app->stats(app->ctx, &st);
    return st.step;
}

/* Copy at most max characters of s (NULL: none) as u8 length + bytes; returns bytes written. */
static size_t put_str(uint8_t *p, const char *s, size_t max)
{
    size_t n = 0;
    while (s != NULL && n < max && s[n] != '\0')
        n++;
    p[0] = (uint8_t)n;
    if (n)
        memcpy(p + 1, s, n);
    return n + 1u;
}

static float quiet_nan(void)
{
    const uint32_t bits = 0x7FC00000u;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Floats that fit in a reply after an 8-byte prefix. */
static uint32_t reply_floats(const mt_link_t *l)
{
    return (uint32_t)((l->cap - MT_LINK_OVERHEAD - 8u) / 4u);
}

/* Payload float area of a reply (4-byte aligned: buf is). */
static float *reply_f32(mt_link_t *l)
{
    return (float *)(void *)(l->buf + 8);
}

/* Native floats at p -> little-endian bytes, in place. */
static void f32_to_le(uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        float f;
        memcpy(&f, p + 4u * i, 4);
        mt_put_f32(p + 4u * i, f);
    }
}

/* Little-endian bytes at p -> native floats, in place. */
static void le_to_f32(uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        const float f = mt_le_f32(p + 4u * i);
        memcpy(p + 4u * i, &f, 4);
    }
}

/* ---- queries ------------------------------------------------------------------------------- */

static void do_hello(mt_link_t *l, const mt_link_app_t *app, uint32_t seq)
{
    uint8_t *p = l->buf;
    const mt_link_info_t *in = &app->info;
    size_t n;
    uint16_t flags = 0;
    mt_link_app_stats_t st;
    memset(&st, 0, sizeof st);
    if (app->stats)
        app->stats(app->ctx, &st);
    if (app->mask)
        flags |= INFO_MASK;
    if (app->train)
        flags |= INFO_TRAIN;
    if (app->snapshot && app->restore)
        flags |= INFO_CHECKPOINT;
    if (app->persist)
        flags |= INFO_PERSIST;
    if (app->write_params)
        flags |= INFO_PUT_PARAMS;
    if (app->replay && app->train)
        flags |= INFO_REPLAY;
    if (app->blend && app->infer)
        flags |= INFO_BLEND;
    memset(p, 0, 72);
    p[0] = (uint8_t)MT_LINK_VERSION;
    p[1] = (uint8_t)(app->val_slots > 255u ? 255u : app->val_slots);
    mt_put_u16(p + 2, flags);
    mt_put_u32(p + 4, (uint32_t)l->cap);
    mt_put_u32(p + 8, l->last_seq);
    mt_put_u32(p + 12, l->last_sample_id);
    mt_put_u32(p + 16, st.step);
    mt_put_u32(p + 20, app->x_numel);
    mt_put_u16(p + 24, in->input_c);
    mt_put_u16(p + 26, in->input_h);
    mt_put_u16(p + 28, in->input_w);
    mt_put_u32(p + 32, app->target_numel);
    mt_put_u32(p + 36, app->y_numel);
    mt_put_u32(p + 40, in->trainable_numel);
    mt_put_u32(p + 44, in->arena_bytes);
    mt_put_u32(p + 48, in->peak_ram_bytes);
    mt_put_u32(p + 52, in->stack_bytes);
    mt_put_u32(p + 56, st.stack_used);
    mt_put_u32(p + 60, in->cpu_hz);
    mt_put_u16(p + 64, (1u << MT_ENC_NONE) | (1u << MT_ENC_F32) | (1u << MT_ENC_U8) | (1u << MT_ENC_I16));
    mt_put_u16(p + 66, (1u << MT_ENC_NONE) | (1u << MT_ENC_F32) | (1u << MT_ENC_U8) | (1u << MT_ENC_I16) |
                           (1u << MT_ENC_LABEL));
    mt_put_u16(p + 68,
               app->mask ? (1u << MT_ENC_NONE) | (1u << MT_ENC_BITS) | (1u << MT_ENC_F32) | (1u << MT_ENC_U8)
                         : (1u << MT_ENC_NONE));
    p[70] = st.restored_from;
    p[71] = st.bad_slots;
    n = 72;
    n += put_str(p + n, in->model_hash, MT_HASH_MAX);
    n += put_str(p + n, in->plan, MT_PLAN_MAX);
    n += put_str(p + n, in->board, MT_BOARD_MAX);
    if (flags & INFO_REPLAY) { /* after the strings: older hosts ignore it */
        const mt_replay_t *r = app->replay;
        mt_put_u32(p + n, r->slots);
        mt_put_u32(p + n + 4, r->seed);
        mt_put_u16(p + n + 8, (uint16_t)(r->replay > 0xFFFFu ? 0xFFFFu : r->replay));
        p[n + 10] = r->train_new;
        p[n + 11] = 0;
        mt_put_u32(p + n + 12, r->st->seen);
        mt_put_u32(p + n + 16, r->st->filled);
        n += 20;
    }
    if (flags & INFO_BLEND) { /* after the reservoir's record: the weight, the zones with a mean */
        uint32_t i, seen = 0;
        for (i = 0; i < app->target_numel; i++)
            seen += app->blend->count[i] != 0u;
        mt_put_f32(p + n, app->blend->a);
        mt_put_u32(p + n + 4, seen);
        n += 8;
    }
    (void)mt_link_send(l, MT_MSG_INFO, 0, seq, p, n);
}

static void do_stats(mt_link_t *l, const mt_link_app_t *app, uint32_t seq)
{
    uint8_t *p = l->buf;
    mt_link_app_stats_t st;
    memset(&st, 0, sizeof st);
    st.metric = quiet_nan();
    if (app->stats)
        app->stats(app->ctx, &st);
    mt_put_u32(p + 0, st.step);
    mt_put_u32(p + 4, st.samples_trained);
    mt_put_u32(p + 8, st.nonfinite_skips);
    mt_put_f32(p + 12, st.last_loss);
    mt_put_f32(p + 16, st.loss_avg);
    mt_put_f32(p + 20, st.metric);
    mt_put_u64(p + 24, st.last_step_instr);
    mt_put_u64(p + 32, st.total_train_instr);
    mt_put_u32(p + 40, st.stack_used);
    mt_put_u32(p + 44, l->last_seq);
    mt_put_u32(p + 48, l->last_sample_id);
    mt_put_u32(p + 52, l->count.frames);
    mt_put_u32(p + 56, l->count.crc_errors);
    mt_put_u32(p + 60, l->count.bad_frames);
    mt_put_u32(p + 64, l->count.duplicates);
    mt_put_u32(p + 68, l->count.errors_sent);
    (void)mt_link_send(l, MT_MSG_STATS_REPLY, 0, seq, p, 72);
}

/* Reply with floats src[first .. first + n) already placed at buf + 8 by the caller. */
static void send_chunk(mt_link_t *l, uint8_t type, uint32_t seq, uint32_t first, uint32_t total, uint32_t n)
{
    mt_put_u32(l->buf, first);
    mt_put_u32(l->buf + 4, total);
    f32_to_le(l->buf + 8, n);
    (void)mt_link_send(l, type, 0, seq, l->buf, 8u + 4u * (size_t)n);
}

static int do_infer(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f, uint32_t *detail)
{
    uint32_t first, want, n;
    const int blend = (f->flags & MT_FLAG_BLEND) != 0;
    const uint32_t total = blend ? app->target_numel : app->y_numel;
    const float *out = app->y;
    int r;
    if (f->len != 8)
        return -MT_LINK_ERR_LENGTH;
    if (app->infer == NULL || app->y == NULL || (blend && app->blend == NULL))
        return -MT_LINK_ERR_UNSUPPORTED;
    first = mt_le_u32(f->payload);
    want = mt_le_u32(f->payload + 4);
    if (first > total) {
        *detail = total;
        return -MT_LINK_ERR_RANGE;
    }
    if (f->flags & MT_FLAG_RUN) {
        if (!l->have_input)
            return -MT_LINK_ERR_NO_SAMPLE;
        r = app->infer(app->ctx, app->x, app->y);
        if (r < 0) {
            *detail = (uint32_t)r;
            return -MT_LINK_ERR_APP;
        }
        l->have_output = 1;
    } else if (!l->have_output) {
        return -MT_LINK_ERR_NO_SAMPLE;
    }
    if (blend) { /* from the output, every chunk again: the running mean changes only with SAMPLE */
        mt_blend_predict(app->blend, app->y, app->target_numel);
        out = app->blend->out;
    }
    n = min_u32(total - first, reply_floats(l));
    if (want)
        n = min_u32(n, want);
    memcpy(reply_f32(l), out + first, 4u * (size_t)n);
    send_chunk(l, MT_MSG_OUTPUT, f->seq, first, total, n);
    return 0;
}

static int slot_written(const mt_link_t *l, uint32_t k)
{
    return k >= 32u || ((l->val_written >> k) & 1u) != 0u;
}

/* Mean loss and metric over the written validation slots (over all of them when none was written yet:
 * they hold zeros then); *n: how many were evaluated. EVAL may overwrite the output buffer. */
static int eval_valset(mt_link_t *l, const mt_link_app_t *app, float *loss, float *metric, uint32_t *n,
                       uint32_t *detail)
{
    uint32_t i;
    const int all = l->val_written == 0u;
    *loss = 0.0f;
    *metric = 0.0f;
    *n = 0;
    if (app->val_slots == 0 || app->val_x == NULL || app->val_target == NULL) {
        *detail = 0;
        return -MT_LINK_ERR_RANGE;
    }
    for (i = 0; i < app->val_slots; i++) {
        float li = 0.0f, mi = 0.0f;
        const float *vm = app->val_mask ? app->val_mask + (size_t)i * app->target_numel : NULL;
        int r;
        if (!all && !slot_written(l, i))
            continue;
        r = app->eval(app->ctx, app->val_x + (size_t)i * app->x_numel,
                      app->val_target + (size_t)i * app->target_numel, vm, &li, &mi);
        if (r < 0) {
            *detail = (uint32_t)r;
            return -MT_LINK_ERR_APP;
        }
        *loss += li;
        *metric += mi;
        ++*n;
    }
    l->have_output = 0;
    *loss /= (float)*n;
    *metric /= (float)*n;
    return 0;
}

static int do_eval(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f, uint32_t *detail)
{
    float loss = 0.0f, metric = 0.0f;
    uint32_t n = 1;
    uint8_t p[12];
    int r;
    if (f->len != 0)
        return -MT_LINK_ERR_LENGTH;
    if (app->eval == NULL)
        return -MT_LINK_ERR_UNSUPPORTED;
    if (f->flags & MT_FLAG_VALSET) {
        r = eval_valset(l, app, &loss, &metric, &n, detail);
        if (r < 0)
            return r;
    } else {
        if (!l->have_input || !l->have_target)
            return -MT_LINK_ERR_NO_SAMPLE;
        r = app->eval(app->ctx, app->x, app->target, app->mask, &loss, &metric);
        if (r < 0) {
            *detail = (uint32_t)r;
            return -MT_LINK_ERR_APP;
        }
        l->have_output = 0;
    }
    mt_put_f32(p, loss);
    mt_put_f32(p + 4, metric);
    mt_put_u32(p + 8, n);
    (void)mt_link_send(l, MT_MSG_EVAL_RESULT, 0, f->seq, p, sizeof p);
    return 0;
}

static int do_get_params(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f, uint32_t *detail)
{
    const uint32_t total = app->info.trainable_numel;
    uint32_t offset, want, n;
    int r;
    if (f->len != 8)
        return -MT_LINK_ERR_LENGTH;
    if (app->read_params == NULL)
        return -MT_LINK_ERR_UNSUPPORTED;
    offset = mt_le_u32(f->payload);
    want = mt_le_u32(f->payload + 4);
    if (offset > total) {
        *detail = total;
        return -MT_LINK_ERR_RANGE;
    }
    n = min_u32(total - offset, reply_floats(l));
    if (want)
        n = min_u32(n, want);
    r = n ? app->read_params(app->ctx, offset, reply_f32(l), n) : 0;
    if (r < 0) {
        *detail = (uint32_t)r;
        return -MT_LINK_ERR_APP;
    }
    send_chunk(l, MT_MSG_PARAMS, f->seq, offset, total, n);
    return 0;
}

/* ---- sequenced requests --------------------------------------------------------------------- */

static int app_error(int r, uint32_t *detail)
{
    *detail = (uint32_t)r;
    return -MT_LINK_ERR_APP;
}

static int do_sample(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f, mt_link_result_t *res,
                     uint32_t *detail)
{
    mt_link_sample_t s;
    float *x, *t, *m;
    const int replay = (f->flags & MT_FLAG_REPLAY) != 0;
    const int train = replay || (f->flags & MT_FLAG_TRAIN) != 0;
    int r = mt_link_parse_sample(f->payload, f->len, &s);
    if (r < 0)
        return r;
    if (s.slot > app->val_slots || (s.slot > 0 && (app->val_x == NULL || app->val_target == NULL))) {
        *detail = app->val_slots;
        return -MT_LINK_ERR_RANGE;
    }
    if (s.slot == 0) {
        x = app->x;
        t = app->target;
        m = app->mask;
    } else {
        const size_t k = (size_t)s.slot - 1u;
        x = app->val_x + k * app->x_numel;
        t = app->val_target + k * app->target_numel;
        m = app->val_mask ? app->val_mask + k * app->target_numel : NULL;
    }
    if ((r = mt_link_check_block(&s.input, app->x_numel, detail)) < 0)
        return r;
    if ((r = mt_link_check_block(&s.target, app->target_numel, detail)) < 0)
        return r;
    if ((r = mt_link_check_block(&s.mask, app->target_numel, detail)) < 0)
        return r;
    if (m == NULL && s.mask.enc != MT_ENC_NONE) {
        *detail = 0; /* this plan (or this slot) takes no mask */
        return -MT_LINK_ERR_ENCODING;
    }
    if (train) {
        if (s.slot != 0) {
            *detail = 0;
            return -MT_LINK_ERR_RANGE;
        }
        if (app->train == NULL || (replay && app->replay == NULL))
            return -MT_LINK_ERR_UNSUPPORTED;
        if (replay && (r = mt_replay_check(&s, m != NULL)) < 0)
            return r; /* the reservoir stores uint8 inputs, int16 targets and mask bits */
        if ((!l->have_input && s.input.enc == MT_ENC_NONE) ||
            (!l->have_target && s.target.enc == MT_ENC_NONE))
            return -MT_LINK_ERR_NO_SAMPLE;
    }
    /* Checked: now change state. */
    mt_link_decode_sample(&s, app, x, t, m);
    if (s.slot == 0) {
        l->have_input |= s.input.enc != MT_ENC_NONE;
        l->have_target |= s.target.enc != MT_ENC_NONE;
        if (s.input.enc != MT_ENC_NONE)
            l->have_output = 0;
    } else {
        if (s.slot <= 32u)
            l->val_written |= 1u << (s.slot - 1u);
        l->have_ref = 0; /* another validation set: the reference loss no longer compares */
    }
    if (replay) {
        r = mt_replay_train(app, &s, res);
        if (r < 0)
            return app_error(r, detail);
    } else if (train) {
        r = app->train(app->ctx, x, t, m, res);
        if (r < 0)
            return app_error(r, detail);
    } else {
        res->step = app_step(app);
    }
    if (train && app->blend != NULL) /* once per trained-on sample, not per replayed step */
        mt_blend_observe(app->blend, t, m, app->target_numel);
    l->last_sample_id = s.sample_id; /* only once applied: a resuming host starts after it */
    return 0;
}

static int do_put_params(const mt_link_app_t *app, const mt_link_frame_t *f, mt_link_result_t *res,
                         uint32_t *detail)
{
    uint32_t offset, total, n;
    int r;
    if (f->len < 8 || (f->len - 8u) % 4u != 0)
        return -MT_LINK_ERR_LENGTH;
    if (app->write_params == NULL)
        return -MT_LINK_ERR_UNSUPPORTED;
    offset = mt_le_u32(f->payload);
    total = mt_le_u32(f->payload + 4);
    n = (uint32_t)((f->len - 8u) / 4u);
    if (total != app->info.trainable_numel) {
        *detail = app->info.trainable_numel;
        return -MT_LINK_ERR_SIZE;
    }
    if ((uint64_t)offset + n > total) {
        *detail = total;
        return -MT_LINK_ERR_RANGE;
    }
    le_to_f32(f->payload + 8, n);
    r = app->write_params(app->ctx, offset, (const float *)(const void *)(f->payload + 8), n,
                          (f->flags & MT_FLAG_LAST) != 0);
    if (r < 0)
        return app_error(r, detail);
    res->step = app_step(app);
    return 0;
}

static int is_finite_f(float v)
{
    return v == v && v - v == 0.0f;
}

/* CHECKPOINT: snapshot, or accept-if-better: keep the training state when its validation loss is finite
 * and lower than at the last accepted checkpoint (or when there is none yet), else restore the snapshot.
 * Everything is checked before anything changes; PERSIST then writes the kept state to storage. */
static int do_checkpoint(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f,
                         mt_link_result_t *res, uint32_t *detail)
{
    const int persist = (f->flags & MT_FLAG_PERSIST) != 0;
    const int have_val = app->eval != NULL && app->val_slots > 0 && l->val_written != 0u;
    uint32_t n = 0;
    float loss = quiet_nan(), metric; /* NaN: no validation loss */
    int r, keep = 1;
    if (f->len != 1)
        return -MT_LINK_ERR_LENGTH;
    if (f->payload[0] > MT_CKPT_ACCEPT_IF_BETTER) {
        *detail = MT_CKPT_ACCEPT_IF_BETTER;
        return -MT_LINK_ERR_RANGE;
    }
    if (app->snapshot == NULL || app->restore == NULL || (persist && app->persist == NULL))
        return -MT_LINK_ERR_UNSUPPORTED;
    if (f->payload[0] == MT_CKPT_ACCEPT_IF_BETTER && !have_val)
        return -MT_LINK_ERR_NO_SAMPLE; /* nothing to decide on: write validation slots first */
    if (have_val && (r = eval_valset(l, app, &loss, &metric, &n, detail)) < 0)
        return r;
    if (f->payload[0] == MT_CKPT_ACCEPT_IF_BETTER)
        keep = is_finite_f(loss) && (!l->have_ref || loss < l->ref_loss);
    if (keep) {
        r = app->snapshot(app->ctx);
        l->have_ref = (uint8_t)is_finite_f(loss);
        l->ref_loss = loss;
    } else {
        r = app->restore(app->ctx);
        res->result = MT_RESULT_ROLLED_BACK;
    }
    if (r >= 0 && persist)
        r = app->persist(app->ctx);
    if (r < 0)
        return app_error(r, detail);
    res->loss = loss;
    res->step = app_step(app);
    return 0;
}

/* Apply one sequenced request; fills res. Returns 0, MT_LINK_SVC_EXIT or -MT_LINK_ERR_*. */
static int apply(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f, mt_link_result_t *res,
                 uint32_t *detail)
{
    int r;
    switch (f->type) {
    case MT_MSG_SAMPLE:
        return do_sample(l, app, f, res, detail);
    case MT_MSG_TRAIN:
        if (f->len != 0)
            return -MT_LINK_ERR_LENGTH;
        if (app->train == NULL)
            return -MT_LINK_ERR_UNSUPPORTED;
        if (!l->have_input || !l->have_target)
            return -MT_LINK_ERR_NO_SAMPLE;
        r = app->train(app->ctx, app->x, app->target, app->mask, res);
        return r < 0 ? app_error(r, detail) : 0;
    case MT_MSG_PUT_PARAMS:
        return do_put_params(app, f, res, detail);
    case MT_MSG_CHECKPOINT:
        return do_checkpoint(l, app, f, res, detail);
    case MT_MSG_ROLLBACK:
        if (f->len != 0)
            return -MT_LINK_ERR_LENGTH;
        if (app->restore == NULL)
            return -MT_LINK_ERR_UNSUPPORTED;
        r = app->restore(app->ctx);
        if (r < 0)
            return app_error(r, detail);
        res->step = app_step(app);
        return 0;
    default: /* MT_MSG_RESET */
        if (f->len != 1)
            return -MT_LINK_ERR_LENGTH;
        if (f->payload[0] == MT_RESET_EXIT) {
            res->step = app_step(app);
            return MT_LINK_SVC_EXIT;
        }
        if (f->payload[0] != MT_RESET_MODEL) {
            *detail = MT_RESET_EXIT;
            return -MT_LINK_ERR_RANGE;
        }
        if (app->reset == NULL)
            return -MT_LINK_ERR_UNSUPPORTED;
        r = app->reset(app->ctx, res);
        if (r < 0)
            return app_error(r, detail);
        l->have_ref = 0; /* the model starts again: no accepted checkpoint */
        if (app->replay != NULL)
            mt_replay_reset(app->replay); /* and the reservoir is empty again */
        if (app->blend != NULL)
            mt_blend_reset(app->blend, app->target_numel); /* and no target was seen */
        return 0;
    }
}

static void send_ack(mt_link_t *l, uint8_t flags)
{
    (void)mt_link_send(l, MT_MSG_ACK, flags, l->last_seq, l->last_ack, MT_LINK_ACK_BYTES);
}

int mt_link_handle(mt_link_t *l, const mt_link_app_t *app, const mt_link_frame_t *f)
{
    uint32_t detail = 0;
    int r;
    if (f->type & 0x80u)
        return MT_LINK_SVC_IDLE; /* a reply (e.g. our own echo): never answered */
    if (f->version != MT_LINK_VERSION) {
        send_error(l, f->seq, f->type, MT_LINK_ERR_VERSION, MT_LINK_VERSION);
        return MT_LINK_SVC_HANDLED;
    }
    if (is_sequenced(f->type)) {
        const uint32_t d = f->seq - l->last_seq;
        mt_link_result_t res;
        if (d == 0 || d >= 0x80000000u) { /* already applied: acknowledge again, apply nothing */
            l->count.duplicates++;
            send_ack(l, MT_FLAG_DUP);
            return MT_LINK_SVC_HANDLED;
        }
        if (d != 1) {
            send_error(l, f->seq, f->type, MT_LINK_ERR_SEQUENCE, l->last_seq + 1u);
            return MT_LINK_SVC_HANDLED;
        }
        memset(&res, 0, sizeof res);
        r = apply(l, app, f, &res, &detail);
        if (r < 0) {
            send_error(l, f->seq, f->type, -r, detail);
            return MT_LINK_SVC_HANDLED;
        }
        l->last_seq = f->seq;
        l->last_ack[0] = f->type;
        l->last_ack[1] = res.result;
        l->last_ack[2] = 0;
        l->last_ack[3] = 0;
        mt_put_u32(l->last_ack + 4, res.step);
        mt_put_f32(l->last_ack + 8, res.loss);
        mt_put_u32(l->last_ack + 12, l->last_sample_id);
        send_ack(l, 0);
        return r == MT_LINK_SVC_EXIT ? MT_LINK_SVC_EXIT : MT_LINK_SVC_HANDLED;
    }
    switch (f->type) {
    case MT_MSG_HELLO:
        do_hello(l, app, f->seq);
        r = 0;
        break;
    case MT_MSG_STATS:
        do_stats(l, app, f->seq);
        r = 0;
        break;
    case MT_MSG_INFER:
        r = do_infer(l, app, f, &detail);
        break;
    case MT_MSG_EVAL:
        r = do_eval(l, app, f, &detail);
        break;
    case MT_MSG_GET_PARAMS:
        r = do_get_params(l, app, f, &detail);
        break;
    default:
        r = -MT_LINK_ERR_TYPE;
        break;
    }
    if (r < 0)
        send_error(l, f->seq, f->type, -r, detail);
    return MT_LINK_SVC_HANDLED;
}

int mt_link_service(mt_link_t *l, const mt_link_app_t *app, uint8_t byte)
{
    const int r = mt_link_feed(l, byte);
    if (r == MT_LINK_FRAME)
        return mt_link_handle(l, app, &l->frame);
    if (r < 0)
        send_error(l, l->last_seq, 0, -r, 0);
    return r;
}

void mt_link_log(mt_link_t *l, const char *text)
{
    size_t n = 0;
    while (text[n] != '\0' && n < l->cap - MT_LINK_OVERHEAD)
        n++;
    (void)mt_link_send(l, MT_MSG_LOG, 0, 0, (const uint8_t *)text, n);
}
