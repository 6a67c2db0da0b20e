#!/usr/bin/env bash
# Long, lossy path benchmark (prints numbers; not a test). One file from
# namespace a to namespace b of the network lab's `lan` topology across a
# shaped link: a rate (tbf at both ends of the lab's delay box, a drop-tail
# queue of BENCH_QUEUE_MS at that rate), a one-way delay and random loss each
# way (Tests/lab/delayline.py). Per loss rate, each tool in turn:
#   tern-bbr, tern-loss-tolerant, tern-rfc9260  tern with each SCTP congestion
#                  controller (TERN_SCTP_CONGESTION_CONTROL), `tern relay` in r;
#   wormhole-bbr, wormhole-cubic  magic-wormhole (venv of bench-transfer.sh)
#                  over TCP with that congestion control, its relays in r;
#   iperf3-bbr, iperf3-cubic  iperf3 a -> b, the reference for TCP.
# For each: goodput end to end (receiver start to exit) and, for tern, from
# its `done` event (MB = 10^6 bytes); the median and 90th percentile round
# trip of pings a -> b every 100 ms while it ran (the queue it built). Then
# fairness on the lossless link: two tern transfers, then one tern transfer
# and one iperf3 flow (CUBIC, then BBR), each pair started together: each
# flow's share of the bytes over BENCH_FAIR_SECONDS in which both ran.
# One JSON line per run on stdout; a table at the end on stderr.
#
#   sudo scripts/bench-lossy.sh
#
# Environment:
#   BENCH_BYTES        file size (default 268435456 = 256 MiB)
#   BENCH_SLOW_BYTES   file size for loss-based senders where they move a
#                      few hundred KB/s: tern-rfc9260 and wormhole-cubic from
#                      1% loss, tern-loss-tolerant from 2% (default 16 MiB)
#   BENCH_IPERF_SECONDS  how long each iperf3 run sends (default 20)
#   BENCH_LOSSES       loss rates in percent each way (default "0 1 2 3 5 10";
#                      none: only the fairness runs)
#   BENCH_RATE_MBIT    bottleneck rate (default 100)
#   BENCH_DELAY_MS     one-way delay (default 25: a 50 ms round trip)
#   BENCH_QUEUE_MS     drop-tail queue at the bottleneck (default 100)
#   BENCH_BOTTLENECK   tbf (default): the rate is a tbf on the delay box's
#                      egress veths; line: the delay line's own rate and
#                      queue (lab.sh shape --queue), cheaper at 1 Gbit/s
#                      (a tbf's timers cost the line's core in a VM)
#   BENCH_ECN_MS       if set: the delay line is the bottleneck (as with
#                      BENCH_BOTTLENECK=line) and marks ECT packets CE past
#                      this many ms of queueing (lab.sh shape --ecn); TCP
#                      in the namespaces negotiates ECN (tcp_ecn=1)
#   BENCH_TOOLS        which of the tools above (default all)
#   BENCH_FAIR_SECONDS seconds of each fairness run (default 60; 0: none)
#   BENCH_FAIR_RUNS    which (default "tern-tern tern-cubic tern-bbr": two
#                      tern transfers; tern and iperf3 CUBIC; tern and BBR;
#                      also cubic-tern and bbr-tern: the same with the TCP
#                      flow started first; bbr-cubic: iperf3 BBR beside
#                      iperf3 CUBIC, what the kernel's BBR gets on the same
#                      link, for reference)
#   BENCH_FAIR_ROUNDS  how many times each (default 1)
#   BENCH_FAIR_WARMUP  seconds after both flows carry data before the window
#                      (default 5)
#   BENCH_TIMEOUT      seconds a receiver may take (default 300)
#   BENCH_FIFO=1       run the transfer tools' processes (tern's, wormhole's,
#                      iperf3's) under SCHED_FIFO (chrt -f 5, below the delay
#                      line's 10), as delayline-bench.sh runs iperf3: on a
#                      loaded machine this separates what the tool does from
#                      the CPU the other work leaves it (default 0)
#   TERN, WORMHOLE_VENV  as for scripts/bench-transfer.sh
#   BENCH_KEEP_LOGS=1  keep the work dir
# shellcheck disable=SC2317,SC2153  # functions run from traps; A_NS etc. come from eval of lab.sh up
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB=$ROOT/Tests/lab/lab.sh
DRIVER=$HERE/bench_transfer.py
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

