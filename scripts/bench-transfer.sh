#!/usr/bin/env bash
# File-transfer benchmark (a benchmark that prints numbers, not a test): one
# file from namespace a to namespace b of the network lab's `lan` topology
# (one bridged segment 198.18.0.0/24, veth MTU 1500, no shaping), with the
# rendezvous services in namespace r on the same segment:
#   tern:           `tern relay` in r, `tern send` in a, `tern receive` in b;
#   magic-wormhole: its mailbox server and transit relay in r (from PyPI, in a
#                   venv made on first use), `wormhole send` in a,
#                   `wormhole receive` in b. Its direct hints let a and b
#                   connect directly on the segment, as tern does.
# Per tool: end-to-end time (receiver process start to exit) and rate
# (MB = 10^6 bytes), CPU seconds (user+sys) per GiB and peak RSS per side,
# time from receiver start to the first byte, and a byte-for-byte check of
# the received file. One JSON line per run on stdout, then a comparison line
# (medians; rate ratio tern/wormhole, also run by run, and the issue's
# goals, judged on the medians: >= 1.5x
# wormhole's rate, < 64 MiB peak per side, < 150 ms to the first byte).
# Progress and problems go to stderr; a failed run prints FAILED and the
# script exits 1 at the end (after running everything else).
#
#   sudo scripts/bench-transfer.sh
#
# Environment:
#   BENCH_BYTES    file size (default 1073741824 = 1 GiB)
#   BENCH_RUNS     runs per tool, alternating tern/wormhole (default 1)
#   BENCH_TOOLS    "tern wormhole" (default), or any of "tern tern-lan
#                  wormhole": tern-lan is tern in LAN mode (no relay: the
#                  sender's own rendezvous, found by the receiver through
#                  the beacon on the segment), to compare with tern through
#                  the relay in r
#   BENCH_DIR      where the file and the received copy live (default
#                  /dev/shm if it has room, else /tmp)
#   BENCH_TIMEOUT  seconds a receiver may take (default 900)
#   TERN           tern binary (default .build/release/tern; if missing it is
#                  built with `swift build -c release` in a private git
#                  worktree of HEAD, /tmp/tern-bench-worktree, never in place)
#   WORMHOLE_VENV  magic-wormhole venv (default /opt/tern-bench/wormhole-venv)
#   BENCH_KEEP_LOGS=1  keep the work dir (logs of every process)
#   BENCH_DELAY_MS, BENCH_LOSS  shape a's link (netem, both directions):
#                  one-way delay in ms and loss in percent each way, e.g.
#                  BENCH_DELAY_MS=20 BENCH_LOSS=1 for a 40 ms round trip
#                  losing 1% each way (default: none, the plain veth). The
#                  relays sit behind the same link, so pairing slows too.
#   BENCH_TCP_CC   TCP congestion control in the lab's namespaces, for
#                  wormhole (default: what the namespaces inherit from the
#                  host, reported in the first line; e.g. cubic, as most
#                  distributions ship, or bbr); one the host does not
#                  allow namespaces to pick is added to
#                  net.ipv4.tcp_allowed_congestion_control for the run
#
# Fairness notes. Both tools send the same file, which is in the page cache
# (or in tmpfs) for both: it was just written and nothing is dropped, so
# neither run reads a cold disk. Received files go to the same directory
# (tmpfs by default). Every process is started with `ip netns exec` directly
# (not through lab.sh, whose bash start-up would count in the receiver's
# time), and its CPU and peak RSS come from wait4() on its own pid. The
# sender starts first; the receiver starts when the sender says it is ready
# (tern: its `code` event, after the relay confirmed the nameplate; wormhole:
# "Wormhole code is"), so neither receiver's time includes the sender's
# start-up. Time to first byte: tern's first `progress` event on stdout
# (first_byte_ms); for both tools also when a file in the output directory
# first has bytes (first_byte_file_ms, polled every 2 ms; wormhole writes
# through Python's 8 KiB buffer, so it is a slight overestimate there).
# Nothing leaves the lab: every address used is in 198.18.0.0/24, and the
# lab's default route points at an address nobody answers.
# shellcheck disable=SC2317,SC2153  # functions run from traps; A_NS etc. come from eval of lab.sh up
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LAB=$ROOT/Tests/lab/lab.sh
DRIVER=$HERE/bench_transfer.py
PY=/usr/bin/python3
[[ -x $PY ]] || PY=$(command -v python3)

