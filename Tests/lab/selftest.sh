#!/usr/bin/env bash
# Proves the lab does what docs/lab.md says, with real traffic: every
# topology's NAT behaviour, the shaping tool, coturn (STUN and TURN), and that
# `down` leaves nothing behind, also after a failed `up`.
#
#   sudo Tests/lab/selftest.sh          (as root; about two minutes)
#   SELFTEST_ONLY="router_input cgnat"  only those tests
#
# Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$HERE/lab.sh
TOOL=$HERE/labtool.py
PY=$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || command -v python3)
export LAB_ID=${LAB_ID:-st$$}
export LAB_QUIET=1
SECRET=lab-secret
PASSED=0 FAILED=0

[[ $(id -u) -eq 0 ]] || { echo "selftest: must run as root" >&2; exit 2; }

pass() { PASSED=$((PASSED + 1)); echo "PASS  $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL  $*"; }
# check "DESCRIPTION" CMD...: PASS if CMD succeeds; on failure its output is shown.
check() {
  local what=$1 out; shift
  if out=$("$@" 2>&1); then pass "$what"; else fail "$what"; sed 's/^/      | /' <<<"$out"; fi
}

lab() { "$LAB" "$@"; }
not() { ! "$@"; }
# with_shape "HOST IFACE OPTIONS" CMD...: shape, then run CMD.
with_shape() { local spec=$1; shift; lab shape $spec && "$@"; }
with_unshape() { local spec=$1; shift; lab unshape $spec && "$@"; }
X() { "$LAB" exec "$@"; }         # X HOST CMD...
tool() { local h=$1; shift; "$LAB" exec "$h" "$PY" "$TOOL" "$@"; }

our_namespaces() { ip netns list | awk '{print $1}' | grep -E "^$LAB_ID-" || true; }

# Brings a topology up and imports its KEY=VALUE lines (A_IP, R_IP, ...).
up() {
  local out
  echo "--- $1"
  out=$(lab up "$1") || { fail "up $1"; return 1; }
  eval "$out"
}

down() {
  lab down
  if [[ -n $(our_namespaces) ]]; then fail "down leaves no namespaces ($(our_namespaces | xargs))"; fi
}

BEFORE=$(ip netns list | sort)
trap 'lab down >/dev/null 2>&1 || true' EXIT

# --- helpers that check one thing each ---------------------------------------

# "IP:PORT" replies of the echo server on r, for a probe from HOST to both ports
# from one socket.
mappings() { tool "$1" udp-probe --dest "$R_IP:5000" --dest "$R_IP:5001" | sed -n 's/.*reply=//p'; }

start_echo() { tool r echo-server --bind "$R_IP" --ports 5000,5001 >/dev/null 2>&1 & sleep 0.4; }

# Endpoint-independent mapping: both destinations saw the same IP:PORT, and
# the IP is the host's public address.
same_mapping() {           # HOST PUBLIC_IP
  local m; m=$(mappings "$1"); echo "$m"
  [[ $(wc -l <<<"$m") -eq 2 && $(sort -u <<<"$m" | wc -l) -eq 1 && ${m%%:*} == "$2" ]]
}

# Endpoint-dependent (symmetric) mapping: same public IP, different ports.
different_mapping() {      # HOST PUBLIC_IP
  local m; m=$(mappings "$1"); echo "$m"
  [[ $(wc -l <<<"$m") -eq 2 && $(sort -u <<<"$m" | wc -l) -eq 2 && $(cut -d: -f1 <<<"$m" | sort -u) == "$2" ]]
}

# UDP hole punching: a and b send to each other's public address:port at the
# same time for 2 s. Prints both results; succeeds if both sides got packets.
punch() {
  local ra rb
  ra=$(mktemp)
  tool a punch --port 40001 --peer "$B_PUBLIC_IP:40002" --seconds 2 >"$ra" 2>&1 &
  rb=$(tool b punch --port 40002 --peer "$A_PUBLIC_IP:40001" --seconds 2 2>&1 || true)
  wait $! || true
  echo "a: $(cat "$ra")"; echo "b: $rb"
  grep -q 'received=[1-9]' "$ra" && grep -q 'received=[1-9]' <<<"$rb"
  local rc=$?; rm -f "$ra"; return $rc
}
no_punch() { ! punch; }