BYTES=${BENCH_BYTES:-268435456}
SLOW_BYTES=${BENCH_SLOW_BYTES:-16777216}
LOSSES=${BENCH_LOSSES:-0 1 2 3 5 10}
RATE=${BENCH_RATE_MBIT:-100}
DELAY=${BENCH_DELAY_MS:-25}
QUEUE_MS=${BENCH_QUEUE_MS:-100}
ECN_MS=${BENCH_ECN_MS:-}
BOTTLENECK=${BENCH_BOTTLENECK:-tbf}
TOOLS=${BENCH_TOOLS:-tern-bbr tern-loss-tolerant tern-rfc9260 wormhole-bbr wormhole-cubic iperf3-bbr iperf3-cubic}
FAIR=${BENCH_FAIR_SECONDS:-60}
FAIR_RUNS=${BENCH_FAIR_RUNS:-tern-tern tern-cubic tern-bbr}
FAIR_ROUNDS=${BENCH_FAIR_ROUNDS:-1}
FAIR_WARMUP=${BENCH_FAIR_WARMUP:-5}
TIMEOUT=${BENCH_TIMEOUT:-300}
IPERF_SECONDS=${BENCH_IPERF_SECONDS:-20}
VENV=${WORMHOLE_VENV:-/opt/tern-bench/wormhole-venv}
TERN=${TERN:-$ROOT/.build/release/tern}
TERN_CODE=7-aardvark-adroitness
WORMHOLE_CODE=7-guitarist-revenge
TERN_PORT=4747 TERN_STUN_PORT=3478 MAILBOX_PORT=4000 TRANSIT_PORT=4001 IPERF_PORT=5201

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run with sudo"
for n in "$BYTES" "$SLOW_BYTES" "$RATE" "$DELAY" "$QUEUE_MS" "$FAIR" "$TIMEOUT" "$IPERF_SECONDS" "$FAIR_ROUNDS" "$FAIR_WARMUP"; do
  [[ $n =~ ^[0-9]+$ ]] || die "not a whole number: '$n'"
done
[[ -z $ECN_MS || $ECN_MS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_ECN_MS is not a number: '$ECN_MS'"
[[ $BOTTLENECK == tbf || $BOTTLENECK == line ]] || die "BENCH_BOTTLENECK is tbf or line, not '$BOTTLENECK'"
[[ -z $ECN_MS ]] || BOTTLENECK=line
for t in $TOOLS; do
  case $t in tern-bbr|tern-loss-tolerant|tern-rfc9260|wormhole-bbr|wormhole-cubic|iperf3-bbr|iperf3-cubic) ;;
    *) die "unknown tool '$t' in BENCH_TOOLS" ;; esac
done
for r in $FAIR_RUNS; do
  case $r in tern-tern|tern-cubic|tern-bbr|cubic-tern|bbr-tern|bbr-cubic) ;; *) die "unknown fairness run '$r' in BENCH_FAIR_RUNS" ;; esac
done
[[ $LOSSES != none ]] || LOSSES=
want() { [[ " $TOOLS " == *" $1"* ]] || { [[ $1 == tern ]] && [[ $FAIR != 0 ]]; }; }   # a prefix: "tern", "wormhole", "iperf3"

# --- tools ------------------------------------------------------------------

if want tern && [[ ! -x $TERN ]]; then
  [[ $TERN == "$ROOT/.build/release/tern" ]] || die "TERN=$TERN is not an executable"
  # Never build in the working tree (someone may be editing it).
  wt=/tmp/tern-bench-worktree
  [[ -d $wt ]] || git -C "$ROOT" worktree add --detach "$wt" HEAD >&2
  say "no $TERN; building tern (release) in $wt"
  (cd "$wt" && swift build -c release --product tern >&2)
  TERN=$wt/.build/release/tern
fi
if want wormhole && ! [[ -x $VENV/bin/wormhole && -x $VENV/bin/twist ]]; then
  say "installing magic-wormhole, its mailbox server and transit relay into $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    magic-wormhole magic-wormhole-mailbox-server magic-wormhole-transit-relay >&2
fi
if { want iperf3 || [[ $FAIR != 0 ]]; } && ! command -v iperf3 >/dev/null; then
  say "installing iperf3"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null || die "cannot install iperf3"
fi

# --- work dir, lab, cleanup -------------------------------------------------

