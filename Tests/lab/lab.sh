#!/usr/bin/env bash
# tern network lab: real processes behind real (Linux netfilter) NATs, built
# from network namespaces. See docs/lab.md for the topologies and numbers.
#
#   lab.sh up TOPOLOGY        build it, print KEY=VALUE lines (LAB_ID, A_IP, ...)
#   lab.sh down               remove everything of this run (also after a partial up)
#   lab.sh exec HOST CMD...   run CMD in HOST's namespace (a, b, r, na, nb, sw, ...)
#   lab.sh user HOST CMD...   the same as an unprivileged user ($LAB_USER_UID,
#                           default 65534, nobody): how tern itself is run
#   lab.sh status             namespaces, addresses, processes, shaping
#   lab.sh env                print the KEY=VALUE lines again
#   lab.sh shape HOST IFACE [--delay MS] [--jitter MS] [--loss PCT] [--rate MBIT]
#                           [--delay-in MS] [--loss-in PCT] [--rate-in MBIT]
#                           [--ecn MS] [--queue MS]
#   lab.sh unshape HOST IFACE
#       out = leaving HOST by IFACE, in (-in) = arriving; every `shape` sets the
#       link's whole shaping (what is not given is 0); with --queue or
#       --ecn the rates are the delay line's, a drop-tail queue of --queue
#       ms (default 50), and --ecn marks ECT packets CE past MS ms of
#       queueing; see docs/lab.md.
#   lab.sh coturn-start SECRET / coturn-stop
#       (COTURN_FAKETIME=+2d: coturn's clock runs that far ahead; TLS on 5349
#       with a test certificate, TCP 443 redirected to it, or to the plain
#       TCP listener with COTURN_443=tcp)
#   lab.sh roam               in a roam topology: host a leaves its first uplink
#                           (na) for its second (na2); prints MOVED_US=...
#   lab.sh turn-proxy-start / turn-proxy-stop
#       a TURN proxy on r:3480 in front of coturn that answers the first
#       authenticated request of each kind with 438 Stale Nonce
#
# Environment: LAB_ID, LAB_ROOT (default /tmp/tern-lab), LAB_QUIET=1,
# LAB_NAT_UDP_TIMEOUT / LAB_NAT_UDP_STREAM_TIMEOUT (seconds, NAT routers).
#
# Which run: $LAB_ID if set; for `up` a fresh "tl<pid>" otherwise; for the
# other commands the only run under $LAB_ROOT. Every interface and bridge lives
# inside a namespace named "$LAB_ID-<host>", so nothing is ever created in (or
# changed on) the host's own namespace, parallel runs cannot collide, and
# deleting the namespaces removes every veth and bridge.
set -euo pipefail

LAB_ROOT=${LAB_ROOT:-/tmp/tern-lab}
LAB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOPOLOGIES="lan lan6 cone cone-icmp cone-icmp-a cone-icmp-b cone-reject symmetric-one symmetric-one-icmp symmetric-both symmetric-both-icmp
  same-lan hairpin no-hairpin cgnat same-prefix udp-blocked udp-blocked-all tcp443-only roam roam-relayed"

# Addresses. The "internet" is 198.18.0.0/24 (RFC 2544 benchmarking range) on a
# bridge; private LANs are 10.77.1.0/24 (a) and 10.77.2.0/24 (b). A host's
# public address is the same in every topology: in `lan` the host itself has
# it, behind a NAT its router does.
NET_PUB=198.18.0
R_IP=$NET_PUB.10
A_PUB=$NET_PUB.11
B_PUB=$NET_PUB.12
UPSTREAM=$NET_PUB.254 # nobody answers: traffic to non-lab addresses dies here
# lan6: the same segment with IPv6 too, a ULA prefix (RFC 4193) besides each
# host's link-local fe80:: address; the host part as in IPv4 (r ::10, a ::11).
NET6=fd74:6e:
LAN_A=10.77.1
LAN_B=10.77.2
# roam: a's second uplink (its "Ethernet"), behind its own router na2.
LAN_A2=10.77.3
A2_PUB=$NET_PUB.13
TURN_PORT=3478
TURN_TLS_PORT=5349
TURN_MIN_PORT=49152
TURN_MAX_PORT=49251

die() { echo "lab: $*" >&2; exit 1; }
log() { [[ -n ${LAB_QUIET:-} ]] || echo "lab: $*" >&2; }

python_bin() {
  # The distribution's python3 (stdlib only), not a pyenv shim: it must work
  # under `ip netns exec` and as root.
  if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

# A process that still runs. Not `kill -0`: a stopped daemon whose parent
# (init, in some containers) never reaps it lingers as a zombie.
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null || true); [[ -n $st && $st != Z* ]]; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, iptables)"; }

