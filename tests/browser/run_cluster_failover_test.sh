#!/usr/bin/env bash
# Starts a pair (two pbxd and pbx-witness on loopback, as tests/integration/pair_test.cc
# does) and runs the cluster page's failover test in headless Chromium against it:
#   run_cluster_failover_test.sh PBXD PBX_WITNESS OUT_DIR
# Exit 77 (skipped) when Chromium or node_modules is missing (lib.sh).
set -euo pipefail
pbxd=$1
witness=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
password="Fail0verAdmin"

source "$here/lib.sh"

# The nodes must know each other's ports before they start: a free block of five, the
# witness's and each node's listen port and heartbeat port (listen + 1).
base=$(free_ports 5)

"$witness" --listen "tcp://127.0.0.1:$base" --startup-hold-ms 0 --run-dir "$tmp/witness" \
  > "$out/witness.log" 2>&1 &
pids+=($!)

# cluster_toml LISTEN PEER
cluster_toml() {
  printf '[cluster]\nname = "browser"\nlisten = "127.0.0.1:%s"\npeer = "127.0.0.1:%s"\nwitness = "127.0.0.1:%s"\n' \
    "$1" "$2" "$base"
}
start_pbxd pbx-a "$(cluster_toml $((base + 1)) $((base + 3)))"
a="https://127.0.0.1:$api_port $pbxd_pid"
start_pbxd pbx-b "$(cluster_toml $((base + 3)) $((base + 1)))"
b="https://127.0.0.1:$api_port $pbxd_pid"

# shellcheck disable=SC2086 # each of $a and $b is a URL and a pid
CHROMIUM="$chromium" node "$here/cluster_failover_test.mjs" "$password" "$out" $a $b
