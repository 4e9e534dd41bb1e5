/* Elementwise kernels for Cortex-M4F/M7/M55: SGD, ReLU forward and backward, 8 elements per step.
 *
 * A step loads 8 elements of each operand with one VLDM (or VLDMIA), works on them in s16-s31 and stores
 * them with one VSTMIA: per element the arithmetic alone (SGD: one VMLS.F32, the non-fused w - lr*g of
 * the portable kernel; ReLU: a compare with 0 and a conditional move). The tail (n mod 8) and everything
 * else run as the portable kernels do. Same operations, same order: the same floats. */
#include "mt_cortexm_internal.h"
#include "mt_cortexm_kernels.h"

#if MT_CM_ASM
/* op on the 8 element pairs (s16, s24) ... (s23, s31) */
#define MT_CM_EW8(op)                                                                                     \
    op("s16", "s24") op("s17", "s25") op("s18", "s26") op("s19", "s27") op("s20", "s28") op("s21", "s29") \
        op("s22", "s30") op("s23", "s31")
#define MT_CM_VMLS(d, s)    "vmls.f32 " d ", %[lr], " s "\n\t"
#define MT_CM_VMLA_WD(d, s) "vmla.f32 " s ", %[wd], " d "\n\t"
/* x < 0 (x >= 0 fails for NaN, which passes through): d = 0 */
#define MT_CM_RELU(d, s) "vcmpe.f32 " d ", #0\n\tvmrs APSR_nzcv, fpscr\n\tit mi\n\tvmovmi.f32 " d ", %[z]\n\t"
/* gradient d (gy) where the output s (y) > 0, else 0 */
#define MT_CM_RELU_BW(d, s) \
    "vcmpe.f32 " s ", #0\n\tvmrs APSR_nzcv, fpscr\n\tit le\n\tvmovle.f32 " d ", %[z]\n\t"
#define MT_CM_ADD(d, s) "vadd.f32 " d ", " s ", " d "\n\t"
#define MT_CM_EW_CLOB                                                                                        \
    "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", \
        "s31", "cc", "memory"
#endif

void mt_sgd_cortexm_f32(int32_t n, float *w, const float *g, float lr, float wd)
{
#if MT_CM_ASM
    const int32_t n8 = n / 8 * 8;
    float *p = w;
    const float *q = g;
    if (wd == 0.0f) { /* w -= lr * g */
        for (int32_t i = 0; i < n8; i += 8) {
            __asm__ volatile("vldm %[p], {s16-s23}\n\tvldmia %[q]!, {s24-s31}\n\t" MT_CM_EW8(
                                 MT_CM_VMLS) "vstmia %[p]!, {s16-s23}\n\t"
                             : [p] "+r"(p), [q] "+r"(q)
                             : [lr] "t"(lr)
                             : MT_CM_EW_CLOB);
        }
    } else { /* g' = g + wd * w, w -= lr * g' */
        for (int32_t i = 0; i < n8; i += 8) {
            __asm__ volatile("vldm %[p], {s16-s23}\n\tvldmia %[q]!, {s24-s31}\n\t" MT_CM_EW8(MT_CM_VMLA_WD)
                                 MT_CM_EW8(MT_CM_VMLS) "vstmia %[p]!, {s16-s23}\n\t"
                             : [p] "+r"(p), [q] "+r"(q)
                             : [lr] "t"(lr), [wd] "t"(wd)
                             : MT_CM_EW_CLOB);
        }
    }
    mt_sgd_f32(n - n8, p, q, lr, wd);
#else
    mt_sgd_f32(n, w, g, lr, wd);
#endif
}

void mt_activation_fw_cortexm_f32(mt_act_t fn, float alpha, int32_t n, const float *x, float *y)
{
#if MT_CM_ASM
    if (fn == MT_ACT_RELU) {
        const int32_t n8 = n / 8 * 8;
        for (int32_t i = 0; i < n8; i += 8) {
            __asm__ volatile("vldmia %[x]!, {s16-s23}\n\t" MT_CM_EW8(MT_CM_RELU) "vstmia %[y]!, {s16-s23}\n\t"
                             : [x] "+r"(x), [y] "+r"(y)
                             : [z] "t"(0.0f)
                             : MT_CM_EW_CLOB);
        }
        n -= n8;
    }
#endif
    mt_activation_fw_f32(fn, alpha, n, x, y);
}

void mt_activation_bw_cortexm_f32(mt_act_t fn, float alpha, int32_t n, const float *y, const float *gy,
                                  float *gx, int32_t accumulate)
{
#if MT_CM_ASM
    if (fn == MT_ACT_RELU) { /* s16.. = gy, s24.. = y */
        const int32_t n8 = n / 8 * 8;
        for (int32_t i = 0; i < n8; i += 8) {
            if (accumulate) { /* gx += (y > 0 ? gy : 0), gx in s24.. after the select */
                __asm__ volatile(
                    "vldmia %[gy]!, {s16-s23}\n\tvldmia %[y]!, {s24-s31}\n\t" MT_CM_EW8(
                        MT_CM_RELU_BW) "vldm %[gx], {s24-s31}\n\t" MT_CM_EW8(MT_CM_ADD) "vstmia %[gx]!, "
                                                                                        "{s16-s23}\n\t"
                    : [y] "+r"(y), [gy] "+r"(gy), [gx] "+r"(gx)
                    : [z] "t"(0.0f)
                    : MT_CM_EW_CLOB);
            } else {
                __asm__ volatile("vldmia %[gy]!, {s16-s23}\n\tvldmia %[y]!, {s24-s31}\n\t" MT_CM_EW8(
                                     MT_CM_RELU_BW) "vstmia %[gx]!, {s16-s23}\n\t"
                                 : [y] "+r"(y), [gy] "+r"(gy), [gx] "+r"(gx)
                                 : [z] "t"(0.0f)
                                 : MT_CM_EW_CLOB);
            }
        }
        n -= n8;
    }
#endif
    mt_activation_bw_f32(fn, alpha, n, y, gy, gx, accumulate);
}