need_tools() {
  local t missing=()
  for t in ip tc iptables ethtool; do command -v "$t" >/dev/null || missing+=("$t"); done
  [[ -n $(python_bin) ]] || missing+=(python3)
  [[ ${#missing[@]} -eq 0 ]] || die "missing tools: ${missing[*]} (apt-get install iproute2 iptables ethtool python3)"
}

# --- run identity -----------------------------------------------------------

# Picks the run for commands other than `up`: $LAB_ID, else the only run dir.
resolve_id() {
  if [[ -n ${LAB_ID:-} ]]; then return; fi
  local runs=()
  if [[ -d $LAB_ROOT ]]; then
    mapfile -t runs < <(find "$LAB_ROOT" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
  fi
  case ${#runs[@]} in
    1) LAB_ID=${runs[0]} ;;
    0) die "no lab run found under $LAB_ROOT (set LAB_ID)" ;;
    *) die "several lab runs under $LAB_ROOT (${runs[*]}); set LAB_ID" ;;
  esac
}

set_paths() {
  [[ $LAB_ID =~ ^[A-Za-z0-9]{1,10}$ ]] || die "LAB_ID must be 1-10 letters/digits (got '$LAB_ID')"
  RUN=$LAB_ROOT/$LAB_ID
}

ns() { echo "$LAB_ID-$1"; }               # namespace of a lab host
inns() { local h=$1; shift; ip netns exec "$(ns "$h")" "$@"; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# All namespaces of this run, found by name so `down` works without state files.
run_namespaces() { ip netns list | awk '{print $1}' | grep -E "^$LAB_ID-" || true; }

# --- building blocks --------------------------------------------------------

# A namespace with loopback up and IPv6 off (keeps router solicitations and
# MLD noise out of captures and of the delay line).
mk_ns() {
  local h=$1 n
  n=$(ns "$h")
  # Test hook for selftest.sh: make `up` fail halfway.
  [[ ${LAB_TEST_FAIL_AT:-} != "$h" ]] || die "failing at host $h (LAB_TEST_FAIL_AT)"
  ip netns add "$n"
  inns "$h" ip link set lo up
  inns "$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  echo "$h" >>"$RUN/hosts"
}

# A veth pair created directly inside two namespaces (never in the host's).
# Recorded so `shape` can find a link's other end.
mk_link() {
  local h1=$1 if1=$2 h2=$3 if2=$4
  ip -n "$(ns "$h1")" link add "$if1" type veth peer name "$if2" netns "$(ns "$h2")"
  inns "$h1" sysctl -qw "net.ipv6.conf.$if1.disable_ipv6=1" 2>/dev/null || true
  inns "$h2" sysctl -qw "net.ipv6.conf.$if2.disable_ipv6=1" 2>/dev/null || true
  ip -n "$(ns "$h1")" link set "$if1" up
  ip -n "$(ns "$h2")" link set "$if2" up
  echo "$h1 $if1 $h2 $if2" >>"$RUN/links"
}

# The "internet": one bridge in namespace sw, a port per attached host.
mk_internet() {
  mk_ns sw
  ip -n "$(ns sw)" link add internet type bridge
  ip -n "$(ns sw)" link set internet up
}

attach_internet() {            # HOST IFACE ADDR
  local h=$1 ifc=$2 addr=$3
  mk_link "$h" "$ifc" sw "p-$h"
  ip -n "$(ns sw)" link set "p-$h" master internet
  ip -n "$(ns "$h")" addr add "$addr/24" dev "$ifc"
}

# A host on the public segment (r, or a/b in `lan`).
public_host() {                # HOST ADDR
  mk_ns "$1"
  attach_internet "$1" eth0 "$2"
  ip -n "$(ns "$1")" route add default via "$UPSTREAM" dev eth0
}

# IPv6 on a host's interface (mk_ns turned it off): its link-local address
# and ADDR/64, both usable at once (no duplicate address detection), and no
# router solicitations (there is no router).
ipv6_on() {                    # HOST IFACE ADDR
  local h=$1 ifc=$2 addr=$3
  inns "$h" sysctl -qw "net.ipv6.conf.$ifc.accept_dad=0" "net.ipv6.conf.$ifc.router_solicitations=0" \
    "net.ipv6.conf.$ifc.accept_ra=0" net.ipv6.conf.lo.disable_ipv6=0 "net.ipv6.conf.$ifc.disable_ipv6=0"
  ip -n "$(ns "$h")" -6 addr add "$addr/64" dev "$ifc" nodad
}

# A home router: private LAN on lan0, public address on wan0, MASQUERADE.
# MODE: cone | symmetric (MASQUERADE --random-fully: a fresh random port per
# conntrack entry, i.e. per destination). Filtering is what Linux conntrack
# does: only replies from the exact address:port a mapping was sent to get in
# (port-restricted). INPUT says what the router does with an unsolicited
# packet to itself:
#   drop   (default) dropped silently in its INPUT chain, as most home
#          routers do; conntrack never confirms an entry for it;
#   icmp   nothing filters INPUT (plain Linux): the kernel answers UDP with
#          ICMP port unreachable, and conntrack CONFIRMS an entry for the
#          packet's flow, so a later packet of the LAN host to that same
#          address:port clashes with it and MASQUERADE gives it a fresh
#          source port (the "mapping clash");
#   reject iptables REJECT (icmp-port-unreachable) in INPUT: the ICMP answer
#          without the entry (the packet dies before conntrack confirms it).
# UPLINK: "internet" (default) or "HOST:IFACE:GATEWAY": wan0 is linked to
# IFACE of HOST (a carrier-grade NAT) instead of the internet bridge.
nat_router() {                 # ROUTER LANPREFIX PUBADDR MODE [INPUT] [UPLINK]
  local r=$1 lan=$2 pub=$3 mode=$4 input=${5:-drop} uplink=${6:-internet} masq=(-j MASQUERADE)
  [[ $mode == symmetric ]] && masq+=(--random-fully)
  mk_ns "$r"
  if [[ $uplink == internet ]]; then
    attach_internet "$r" wan0 "$pub"
    ip -n "$(ns "$r")" route add default via "$UPSTREAM" dev wan0
  else
    local up_host up_if up_gw
    IFS=: read -r up_host up_if up_gw <<<"$uplink"
    mk_link "$r" wan0 "$up_host" "$up_if"
    ip -n "$(ns "$r")" addr add "$pub/24" dev wan0
    ip -n "$(ns "$r")" route add default via "$up_gw" dev wan0
  fi
  inns "$r" sysctl -qw net.ipv4.ip_forward=1
  # How long an idle UDP mapping lives (kernel defaults 30 s before a reply,
  # 120 s after). Tests of keepalives can shorten them.
  [[ -z ${LAB_NAT_UDP_TIMEOUT:-} ]] || inns "$r" sysctl -qw "net.netfilter.nf_conntrack_udp_timeout=$LAB_NAT_UDP_TIMEOUT"
  [[ -z ${LAB_NAT_UDP_STREAM_TIMEOUT:-} ]] || inns "$r" sysctl -qw "net.netfilter.nf_conntrack_udp_timeout_stream=$LAB_NAT_UDP_STREAM_TIMEOUT"
  # lan0 is created by the host behind it (mk_link), addressed here.
  local ipt=(inns "$r" iptables -w)
  "${ipt[@]}" -t nat -A POSTROUTING -s "$lan.0/24" -o wan0 "${masq[@]}"
  "${ipt[@]}" -P FORWARD DROP
  "${ipt[@]}" -N LAB_BLOCK       # topology-specific drops go here (udp-blocked*)
  "${ipt[@]}" -A FORWARD -j LAB_BLOCK
  "${ipt[@]}" -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  "${ipt[@]}" -A FORWARD -i lan0 -o wan0 -j ACCEPT
  case $input in
    drop)
      "${ipt[@]}" -A INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
      "${ipt[@]}" -A INPUT -i wan0 -p icmp --icmp-type echo-request -j ACCEPT
      "${ipt[@]}" -A INPUT -i wan0 -j DROP ;;
    icmp)
      # Counts the kernel's port-unreachable answers (no target: a counter).
      "${ipt[@]}" -A OUTPUT -o wan0 -p icmp --icmp-type port-unreachable ;;
    reject)
      "${ipt[@]}" -A INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
      "${ipt[@]}" -A INPUT -i wan0 -p icmp --icmp-type echo-request -j ACCEPT
      "${ipt[@]}" -A INPUT -i wan0 -p udp -j REJECT --reject-with icmp-port-unreachable
      "${ipt[@]}" -A INPUT -i wan0 -j DROP ;;
    *) die "unknown router input mode '$input'" ;;
  esac
  # The kernel sends at most one ICMP error a second to a destination
  # (burst 6; net.ipv4.icmp_ratelimit). Real transfers are not seconds
  # apart; connect.sh's runs are, and would each inherit the previous run's
  # budget. Off where the router answers, so every run meets the same router.
  [[ $input == drop ]] || inns "$r" sysctl -qw net.ipv4.icmp_ratelimit=0
  echo "$mode $input" >"$RUN/nat-$r"
}