free=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ' || echo 0)
if [[ ${free:-0} -gt $((2 * BYTES + 512 * 1024 * 1024)) ]]; then base=/dev/shm; else base=/tmp; fi
WORK=$(mktemp -d "$base/tern-bench-lossy.XXXXXX")
LAB_ID=tbl$$
export LAB_ID LAB_QUIET=1
LAB_UP=0
STATUS=0
SAVED_ALLOWED_CC=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ $LAB_UP == 0 ]] || bash "$LAB" down || true
  [[ -z $SAVED_ALLOWED_CC ]] || sysctl -qw "net.ipv4.tcp_allowed_congestion_control=$SAVED_ALLOWED_CC" || true
  if [[ ${BENCH_KEEP_LOGS:-} == 1 ]]; then
    find "$WORK" -type f \( -name '*.bin' -o -path '*/out/*' \) -delete 2>/dev/null || true
    say "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

mkdir -p "$WORK"/{a,r,out,logs}
BENCH_UID=${BENCH_UID:-65534}
AS_USER=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --clear-groups --)
[[ ${BENCH_FIFO:-0} == 0 ]] || AS_USER=(chrt -f 5 "${AS_USER[@]}")
chmod 755 "$WORK"
chown "$BENCH_UID:$BENCH_UID" "$WORK"/{a,r,out}
if want tern; then install -m 755 "$TERN" "$WORK/tern"; TERN=$WORK/tern; fi
say "writing $BYTES random bytes"
head -c "$BYTES" /dev/urandom >"$WORK/a/bench.bin"
head -c "$SLOW_BYTES" "$WORK/a/bench.bin" >"$WORK/a/small.bin"
SHA=$("$PY" "$DRIVER" sha256 "$WORK/a/bench.bin")
SMALL_SHA=$("$PY" "$DRIVER" sha256 "$WORK/a/small.bin")

LAB_UP=1
labenv=$(bash "$LAB" up lan) || die "lab.sh up lan failed"
eval "$labenv"
[[ $A_IP == 198.18.0.* && $B_IP == 198.18.0.* && $R_IP == 198.18.0.* ]] || die "unexpected lab addresses"

# TCP congestion control per namespace (a namespace may only pick one the
# host allows: added to the list for the run).
allowed=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
for cc in bbr cubic; do
  if [[ " $allowed " != *" $cc "* ]]; then
    [[ -n $SAVED_ALLOWED_CC ]] || SAVED_ALLOWED_CC=$allowed
    allowed="$allowed $cc"
    sysctl -qw "net.ipv4.tcp_allowed_congestion_control=$allowed" || die "cannot allow TCP congestion control $cc"
  fi
done
tcp_cc() {
  # Another run's exit may have restored the allowed list meanwhile: a
  # namespace may only choose an allowed algorithm.
  local allowed
  allowed=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
  [[ " $allowed " == *" $1 "* ]] || sysctl -qw "net.ipv4.tcp_allowed_congestion_control=$allowed $1" || true
  for ns in "$A_NS" "$B_NS" "$R_NS"; do ip netns exec "$ns" sysctl -qw "net.ipv4.tcp_congestion_control=$1"; done
}
if [[ -n $ECN_MS ]]; then
  for ns in "$A_NS" "$B_NS" "$R_NS"; do ip netns exec "$ns" sysctl -qw net.ipv4.tcp_ecn=1; done
fi
# The lab turns the link's offloads off, so every TCP segment is its own
# buffer; Linux's default 4 MiB send buffer then holds too little of a
# 1 Gbit/s, 20 ms path (TCP BBR 533 Mbit/s with it, 737-859 with 32 MiB,
# Tests/lab/delayline-bench.sh's setup). The sender's namespace gets 32 MiB.
ip netns exec "$A_NS" sysctl -qw "net.ipv4.tcp_wmem=4096 16384 33554432"

# The link: delay and loss in the delay box; the rate and its drop-tail
# queue on both of the box's egress veths (frames leave the delay line into
# a full tbf as into a full router buffer: dropped).
shape() {                      # LOSS
  if [[ $BOTTLENECK == line ]]; then
    bash "$LAB" shape a eth0 --delay "$DELAY" --delay-in "$DELAY" --loss "$1" --loss-in "$1" \
      --rate "$RATE" --rate-in "$RATE" --queue "$QUEUE_MS" --ecn "${ECN_MS:-0}" >&2 || die "lab.sh shape failed"
    return 0
  fi
  bash "$LAB" shape a eth0 --delay "$DELAY" --delay-in "$DELAY" --loss "$1" --loss-in "$1" >&2 || die "lab.sh shape failed"
  local box limit burst
  box=$(ip netns list | awk '{print $1}' | grep -x "$LAB_ID-xa-eth0" || true)
  [[ -n $box ]] || die "no delay box for a:eth0"
  limit=$((RATE * 1000000 / 8 * QUEUE_MS / 1000))
  burst=$((RATE * 1000000 / 8 / 1000 > 3028 ? RATE * 1000000 / 8 / 1000 : 3028))   # 1 ms, at least two frames
  for dev in near far; do
    ip netns exec "$box" tc qdisc replace dev "$dev" root tbf rate "${RATE}mbit" burst "$burst" limit "$limit" \
      || die "tc tbf on $box $dev failed"
  done
}

