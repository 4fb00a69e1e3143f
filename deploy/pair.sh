#!/usr/bin/env bash
# A whole pair plus witness on this machine over loopback, to watch a takeover:
#   deploy/pair.sh start     build, then start pbx-witness, pbx-a and pbx-b in the background
#   deploy/pair.sh status    pbxctl status on both nodes
#   deploy/pair.sh kill a    kill -9 node a (or b) and watch the other take over
#   deploy/pair.sh start     restarts whatever is not running
#   deploy/pair.sh stop      stops all three
# Data and logs live under .pbx/pair/.
set -euo pipefail
cd "$(dirname "$0")/.."
top=.pbx/pair
bin=build/release
pbxctl() { "$bin/node/cli/pbxctl" --run-dir "$top/$1/run" "${@:2}"; }
alive() { [[ -f "$top/$1.pid" ]] && kill -0 "$(cat "$top/$1.pid")" 2>/dev/null; }

start_one() {  # name, command...
  local name=$1
  shift
  if alive "$name"; then return; fi
  mkdir -p "$top/$name"
  "$@" >>"$top/$name.log" 2>&1 &
  echo $! >"$top/$name.pid"
  echo "started $name (pid $!, log $top/$name.log)"
}

case "${1:-}" in
  start)
    deploy/install-deps.sh
    cmake -S . -B "$bin" -DCMAKE_BUILD_TYPE=Release -DPBX_BUILD_TESTS=OFF >/dev/null
    cmake --build "$bin" -j"$(nproc)" --target pbxd pbxctl pbx-witness
    mkdir -p "$top"
    start_one witness "$bin/node/cluster/pbx-witness" --listen tcp://127.0.0.1:7500 \
      --max-lease-ms 5000 \
      --run-dir "$top/witness"
    start_one a "$bin/node/main/pbxd" --config deploy/examples/pair-a.toml
    sleep 1  # let a take the lease first, so the demo starts with a as active
    start_one b "$bin/node/main/pbxd" --config deploy/examples/pair-b.toml
    echo "first-boot passwords are in $top/a.log; now: deploy/pair.sh status"
    ;;
  status)
    for n in a b; do
      echo "== node $n"
      pbxctl "$n" status || true
    done
    ;;
  kill)
    n=${2:?which node: a or b}
    alive "$n" && kill -9 "$(cat "$top/$n.pid")" && echo "killed $n"
    ;;
  stop)
    for n in b a witness; do
      if alive "$n"; then kill "$(cat "$top/$n.pid")"; echo "stopped $n"; fi
      rm -f "$top/$n.pid"
    done
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