private_host() {               # HOST ROUTER LANPREFIX
  private_host_on "$1" "$2" "$3" lan0
}

private_host_on() {            # HOST ROUTER LANPREFIX ROUTER_IFACE
  local h=$1 r=$2 lan=$3 rif=$4
  mk_ns "$h"
  mk_link "$h" eth0 "$r" "$rif"
  ip -n "$(ns "$r")" addr add "$lan.1/24" dev "$rif"
  ip -n "$(ns "$h")" addr add "$lan.2/24" dev eth0
  ip -n "$(ns "$h")" route add default via "$lan.1" dev eth0
}

# a and b on one LAN behind na (a bridge in the router): a 10.77.1.2, b 10.77.1.3.
same_lan() {
  nat_router na "$LAN_A" "$A_PUB" cone drop
  ip -n "$(ns na)" link add lan0 type bridge
  ip -n "$(ns na)" link set lan0 up
  ip -n "$(ns na)" addr add "$LAN_A.1/24" dev lan0
  # With br_netfilter loaded (as here), bridged frames traverse FORWARD
  # (policy DROP) as lan0 -> lan0: a LAN switch forwards them.
  inns na iptables -w -I FORWARD -i lan0 -o lan0 -j ACCEPT
  local h i=2
  for h in a b; do
    mk_ns "$h"
    mk_link "$h" eth0 na "lan-$h"
    ip -n "$(ns na)" link set "lan-$h" master lan0
    ip -n "$(ns "$h")" addr add "$LAN_A.$i/24" dev eth0
    ip -n "$(ns "$h")" route add default via "$LAN_A.1" dev eth0
    i=$((i + 1))
  done
}

# Two NATed hosts: a behind na, b behind nb, both routers on the internet.
two_nats() {                   # MODE_A MODE_B [INPUT_A] [INPUT_B]
  nat_router na "$LAN_A" "$A_PUB" "$1" "${3:-drop}"
  nat_router nb "$LAN_B" "$B_PUB" "$2" "${4:-drop}"
  private_host a na "$LAN_A"
  private_host b nb "$LAN_B"
}

# One router (na, cone, dropping input) with a and b on two LAN ports:
# a on lan0 (10.77.1.0/24), b on lan1 (10.77.2.0/24), both masqueraded to
# the one public address. The router does not route between its LANs
# (client isolation, as on guest networks), so host candidates cannot meet.
# HAIRPIN on: a packet from a LAN to the public address comes back in, to
# the host whose mapping it is, with its source masqueraded as well (so
# each side sees the other's public address:port, RFC 4787 REQ-9). Linux
# has no endpoint-independent mapping table to look that host up in, so
# each LAN gets its own port range, kept by port preservation: a's
# sockets bind in 40000-44999 (its ip_local_port_range), b's in
# 45000-49999, and the hairpin rules DNAT by range.
one_router() {                 # HAIRPIN (on|off)
  local r=na pub=$A_PUB
  nat_router "$r" "$LAN_A" "$pub" cone drop
  private_host a "$r" "$LAN_A"
  private_host_on b "$r" "$LAN_B" lan1
  inns "$r" iptables -w -t nat -A POSTROUTING -s "$LAN_B.0/24" -o wan0 -j MASQUERADE
  inns "$r" iptables -w -A FORWARD -i lan1 -o wan0 -j ACCEPT
  inns a sysctl -qw net.ipv4.ip_local_port_range="40000 44999"
  inns b sysctl -qw net.ipv4.ip_local_port_range="45000 49999"
  [[ $1 == on ]] || return 0
  local ipt=(inns "$r" iptables -w)
  "${ipt[@]}" -t nat -A PREROUTING -i lan+ -d "$pub" -p udp --dport 40000:44999 -j DNAT --to-destination "$LAN_A.2"
  "${ipt[@]}" -t nat -A PREROUTING -i lan+ -d "$pub" -p udp --dport 45000:49999 -j DNAT --to-destination "$LAN_B.2"
  "${ipt[@]}" -t nat -A POSTROUTING -o lan+ -m conntrack --ctstate DNAT -m conntrack --ctorigdst "$pub" -j SNAT --to-source "$pub"
  "${ipt[@]}" -A FORWARD -i lan+ -o lan+ -m conntrack --ctstate DNAT -j ACCEPT
}

# Double NAT: a behind its home router na, whose WAN (100.64.1.2) is the
# inside of a carrier-grade NAT cg (RFC 6598 shared address space,
# 100.64.1.1) with the public address; b behind its own cone router nb.
# Both NAT layers are cone (port-preserving) and drop unsolicited input.
double_nat() {
  nat_router cg 100.64.1 "$A_PUB" cone drop
  # cg's LAN side is lan0, created by na's uplink link.
  nat_router na "$LAN_A" 100.64.1.2 cone drop "cg:lan0:100.64.1.1"
  ip -n "$(ns cg)" addr add 100.64.1.1/24 dev lan0
  nat_router nb "$LAN_B" "$B_PUB" cone drop
  private_host a na "$LAN_A"
  private_host b nb "$LAN_B"
}

