#!/usr/bin/env bash
# Fuzz the device side of the serial link (firmware/link) on the host, under ASan + UBSan.
#
#   tools/fuzz_link.sh [FRAMES] [SEED] [LIBFUZZER_SECONDS]     defaults: 1000000 1 60
#
# 1. the seeded random + bit-flip harness (tests/link/fuzz_parser.c) over FRAMES frames;
# 2. the regression corpus (tests/link/corpus/*.bin) replayed through every device configuration;
# 3. libFuzzer (clang -fsanitize=fuzzer; needs Debian's libclang-rt-14-dev) for LIBFUZZER_SECONDS,
#    seeded with the corpus, CRC checks compiled out (FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) so
#    that it reaches the dispatcher. New inputs go to a scratch folder; a crash leaves crash-* files
#    there: copy them to tests/link/corpus/ so the normal tests replay them.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${1:-1000000}
SEED=${2:-1}
SECONDS_LF=${3:-60}
OUT=${FUZZ_OUT:-build/fuzz_link}
mkdir -p "$OUT"
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
WARN=(-std=c99 -Wall -Wextra -Werror -Wshadow -Wdouble-promotion -Wstrict-prototypes)
SAN=(-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
SRC=(firmware/link/*.c tests/link/toy_app.c tests/link/fuzz_common.c)
INC=(-Ifirmware/link -Itests/link)

gcc "${WARN[@]}" "${SAN[@]}" "${INC[@]}" "${SRC[@]}" tests/link/fuzz_parser.c -o "$OUT/fuzz_parser"
echo "== seeded random + bit-flip fuzzing, $FRAMES frames, seed $SEED (ASan+UBSan)"
start=$(date +%s%N)
"$OUT/fuzz_parser" -n "$FRAMES" -s "$SEED"
echo "   wall $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo "== regression corpus"
"$OUT/fuzz_parser" tests/link/corpus/*.bin

if [ "$SECONDS_LF" -gt 0 ] && echo 'int LLVMFuzzerTestOneInput(const char*d,long n){(void)d;(void)n;return 0;}' |
    clang -x c -fsanitize=fuzzer - -o "$OUT/probe" 2>/dev/null; then
  clang "${WARN[@]}" -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION "${INC[@]}" "${SRC[@]}" tests/link/fuzz_libfuzzer.c \
    -o "$OUT/fuzz_libfuzzer"
  mkdir -p "$OUT/libfuzzer_corpus"
  cp tests/link/corpus/*.bin "$OUT/libfuzzer_corpus/"
  echo "== libFuzzer, $SECONDS_LF s"
  (cd "$OUT" && ./fuzz_libfuzzer -max_total_time="$SECONDS_LF" -max_len=8192 -print_final_stats=1 \
    libfuzzer_corpus 2>&1 | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss)|ERROR|SUMMARY" || true)
  if ls "$OUT"/crash-* >/dev/null 2>&1; then
    echo "libFuzzer found crashes: $(ls "$OUT"/crash-*)"
    exit 1
  fi
else
  echo "== libFuzzer skipped (no clang fuzzer runtime: apt-get install libclang-rt-14-dev)"
fi
echo "fuzz_link: OK"
