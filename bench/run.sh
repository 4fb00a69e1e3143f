#!/usr/bin/env bash
# Benchmarks that drive real processes with outside tools.
#   bench/run.sh sip [--users N] [--seconds S] [--rates "R1 R2 ..."] [--call-rates "R1 ..."]
#                    [--concurrent "N1 N2 ..."] [--plays P] [--media-rate R] [--callers K]
#                    [--realtime P] [--media-source sipp|generator]
#                    [--only single|pair|kamailio|calls|media]
#     REGISTER with digest auth from sipp (bench/sip/reg_auth.xml, credentials from an
#     injection file) against one pbxd, a pbxd pair (active + standby + witness, bindings
#     committed kReplicated) and Kamailio (bench/sip/kamailio.cfg, auth_db over db_text).
#     Each target gets a rate sweep; a rate is clean when every registration succeeded with
#     no retransmission and the achieved rate is within 5 % of the offered one. Prints the
#     peak clean rate (registrations/s; each is two transactions: 401, then 200), its ratio
#     to Kamailio, and the response time (REGISTER sent -> 200 received, both round trips) at
#     half the peak. Installs sip-tester and kamailio if missing; builds build/release.
#     calls: extension-to-extension calls through one pbxd (bench/sip/call_uac.xml: INVITE
#     with digest auth, 200, ACK, 100 ms, BYE) to a sipp callee (call_uas.xml); peak clean
#     calls/s and the INVITE-to-200 time at half of it. Kamailio relays no media and is no
#     B2BUA, so calls have no Kamailio column.
#     media (only with --only media): N concurrent calls carrying G.711 both ways through
#     the relay of one pbxd. Caller and callee (call_uac.xml, call_uas.xml with
#     sip/play_g711a.xml repeated P times after the ACK) each play sip-tester's g711a.pcap
#     (236 packets, 7.05 s) P times; calls start at R/s. Loss = 1 - packets the relay
#     forwarded (GET /api/v1/calls, before and after) / packets played (calls x P x 236 x
#     2), and / packets that reached the relay's ports (an nftables counter in the run's
#     network namespace); also the relay's dropped count and pbxd's CPU while all N calls
#     were up. A step is valid when no call failed. Runs in a network namespace of its
#     own (unshare, nftables). --callers K: the calls split over K caller sipp processes,
#     each calling its own callee sipp process (one extension each).
#     --realtime P: pbxd's [node] realtime_priority and the sipp processes under SCHED_RR
#     priority P (chrt), ahead of whatever else the machine runs.
#     --media-source generator: sipp sets the calls up and holds them without playing;
#     the RTP comes from pbx_media_bench --relay-ports (20 ms G.711 both ways, sendmmsg)
#     sent to the relay ports pbxd gives in GET /api/v1/calls, for --seconds S once every
#     call is up; loss and delay counted per packet by the generator. sipp's pcap plays
#     cost it ~30 us a packet and take a core near 500 calls on this 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin=${PBX_BENCH_BUILD:-build/release}

usage() { sed -n '2,23p' "$0"; exit 2; }
[[ "${1:-}" == "sip" ]] || usage
shift
args=("$@")
users=1000
seconds=8
rates="500 1000 1500 2000 3000 4000 5000 6000 8000 10000 12000"
call_rates="50 100 200 300 400 500 600 800 1000"
concurrent="250 500 750 1000"
plays=3
media_rate=100
realtime=0
callers=1
media_source=sipp
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --call-rates) call_rates=$2; shift 2 ;;
    --concurrent) concurrent=$2; shift 2 ;;
    --plays) plays=$2; shift 2 ;;
    --media-rate) media_rate=$2; shift 2 ;;
    --realtime) realtime=$2; shift 2 ;;
    --callers) callers=$2; shift 2 ;;
    --media-source) media_source=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) usage ;;
  esac
done