# The delay line's counters now (its last SIGUSR1 line: "fwd: rx=... | rev:
# ..."), cumulative since the last shape; fwd is a -> b.
line_counters() {
  local run=${LAB_ROOT:-/tmp/tern-lab}/$LAB_ID pid
  pid=$(cat "$run/delayline-a-eth0.pid" 2>/dev/null) || { echo; return 0; }
  kill -USR1 "$pid" 2>/dev/null || { echo; return 0; }
  sleep 0.2
  grep '^fwd:' "$run/delayline-a-eth0.log" | tail -1
}

# CPU seconds (user + system) the delay line has used so far: beside the
# tools' own, what the link itself costs the machine.
line_cpu() {
  local pid
  pid=$(cat "${LAB_ROOT:-/tmp/tern-lab}/$LAB_ID/delayline-a-eth0.pid" 2>/dev/null) || { echo 0; return 0; }
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$pid/stat" 2>/dev/null || echo 0
}

# UDP counters of a's and b's stacks now ("a:RcvbufErrors=N,... b:..."):
# datagrams a socket buffer dropped because its reader was too slow.
udp_counters() {
  local ns out=
  for ns in "$A_NS" "$B_NS"; do
    out+="${ns##*-}:$(ip netns exec "$ns" awk '/^Udp:/ { if (!h) { split($0, k); h = 1 } else { for (i = 2; i <= NF; i++) printf "%s=%s,", k[i], $i } }' /proc/net/snmp) "
  done
  echo "$out"
}

inr() { ip netns exec "$R_NS" "$@"; }
wait_listen() {                # NS PROTO(t|u) PORT WHAT PID
  for _ in $(seq 1 200); do
    ip netns exec "$1" ss -Hln"$2" "sport = :$3" | grep -q . && return 0
    kill -0 "$5" 2>/dev/null || break
    sleep 0.05
  done
  die "$4 did not start listening on port $3"
}
if want tern || [[ $FAIR != 0 ]]; then
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$TERN" relay --listen "$R_IP:$TERN_PORT" \
    --stun-listen "$R_IP:$TERN_STUN_PORT") >"$WORK/logs/tern-relay.log" 2>&1 &
  wait_listen "$R_NS" t "$TERN_PORT" "tern relay" $!
fi
if want wormhole; then
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$VENV/bin/twist" --log-format=text wormhole-mailbox \
    --port "tcp:$MAILBOX_PORT:interface=$R_IP" --channel-db "$WORK/r/mailbox.sqlite") >"$WORK/logs/wormhole-mailbox.log" 2>&1 &
  wait_listen "$R_NS" t "$MAILBOX_PORT" "wormhole mailbox server" $!
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$VENV/bin/twist" --log-format=text transitrelay \
    --port "tcp:$TRANSIT_PORT:interface=$R_IP") >"$WORK/logs/wormhole-transit.log" 2>&1 &
  wait_listen "$R_NS" t "$TRANSIT_PORT" "wormhole transit relay" $!
fi

q() { printf '%q ' "$@"; }
load=$(cut -d' ' -f1 /proc/loadavg)
echo "{\"bench\":\"lossy\",\"loadavg\":$load,\"bytes\":$BYTES,\"slow_bytes\":$SLOW_BYTES,\"rate_mbit\":$RATE,\"delay_ms_each_way\":$DELAY,\"queue_ms\":$QUEUE_MS,\"bottleneck\":\"$BOTTLENECK\",\"ecn_ms\":${ECN_MS:-null},\"fifo\":${BENCH_FIFO:-0},\"cpus\":$(nproc),\"kernel\":\"$(uname -r)\",\"tern\":\"$([[ -x ${TERN:-} ]] && "$TERN" --version 2>/dev/null | head -1)\"}"

