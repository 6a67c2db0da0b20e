#!/usr/bin/env bash
# Connectivity across real NATs with real tern processes: in every lab
# topology a `tern relay` and coturn run on the public segment, `tern send`
# runs on host a and `tern receive` on host b, and the `connected` JSON events
# of both sides must name the path the topology allows (direct or relayed,
# TURN over UDP or TCP). Then a 32 MiB file through TURN only, a 16 MiB file
# over a path losing 1% each way, and the failure cases: wrong and expired
# TURN credentials where only TURN could work (exit 4, with a reason).
#
#   sudo Tests/lab/connect.sh [RUNS]     RUNS per topology (default $CONNECT_RUNS or 20)
#
# Environment: TERN_BINARY (default: .build/debug/tern), CONNECT_TOPOLOGIES
# (default: all), CONNECT_RESULTS (a file to append one line per run to:
# topology, run, outcome, path, local, remote, ms from paired to connected
# on each side).
#
# Prints PASS/FAIL per check with the time from pairing to a selected pair
# (the later of the two sides: min / median / max), and "N passed, N failed";
# exits 1 on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LAB=$HERE/lab.sh
TERN=${TERN_BINARY:-$ROOT/.build/debug/tern}
RUNS=${1:-${CONNECT_RUNS:-20}}
TOPOLOGIES=${CONNECT_TOPOLOGIES:-"lan cone symmetric-one symmetric-both udp-blocked udp-blocked-all"}
export LAB_ID=${LAB_ID:-cn$$}
export LAB_QUIET=1
SECRET=connect-secret
PASSED=0 FAILED=0
WORK=$(mktemp -d /tmp/tern-connect.XXXXXX)

[[ $(id -u) -eq 0 ]] || { echo "connect: must run as root (network namespaces, iptables)" >&2; exit 2; }
[[ -x $TERN ]] || { echo "connect: no tern binary at $TERN (run 'swift build' first)" >&2; exit 2; }

pass() { PASSED=$((PASSED + 1)); echo "PASS  $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL  $*"; }
lab() { "$LAB" "$@"; }
X() { "$LAB" exec "$@"; }
U() { "$LAB" user "$@"; }      # as the unprivileged user tern's users are

cleanup() {
  [[ -n ${RELAY_PID:-} ]] && kill "$RELAY_PID" 2>/dev/null || true
  lab down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# tern runs as an unprivileged user (lab.sh user): it gets its own copy of
# the binary (the build folder may not be open to it), reads the payloads and
# writes its output directories in $WORK, which that user owns.
chown "${LAB_USER_UID:-65534}:${LAB_USER_UID:-65534}" "$WORK"
chmod 755 "$WORK"
install -m 755 "$TERN" "$WORK/tern"
TERN=$WORK/tern

# The file every attempt sends (1 MiB, random); the received copy must match.
head -c 1048576 /dev/urandom >"$WORK/payload.bin"
PAYLOAD=$WORK/payload.bin

up() {                          # TOPOLOGY [COTURN_CLOCK_OFFSET]
  local out
  out=$(lab up "$1") && eval "$out" || return 1
  out=$(COTURN_FAKETIME=${2:-} lab coturn-start "$SECRET") && eval "$out" || return 1
}

start_relay() {                 # SECRET
  RELAY_LOG=$WORK/relay.log
  U r "$TERN" relay --listen "$R_IP:4747" --stun-listen "$R_IP:3479" \
    --turn-uri "turn:$R_IP:$TURN_PORT?transport=udp" --turn-uri "turn:$R_IP:$TURN_PORT?transport=tcp" \
    --turn-secret "$1" >"$RELAY_LOG" 2>&1 &
  RELAY_PID=$!
  for _ in $(seq 1 100); do
    grep -q "rendezvous_port=" "$RELAY_LOG" 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$RELAY_LOG" >&2
  return 1
}

stop_relay() {
  kill "$RELAY_PID" 2>/dev/null || true
  wait "$RELAY_PID" 2>/dev/null || true
  RELAY_PID=
}

# One transfer attempt with a pre-agreed code: receive on b into a fresh
# directory, send $PAYLOAD on a. Sets SEND_EXIT, RECV_EXIT, RECEIVED (1 when
# the received file is byte-identical) and the files $WORK/send.json,
# $WORK/recv.json.
attempt() {                     # NAMEPLATE [EXTRA FLAGS FOR BOTH SIDES...]
  local code="$1-aardvark-adroitness"; shift
  local out="$WORK/out-$code"
  rm -rf "$out"
  # An existing directory: a missing -o NAME would name the one file itself.
  mkdir "$out" && chown "${LAB_USER_UID:-65534}:${LAB_USER_UID:-65534}" "$out"
  U b env TERN_RELAY="ws://$R_IP:4747" "$TERN" receive --json --yes --timeout 60 -o "$out" "$@" "$code" \
    >"$WORK/recv.json" 2>"$WORK/recv.err" &
  local receiver=$!
  set +e
  U a env TERN_RELAY="ws://$R_IP:4747" "$TERN" send --json --code "$code" --timeout 60 "$@" "$PAYLOAD" \
    >"$WORK/send.json" 2>"$WORK/send.err"
  SEND_EXIT=$?
  wait "$receiver"
  RECV_EXIT=$?
  set -e
  RECEIVED=0
  cmp -s "$PAYLOAD" "$out/$(basename "$PAYLOAD")" && RECEIVED=1
  rm -rf "$out"
}

# attempt with a random file of BYTES instead of $PAYLOAD. Also sets TOOK
# (seconds) and VERIFIED (the receiver's count of `file` events with
# "verified":true).
attempt_large() {               # BYTES NAMEPLATE [EXTRA FLAGS...]
  local bytes=$1 small=$PAYLOAD started=$SECONDS; shift
  PAYLOAD=$WORK/large.bin
  head -c "$bytes" /dev/urandom >"$PAYLOAD"
  attempt "$@"
  TOOK=$((SECONDS - started))
  PAYLOAD=$small
  VERIFIED=$(grep -c '"event":"file".*"verified":true' "$WORK/recv.json" || true)
}

# A field of the `connected` event in FILE (empty when there is none).
field() {                       # FILE KEY
  sed -n '/"event":"connected"/p' "$1" | head -1 | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

show_failure() {
  echo "      send exit $SEND_EXIT, receive exit $RECV_EXIT"
  sed 's/^/      send | /' "$WORK/send.json" "$WORK/send.err" | tail -8
  sed 's/^/      recv | /' "$WORK/recv.json" "$WORK/recv.err" | tail -8
}

# Expected path per topology: "direct" or "relayed", and the TURN transport
# for relayed paths. symmetric-one is relayed: the cone side's router filters
# by port (Linux conntrack), so it drops the checks the symmetric side sends
# from its fresh per-destination port (docs/lab.md; the self-test proves hole
# punching fails there).
expect_path() {
  case $1 in
    lan | cone) echo direct ;;
    *) echo relayed ;;
  esac
}
expect_protocol() { [[ $1 == udp-blocked-all ]] && echo tcp || echo udp; }