# A host that roams: a has two uplinks, each behind its own cone router
# that drops unsolicited input: eth0 to na (10.77.1.0/24, public
# 198.18.0.11, its "Wi-Fi") and eth1 to na2 (10.77.3.0/24, public
# 198.18.0.13, its "Ethernet"); b behind cone nb. At first only eth0 has
# an address and the default route (eth1's link is up, unaddressed: the
# cable is in, nothing configured yet); `lab.sh roam` moves a to eth1.
roam_topology() {
  two_nats cone cone
  nat_router na2 "$LAN_A2" "$A2_PUB" cone drop
  mk_link a eth1 na2 lan0
  ip -n "$(ns na2)" addr add "$LAN_A2.1/24" dev lan0
  # r counts the TURN Allocate success responses (STUN type 0x0103, RFC
  # 8656 §7.3) it sends to a's second public address: allocations a made
  # through na2 (`lab.sh exec r iptables -L OUTPUT -v -x`).
  inns r iptables -w -A OUTPUT -d "$A2_PUB" -p udp --sport "$TURN_PORT" \
    -m u32 --u32 "0>>22&0x3C@8>>16=0x0103" -m comment --comment turn-allocated-to-a2
}

# a leaves its first uplink for the second, as a laptop whose Wi-Fi goes
# while Ethernet comes up: eth1 gets 10.77.3.2 and the default route (via
# na2) first, then eth0 loses its address and goes down. Every candidate
# a had (host, server-reflexive and the TURN allocation, all through na)
# stops working at once; a's sockets stay open. One `ip -batch`, so the
# steps are microseconds apart. Prints MOVED_US=<wall clock in
# microseconds> taken just before the move.
cmd_roam() {
  need_root; resolve_id; set_paths
  [[ $(cat "$RUN/topology" 2>/dev/null) == roam* ]] || die "run $LAB_ID is not a roam topology"
  echo "MOVED_US=${EPOCHREALTIME/./}"
  printf '%s\n' "addr add $LAN_A2.2/24 dev eth1" "route replace default via $LAN_A2.1 dev eth1" \
    "addr flush dev eth0" "link set eth0 down" | inns a ip -batch -
  log "a moved from eth0 (na) to eth1 (na2)"
}

# --- up / down / env / status ----------------------------------------------

build_topology() {
  local topo=$1
  mk_internet
  public_host r "$R_IP"
  case $topo in
    lan)
      public_host a "$A_PUB"
      public_host b "$B_PUB" ;;
    lan6)
      public_host a "$A_PUB"
      public_host b "$B_PUB"
      ipv6_on r eth0 "$NET6:10"
      ipv6_on a eth0 "$NET6:11"
      ipv6_on b eth0 "$NET6:12" ;;
    cone)                two_nats cone cone ;;
    cone-icmp)           two_nats cone cone icmp icmp ;;
    cone-icmp-a)         two_nats cone cone icmp drop ;;
    cone-icmp-b)         two_nats cone cone drop icmp ;;
    cone-reject)         two_nats cone cone reject reject ;;
    symmetric-one)       two_nats cone symmetric ;;
    symmetric-one-icmp)  two_nats cone symmetric icmp icmp ;;
    symmetric-both)      two_nats symmetric symmetric ;;
    symmetric-both-icmp) two_nats symmetric symmetric icmp icmp ;;
    same-lan)            same_lan ;;
    hairpin)             one_router on ;;
    no-hairpin)          one_router off ;;
    cgnat)               double_nat ;;
    roam)                roam_topology ;;
    roam-relayed)
      # roam, and b's router lets UDP out to r only: every path to b,
      # before the move and after, goes through a TURN allocation.
      roam_topology
      inns nb iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p udp ! -d "$R_IP" -j DROP ;;
    same-prefix)
      # Both LANs are 192.168.1.0/24 and both hosts 192.168.1.2: each side's
      # host candidate is the other's own address.
      LAN_A=192.168.1 LAN_B=192.168.1
      two_nats cone cone ;;
    udp-blocked)
      # Outbound UDP is dropped except to r (the STUN/TURN server and the
      # relay): only TURN via r (or the relay) connects a and b.
      two_nats cone cone
      inns na iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p udp ! -d "$R_IP" -j DROP
      inns nb iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p udp ! -d "$R_IP" -j DROP ;;
    udp-blocked-all)
      # No outbound UDP at all; TCP (to r) still works: TURN over TCP or the relay.
      two_nats cone cone
      inns na iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p udp -j DROP
      inns nb iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p udp -j DROP ;;
    tcp443-only)
      # A corporate firewall: nothing leaves the LANs but TCP to port 443
      # (and the relay's WebSocket port 4747 on r, for the mailbox).
      two_nats cone cone
      local n
      for n in na nb; do
        inns "$n" iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p tcp --dport 443 -j RETURN
        inns "$n" iptables -w -A LAB_BLOCK -i lan0 -o wan0 -p tcp -d "$R_IP" --dport 4747 -j RETURN
        inns "$n" iptables -w -A LAB_BLOCK -i lan0 -o wan0 -j DROP
      done ;;
  esac
}

