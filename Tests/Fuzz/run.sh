#!/usr/bin/env bash
# Builds the batch verifier's differential fuzzer (verifier_fuzz.c) with
# clang, libFuzzer, ASan and UBSan, and runs it.
#
#   Tests/Fuzz/run.sh            # 300 seconds
#   Tests/Fuzz/run.sh 3600 -jobs=2 -workers=2
#
# Extra arguments go to libFuzzer. The corpus is kept in
# ${MICROPAY_FUZZ_CORPUS:-/tmp/micropay-fuzz-corpus}; a failing input is
# written to the current directory as crash-*.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
seconds="${1:-300}"
shift || true
out="${TMPDIR:-/tmp}/micropay-verifier-fuzz"
corpus="${MICROPAY_FUZZ_CORPUS:-/tmp/micropay-fuzz-corpus}"
mkdir -p "$corpus"
clang -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/CEngine/include" -I"$root/CEngine/src" \
    "$here/verifier_fuzz.c" "$root"/CEngine/src/*.c \
    $(pkg-config --cflags --libs libsodium libcrypto) -o "$out"
"$out" -max_total_time="$seconds" -max_len=8192 "$@" "$corpus"