summary() {                     # list of milliseconds -> "min/median/max ms"
  sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } printf "%d/%d/%d ms", a[1], a[int((NR + 1) / 2)], a[NR] }'
}

run_topology() {
  local topo=$1 want protocol ok=0 times=() i
  echo "--- $topo ($RUNS runs)"
  up "$topo" || { fail "$topo: lab up"; lab down >/dev/null 2>&1 || true; return; }
  start_relay "$SECRET" || { fail "$topo: relay start"; lab down >/dev/null 2>&1; return; }
  want=$(expect_path "$topo")
  protocol=$(expect_protocol "$topo")
  for i in $(seq 1 "$RUNS"); do
    attempt $((10 + i))
    local sp rp sms rms sproto rproto
    sp=$(field "$WORK/send.json" path) rp=$(field "$WORK/recv.json" path)
    sms=$(field "$WORK/send.json" since_paired_ms) rms=$(field "$WORK/recv.json" since_paired_ms)
    sproto=$(field "$WORK/send.json" relay_protocol) rproto=$(field "$WORK/recv.json" relay_protocol)
    local good=1
    [[ $SEND_EXIT -eq 0 && $RECV_EXIT -eq 0 && $RECEIVED -eq 1 && $sp == "$want" && $rp == "$want" ]] || good=0
    # A relayed path: at least one side's local candidate is the relay, over the expected transport.
    if [[ $want == relayed && $good -eq 1 ]]; then
      [[ $sproto == "$protocol" || $rproto == "$protocol" ]] || good=0
      [[ -z $sproto || $sproto == "$protocol" ]] && [[ -z $rproto || $rproto == "$protocol" ]] || good=0
    fi
    local later=$(( sms > rms ? sms : rms ))
    [[ -n ${CONNECT_RESULTS:-} ]] && echo "$topo $i $([[ $good -eq 1 ]] && echo ok || echo FAIL) send=$sp/$(field "$WORK/send.json" local)/$(field "$WORK/send.json" remote)/${sproto:--} recv=$rp/$(field "$WORK/recv.json" local)/$(field "$WORK/recv.json" remote)/${rproto:--} send_ms=$sms recv_ms=$rms" >>"$CONNECT_RESULTS"
    if [[ $good -eq 1 ]]; then
      ok=$((ok + 1))
      times+=("$later")
    else
      echo "      run $i: expected $want on both sides and the file intact, got send=${sp:-none} receive=${rp:-none} intact=$RECEIVED"
      show_failure
    fi
  done
  local stats
  stats=$(printf '%s\n' "${times[@]}" | summary)
  if [[ $ok -eq $RUNS ]]; then
    pass "$topo: $ok/$RUNS $want$([[ $want == relayed ]] && echo " (TURN over $protocol)"), file verified, paired to connected $stats"
  else
    fail "$topo: $ok/$RUNS $want, paired to connected $stats"
  fi
  stop_relay
  lab down
}

