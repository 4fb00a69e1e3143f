#!/usr/bin/env bash
# Builds a libFuzzer target with clang++ and runs it for a bounded time over its seed
# corpus; non-zero on a crash, a sanitizer report or a broken property.
#   tests/fuzz/run_fuzzer.sh TARGET OUT_DIR [SECONDS]
# The main build is gcc, which has no libFuzzer, so this compiles the target's sources
# itself. Targets are the table below: a new fuzzer adds a line there and a corpus in
# corpus/TARGET/.
set -euo pipefail
target=${1:?target}
out=${2:?output dir}
seconds=${3:-25}
root=$(cd "$(dirname "$0")/../.." && pwd)

case "$target" in
  sdp) sources=(tests/fuzz/sdp_fuzzer.cc media/sdp/sdp.cc media/sdp/codecs.cc
                node/core/status.cc node/core/log.cc) ;;
  dial_pattern) sources=(tests/fuzz/dial_pattern_fuzzer.cc sip/routing/dial_pattern.cc
                         node/core/status.cc node/core/log.cc) ;;
  dial) sources=(tests/fuzz/dial_fuzzer.cc sip/calls/dial.cc sip/calls/feature_codes.cc
                 node/core/status.cc node/core/log.cc) ;;
  *) echo "run_fuzzer: unknown target '$target'" >&2; exit 2 ;;
esac

cxx=${CXX_FUZZ:-clang++}
mkdir -p "$out"
bin="$out/${target}_fuzzer"
# Rebuild only when a source is newer than the binary.
stale=0
[[ -x "$bin" ]] || stale=1
for s in "${sources[@]}" media/sdp/sdp.h media/sdp/codecs.h sip/routing/dial_pattern.h sip/calls/dial.h \
    sip/calls/feature_codes.h; do
  [[ "$root/$s" -nt "$bin" ]] && stale=1
done
if [[ $stale -eq 1 ]]; then
  (cd "$root" && "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=undefined -I "$root" "${sources[@]}" -lfmt -o "$bin")
fi

# New inputs go to a scratch corpus; the seeds in the repository stay as they are.
work="$out/${target}_corpus"
mkdir -p "$work"
dict=()
[[ -f "$root/tests/fuzz/$target.dict" ]] && dict=(-dict="$root/tests/fuzz/$target.dict")
exec "$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
  -print_final_stats=1 -artifact_prefix="$out/${target}_" \
  "$work" "$root/tests/fuzz/corpus/$target"