# Pings a -> b every 100 ms into FILE until stopped (the round trip the
# transfer's queue adds).
start_ping() { ip netns exec "$A_NS" ping -n -i 0.1 "$B_IP" >"$1" 2>/dev/null & PING_PID=$!; }
stop_ping() {                  # FILE -> "median p90" in ms
  kill "$PING_PID" 2>/dev/null || true
  wait "$PING_PID" 2>/dev/null || true
  "$PY" - "$1" <<'EOF'
import re, statistics, sys
v = sorted(float(m) for m in re.findall(r"time=([0-9.]+)", open(sys.argv[1]).read()))
print(f"{statistics.median(v):.1f} {v[int(len(v) * 0.9)]:.1f}" if v else "null null")
EOF
}

run_tern() {                   # CONTROLLER FILE SHA BYTES LOGNAME
  local env_cc=(env "TERN_SCTP_CONGESTION_CONTROL=$1")
  "$PY" "$DRIVER" run --tool "tern-$1" --bytes "$4" --src-sha256 "$3" \
    --outdir "$WORK/out" --logdir "$WORK/logs/$5" --timeout "$TIMEOUT" \
    --sender-cwd "$WORK/a" --sender-ready '"event" *: *"code"' \
    --sender "$(q ip netns exec "$A_NS" "${AS_USER[@]}" "${env_cc[@]}" "$TERN" send --relay "ws://$R_IP:$TERN_PORT" --code "$TERN_CODE" --json --verbose "$2")" \
    --receiver "$(q ip netns exec "$B_NS" "${AS_USER[@]}" "${env_cc[@]}" "$TERN" receive --relay "ws://$R_IP:$TERN_PORT" --yes -o "$WORK/out" --json --verbose "$TERN_CODE")"
}

run_wormhole() {               # CC FILE SHA BYTES LOGNAME
  tcp_cc "$1"
  local wh=("$VENV/bin/wormhole" --relay-url "ws://$R_IP:$MAILBOX_PORT/v1" --transit-helper "tcp:$R_IP:$TRANSIT_PORT")
  "$PY" "$DRIVER" run --tool "wormhole-$1" --bytes "$4" --src-sha256 "$3" \
    --outdir "$WORK/out" --logdir "$WORK/logs/$5" --timeout "$TIMEOUT" \
    --sender-cwd "$WORK/a" --sender-ready 'Wormhole code is' --path-regex 'Receiving \(([^)]*)\)' \
    --sender "$(q ip netns exec "$A_NS" "${AS_USER[@]}" "${wh[@]}" send --code "$WORMHOLE_CODE" "$2")" \
    --receiver "$(q ip netns exec "$B_NS" "${AS_USER[@]}" "${wh[@]}" receive --accept-file -o "$WORK/out" "$WORMHOLE_CODE")"
}

run_iperf3() {                 # CC -> one JSON line (IPERF_SECONDS of sending)
  tcp_cc "$1"
  ip netns exec "$B_NS" "${AS_USER[@]}" iperf3 -s -1 -B "$B_IP" -p "$IPERF_PORT" >/dev/null 2>&1 &
  local server=$!
  wait_listen "$B_NS" t "$IPERF_PORT" "iperf3 server" "$server"
  local out
  out=$(timeout "$TIMEOUT" ip netns exec "$A_NS" "${AS_USER[@]}" iperf3 -c "$B_IP" -p "$IPERF_PORT" -t "$IPERF_SECONDS" -C "$1" -J 2>&1 || true)
  wait "$server" 2>/dev/null || true
  "$PY" -c '
import json, sys
tool = sys.argv[1]
try:
    r = json.loads(sys.stdin.read())
    received = r["end"]["sum_received"]
    ok = received["bytes"] > 0
    print(json.dumps({"tool": tool, "bytes": received["bytes"], "ok": ok, "e2e_s": round(received["seconds"], 3),
                      "e2e_MBps": round(received["bytes"] / 1e6 / received["seconds"], 2),
                      "retransmits": r["end"]["sum_sent"].get("retransmits")}))
except Exception as e:
    print(json.dumps({"tool": tool, "ok": False, "errors": [f"iperf3: {e}"]}))
' "iperf3-$1" <<<"$out"
}

