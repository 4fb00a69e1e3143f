#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and AddressSanitizer +
# UndefinedBehaviorSanitizer, checks formatting, and runs every test through ctest.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
deploy/format-check.sh
build=build/check
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DPBX_WERROR=ON \
  -DPBX_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure --timeout 300 -j"$(nproc)"