# --force-relay on both sides where a direct path exists: the path is relayed,
# no host or server-reflexive candidate is ever signalled, and a 32 MiB file
# goes through TURN intact.
run_force_relay() {
  echo "--- cone with --force-relay"
  up cone || { fail "force-relay: lab up"; return; }
  start_relay "$SECRET" || { fail "force-relay: relay start"; lab down >/dev/null 2>&1; return; }
  attempt_large 33554432 30 --force-relay
  local sl rl
  sl=$(field "$WORK/send.json" local) rl=$(field "$WORK/recv.json" local)
  if [[ $SEND_EXIT -eq 0 && $RECV_EXIT -eq 0 && $RECEIVED -eq 1 && $VERIFIED -eq 1 && $sl == relay && $rl == relay ]]; then
    pass "cone --force-relay: relayed on both sides (local relay/relay), 32 MiB through TURN verified and byte-identical in ${TOOK} s"
  else
    fail "cone --force-relay: expected relay/relay, got ${sl:-none}/${rl:-none}"
    show_failure
  fi
  stop_relay
  lab down
}

# A lossy path: lan with host a's link delayed 20 ms and losing 1% of
# packets each way (the delay box). A 16 MiB file must arrive verified and
# byte-identical over the direct path, its losses repaired by SCTP's
# retransmissions; the time is reported, not judged (make bench measures).
run_lossy() {
  echo "--- lan, 20 ms and 1% loss each way"
  up lan || { fail "lossy: lab up"; return; }
  start_relay "$SECRET" || { fail "lossy: relay start"; lab down >/dev/null 2>&1; return; }
  lab shape a eth0 --delay 20 --loss 1 --delay-in 20 --loss-in 1 >/dev/null || { fail "lossy: shape"; stop_relay; lab down; return; }
  attempt_large 16777216 50
  local sp rp
  sp=$(field "$WORK/send.json" path) rp=$(field "$WORK/recv.json" path)
  if [[ $SEND_EXIT -eq 0 && $RECV_EXIT -eq 0 && $RECEIVED -eq 1 && $VERIFIED -eq 1 && $sp == direct && $rp == direct ]]; then
    pass "lan at 1% loss each way, 40 ms round trip: 16 MiB direct, verified and byte-identical in ${TOOK} s"
  else
    fail "lan at 1% loss: expected a verified direct transfer, got send=${sp:-none} receive=${rp:-none} intact=$RECEIVED"
    show_failure
  fi
  stop_relay
  lab down
}

# Where only TURN works, TURN credentials the server refuses must end both
# sides with exit 4 and a reason that names the candidates tried and TURN.
run_bad_credentials() {         # LABEL RELAY_SECRET COTURN_CLOCK_OFFSET
  local label=$1 secret=$2 offset=$3
  echo "--- symmetric-both with $label TURN credentials"
  up symmetric-both "$offset" || { fail "$label credentials: lab up"; return; }
  start_relay "$secret" || { fail "$label credentials: relay start"; lab down >/dev/null 2>&1; return; }
  local started=$SECONDS
  attempt 40
  local took=$((SECONDS - started)) smsg rmsg
  smsg=$(sed -n 's/.*"event":"error".*"message":"\(.*\)"}/\1/p' "$WORK/send.json")
  rmsg=$(sed -n 's/.*"event":"error".*"message":"\(.*\)"}/\1/p' "$WORK/recv.json")
  if [[ $SEND_EXIT -eq 4 && $RECV_EXIT -eq 4 ]] && grep -q "local candidates" <<<"$smsg" && grep -q "TURN" <<<"$smsg" \
     && grep -q "could not connect" <<<"$rmsg"; then
    pass "$label TURN credentials: both sides exit 4 after ${took} s: $smsg"
  else
    fail "$label TURN credentials: expected exit 4 on both sides with a reason"
    show_failure
  fi
  stop_relay
  lab down
}

for topo in $TOPOLOGIES; do run_topology "$topo"; done
if [[ -z ${CONNECT_TOPOLOGIES:-} ]]; then
  run_force_relay
  run_lossy
  run_bad_credentials wrong "not-$SECRET" ""
  run_bad_credentials expired "$SECRET" "+2d"
fi

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
