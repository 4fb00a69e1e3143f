#!/usr/bin/env bash
# Starts a real pbxd (single node, temp dirs, ports chosen by the kernel) and runs the web
# admin's browser test against it in headless Chromium. Screenshots go to OUT_DIR.
#   run_web_admin_test.sh PBXD OUT_DIR SIP_UA_TOOL
# Exit 77 (skipped) when Chromium or node_modules is missing (lib.sh).
set -euo pipefail
pbxd=$1
out=$2
ua_tool=$3
here=$(cd "$(dirname "$0")" && pwd)
password="Br0wserAdmin"

source "$here/lib.sh"

start_pbxd browser ""
port=$api_port
sip=$sip_port
# A pair node whose peer and witness never answer: it stays isolated and does not serve,
# so its pages are the read-only status page pointing to the VIP. Its replication port and
# the next one (the heartbeat's) are free.
free=$(free_ports 2)
start_pbxd lonely "[cluster]
listen = \"127.0.0.1:$free\"
peer = \"127.0.0.1:9\"
witness = \"127.0.0.1:9\"
vip = \"10.99.0.100/24\"
interface = \"lo\""
lonely=$api_port

CHROMIUM="$chromium" SIP_UA_TOOL="$ua_tool" SIP_PORT="$sip" node "$here/web_admin_test.mjs" \
  "https://127.0.0.1:$port" "$password" "$out" "https://127.0.0.1:$lonely"
# The isolated node does not stop on SIGTERM while its control thread is blocked sending to
# the unreachable witness (WitnessClient::Request has no send timeout; reported to the
# lead). It holds nothing worth a clean stop, so it is killed outright.
kill -KILL "${pids[1]}"