write_env() {
  local topo=$1 a_ip b_ip
  case $topo in
    lan | lan6) a_ip=$A_PUB; b_ip=$B_PUB ;;
    same-lan) a_ip=$LAN_A.2; b_ip=$LAN_A.3 ;;
    same-prefix) a_ip=192.168.1.2; b_ip=192.168.1.2 ;;
    *) a_ip=$LAN_A.2; b_ip=$LAN_B.2 ;;
  esac
  local b_pub=$B_PUB
  case $topo in same-lan | hairpin | no-hairpin) b_pub=$A_PUB ;; esac
  {
    echo "LAB_ID=$LAB_ID"
    echo "LAB_DIR=$RUN"
    echo "LAB_TOPOLOGY=$topo"
    echo "A_NS=$(ns a)"
    echo "B_NS=$(ns b)"
    echo "R_NS=$(ns r)"
    echo "A_IP=$a_ip"
    echo "B_IP=$b_ip"
    echo "R_IP=$R_IP"
    echo "A_PUBLIC_IP=$A_PUB"
    [[ $topo != roam* ]] || { echo "A2_IP=$LAN_A2.2"; echo "A2_PUBLIC_IP=$A2_PUB"; }
    echo "B_PUBLIC_IP=$b_pub"
    echo "TURN_PORT=$TURN_PORT"
    if [[ $topo == lan6 ]]; then
      local h H
      for h in a b r; do
        H=${h^^}
        echo "${H}_IP6=$(ip -n "$(ns "$h")" -6 -o addr show dev eth0 scope global | sed -E 's|.*inet6 ([0-9a-f:]+)/.*|\1|')"
        echo "${H}_LL6=$(ip -n "$(ns "$h")" -6 -o addr show dev eth0 scope link | sed -E 's|.*inet6 ([0-9a-f:]+)/.*|\1|')"
      done
    fi
  } >"$RUN/env"
}

cmd_up() {
  local topo=${1:-}
  [[ -n $topo ]] || die "usage: lab.sh up TOPOLOGY (one of: $(xargs <<<"$TOPOLOGIES"))"
  [[ " ${TOPOLOGIES//$'\n'/ } " == *" $topo "* ]] || die "unknown topology '$topo' (one of: $(xargs <<<"$TOPOLOGIES"))"
  need_root; need_tools
  LAB_ID=${LAB_ID:-tl$$}
  set_paths
  # Idempotent: a leftover run with the same id is torn down first.
  if [[ -d $RUN || -n $(run_namespaces) ]]; then log "run $LAB_ID exists; tearing it down first"; teardown; fi
  mkdir -p "$RUN"
  : >"$RUN/hosts"; : >"$RUN/links"
  echo "$topo" >"$RUN/topology"
  # A failed `up` leaves nothing behind (set -e exits through this trap).
  trap '[[ $? -eq 0 ]] || { echo "lab: up failed; cleaning up" >&2; teardown; }' EXIT
  build_topology "$topo"
  write_env "$topo"
  trap - EXIT
  cat "$RUN/env"
}