need() {  # command, package
  command -v "$1" >/dev/null && return
  echo "bench: installing $2"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2"
}
need sipp sip-tester
[[ "$media_source" == generator ]] && plays=0  # sipp only signals; the generator plays
if [[ "$only" == media ]]; then
  # One caller per call, plus one callee extension per caller process.
  for n in $concurrent; do ((users = users > n + callers ? users : n + callers)); done
  # sipp 3.6 plays a pcap through a raw UDP socket per play, bound to its media address
  # and without a filter, so the kernel hands each such socket a copy of every UDP packet
  # to that address: with N calls, 2N sockets take copies of 67N packets/s. So the run
  # has a network namespace of its own in which what arrives for sipp's media addresses
  # (127.0.0.2 caller, 127.0.0.3 callee; pbxd and SIP stay on 127.0.0.1) is dropped at
  # prerouting, before any socket. Two counters there say what reached the relay's ports
  # (to_relay) and what the relay sent on (from_relay).
  need nft nftables
  if [[ -z "${PBX_BENCH_NETNS:-}" ]]; then
    exec env PBX_BENCH_NETNS=1 unshare --net -- "$0" sip "${args[@]}"
  fi
  ip link set lo up
  nft -f - <<'EOF'
table ip bench {
  counter to_relay {}
  counter from_relay {}
  chain prerouting {
    type filter hook prerouting priority raw; policy accept;
    ip daddr 127.0.0.1 udp dport 10000-20001 counter name "to_relay"
    ip daddr 127.0.0.2/31 meta l4proto udp counter name "from_relay" drop
    ip daddr 127.0.0.2/31 drop
  }
}
EOF
fi
need kamailio kamailio
need curl curl

if [[ "$only" != kamailio && "${PBX_BENCH_NO_BUILD:-}" != 1 ]]; then
  cmake -S . -B "$bin" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPBX_BUILD_TESTS=OFF >/dev/null
  cmake --build "$bin" --target pbxd pbxctl pbx-witness pbx_media_bench >/dev/null
fi

work=$(mktemp -d /tmp/pbx-bench-sip.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f "$work/kam/kam.pid" ]] && kill "$(cat "$work/kam/kam.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  [[ -n "${PBX_BENCH_KEEP:-}" ]] && echo "bench: kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# Extensions 20001.. as sipp's injection file (number;password;credentials: sipp does not
# expand [fieldN] inside [authentication], so the whole keyword is a field). The API refuses
# a password that contains the number, so the password spells its digits as letters (and
# has a digit of its own).
{
  echo SEQUENTIAL
  for ((i = 20001; i < 20001 + users; i++)); do
    pw="Bench7-pw-$(tr 0-9 a-j <<<"$i")"
    echo "$i;$pw;[authentication username=$i password=$pw]"
  done
} >"$work/users.csv"

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# Creates every extension of users.csv through the REST API of the node with `run_dir`,
# on one keep-alive connection (curl --next).
provision() {
  local run_dir=$1 port token
  port=$(json_field "$run_dir/ready.json" api)
  token=$(cat "$run_dir/admin.token")
  tail -n +2 "$work/users.csv" | while IFS=';' read -r n pw _; do
    [[ $n == 20001 ]] || echo next
    printf 'url = "https://127.0.0.1:%s/api/v1/extensions"\n' "$port"
    printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$token"
    # No keep-alive OPTIONS (qualify_interval 0): Kamailio sends none either.
    printf 'data = "{\\"number\\":\\"%s\\",\\"name\\":\\"Bench\\",\\"password\\":\\"%s\\",\\"qualify_interval\\":0}"\n' "$n" "$pw"
    # Each transfer after `next` starts with default options.
    printf 'insecure\nsilent\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
  done >"$work/curl.cfg"
  local codes
  codes=$(curl -sk -K "$work/curl.cfg" | sort | uniq -c)
  [[ $(wc -l <<<"$codes") == 1 && "$codes" == *" 201" ]] ||
    { echo "bench: creating extensions gave HTTP $codes" >&2; exit 1; }
}

