#!/usr/bin/env bash
# Starts a real pbxd (single node, temp dirs, ports chosen by the kernel) and runs the web
# admin's browser test against it in headless Chromium. Screenshots go to OUT_DIR.
#   run_web_admin_test.sh PBXD OUT_DIR SIP_UA_TOOL
# Exit 77 (skipped) when Chromium or node_modules is missing (lib.sh).
set -euo pipefail
# The whole test runs in a network namespace of its own: libre (baresip) will not take its
# address from `lo`, so the namespace gets a veth pair with 127.0.0.2/32 on one end for it,
# and every packet stays on 127.x inside the namespace.
if [[ -z "${PBX_BROWSER_NETNS:-}" ]]; then
  PBX_BROWSER_NETNS=1 exec unshare --net "$0" "$@"
fi
ip link set lo up
ip link add phone0 type veth peer name phone1
ip addr add 127.0.0.2/32 dev phone0
ip link set phone0 up
ip link set phone1 up
pbxd=$1
out=$2
ua_tool=$3
here=$(cd "$(dirname "$0")" && pwd)
password="Br0wserAdmin"

source "$here/lib.sh"
command -v baresip >/dev/null || missing "baresip is not installed"

# libre 1.x (baresip) refuses a 401 that offers SHA-256: digests are MD5 only here.
start_pbxd browser "digest_sha256 = false"
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

# baresip listens on a port and TLS on the next one.
BARESIP_PORT=$(free_ports 2) CHROMIUM="$chromium" SIP_UA_TOOL="$ua_tool" SIP_PORT="$sip" node "$here/web_admin_test.mjs" \
  "https://127.0.0.1:$port" "$password" "$out" "https://127.0.0.1:$lonely"
# The isolated node does not stop on SIGTERM while its control thread is blocked sending to
# the unreachable witness (WitnessClient::Request has no send timeout; reported to the
# lead). It holds nothing worth a clean stop, so it is killed outright.
kill -KILL "${pids[1]}"