# Median RTT in ms over COUNT pings, after one warm-up ping (ARP). The median,
# not the average: other work on the machine (a Swift build) can stall the
# delay line for a few ms now and then.
median_rtt() {             # HOST DEST COUNT
  X "$1" ping -c 1 -W 1 "$2" >/dev/null 2>&1 || true
  X "$1" ping -c "$3" -i 0.02 -W 1 "$2" | sed -n 's/.*time=\([0-9.]*\) ms/\1/p' | sort -n |
    awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'
}

rtt_between() {            # HOST DEST LOW HIGH
  local r; r=$(median_rtt "$1" "$2" 25); echo "median rtt ${r:-none} ms (want $3..$4)"
  [[ -n $r ]] && "$PY" -c "import sys; sys.exit(0 if $3 <= $r <= $4 else 1)"
}

loss_between() {           # HOST DEST LOW HIGH (percent, over 1000 flood pings)
  local l; l=$(X "$1" ping -q -f -c 1000 -W 1 "$2" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
  echo "loss ${l:-?}% (want $3..$4)"
  [[ -n $l ]] && "$PY" -c "import sys; sys.exit(0 if $3 <= $l <= $4 else 1)"
}

tcp_mbit() {               # SRC DST_HOST DST_IP SECONDS -> Mbit/s at the sink
  local f; f=$(mktemp)
  tool "$2" tcp-sink --port 5201 >"$f" 2>&1 &
  local sink=$!
  sleep 0.4
  tool "$1" tcp-send --dest "$3:5201" --seconds "$4" >/dev/null 2>&1 || true
  wait $sink || true
  sed -n 's/.*mbit=//p' "$f"; rm -f "$f"
}

mbit_between() {           # SRC DST_HOST DST_IP LOW HIGH
  local m; m=$(tcp_mbit "$1" "$2" "$3" 3); echo "${m:-?} Mbit/s (want $4..$5)"
  [[ -n $m ]] && "$PY" -c "import sys; sys.exit(0 if $4 <= $m <= $5 else 1)"
}

stun_maps_to() {           # HOST TRANSPORT PUBLIC_IP
  local out; out=$(tool "$1" stun --server "$R_IP:$TURN_PORT" --transport "$2"); echo "$out"
  [[ $out == "mapped=$3:"* ]]
}

# TURN end to end: HOST1 allocates on r (REST credentials from SECRET) and
# permits HOST2's public IP; HOST2 sends UDP to the relayed address and must get
# back, through the relay, the address the relay saw it from.
turn_roundtrip() {         # HOST1 TRANSPORT HOST2 HOST2_PUBLIC_IP
  local f rel rc=0; f=$(mktemp)
  tool "$1" turn --server "$R_IP:$TURN_PORT" --transport "$2" --secret "$SECRET" --peer "$4" --wait 3 >"$f" 2>&1 &
  local t=$!
  for _ in $(seq 1 30); do grep -q 'permitted=\|failed\|error' "$f" && break; sleep 0.1; done
  rel=$(sed -n 's/.*relayed=\([^ ]*\).*/\1/p' "$f")
  if [[ -n $rel ]]; then
    tool "$3" udp-probe --dest "$rel" --timeout 2 | grep "reply=$4:" || rc=1
  else rc=1; fi
  wait $t || true
  cat "$f"; rm -f "$f"; return $rc
}

tcp_seen_as() {            # HOST PUBLIC_IP: TCP to the echo server on r shows PUBLIC_IP
  tool "$1" tcp-probe --dest "$R_IP:5000" | grep "reply=$2:"
}

port_bound() { X "$1" ss -Hlnu "sport = :$2" | grep -q .; }   # HOST PORT (UDP)

turn_allocates() {         # HOST TRANSPORT
  tool "$1" turn --server "$R_IP:$TURN_PORT" --transport "$2" --secret "$SECRET" | grep "relayed=$R_IP:"
}

routers_dropped() { [[ $(block_counter na) -gt 0 && $(block_counter nb) -gt 0 ]]; }

block_counter() {          # ROUTER -> packets dropped by its LAB_BLOCK rules
  X "$1" iptables -w -L LAB_BLOCK -v -n -x | awk 'NR>2 {s+=$1} END {print s+0}'
}

# --- the tests ------------------------------------------------------------------

# Timing bounds: the lower bound proves the shaping is applied; the upper
# bounds are loose because the delay line is a Python process that a busy
# machine (a parallel build) slows down by several milliseconds.
test_lan() {
  up lan || return 0
  check "lan: a pings b" X a ping -c 3 -i 0.2 -W 1 "$B_IP"
  check "lan: a pings r" X a ping -c 2 -i 0.2 -W 1 "$R_IP"
  check "lan: unshaped RTT < 5 ms" rtt_between a "$B_IP" 0 5
  check "shape: --delay 20 --delay-in 20 gives ~40 ms RTT" \
    with_shape "a eth0 --delay 20 --delay-in 20" rtt_between a "$B_IP" 40 70
  check "shape: --loss 20 drops ~20% (1000 pings)" \
    with_shape "a eth0 --loss 20" loss_between a "$B_IP" 15 25
  check "shape: --rate 20 gives ~20 Mbit/s TCP" \
    with_shape "a eth0 --rate 20" mbit_between a b "$B_IP" 10 21
  check "shape: delay box moves > 100 Mbit/s TCP (1 ms each way)" \
    with_shape "a eth0 --delay 1 --delay-in 1" mbit_between a b "$B_IP" 20 100000
  check "shape: unshape returns to kernel speed (RTT < 5 ms)" \
    with_unshape "a eth0" rtt_between a "$B_IP" 0 5
  down
}

test_cone() {
  up cone || return 0
  start_echo
  check "cone: a appears at r as $A_PUBLIC_IP, same port for two destinations" same_mapping a "$A_PUBLIC_IP"
  check "cone: b appears at r as $B_PUBLIC_IP, same port for two destinations" same_mapping b "$B_PUBLIC_IP"
  check "cone: UDP hole punching a <-> b works" punch
  check "cone: TCP from a reaches r, source $A_PUBLIC_IP" \
    tcp_seen_as a "$A_PUBLIC_IP"
  check "cone: r cannot reach a's private address" not X r ping -c 1 -W 1 "$A_IP"
  check "coturn: starts in r" lab coturn-start "$SECRET"
  check "coturn: STUN binding over UDP, XOR-MAPPED-ADDRESS = $A_PUBLIC_IP" stun_maps_to a udp "$A_PUBLIC_IP"
  check "coturn: STUN binding over TCP, XOR-MAPPED-ADDRESS = $A_PUBLIC_IP" stun_maps_to a tcp "$A_PUBLIC_IP"
  check "coturn: TURN allocate (REST secret) + relay a <-> b" turn_roundtrip a udp b "$B_PUBLIC_IP"
  # The delay box spliced into a NATed link: a's side (router lan0 is moved
  # and re-created) and the router's public side (a bridge port).
  check "shape: a eth0 --delay 10 behind the NAT (~10 ms RTT to r)" \
    with_shape "a eth0 --delay 10" rtt_between a "$R_IP" 10 25
  check "shape: + na wan0 --delay 10 (~20 ms RTT to r)" \
    with_shape "na wan0 --delay 10" rtt_between a "$R_IP" 20 40
  check "shape: NAT mapping still endpoint-independent through two delay boxes" same_mapping a "$A_PUBLIC_IP"
  check "coturn: stops" lab coturn-stop
  check "coturn: no turnserver left in r" not port_bound r "$TURN_PORT"
  down
}

test_symmetric_one() {
  up symmetric-one || return 0
  start_echo
  check "symmetric-one: a (cone) keeps one mapping" same_mapping a "$A_PUBLIC_IP"
  check "symmetric-one: b (--random-fully) gets a new port per destination" different_mapping b "$B_PUBLIC_IP"
  check "symmetric-one: hole punching to predicted ports fails" no_punch
  down
}

test_symmetric_both() {
  up symmetric-both || return 0
  start_echo
  check "symmetric-both: a gets a new port per destination" different_mapping a "$A_PUBLIC_IP"
  check "symmetric-both: b gets a new port per destination" different_mapping b "$B_PUBLIC_IP"
  down
}

test_udp_blocked() {
  up udp-blocked || return 0
  start_echo
  check "udp-blocked: UDP a -> r works" same_mapping a "$A_PUBLIC_IP"
  check "udp-blocked: UDP b -> r works" same_mapping b "$B_PUBLIC_IP"
  check "udp-blocked: UDP a <-> b's router is dropped (no punch)" no_punch
  check "udp-blocked: ... by the routers' block rules" \
    routers_dropped
  check "coturn: starts in r" lab coturn-start "$SECRET"
  check "udp-blocked: TURN via r still connects a <-> b" turn_roundtrip a udp b "$B_PUBLIC_IP"
  down
}

test_udp_blocked_all() {
  up udp-blocked-all || return 0
  start_echo
  check "udp-blocked-all: UDP a -> r is dropped" not tool a udp-probe --dest "$R_IP:5000" --timeout 1
  check "udp-blocked-all: TCP a -> r works" \
    tcp_seen_as a "$A_PUBLIC_IP"
  check "coturn: starts in r" lab coturn-start "$SECRET"
  check "udp-blocked-all: STUN over UDP gets no answer" not tool a stun --server "$R_IP:$TURN_PORT" --timeout 1
  check "udp-blocked-all: STUN over TCP works" stun_maps_to a tcp "$A_PUBLIC_IP"
  check "udp-blocked-all: TURN allocate over TCP works" \
    turn_allocates a tcp
  down
}

# --- router input behaviour and the mapping clash ---------------------------

icmp_from() { tool "$1" icmp-probe --dest "$2" ${3:+--bind-port "$3"}; }        # HOST IP:PORT [BIND]
silent_from() { ! icmp_from "$@"; }

# The mapping clash (docs/lab.md): a's datagram from port PA reaches b's
# router at B_PUB:PB before b has sent anything; then b's own datagram from
# PB to a's PA leaves with another public port. Prints b's router's
# conntrack entry; succeeds if its reply port is not PB.
clash_seen() {             # PA PB
  tool a udp-probe --bind-port "$1" --dest "$B_PUBLIC_IP:$2" --timeout 0.3 >/dev/null || true
  tool b udp-probe --bind-port "$2" --dest "$A_PUBLIC_IP:$1" --timeout 0.3 >/dev/null || true
  local e; e=$(X nb grep "src=$B_IP .* sport=$2 dport=$1 " /proc/net/nf_conntrack || true); echo "${e:-no entry}"
  [[ -n $e && $(sed -n 's/.* dport=\([0-9]*\) .*/\1/p' <<<"$e") != "$2" ]]
}
no_clash() { ! clash_seen "$@"; }

# Hole punching in a chosen order: FIRST starts, SECOND 0.3 s later.
punch_ordered() {          # FIRST PORT_A PORT_B
  local ra rb
  ra=$(mktemp); rb=$(mktemp)
  if [[ $1 == a ]]; then
    tool a punch --port "$2" --peer "$B_PUBLIC_IP:$3" --seconds 1.5 >"$ra" 2>&1 &
    sleep 0.3; tool b punch --port "$3" --peer "$A_PUBLIC_IP:$2" --seconds 1.2 >"$rb" 2>&1 || true
  else
    tool b punch --port "$3" --peer "$A_PUBLIC_IP:$2" --seconds 1.5 >"$rb" 2>&1 &
    sleep 0.3; tool a punch --port "$2" --peer "$B_PUBLIC_IP:$3" --seconds 1.2 >"$ra" 2>&1 || true
  fi
  wait $! || true
  echo "a: $(cat "$ra")"; echo "b: $(cat "$rb")"
  grep -q 'received=[1-9]' "$ra" && grep -q 'received=[1-9]' "$rb"
  local rc=$?; rm -f "$ra" "$rb"; return $rc
}
no_punch_ordered() { ! punch_ordered "$@"; }

test_router_input() {
  up cone || return 0
  check "cone (drop): an unsolicited datagram to b's router gets no ICMP" silent_from a "$B_PUBLIC_IP:40100"
  check "cone (drop): no mapping clash" no_clash 40001 40002
  down
  up cone-reject || return 0
  check "cone-reject: an unsolicited datagram to b's router gets ICMP port unreachable" icmp_from a "$B_PUBLIC_IP:40100"
  check "cone-reject: no mapping clash (REJECT drops it before conntrack confirms)" no_clash 40001 40002
  check "cone-reject: UDP hole punching a <-> b works" punch
  down
  up cone-icmp || return 0
  check "cone-icmp: an unsolicited datagram to b's router gets ICMP port unreachable" icmp_from a "$B_PUBLIC_IP:40100"
  check "cone-icmp: mapping clash: b's reply to a's early datagram leaves from a new port" clash_seen 40001 40002
  check "cone-icmp: hole punching fails with a first" no_punch_ordered a 40011 40012
  check "cone-icmp: hole punching fails with b first" no_punch_ordered b 40021 40022
  down
  up cone-icmp-b || return 0
  check "cone-icmp-b: b's router answers ICMP, a's is silent" \
    both_ok icmp_from a "$B_PUBLIC_IP:40100" -- silent_from b "$A_PUBLIC_IP:40100"
  check "cone-icmp-b: hole punching fails with a first (b's router clashes)" no_punch_ordered a 40011 40012
  check "cone-icmp-b: hole punching works with b first" punch_ordered b 40021 40022
  down
  up cone-icmp-a || return 0
  check "cone-icmp-a: hole punching works with a first" punch_ordered a 40011 40012
  check "cone-icmp-a: hole punching fails with b first (a's router clashes)" no_punch_ordered b 40021 40022
  down
}

both_ok() {                # CMD1... -- CMD2...
  local first=() ; while [[ $1 != -- ]]; do first+=("$1"); shift; done; shift
  "${first[@]}" && "$@"
}

# --- one router, double NAT, the same prefix, TCP 443 only, TURN 438 --------

test_same_router() {
  up same-lan || return 0
  check "same-lan: a reaches b on the LAN ($B_IP)" X a ping -c 2 -i 0.2 -W 1 "$B_IP"
  down
  up hairpin || return 0
  check "hairpin: b's port comes from its range (45000-49999)" port_in_range b 45000 49999
  tool b echo-server --ports 45001 >/dev/null 2>&1 & sleep 0.4
  check "hairpin: a cannot reach b's LAN ($B_IP) (client isolation)" not X a ping -c 1 -W 1 "$B_IP"
  check "hairpin: a -> public $A_PUBLIC_IP:45001 reaches b, seen from the public address" \
    hairpin_reply "$A_PUBLIC_IP"
  down
  up no-hairpin || return 0
  tool b echo-server --ports 45001 >/dev/null 2>&1 & sleep 0.4
  check "no-hairpin: a -> public $A_PUBLIC_IP:45001 does not reach b" not hairpin_reply "$A_PUBLIC_IP"
  start_echo
  check "no-hairpin: a and b share the public address $A_PUBLIC_IP" \
    both_ok same_mapping a "$A_PUBLIC_IP" -- same_mapping b "$A_PUBLIC_IP"
  down
}

port_in_range() {          # HOST LOW HIGH: the host's ephemeral ports
  local r; r=$(X "$1" sysctl -n net.ipv4.ip_local_port_range | xargs); echo "$r"; [[ $r == "$2 $3" ]]
}
hairpin_reply() { tool a udp-probe --dest "$1:45001" --timeout 1 | grep "reply=$1:"; }

test_cgnat() {
  up cgnat || return 0
  start_echo
  check "cgnat: a (two NAT layers) appears at r as $A_PUBLIC_IP, same port for two destinations" same_mapping a "$A_PUBLIC_IP"
  check "cgnat: a's home router has a shared address (100.64.1.2)" has_addr na 100.64.1.2
  check "cgnat: r cannot reach the home router's 100.64.1.2" not X r ping -c 1 -W 1 100.64.1.2
  check "cgnat: UDP hole punching a <-> b works" punch
  down
}

test_roam() {
  up roam || return 0
  start_echo
  check "roam: a appears at r as $A_PUBLIC_IP (through na)" same_mapping a "$A_PUBLIC_IP"
  check "roam: UDP hole punching a <-> b works before the move" punch
  check "roam: lab.sh roam moves a" lab roam
  check "roam: a has only $A2_IP, on eth1" both_ok has_addr a "$A2_IP" -- not has_addr a "$A_IP"
  check "roam: a appears at r as $A2_PUBLIC_IP (through na2)" same_mapping a "$A2_PUBLIC_IP"
  A_PUBLIC_IP=$A2_PUBLIC_IP   # punch aims at a's public address: now na2's
  check "roam: UDP hole punching a <-> b works after the move" punch
  down
  up roam-relayed || return 0
  start_echo
  check "roam-relayed: UDP b -> r works" same_mapping b "$B_PUBLIC_IP"
  check "roam-relayed: UDP a <-> b is dropped (no punch)" no_punch
  down
}

test_same_prefix() {
  up same-prefix || return 0
  start_echo
  check "same-prefix: a and b are both 192.168.1.2" \
    both_ok has_addr a 192.168.1.2 -- has_addr b 192.168.1.2
  check "same-prefix: a appears at r as $A_PUBLIC_IP" same_mapping a "$A_PUBLIC_IP"
  check "same-prefix: UDP hole punching a <-> b works" punch
  down
}

test_tcp443_only() {
  up tcp443-only || return 0
  start_echo
  check "coturn: starts in r" lab coturn-start "$SECRET"
  check "tcp443-only: UDP a -> r is dropped" not tool a udp-probe --dest "$R_IP:5000" --timeout 1
  check "tcp443-only: TCP a -> r:5000 is dropped" not tool a tcp-probe --dest "$R_IP:5000" --timeout 1
  check "tcp443-only: TLS to r:443 reaches coturn (test certificate CN turn.tern.test)" tls_443
  down
}

tls_443() { echo | X a timeout 5 openssl s_client -connect "$R_IP:443" 2>&1 | grep "subject=CN *= *turn.tern.test"; }

test_turn_proxy() {
  up cone || return 0
  check "coturn: starts in r" lab coturn-start "$SECRET"
  check "turn-proxy: starts in r" lab turn-proxy-start
  check "turn-proxy: the first Allocate gets 438 Stale Nonce" \
    both_ok not tool a turn --server "$R_IP:3480" --secret "$SECRET" -- grep -q "refused=Allocate" "$(lab env | sed -n 's/^LAB_DIR=//p')/turn-proxy.log"
  check "turn-proxy: passes other requests on (STUN Binding answered by coturn)" stun_via_proxy
  down
}

has_addr() { X "$1" ip -br addr show | grep -w "$2"; }     # HOST IP
stun_via_proxy() { tool a stun --server "$R_IP:3480" | grep "mapped=$R_IP:"; }

test_cleanup() {
  echo "--- cleanup"
  check "up fails halfway (LAB_TEST_FAIL_AT=b) and exits non-zero" not env LAB_TEST_FAIL_AT=b "$LAB" up cone
  check "... and leaves no namespaces behind" no_namespaces
  # A run whose state directory is gone (say, /tmp cleaned) and with a delay
  # box running: down still finds everything by the LAB_ID prefix.
  local run=${LAB_ROOT:-/tmp/tern-lab}/$LAB_ID dl=""
  local setup=""
  if setup=$(lab up cone 2>&1 >/dev/null && lab shape a eth0 --delay 5 2>&1 >/dev/null); then dl=$(cat "$run/delayline-a-eth0.pid"); fi
  rm -rf "$run"
  check "down without the run dir removes namespaces and the delay line" down_removes_pid "$dl" "$setup"
  check "down twice is harmless" lab down
  check "up twice with the same LAB_ID is idempotent" up_twice
  down
}

no_namespaces() { [[ -z $(our_namespaces) ]]; }
down_removes_pid() {             # PID SETUP_OUTPUT
  [[ -n $1 ]] || { echo "setting up the delay line failed: $2"; return 1; }
  lab down || { echo "lab down failed"; return 1; }
  no_namespaces || { echo "namespaces left: $(our_namespaces | xargs)"; return 1; }
  ! alive "$1" || { echo "the delay line (pid $1) still runs: $(ps -o pid=,stat=,args= -p "$1")"; return 1; }
}
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null || true); [[ -n $st && $st != Z* ]]; }
up_twice() { lab up lan >/dev/null && lab up lan >/dev/null && [[ $(our_namespaces | wc -l) -eq 4 ]]; }

# SELFTEST_ONLY="router_input cgnat": only those tests (names without test_).
for t in lan cone symmetric_one symmetric_both udp_blocked udp_blocked_all router_input same_router cgnat \
  roam same_prefix tcp443_only turn_proxy cleanup; do
  [[ -z ${SELFTEST_ONLY:-} || " $SELFTEST_ONLY " == *" $t "* ]] && "test_$t"
done

# Namespaces that appeared during the run: none may be ours. (Another lab run
# in parallel may legitimately have added its own.)
AFTER=$(ip netns list | sort)
NEW=$(comm -13 <(echo "$BEFORE") <(echo "$AFTER") | awk '{print $1}')
if grep -q "^$LAB_ID-" <<<"$NEW"; then fail "namespaces left behind: $(grep "^$LAB_ID-" <<<"$NEW" | xargs)"
else pass "ip netns list: nothing of this run left${NEW:+ (others appeared meanwhile: $(xargs <<<"$NEW"))}"; fi

echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