wait_file() {  # path, seconds
  for ((i = 0; i < $2 * 10; i++)); do [[ -e "$1" ]] && return 0; sleep 0.1; done
  echo "bench: $1 did not appear" >&2
  exit 1
}

# pbxd challenges with MD5 alone, as Kamailio does: sipp 3.6 knows no SHA-256 and gives up
# on a 401 whose first challenge is one.
start_pbxd() {  # name, sip port, extra config (after the [node] table: $node_extra)
  local d="$work/$1"
  mkdir -p "$d"
  cat >"$d/pbx.toml" <<EOF
[node]
name = "$1"
data_dir = "$d/data"
run_dir = "$d/run"
${node_extra:-}
[api]
port = 0
[sip]
listen = "127.0.0.1"
udp_port = $2
tcp_port = $2
tls_port = $(($2 + 1))
digest_sha256 = false
[demo]
extensions = false
$3
EOF
  "$bin/node/main/pbxd" --config "$d/pbx.toml" >"$d/log" 2>&1 &
  pids+=($!)
}

# One sipp run at `rate` for `seconds`; prints "offered achieved ok failed retrans p50 p99".
# The scenario, injection file and extra arguments are $scenario, $inf and $sipp_extra.
scenario=reg_auth.xml
inf=users.csv
sipp_extra=()
run_sipp() {  # port, rate, tag
  local port=$1 rate=$2 tag=$3 m d
  m=$(($2 * seconds))
  d="$work/sipp-$tag-$rate"
  mkdir -p "$d"
  (cd "$d" && sipp "127.0.0.1:$port" -sf "$repo/bench/sip/$scenario" -inf "$work/$inf" \
    "${sipp_extra[@]}" -i 127.0.0.1 -p 25090 -r "$rate" -m "$m" -l $((rate * 4)) -recv_timeout 4000 \
    -timeout $((seconds * 3 + 10))s -nostdin -trace_stat -stf stat.csv -trace_rtt \
    -rtt_freq 500 >out.log 2>&1) || true
  python3 - "$d" "$rate" <<'EOF'
import csv, glob, statistics, sys
d, rate = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(d + "/stat.csv"), delimiter=";"))
last = rows[-1]
ok, failed = int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
retrans = int(last["Retransmissions(C)"])
rtts = []
for f in glob.glob(d + "/*_rtt.csv"):
    for r in csv.reader(open(f), delimiter=";"):
        try: rtts.append(float(r[1]))
        except (ValueError, IndexError): pass
rtts.sort()
p = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] if rtts else float("nan")
# sipp's own clock: the first call started to the end of the last one (times are
# "date<TAB>time<TAB>epoch").
elapsed = float(last["CurrentTime"].split("\t")[-1]) - float(last["StartTime"].split("\t")[-1])
achieved = ok / max(elapsed, 1e-9)
print(rate, round(achieved), ok, failed, retrans, round(p(0.5), 2), round(p(0.99), 2))
EOF
}

# Sweeps `rates` (or $3); prints each run to stderr, then "peak p50 p99" (at half the peak).
sweep() {  # port, tag[, rates]
  local peak=0 line
  for r in ${3:-$rates}; do
    line=$(run_sipp "$1" "$r" "$2")
    echo "  $2 $line" >&2
    read -r _ achieved ok failed retrans _ _ <<<"$line"
    if [[ $failed == 0 && $retrans == 0 && $((achieved * 100)) -ge $((r * 95)) ]]; then
      peak=$r
    else
      break
    fi
  done
  [[ $peak == 0 ]] && { echo "0 - -"; return; }
  line=$(run_sipp "$1" $((peak / 2)) "$2-half")
  echo "  $2 half: $line" >&2
  read -r _ _ _ _ _ p50 p99 <<<"$line"
  echo "$peak $p50 $p99"
}