# Stops every process inside the run's namespaces (only ours can be there:
# the namespaces are created by this script), then deletes the namespaces,
# which removes every veth, bridge, qdisc and iptables rule with them.
teardown() {
  local n pids p all=""
  for n in $(run_namespaces); do
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    all+=" $pids"
    [[ -z $pids ]] || kill -TERM $pids 2>/dev/null || true
  done
  for _ in $(seq 1 20); do
    pids=""
    for n in $(run_namespaces); do pids+=" $(ip netns pids "$n" 2>/dev/null || true)"; done
    [[ -z ${pids// /} ]] && break
    sleep 0.1
  done
  for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
  # A process leaves its namespace's pid list before it has finished dying
  # (more so on a loaded machine): wait until each one is really gone.
  for p in $all; do
    for _ in $(seq 1 30); do alive "$p" || break; sleep 0.1; done
  done
  for n in $(run_namespaces); do ip netns del "$n" 2>/dev/null || true; done
  # ip netns del unmounts at once; wait until the names are really gone.
  for _ in $(seq 1 20); do [[ -z $(run_namespaces) ]] && break; sleep 0.1; done
  [[ -z $(run_namespaces) ]] || echo "lab: warning: namespaces left: $(run_namespaces | xargs)" >&2
  [[ -n ${RUN:-} && $RUN == "$LAB_ROOT"/* ]] && rm -rf "$RUN"
  rmdir "$LAB_ROOT" 2>/dev/null || true
}

cmd_down() {
  need_root
  if [[ -z ${LAB_ID:-} ]] && [[ ! -d $LAB_ROOT || -z $(ls -A "$LAB_ROOT" 2>/dev/null) ]]; then
    log "nothing to tear down"; return 0
  fi
  resolve_id; set_paths
  teardown
  log "run $LAB_ID removed"
}

cmd_env() { resolve_id; set_paths; [[ -f $RUN/env ]] || die "run $LAB_ID has no env (not up?)"; cat "$RUN/env"; }

cmd_exec() {
  [[ $# -ge 2 ]] || die "usage: lab.sh exec HOST CMD..."
  resolve_id; set_paths
  local h=$1; shift
  ns_exists "$(ns "$h")" || die "no host '$h' in run $LAB_ID"
  exec ip netns exec "$(ns "$h")" "$@"
}

# Users are not root: tern runs in the lab as an unprivileged account, so a
# socket or file option only root may set fails here as it would for them.
LAB_USER_UID=${LAB_USER_UID:-65534}
cmd_user() {
  [[ $# -ge 2 ]] || die "usage: lab.sh user HOST CMD..."
  resolve_id; set_paths
  local h=$1; shift
  ns_exists "$(ns "$h")" || die "no host '$h' in run $LAB_ID"
  exec ip netns exec "$(ns "$h")" setpriv --reuid="$LAB_USER_UID" --regid="$LAB_USER_UID" --clear-groups -- "$@"
}

cmd_status() {
  resolve_id; set_paths
  local n
  echo "run $LAB_ID ($(cat "$RUN/topology" 2>/dev/null || echo '?')) in $RUN"
  for n in $(run_namespaces); do
    echo "== $n"
    ip -n "$n" -br addr show | grep -v '^lo ' | sed 's/^/   /'
    tc -n "$n" qdisc show | grep -v 'noqueue\|ingress ffff' | sed 's/^/   /' || true
    local pids; pids=$(ip netns pids "$n" | xargs)
    [[ -z $pids ]] || ps -o pid=,args= -p "${pids// /,}" | sed 's/^/   proc /'
  done
  for n in "$RUN"/shape-*; do [[ -f $n ]] && echo "shaping ${n##*/shape-}: $(cat "$n")"; done
  return 0
}

# --- shaping ----------------------------------------------------------------
#
# This kernel has no sch_netem. Instead:
#   rate  -> tbf on the sending veth end (kernel, exact enough, cheap)
#   delay, jitter, loss -> a "delay box": a namespace spliced into the middle
#            of the link, where the delay line (delayline.c, compiled into
#            the run dir, or delayline.py) moves raw Ethernet frames between
#            two veths (AF_PACKET), holding each for DELAY ms and dropping with
#            probability LOSS. The box has no IP addresses and no forwarding,
#            so the kernel never routes through it. When a link has no delay
#            and no loss left, the box forwards in the kernel instead (tc
#            ingress + mirred redirect), at full speed.
#   rate with --queue or --ecn -> the delay line's own bottleneck (a
#            drop-tail queue it can mark ECT packets CE in), no tbf.
# Loss is done in the box and not with iptables -m statistic on the host:
# netfilter drops of locally sent packets come back to the sender as EPERM
# from sendmsg (a real lossy link is silent), which would change how tern
# behaves.

# Finds the registered link with end HOST IFACE. Sets L_H1 L_I1 L_H2 L_I2 and
# L_SIDE (1 if HOST IFACE is the first end).
find_link() {
  local h=$1 i=$2 h1 i1 h2 i2
  while read -r h1 i1 h2 i2; do
    if [[ $h1 == "$h" && $i1 == "$i" ]]; then L_SIDE=1
    elif [[ $h2 == "$h" && $i2 == "$i" ]]; then L_SIDE=2
    else continue; fi
    L_H1=$h1 L_I1=$i1 L_H2=$h2 L_I2=$i2
    return 0
  done <"$RUN/links"
  die "no link $h:$i in run $LAB_ID (links: $(awk '{printf "%s:%s-%s:%s ", $1,$2,$3,$4}' "$RUN/links"))"
}

offloads_off() {               # NS IFACE: frames must be plain, checksummed, <= MTU
  ip netns exec "$1" ethtool -K "$2" tx off sg off tso off gso off gro off >/dev/null 2>&1 || true
}

# Splices namespace BOX between end 1 and end 2 of the link: end 2's veth is
# moved into the box and renamed "near" (its peer is still end 1), and a new
# veth pair box:"far" <-> end 2 is created, end 2 getting the old name, MAC,
# MTU, addresses, routes and bridge port back. iptables rules match
# interfaces by name, so they keep working; neighbours keep their ARP
# entries because the MAC is the same.
insert_box() {                 # BOX
  local box=$1 n2 mac mtu master addrs routes a r
  n2=$(ns "$L_H2")
  mac=$(ip -n "$n2" -o link show dev "$L_I2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  mtu=$(ip -n "$n2" -o link show dev "$L_I2" | grep -o 'mtu [0-9]*' | cut -d' ' -f2)
  master=$(ip -n "$n2" -o link show dev "$L_I2" | grep -o 'master [^ ]*' | cut -d' ' -f2 || true)
  addrs=$(ip -n "$n2" -o -4 addr show dev "$L_I2" | awk '{print $4}')
  routes=$(ip -n "$n2" -4 route show dev "$L_I2" | grep -v 'proto kernel' || true)

  ip netns add "$box"
  ip -n "$box" link set lo up
  ip netns exec "$box" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$n2" link set "$L_I2" netns "$box"
  ip -n "$box" link set "$L_I2" name near
  ip -n "$box" link add far type veth peer name "$L_I2" netns "$n2"
  ip netns exec "$n2" sysctl -qw "net.ipv6.conf.$L_I2.disable_ipv6=1" 2>/dev/null || true
  ip -n "$n2" link set "$L_I2" address "$mac" mtu "$mtu"
  [[ -z $master ]] || ip -n "$n2" link set "$L_I2" master "$master"
  for a in $addrs; do ip -n "$n2" addr add "$a" dev "$L_I2"; done
  ip -n "$n2" link set "$L_I2" up
  while read -r r; do [[ -z $r ]] || ip -n "$n2" route add $r dev "$L_I2"; done <<<"$routes"
  ip netns exec "$box" tc qdisc del dev near root 2>/dev/null || true   # a tbf that moved along
  ip -n "$box" link set near mtu "$mtu" promisc on up
  ip -n "$box" link set far mtu "$mtu" promisc on up
  offloads_off "$box" near; offloads_off "$box" far
  offloads_off "$(ns "$L_H1")" "$L_I1"; offloads_off "$n2" "$L_I2"
}

# Kernel passthrough in the box (no delay, no loss): redirect each side's
# ingress to the other side's egress.
box_passthrough() {            # BOX on|off
  local box=$1 d
  for d in near far; do ip netns exec "$box" tc qdisc del dev "$d" ingress 2>/dev/null || true; done
  [[ $2 == on ]] || return 0
  ip netns exec "$box" tc qdisc add dev near ingress
  ip netns exec "$box" tc filter add dev near parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev far
  ip netns exec "$box" tc qdisc add dev far ingress
  ip netns exec "$box" tc filter add dev far parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev near
}

stop_delayline() {             # PIDFILE
  local pf=$1 pid
  [[ -f $pf ]] || return 0
  pid=$(cat "$pf"); rm -f "$pf"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 30); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# tbf: RATE in Mbit/s on NS IFACE's egress; the queue holds ~50 ms (or 64 KB
# at least), like a modest home-router buffer.
set_rate() {                   # NS IFACE MBIT
  local n=$1 i=$2 rate=$3 burst limit
  ip netns exec "$n" tc qdisc del dev "$i" root 2>/dev/null || true
  is_zero "$rate" && return 0
  burst=$("$(python_bin)" -c "print(max(4500, int($rate*1e6/8*0.002)))")      # 2 ms of data
  limit=$("$(python_bin)" -c "print(max(65536, int($rate*1e6/8*0.050)))")     # 50 ms queue
  ip netns exec "$n" tc qdisc add dev "$i" root tbf rate "${rate}mbit" burst "$burst" limit "$limit"
}

is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]] || die "not a number: '$1'"; }
is_zero() { [[ $1 =~ ^[0.]*$ ]]; }      # "0", "0.0", or several zeros glued together

cmd_shape() {
  [[ $# -ge 2 ]] || die "usage: lab.sh shape HOST IFACE [--delay MS] [--jitter MS] [--loss PCT] [--rate MBIT] [--delay-in MS] [--loss-in PCT] [--rate-in MBIT] [--ecn MS] [--queue MS]"
  need_root; resolve_id; set_paths
  local h=$1 i=$2; shift 2
  # out = leaving HOST through IFACE, in = arriving at HOST through IFACE.
  local d_out=0 d_in=0 j=0 l_out=0 l_in=0 r_out=0 r_in=0 ecn=0 queue=
  while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || die "option $1 needs a value"
    is_num "$2"
    case $1 in
      --delay) d_out=$2 ;; --delay-in) d_in=$2 ;; --jitter) j=$2 ;;
      --loss) l_out=$2 ;; --loss-in) l_in=$2 ;;
      --rate) r_out=$2 ;; --rate-in) r_in=$2 ;;
      --ecn) ecn=$2 ;; --queue) queue=$2 ;;
      *) die "unknown option $1" ;;
    esac
    shift 2
  done
  find_link "$h" "$i"
  # Canonical direction of the box: near (end 1) -> far (end 2) is "fwd".
  local d_fwd d_rev l_fwd l_rev r_fwd r_rev
  if [[ $L_SIDE == 1 ]]; then d_fwd=$d_out d_rev=$d_in l_fwd=$l_out l_rev=$l_in r_fwd=$r_out r_rev=$r_in
  else d_fwd=$d_in d_rev=$d_out l_fwd=$l_in l_rev=$l_out r_fwd=$r_in r_rev=$r_out; fi
  local key="$L_H1-$L_I1" box; box=$(ns "x$L_H1-$L_I1")

  # --queue or --ecn: the delay line is the bottleneck (it owns the queue
  # it marks in), so the rates are its own and no tbf is set.
  local need_box=0 line_rates=() rates="rate=${r_out}/${r_in}mbit"
  is_zero "$d_fwd$d_rev$l_fwd$l_rev$j" || need_box=1
  if [[ -n $queue ]] || ! is_zero "$ecn"; then
    queue=${queue:-50}
    rates="$rates (the delay line's) queue=${queue}ms ecn=${ecn}ms"
    need_box=1
    line_rates=(--rate-fwd "$r_fwd" --rate-rev "$r_rev" --queue-ms "$queue" --ecn-ms "$ecn")
    r_out=0 r_in=0
  fi
  if [[ $need_box == 1 ]] && ! ns_exists "$box"; then insert_box "$box"; fi

  # Rates: tbf on the sending end of each direction. After insert_box, so
  # the qdisc lands on end 2's new veth (same name), not in the box.
  set_rate "$(ns "$h")" "$i" "$r_out"
  if [[ $L_SIDE == 1 ]]; then set_rate "$(ns "$L_H2")" "$L_I2" "$r_in"
  else set_rate "$(ns "$L_H1")" "$L_I1" "$r_in"; fi
  if ns_exists "$box"; then
    stop_delayline "$RUN/delayline-$key.pid"
    if [[ $need_box == 1 ]]; then
      box_passthrough "$box" off
      start_delayline "$box" "$key" --delay-fwd "$d_fwd" --delay-rev "$d_rev" \
        --loss-fwd "$l_fwd" --loss-rev "$l_rev" --jitter "$j" "${line_rates[@]}"
    else
      box_passthrough "$box" on
    fi
  fi
  echo "delay=${d_out}/${d_in}ms jitter=${j}ms loss=${l_out}/${l_in}% $rates (out/in as seen from $h:$i)" >"$RUN/shape-$h-$i"
  log "shaped $h:$i: $(cat "$RUN/shape-$h-$i")"
}

