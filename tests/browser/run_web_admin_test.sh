#!/usr/bin/env bash
# Starts a real pbxd (single node, temp dirs, ports chosen by the kernel) and runs the web
# admin's browser test against it in headless Chromium. Screenshots go to OUT_DIR.
#   run_web_admin_test.sh PBXD OUT_DIR
# Exit 77 (skipped) when Chromium or node_modules is missing on a dev machine; with CI=true
# that is a failure, because deploy/install-deps.sh --test provides both.
set -euo pipefail
pbxd=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
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
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

password="Br0wserAdmin"
cat > "$tmp/pbx.toml" <<TOML
[node]
name = "browser"
data_dir = "$tmp/data"
run_dir = "$tmp/run"
[api]
port = 0
web_dir = "$web_dir"
admin_password = "$password"
TOML
"$pbxd" --config "$tmp/pbx.toml" > "$out/pbxd.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
  [[ -f "$tmp/run/ready.json" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/pbxd.log" >&2; echo "pbxd exited" >&2; exit 1; }
  sleep 0.1
done
[[ -f "$tmp/run/ready.json" ]] || { cat "$out/pbxd.log" >&2; echo "pbxd not ready" >&2; exit 1; }
port=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).api)' \
  "$tmp/run/ready.json")

CHROMIUM="$chromium" node "$here/web_admin_test.mjs" "https://127.0.0.1:$port" "$password" "$out"