declare -A result
media_lines=()
if [[ -z "$only" || "$only" == single ]]; then
  start_pbxd single 25060 ""
  wait_file "$work/single/run/ready.json" 30
  wait_file "$work/single/run/admin.token" 30
  provision "$work/single/run"
  result[single]=$(sweep 25060 single)
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
fi

if [[ -z "$only" || "$only" == pair ]]; then
  "$bin/node/cluster/pbx-witness" --listen tcp://127.0.0.1:25500 --max-lease-ms 5000 \
    --run-dir "$work/witness" >"$work/witness.log" 2>&1 &
  pids+=($!)
  cluster() {  # name, own port, peer port
    printf '[cluster]\nname = "bench-pair"\nlisten = "127.0.0.1:%s"\npeer = "127.0.0.1:%s"\nwitness = "127.0.0.1:25500"\n' "$2" "$3"
  }
  start_pbxd pa 25160 "$(cluster pa 25401 25411)"
  sleep 1  # pa takes the lease first
  start_pbxd pb 25170 "$(cluster pb 25411 25401)"
  wait_file "$work/pa/run/ready.json" 30
  wait_file "$work/pb/run/ready.json" 30
  role() {
    "$bin/node/cli/pbxctl" --run-dir "$work/$1/run" status --json 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["role"])' 2>/dev/null || true
  }
  for ((i = 0; i < 300; i++)); do
    [[ -f "$work/pa/run/admin.token" && $(role pa) == active && $(role pb) == standby ]] && break
    sleep 0.1
  done
  [[ $(role pa) == active && $(role pb) == standby ]] || { echo "bench: pair not ready" >&2; exit 1; }
  provision "$work/pa/run"
  result[pair]=$(sweep 25160 pair)
fi

if [[ -z "$only" || "$only" == kamailio ]]; then
  k="$work/kam"
  mkdir -p "$k/db"
  cp /usr/share/kamailio/dbtext/kamailio/version "$k/db/version"
  {
    echo "id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null) "
    tail -n +2 "$work/users.csv" | while IFS=';' read -r n pw _; do echo "$n:$n:pbx:$pw::"; done
  } >"$k/db/subscriber"
  sed -e "s|@PORT@|25260|" -e "s|@DB@|$k/db|" -e "s|@CTL@|$k/ctl|" \
    -e "s|@CHILDREN@|${KAMAILIO_CHILDREN:-4}|" bench/sip/kamailio.cfg >"$k/kamailio.cfg"
  kamailio -f "$k/kamailio.cfg" -P "$k/kam.pid" -m 256 -M 32 >"$k/log" 2>&1
  wait_file "$k/kam.pid" 10
  sleep 1
  result[kamailio]=$(sweep 25260 kamailio)
fi

if [[ -z "$only" || "$only" == calls ]]; then
  start_pbxd calls 25360 ""
  wait_file "$work/calls/run/ready.json" 30
  wait_file "$work/calls/run/admin.token" 30
  provision "$work/calls/run"
  # The callee, extension 20001, registers from the port its sipp UAS then listens on.
  head -2 "$work/users.csv" >"$work/callee.csv"
  (cd "$work" && sipp 127.0.0.1:25360 -sf "$repo/bench/sip/reg_auth.xml" -inf "$work/callee.csv" \
    -i 127.0.0.1 -p 25395 -m 1 -nostdin -timeout 10s >"$work/callee-reg.log" 2>&1) ||
    { echo "bench: the callee did not register" >&2; exit 1; }
  (cd "$work" && exec sipp 127.0.0.1:25360 -sf "$repo/bench/sip/call_uas.xml" -i 127.0.0.1 \
    -p 25395 -mp 26000 -nostdin >"$work/uas.log" 2>&1) &
  pids+=($!)
  { echo SEQUENTIAL; tail -n +3 "$work/users.csv"; } >"$work/callers.csv"
  scenario=call_uac.xml inf=callers.csv sipp_extra=(-s 20001 -d 100)
  result[calls]=$(sweep 25360 calls "$call_rates")
