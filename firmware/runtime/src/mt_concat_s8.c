/* concat int8 forward (CONCATENATION): each input copied into its channel slice of the output, or
 * requantized through a 256-entry table when its quantization differs from the output's. */
#include "mt_s8_internal.h"

void mt_concat_fw_s8(const int8_t *lut, int32_t n, const int8_t *x, int8_t *y)
{
    if (lut) {
        for (int32_t i = 0; i < n; ++i) {
            y[i] = lut[(int32_t)x[i] + 128];
        }
    } else {
        for (int32_t i = 0; i < n; ++i) {
            y[i] = x[i];
        }
    }
}
