#!/usr/bin/env bash
# Builds a Release pbxd and runs it in the foreground on the embedded default: one node,
# data under ./.pbx, demo extensions 1001-1005, the REST API on https://127.0.0.1:8443.
# Ctrl-C stops it. Extra arguments go to pbxd (e.g. --config deploy/examples/node-a.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DPBX_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target pbxd pbxctl
echo "pbxd starting; in another shell: build/release/node/cli/pbxctl status"
exec build/release/node/main/pbxd "$@"