# The delay line to run: delayline.c compiled into the run dir with the
# system's cc (once per run), or delayline.py where there is no compiler,
# the compile fails, or LAB_DELAYLINE=python asks for it. Sets DL_CMD.
delayline_cmd() {
  local bin=$RUN/delayline cc
  if [[ ${LAB_DELAYLINE:-} != python ]]; then
    if [[ ! -x $bin ]]; then
      cc=$(command -v cc || command -v gcc || command -v clang || true)
      if [[ -n $cc ]] && "$cc" -O2 -o "$bin.$$" "$LAB_HERE/delayline.c" 2>"$RUN/delayline-cc.log"; then
        mv "$bin.$$" "$bin"
      else
        rm -f "$bin.$$"
        log "no C delay line (${cc:-no compiler}; see $RUN/delayline-cc.log): using delayline.py"
      fi
    fi
    if [[ -x $bin ]]; then DL_CMD=("$bin"); return 0; fi
  fi
  DL_CMD=("$(python_bin)" -u "$LAB_HERE/delayline.py")
}

start_delayline() {            # BOX KEY ARGS...
  local box=$1 key=$2; shift 2
  local logf=$RUN/delayline-$key.log pid
  : >"$logf"
  delayline_cmd
  ip netns exec "$box" "${DL_CMD[@]}" --near near --far far "$@" >>"$logf" 2>&1 &
  pid=$!
  echo "$pid" >"$RUN/delayline-$key.pid"
  # Up to 20 s: python's start-up is slow on a loaded 2-core machine.
  for _ in $(seq 1 200); do
    grep -q '^ready' "$logf" && return 0
    alive "$pid" || break
    sleep 0.1
  done
  cat "$logf" >&2
  die "delay line for $key did not start"
}

