/**
 * @file fuzz_libfuzzer.c
 * @brief libFuzzer target over fuzz_one_input(): byte 0 picks the frame buffer size and a sparse
 *        application, the rest is the byte stream fed to mt_link_service().
 *
 * clang -fsanitize=fuzzer,address,undefined (tools/fuzz_link.sh builds and runs it).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one_input(data, size);
    return 0;
}
