# Shared by the run_*_test.sh scripts: the prerequisite checks, temp dirs and process
# cleanup, and start_pbxd. Source it after setting `pbxd`, `out` and `password`.
# Exit 77 (skipped) when Chromium or node_modules is missing on a dev machine; with CI=true
# that is a failure, because deploy/install-deps.sh --test provides both.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
web_dir=$(cd "$here/../../node/admin/web" && pwd)

missing() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: $1 (CI must have it: deploy/install-deps.sh --test)" >&2
    exit 1
  fi
  echo "SKIP: $1 (run deploy/install-deps.sh --test)"
  exit 77
}
chromium=${CHROMIUM:-$(command -v chromium || true)}
[[ -n "$chromium" && -x "$chromium" ]] || missing "chromium is not installed"
command -v node >/dev/null || missing "node is not installed"
[[ -f "$here/node_modules/playwright-core/package.json" ]] ||
  missing "tests/browser/node_modules is missing (npm ci)"

mkdir -p "$out"
rm -f "$out"/*.png
tmp=$(mktemp -d)
pids=()
# In reverse start order: nodes before the witness, which a node waits for while it stops.
cleanup() {
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_pbxd NAME EXTRA_TOML: starts pbxd with its own dirs (admin password `password`); sets
# api_port to its HTTPS port, sip_port to its SIP UDP port and pbxd_pid.
# (Not in a subshell, so that cleanup knows its pid.)
start_pbxd() {
  local name=$1 dir="$tmp/$1"
  mkdir -p "$dir"
  cat > "$dir/pbx.toml" <<TOML
[node]
name = "$name"
data_dir = "$dir/data"
run_dir = "$dir/run"
[api]
port = 0
web_dir = "$web_dir"
admin_password = "$password"
[sip]
listen = "127.0.0.1"
udp_port = 0
tcp_port = 0
tls_port = 0
$2
TOML
  "$pbxd" --config "$dir/pbx.toml" > "$out/pbxd-$name.log" 2>&1 &
  pids+=($!)
  pbxd_pid=$!
  for _ in $(seq 300); do
    [[ -f "$dir/run/ready.json" ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$out/pbxd-$name.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -f "$dir/run/ready.json" ]] || { cat "$out/pbxd-$name.log" >&2; echo "not ready" >&2; exit 1; }
  read -r api_port sip_port < <(node -e \
    'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));console.log(r.api, r.sip_udp)' \
    "$dir/run/ready.json")
}

# free_ports N: the first of N consecutive TCP ports on 127.0.0.1 that are free now, below
# the kernel's ephemeral range (32768-), so that no outgoing connection takes one meanwhile.
free_ports() {
  node -e '
    const net = require("net");
    const n = Number(process.argv[1]);
    const free = (p) => new Promise((ok) => {
      const s = net.createServer().once("error", () => ok(false)).listen(p, "127.0.0.1", () => s.close(() => ok(true)));
    });
    (async () => {
      for (;;) {
        const base = 26000 + Math.floor(Math.random() * 6000);
        let all = true;
        for (let i = 0; i < n && all; i++) all = await free(base + i);
        if (all) return console.log(base);
      }
    })();' "$1"
}
