/* add: y = a + b (y may alias a or b). */
#include "mt_internal.h"

void mt_add_fw_f32(int32_t n, const float *a, const float *b, float *y)
{
    for (int32_t i = 0; i < n; ++i) {
        y[i] = a[i] + b[i];
    }
}