RESULTS=$WORK/results.jsonl
: >"$RESULTS"
for loss in $LOSSES; do
  shape "$loss"
  counters_before=$(line_counters)
  say "link: ${RATE} Mbit/s, ${DELAY} ms each way, ${QUEUE_MS} ms queue, ${loss}% loss each way"
  for tool in $TOOLS; do
    file=$WORK/a/bench.bin sha=$SHA bytes=$BYTES
    slow_from=
    case $tool in tern-rfc9260|wormhole-cubic) slow_from=1 ;; tern-loss-tolerant) slow_from=2 ;; esac
    if [[ -n $slow_from ]] && awk -v l="$loss" -v f="$slow_from" 'BEGIN { exit !(l >= f) }'; then
      file=$WORK/a/small.bin sha=$SMALL_SHA bytes=$SLOW_BYTES
    fi
    say "$tool, $bytes bytes"
    start_ping "$WORK/logs/ping.txt"
    udp_before=$(udp_counters)
    line_cpu_before=$(line_cpu)
    case $tool in
      tern-*) line=$(run_tern "${tool#tern-}" "$file" "$sha" "$bytes" "$tool-$loss") || STATUS=1 ;;
      wormhole-*) line=$(run_wormhole "${tool#wormhole-}" "$file" "$sha" "$bytes" "$tool-$loss") || STATUS=1 ;;
      iperf3-*) line=$(run_iperf3 "${tool#iperf3-}") ;;
    esac
    read -r rtt_median rtt_p90 < <(stop_ping "$WORK/logs/ping.txt")
    counters_after=$(line_counters)
    udp_after=$(udp_counters)
    line_cpu_after=$(line_cpu)
    # tern --verbose logs each side's SCTP counters at the end: the
    # receiver's packets are its SACKs (how often the sender hears back).
    line=$("$PY" -c '
import json, os, re, sys
r = json.loads(sys.argv[1]); r["loss_percent"] = float(sys.argv[2])
r["rtt_median_ms"] = json.loads(sys.argv[3]); r["rtt_p90_ms"] = json.loads(sys.argv[4])
d = r.get("tool_reported") or {}
if d.get("seconds"): r["done_MBps"] = round(d.get("bytes", r["bytes"]) / 1e6 / d["seconds"], 2)
def counters(side):
    try: text = open(os.path.join(sys.argv[5], side + ".stderr"), errors="replace").read()
    except OSError: return None
    lines = [l for l in text.splitlines() if "SCTP" in l and "packets=" in l]
    return {k: int(v) for k, v in re.findall(r"(\w+)=\"?(\d+)", lines[-1])} if lines else None
s, c = counters("sender"), counters("receiver")
if s and c:
    r["sctp"] = {"sender": s, "receiver": c}
    if s.get("packets"): r["sacks_per_data_packet"] = round(c.get("packets", 0) / s["packets"], 3)
# The delay line during this run (and the pings): what it dropped and marked.
def line(text):
    return {d: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", part)}
            for d, part in re.findall(r"(fwd|rev): ([^|]*)", text)}
before, after = line(sys.argv[6]), line(sys.argv[7])
if after:
    r["delayline"] = {d: {k: v - before.get(d, {}).get(k, 0) for k, v in c.items() if k != "queued"} for d, c in after.items()}
# UDP datagrams a socket buffer dropped on each host (its reader too slow).
def udp(text):
    return {h: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", part)} for h, part in re.findall(r"(\w+):(\S*)", text)}
ub, ua = udp(sys.argv[8]), udp(sys.argv[9])
r["udp_rcvbuf_errors"] = {h: c.get("RcvbufErrors", 0) - ub.get(h, {}).get("RcvbufErrors", 0) for h, c in ua.items()}
r["delayline_cpu_s"] = round(float(sys.argv[11]) - float(sys.argv[10]), 2)
print(json.dumps(r))' "$line" "$loss" "$rtt_median" "$rtt_p90" "$WORK/logs/$tool-$loss" "$counters_before" "$counters_after" \
      "$udp_before" "$udp_after" "$line_cpu_before" "$line_cpu_after")
    counters_before=$counters_after
    echo "$line" | tee -a "$RESULTS"
    rm -rf "$WORK/out"; mkdir -p "$WORK/out"; chown "$BENCH_UID:$BENCH_UID" "$WORK/out"
  done
done

# Fairness on the lossless link: two flows started together, each one's
# bytes over a window of FAIR seconds in which both run (from FAIR_WARMUP
# seconds after both carry data). tern sends an endless stream (the bench
# file over and over, `tern send -`) so that it outlasts the window, and is
# stopped after it; so is iperf3. Bytes: the received file's size for tern,
# bytes_received of the TCP connection at b (ss -ti) for iperf3.
fair_tern_start() {            # NAME CODE
  local dir=$WORK/fair/$1
  mkdir -p "$dir"; chown "$BENCH_UID:$BENCH_UID" "$dir"
  (cd "$dir" && exec ip netns exec "$B_NS" "${AS_USER[@]}" env TERN_SCTP_CONGESTION_CONTROL=bbr "$TERN" receive \
    --relay "ws://$R_IP:$TERN_PORT" --yes -o "$dir/stream.bin" --json "$2") >"$WORK/logs/fair-$FAIR_TAG-$1-receive.log" 2>&1 &
  FAIR_PIDS+=($!)
  # A write into a closed pipe ends cat, and the loop with it.
  (while cat "$WORK/a/bench.bin"; do :; done | (cd "$WORK/a" && exec ip netns exec "$A_NS" "${AS_USER[@]}" \
    env TERN_SCTP_CONGESTION_CONTROL=bbr "$TERN" send --relay "ws://$R_IP:$TERN_PORT" --code "$2" --json -)) \
    >"$WORK/logs/fair-$FAIR_TAG-$1-send.log" 2>&1 &
  FAIR_PIDS+=($!)
}
fair_iperf3_start() {          # CC [PORT]
  local port=${2:-$IPERF_PORT}
  tcp_cc "$1"
  ip netns exec "$B_NS" "${AS_USER[@]}" iperf3 -s -1 -B "$B_IP" -p "$port" >/dev/null 2>&1 &
  FAIR_PIDS+=($!)
  wait_listen "$B_NS" t "$port" "iperf3 server" "$!"
  ip netns exec "$A_NS" "${AS_USER[@]}" iperf3 -c "$B_IP" -p "$port" -t $((FAIR + FAIR_WARMUP + 60)) -C "$1" \
    >"$WORK/logs/fair-$FAIR_TAG-iperf3-$1.log" 2>&1 &
  FAIR_PIDS+=($!)
}
fair_bytes() {                 # FLOW: tern:NAME, tcp or tcp:PORT -> bytes received so far
  case $1 in
    # The files' bytes only: du of the folder counts the folder itself, so
    # a receiver that never wrote a byte read as started.
    tern:*) find "$WORK/fair/${1#tern:}" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }' ;;
    tcp*) local port=$IPERF_PORT
          [[ $1 == tcp:* ]] && port=${1#tcp:}
          ip netns exec "$B_NS" ss -tinH "sport = :$port" | grep -o 'bytes_received:[0-9]*' | cut -d: -f2 |
           sort -n | tail -1 | grep . || echo 0 ;;
  esac
}
fair_wait_data() {             # FLOW: until its first bytes arrive (at most 60 s)
  for _ in $(seq 1 600); do [[ $(fair_bytes "$1") -eq 0 ]] || break; sleep 0.1; done
}
fair_stop() {
  local p
  for p in "${FAIR_PIDS[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait "${FAIR_PIDS[@]}" 2>/dev/null || true
  FAIR_PIDS=()
  rm -rf "$WORK/fair"
}
fair_run() {                   # LABEL FLOW1 FLOW2 (tern:NAME or tcp)
  local label=$1 f1=$2 f2=$3 t0 t1 a0 b0 a1 b1 ok=0
  say "fairness: $label, $FAIR s"
  for _ in $(seq 1 600); do
    if [[ $(fair_bytes "$f1") -gt 0 && $(fair_bytes "$f2") -gt 0 ]]; then ok=1; break; fi
    sleep 0.1
  done
  if [[ $ok == 0 ]]; then
    say "fairness: $label: the flows did not both start"; STATUS=1
    echo "{\"fairness\":\"$label\",\"ok\":false}" | tee -a "$RESULTS"
    fair_stop; return 0
  fi
  sleep "$FAIR_WARMUP"
  start_ping "$WORK/logs/ping-fair-$FAIR_TAG.txt"
  t0=$(date +%s.%N); a0=$(fair_bytes "$f1"); b0=$(fair_bytes "$f2")
  sleep "$FAIR"
  t1=$(date +%s.%N); a1=$(fair_bytes "$f1"); b1=$(fair_bytes "$f2")
  read -r rtt_median rtt_p90 < <(stop_ping "$WORK/logs/ping-fair-$FAIR_TAG.txt")
  fair_stop
  "$PY" -c '
import json, sys
label, f1, f2 = sys.argv[1:4]
a, b, seconds = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
share = a / max(1, a + b)
r = {"fairness": label, "ok": a > 0 and b > 0, "seconds": round(seconds, 1),
     "flow1": f1, "flow1_MBps": round(a / 1e6 / seconds, 2), "flow2": f2, "flow2_MBps": round(b / 1e6 / seconds, 2),
     "flow1_share": round(share, 3), "rtt_median_ms": json.loads(sys.argv[7]), "rtt_p90_ms": json.loads(sys.argv[8])}
print(json.dumps(r))' "$label" "$f1" "$f2" "$((a1 - a0))" "$((b1 - b0))" "$("$PY" -c "print($t1 - $t0)")" \
    "$rtt_median" "$rtt_p90" | tee -a "$RESULTS"
}