fi

# Concurrent calls with RTP both ways through one pbxd's relay.
if [[ "$only" == media ]]; then
  node_extra="realtime_priority = $realtime" start_pbxd media 25460 ""
  media_pid=${pids[-1]}
  wait_file "$work/media/run/ready.json" 30
  wait_file "$work/media/run/admin.token" 30
  provision "$work/media/run"
  api_port=$(json_field "$work/media/run/ready.json" api)
  api_token=$(cat "$work/media/run/admin.token")
  # "packets dropped relays" of the relay (GET /api/v1/calls).
  relay_counters() {
    curl -sk -H "Authorization: Bearer $api_token" "https://127.0.0.1:$api_port/api/v1/calls" |
      python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["relay"]["packets"], r["relay"]["dropped"], r["relays"])'
  }
  # Packets through the namespace's counter `name` so far.
  nft_packets() { nft list counter ip bench "$1" | grep -o 'packets [0-9]*' | cut -d' ' -f2; }
  cpu_ticks() { awk '{print $14 + $15}' "/proc/$media_pid/stat"; }
  # The scenarios with the plays put in at their "media:" comment.
  with_media() {  # scenario file, output file
    python3 - "$repo/bench/sip/$1" "$repo/bench/sip/play_g711a.xml" "$plays" >"$work/$2" <<'EOF'
import sys
scenario, fragment, plays = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
marker = scenario.index("<!-- media:")
end = scenario.index("-->", marker) + 3
print(scenario[:marker] + fragment * plays + scenario[end:], end="")
EOF
  }
  with_media call_uac.xml media_uac.xml
  with_media call_uas.xml media_uas.xml
  # Caller process k of K calls its own callee process, extension 20001 + k, which
  # registers from the SIP port its sipp UAS then answers on, 25500 + 2k. The callers take
  # every K-th extension after the callees'. Media ports: 26000 + 4k for caller k, 27000 +
  # 4k for callee k (sipp also binds the port 2 above for video). One callee sipp answering
  # every call falls behind near 500 calls (its plays alone take most of a core).
  for ((k = 0; k < callers; k++)); do
    { echo SEQUENTIAL; sed -n "$((k + 2))p" "$work/users.csv"; } >"$work/callee-$k.csv"
    (cd "$work" && sipp 127.0.0.1:25460 -sf "$repo/bench/sip/reg_auth.xml" \
      -inf "$work/callee-$k.csv" -i 127.0.0.1 -p $((25500 + 2 * k)) -m 1 -nostdin -timeout 10s \
      >"$work/callee-reg-$k.log" 2>&1) ||
      { echo "bench: callee $k did not register" >&2; exit 1; }
    { echo SEQUENTIAL; tail -n +$((callers + 2)) "$work/users.csv" |
      awk -v k=$k -v K="$callers" 'NR % K == k'; } >"$work/callers-$k.csv"
  done
  rt=()
  ((realtime > 0)) && rt=(chrt -r "$realtime")
  hold_ms=$((plays * 7100))
  caller_pause_ms=3000
  # GET /api/v1/calls: the relay ports of every call, "A_PORT B_PORT" a line.
  relay_ports() {
    curl -sk -H "Authorization: Bearer $api_token" "https://127.0.0.1:$api_port/api/v1/calls" |
      python3 -c 'import json,sys
for c in json.load(sys.stdin)["calls"]:
    if c.get("rtp_ports") and all(c["rtp_ports"]): print(*c["rtp_ports"])'
  }
  for n in $concurrent; do
    if [[ "$media_source" == generator ]]; then
      # Held through the ramp, the wait for every call and the generator's run.
      caller_pause_ms=$(((n / media_rate + 20 + seconds) * 1000))
    fi
    d="$work/media-$n"
    mkdir -p "$d"
    read -r p0 dr0 _ <<<"$(relay_counters)"
    in0=$(nft_packets to_relay) out0=$(nft_packets from_relay)
    limit=$(((hold_ms + caller_pause_ms) / 1000 + n / media_rate + 60))
    # The callees answer the calls; each caller ends each call 3 s after its last play
    # (the callee's plays start one ACK later and must be over before the BYE).
    uas_pids=()
    for ((k = 0; k < callers; k++)); do
      m=$(((n + k) / callers))  # the K shares add up to n
      (cd "$d" && exec "${rt[@]}" sipp 127.0.0.1:25460 -sf "$work/media_uas.xml" -i 127.0.0.1 \
        -p $((25500 + 2 * k)) -mi 127.0.0.3 -mp $((27000 + 4 * k)) -m "$m" -nostdin \
        -timeout "${limit}s" -trace_stat -stf "uas-$k.csv" >"uas-$k.log" 2>&1) &
      uas_pids+=($!)
    done
    sleep 0.5
    uac_pids=()
    for ((k = 0; k < callers; k++)); do
      m=$(((n + k) / callers))
      (cd "$d" && exec "${rt[@]}" sipp 127.0.0.1:25460 -sf "$work/media_uac.xml" \
        -inf "$work/callers-$k.csv" -s $((20001 + k)) -d "$caller_pause_ms" -i 127.0.0.1 -p $((25090 + k)) \
        -mi 127.0.0.2 -mp $((26000 + 4 * k)) -r "$(python3 -c "print($media_rate / $callers)")" \
        -l "$m" -m "$m" -recv_timeout 10000 -timeout "${limit}s" -nostdin -trace_stat \
        -stf "uac-$k.csv" >"uac-$k.log" 2>&1) &
      uac_pids+=($!)
    done
    # pbxd's CPU while all n calls are up: from 1 s after the last call started until
    # about 1 s before the first one ends.
    ramp_ms=$((n * 1000 / media_rate + 1000))
    window_s=$(((hold_ms - 2000) / 1000))
    cpu=- up=- gen=""
    if [[ "$media_source" == generator ]]; then
      deadline=$((SECONDS + n / media_rate + 20))
      while (($(relay_ports | wc -l) < n && SECONDS < deadline)); do sleep 0.5; done
      relay_ports >"$d/ports.txt"
      up=$(wc -l <"$d/ports.txt")
      t0=$(cpu_ticks)
      "$bin/bench/pbx_media_bench" --relay-ports "$d/ports.txt" --seconds "$seconds" \
        >"$d/generator.log" 2>&1 || true
      t1=$(cpu_ticks)
      cpu=$(((t1 - t0) * 100 / $(getconf CLK_TCK) / seconds))
      # calls pkt/s sent loss% dropped relayCPU CPU/call us/pkt p50 p99 late [not valid...]
      gen=$(awk '$1 ~ /^[0-9]+$/ && NF >= 11' "$d/generator.log" | tail -1)
    elif ((window_s >= 1)); then
      sleep "$((ramp_ms / 1000)).$(printf %03d $((ramp_ms % 1000)))"
      t0=$(cpu_ticks)
      read -r _ _ up <<<"$(relay_counters)"
      sleep "$window_s"
      t1=$(cpu_ticks)
      cpu=$(((t1 - t0) * 100 / $(getconf CLK_TCK) / window_s))
    fi
    for p in "${uac_pids[@]}"; do wait "$p" || true; done
    # A callee waits for its m calls; after failed ones it would wait for ever.
    sleep 3
    for p in "${uas_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${uas_pids[@]}"; do wait "$p" || true; done
    sleep 0.5  # the last packets through the relay
    read -r p1 dr1 _ <<<"$(relay_counters)"
    in1=$(nft_packets to_relay) out1=$(nft_packets from_relay)
    line=$(python3 - "$d" "$n" "$plays" $((p1 - p0)) $((dr1 - dr0)) $((in1 - in0)) \
      $((out1 - out0)) "$cpu" "$up" "$gen" <<'EOF'
import csv, glob, sys
d, n, plays, relayed, dropped, arrived, out, cpu, up, gen = sys.argv[1:]
relayed, arrived = int(relayed), int(arrived)
def last(f):
    return list(csv.DictReader(open(f), delimiter=";"))[-1]
uacs, uass = [[last(f) for f in glob.glob(f"{d}/{kind}-*.csv")] for kind in ("uac", "uas")]
ok = sum(int(u["SuccessfulCall(C)"]) for u in uacs)
failed = sum(int(u["FailedCall(C)"]) for u in uacs + uass)
played = ok * int(plays) * 236 * 2  # what the plays hold
pct = lambda a, b: f"{100.0 * (1 - a / b):.3f}" if b else "nan"
if gen or plays == "0":
    # The generator's own count, per packet: sent, and received back through the relay.
    g = gen.split()
    if len(g) < 11:
        print(n, up, ok, failed, "-", "-", relayed, dropped, "no-generator-output", "-", "-", "-", cpu)
        sys.exit()
    sent = int(g[2])
    received = round(sent * (1 - float(g[3]) / 100))
    valid = "yes" if len(g) == 11 and failed == 0 and int(up) == int(n) else "no"
    print(n, up, ok, failed, sent, received, relayed, dropped, g[3], g[8], g[9], g[10], cpu, valid)
    sys.exit()
# Loss: of what sipp played, and of what reached the relay (sipp's own shortfall apart).
print(n, up, ok, failed, played, arrived, relayed, out, dropped, pct(relayed, played),
      pct(relayed, arrived), cpu)
EOF
)
    echo "  media $line" >&2
    media_lines+=("$line")
  done
