#!/usr/bin/env bash
# Starts a real pbxd and runs the calls, CDR, trunks and routes pages' browser test against
# it: a call between two extensions placed and answered by sipp (the scenarios of
# bench/sip), seen live on the dashboard and as a CDR afterwards. Screenshots go to OUT_DIR.
#   run_calls_test.sh PBXD OUT_DIR
# Exit 77 (skipped) when Chromium, node_modules or sipp is missing (lib.sh).
set -euo pipefail
pbxd=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
password="Br0wserAdmin"

source "$here/lib.sh"
command -v sipp >/dev/null || missing "sipp is not installed"

# sipp answers only MD5 digest challenges (the line lands in start_pbxd's [sip] table).
start_pbxd calls "digest_sha256 = false"
# The callee's sipp listens on a fixed port: it registers from it, then answers there.
callee_port=$(free_ports 1)

CHROMIUM="$chromium" SIP_PORT="$sip_port" CALLEE_PORT="$callee_port" WORK="$tmp" \
  SIPP_SCENARIOS="$here/../../bench/sip" node "$here/calls_test.mjs" \
  "https://127.0.0.1:$api_port" "$password" "$out"