BYTES=${BENCH_BYTES:-1073741824}
RUNS=${BENCH_RUNS:-1}
TOOLS=${BENCH_TOOLS:-tern wormhole}
TIMEOUT=${BENCH_TIMEOUT:-900}
VENV=${WORMHOLE_VENV:-/opt/tern-bench/wormhole-venv}
TERN=${TERN:-$ROOT/.build/release/tern}
# Pre-agreed codes, so nothing is interactive. tern checks its words against
# its word list (a word list with a first and a second position, like
# wormhole's), so each tool gets a code valid for it.
TERN_CODE=7-aardvark-adroitness
WORMHOLE_CODE=7-guitarist-revenge
TERN_PORT=4747 TERN_STUN_PORT=3478 MAILBOX_PORT=4000 TRANSIT_PORT=4001

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces); run with sudo"
[[ $BYTES =~ ^[0-9]+$ && $BYTES -gt 0 ]] || die "BENCH_BYTES must be a positive integer"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "BENCH_RUNS must be a positive integer"
for t in $TOOLS; do [[ $t == tern || $t == tern-lan || $t == wormhole ]] || die "unknown tool '$t' in BENCH_TOOLS"; done

# --- tools --------------------------------------------------------------

want() { [[ " $TOOLS " == *" $1 "* ]]; }

ensure_tern() {
  [[ -x $TERN ]] && return 0
  [[ $TERN == "$ROOT/.build/release/tern" ]] || die "TERN=$TERN is not an executable"
  # Never build in the working tree (someone may be editing it): a private
  # worktree of HEAD (committed code only), reused by later runs.
  local wt=/tmp/tern-bench-worktree
  if [[ ! -d $wt ]]; then
    say "no $TERN; building tern (release) from HEAD in $wt"
    git -C "$ROOT" worktree add --detach "$wt" HEAD >&2
  else
    say "no $TERN; using the worktree $wt (HEAD when it was made)"
  fi
  (cd "$wt" && swift build -c release --product tern >&2)
  TERN=$wt/.build/release/tern
  [[ -x $TERN ]] || die "build produced no $TERN"
}

ensure_wormhole() {
  [[ -x $VENV/bin/wormhole && -x $VENV/bin/twist ]] && return 0
  say "installing magic-wormhole, its mailbox server and transit relay into $VENV"
  if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    magic-wormhole magic-wormhole-mailbox-server magic-wormhole-transit-relay >&2
}

{ want tern || want tern-lan; } && ensure_tern
want wormhole && ensure_wormhole

# --- work dir, lab, cleanup -----------------------------------------------

