/**
 * @file toy_app.c
 * @brief The toy model behind the link in host tests (see toy_app.h).
 */
#include "toy_app.h"

#include <string.h>

static int finite_f(float v)
{
    return v == v && v - v == 0.0f;
}

uint32_t toy_sample_crc(const toy_t *t, const float *x, const float *target, const float *mask)
{
    uint32_t c = mt_link_crc32(0, (const uint8_t *)x, 4u * (size_t)t->app.x_numel);
    c = mt_link_crc32(c, (const uint8_t *)target, 4u * (size_t)t->app.target_numel);
    if (mask)
        c = mt_link_crc32(c, (const uint8_t *)mask, 4u * (size_t)t->app.target_numel);
    return c;
}

static float toy_loss(uint32_t c)
{
    return (float)(c & 0xFFFFu) / 65536.0f;
}

static void init_params(toy_t *t)
{
    uint32_t j;
    for (j = 0; j < t->n_params; j++)
        t->params[j] = (float)j * 0.001f;
    t->step = 0;
    t->trained = 0;
    t->nonfinite = 0;
    t->last_loss = 0.0f;
    t->loss_avg = 0.0f;
    t->total_instr = 0;
}

static int toy_train(void *ctx, const float *x, const float *target, const float *mask, mt_link_result_t *res)
{
    toy_t *t = (toy_t *)ctx;
    const uint32_t c = toy_sample_crc(t, x, target, mask);
    uint32_t j;
    t->trained++;
    if (!finite_f(target[0])) {
        t->nonfinite++;
        res->result = MT_RESULT_NONFINITE;
        res->loss = target[0];
        res->step = t->step;
        return 0;
    }
    for (j = 0; j < t->n_params; j++)
        t->params[j] = t->params[j] * 0.5f + (float)((c >> (j & 31u)) & 1u);
    t->step++;
    t->last_loss = toy_loss(c);
    t->loss_avg = t->step == 1 ? t->last_loss : 0.9f * t->loss_avg + 0.1f * t->last_loss;
    t->total_instr += 1000u + c % 7u;
    res->result = MT_RESULT_OK;
    res->loss = t->last_loss;
    res->step = t->step;
    if (t->log) {
        fprintf(t->log, "%08x\n", (unsigned)c);
        fflush(t->log);
    }
    return 0;
}

static int toy_infer(void *ctx, const float *x, float *y)
{
    toy_t *t = (toy_t *)ctx;
    uint32_t i;
    for (i = 0; i < t->app.y_numel; i++)
        y[i] = x[i % t->app.x_numel] + (t->n_params ? t->params[i % t->n_params] : 0.0f);
    return 0;
}

static int toy_eval(void *ctx, const float *x, const float *target, const float *mask, float *loss,
                    float *metric)
{
    toy_t *t = (toy_t *)ctx;
    uint32_t p0 = 0;
    if (t->n_params)
        memcpy(&p0, &t->params[0], sizeof p0);
    *loss = toy_loss(toy_sample_crc(t, x, target, mask) ^ p0);
    *metric = 0.5f;
    return 0;
}

static int toy_read_params(void *ctx, uint32_t offset, float *dst, uint32_t n)
{
    toy_t *t = (toy_t *)ctx;
    memcpy(dst, t->params + offset, 4u * (size_t)n);
    return 0;
}

static int toy_write_params(void *ctx, uint32_t offset, const float *src, uint32_t n, int last)
{
    toy_t *t = (toy_t *)ctx;
    (void)last;
    memcpy(t->params + offset, src, 4u * (size_t)n);
    return 0;
}

static int toy_snapshot(void *ctx)
{
    toy_t *t = (toy_t *)ctx;
    memcpy(t->snapshot, t->params, sizeof(float) * t->n_params);
    t->snap_step = t->step;
    t->have_snap = 1;
    return 0;
}

static int toy_restore(void *ctx)
{
    toy_t *t = (toy_t *)ctx;
    if (!t->have_snap)
        return -1;
    memcpy(t->params, t->snapshot, sizeof(float) * t->n_params);
    t->step = t->snap_step;
    return 0;
}

static int toy_reset(void *ctx, mt_link_result_t *res)
{
    toy_t *t = (toy_t *)ctx;
    init_params(t);
    res->step = 0;
    return 0;
}

static void toy_stats(void *ctx, mt_link_app_stats_t *st)
{
    const toy_t *t = (const toy_t *)ctx;
    st->step = t->step;
    st->samples_trained = t->trained;
    st->nonfinite_skips = t->nonfinite;
    st->last_loss = t->last_loss;
    st->loss_avg = t->loss_avg;
    st->metric = 0.5f;
    st->last_step_instr = t->step ? 1000u : 0u;
    st->total_train_instr = t->total_instr;
    st->stack_used = 1234u;
}

static uint32_t clamp(uint32_t v, uint32_t hi)
{
    return v > hi ? hi : v;
}

void toy_init(toy_t *t, uint16_t c, uint16_t h, uint16_t w, uint32_t target_numel, int masked,
              uint32_t n_params, uint32_t val_slots)
{
    mt_link_app_t *a = &t->app;
    memset(a, 0, sizeof *a);
    t->log = NULL;
    t->n_params = clamp(n_params, TOY_MAX_PARAMS);
    t->have_snap = 0;
    init_params(t);
    a->ctx = t;
    a->info.model_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    a->info.plan = "toy: every parameter, p = p/2 + crc bit";
    a->info.board = "host";
    a->info.input_c = c;
    a->info.input_h = h;
    a->info.input_w = w;
    a->info.trainable_numel = t->n_params;
    a->info.arena_bytes = 4096;
    a->info.peak_ram_bytes = 65536;
    a->info.stack_bytes = 8192;
    a->info.cpu_hz = 25000000u;
    a->x = t->x;
    a->x_numel = clamp((uint32_t)c * h * w, TOY_MAX_X);
    a->target = t->target;
    a->target_numel = clamp(target_numel, TOY_MAX_T);
    a->mask = masked ? t->mask : NULL;
    a->y = t->y;
    a->y_numel = a->target_numel;
    a->val_slots = clamp(val_slots, TOY_MAX_VAL);
    a->val_x = t->val_x;
    a->val_target = t->val_target;
    a->val_mask = masked ? t->val_mask : NULL;
    memset(t->x, 0, sizeof t->x);
    memset(t->target, 0, sizeof t->target);
    memset(t->val_x, 0, sizeof t->val_x);
    memset(t->val_target, 0, sizeof t->val_target);
    a->train = toy_train;
    a->infer = toy_infer;
    a->eval = toy_eval;
    a->read_params = toy_read_params;
    a->write_params = toy_write_params;
    a->snapshot = toy_snapshot;
    a->restore = toy_restore;
    a->reset = toy_reset;
    a->stats = toy_stats;
}