cmd_unshape() { [[ $# -eq 2 ]] || die "usage: lab.sh unshape HOST IFACE"; cmd_shape "$1" "$2"; }

# --- coturn -----------------------------------------------------------------

# A self-signed certificate for coturn's TLS listener (CN turn.tern.test,
# subjectAltName IP:$R_IP), made once per run in the run dir.
make_test_cert() {
  [[ -f $RUN/turn-cert.pem ]] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=turn.tern.test" -addext "subjectAltName=IP:$R_IP,DNS:turn.tern.test" \
    -keyout "$RUN/turn-key.pem" -out "$RUN/turn-cert.pem" >/dev/null 2>&1 || die "openssl could not make the test certificate"
  chmod 644 "$RUN/turn-key.pem" "$RUN/turn-cert.pem"
}

cmd_coturn_start() {
  local secret=${1:-}
  [[ -n $secret ]] || die "usage: lab.sh coturn-start SECRET"
  need_root; resolve_id; set_paths
  ns_exists "$(ns r)" || die "run $LAB_ID has no host r"
  if ! command -v turnserver >/dev/null; then
    log "installing coturn"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn >/dev/null
  fi
  cmd_coturn_stop_quiet
  make_test_cert
  local conf=$RUN/coturn.conf
  # Peer filtering: Debian's coturn 4.6.1 with no denied-peer-ip denies only
  # loopback peers (checked: 10.77.x and 198.18.x are permitted), but every
  # hardening guide (and the sample turnserver.conf) adds deny lines for
  # 10/8 and 198.18/15. allowed-peer-ip wins over any deny, so the lab ranges
  # are allowed explicitly. The config is our own file (-c), so nothing in
  # /etc/turnserver.conf applies; userdb, pid and log live in the run dir.
  # verbose: one line per TURN request in coturn.log, for debugging tests.
  # TLS (TURN over TLS, turns:) on $TURN_TLS_PORT with the lab's test
  # certificate; TCP 443 on r is redirected to it (COTURN_443=tls, the
  # default) or to the plain TCP listener (COTURN_443=tcp).
  cat >"$conf" <<EOF
listening-ip=$R_IP
relay-ip=$R_IP
listening-port=$TURN_PORT
tls-listening-port=$TURN_TLS_PORT
cert=$RUN/turn-cert.pem
pkey=$RUN/turn-key.pem
min-port=$TURN_MIN_PORT
max-port=$TURN_MAX_PORT
use-auth-secret
static-auth-secret=$secret
realm=tern.test
fingerprint
no-dtls
no-cli
no-multicast-peers
allowed-peer-ip=10.77.0.0-10.77.255.255
allowed-peer-ip=192.168.1.0-192.168.1.255
allowed-peer-ip=198.18.0.0-198.19.255.255
userdb=$RUN/coturn.sqlite
pidfile=$RUN/coturn.pid
log-file=$RUN/coturn.log
simple-log
verbose
no-stdout-log
EOF
  local to443=$TURN_TLS_PORT
  [[ ${COTURN_443:-tls} == tcp ]] && to443=$TURN_PORT
  inns r iptables -w -t nat -F PREROUTING
  inns r iptables -w -t nat -A PREROUTING -p tcp --dport 443 -j REDIRECT --to-ports "$to443"
  # COTURN_FAKETIME (e.g. "+2d"): run coturn with its clock that far off, so
  # the relay's time-limited TURN credentials look expired to it.
  local clock=()
  if [[ -n ${COTURN_FAKETIME:-} ]]; then
    command -v faketime >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
    clock=(env FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$COTURN_FAKETIME")
  fi
  inns r "${clock[@]}" turnserver -c "$conf" >"$RUN/coturn.out" 2>&1 &
  echo $! >"$RUN/coturn.launch.pid"
  # Ready when both the UDP and the TCP socket are bound.
  for _ in $(seq 1 50); do
    if inns r ss -Hlnu "sport = :$TURN_PORT" | grep -q . && inns r ss -Hlnt "sport = :$TURN_PORT" | grep -q .; then
      echo "TURN_URL_UDP=turn:$R_IP:$TURN_PORT?transport=udp"
      echo "TURN_URL_TCP=turn:$R_IP:$TURN_PORT?transport=tcp"
      echo "TURN_URL_TLS=turns:$R_IP:$TURN_TLS_PORT?transport=tcp"
      echo "TURN_CERT=$RUN/turn-cert.pem"
      echo "TURN_REALM=tern.test"
      echo "COTURN_LOG=$RUN/coturn.log"
      return 0
    fi
    alive "$(cat "$RUN/coturn.launch.pid")" || break
    sleep 0.1
  done
  cat "$RUN/coturn.out" >&2
  die "coturn did not start (log: $RUN/coturn.log)"
}

cmd_coturn_stop_quiet() {
  local pf pid
  for pf in "$RUN/coturn.pid" "$RUN/coturn.launch.pid"; do
    [[ -f $pf ]] || continue
    pid=$(cat "$pf")
    # Only a pid that is really inside our r namespace (pid files go stale).
    if ip netns pids "$(ns r)" 2>/dev/null | grep -qx "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do alive "$pid" || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pf"
  done
}

cmd_turn_proxy_start() {
  need_root; resolve_id; set_paths
  ns_exists "$(ns r)" || die "run $LAB_ID has no host r"
  cmd_turn_proxy_stop
  inns r "$(python_bin)" -u "$LAB_HERE/labtool.py" turn-proxy --listen "$R_IP:3480" --server "$R_IP:$TURN_PORT" \
    >"$RUN/turn-proxy.log" 2>&1 &
  echo $! >"$RUN/turn-proxy.pid"
  for _ in $(seq 1 100); do
    grep -q '^ready' "$RUN/turn-proxy.log" && { echo "TURN_PROXY_URL=turn:$R_IP:3480?transport=udp"; echo "TURN_PROXY_LOG=$RUN/turn-proxy.log"; return 0; }
    sleep 0.1
  done
  cat "$RUN/turn-proxy.log" >&2
  die "the TURN proxy did not start"
}

cmd_turn_proxy_stop() {
  need_root; resolve_id; set_paths
  local pid
  [[ -f $RUN/turn-proxy.pid ]] || return 0
  pid=$(cat "$RUN/turn-proxy.pid"); rm -f "$RUN/turn-proxy.pid"
  if ip netns pids "$(ns r)" 2>/dev/null | grep -qx "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do alive "$pid" || break; sleep 0.1; done
  fi
}

cmd_coturn_stop() { need_root; resolve_id; set_paths; cmd_coturn_stop_quiet; log "coturn stopped"; }

# --- main -------------------------------------------------------------------

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }

main() {
  local cmd=${1:-}; [[ $# -gt 0 ]] && shift
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    exec) cmd_exec "$@" ;;
    user) cmd_user "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    shape) cmd_shape "$@" ;;
    unshape) cmd_unshape "$@" ;;
    coturn-start) cmd_coturn_start "$@" ;;
    coturn-stop) cmd_coturn_stop ;;
    turn-proxy-start) cmd_turn_proxy_start ;;
    turn-proxy-stop) cmd_turn_proxy_stop ;;
    roam) cmd_roam ;;
    -h|--help|help|"") usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