if [[ $FAIR != 0 ]]; then
  shape 0
  FAIR_PIDS=()
  for round in $(seq 1 "$FAIR_ROUNDS"); do
    for run in $FAIR_RUNS; do
      FAIR_TAG=$run-$round   # in the log files' names, which BENCH_KEEP_LOGS=1 keeps
      # A code of its own for each run: the relay may not yet have seen the
      # last run's sides (stopped a moment ago) leave their nameplate, and
      # a third side on it is refused ("already in use by two other sides").
      FAIR_SEQ=$((${FAIR_SEQ:-0} + 2))
      case $run in
        tern-tern)
          fair_tern_start one "$((10 + FAIR_SEQ))-aardvark-adroitness"
          fair_tern_start two "$((11 + FAIR_SEQ))-aardvark-adroitness"
          fair_run "tern-bbr + tern-bbr" tern:one tern:two ;;
        tern-cubic|tern-bbr)
          # TCP starts when tern's data does (tern first pairs through the
          # relay and connects, about a second).
          fair_tern_start one "$((10 + FAIR_SEQ))-aardvark-adroitness"
          fair_wait_data tern:one
          fair_iperf3_start "${run#tern-}"
          fair_run "tern-bbr + iperf3-${run#tern-}" tern:one tcp ;;
        cubic-tern|bbr-tern)
          # The other order: the TCP flow first, tern when TCP's data flows
          # (the first flow's share is then TCP's).
          fair_iperf3_start "${run%-tern}"
          fair_wait_data tcp
          fair_tern_start one "$((10 + FAIR_SEQ))-aardvark-adroitness"
          fair_run "iperf3-${run%-tern} + tern-bbr" tcp tern:one ;;
        bbr-cubic)
          # The reference: what the kernel's TCP BBR gets beside CUBIC on
          # the same link (BBR starts a moment first, as tern does above).
          fair_iperf3_start bbr "$IPERF_PORT"
          fair_iperf3_start cubic "$((IPERF_PORT + 1))"
          fair_run "iperf3-bbr + iperf3-cubic" "tcp:$IPERF_PORT" "tcp:$((IPERF_PORT + 1))" ;;
      esac
    done
  done