if [[ -n ${BENCH_DIR:-} ]]; then base=$BENCH_DIR
else
  # The source and one received copy at a time, plus slack.
  free=$(df -B1 --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ' || echo 0)
  if [[ ${free:-0} -gt $((2 * BYTES + 512 * 1024 * 1024)) ]]; then base=/dev/shm; else base=/tmp; fi
fi
WORK=$(mktemp -d "$base/tern-bench-transfer.XXXXXX")
LAB_ID=tb$$
export LAB_ID LAB_QUIET=1
LAB_UP=0
STATUS=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # `lab.sh down` stops every process in the run's namespaces (relays,
  # senders, receivers) and deletes the namespaces with their veths.
  [[ $LAB_UP == 0 ]] || bash "$LAB" down || true
  [[ -z ${SAVED_ALLOWED_CC:-} ]] || sysctl -qw "net.ipv4.tcp_allowed_congestion_control=$SAVED_ALLOWED_CC" || true
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
# Users are not root: both tools run as an unprivileged account (nobody),
# which owns the sender's, the relay's and the receiver's folders and runs
# its own copy of tern (the build folder may not be open to it).
BENCH_UID=${BENCH_UID:-65534}
AS_USER=()
if [[ $(id -u) -eq 0 ]]; then
  AS_USER=(setpriv --reuid="$BENCH_UID" --regid="$BENCH_UID" --clear-groups --)
  chmod 755 "$WORK"
  chown "$BENCH_UID:$BENCH_UID" "$WORK"/{a,r,out}
fi
if want tern || want tern-lan; then
  install -m 755 "$TERN" "$WORK/tern"
  TERN=$WORK/tern
fi
SRC=$WORK/a/bench.bin
say "writing $BYTES random bytes to $SRC"
head -c "$BYTES" /dev/urandom >"$SRC"
SRC_SHA=$("$PY" "$DRIVER" sha256 "$SRC")   # also leaves the file warm in the page cache

LAB_UP=1
labenv=$(bash "$LAB" up lan) || die "lab.sh up lan failed"
eval "$labenv"
[[ $A_IP == 198.18.0.* && $B_IP == 198.18.0.* && $R_IP == 198.18.0.* ]] || die "unexpected lab addresses"
mtu=$(ip -n "$A_NS" -o link show dev eth0 | grep -o 'mtu [0-9]*' | cut -d' ' -f2)
if [[ -n ${BENCH_TCP_CC:-} ]]; then
  # A namespace may only pick from the host's allowed list: add to it for
  # the run (cleanup puts the list back).
  allowed=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
  if [[ " $allowed " != *" $BENCH_TCP_CC "* ]]; then
    SAVED_ALLOWED_CC=$allowed
    sysctl -qw "net.ipv4.tcp_allowed_congestion_control=$allowed $BENCH_TCP_CC" || die "cannot allow TCP congestion control $BENCH_TCP_CC"
  fi
  for ns in "$A_NS" "$B_NS" "$R_NS"; do
    ip netns exec "$ns" sysctl -qw "net.ipv4.tcp_congestion_control=$BENCH_TCP_CC" || die "cannot set TCP congestion control $BENCH_TCP_CC"
  done
fi
TCP_CC=$(ip netns exec "$A_NS" sysctl -n net.ipv4.tcp_congestion_control)
DELAY_MS=${BENCH_DELAY_MS:-0} LOSS=${BENCH_LOSS:-0}
[[ $DELAY_MS =~ ^[0-9]+$ ]] || die "BENCH_DELAY_MS must be whole milliseconds"
[[ $LOSS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_LOSS must be a percentage"
if [[ $DELAY_MS != 0 || $LOSS != 0 ]]; then
  bash "$LAB" shape a eth0 --delay "$DELAY_MS" --loss "$LOSS" --delay-in "$DELAY_MS" --loss-in "$LOSS" >&2 \
    || die "lab.sh shape failed"
fi

inr() { ip netns exec "$R_NS" "$@"; }
wait_listen() {                # PROTO(t|u) PORT WHAT PID
  for _ in $(seq 1 200); do
    inr ss -Hln"$1" "sport = :$2" | grep -q . && return 0
    kill -0 "$4" 2>/dev/null || break
    sleep 0.05
  done
  die "$3 did not start listening on $R_IP:$2 (log in $WORK/logs)"
}

# Rendezvous services in r (logs in the work dir; cwd there too, so nothing
# such as wormhole's sqlite files lands anywhere else).
if want tern; then
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$TERN" relay --listen "$R_IP:$TERN_PORT" \
    --stun-listen "$R_IP:$TERN_STUN_PORT") >"$WORK/logs/tern-relay.log" 2>&1 &
  wait_listen t "$TERN_PORT" "tern relay" $!
fi
if want wormhole; then
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$VENV/bin/twist" --log-format=text wormhole-mailbox \
    --port "tcp:$MAILBOX_PORT:interface=$R_IP" --channel-db "$WORK/r/mailbox.sqlite") \
    >"$WORK/logs/wormhole-mailbox.log" 2>&1 &
  wait_listen t "$MAILBOX_PORT" "wormhole mailbox server" $!
  (cd "$WORK/r" && exec ip netns exec "$R_NS" "${AS_USER[@]}" "$VENV/bin/twist" --log-format=text transitrelay \
    --port "tcp:$TRANSIT_PORT:interface=$R_IP") >"$WORK/logs/wormhole-transit.log" 2>&1 &
  wait_listen t "$TRANSIT_PORT" "wormhole transit relay" $!
fi

q() { printf '%q ' "$@"; }     # a command line for the driver (shlex)
tern_version=null wormhole_version=null
if want tern || want tern-lan; then
  tern_version=$("$TERN" --version 2>/dev/null | head -1 || echo '?')
  tern_version="\"$tern_version\""
  # `tern receive -o DIR` once it exists; until then the receiver runs in
  # the output directory, which is where it would put the file anyway.
  tern_out=()
  if "$TERN" receive --help 2>&1 | grep -qE -- '(^|[ ,])(-o|--output)[ ,=<]'; then tern_out=(-o "$WORK/out")
  else say "note: this tern's 'receive' has no -o/--output; its receiver runs in the output directory instead"; fi
fi
if want wormhole; then
  wormhole_version="\"$("$VENV/bin/wormhole" --version 2>&1 | awk '{print $NF}')\""
fi
# Other work on the machine skews every number here (both sides want a core).
load=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$load" 'BEGIN { exit !(l > 0.5) }' && say "warning: load average $load: other work is running; the numbers will be noisy"
echo "{\"bench\":\"transfer\",\"loadavg\":$load,\"bytes\":$BYTES,\"runs\":$RUNS,\"topology\":\"lan\",\"mtu\":${mtu:-null},\"delay_ms_each_way\":$DELAY_MS,\"loss_percent_each_way\":$LOSS,\"tcp_congestion_control\":\"$TCP_CC\",\"cpus\":$(nproc),\"kernel\":\"$(uname -r)\",\"file_dir\":\"$base\",\"tern\":$tern_version,\"wormhole\":$wormhole_version}"

RESULTS=$WORK/results.jsonl
: >"$RESULTS"

run_tern() {                   # RUN
  "$PY" "$DRIVER" run --tool tern --run "$1" --bytes "$BYTES" --src-sha256 "$SRC_SHA" \
    --outdir "$WORK/out" --logdir "$WORK/logs/tern-$1" --timeout "$TIMEOUT" \
    --sender-cwd "$WORK/a" --sender-ready '"event" *: *"code"' \
    --sender "$(q ip netns exec "$A_NS" "${AS_USER[@]}" "$TERN" send --relay "ws://$R_IP:$TERN_PORT" --code "$TERN_CODE" --json "$SRC")" \
    --receiver "$(q ip netns exec "$B_NS" "${AS_USER[@]}" "$TERN" receive --relay "ws://$R_IP:$TERN_PORT" --yes "${tern_out[@]}" --json "$TERN_CODE")"
}

run_tern-lan() {               # RUN
  # No relay anywhere in the command lines, and no config file (HOME is the
  # sender's and receiver's folder): both sides are in LAN mode.
  "$PY" "$DRIVER" run --tool tern-lan --run "$1" --bytes "$BYTES" --src-sha256 "$SRC_SHA" \
    --outdir "$WORK/out" --logdir "$WORK/logs/tern-lan-$1" --timeout "$TIMEOUT" \
    --sender-cwd "$WORK/a" --sender-ready '"event" *: *"code"' \
    --sender "$(q ip netns exec "$A_NS" "${AS_USER[@]}" env HOME="$WORK/a" "$TERN" send --lan --code "$TERN_CODE" --json "$SRC")" \
    --receiver "$(q ip netns exec "$B_NS" "${AS_USER[@]}" env HOME="$WORK/out" "$TERN" receive --yes "${tern_out[@]}" --json "$TERN_CODE")"
}

run_wormhole() {               # RUN
  local wh=("$VENV/bin/wormhole" --relay-url "ws://$R_IP:$MAILBOX_PORT/v1" --transit-helper "tcp:$R_IP:$TRANSIT_PORT")
  # Once the transit connection is chosen the receiver prints "Receiving
  # (->tcp:IP:PORT).." (it connected to the sender), "(<-IP:PORT)" (the
  # sender connected to it) or "(->relay:tcp:...)" (through the relay).
  "$PY" "$DRIVER" run --tool wormhole --run "$1" --bytes "$BYTES" --src-sha256 "$SRC_SHA" \
    --outdir "$WORK/out" --logdir "$WORK/logs/wormhole-$1" --timeout "$TIMEOUT" \
    --sender-cwd "$WORK/a" --sender-ready 'Wormhole code is' \
    --path-regex 'Receiving \(([^)]*)\)' \
    --sender "$(q ip netns exec "$A_NS" "${AS_USER[@]}" "${wh[@]}" send --code "$WORMHOLE_CODE" "$SRC")" \
    --receiver "$(q ip netns exec "$B_NS" "${AS_USER[@]}" "${wh[@]}" receive --accept-file -o "$WORK/out" "$WORMHOLE_CODE")"
}

for run in $(seq 1 "$RUNS"); do
  for tool in $TOOLS; do
    say "run $run: $tool, $BYTES bytes"
    if ! "run_$tool" "$run" | tee -a "$RESULTS"; then STATUS=1; fi
    # A fresh output dir for the next run, whatever happened.
    rm -rf "$WORK/out"; mkdir -p "$WORK/out"
    [[ ${#AS_USER[@]} == 0 ]] || chown "$BENCH_UID:$BENCH_UID" "$WORK/out"
  done
done
# `pipefail` makes the pipe above fail when the driver does; the lines are
# in $RESULTS either way.
"$PY" "$DRIVER" compare "$RESULTS"
if [[ $STATUS != 0 ]]; then
  say "================================================================"
  say "FAILED: a run did not deliver a byte-identical file, or a tool"
  say "exited non-zero or timed out (its line above has \"ok\": false)"
  say "================================================================"
fi
exit "$STATUS"
