/* Elementwise kernels and optimizers on the cluster: the team's cores split the elements in multiples of
 * 8 (a byte of an activation mask) and call the portable kernel on their range, reading L2 in place.
 * Every element is computed by the same code as on one core, so the results are the same bits. */
#include "mt_cl_internal.h"

typedef enum {
    ACT_FW,
    ACT_MASK,
    ACT_BW_MASK,
    ACT_BW,
    ADD,
    COPY,
    ACCUMULATE,
    SCALE,
    SGD,
    MOMENTUM,
    ADAM
} op_t;

typedef struct {
    op_t op;
    mt_act_t fn;
    int32_t n, flag; /* flag: accumulate, or Adam's step */
    const void *in0;
    const float *in1;
    float *out0, *out1, *out2;
    float f0, f1, f2, f3, f4; /* alpha / lr, momentum / beta1, beta2, eps, weight decay */
} job_t;

static void worker(void *arg)
{
    const job_t *j = (const job_t *)arg;
    int32_t lo, hi;
    mt_cl_share(j->n, 8, &lo, &hi);
    const int32_t n = hi - lo;
    if (n <= 0) {
        return;
    }
    const float *x = (const float *)j->in0;
    switch (j->op) {
    case ACT_FW:
        mt_activation_fw_f32(j->fn, j->f0, n, x + lo, j->out0 + lo);
        break;
    case ACT_MASK:
        mt_activation_mask_f32(j->fn, n, x + lo, (uint8_t *)j->out0 + lo / 8);
        break;
    case ACT_BW_MASK:
        mt_activation_bw_mask_f32(j->fn, j->f0, n, (const uint8_t *)j->in0 + lo / 8, j->in1 + lo,
                                  j->out0 + lo, j->flag);
        break;
    case ACT_BW:
        mt_activation_bw_f32(j->fn, j->f0, n, x + lo, j->in1 + lo, j->out0 + lo, j->flag);
        break;
    case ADD:
        mt_add_fw_f32(n, x + lo, j->in1 + lo, j->out0 + lo);
        break;
    case COPY:
        mt_copy_f32(n, x + lo, j->out0 + lo);
        break;
    case ACCUMULATE:
        mt_accumulate_f32(n, x + lo, j->out0 + lo, j->flag);
        break;
    case SCALE:
        mt_scale_f32(n, j->out0 + lo, j->f0);
        break;
    case SGD:
        mt_sgd_f32(n, j->out0 + lo, x + lo, j->f0, j->f4);
        break;
    case MOMENTUM:
        mt_sgd_momentum_f32(n, j->out0 + lo, x + lo, j->out1 + lo, j->f0, j->f1, j->f4);
        break;
    case ADAM:
        mt_adam_f32(n, j->out0 + lo, x + lo, j->out1 + lo, j->out2 + lo, j->f0, j->f1, j->f2, j->f3, j->f4,
                    j->flag);
        break;
    }
}

static void task(void *arg)
{
    pi_cl_team_fork(MT_CL_CORES, worker, arg);
}

static void run(job_t *j)
{
    mt_cl_offload(task, j);
}

void mt_cl_activation_fw_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y)
{
    job_t j = {.op = ACT_FW, .fn = fn, .n = n, .in0 = x, .out0 = y, .f0 = alpha};
    run(&j);
}

void mt_cl_activation_mask_f32(mt_act_t fn, int32_t n, const float *y, uint8_t *mask)
{
    job_t j = {.op = ACT_MASK, .fn = fn, .n = n, .in0 = y, .out0 = (float *)(void *)mask};
    run(&j);
}

void mt_cl_activation_bw_mask_f32(mt_act_t fn, float alpha, int32_t n, const uint8_t *mask, const float *gy,
                                  float *gx, int32_t accumulate)
{
    job_t j = {.op = ACT_BW_MASK,
               .fn = fn,
               .n = n,
               .flag = accumulate,
               .in0 = mask,
               .in1 = gy,
               .out0 = gx,
               .f0 = alpha};
    run(&j);
}

void mt_cl_activation_bw_f32(mt_act_t fn, float alpha, int32_t n, const float *y, const float *gy, float *gx,
                             int32_t accumulate)
{
    job_t j = {
        .op = ACT_BW, .fn = fn, .n = n, .flag = accumulate, .in0 = y, .in1 = gy, .out0 = gx, .f0 = alpha};
    run(&j);
}

void mt_cl_add_fw_f32(int32_t n, const float *a, const float *b, float *y)
{
    job_t j = {.op = ADD, .n = n, .in0 = a, .in1 = b, .out0 = y};
    run(&j);
}

void mt_cl_copy_f32(int32_t n, const float *src, float *dst)
{
    job_t j = {.op = COPY, .n = n, .in0 = src, .out0 = dst};
    run(&j);
}

void mt_cl_accumulate_f32(int32_t n, const float *src, float *dst, int32_t accumulate)
{
    job_t j = {.op = ACCUMULATE, .n = n, .flag = accumulate, .in0 = src, .out0 = dst};
    run(&j);
}

void mt_cl_scale_f32(int32_t n, float *x, float s)
{
    job_t j = {.op = SCALE, .n = n, .out0 = x, .f0 = s};
    run(&j);
}

void mt_cl_sgd_f32(int32_t n, float *w, const float *g, float lr, float wd)
{
    job_t j = {.op = SGD, .n = n, .in0 = g, .out0 = w, .f0 = lr, .f4 = wd};
    run(&j);
}

void mt_cl_sgd_momentum_f32(int32_t n, float *w, const float *g, float *m, float lr, float momentum, float wd)
{
    job_t j = {.op = MOMENTUM, .n = n, .in0 = g, .out0 = w, .out1 = m, .f0 = lr, .f1 = momentum, .f4 = wd};
    run(&j);
}

void mt_cl_adam_f32(int32_t n, float *w, const float *g, float *m, float *v, float lr, float beta1,
                    float beta2, float eps, float wd, int32_t step)
{
    job_t j = {.op = ADAM,
               .n = n,
               .flag = step,
               .in0 = g,
               .out0 = w,
               .out1 = m,
               .out2 = v,
               .f0 = lr,
               .f1 = beta1,
               .f2 = beta2,
               .f3 = eps,
               .f4 = wd};
    run(&j);
}