fi

# The table: goodput (end to end, and tern's done event in brackets) and
# the median ping while sending, per loss rate and tool.
"$PY" - "$RESULTS" "$RATE" <<'EOF' >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in rows if "tool" in r]
tools = list(dict.fromkeys(r["tool"] for r in runs))
losses = list(dict.fromkeys(r["loss_percent"] for r in runs))
if runs: print(f"\ngoodput MB/s end to end (tern's done event), median RTT ms while sending; link {sys.argv[2]} Mbit/s = {float(sys.argv[2]) / 8:.2f} MB/s")
if runs: print("| loss each way | " + " | ".join(tools) + " |")
if runs: print("|---" * (len(tools) + 1) + "|")
for loss in losses:
    cells = []
    for tool in tools:
        r = next((r for r in runs if r["tool"] == tool and r["loss_percent"] == loss), None)
        if r is None: cells.append(""); continue
        rate = r.get("e2e_MBps")
        cell = f"{rate}" if r.get("ok") and rate else "failed"
        if r.get("done_MBps"): cell += f" ({r['done_MBps']})"
        if not tool.startswith("iperf3") and r.get("bytes", 0) < 100e6: cell += f" [{r['bytes'] >> 20} MiB]"
        if r.get("rtt_median_ms") is not None: cell += f", {r['rtt_median_ms']} ms"
        cells.append(cell)
    print(f"| {loss:g}% | " + " | ".join(cells) + " |")
fair = [r for r in rows if "fairness" in r]
if fair:
    print("\nfairness: two flows sharing the lossless link, MB/s over the window in which both ran; the first flow's share")
    print("| flows | seconds | first MB/s | second MB/s | first's share | median RTT ms |")
    print("|---|---|---|---|---|---|")
    for r in fair:
        if not r.get("ok"):
            print(f"| {r['fairness']} | failed | | | | |"); continue
        print(f"| {r['fairness']} | {r['seconds']} | {r['flow1_MBps']} | {r['flow2_MBps']} | {r['flow1_share']} | {r['rtt_median_ms']} |")
EOF
exit "$STATUS"