fi

kpeak=$(cut -d' ' -f1 <<<"${result[kamailio]:-0 - -}")
if [[ -n "${result[single]:-}${result[pair]:-}${result[kamailio]:-}" ]]; then
  echo
  echo "| target | peak clean REGISTER/s | ratio to Kamailio | p50 / p99 ms at half peak |"
  echo "| --- | --- | --- | --- |"
fi
for t in single pair kamailio; do
  [[ -n "${result[$t]:-}" ]] || continue
  read -r peak p50 p99 <<<"${result[$t]}"
  ratio=$([[ $kpeak -gt 0 ]] && python3 -c "print(f'{$peak / $kpeak:.2f}')" || echo -)
  echo "| $t | $peak | $ratio | $p50 / $p99 |"
done
if [[ -n "${result[calls]:-}" ]]; then
  read -r peak p50 p99 <<<"${result[calls]}"
  echo
  echo "| target | peak clean calls/s (auth, 200, ACK, BYE) | INVITE-to-200 p50 / p99 ms at half peak |"
  echo "| --- | --- | --- |"
  echo "| pbxd single | $peak | $p50 / $p99 |"
fi
if [[ ${#media_lines[@]} -gt 0 && "$media_source" == generator ]]; then
  echo
  echo "| calls | relays up | calls ok (sipp) | failed (sipp) | packets sent | received back | relayed (API) | relay dropped | loss % | delay p50 µs | p99 µs | generator late ms | pbxd CPU % | valid |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for l in "${media_lines[@]}"; do echo "| ${l// / | } |"; done
elif [[ ${#media_lines[@]} -gt 0 ]]; then
  echo
  echo "| calls | relays up | calls ok | failed | packets played | reached relay | relayed (API) | relayed (nft) | relay dropped | loss % of played | loss % of reached | pbxd CPU % (all up) |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for l in "${media_lines[@]}"; do echo "| ${l// / | } |"; done
fi
